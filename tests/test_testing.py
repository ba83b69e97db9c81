"""c7n_imds_testing: the moto launcher behaves as AWS documents where the product
depends on it (docs/moto-gaps.md). If a moto upgrade implements one of these itself,
the matching test still holds; if the launcher broke, end-to-end tests would judge
moto's semantics again - these fail first."""

import pytest
from botocore.exceptions import ClientError

ROOT = {
    "DeviceName": "/dev/xvda",
    "Ebs": {"SnapshotId": "snap-0fedcba9876543210", "VolumeSize": 50, "VolumeType": "gp3"},
}


@pytest.fixture
def ec2(moto):
    return moto[1].client("ec2")


def template(ec2, **data):
    return ec2.create_launch_template(
        LaunchTemplateName="t",
        LaunchTemplateData=dict(
            {
                "ImageId": "ami-12c6146b",
                "InstanceType": "m5.large",
                "UserData": "aGk=",
                "BlockDeviceMappings": [ROOT],
            },
            **data,
        ),
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": "k", "Value": "v"}]}
        ],
    )["LaunchTemplate"]["LaunchTemplateId"]


def stored(ec2, template_id, number):
    return ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[str(number)]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def test_source_version_inherits_all_but_snapshots(ec2):
    tid = template(ec2)
    ec2.create_launch_template_version(
        LaunchTemplateId=tid,
        SourceVersion="1",
        LaunchTemplateData={"MetadataOptions": {"HttpTokens": "required"}},
    )
    data = stored(ec2, tid, 2)
    assert data["InstanceType"] == "m5.large" and data["UserData"] == "aGk="
    assert data["MetadataOptions"] == {"HttpTokens": "required"}
    assert data["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 50, "VolumeType": "gp3"}}
    ]
    # given explicitly, the mappings keep their snapshots
    ec2.create_launch_template_version(
        LaunchTemplateId=tid, SourceVersion="1", LaunchTemplateData={"BlockDeviceMappings": [ROOT]}
    )
    assert stored(ec2, tid, 3)["BlockDeviceMappings"] == [ROOT]
    # without SourceVersion: only what is given
    ec2.create_launch_template_version(
        LaunchTemplateId=tid, LaunchTemplateData={"InstanceType": "t3.small"}
    )
    assert stored(ec2, tid, 4) == {"InstanceType": "t3.small"}


def test_template_tags_stay_off_the_launch_data(ec2):
    tid = template(
        ec2,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "app", "Value": "a"}]}],
    )
    assert stored(ec2, tid, 1)["TagSpecifications"] == [
        {"ResourceType": "instance", "Tags": [{"Key": "app", "Value": "a"}]}
    ]


def test_client_tokens_repeat_the_first_answer(ec2):
    tid = template(ec2)
    answers = [
        ec2.create_launch_template_version(
            LaunchTemplateId=tid,
            SourceVersion="1",
            ClientToken="same",
            LaunchTemplateData={"InstanceType": "t3.small"},
        )["LaunchTemplateVersion"]["VersionNumber"]
        for _ in range(2)
    ]
    assert answers == [2, 2]
    assert (
        len(ec2.describe_launch_template_versions(LaunchTemplateId=tid)["LaunchTemplateVersions"])
        == 2
    )


def test_deleted_versions_keep_numbers_and_defaults_stay(ec2):
    tid = template(ec2)
    for _ in range(2):
        ec2.create_launch_template_version(
            LaunchTemplateId=tid, SourceVersion="1", LaunchTemplateData={}
        )
    answer = ec2.delete_launch_template_versions(LaunchTemplateId=tid, Versions=["2", "1"])
    assert [v["VersionNumber"] for v in answer["SuccessfullyDeletedLaunchTemplateVersions"]] == [2]
    assert answer["UnsuccessfullyDeletedLaunchTemplateVersions"][0]["VersionNumber"] == 1
    ec2.create_launch_template_version(
        LaunchTemplateId=tid, SourceVersion="3", LaunchTemplateData={}
    )
    numbers = [
        v["VersionNumber"]
        for v in ec2.describe_launch_template_versions(LaunchTemplateId=tid)[
            "LaunchTemplateVersions"
        ]
    ]
    assert numbers == [1, 3, 4]
    assert [
        v["VersionNumber"]
        for v in ec2.describe_launch_template_versions(LaunchTemplateId=tid, MinVersion="3")[
            "LaunchTemplateVersions"
        ]
    ] == [3, 4]
    with pytest.raises(ClientError) as raised:
        stored(ec2, tid, 2)
    assert raised.value.response["Error"]["Code"] == "InvalidLaunchTemplateId.VersionNotFound"


def test_listings_page(ec2):
    for n in range(5):
        ec2.create_launch_template(LaunchTemplateName="p%d" % n, LaunchTemplateData={})
    pages = list(
        ec2.get_paginator("describe_launch_templates").paginate(PaginationConfig={"PageSize": 2})
    )
    assert [len(p["LaunchTemplates"]) for p in pages] == [2, 2, 1]


def test_instance_types_from_requirements(ec2):
    types = [
        t["InstanceType"]
        for t in ec2.get_instance_types_from_instance_requirements(
            ArchitectureTypes=["arm64"],
            VirtualizationTypes=["hvm"],
            InstanceRequirements={
                "VCpuCount": {"Min": 2, "Max": 2},
                "MemoryMiB": {"Min": 8192, "Max": 8192},
            },
        )["InstanceTypes"]
    ]
    assert "m6g.large" in types and "m5.large" not in types


def dry_run(ec2, template_id, **params):
    with pytest.raises(ClientError) as raised:
        ec2.run_instances(
            DryRun=True,
            MinCount=1,
            MaxCount=1,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Default"},
            **params,
        )
    return raised.value.response["Error"]["Code"]


def test_dry_run_checks_what_ec2_checks(ec2):
    arm = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["arm64"]}])["Images"][0][
        "ImageId"
    ]
    tid = template(ec2, ImageId=arm)
    assert dry_run(ec2, tid) == "InvalidParameterValue"  # x86 type, arm64 image
    assert dry_run(ec2, tid, InstanceType="m6g.large") == "DryRunOperation"
    attribute = ec2.create_launch_template(
        LaunchTemplateName="abs",
        LaunchTemplateData={
            "ImageId": "ami-12c6146b",
            "InstanceRequirements": {"VCpuCount": {"Min": 2}, "MemoryMiB": {"Min": 4096}},
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    assert dry_run(ec2, attribute) == "InvalidParameterValue"
    assert dry_run(ec2, attribute, InstanceType="m5.large") == "DryRunOperation"


def test_change_sets_belong_to_their_stack(moto):
    """Two stacks with a change set of the same name: each stack lists, describes,
    returns the template of and deletes its own."""
    cloudformation = moto[1].client("cloudformation")

    def body(description):
        return (
            '{"Description": "%s", "Resources": {"Topic": {"Type": '
            '"AWS::SNS::Topic"}}}' % description
        )

    for stack in ("a", "b"):
        cloudformation.create_stack(StackName=stack, TemplateBody=body(stack))
        cloudformation.create_change_set(
            StackName=stack,
            ChangeSetName="same",
            ChangeSetType="UPDATE",
            TemplateBody=body(stack + " changed"),
        )
    for stack in ("a", "b"):
        [summary] = cloudformation.list_change_sets(StackName=stack)["Summaries"]
        assert summary["StackName"] == stack
        assert (
            cloudformation.describe_change_set(StackName=stack, ChangeSetName="same")["StackName"]
            == stack
        )
        assert (
            cloudformation.get_template(StackName=stack, ChangeSetName="same")["TemplateBody"][
                "Description"
            ]
            == stack + " changed"
        )
        assert cloudformation.get_template(StackName=stack)["TemplateBody"]["Description"] == stack
    cloudformation.delete_change_set(StackName="b", ChangeSetName="same")
    assert cloudformation.list_change_sets(StackName="b")["Summaries"] == []
    assert len(cloudformation.list_change_sets(StackName="a")["Summaries"]) == 1
    with pytest.raises(ClientError) as missing:
        cloudformation.describe_change_set(StackName="b", ChangeSetName="same")
    assert missing.value.response["Error"]["Code"] == "ValidationError"
