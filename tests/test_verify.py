"""c7n_imds.model.verify: the read-back comparison and its accepted normalisations.

Each normalisation of NORMALISATIONS has a test that it is accepted, and a test that
the difference it must not hide is still found."""

from pathlib import Path

import botocore.session
import pytest

from c7n_imds.model.redaction import user_data_fingerprint
from c7n_imds.model.verify import (
    BLOCK_DEVICE_FIELDS,
    EBS_FIELDS,
    NORMALISATIONS,
    CannotCarry,
    block_device_mappings_request,
    differences,
    expected_configuration_copy,
    expected_version_data,
    stored_configuration,
    summary,
    warning_messages,
)

REPO = Path(__file__).resolve().parent.parent
USER_DATA = "IyEvYmluL2Jhc2gKZWNobyBzZWNyZXQ9aHVudGVyMgo="  # contains a "secret"
ROOT = {
    "DeviceName": "/dev/xvda",
    "Ebs": {
        "SnapshotId": "snap-0fedcba9876543210",
        "VolumeSize": 50,
        "VolumeType": "gp3",
        "DeleteOnTermination": True,
        "Encrypted": True,
    },
}
DATA = {
    "ImageId": "ami-0abcdef1234567890",
    "InstanceType": "m5.large",
    "UserData": USER_DATA,
    "SecurityGroupIds": ["sg-0000000000000000a", "sg-0000000000000000b"],
    "BlockDeviceMappings": [ROOT, {"DeviceName": "/dev/sdb", "NoDevice": ""}],
    "Monitoring": {"Enabled": False},
    "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.05"}},
    "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
}


def stored(**changes):
    data = {k: v for k, v in DATA.items()}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_identical_data_has_no_difference():
    assert differences(DATA, stored()) == []


def test_every_normalisation_is_documented():
    text = (REPO / "docs" / "readback.md").read_text()
    for where, _, _ in NORMALISATIONS:
        assert where in text, where


@pytest.mark.parametrize(
    "changes",
    [
        # absent, empty list, empty string: all unset
        {"KernelId": "", "SecurityGroups": [], "TagSpecifications": []},
        # white space around ids and names
        {"ImageId": "ami-0abcdef1234567890 "},
        {
            "BlockDeviceMappings": [
                dict(ROOT, Ebs=dict(ROOT["Ebs"], SnapshotId="snap-0fedcba9876543210 ")),
                {"DeviceName": "/dev/sdb", "NoDevice": ""},
            ]
        },
        # security groups as a set
        {"SecurityGroupIds": ["sg-0000000000000000b", "sg-0000000000000000a"]},
        # block devices by name, not position
        {"BlockDeviceMappings": [{"DeviceName": "/dev/sdb", "NoDevice": ""}, ROOT]},
        # the response-only State, and documented defaults AWS may echo
        {
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 2,
                "State": "applied",
                "HttpEndpoint": "enabled",
                "HttpProtocolIpv6": "disabled",
                "InstanceMetadataTags": "disabled",
            }
        },
        # monitoring off is a template's default
        {"Monitoring": None},
        # a price with more decimals
        {"InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.050000"}}},
    ],
    ids=[
        "unset",
        "id-space",
        "snapshot-space",
        "group-order",
        "device-order",
        "metadata-echo",
        "monitoring-off",
        "price-decimals",
    ],
)
def test_accepted_normalisations(changes):
    assert differences(DATA, stored(**changes)) == []


@pytest.mark.parametrize(
    "changes, field",
    [
        # the snapshot rule: a new version without the mappings loses the SnapshotId
        (
            {
                "BlockDeviceMappings": [
                    dict(ROOT, Ebs={k: v for k, v in ROOT["Ebs"].items() if k != "SnapshotId"}),
                    {"DeviceName": "/dev/sdb", "NoDevice": ""},
                ]
            },
            "BlockDeviceMappings[/dev/xvda].Ebs.SnapshotId",
        ),
        ({"BlockDeviceMappings": [ROOT]}, "BlockDeviceMappings[/dev/sdb]"),
        ({"InstanceType": "m5.xlarge"}, "InstanceType"),
        ({"SecurityGroupIds": ["sg-0000000000000000a"]}, "SecurityGroupIds"),
        # echoed defaults are accepted only for keys without an AMI-dependent default
        (
            {"MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}},
            "MetadataOptions.HttpPutResponseHopLimit",
        ),
        ({"MetadataOptions": {"HttpPutResponseHopLimit": 2}}, "MetadataOptions.HttpTokens"),
        # an echoed value that is not the default is a difference
        (
            {
                "MetadataOptions": {
                    "HttpTokens": "required",
                    "HttpPutResponseHopLimit": 2,
                    "HttpEndpoint": "disabled",
                }
            },
            "MetadataOptions.HttpEndpoint",
        ),
        ({"Monitoring": {"Enabled": True}}, "Monitoring.Enabled"),
        (
            {"InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.06"}}},
            "InstanceMarketOptions.SpotOptions.MaxPrice",
        ),
        ({"KeyName": "ops"}, "KeyName"),
    ],
)
def test_real_differences_are_found(changes, field):
    found = differences(DATA, stored(**changes))
    assert [d["Field"] for d in found] == [field]


def test_user_data_difference_shows_only_its_fingerprint():
    found = differences(DATA, stored(UserData="IyEvYmluL2Jhc2gK"))
    assert found == [
        {
            "Field": "UserData",
            "Expected": user_data_fingerprint(USER_DATA),
            "Stored": user_data_fingerprint("IyEvYmluL2Jhc2gK"),
        }
    ]
    line = summary(found)
    assert "hunter2" not in line and USER_DATA not in line and "user data of" in line


def test_summary_names_each_field_and_counts_the_rest():
    found = [{"Field": "F%d" % i, "Expected": i, "Stored": None} for i in range(8)]
    line = summary(found, limit=3)
    assert line.startswith("F0: expected 0, stored unset; F1")
    assert line.endswith("and 5 more")


def test_expected_version_data_replaces_options_whole():
    source = dict(DATA, MetadataOptions={"HttpTokens": "optional", "HttpEndpoint": "enabled"})
    expected = expected_version_data(source, {"HttpTokens": "required"})
    assert expected["MetadataOptions"] == {"HttpTokens": "required"}
    assert expected["BlockDeviceMappings"] == DATA["BlockDeviceMappings"]
    assert source["MetadataOptions"]["HttpTokens"] == "optional"  # not mutated


def test_block_device_mappings_request_keeps_snapshots_and_strips_ids():
    mappings = [
        dict(ROOT, Ebs=dict(ROOT["Ebs"], SnapshotId="snap-0fedcba9876543210 ", KmsKeyId=None)),
        {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
    ]
    assert block_device_mappings_request(mappings, "t") == [
        ROOT,
        {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
    ]


def test_block_device_mappings_request_refuses_an_unknown_member():
    with pytest.raises(CannotCarry) as raised:
        block_device_mappings_request(
            [dict(ROOT, Ebs=dict(ROOT["Ebs"], FutureKnob=1))], "launch template lt-1 version 3"
        )
    assert "Ebs.FutureKnob" in str(raised.value) and "lt-1 version 3" in str(raised.value)


def test_block_device_fields_match_botocore():
    """The request members this code carries are exactly botocore's: a member AWS adds
    would otherwise be dropped from every new version (and CannotCarry says so)."""
    ec2 = botocore.session.get_session().get_service_model("ec2")
    assert set(BLOCK_DEVICE_FIELDS) == set(
        ec2.shape_for("LaunchTemplateBlockDeviceMappingRequest").members
    )
    assert set(EBS_FIELDS) == set(ec2.shape_for("LaunchTemplateEbsBlockDeviceRequest").members)
    # and the describe shape holds nothing the request cannot take
    assert set(ec2.shape_for("LaunchTemplateEbsBlockDevice").members) <= set(EBS_FIELDS)


def test_warning_messages():
    assert warning_messages({"LaunchTemplate": {}}) == []
    assert warning_messages(
        {"Warning": {"Errors": [{"Code": "InvalidParameterValue", "Message": "bad"}]}}
    ) == ["InvalidParameterValue: bad"]


def test_configuration_copy_comparison():
    source = {
        "LaunchConfigurationName": "app-lc",
        "LaunchConfigurationARN": "arn:1",
        "CreatedTime": "2021",
        "ImageId": "ami-1",
        "UserData": USER_DATA,
        "KernelId": "",
        "ClassicLinkVPCId": "vpc-1",
        "MetadataOptions": {"HttpTokens": "optional"},
    }
    copy_ = {
        "LaunchConfigurationName": "app-lc-imdsv2-1",
        "LaunchConfigurationARN": "arn:2",
        "CreatedTime": "2026",
        "ImageId": "ami-1",
        "UserData": USER_DATA,
        "MetadataOptions": {"HttpTokens": "required"},
    }
    dropped = ("ClassicLinkVPCId", "ClassicLinkVPCSecurityGroups")
    expected = expected_configuration_copy(
        source, "app-lc-imdsv2-1", {"HttpTokens": "required"}, dropped
    )
    assert differences(expected, stored_configuration(copy_, dropped)) == []
    copy_["UserData"] = ""
    assert [d["Field"] for d in differences(expected, stored_configuration(copy_, dropped))] == [
        "UserData"
    ]
