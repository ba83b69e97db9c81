"""The contract's plan (c7n_imds.model.changes): launch-affecting changes, judged on
views of what an instance gets that share no code with the translation."""

import base64

import pytest

from c7n_imds.model.changes import (
    GroupChange,
    LaunchChange,
    configuration_view,
    data_changes,
    refusal,
    refused,
    replacement_of_instances,
    template_view,
)
from c7n_imds.model.translate import launch_template_data

USER_DATA = base64.b64encode(b"#!/bin/sh\necho secret-canary\n").decode()
CONFIGURATION = {
    "LaunchConfigurationName": "web ",
    "ImageId": "ami-0abc",
    "InstanceType": "m5.large",
    "KeyName": "ops",
    "KernelId": "",
    "RamdiskId": "ari-1",
    "UserData": USER_DATA,
    "SecurityGroups": ["sg-2", "sg-1"],
    "AssociatePublicIpAddress": True,
    "SpotPrice": "0.050",
    "IamInstanceProfile": "web-profile",
    "EbsOptimized": True,
    "PlacementTenancy": "dedicated",
    "BlockDeviceMappings": [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"SnapshotId": "snap-1 ", "VolumeSize": 20, "VolumeType": "gp3"},
        },
        {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
        {"DeviceName": "/dev/sdc", "NoDevice": True},
    ],
    "MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 1},
}


def test_a_faithful_conversion_has_no_launch_change():
    data, _ = launch_template_data(CONFIGURATION, http_tokens="required", hop_limit=2)
    assert data_changes(configuration_view(CONFIGURATION), template_view(data)) == []


@pytest.mark.parametrize(
    "slip, kind",
    [
        (lambda d: d.pop("RamDiskId"), "image"),
        (lambda d: d.update(UserData=base64.b64encode(b"other").decode()), "user-data"),
        (lambda d: d["BlockDeviceMappings"][0]["Ebs"].pop("SnapshotId"), "storage"),
        (lambda d: d.pop("Monitoring", None) or d.update(Monitoring={"Enabled": False}), "other"),
        (lambda d: d["NetworkInterfaces"][0].update(Groups=["sg-1"]), "network"),
        (
            lambda d: d.update(IamInstanceProfile={"Arn": "arn:aws:iam::1:instance-profile/x"}),
            "instance-profile",
        ),
    ],
)
def test_a_translation_slip_is_a_launch_change(slip, kind):
    data, _ = launch_template_data(CONFIGURATION, http_tokens="required", hop_limit=2)
    slip(data)
    changes = data_changes(configuration_view(CONFIGURATION), template_view(data))
    assert [c.kind for c in changes] == [kind]


def test_refused_unless_opted_in_and_user_data_never_shown():
    changes = [
        LaunchChange("image", "ImageId", "ami-1", "ami-2"),
        LaunchChange("user-data", "UserData", USER_DATA, None),
    ]
    assert refused(changes, ["image"]) == changes[1:]
    assert refused(changes, ["image", "user-data"]) == []
    text = refusal("the change to group web", refused(changes, []))
    assert "image: ImageId ami-1 -> ami-2" in text
    assert "add image, user-data to the action's allow-launch-changes" in text
    assert USER_DATA not in text and "secret-canary" not in text
    record = GroupChange(
        "web", "a", "b", {"HttpTokens": "optional"}, {"HttpTokens": "required"}, changes
    ).record()
    assert record["MetadataOptions"] == "HttpTokens optional -> required"
    assert USER_DATA not in str(record)


def test_an_instance_refresh_without_healthy_instances_replaces_all_at_once():
    assert replacement_of_instances("refresh", {"MinHealthyPercentage": 0})[1]
    assert not replacement_of_instances(
        "refresh", {"MinHealthyPercentage": 0, "MaxHealthyPercentage": 200}
    )[1]
    assert not replacement_of_instances("refresh", {})[1]
    assert not replacement_of_instances("keep")[1]
