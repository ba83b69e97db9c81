"""c7n_imds.model.preflight: the DryRun launches what the group would launch."""

import pytest

from c7n_imds.model.preflight import instance_requirements, launch_choice, preflight_parameters

BASE = {"LaunchTemplateId": "lt-base", "Version": "$Default"}
ARM = {"LaunchTemplateId": "lt-arm", "Version": "3"}
REQUIREMENTS = {"VCpuCount": {"Min": 2, "Max": 4}, "MemoryMiB": {"Min": 4096}}


def mixed(*overrides, base=BASE):
    return {
        "AutoScalingGroupName": "g",
        "VPCZoneIdentifier": "subnet-1, subnet-2",
        "MixedInstancesPolicy": {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": dict(base),
                "Overrides": list(overrides),
            }
        },
    }


def test_per_override_template_gets_its_own_override():
    asg = mixed(
        {"InstanceType": "m5.large"},
        {"InstanceType": "m6g.large", "ImageId": "ami-arm", "LaunchTemplateSpecification": ARM},
    )
    assert launch_choice(asg, ARM) == {"InstanceType": "m6g.large", "ImageId": "ami-arm"}


def test_base_template_gets_an_override_without_a_template():
    asg = mixed(
        {"InstanceType": "m6g.large", "LaunchTemplateSpecification": ARM},
        {"InstanceType": "c5.large"},
        {"InstanceType": "m5.large"},
    )
    assert launch_choice(asg, BASE) == {"InstanceType": "c5.large"}


def test_spec_matching_defaults_the_version():
    asg = mixed(
        {"InstanceType": "c5.large"}, base={"LaunchTemplateId": "lt-base"}
    )  # no Version means $Default
    assert launch_choice(asg, BASE) == {"InstanceType": "c5.large"}


def test_attribute_based_override():
    asg = mixed({"InstanceRequirements": REQUIREMENTS})
    choice = launch_choice(asg, BASE)
    assert choice == {"InstanceRequirements": REQUIREMENTS}
    assert instance_requirements(choice, {"ImageId": "ami-1"}) == REQUIREMENTS


@pytest.mark.parametrize(
    "asg, spec",
    [
        ({"AutoScalingGroupName": "g", "LaunchTemplate": BASE}, BASE),  # not mixed
        (mixed({"InstanceType": "c5.large", "LaunchTemplateSpecification": ARM}), BASE),
        (mixed({"InstanceType": "c5.large"}), None),  # a configuration being converted
    ],
)
def test_no_override_means_the_templates_own_settings(asg, spec):
    assert launch_choice(asg, spec) == {}


@pytest.mark.parametrize(
    "choice, data, wanted",
    [
        ({}, {"InstanceType": "t3.small"}, None),
        ({}, {"InstanceRequirements": REQUIREMENTS}, REQUIREMENTS),
        ({"InstanceType": "c5.large"}, {"InstanceRequirements": REQUIREMENTS}, None),
        (
            {"InstanceRequirements": {"VCpuCount": {"Min": 8}}},
            {"InstanceType": "t3.small"},
            {"VCpuCount": {"Min": 8}},
        ),
    ],
)
def test_instance_requirements(choice, data, wanted):
    assert instance_requirements(choice, data) == wanted


def test_parameters_pass_every_interface_with_the_groups_subnet():
    """Interfaces in a RunInstances request replace the template's: every one is sent
    (EFA on another network card, IPv6, a secondary interface), the primary in the
    group's first subnet, the others in theirs or the group's."""
    interfaces = [
        {
            "DeviceIndex": 0,
            "NetworkCardIndex": 0,
            "InterfaceType": "efa",
            "Groups": ["sg-1"],
            "Ipv6AddressCount": 1,
            "SubnetId": "subnet-template",
        },
        {"DeviceIndex": 1, "NetworkCardIndex": 1, "InterfaceType": "efa"},
        {"DeviceIndex": 1, "SubnetId": "subnet-other", "Groups": ["sg-2"]},
        {"DeviceIndex": 2, "NetworkInterfaceId": "eni-1"},
    ]
    params = preflight_parameters(
        mixed(), "lt-1", 4, {"NetworkInterfaces": interfaces}, {"InstanceType": "p5.48xlarge"}
    )
    assert params == {
        "DryRun": True,
        "MinCount": 1,
        "MaxCount": 1,
        "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "4"},
        "InstanceType": "p5.48xlarge",
        "NetworkInterfaces": [
            dict(interfaces[0], SubnetId="subnet-1"),
            dict(interfaces[1], SubnetId="subnet-1"),
            interfaces[2],
            interfaces[3],
        ],
    }
    assert interfaces[0]["SubnetId"] == "subnet-template"  # the template data is untouched


def test_parameters_without_interfaces_name_the_subnet_type_and_image():
    params = preflight_parameters(
        mixed(),
        "lt-1",
        "2",
        {"InstanceType": "t3.small"},
        {"ImageId": "ami-arm"},
        instance_type="m6g.large",
    )
    assert params["SubnetId"] == "subnet-1"
    assert params["InstanceType"] == "m6g.large" and params["ImageId"] == "ami-arm"
    assert "NetworkInterfaces" not in params


def test_parameters_for_the_default_vpc():
    params = preflight_parameters(
        {"AutoScalingGroupName": "g"}, "lt-1", 1, {"NetworkInterfaces": [{"DeviceIndex": 0}]}, {}
    )
    assert "SubnetId" not in params and "NetworkInterfaces" not in params
