"""c7n_imds/model/cfn.py: a stack's template moved from launch configurations to launch
templates, per AWS's "Migrate AWS CloudFormation stacks from launch configurations to launch
templates" (its launch configuration mapping reference). Each produced template is checked
by cfn-lint (AWS's own linter) and turned into a change set on moto's CloudFormation."""

import copy
import json
import re
from pathlib import Path

import pytest
from cfnlint.api import lint

from c7n_imds.model import cfn

DATA = Path(__file__).parent / "data" / "cfn"
REGION = "us-east-1"
TEMPLATES = ("web.yaml", "kept.yaml", "batch.json")
NO_VALUE = {"Ref": "AWS::NoValue"}


def load(name):
    return cfn.parse_template((DATA / name).read_text())


def migrated(name, **kwargs):
    template, _ = load(name)
    done = cfn.migrate(template, **kwargs)
    new, notes = done.template, done.lines()
    return template, new, notes


def tiny(lc_properties, extra=None):
    """A template with one group on one launch configuration."""
    resources = {
        "LC": {
            "Type": cfn.LAUNCH_CONFIGURATION,
            "Properties": {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro", **lc_properties},
        },
        "Group": {
            "Type": cfn.AUTO_SCALING_GROUP,
            "Properties": {
                "LaunchConfigurationName": {"Ref": "LC"},
                "MinSize": "0",
                "MaxSize": "1",
            },
        },
    }
    resources.update(extra or {})
    return {"Resources": resources}


def data_of(template, lc="LC"):
    return template["Resources"][lc + cfn.TEMPLATE_SUFFIX]["Properties"]["LaunchTemplateData"]


def test_short_forms_become_long_forms():
    text = """
AWSTemplateFormatVersion: 2010-09-09
Resources:
  R:
    Type: Custom::X
    Properties:
      Ref: !Ref P
      GetAttDot: !GetAtt A.B
      GetAttNested: !GetAtt A.B.C
      GetAttList: [!GetAtt [A, B]]
      Sub: !Sub "x-${AWS::Region}"
      SubList: !Sub ["${a}-b", {a: !Ref P}]
      If: !If [C, !Ref P, !Ref AWS::NoValue]
      Join: !Join [",", [a, b]]
      Select: !Select [0, !GetAZs ""]
      FindInMap: !FindInMap [M, K, V]
      Base64: !Base64 hello
      Split: !Split [",", "a,b"]
      Conditions: [!Equals [a, b], !Not [!Condition C], !And [!Condition C, !Condition C],
                   !Or [!Condition C, !Condition C]]
      Import: !ImportValue shared
      Cidr: !Cidr ["10.0.0.0/16", 4, 8]
"""
    template, fmt = cfn.parse_template(text)
    assert fmt == "yaml"
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Resources"]["R"]["Properties"] == {
        "Ref": {"Ref": "P"},
        "GetAttDot": {"Fn::GetAtt": ["A", "B"]},
        "GetAttNested": {"Fn::GetAtt": ["A", "B.C"]},
        "GetAttList": [{"Fn::GetAtt": ["A", "B"]}],
        "Sub": {"Fn::Sub": "x-${AWS::Region}"},
        "SubList": {"Fn::Sub": ["${a}-b", {"a": {"Ref": "P"}}]},
        "If": {"Fn::If": ["C", {"Ref": "P"}, NO_VALUE]},
        "Join": {"Fn::Join": [",", ["a", "b"]]},
        "Select": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
        "FindInMap": {"Fn::FindInMap": ["M", "K", "V"]},
        "Base64": {"Fn::Base64": "hello"},
        "Split": {"Fn::Split": [",", "a,b"]},
        "Conditions": [
            {"Fn::Equals": ["a", "b"]},
            {"Fn::Not": [{"Condition": "C"}]},
            {"Fn::And": [{"Condition": "C"}, {"Condition": "C"}]},
            {"Fn::Or": [{"Condition": "C"}, {"Condition": "C"}]},
        ],
        "Import": {"Fn::ImportValue": "shared"},
        "Cidr": {"Fn::Cidr": ["10.0.0.0/16", 4, 8]},
    }
    # plain types, not cfn-lint's nodes: they serialise and compare like any dict
    assert type(template) is dict and type(template["Resources"]["R"]["Type"]) is str
    assert json.loads(json.dumps(template)) == template


def test_json_is_parsed_as_json():
    template, fmt = load("batch.json")
    assert fmt == "json"
    assert template == json.loads((DATA / "batch.json").read_text())


@pytest.mark.parametrize(
    "text, message",
    [
        ("Resources: [", "could not be parsed"),
        ("Resources:\n  A: {Type: X}\n  A: {Type: Y}\n", "Duplicate"),
        ("Description: no resources\n", "no Resources"),
    ],
)
def test_bad_text_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        cfn.parse_template(text)


def test_every_mapped_field_lands_where_the_reference_says():
    original, new, notes = migrated("web.yaml")
    tpl = "WebLaunchConfigImdsv2Template"
    resource = new["Resources"][tpl]
    assert resource["Type"] == "AWS::EC2::LaunchTemplate"
    assert resource["DependsOn"] == "InstanceRole"  # the LC's prerequisite, kept
    assert "LaunchTemplateName" not in resource["Properties"]  # the LC had no name
    lc = original["Resources"]["WebLaunchConfig"]["Properties"]
    assert resource["Properties"]["LaunchTemplateData"] == {
        "ImageId": {"Ref": "ImageId"},
        "InstanceType": {"Ref": "InstanceType"},
        "KeyName": {"Fn::If": ["HasKey", {"Ref": "KeyName"}, NO_VALUE]},
        "EbsOptimized": True,
        "UserData": lc["UserData"],
        # AssociatePublicIpAddress: the groups move to the interface, none at the top
        "NetworkInterfaces": [
            {
                "DeviceIndex": 0,
                "AssociatePublicIpAddress": True,
                "DeleteOnTermination": True,
                "Groups": [
                    {"Ref": "WebSecurityGroup"},
                    {"Fn::GetAtt": ["AdminSecurityGroup", "GroupId"]},
                ],
            }
        ],
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "VolumeSize": 20,
                    "VolumeType": "gp3",
                    "Iops": 3000,
                    "Throughput": 125,
                    "DeleteOnTermination": True,
                    "Encrypted": True,
                },
            },
            {
                "DeviceName": "/dev/sdf",
                "Ebs": {
                    "SnapshotId": {"Ref": "DataSnapshot"},
                    "VolumeSize": 100,
                    "DeleteOnTermination": False,
                },
            },
            {"DeviceName": "/dev/sdb", "NoDevice": ""},
        ],
        # Ref of an AWS::IAM::InstanceProfile returns its name
        "IamInstanceProfile": {"Name": {"Ref": "InstanceProfile"}},
        "Monitoring": {"Enabled": False},
        "InstanceMarketOptions": {
            "Fn::If": [
                "UseSpot",
                {"MarketType": "spot", "SpotOptions": {"MaxPrice": {"Ref": "SpotPrice"}}},
                NO_VALUE,
            ]
        },
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
    }
    assert "Fn::Sub" in lc["UserData"]["Fn::Base64"]  # user data untouched, still a Sub
    for group in ("WebGroup", "CanaryGroup"):
        properties = new["Resources"][group]["Properties"]
        assert "LaunchConfigurationName" not in properties
        assert properties["LaunchTemplate"] == {
            "LaunchTemplateId": {"Ref": tpl},
            "Version": {"Fn::GetAtt": [tpl, "LatestVersionNumber"]},
        }
        rest = {k: v for k, v in properties.items() if k != "LaunchTemplate"}
        assert rest == {
            k: v
            for k, v in original["Resources"][group]["Properties"].items()
            if k != "LaunchConfigurationName"
        }
    assert "WebLaunchConfig" not in new["Resources"]
    assert new["Resources"]["WorkerGroup"] == original["Resources"]["WorkerGroup"]
    assert list(new["Resources"]).index(tpl) == list(original["Resources"]).index("WebLaunchConfig")
    for section in (
        "AWSTemplateFormatVersion",
        "Description",
        "Parameters",
        "Conditions",
        "Outputs",
    ):
        assert new[section] == original[section]
    assert original == load("web.yaml")[0]  # the input is not changed
    assert "WebLaunchConfig: removed, no longer used" in notes
    assert any(
        n.startswith("WorkerGroup: not changed: it has a MixedInstancesPolicy") for n in notes
    )
    assert any("CanaryGroup: its UpdatePolicy AutoScalingRollingUpdate" in n for n in notes)
    assert any("SpotPrice" in n for n in notes)


def test_the_json_template():
    original, new, notes = migrated("batch.json")
    tpl = "BatchLaunchConfigImdsv2Template"
    properties = new["Resources"][tpl]["Properties"]
    assert properties["LaunchTemplateName"] == "batch-hosts-v1"
    assert properties["LaunchTemplateData"] == {
        "ImageId": "ami-12c6146b",
        "InstanceType": "m5.large",
        "UserData": original["Resources"]["BatchLaunchConfig"]["Properties"]["UserData"],
        "SecurityGroupIds": [{"Ref": "SecurityGroup"}],
        "BlockDeviceMappings": [{"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"}],
        "IamInstanceProfile": {"Arn": {"Fn::GetAtt": ["BatchProfile", "Arn"]}},
        "Monitoring": {"Enabled": True},  # unset on an LC means detailed monitoring
        "Placement": {"Tenancy": "dedicated"},
        "MetadataOptions": {"HttpTokens": "required"},
    }
    assert new["Resources"]["BatchGroup"]["DependsOn"] == [tpl]
    assert "BatchLaunchConfig" not in new["Resources"]
    assert any("LaunchTemplateName" in n for n in notes)


def test_a_configuration_still_used_elsewhere_is_kept():
    original, new, notes = migrated("kept.yaml")
    assert new["Resources"]["AppLaunchConfig"] == original["Resources"]["AppLaunchConfig"]
    assert new["Outputs"] == original["Outputs"]
    assert data_of(new, "AppLaunchConfig")["IamInstanceProfile"] == {
        "Arn": original["Resources"]["AppLaunchConfig"]["Properties"]["IamInstanceProfile"]
    }
    assert data_of(new, "AppLaunchConfig")["Placement"] == {"Tenancy": "default"}
    assert new["Resources"]["LegacyGroup"] == original["Resources"]["LegacyGroup"]
    assert any(
        n.startswith("AppLaunchConfig: kept, still used by output LaunchConfiguration")
        for n in notes
    )
    assert any(n.startswith("LegacyGroup: not changed") and "shared-legacy-lc" in n for n in notes)


def test_only_the_chosen_groups_move():
    original, new, notes = migrated("web.yaml", groups=["CanaryGroup", "Nope"])
    assert "LaunchTemplate" in new["Resources"]["CanaryGroup"]["Properties"]
    assert new["Resources"]["WebGroup"] == original["Resources"]["WebGroup"]
    assert new["Resources"]["WebLaunchConfig"] == original["Resources"]["WebLaunchConfig"]
    assert any(
        n.startswith("WebLaunchConfig: kept, still used by resource WebGroup") for n in notes
    )
    assert "Nope: not an Auto Scaling group of this template" in notes


def test_metadata_options_are_laid_over_required_tokens():
    _, new, _ = migrated(
        "web.yaml",
        metadata_options={
            "HttpPutResponseHopLimit": 3,
            "InstanceMetadataTags": "enabled",
            "HttpEndpoint": "preserve",
        },
    )
    assert data_of(new, "WebLaunchConfig")["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 3,
        "HttpEndpoint": "enabled",
        "InstanceMetadataTags": "enabled",
    }
    with pytest.raises(ValueError, match="HttpFoo"):
        migrated("web.yaml", metadata_options={"HttpFoo": 1})


@pytest.mark.parametrize(
    "properties, message",
    [
        ({"FutureProperty": "x"}, "LC: property FutureProperty has no known template mapping"),
        ({"InstanceId": "i-0123456789abcdef0"}, "built from instance"),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"KmsKeyId": "k"}}]},
            "KmsKeyId",
        ),
        (
            {"BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "NoDevice": {"Ref": "P"}}]},
            "not a literal boolean",
        ),
        # a literal name where ids are needed (beside an id, or on a public interface)
        ({"SecurityGroups": ["web-servers", "sg-0123456789abcdef0"]}, "only its id will do"),
        (
            {"SecurityGroups": ["web-servers"], "AssociatePublicIpAddress": True},
            "only its id will do",
        ),
        ({"IamInstanceProfile": {"Fn::ImportValue": "profile"}}, "name or an ARN"),
        ({"MetadataOptions": {"HttpTokens": "optional", "Future": 1}}, "MetadataOptions"),
    ],
)
def test_what_cannot_be_carried_is_refused(properties, message):
    template = tiny(
        properties,
        {
            "ClassicGroup": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {"GroupDescription": "no vpc"},
            }
        },
    )
    before = copy.deepcopy(template)
    with pytest.raises(ValueError, match=message):
        cfn.migrate(template)
    assert template == before


@pytest.mark.parametrize(
    "profile, expected",
    [
        ("app", {"Name": "app"}),
        (
            "arn:aws:iam::123456789012:instance-profile/app",
            {"Arn": "arn:aws:iam::123456789012:instance-profile/app"},
        ),
        ({"Fn::GetAtt": ["P", "Arn"]}, {"Arn": {"Fn::GetAtt": ["P", "Arn"]}}),
        ({"Fn::Sub": "${AWS::StackName}-app"}, {"Name": {"Fn::Sub": "${AWS::StackName}-app"}}),
        ({"Fn::Sub": "${ProfileParameter}"}, None),
        ({"Fn::Sub": "app-${AWS::Region}"}, {"Name": {"Fn::Sub": "app-${AWS::Region}"}}),
        ({"Fn::If": ["C", "app", NO_VALUE]}, {"Fn::If": ["C", {"Name": "app"}, NO_VALUE]}),
    ],
)
def test_instance_profile_names_and_arns(profile, expected):
    template = tiny({"IamInstanceProfile": profile})
    template["Parameters"] = {"ProfileParameter": {"Type": "String", "Default": "app"}}
    if expected is None:
        with pytest.raises(ValueError, match="name or an ARN"):
            cfn.migrate(template)
    else:
        assert data_of(cfn.migrate(template).template)["IamInstanceProfile"] == expected


def test_a_conditional_public_address_keeps_the_groups_in_both_branches():
    groups = [{"Ref": "Sg"}]
    data = data_of(
        cfn.migrate(
            tiny(
                {
                    "SecurityGroups": groups,
                    "AssociatePublicIpAddress": {"Fn::If": ["Public", True, NO_VALUE]},
                    "InstanceMonitoring": {"Fn::If": ["Quiet", False, NO_VALUE]},
                }
            )
        ).template
    )
    assert data["NetworkInterfaces"] == {
        "Fn::If": [
            "Public",
            [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": True,
                    "DeleteOnTermination": True,
                    "Groups": groups,
                }
            ],
            NO_VALUE,
        ]
    }
    assert data["SecurityGroupIds"] == {"Fn::If": ["Public", NO_VALUE, groups]}
    assert data["Monitoring"] == {"Fn::If": ["Quiet", {"Enabled": False}, {"Enabled": True}]}


@pytest.mark.parametrize(
    "value, parameters, expected",
    [
        ("arn:aws:iam::123456789012:instance-profile/eks-nodes", None, "Arn"),
        ("eks-nodes", None, "Name"),
        # the Quick Start shape: described as an ARN, no default - only the value tells
        (None, {"ProfileParameter": "arn:aws:iam::123456789012:instance-profile/n"}, "Arn"),
        (None, {"ProfileParameter": "nodes"}, "Name"),
    ],
)
def test_a_profile_parameter_is_judged_by_the_stacks_value(value, parameters, expected):
    template = tiny({"IamInstanceProfile": {"Ref": "ProfileParameter"}})
    template["Parameters"] = {
        "ProfileParameter": {
            "Type": "String",
            "Description": "the instance profile ARN",
            **({"Default": value} if value else {}),
        }
    }
    stack_values = parameters or {"ProfileParameter": value}
    done = cfn.migrate(template, parameters=stack_values)
    assert data_of(done.template)["IamInstanceProfile"] == {expected: {"Ref": "ProfileParameter"}}
    assert any("(the stack's value)" in line for line in done.lines())


@pytest.mark.parametrize(
    "parameters, message",
    [
        (None, "not known"),  # a default is not the stack's value: never guessed from it
        ({"ProfileParameter": "****"}, "NoEcho"),
        ({}, "not known"),
    ],
)
def test_a_profile_parameter_of_unknown_value_is_refused(parameters, message):
    template = tiny({"IamInstanceProfile": {"Ref": "ProfileParameter"}})
    template["Parameters"] = {"ProfileParameter": {"Type": "String", "Default": "app"}}
    with pytest.raises(ValueError, match="ProfileParameter is %s" % message):
        cfn.migrate(template, parameters=parameters)


def init_template(user_data, hook=True, extra=None):
    """An LC whose instances run cfn-init on its Metadata, as AWS's samples write it."""
    template = tiny({"UserData": {"Fn::Base64": user_data}}, extra)
    files = {"/etc/cfn/cfn-hup.conf": {"content": {"Fn::Sub": "[main]\nstack=${AWS::StackId}\n"}}}
    if hook:
        files["/etc/cfn/hooks.d/cfn-auto-reloader.conf"] = {
            "content": {
                "Fn::Join": [
                    "",
                    [
                        "[cfn-auto-reloader-hook]\ntriggers=post.update\n",
                        "path=Resources.LC.Metadata.AWS::CloudFormation::Init\n",
                        "action=/opt/aws/bin/cfn-init -v --stack ",
                        {"Ref": "AWS::StackName"},
                        " --resource LC --region ",
                        {"Ref": "AWS::Region"},
                        "\n",
                    ],
                ]
            }
        }
    template["Resources"]["LC"]["Metadata"] = {
        "AWS::CloudFormation::Init": {"config": {"files": files}}
    }
    return template


@pytest.mark.parametrize(
    "user_data",
    [
        {
            "Fn::Join": [
                "",
                [
                    "#!/bin/bash -xe\n",
                    "/opt/aws/bin/cfn-init -v --stack ",
                    {"Ref": "AWS::StackName"},
                    " --resource LC --region ",
                    {"Ref": "AWS::Region"},
                    "\n",
                ],
            ]
        },
        {
            "Fn::Sub": "#!/bin/bash\n/opt/aws/bin/cfn-init -s ${AWS::StackName} -r LC "
            "--region ${AWS::Region}\n"
        },
        {"Fn::Sub": "#!/bin/bash\ncfn-init --stack ${AWS::StackName} --resource=LC\n"},
    ],
)
def test_cfn_init_metadata_moves_with_its_references_and_the_configuration_goes(user_data):
    done = cfn.migrate(init_template(user_data))
    resources = done.template["Resources"]
    assert "LC" not in resources and done.removed == ("LC",)
    moved = resources["LCImdsv2Template"]
    assert "LC." not in json.dumps(moved["Metadata"]).replace("LCImdsv2Template.", "")
    assert "path=Resources.LCImdsv2Template.Metadata.AWS::CloudFormation::Init" in json.dumps(
        moved["Metadata"]
    )
    text = json.dumps(moved["Properties"]["LaunchTemplateData"]["UserData"])
    assert "LCImdsv2Template" in text and not re.search(r"(-r |--resource[= ])LC\b", text)
    assert any("Metadata moved to LCImdsv2Template" in line for line in done.lines())


def test_cfn_init_metadata_that_cannot_be_rewritten_keeps_the_configuration():
    # the resource name split from its flag over Fn::Join parts
    split = {
        "Fn::Join": [
            "",
            ["cfn-init --stack ", {"Ref": "AWS::StackName"}, " --resource ", "LC", "\n"],
        ]
    }
    done = cfn.migrate(init_template(split))
    assert (
        "LC" in done.template["Resources"]
        and "Metadata" in done.template["Resources"]["LC"]
        and "Metadata" not in done.template["Resources"]["LCImdsv2Template"]
    )
    assert any(
        n.startswith("LC: kept with its Metadata: its logical id is still named")
        for n in done.lines()
    )
    # another resource's cfn-init reads the configuration's Metadata
    done = cfn.migrate(
        init_template(
            {"Fn::Sub": "cfn-init -r LC"},
            extra={
                "Box": {
                    "Type": "AWS::EC2::Instance",
                    "Properties": {
                        "ImageId": "ami-12c6146b",
                        "UserData": {
                            "Fn::Base64": {"Fn::Sub": "cfn-init -s ${AWS::StackName} -r LC"}
                        },
                    },
                }
            },
        )
    )
    assert any("kept with its Metadata: cfn-init of Box reads it" in n for n in done.lines())


def test_a_group_on_an_if_over_configurations_moves_in_each_branch():
    template = tiny(
        {},
        {
            "Other": {
                "Type": cfn.LAUNCH_CONFIGURATION,
                "Properties": {"ImageId": "ami-12c6146b", "InstanceType": "t3.large"},
            }
        },
    )
    template["Conditions"] = {"Big": {"Fn::Equals": ["a", "b"]}}
    template["Resources"]["Group"]["Properties"]["LaunchConfigurationName"] = {
        "Fn::If": ["Big", {"Ref": "Other"}, {"Ref": "LC"}]
    }
    done = cfn.migrate(template)
    resources = done.template["Resources"]
    assert resources["Group"]["Properties"]["LaunchTemplate"] == {
        "Fn::If": [
            "Big",
            {
                "LaunchTemplateId": {"Ref": "OtherImdsv2Template"},
                "Version": {"Fn::GetAtt": ["OtherImdsv2Template", "LatestVersionNumber"]},
            },
            {
                "LaunchTemplateId": {"Ref": "LCImdsv2Template"},
                "Version": {"Fn::GetAtt": ["LCImdsv2Template", "LatestVersionNumber"]},
            },
        ]
    }
    assert set(done.removed) == {"LC", "Other"} and done.fixed == ("Group",)
    # a branch that is not a configuration of this template leaves the group
    template["Resources"]["Group"]["Properties"]["LaunchConfigurationName"] = {
        "Fn::If": ["Big", "shared-lc", {"Ref": "LC"}]
    }
    assert cfn.migrate(template).left["Group"].startswith("Group: not changed")


@pytest.mark.parametrize(
    "groups, public, expected",
    [
        # all by name: SecurityGroups, as AWS's own migrations carry them
        ([{"Ref": "ClassicGroup"}], False, {"SecurityGroups": [{"Ref": "ClassicGroup"}]}),
        (["web-servers"], False, {"SecurityGroups": ["web-servers"]}),
        # beside an id, or on a public interface: the stack's group by its GroupId
        (
            [{"Ref": "ClassicGroup"}, "sg-0123456789abcdef0"],
            False,
            {
                "SecurityGroupIds": [
                    {"Fn::GetAtt": ["ClassicGroup", "GroupId"]},
                    "sg-0123456789abcdef0",
                ]
            },
        ),
        (
            [{"Ref": "ClassicGroup"}],
            True,
            {
                "NetworkInterfaces": [
                    {
                        "DeviceIndex": 0,
                        "AssociatePublicIpAddress": True,
                        "DeleteOnTermination": True,
                        "Groups": [{"Fn::GetAtt": ["ClassicGroup", "GroupId"]}],
                    }
                ]
            },
        ),
    ],
)
def test_security_groups_given_by_name(groups, public, expected):
    properties = {
        "SecurityGroups": groups,
        **({"AssociatePublicIpAddress": True} if public else {}),
    }
    data = data_of(
        cfn.migrate(
            tiny(
                properties,
                {
                    "ClassicGroup": {
                        "Type": "AWS::EC2::SecurityGroup",
                        "Properties": {"GroupDescription": "no vpc"},
                    }
                },
            )
        ).template
    )
    assert {
        k: v
        for k, v in data.items()
        if k in ("SecurityGroups", "SecurityGroupIds", "NetworkInterfaces")
    } == expected


@pytest.mark.parametrize(
    "user_data, expected",
    [
        ({"Fn::Base64": {"Fn::Sub": "#!/bin/bash\necho ECS_CLUSTER=${Cluster} >> x\n"}}, True),
        (
            {
                "Fn::Base64": {
                    "Fn::Join": [
                        "",
                        ["#!/bin/bash\n", "/etc/eks/bootstrap.sh ", {"Ref": "ClusterName"}],
                    ]
                }
            },
            True,
        ),
        ("IyEvYmluL2Jhc2gKZWNobyBFQ1NfQ0xVU1RFUj1wcm9kID4+IC9ldGMvZWNzL2Vjcy5jb25maWcK", True),
        ({"Fn::Base64": "#!/bin/bash\nyum -y update\n"}, False),
    ],
)
def test_containers_are_read_from_the_user_data_parts(user_data, expected):
    template = tiny({"UserData": user_data})
    assert cfn.runs_containers_in(template, "Group") is expected


def test_containers_are_read_from_cfn_init_metadata():
    template = tiny({})
    template["Resources"]["LC"]["Metadata"] = {
        "AWS::CloudFormation::Init": {
            "config": {
                "commands": {
                    "01_add_instance_to_cluster": {
                        "command": {"Fn::Sub": "echo ECS_CLUSTER=${Cluster} >> /etc/ecs/ecs.config"}
                    }
                }
            }
        }
    }
    assert cfn.runs_containers_in(template, "Group")


def test_classic_link_is_dropped_with_a_note_and_ids_do_not_clash():
    template = tiny(
        {"ClassicLinkVPCId": "vpc-1"}, {"LCImdsv2Template": {"Type": "AWS::SNS::Topic"}}
    )
    done = cfn.migrate(template)
    new, notes = done.template, done.lines()
    assert new["Resources"]["LCImdsv2Template"] == {"Type": "AWS::SNS::Topic"}
    assert "ClassicLinkVPCId" not in json.dumps(new["Resources"]["LCImdsv2Template2"])
    assert new["Resources"]["Group"]["Properties"]["LaunchTemplate"]["LaunchTemplateId"] == {
        "Ref": "LCImdsv2Template2"
    }
    assert any("ClassicLinkVPCId dropped" in n for n in notes)


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_dumped_text_parses_back_to_the_same_template(name, fmt):
    _, new, _ = migrated(name)
    text = cfn.dump_template(new, fmt)
    assert cfn.parse_template(text) == (new, fmt)
    assert "&id" not in text  # CloudFormation rejects YAML aliases


def errors_and_warnings(text):
    matches = lint(text, regions=[REGION])
    errors = [m for m in matches if m.rule.id.startswith("E")]
    warnings = [m for m in matches if not m.rule.id.startswith("E")]
    for m in warnings:
        print("cfn-lint %s line %s: %s" % (m.rule.id, m.linenumber, m.message))
    return errors, warnings


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_produced_template_passes_cfn_lint(name, fmt):
    errors, _ = errors_and_warnings((DATA / name).read_text())
    assert errors == []  # the fixture itself is valid
    _, new, _ = migrated(name)
    errors, warnings = errors_and_warnings(cfn.dump_template(new, fmt))
    assert errors == []
    # W3697 (launch configurations are in maintenance mode) may stay only where the LC does
    ids = {m.rule.id for m in warnings}
    assert ("W3697" in ids) == any(
        r["Type"] == cfn.LAUNCH_CONFIGURATION for r in new["Resources"].values()
    )
    assert "W1101" not in ids  # no YAML aliases


def test_cfn_lint_would_catch_a_wrong_mapping():
    """The lint check has teeth: an LC property left unmapped in a template is an error.
    (Not every slip is caught: cfn-lint accepts an LC-style ``NoDevice: true`` in a template,
    as it coerces booleans to strings; the mapping test above pins ``""``.)"""
    _, new, _ = migrated("web.yaml")
    data_of(new, "WebLaunchConfig")["InstanceMonitoring"] = False
    errors, _ = errors_and_warnings(cfn.dump_template(new, "json"))
    assert errors and any("InstanceMonitoring" in m.message for m in errors)


def estate(session, name):
    """What the original stack needs from outside it, as the stack's parameters."""
    if name == "web.yaml":
        return [{"ParameterKey": "InstanceType", "ParameterValue": "t3.small"}]
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    if name == "batch.json":
        group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)[
            "GroupId"
        ]
        return [
            {"ParameterKey": "Subnet", "ParameterValue": subnet},
            {"ParameterKey": "SecurityGroup", "ParameterValue": group},
        ]
    # kept.yaml's LegacyGroup uses a configuration made outside the stack
    session.client("autoscaling").create_launch_configuration(
        LaunchConfigurationName="shared-legacy-lc", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    return [{"ParameterKey": "Subnets", "ParameterValue": subnet}]


EXPECTED_CHANGES = {
    "web.yaml": {
        ("Add", "WebLaunchConfigImdsv2Template", "AWS::EC2::LaunchTemplate"),
        ("Modify", "WebGroup", cfn.AUTO_SCALING_GROUP),
        ("Modify", "CanaryGroup", cfn.AUTO_SCALING_GROUP),
        ("Remove", "WebLaunchConfig", cfn.LAUNCH_CONFIGURATION),
    },
    "kept.yaml": {
        ("Add", "AppLaunchConfigImdsv2Template", "AWS::EC2::LaunchTemplate"),
        ("Modify", "AppGroup", cfn.AUTO_SCALING_GROUP),
    },
    "batch.json": {
        ("Add", "BatchLaunchConfigImdsv2Template", "AWS::EC2::LaunchTemplate"),
        ("Modify", "BatchGroup", cfn.AUTO_SCALING_GROUP),
        ("Remove", "BatchLaunchConfig", cfn.LAUNCH_CONFIGURATION),
    },
}


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_produced_template_makes_a_change_set(moto, name, fmt):
    """The original stack is created on moto (which provisions its LCs and groups), then a
    change set of the migrated template is created and described - never executed.
    moto's change sets diff resource JSON only: they do not validate the template's
    properties or capabilities, and do not echo the change set's tags (cfn-lint above
    judges validity)."""
    _, session = moto
    cloudformation = session.client("cloudformation")
    stack = "c7n-imds-" + name.replace(".", "-")
    original = (DATA / name).read_text()
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=original,
        Parameters=estate(session, name),
        Capabilities=["CAPABILITY_IAM"],
    )
    assert (
        cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        == "CREATE_COMPLETE"
    )
    groups = session.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    on_lc = {g["AutoScalingGroupName"] for g in groups if g.get("LaunchConfigurationName")}
    template, _ = cfn.parse_template(original)
    new = cfn.migrate(template).template
    moved = {change[1] for change in EXPECTED_CHANGES[name] if change[0] == "Modify"}
    assert len([g for g in on_lc if g.split("-")[-2] in moved]) == len(moved)

    cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName="c7n-imds-imdsv2-1",
        ChangeSetType="UPDATE",
        TemplateBody=cfn.dump_template(new, fmt),
        Parameters=[
            {"ParameterKey": k, "UsePreviousValue": True} for k in template.get("Parameters", {})
        ],
        Capabilities=["CAPABILITY_IAM"],
        Tags=[{"Key": "c7n-imds:change", "Value": "imdsv2"}],
    )
    change_set = cloudformation.describe_change_set(
        StackName=stack, ChangeSetName="c7n-imds-imdsv2-1"
    )
    assert (change_set["Status"], change_set["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    assert {
        (
            c["ResourceChange"]["Action"],
            c["ResourceChange"]["LogicalResourceId"],
            c["ResourceChange"]["ResourceType"],
        )
        for c in change_set["Changes"]
    } == EXPECTED_CHANGES[name]
    # not executed: the stack still holds its launch configurations, the groups use them
    resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    assert {r["ResourceType"] for r in resources} >= {cfn.LAUNCH_CONFIGURATION}
    assert "AWS::EC2::LaunchTemplate" not in {
        r["ResourceType"] for r in resources if r["LogicalResourceId"].endswith(cfn.TEMPLATE_SUFFIX)
    }


def test_an_override_may_depend_on_what_is_there():
    """hop-limit: auto is "at least 2": a higher literal stays, a missing one becomes 2,
    a computed one (a parameter) is the owner's and stays."""
    from c7n_imds.owners.cloudformation import at_least_two

    for given, expected in ((None, 2), (1, 2), (3, 3), ({"Ref": "Hops"}, {"Ref": "Hops"})):
        options = {} if given is None else {"HttpPutResponseHopLimit": given}
        new = cfn.migrate(
            tiny({"MetadataOptions": options} if options else {}),
            metadata_options={"HttpPutResponseHopLimit": at_least_two},
        ).template
        assert data_of(new)["MetadataOptions"] == dict(
            HttpTokens="required", HttpPutResponseHopLimit=expected
        ), given


# -- what executing the change set does besides (pure) ----------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {
                "Transform": "AWS::LanguageExtensions",
                "Resources": {
                    "Fn::ForEach::Q": ["N", ["A"], {"Q${N}": {"Type": "AWS::SQS::Queue"}}]
                },
            },
            "Fn::ForEach::Q",
        ),
        ({"Transform": ["AWS::Serverless-2016-10-31", "MyMacro"]}, "transform MyMacro"),
        (
            {"Transform": {"Name": "AWS::Include", "Parameters": {"Location": "s3://b/k"}}},
            "transform AWS::Include",
        ),
        ({"Outputs": {"X": {"Value": {"Fn::Transform": {"Name": "M"}}}}}, "Fn::Transform"),
    ],
)
def test_a_template_a_transform_rewrites_is_refused(extra, message):
    template = tiny({})
    template["Resources"].update(extra.pop("Resources", {}))
    template.update(extra)
    assert message in cfn.refusal_of_template(template)


@pytest.mark.parametrize(
    "transform", [None, "AWS::Serverless-2016-10-31", ["AWS::LanguageExtensions"]]
)
def test_transforms_that_leave_the_resources_as_written_are_carried(transform):
    template = tiny({})
    if transform:
        template["Transform"] = transform
    assert cfn.refusal_of_template(template) is None


def test_a_foreach_template_parses_and_is_refused_not_crashed():
    text = """
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::LanguageExtensions
Resources:
  Fn::ForEach::Groups:
    - Name
    - [A, B]
    - Group${Name}:
        Type: AWS::AutoScaling::AutoScalingGroup
        Properties: {MinSize: "0", MaxSize: "1", LaunchConfigurationName: !Ref LC}
  LC:
    Type: AWS::AutoScaling::LaunchConfiguration
    Properties: {ImageId: ami-12c6146b, InstanceType: t3.micro}
"""
    template, _ = cfn.parse_template(text)
    assert "Fn::ForEach::Groups" in cfn.refusal_of_template(template)


def stack_record(**extra):
    return dict(
        {
            "StackName": "web",
            "StackId": "arn:aws:cloudformation:us-east-1:1:stack/web/x",
            "Tags": [],
        },
        **extra,
    )


@pytest.mark.parametrize(
    "stack, template, kind, evidence",
    [
        (
            {},
            {"Resources": {"CDKMetadata": {"Type": "AWS::CDK::Metadata"}}},
            "cdk",
            "resource CDKMetadata",
        ),
        (
            {},
            {"Parameters": {"BootstrapVersion": {"Type": "String"}}, "Resources": {}},
            "cdk",
            "parameter BootstrapVersion",
        ),
        (
            {},
            {"Resources": {"G": {"Type": "X", "Metadata": {"aws:cdk:path": "S/G/Resource"}}}},
            "cdk",
            "aws:cdk:path S/G/Resource",
        ),
        (
            {},
            {"Transform": "AWS::Serverless-2016-10-31", "Resources": {}},
            "sam",
            "Transform AWS::Serverless-2016-10-31",
        ),
        (
            {"StackName": "StackSet-web-0f0e0d0c-1111"},
            {"Resources": {}},
            "stackset",
            "stack name StackSet-web-0f0e0d0c-1111",
        ),
        (
            {"Tags": [{"Key": "aws:servicecatalog:provisionedProductArn", "Value": "arn:p"}]},
            {"Resources": {}},
            "service-catalog",
            "tag aws:servicecatalog:provisionedProductArn",
        ),
        (
            {"RoleARN": "arn:aws:iam::1:role/web-CodePipelineDeployRole"},
            {"Resources": {}},
            "pipeline",
            "service role arn:aws:iam::1:role/web-CodePipelineDeployRole",
        ),
        (
            {"Tags": [{"Key": "deployed-by", "Value": "codepipeline/web"}]},
            {"Resources": {}},
            "pipeline",
            "tag deployed-by=codepipeline/web",
        ),
    ],
)
def test_where_a_stack_is_deployed_from(stack, template, kind, evidence):
    [source] = cfn.deployed_from(stack_record(**stack), template)
    assert (source.kind, source.evidence) == (kind, evidence)
    assert "reverts this change" in source.advice


def test_a_plain_stack_is_deployed_from_itself():
    assert cfn.deployed_from(stack_record(RoleARN="arn:aws:iam::1:role/cfn"), tiny({})) == []
    [cdk] = cfn.deployed_from(
        stack_record(), {"Resources": {"CDKMetadata": {"Type": "AWS::CDK::Metadata"}}}
    )
    assert "requireImdsv2: true" in cdk.advice and "require_imdsv2=True" in cdk.advice


WANTED = {
    "Group": (cfn.AUTO_SCALING_GROUP, {"Update:Modify"}),
    "LC": (cfn.LAUNCH_CONFIGURATION, {"Update:Delete"}),
}
ALLOW_ALL = {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"}


@pytest.mark.parametrize(
    "statements, expected",
    [
        ([ALLOW_ALL], []),
        (
            [
                ALLOW_ALL,
                {
                    "Sid": "NoDeletes",
                    "Effect": "Deny",
                    "Action": "Update:Delete",
                    "Principal": "*",
                    "Resource": "*",
                },
            ],
            ["its stack policy denies Update:Delete on LC (statement NoDeletes: "],
        ),
        (
            [
                ALLOW_ALL,
                {
                    "Effect": "Deny",
                    "Action": "Update:*",
                    "Principal": "*",
                    "Resource": "LogicalResourceId/Gr*",
                },
            ],
            ["its stack policy denies Update:Modify on Group (statement #2: "],
        ),
        (
            [
                ALLOW_ALL,
                {
                    "Effect": "Deny",
                    "Action": "Update:*",
                    "Principal": "*",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"ResourceType": ["AWS::RDS::DBInstance"]}},
                },
            ],
            [],
        ),
        (
            [
                ALLOW_ALL,
                {
                    "Effect": "Deny",
                    "Action": "Update:*",
                    "Principal": "*",
                    "Resource": "*",
                    "Condition": {"StringLike": {"ResourceType": ["AWS::AutoScaling::*"]}},
                },
            ],
            ["denies Update:Modify on Group", "denies Update:Delete on LC"],
        ),
        (
            [
                ALLOW_ALL,
                {"Effect": "Deny", "NotAction": "Update:Modify", "Principal": "*", "Resource": "*"},
            ],
            ["denies Update:Delete on LC"],
        ),
        (
            [{"Effect": "Allow", "Action": "Update:Modify", "Principal": "*", "Resource": "*"}],
            ["allows Update:Delete on LC in no statement"],
        ),
    ],
)
def test_a_stack_policy_that_forbids_the_update_is_named(statements, expected):
    problems = cfn.stack_policy_denials(json.dumps({"Statement": statements}), WANTED)
    assert len(problems) == len(expected), problems
    for problem, text in zip(problems, expected):
        assert text in problem, problem


def test_no_stack_policy_forbids_nothing_and_an_unreadable_one_is_refused():
    assert cfn.stack_policy_denials(None, WANTED) == []
    assert "could not be read" in cfn.stack_policy_denials("{not json", WANTED)[0]


LIVE = {"MinSize": 1, "MaxSize": 4, "DesiredCapacity": 3}


def sized(properties, update_policy=None):
    template = tiny({})
    template["Resources"]["Group"]["Properties"].update(properties)
    if update_policy:
        template["Resources"]["Group"]["UpdatePolicy"] = update_policy
    return template


@pytest.mark.parametrize(
    "properties, expected",
    [
        ({"MinSize": "1", "MaxSize": "4"}, []),  # DesiredCapacity unsaid: CloudFormation leaves it
        ({"MinSize": 1, "MaxSize": "4", "DesiredCapacity": "3"}, []),
        (
            {"MinSize": "1", "MaxSize": "4", "DesiredCapacity": "1"},
            ["group-size: DesiredCapacity 3 -> 1 (the update sets the template's value)"],
        ),
        (
            {"MinSize": {"Ref": "Min"}, "MaxSize": "4"},
            ["group-size: MinSize 1 -> 2 (the update sets the template's parameter Min)"],
        ),
        (
            {"MinSize": {"Ref": "Secret"}, "MaxSize": "4"},
            [
                'group-size: MinSize 1 -> {"Ref": "Secret"} (the update sets the template\'s '
                "computed value, which c7n-imds cannot resolve before execution)"
            ],
        ),
        (
            {"MinSize": "1", "MaxSize": {"Fn::If": ["Big", "8", "4"]}},
            [
                'group-size: MaxSize 4 -> {"Fn::If": ["Big", "8", "4"]} (the update sets the '
                "template's computed value, which c7n-imds cannot resolve before execution)"
            ],
        ),
    ],
)
def test_group_sizes_the_update_would_set(properties, expected):
    changes = cfn.size_changes(sized(properties), "Group", LIVE, {"Min": "2", "Secret": "****"})
    assert [c.line() for c in changes] == expected


def test_ignoring_unmodified_group_sizes_means_no_size_change():
    template = sized(
        {"MinSize": "0", "MaxSize": "1", "DesiredCapacity": "0"},
        {"AutoScalingScheduledAction": {"IgnoreUnmodifiedGroupSizeProperties": True}},
    )
    assert cfn.size_changes(template, "Group", LIVE, {}) == []
    template["Resources"]["Group"]["UpdatePolicy"]["AutoScalingScheduledAction"][
        "IgnoreUnmodifiedGroupSizeProperties"
    ] = "false"
    assert len(cfn.size_changes(template, "Group", LIVE, {})) == 3


def test_an_ssm_parameter_resolving_anew_is_a_launch_change():
    template = tiny({"ImageId": {"Ref": "Image"}, "KeyName": {"Ref": "Key"}})
    template["Parameters"] = {
        "Image": {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"},
        "Key": {"Type": "AWS::SSM::Parameter::Value<String>"},
        "Same": {"Type": "AWS::SSM::Parameter::Value<String>"},
    }
    stack = [
        {"ParameterKey": "Image", "ParameterValue": "/ami", "ResolvedValue": "ami-1"},
        {"ParameterKey": "Key", "ParameterValue": "/key", "ResolvedValue": "k1"},
        {"ParameterKey": "Same", "ParameterValue": "/same", "ResolvedValue": "s"},
        {"ParameterKey": "Plain", "ParameterValue": "p"},
    ]
    change_set = [
        dict(p, ResolvedValue=v) if "ResolvedValue" in p else p
        for p, v in zip(stack, ("ami-2", "k2", "s", None))
    ]
    changes = cfn.parameter_changes(template, stack, change_set)
    assert [(c.kind, c.field, c.before, c.after) for c in changes] == [
        ("image", "parameter Image", "ami-1", "ami-2"),
        ("other", "parameter Key", "k1", "k2"),
    ]
    assert "re-resolves AWS::SSM::Parameter::Value<AWS::EC2::Image::Id> /ami" in changes[0].why
    assert cfn.parameter_changes(template, stack, stack) == []


def replacing(will):
    template = tiny({})
    template["Resources"]["Group"]["UpdatePolicy"] = {
        "AutoScalingReplacingUpdate": {"WillReplace": will}
    }
    return template


def described(replacement=None):
    change = {"Action": "Modify", "LogicalResourceId": "Group"}
    if replacement:
        change["Replacement"] = replacement
    return {"Changes": [{"Type": "Resource", "ResourceChange": change}]}


@pytest.mark.parametrize(
    "template, change_set, text, kinds",
    [
        (
            replacing(False),
            described("False"),
            "not replaced: the change set updates the group in place (Replacement: False)",
            [],
        ),
        (replacing("false"), described("False"), "not replaced", []),
        (
            tiny({}),
            described("True"),
            "replaces the whole group (the change set says Replacement: True)",
            ["replace-all-at-once"],
        ),
        (
            tiny({}),
            described("Conditional"),
            "may replace the whole group (the change set says Replacement: Conditional)",
            ["replace-all-at-once"],
        ),
        (
            replacing(True),
            described("False"),
            "replaces the whole group (its UpdatePolicy "
            "AutoScalingReplacingUpdate has WillReplace: true)",
            ["replace-all-at-once"],
        ),
        (
            replacing({"Ref": "Replace"}),
            described("False"),
            "may replace the whole group (its "
            "UpdatePolicy AutoScalingReplacingUpdate WillReplace is computed)",
            ["replace-all-at-once"],
        ),
        (tiny({}), {"Changes": []}, "not replaced: the group itself is not changed", []),
    ],
)
def test_replacement_as_the_change_set_and_update_policy_say(template, change_set, text, kinds):
    said, changes = cfn.replacement(change_set, "Group", template)
    assert said.startswith(text), said
    assert [c.kind for c in changes] == kinds


def test_will_replace_false_is_not_reported_as_a_replacement():
    done = cfn.migrate(replacing(False))
    [effect] = [n for n in done.notes if n.kind == "update"]
    assert "replace" not in effect.text.replace("replaced (no UpdatePolicy replaces them)", "")
    [effect] = [n for n in cfn.migrate(replacing(True)).notes if n.kind == "update"]
    assert "WillReplace: true" in effect.text and "replaces the whole group" in effect.text


def test_the_rewrite_result_is_typed():
    done = cfn.migrate(tiny({}))
    assert done.moved == {"Group": "LCImdsv2Template"} and done.removed == ("LC",)
    assert done.fixed == ("Group",) and done.modified == ("Group",)
    assert {n.kind for n in done.notes} <= set(cfn.NOTE_KINDS)
    assert [str(n) for n in done.notes if n.kind == "moved"] == [
        "Group: now launches from LCImdsv2Template"
    ]
