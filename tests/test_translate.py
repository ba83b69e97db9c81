"""c7n_imds.model.translate: every row of the docs/mapping.md mapping table, and
generated launch configurations whose output is
checked against botocore's own service model with botocore's own parameter validator.

The expected values below are written out by hand from the mapping table and AWS's
documentation, not derived from the code under test.
"""

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c7n_imds.model.provenance import (
    client_token,
    decode_previous_launch,
    encode_previous_launch,
    template_name,
)
from c7n_imds.model.redaction import redact
from c7n_imds.model.translate import (
    TranslationError,
    launch_template_data,
    merge_metadata_options,
    security_group_names,
)
from c7n_imds.names import PRESERVE

# What AWS accepts for a launch template name (CreateLaunchTemplate docs). botocore's ec2
# model carries no constraint on the name, so the validator alone would not catch a bad one.
TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
SESSION = botocore.session.get_session()
EC2 = SESSION.get_service_model("ec2")
AUTOSCALING = SESSION.get_service_model("autoscaling")
CREATE_LAUNCH_TEMPLATE = EC2.operation_model("CreateLaunchTemplate").input_shape
LAUNCH_CONFIGURATION_SHAPE = (
    AUTOSCALING.operation_model("DescribeLaunchConfigurations")
    .output_shape.members["LaunchConfigurations"]
    .member
)


# Fields a template's data may hold (the request shape, not a describe output shape).
TEMPLATE_DATA_FIELDS = set(CREATE_LAUNCH_TEMPLATE.members["LaunchTemplateData"].members)
CREATED = datetime(2021, 3, 4, 5, 6, 7, 123000, tzinfo=timezone.utc)
USER_DATA_TEXT = (
    "#!/bin/bash\n"
    "# Grüße aus Köln — デプロイ スクリプト\n"
    "export API_TOKEN=canary-9c1d-do-not-print\n"
    "echo 'naïve café' > /etc/motd\n"
)


USER_DATA_RAW = USER_DATA_TEXT.encode("utf-8")
USER_DATA = base64.b64encode(USER_DATA_RAW).decode("ascii")
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/app/web-profile"


def describe_item(**fields):
    """A DescribeLaunchConfigurations item as AWS returns it for a plain LC: AWS reports
    unset strings as "" and unset lists as [] (KeyName, KernelId, RamdiskId, UserData,
    ClassicLinkVPCSecurityGroups, BlockDeviceMappings)."""
    item = {
        "LaunchConfigurationName": "web-lc",
        "LaunchConfigurationARN": (
            "arn:aws:autoscaling:us-east-1:123456789012:launchConfiguration:"
            "6a2a1a36-0c1f-4e5e-9b0e-1d5b1e7c9a10:launchConfigurationName/web-lc"
        ),
        "ImageId": "ami-0abcdef1234567890",
        "KeyName": "",
        "SecurityGroups": [],
        "ClassicLinkVPCSecurityGroups": [],
        "UserData": "",
        "InstanceType": "t3.micro",
        "KernelId": "",
        "RamdiskId": "",
        "BlockDeviceMappings": [],
        "InstanceMonitoring": {"Enabled": True},
        "CreatedTime": CREATED,
        "EbsOptimized": False,
    }
    item.update(fields)
    return item


def translate(lc, *args, **kwargs):
    data, notes = launch_template_data(lc, *args, **kwargs)
    return data


def assert_valid_template_request(lc, data):
    params = {"LaunchTemplateName": template_name(lc), "LaunchTemplateData": data}
    report = ParamValidator().validate(params, CREATE_LAUNCH_TEMPLATE)
    assert not report.has_errors(), report.generate_report()
    assert TEMPLATE_NAME.match(params["LaunchTemplateName"]), params["LaunchTemplateName"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("ImageId", "ami-0123456789abcdef0"),
        ("InstanceType", "m5.large"),
        ("KeyName", "ops-key"),
        ("KernelId", "aki-88aa75e1"),
    ],
)
def test_same_name_fields_are_copied(field, value):
    data = translate(describe_item(**{field: value}))
    assert data[field] == value


@pytest.mark.parametrize("field", ["ImageId", "InstanceType", "KeyName", "KernelId"])
def test_same_name_field_empty_string_means_unset(field):
    data = translate(describe_item(**{field: ""}))
    assert field not in data


@pytest.mark.parametrize("value", [True, False])
def test_ebs_optimized_is_copied_true_and_false(value):
    data = translate(describe_item(EbsOptimized=value))
    assert data["EbsOptimized"] is value


def test_ebs_optimized_absent_stays_absent():
    lc = describe_item()
    del lc["EbsOptimized"]
    assert "EbsOptimized" not in translate(lc)


def test_ramdisk_id_is_renamed():
    data = translate(describe_item(RamdiskId="ari-a51cf9cc"))
    assert data["RamDiskId"] == "ari-a51cf9cc"
    assert "RamdiskId" not in data


def test_ramdisk_id_empty_string_means_unset():
    data = translate(describe_item(RamdiskId=""))
    assert "RamDiskId" not in data and "RamdiskId" not in data


def test_user_data_is_byte_identical():
    data = translate(describe_item(UserData=USER_DATA))
    assert data["UserData"] == USER_DATA
    assert base64.b64decode(data["UserData"]) == USER_DATA_RAW


def test_user_data_empty_string_means_unset():
    assert "UserData" not in translate(describe_item(UserData=""))


def test_security_group_ids_become_security_group_ids_in_order():
    groups = ["sg-0123abcd", "sg-0fedcba987654321f", "sg-01"]
    data = translate(describe_item(SecurityGroups=groups))
    assert data["SecurityGroupIds"] == groups
    assert "SecurityGroups" not in data
    assert "NetworkInterfaces" not in data


def test_security_group_names_are_recognised():
    lc = describe_item(SecurityGroups=["web", "sg-0123abcd", "default", "sg-legacy"])
    assert security_group_names(lc) == ["web", "default", "sg-legacy"]
    assert security_group_names(describe_item()) == []


def test_security_group_names_use_the_resolved_ids():
    lc = describe_item(SecurityGroups=["web", "sg-0123abcd"])
    data = translate(lc, ["sg-0aaa1111bbbb2222c", "sg-0123abcd"])
    assert data["SecurityGroupIds"] == ["sg-0aaa1111bbbb2222c", "sg-0123abcd"]
    assert "web" not in json.dumps(data)


def test_security_group_names_without_ids_are_refused():
    lc = describe_item(
        LaunchConfigurationName="named-groups-lc", SecurityGroups=["web", "sg-0123abcd"]
    )
    with pytest.raises(TranslationError) as raised:
        launch_template_data(lc)
    assert "web" in str(raised.value)
    assert "named-groups-lc" in str(raised.value)


@pytest.mark.parametrize("public", [True, False])
def test_public_ip_setting_moves_groups_to_the_primary_interface(public):
    data = translate(
        describe_item(
            AssociatePublicIpAddress=public, SecurityGroups=["sg-0456cdef", "sg-0123abcd"]
        )
    )
    assert data["NetworkInterfaces"] == [
        {
            "DeviceIndex": 0,
            "AssociatePublicIpAddress": public,
            "Groups": ["sg-0456cdef", "sg-0123abcd"],
            "DeleteOnTermination": True,
        }
    ]
    # A template with interfaces must not also carry top-level groups (EC2 refuses
    # the launch: "Network interfaces and an instance-level security groups may not be
    # specified on the same request").
    assert "SecurityGroupIds" not in data


def test_public_ip_setting_with_resolved_names():
    data = translate(
        describe_item(AssociatePublicIpAddress=True, SecurityGroups=["web"]),
        ["sg-0aaa1111bbbb2222c"],
    )
    assert data["NetworkInterfaces"][0]["Groups"] == ["sg-0aaa1111bbbb2222c"]
    assert "SecurityGroupIds" not in data


def test_public_ip_setting_without_groups():
    data = translate(describe_item(AssociatePublicIpAddress=False))
    (interface,) = data["NetworkInterfaces"]
    assert interface["DeviceIndex"] == 0
    assert interface["AssociatePublicIpAddress"] is False
    assert interface["DeleteOnTermination"] is True
    assert interface.get("Groups", []) == []
    assert "SecurityGroupIds" not in data


def test_no_public_ip_setting_means_no_interfaces():
    assert "NetworkInterfaces" not in translate(describe_item(SecurityGroups=["sg-0123abcd"]))


@pytest.mark.parametrize(
    "monitoring, enabled",
    [
        (None, True),  # absent: an LC enables detailed monitoring
        ({}, True),
        ({"Enabled": True}, True),
        ({"Enabled": False}, False),
    ],
)
def test_monitoring(monitoring, enabled):
    lc = describe_item()
    del lc["InstanceMonitoring"]
    if monitoring is not None:
        lc["InstanceMonitoring"] = monitoring
    assert translate(lc)["Monitoring"] == {"Enabled": enabled}


def test_spot_price_becomes_market_options():
    data = translate(describe_item(SpotPrice="0.0416"))
    assert data["InstanceMarketOptions"] == {
        "MarketType": "spot",
        "SpotOptions": {"MaxPrice": "0.0416"},
    }


def test_no_spot_price_means_on_demand():
    assert "InstanceMarketOptions" not in translate(describe_item())


def test_instance_profile_by_name():
    data = translate(describe_item(IamInstanceProfile="web-profile"))
    assert data["IamInstanceProfile"] == {"Name": "web-profile"}


def test_instance_profile_by_arn():
    data = translate(describe_item(IamInstanceProfile=PROFILE_ARN))
    assert data["IamInstanceProfile"] == {"Arn": PROFILE_ARN}


def test_placement_tenancy():
    data = translate(describe_item(PlacementTenancy="dedicated"))
    assert data["Placement"] == {"Tenancy": "dedicated"}
    assert "Placement" not in translate(describe_item())


def test_block_device_mappings():
    lc = describe_item(
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "SnapshotId": "snap-0123456789abcdef0",
                    "VolumeSize": 30,
                    "VolumeType": "gp3",
                    "DeleteOnTermination": True,
                    "Iops": 3000,
                    "Encrypted": True,
                    "Throughput": 250,
                },
            },
            {"DeviceName": "/dev/sdb", "NoDevice": True},
            {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
            {
                "DeviceName": "/dev/sdd",
                "Ebs": {"VolumeSize": 8, "VolumeType": "standard", "DeleteOnTermination": False},
            },
        ]
    )
    data = translate(lc)
    assert data["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "SnapshotId": "snap-0123456789abcdef0",
                "VolumeSize": 30,
                "VolumeType": "gp3",
                "DeleteOnTermination": True,
                "Iops": 3000,
                "Encrypted": True,
                "Throughput": 250,
            },
        },
        {"DeviceName": "/dev/sdb", "NoDevice": ""},
        {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
        {
            "DeviceName": "/dev/sdd",
            "Ebs": {"VolumeSize": 8, "VolumeType": "standard", "DeleteOnTermination": False},
        },
    ]
    # An LC says NoDevice with a boolean, a template with a string.
    assert isinstance(data["BlockDeviceMappings"][1]["NoDevice"], str)
    assert_valid_template_request(lc, data)


def test_block_device_no_device_false_keeps_the_volume():
    lc = describe_item(
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sdf", "NoDevice": False, "Ebs": {"VolumeSize": 100}}
        ]
    )
    assert translate(lc)["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100}}
    ]


def test_metadata_options_require_tokens_and_keep_the_rest():
    lc = describe_item(
        MetadataOptions={
            "HttpTokens": "optional",
            "HttpPutResponseHopLimit": 3,
            "HttpEndpoint": "enabled",
        }
    )
    assert translate(lc)["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 3,
        "HttpEndpoint": "enabled",
    }


def test_metadata_options_absent_only_require_tokens():
    # Unset hop limit / endpoint stay unset: the account default or the AMI decides.
    assert translate(describe_item())["MetadataOptions"] == {"HttpTokens": "required"}


@pytest.mark.parametrize("hop_limit, expected", [(2, 2), ("2", 2), (64, 64)])
def test_metadata_options_explicit_hop_limit(hop_limit, expected):
    lc = describe_item(MetadataOptions={"HttpTokens": "optional", "HttpPutResponseHopLimit": 1})
    options = translate(lc, hop_limit=hop_limit)["MetadataOptions"]
    assert options["HttpPutResponseHopLimit"] == expected
    assert isinstance(options["HttpPutResponseHopLimit"], int)
    assert options["HttpTokens"] == "required"


def test_metadata_options_preserve_hop_limit():
    lc = describe_item(MetadataOptions={"HttpPutResponseHopLimit": 1})
    assert translate(lc, hop_limit=PRESERVE)["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


def test_metadata_options_http_endpoint_preserve_and_explicit():
    lc = describe_item(MetadataOptions={"HttpTokens": "optional", "HttpEndpoint": "disabled"})
    assert translate(lc)["MetadataOptions"]["HttpEndpoint"] == "disabled"
    assert translate(lc, http_endpoint="enabled")["MetadataOptions"]["HttpEndpoint"] == "enabled"
    assert "HttpEndpoint" not in translate(describe_item())["MetadataOptions"]
    assert translate(describe_item(), http_endpoint="enabled")["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpEndpoint": "enabled",
    }


def test_classic_link_is_dropped_with_a_note():
    lc = describe_item(
        ClassicLinkVPCId="vpc-0a1b2c3d", ClassicLinkVPCSecurityGroups=["sg-0123abcd"]
    )
    data, notes = launch_template_data(lc)
    assert not any("ClassicLink" in key for key in data)
    assert "vpc-0a1b2c3d" not in json.dumps(data)
    assert len(notes) == 1
    assert "ClassicLinkVPCId" in notes[0] and "ClassicLinkVPCSecurityGroups" in notes[0]


def test_empty_classic_link_fields_need_no_note():
    # AWS reports ClassicLinkVPCSecurityGroups: [] for every LC.
    assert launch_template_data(describe_item())[1] == []


def test_unknown_field_is_refused_by_name():
    lc = describe_item(LaunchConfigurationName="future-lc", CapacityReservationTarget={})
    with pytest.raises(TranslationError) as raised:
        launch_template_data(lc)
    assert "CapacityReservationTarget" in str(raised.value)
    assert "future-lc" in str(raised.value)


def test_describe_only_fields_are_not_carried():
    data = translate(describe_item())
    for field in ("LaunchConfigurationName", "LaunchConfigurationARN", "CreatedTime"):
        assert field not in data
    assert set(data) <= TEMPLATE_DATA_FIELDS


def test_full_launch_configuration():
    lc = describe_item(
        KeyName="ops-key",
        SecurityGroups=["sg-0123abcd"],
        UserData=USER_DATA,
        KernelId="aki-88aa75e1",
        RamdiskId="ari-a51cf9cc",
        SpotPrice="0.05",
        IamInstanceProfile="web-profile",
        EbsOptimized=True,
        PlacementTenancy="default",
        InstanceMonitoring={"Enabled": False},
        BlockDeviceMappings=[{"DeviceName": "/dev/sdb", "NoDevice": True}],
        MetadataOptions={
            "HttpTokens": "optional",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
    )
    data, notes = launch_template_data(lc)
    assert data == {
        "ImageId": "ami-0abcdef1234567890",
        "InstanceType": "t3.micro",
        "KeyName": "ops-key",
        "KernelId": "aki-88aa75e1",
        "UserData": USER_DATA,
        "RamDiskId": "ari-a51cf9cc",
        "EbsOptimized": True,
        "Monitoring": {"Enabled": False},
        "IamInstanceProfile": {"Name": "web-profile"},
        "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.05"}},
        "Placement": {"Tenancy": "default"},
        "BlockDeviceMappings": [{"DeviceName": "/dev/sdb", "NoDevice": ""}],
        "SecurityGroupIds": ["sg-0123abcd"],
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
    }
    assert notes == []
    assert_valid_template_request(lc, data)


def test_translation_does_not_modify_its_input():
    lc = describe_item(
        SecurityGroups=["sg-0123abcd"],
        AssociatePublicIpAddress=True,
        MetadataOptions={"HttpTokens": "optional"},
        BlockDeviceMappings=[{"DeviceName": "/dev/sdb", "NoDevice": True}],
    )
    before = json.dumps(lc, default=str, sort_keys=True)
    translate(lc)
    assert json.dumps(lc, default=str, sort_keys=True) == before


def test_merge_metadata_options_defaults():
    assert merge_metadata_options(None) == {"HttpTokens": "required"}
    assert merge_metadata_options({}) == {"HttpTokens": "required"}


def test_merge_metadata_options_preserve_everything():
    existing = {
        "HttpTokens": "optional",
        "HttpPutResponseHopLimit": 1,
        "HttpEndpoint": "enabled",
        "InstanceMetadataTags": "enabled",
        "HttpProtocolIpv6": "disabled",
    }
    assert merge_metadata_options(existing, http_tokens=PRESERVE) == existing


def test_merge_metadata_options_overrides():
    existing = {"HttpTokens": "optional", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "disabled"}
    merged = merge_metadata_options(
        existing, hop_limit="2", http_endpoint="enabled", instance_metadata_tags="disabled"
    )
    assert merged == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
        "InstanceMetadataTags": "disabled",
    }
    assert existing == {
        "HttpTokens": "optional",
        "HttpPutResponseHopLimit": 1,
        "HttpEndpoint": "disabled",
    }


def test_merge_metadata_options_drops_describe_only_keys():
    # DescribeLaunchTemplateVersions reports State; a request may not carry it.
    existing = {"State": "applied", "HttpTokens": "optional", "HttpEndpoint": "enabled"}
    assert merge_metadata_options(existing) == {"HttpTokens": "required", "HttpEndpoint": "enabled"}


def _aws_string_char(c):
    # botocore's autoscaling pattern for XmlString:
    # [\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\r\n\t]*
    o = ord(c)
    return c in "\r\n\t" or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000


AWS_CHAR = st.characters(exclude_categories=("Cs",)).filter(_aws_string_char)
LC_NAMES = st.one_of(
    st.text(AWS_CHAR, min_size=1, max_size=255),
    st.text(AWS_CHAR, min_size=240, max_size=255),
    st.text(st.sampled_from(" \t\r\n_-.()/:aZ9é🙂"), min_size=1, max_size=255),
    st.builds(
        lambda s, pad: s + pad,
        st.text(AWS_CHAR, min_size=1, max_size=200),
        st.text(" \t\n", min_size=1, max_size=55),
    ),
)


HEX = "0123456789abcdef"
SG_IDS = st.builds(lambda h: "sg-" + h, st.text(HEX, min_size=8, max_size=17))
SG_NAMES = st.text(AWS_CHAR, min_size=1, max_size=255).filter(
    lambda n: not re.match(r"^sg-[0-9a-f]+$", n)
)


CREATED_TIMES = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)
)


EBS = st.fixed_dictionaries(
    {},
    optional={
        "SnapshotId": st.builds(lambda h: "snap-" + h, st.text(HEX, min_size=17, max_size=17)),
        "VolumeSize": st.integers(1, 16384),
        "VolumeType": st.sampled_from(["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"]),
        "DeleteOnTermination": st.booleans(),
        "Iops": st.integers(100, 20000),
        "Encrypted": st.booleans(),
        "Throughput": st.integers(125, 1000),
    },
)


DEVICE_NAMES = st.one_of(
    st.builds(lambda c: "/dev/sd" + c, st.sampled_from("bcdefghijklmnop")),
    st.builds(lambda c: "/dev/xvd" + c, st.sampled_from("abcdefgh")),
    st.just("/dev/sda1"),
)


BLOCK_DEVICE = st.one_of(
    st.fixed_dictionaries({"DeviceName": DEVICE_NAMES, "NoDevice": st.just(True)}),
    st.fixed_dictionaries(
        {
            "DeviceName": DEVICE_NAMES,
            "VirtualName": st.builds(lambda i: "ephemeral%d" % i, st.integers(0, 23)),
        }
    ),
    st.fixed_dictionaries(
        {"DeviceName": DEVICE_NAMES, "Ebs": EBS}, optional={"NoDevice": st.just(False)}
    ),
)


METADATA = st.fixed_dictionaries(
    {},
    optional={
        "HttpTokens": st.sampled_from(["optional", "required"]),
        "HttpPutResponseHopLimit": st.integers(1, 64),
        "HttpEndpoint": st.sampled_from(["enabled", "disabled"]),
    },
)


USER_DATA_VALUES = st.one_of(
    st.just(""),
    st.binary(min_size=1, max_size=4096).map(lambda b: base64.b64encode(b).decode("ascii")),
)


def _with_arn(lc):
    lc["LaunchConfigurationARN"] = (
        "arn:aws:autoscaling:us-east-1:123456789012:launchConfiguration:"
        "6a2a1a36-0c1f-4e5e-9b0e-1d5b1e7c9a10:launchConfigurationName/"
        + lc["LaunchConfigurationName"]
    )
    return lc


LAUNCH_CONFIGURATIONS = st.fixed_dictionaries(
    {
        "LaunchConfigurationName": LC_NAMES,
        "ImageId": st.builds(lambda h: "ami-" + h, st.text(HEX, min_size=8, max_size=17)),
        "InstanceType": st.sampled_from(["t3.micro", "m5.large", "c6g.xlarge", "r7i.2xlarge"]),
        "CreatedTime": CREATED_TIMES,
    },
    optional={
        "KeyName": st.one_of(st.just(""), st.text(AWS_CHAR, min_size=1, max_size=40)),
        "SecurityGroups": st.lists(SG_IDS, max_size=5, unique=True),
        "ClassicLinkVPCId": st.one_of(
            st.just(""), st.builds(lambda h: "vpc-" + h, st.text(HEX, min_size=8, max_size=8))
        ),
        "ClassicLinkVPCSecurityGroups": st.lists(SG_IDS, max_size=3),
        "UserData": USER_DATA_VALUES,
        "KernelId": st.sampled_from(["", "aki-88aa75e1"]),
        "RamdiskId": st.sampled_from(["", "ari-a51cf9cc"]),
        "BlockDeviceMappings": st.lists(BLOCK_DEVICE, max_size=6),
        "InstanceMonitoring": st.fixed_dictionaries({}, optional={"Enabled": st.booleans()}),
        "SpotPrice": st.decimals(min_value="0.001", max_value="100", places=4).map(str),
        "IamInstanceProfile": st.one_of(
            st.from_regex(r"[\w+=,.@-]{1,128}", fullmatch=True),
            st.from_regex(r"[\w+=,.@-]{1,64}", fullmatch=True).map(
                lambda n: "arn:aws:iam::123456789012:instance-profile/" + n
            ),
        ),
        "EbsOptimized": st.booleans(),
        "AssociatePublicIpAddress": st.booleans(),
        "PlacementTenancy": st.sampled_from(["default", "dedicated"]),
        "MetadataOptions": METADATA,
    },
).map(_with_arn)


PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check_generated_is_aws_shaped(lc):
    """The generator itself must produce what AWS could describe. (The model's min
    length 1 is a request constraint: describe output reports unset strings as "".)"""
    report = ParamValidator().validate(
        {k: v for k, v in lc.items() if v != ""}, LAUNCH_CONFIGURATION_SHAPE
    )
    assert not report.has_errors(), report.generate_report()


@PROPERTY
@given(
    lc=LAUNCH_CONFIGURATIONS,
    hop_limit=st.one_of(st.just(PRESERVE), st.integers(1, 64)),
    http_endpoint=st.sampled_from([PRESERVE, "enabled", "disabled"]),
)
def test_generated_launch_configurations_make_valid_templates(lc, hop_limit, http_endpoint):
    _check_generated_is_aws_shaped(lc)
    data, notes = launch_template_data(lc, hop_limit=hop_limit, http_endpoint=http_endpoint)
    assert_valid_template_request(lc, data)

    assert data.get("UserData") == (lc.get("UserData") or None)
    assert not ("SecurityGroupIds" in data and "NetworkInterfaces" in data)
    groups = lc.get("SecurityGroups") or []
    if "NetworkInterfaces" in data:
        assert data["NetworkInterfaces"][0].get("Groups", []) == groups
    else:
        assert data.get("SecurityGroupIds", []) == groups
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["Monitoring"] == {
        "Enabled": (lc.get("InstanceMonitoring") or {}).get("Enabled", True)
    }
    source = lc.get("MetadataOptions") or {}
    expected_hop = source.get("HttpPutResponseHopLimit") if hop_limit == PRESERVE else hop_limit
    assert data["MetadataOptions"].get("HttpPutResponseHopLimit") == expected_hop
    expected_endpoint = source.get("HttpEndpoint") if http_endpoint == PRESERVE else http_endpoint
    assert data["MetadataOptions"].get("HttpEndpoint") == expected_endpoint
    for lc_mapping, lt_mapping in zip(
        lc.get("BlockDeviceMappings") or [], data.get("BlockDeviceMappings") or []
    ):
        assert lt_mapping["DeviceName"] == lc_mapping["DeviceName"]
        if lc_mapping.get("NoDevice"):
            assert lt_mapping == {"DeviceName": lc_mapping["DeviceName"], "NoDevice": ""}
        elif "Ebs" in lc_mapping and lc_mapping["Ebs"]:
            assert lt_mapping["Ebs"] == lc_mapping["Ebs"]
    assert len(data.get("BlockDeviceMappings") or []) == len(lc.get("BlockDeviceMappings") or [])
    assert bool(notes) == bool(lc.get("ClassicLinkVPCId") or lc.get("ClassicLinkVPCSecurityGroups"))
    assert set(data) <= TEMPLATE_DATA_FIELDS
    if data.get("UserData"):
        assert data["UserData"] not in json.dumps(redact(data))


@PROPERTY
@given(lc=LAUNCH_CONFIGURATIONS, data=st.data())
def test_generated_named_security_groups_use_the_resolved_ids(lc, data):
    names = data.draw(st.lists(SG_NAMES, min_size=1, max_size=3, unique=True))
    ids = list(lc.get("SecurityGroups") or [])
    lc = dict(lc, SecurityGroups=names + ids)
    with pytest.raises(TranslationError):
        launch_template_data(lc)
    resolved = data.draw(st.lists(SG_IDS, min_size=len(names), max_size=len(names))) + ids
    template_data, _ = launch_template_data(lc, resolved)
    assert_valid_template_request(lc, template_data)
    groups = (
        template_data["NetworkInterfaces"][0]["Groups"]
        if "NetworkInterfaces" in template_data
        else template_data["SecurityGroupIds"]
    )
    assert groups == resolved


def lc_named(name, created=CREATED):
    return {"LaunchConfigurationName": name, "CreatedTime": created}


@PROPERTY
@given(
    name=LC_NAMES,
    other=LC_NAMES,
    created=CREATED_TIMES,
    later=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650)),
)
def test_generated_template_names(name, other, created, later):
    lc = lc_named(name, created)
    result = template_name(lc)
    assert TEMPLATE_NAME.match(result), result
    assert template_name(lc_named(name, created)) == result
    if other != name:
        assert template_name(lc_named(other, created)) != result
    assert template_name(lc_named(name, created + later)) != result
    token = client_token(result)
    assert len(token) <= 64 and token.isascii()


@PROPERTY
@given(name=LC_NAMES)
def test_generated_previous_launch_values(name):
    value = encode_previous_launch({"LaunchConfigurationName": name})
    assert len(value) <= 256
    decoded = decode_previous_launch(value)
    if "LaunchConfigurationName" in decoded:
        assert decoded == {"LaunchConfigurationName": name}
    else:
        assert len(name) > 253
        assert decoded == {
            "LaunchConfigurationNameSha256": hashlib.sha256(name.encode("utf-8")).hexdigest()
        }
