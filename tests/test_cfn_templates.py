"""c7n_imds/model/cfn.py, require_imdsv2 and rewrite: groups on a launch template of
their own stack get HttpTokens required in that template, where their Version follows
the template's latest version (CloudFormation adds a new version on update and leaves
the default where it is). Each produced template is checked by cfn-lint and turned into
a change set on moto's CloudFormation."""

import copy
import json
import re
from pathlib import Path

import pytest
from cfnlint.api import lint

from c7n_imds.model import cfn

REGION = "us-east-1"
NO_VALUE = {"Ref": "AWS::NoValue"}
ALL = ["WebGroup", "PoolGroup", "DefaultGroup", "PinnedGroup", "OutsideGroup", "StrictGroup"]

# YAML with short forms: a template shared by a plain group and a mixed instances group
# (whose override has a template of its own, MetadataOptions under Fn::If), a group on
# the default version, one pinned to a number, one on a template made elsewhere, and one
# on a template that already requires IMDSv2.
STACK_YAML = """
AWSTemplateFormatVersion: 2010-09-09
Description: Groups on launch templates of their own stack.
Parameters:
  ImageId:
    Type: String
    Default: ami-12c6146b
  SharedTemplate:
    Type: String
    Description: the id of a launch template made outside this stack
  Strict:
    Type: String
    Default: "no"
    AllowedValues: ["yes", "no"]
Conditions:
  IsStrict: !Equals [!Ref Strict, "yes"]
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.0.1.0/24
      AvailabilityZone: !Select [0, !GetAZs ""]
  WebTemplate:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        ImageId: !Ref ImageId
        InstanceType: t3.micro
        UserData: !Base64 "echo hello"
        MetadataOptions:
          HttpTokens: optional
          HttpPutResponseHopLimit: 3
          InstanceMetadataTags: enabled
  ArmTemplate:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        ImageId: !Ref ImageId
        MetadataOptions: !If
          - IsStrict
          - HttpTokens: required
          - !Ref AWS::NoValue
  StrictTemplate:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        ImageId: !Ref ImageId
        MetadataOptions:
          HttpTokens: required
  WebGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "0"
      MaxSize: "2"
      VPCZoneIdentifier: [!Ref Subnet]
      LaunchTemplate:
        LaunchTemplateId: !Ref WebTemplate
        Version: !GetAtt WebTemplate.LatestVersionNumber
    UpdatePolicy:
      AutoScalingRollingUpdate:
        MaxBatchSize: 1
  PoolGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "0"
      MaxSize: "2"
      VPCZoneIdentifier: [!Ref Subnet]
      MixedInstancesPolicy:
        LaunchTemplate:
          LaunchTemplateSpecification:
            LaunchTemplateId: !GetAtt WebTemplate.LaunchTemplateId
            Version: !GetAtt WebTemplate.LatestVersionNumber
          Overrides:
            - InstanceType: t3.micro
            - InstanceType: t4g.micro
              LaunchTemplateSpecification:
                LaunchTemplateId: !Ref ArmTemplate
                Version: !GetAtt ArmTemplate.LatestVersionNumber
  DefaultGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "0"
      MaxSize: "1"
      VPCZoneIdentifier: [!Ref Subnet]
      LaunchTemplate:
        LaunchTemplateId: !Ref WebTemplate
        Version: !GetAtt WebTemplate.DefaultVersionNumber
  PinnedGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "0"
      MaxSize: "1"
      VPCZoneIdentifier: [!Ref Subnet]
      LaunchTemplate:
        LaunchTemplateId: !Ref WebTemplate
        Version: "1"
  OutsideGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "0"
      MaxSize: "1"
      VPCZoneIdentifier: [!Ref Subnet]
      LaunchTemplate:
        LaunchTemplateId: !Ref SharedTemplate
        Version: "1"
  StrictGroup:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: "0"
      MaxSize: "1"
      VPCZoneIdentifier: [!Ref Subnet]
      LaunchTemplate:
        LaunchTemplateId: !Ref StrictTemplate
        Version: !GetAtt StrictTemplate.LatestVersionNumber
"""

# JSON: a named template without MetadataOptions.
STACK_JSON = json.dumps(
    {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"Subnet": {"Type": "AWS::EC2::Subnet::Id"}},
        "Resources": {
            "AppTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateName": "app-hosts",
                    "LaunchTemplateData": {
                        "ImageId": "ami-12c6146b",
                        "InstanceType": "m5.large",
                        "Monitoring": {"Enabled": True},
                    },
                },
            },
            "AppGroup": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "Properties": {
                    "MinSize": "0",
                    "MaxSize": "2",
                    "VPCZoneIdentifier": [{"Ref": "Subnet"}],
                    "LaunchTemplate": {
                        "LaunchTemplateId": {"Ref": "AppTemplate"},
                        "Version": {"Fn::GetAtt": ["AppTemplate", "LatestVersionNumber"]},
                    },
                },
            },
        },
    },
    indent=2,
)


def parsed(text):
    return cfn.parse_template(text)[0]


def data_of(template, template_id):
    return template["Resources"][template_id]["Properties"]["LaunchTemplateData"]


def tiny(spec, data=None, extra=None):
    """One group on one in-stack launch template T."""
    resources = {
        "T": {
            "Type": cfn.LAUNCH_TEMPLATE,
            "Properties": {
                "LaunchTemplateData": data
                or {"ImageId": "ami-12c6146b", "MetadataOptions": {"HttpTokens": "optional"}}
            },
        },
        "G": {
            "Type": cfn.AUTO_SCALING_GROUP,
            "Properties": {"MinSize": "0", "MaxSize": "1", "LaunchTemplate": spec},
        },
    }
    resources.update(extra or {})
    return {"Resources": resources}


LATEST = {"LaunchTemplateId": {"Ref": "T"}, "Version": {"Fn::GetAtt": ["T", "LatestVersionNumber"]}}


def test_groups_on_the_latest_version_get_required_tokens_in_the_template():
    original = parsed(STACK_YAML)
    before = copy.deepcopy(original)
    done = cfn.rewrite(original, ALL)
    new = done.template
    assert original == before  # the input is not changed
    # the existing options are kept, HttpTokens laid over them, nothing else changes
    assert data_of(new, "WebTemplate") == dict(
        data_of(original, "WebTemplate"),
        MetadataOptions={
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 3,
            "InstanceMetadataTags": "enabled",
        },
    )
    assert data_of(new, "WebTemplate")["UserData"] == {"Fn::Base64": "echo hello"}
    # Fn::If: set in each branch; the branch without options gets HttpTokens required
    assert data_of(new, "ArmTemplate")["MetadataOptions"] == {
        "Fn::If": ["IsStrict", {"HttpTokens": "required"}, {"HttpTokens": "required"}]
    }
    # the groups themselves are not changed: the template's new version reaches them
    for group in ALL:
        assert new["Resources"][group] == original["Resources"][group], group
    assert new["Resources"]["StrictTemplate"] == original["Resources"]["StrictTemplate"]
    assert done.fixed == ("PoolGroup", "WebGroup")
    assert done.modified == ("ArmTemplate", "WebTemplate")
    assert set(done.left) == {"DefaultGroup", "PinnedGroup", "OutsideGroup", "StrictGroup"}
    assert (
        "WebGroup: its UpdatePolicy AutoScalingRollingUpdate replaces the running "
        "instances during the update" in done.lines()
    )
    # groups on launch templates are not handed to migrate
    assert not any("it already uses a launch template" in n for n in done.lines())
    # typed notes: what happened to whom, without reading prose
    assert {(n.subject, n.kind) for n in done.notes if n.kind in ("fixed", "required")} == {
        ("PoolGroup", "fixed"),
        ("WebGroup", "fixed"),
        ("ArmTemplate", "required"),
        ("WebTemplate", "required"),
    }


def test_what_the_new_version_does_not_reach_is_left_with_the_reason():
    left = cfn.rewrite(parsed(STACK_YAML), ALL).left
    assert "DefaultVersionNumber" in left["DefaultGroup"]
    assert "CloudFormation does not move a template's default version" in left["DefaultGroup"]
    assert "set its Version to !GetAtt WebTemplate.LatestVersionNumber" in left["DefaultGroup"]
    assert "pinned to version 1 of WebTemplate" in left["PinnedGroup"]
    assert left["OutsideGroup"] == (
        'OutsideGroup: not changed: its launch template {"Ref": "SharedTemplate"} '
        "(LaunchTemplate) is defined outside this stack; fix it where it is defined"
    )
    assert "StrictTemplate already require(s) IMDSv2" in left["StrictGroup"]


def test_a_shared_template_says_whom_its_change_reaches():
    notes = cfn.rewrite(parsed(STACK_YAML), ["WebGroup"]).lines()
    assert (
        "WebTemplate: the new version reaches every group of the stack on its "
        "LatestVersionNumber: PoolGroup, WebGroup"
    ) in notes
    assert (
        "WebTemplate: also used by DefaultGroup, PinnedGroup on another Version, "
        "which the change does not reach"
    ) in notes
    assert any(
        n.startswith("WebTemplate: its default version stays where it is") and "EC2.170" in n
        for n in notes
    )


def test_only_the_templates_of_the_groups_asked_for_change():
    original = parsed(STACK_YAML)
    done = cfn.rewrite(original, ["DefaultGroup", "PinnedGroup"])
    assert done.template == original and done.fixed == () and done.modified == ()
    done = cfn.require_imdsv2(original, ["StrictGroup"])
    new, notes = done.template, done.lines()
    assert new == original
    assert any(n.startswith("StrictGroup: not changed") for n in notes)


def test_metadata_options_are_laid_over_as_for_launch_configurations():
    new = cfn.require_imdsv2(
        tiny(LATEST),
        metadata_options={
            "HttpPutResponseHopLimit": lambda existing: 2 if existing is None else existing,
            "HttpEndpoint": "enabled",
            "InstanceMetadataTags": "preserve",
        },
    ).template
    assert data_of(new, "T")["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
    }
    with pytest.raises(ValueError, match="HttpFoo"):
        cfn.require_imdsv2(tiny(LATEST), metadata_options={"HttpFoo": 1})


@pytest.mark.parametrize(
    "spec",
    [
        {
            "LaunchTemplateName": {"Ref": "T"},
            "Version": {"Fn::GetAtt": ["T", "LatestVersionNumber"]},
        },
        {
            "LaunchTemplateId": {"Fn::GetAtt": "T.LaunchTemplateId"},
            "Version": {"Fn::GetAtt": "T.LatestVersionNumber"},
        },
    ],
)
def test_the_ways_a_group_names_its_template(spec):
    done = cfn.require_imdsv2(tiny(spec))
    new, notes = done.template, done.lines()
    assert data_of(new, "T")["MetadataOptions"] == {"HttpTokens": "required"}
    assert any(n.startswith("G: launches from T") for n in notes)


@pytest.mark.parametrize(
    "named", ["lt-0123456789abcdef0", {"Ref": "Param"}, {"Fn::ImportValue": "shared-template"}]
)
def test_a_template_outside_the_stack_is_not_changed(named):
    template = tiny({"LaunchTemplateId": named, "Version": "3"})
    done = cfn.rewrite(template, ["G"])
    assert done.template == template and done.fixed == ()
    assert "is defined outside this stack" in done.left["G"]
    assert json.dumps(named) in done.left["G"]


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"ImageId": "ami-12c6146b", "MetadataOptions": {"Ref": "Options"}},
            "its MetadataOptions {\"Ref\": \"Options\"} is computed",
        ),
        (
            {"ImageId": "ami-12c6146b", "MetadataOptions": {"Fn::FindInMap": ["M", "K", "V"]}},
            "is computed",
        ),
        (
            {"ImageId": "ami-12c6146b", "MetadataOptions": {"HttpTokens": "optional", "Fut": 1}},
            "fields c7n-imds does not know \\(Fut\\)",
        ),
        ({"Fn::FindInMap": ["Data", "K", "V"]}, "its LaunchTemplateData .* is computed"),
    ],
)
def test_what_cannot_be_set_faithfully_is_refused(data, message):
    template = tiny(LATEST, data=data)
    done = cfn.rewrite(template, ["G"])
    assert done.template == template and done.fixed == () and done.modified == ()
    assert any(n.startswith("T: not changed: ") for n in done.lines())
    assert done.left["G"].startswith("G: not changed: its launch template T ")
    assert re.search(message, done.left["G"]), done.left["G"]


def test_intrinsic_fields_are_carried_and_conditional_data_is_lifted():
    data = {
        "Fn::If": [
            "Big",
            {
                "ImageId": "ami-12c6146b",
                "InstanceType": "m5.large",
                "MetadataOptions": {
                    "HttpTokens": {"Ref": "Tokens"},
                    "HttpPutResponseHopLimit": {"Ref": "Hops"},
                },
            },
            {"ImageId": "ami-12c6146b"},
        ]
    }
    new = cfn.require_imdsv2(tiny(LATEST, data=data)).template
    assert data_of(new, "T") == {
        "Fn::If": [
            "Big",
            {
                "ImageId": "ami-12c6146b",
                "InstanceType": "m5.large",
                "MetadataOptions": {
                    "HttpTokens": "required",
                    "HttpPutResponseHopLimit": {"Ref": "Hops"},
                },
            },
            {"ImageId": "ami-12c6146b", "MetadataOptions": {"HttpTokens": "required"}},
        ]
    }


def test_other_users_of_the_template_are_named():
    instance = {
        "Type": "AWS::EC2::Instance",
        "Properties": {
            "LaunchTemplate": {
                "LaunchTemplateId": {"Ref": "T"},
                "Version": {"Fn::GetAtt": ["T", "LatestVersionNumber"]},
            }
        },
    }
    notes = cfn.require_imdsv2(tiny(LATEST, extra={"Box": instance})).lines()
    assert (
        "T: also used by resource Box; review what a new version of the template does "
        "there before executing"
    ) in notes


def test_a_mixed_group_with_an_override_outside_the_stack_is_left():
    template = tiny(LATEST)
    group = template["Resources"]["G"]["Properties"]
    del group["LaunchTemplate"]
    group["MixedInstancesPolicy"] = {
        "LaunchTemplate": {
            "LaunchTemplateSpecification": LATEST,
            "Overrides": [
                {
                    "InstanceType": "t4g.micro",
                    "LaunchTemplateSpecification": {
                        "LaunchTemplateName": "arm-hosts",
                        "Version": "2",
                    },
                }
            ],
        }
    }
    done = cfn.rewrite(template, ["G"])
    assert done.fixed == ()
    assert '"arm-hosts" (MixedInstancesPolicy Overrides[0]) is defined outside' in done.left["G"]


def test_launch_configurations_and_templates_in_one_rewrite():
    template = tiny(
        LATEST,
        extra={
            "LC": {
                "Type": cfn.LAUNCH_CONFIGURATION,
                "Properties": {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
            },
            "Old": {
                "Type": cfn.AUTO_SCALING_GROUP,
                "Properties": {
                    "MinSize": "0",
                    "MaxSize": "1",
                    "LaunchConfigurationName": {"Ref": "LC"},
                },
            },
        },
    )
    done = cfn.rewrite(template, ["G", "Old"])
    assert done.fixed == ("G", "Old")
    assert done.modified == ("Old", "T")
    assert done.left == {}
    assert "Old: now launches from LCImdsv2Template" in done.lines()
    assert done.moved == {"Old": "LCImdsv2Template"} and done.required == ("T",)
    assert data_of(done.template, "LCImdsv2Template")["MetadataOptions"] == {
        "HttpTokens": "required"
    }


def e_level(text):
    return [m for m in lint(text, regions=[REGION]) if m.rule.id.startswith("E")]


@pytest.mark.parametrize("text", [STACK_YAML, STACK_JSON], ids=["yaml", "json"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_produced_template_passes_cfn_lint(text, fmt):
    assert e_level(text) == []  # the fixture itself is valid
    template = parsed(text)
    groups = [g for g, r in template["Resources"].items() if r["Type"] == cfn.AUTO_SCALING_GROUP]
    done = cfn.rewrite(template, groups)
    assert done.modified  # something was changed
    assert e_level(cfn.dump_template(done.template, fmt)) == []


def test_cfn_lint_would_catch_a_wrong_option():
    """The lint check has teeth: a value MetadataOptions does not take is an error."""
    done = cfn.rewrite(parsed(STACK_JSON), ["AppGroup"])
    data_of(done.template, "AppTemplate")["MetadataOptions"]["HttpTokens"] = "mandatory"
    assert any("mandatory" in m.message for m in e_level(cfn.dump_template(done.template, "json")))


def estate(session, text):
    ec2 = session.client("ec2")
    if text is STACK_JSON:
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        return [{"ParameterKey": "Subnet", "ParameterValue": subnet}]
    shared = ec2.create_launch_template(
        LaunchTemplateName="shared", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    return [{"ParameterKey": "SharedTemplate", "ParameterValue": shared}]


@pytest.mark.parametrize(
    "text, expected",
    [(STACK_YAML, {"WebTemplate", "ArmTemplate"}), (STACK_JSON, {"AppTemplate"})],
    ids=["yaml", "json"],
)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_produced_template_makes_a_change_set(moto, text, expected, fmt):
    """The original stack is created on moto, then a change set of the rewritten
    template is created and described - never executed. moto diffs each resource's
    JSON: the changed templates are modified, the groups are not (their Version is the
    template's GetAtt, resolved only on update)."""
    _, session = moto
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName="lt-stack", TemplateBody=text, Parameters=estate(session, text)
    )
    assert (
        cloudformation.describe_stacks(StackName="lt-stack")["Stacks"][0]["StackStatus"]
        == "CREATE_COMPLETE"
    )
    template = parsed(text)
    groups = [g for g, r in template["Resources"].items() if r["Type"] == cfn.AUTO_SCALING_GROUP]
    done = cfn.rewrite(template, groups)
    assert set(done.modified) == expected
    cloudformation.create_change_set(
        StackName="lt-stack",
        ChangeSetName="c7n-imds-imdsv2-1",
        ChangeSetType="UPDATE",
        TemplateBody=cfn.dump_template(done.template, fmt),
        Parameters=[
            {"ParameterKey": k, "UsePreviousValue": True} for k in template.get("Parameters", {})
        ],
    )
    change_set = cloudformation.describe_change_set(
        StackName="lt-stack", ChangeSetName="c7n-imds-imdsv2-1"
    )
    assert (change_set["Status"], change_set["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    assert {
        (
            c["ResourceChange"]["Action"],
            c["ResourceChange"]["LogicalResourceId"],
            c["ResourceChange"]["ResourceType"],
        )
        for c in change_set["Changes"]
    } == {("Modify", t, cfn.LAUNCH_TEMPLATE) for t in expected}
    # not executed: the stack keeps its template
    body = cloudformation.get_template(StackName="lt-stack")["TemplateBody"]
    assert parsed(json.dumps(body) if isinstance(body, dict) else body) == template


# -- templates as people write them (tests/data/cfn/real/, written for c7n-imds in the
# shapes of AWS's samples, Quick Starts, the ECS reference architectures and widdix) ---

REAL = Path(__file__).parent / "data" / "cfn" / "real"
REAL_TEMPLATES = sorted(p.name for p in REAL.iterdir())
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/eks-nodes"
# what each fixture must become: groups moved, configurations removed, hop limit
EXPECTED_REAL = {
    "bastion.yaml": (
        {"BastionAutoScalingGroup"},
        {"BastionLaunchConfiguration", "BastionSpotLaunchConfiguration"},
        False,
    ),
    "ecs-cluster.yaml": ({"ECSAutoScalingGroup"}, {"ECSLaunchConfiguration"}, True),
    "eks-nodegroup.yaml": ({"NodeGroup"}, {"NodeLaunchConfig"}, True),
    "multi-az-notifications.json": ({"WebServerGroup"}, {"LaunchConfig"}, False),
    "widdix-ec2-asg.yaml": ({"AutoScalingGroup"}, {"LaunchConfiguration"}, False),
}


def real_estate(session, name):
    """Parameters for what a fixture needs from outside its stack."""
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
    return {
        "eks-nodegroup.yaml": {
            "NodeInstanceProfile": PROFILE_ARN,
            "EKSClusterName": "prod",
            "Subnets": subnet,
            "NodeSecurityGroupId": group,
        },
        "ecs-cluster.yaml": {"VPC": vpc, "Subnets": subnet, "SecurityGroup": group},
        "widdix-ec2-asg.yaml": {"VpcId": vpc, "SubnetIds": subnet},
    }.get(name, {})


def big(template):
    """The template with enough notification topics that even compact JSON exceeds
    TemplateBody's 51,200 bytes (as large fleets with per-team topics do; a type moto's
    CloudFormation provisions)."""
    template = copy.deepcopy(template)
    for n in range(120):
        template["Resources"]["EventsTopic%03d" % n] = {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "DisplayName": "fleet events %d" % n,
                "Tags": [
                    {
                        "Key": "runbook-%d" % k,
                        "Value": "https://wiki.example.com/runbooks/fleet/disk-%d-%d" % (n, k),
                    }
                    for k in range(5)
                ],
            },
        }
    return template


def propose_on_moto(session, name, original, stack, bucket=None):
    """Create the stack from ``original`` on moto, rewrite it as the action does (the
    stack's parameter values, hop-limit auto from user data), lint the result and make
    a change set of it; returns (rewrite, change set, text sent)."""
    from c7n_imds.owners.cloudformation import at_least_two, parameter_values
    from c7n_imds.owners.stacks import TEMPLATE_KEY, put_template, template_body

    cloudformation = session.client("cloudformation")
    text = original if isinstance(original, str) else json.dumps(original)
    values = real_estate(session, name)
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=text,
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
    )
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    template, fmt = cfn.parse_template(text)
    groups = [g for g, r in template["Resources"].items() if r["Type"] == cfn.AUTO_SCALING_GROUP]
    containers = any(cfn.runs_containers_in(template, g) for g in groups)
    done = cfn.rewrite(
        template,
        groups,
        parameters=parameter_values(described),
        metadata_options={"HttpPutResponseHopLimit": at_least_two if containers else cfn.PRESERVE},
    )
    body, via_bucket = template_body(done.template, fmt, stack, bucket)
    assert e_level(body) == []
    source = {"TemplateBody": body}
    if via_bucket:
        s3 = session.client("s3")
        s3.create_bucket(Bucket=bucket)
        source = {"TemplateURL": put_template(s3, bucket, TEMPLATE_KEY % (stack, "c"), body)}
    cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName="c7n-imds-imdsv2-1",
        ChangeSetType="UPDATE",
        Parameters=[
            {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
            for p in described.get("Parameters") or ()
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
        **source,
    )
    change_set = cloudformation.describe_change_set(
        StackName=stack, ChangeSetName="c7n-imds-imdsv2-1"
    )
    return done, change_set, body, via_bucket


@pytest.mark.parametrize("name", REAL_TEMPLATES)
def test_real_shaped_templates_pass_cfn_lint_as_written(name):
    assert e_level((REAL / name).read_text()) == []


def test_real_shaped_templates_get_change_sets_that_remove_their_configurations(moto):
    """The measured share: of the real-shaped fixtures (every group movable), how many
    get a change set on moto whose template passes cfn-lint and that removes every
    launch configuration - with the Metadata moved, the groups on their templates, the
    instance profile of the EKS nodes an ARN as the stack's parameter value says, and
    hop limit 2 where user data or cfn-init sets up ECS or EKS."""
    _, session = moto
    made = []
    for n, name in enumerate(REAL_TEMPLATES):
        done, change_set, body, _ = propose_on_moto(
            session, name, (REAL / name).read_text(), "real-%d" % n
        )
        groups, configurations, containers = EXPECTED_REAL[name]
        changes = {
            (c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
            for c in change_set["Changes"]
        }
        assert change_set["Status"] == "CREATE_COMPLETE", (name, change_set)
        assert set(done.fixed) == groups and set(done.removed) == configurations
        assert {("Remove", lc) for lc in configurations} <= changes, (name, changes)
        assert {("Modify", g) for g in groups} <= changes
        new = json.loads(body) if body.lstrip().startswith("{") else cfn.parse_template(body)[0]
        assert not [r for r in new["Resources"].values() if r["Type"] == cfn.LAUNCH_CONFIGURATION]
        hop_limits = {
            json.dumps(r["Properties"]["LaunchTemplateData"]["MetadataOptions"])
            for r in new["Resources"].values()
            if r["Type"] == cfn.LAUNCH_TEMPLATE
        }
        assert all(('"HttpPutResponseHopLimit": 2' in h) is containers for h in hop_limits)
        made.append(name)
        if name == "eks-nodegroup.yaml":
            assert new["Resources"]["NodeLaunchConfigImdsv2Template"]["Properties"][
                "LaunchTemplateData"
            ]["IamInstanceProfile"] == {"Arn": {"Ref": "NodeInstanceProfile"}}
    print(
        "real-shaped templates with a change set removing their configurations: "
        "%d of %d" % (len(made), len(REAL_TEMPLATES))
    )
    assert made == REAL_TEMPLATES


def test_a_template_too_big_for_template_body_goes_through_the_bucket(moto):
    """Over 51,200 bytes even as compact JSON: TemplateURL through the policy's bucket;
    moto reads the object as CloudFormation does."""
    from c7n_imds.owners.stacks import StackRefused, template_body

    _, session = moto
    original = big(cfn.parse_template((REAL / "widdix-ec2-asg.yaml").read_text())[0])
    done = cfn.rewrite(original)
    with pytest.raises(StackRefused, match="template-bucket option"):
        template_body(done.template, "yaml", "big")
    done, change_set, body, via_bucket = propose_on_moto(
        session, "widdix-ec2-asg.yaml", original, "big", bucket="cfn-templates"
    )
    assert via_bucket and len(body.encode()) > 51200 and change_set["Status"] == "CREATE_COMPLETE"
    assert ("Remove", "LaunchConfiguration") in {
        (c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
        for c in change_set["Changes"]
    }


def test_compact_json_when_the_stacks_format_does_not_fit():
    from c7n_imds.owners.stacks import TEMPLATE_BODY_MAX, template_body

    template = cfn.parse_template((REAL / "widdix-ec2-asg.yaml").read_text())[0]
    for n in range(105):  # long-form YAML grows past the limit, compact JSON does not
        template["Resources"]["Topic%03d" % n] = {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": {"Fn::Sub": "${AWS::StackName}-e%d" % n},
                "Tags": [{"Key": "k%d" % k, "Value": {"Ref": "AWS::StackName"}} for k in range(6)],
            },
        }
    done = cfn.rewrite(template)
    assert len(cfn.dump_template(done.template, "yaml").encode()) > TEMPLATE_BODY_MAX
    body, via_bucket = template_body(done.template, "yaml", "s")
    assert not via_bucket and body.startswith("{") and len(body.encode()) <= TEMPLATE_BODY_MAX


def test_an_eks_profile_parameter_without_a_known_value_is_refused():
    template = cfn.parse_template((REAL / "eks-nodegroup.yaml").read_text())[0]
    for values in ({"NodeInstanceProfile": "****"}, None):
        with pytest.raises(ValueError, match="NodeInstanceProfile"):
            cfn.rewrite(template, parameters=values)
