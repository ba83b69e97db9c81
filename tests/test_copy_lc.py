"""`copy-launch-configuration` (c7n_imds/actions/copy_lc.py) against recorded AWS
responses: an identical copy but for IMDS, read back; refused where configurations
cannot be created.

How placebo flights answer a policy run's calls: tests/support/placebo.py. Expected
values are written out from the documented rules, not computed by the code under test.
"""

import base64
import hashlib

import pytest

from c7n_imds.actions import RemediationError
from tests.support.placebo import (
    asg_policy,
    call_order,
    changes,
    group_tag,
    recording_factory,
)

PREVIOUS = "c7n-imds:previous-launch"
CREATED_TEXT = "2021-03-04T05:06:07Z"  # the flights' LC CreatedTime, 05:06:07.123 UTC


# What legacy-lc's DescribeLaunchConfigurations UserData decodes to (CRLF, UTF-8).
LEGACY_USER_DATA = (
    b"#!/bin/bash\r\nexport GREETING='gr\xc3\xbc\xc3\x9fe'\r\n/opt/legacy/bin/agent --start\r\n"
)


def copy_name(lc_name):
    digest = hashlib.sha256(("%s\0%s" % (lc_name, CREATED_TEXT)).encode()).hexdigest()
    return "%s-imdsv2-%s" % (lc_name, digest[:10])


def copy_policy():
    return asg_policy(
        "asg-lc-copy-imdsv2",
        {"type": "copy-launch-configuration"},
        [{"type": "imds", "key": "LaunchType", "value": "launch-configuration"}],
    )


def test_copy_launch_configuration_copies_every_field(placebo_factory, load_policy, tmp_path):
    """legacy-lc has every field a copy must carry: key, two security groups, user data
    (CRLF and UTF-8), an EBS volume from a snapshot, a suppressed device (NoDevice true)
    and an instance store, detailed monitoring off, spot price, instance profile, EBS
    optimisation, public IP explicitly off, tenancy, and AWS's "" for unset KernelId /
    RamdiskId. The copy's parameters are the original's with HttpTokens required; user
    data goes in as the *decoded* bytes, because botocore base64-encodes
    CreateLaunchConfiguration's UserData itself - checked on the serialized request too.

    DescribeLaunchConfigurations _1 (filter) returns legacy-lc, which the action reuses;
    _2 answers the look for an existing copy, _3 the read-back of the copy just made
    (what AWS stores: the copy's every field, KernelId and RamdiskId as empty strings).
    """
    factory = recording_factory(
        placebo_factory, "test_copy_launch_configuration_copies_every_field"
    )
    wire = []  # serialized request bodies; placebo answers at before-call, so go first

    def serialized(model, params, **kwargs):
        if model.name == "CreateLaunchConfiguration":
            wire.append(dict(params["body"]))

    factory.session.events.register_first("before-call.*.*", serialized)
    load_policy(copy_policy(), session_factory=factory, output_dir=tmp_path).run()

    name = copy_name("legacy-lc")
    assert name.startswith("legacy-lc-imdsv2-")
    assert factory.called("CreateLaunchConfiguration") == [
        {
            "LaunchConfigurationName": name,
            "ImageId": "ami-0123456789abcdef0",
            "KeyName": "ops",
            "InstanceType": "m5.large",
            "SpotPrice": "0.05",
            "IamInstanceProfile": "legacy-profile",
            "PlacementTenancy": "default",
            "EbsOptimized": True,
            "AssociatePublicIpAddress": False,
            "InstanceMonitoring": {"Enabled": False},
            "SecurityGroups": ["sg-0a0a0a0a0a0a0a0a1", "sg-0c0ffee0000000001"],
            "UserData": LEGACY_USER_DATA,
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "SnapshotId": "snap-0123456789abcdef0",
                        "VolumeSize": 30,
                        "VolumeType": "gp3",
                        "DeleteOnTermination": True,
                        "Iops": 3000,
                        "Encrypted": True,
                        "Throughput": 125,
                    },
                },
                {"DeviceName": "/dev/sdb", "NoDevice": True},
                {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
            ],
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 1,
                "HttpEndpoint": "enabled",
            },
        }
    ]
    # What reaches AWS is the original base64 text, byte for byte.
    assert len(wire) == 1
    assert wire[0]["UserData"] == base64.b64encode(LEGACY_USER_DATA).decode()

    # the configuration read by the filter is reused; then one look for the copy, and
    # after the create the read-back of exactly the copy
    assert factory.called("DescribeLaunchConfigurations")[-2:] == [
        {"LaunchConfigurationNames": [name], "MaxRecords": 100},
        {"LaunchConfigurationNames": [name]},
    ]
    assert factory.called("CreateOrUpdateTags") == [group_tag("legacy", PREVIOUS, "lc:legacy-lc")]
    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "legacy", "LaunchConfigurationName": name}
    ]
    assert call_order(
        factory, "CreateLaunchConfiguration", "CreateOrUpdateTags", "UpdateAutoScalingGroup"
    ) == [
        ("CreateLaunchConfiguration", None),
        ("CreateOrUpdateTags", "legacy"),
        ("UpdateAutoScalingGroup", "legacy"),
    ]
    assert changes(tmp_path, "asg-lc-copy-imdsv2")["legacy"] == {
        "AutoScalingGroupName": "legacy",
        "LaunchConfigurationName": "legacy-lc",
        "CopyLaunchConfigurationName": name,
    }


def test_copy_launch_configuration_refused_where_unavailable(
    placebo_factory, load_policy, tmp_path
):
    """An account created after 2024-10-01: CreateLaunchConfiguration fails with
    UnsupportedOperation ("The Launch Configuration creation operation is not available
    in your account"). Both groups (two configurations) fail with a message pointing to
    convert-to-launch-template; the second copy is not even tried, and no group is
    tagged or switched."""
    factory = recording_factory(
        placebo_factory, "test_copy_launch_configuration_refused_where_unavailable"
    )
    policy = load_policy(copy_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    creates = factory.called("CreateLaunchConfiguration")
    assert [c["LaunchConfigurationName"] for c in creates] == [copy_name("app-lc")]
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("CreateOrUpdateTags") == []
    failures = raised.value.failures
    assert set(failures) == {"app-a", "app-b"}
    for group in ("app-a", "app-b"):
        assert "convert-to-launch-template" in failures[group], failures[group]
        assert "UnsupportedOperation" in failures[group], failures[group]
    assert set(changes(tmp_path, "asg-lc-copy-imdsv2")) == {"app-a", "app-b"}
