"""c7n_imds.sources.LaunchSources, over data already loaded (no AWS call): override images in
EffectiveHttpTokens, names with white space on either side, RemediationPending."""

from c7n_imds.model.provenance import derived_version_description
from c7n_imds.sources import LaunchSources

REQUIRED = {"HttpTokens": "required"}


def version(template_id, number, metadata=None, image="ami-v2", description=None, default=False):
    data = {"ImageId": image}
    if metadata:
        data["MetadataOptions"] = metadata
    return {
        "LaunchTemplateId": template_id,
        "LaunchTemplateName": template_id,
        "VersionNumber": number,
        "DefaultVersion": default,
        "VersionDescription": description,
        "LaunchTemplateData": data,
    }


def sources(*versions, defaults=None, images=None):
    loaded = LaunchSources(None, None)
    for v in versions:
        loaded._remember(v)
        if v["DefaultVersion"]:
            loaded.versions[(v["LaunchTemplateId"], "$Default")] = v
    latest = {}
    for v in versions:
        if v["VersionNumber"] > latest.get(v["LaunchTemplateId"], {}).get("VersionNumber", 0):
            latest[v["LaunchTemplateId"]] = v
    for tid, v in latest.items():
        loaded.versions[(tid, "$Latest")] = v
    loaded.account_defaults = defaults or {}
    loaded.image_imds_support = images or {"ami-v2": "v2.0"}
    return loaded


def test_an_overrides_own_image_decides_effective_tokens():
    """The template leaves HttpTokens unset, its image is ImdsSupport v2.0 (required);
    an override launches it with an older image, which gives optional."""
    loaded = sources(version("lt-1", 1, default=True))
    asg = {
        "AutoScalingGroupName": "g",
        "MixedInstancesPolicy": {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "1"},
                "Overrides": [
                    {"InstanceType": "m5.large"},
                    {"InstanceType": "m5.xlarge", "ImageId": "ami-old"},
                ],
            }
        },
    }
    view = loaded.describe(asg)
    assert view["EffectiveHttpTokens"] == "optional"
    assert view["ImageId"] == "ami-old"
    without = dict(
        asg,
        MixedInstancesPolicy={
            "LaunchTemplate": dict(
                asg["MixedInstancesPolicy"]["LaunchTemplate"],
                Overrides=[{"InstanceType": "m5.large"}],
            )
        },
    )
    assert loaded.describe(without)["EffectiveHttpTokens"] == "required"


def test_launch_configuration_names_with_white_space_on_either_side():
    loaded = LaunchSources(
        None,
        None,
        configs={
            "app-lc ": {"LaunchConfigurationName": "app-lc "},
            "web-lc": {"LaunchConfigurationName": "web-lc"},
        },
    )
    assert loaded.launch_configuration("app-lc")["LaunchConfigurationName"] == "app-lc "
    assert loaded.launch_configuration("web-lc  ")["LaunchConfigurationName"] == "web-lc"
    assert loaded.launch_configuration("other") is None


def latest_follower(tags=()):
    return {
        "AutoScalingGroupName": "g",
        "Tags": list(tags),
        "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "$Latest"},
    }


def derived(number, source):
    return version(
        "lt-1", number, REQUIRED, description=derived_version_description(source, REQUIRED)
    )


def recorded(template_id="lt-1"):
    return [{"Key": "c7n-imds:previous-launch", "Value": "lt:%s:$Latest" % template_id}]


def test_pending_when_the_default_was_not_moved():
    """Killed between CreateLaunchTemplateVersion and ModifyLaunchTemplate: the group
    launches the compliant $Latest, but the default it was derived from allows IMDSv1."""
    loaded = sources(version("lt-1", 1, {"HttpTokens": "optional"}, default=True), derived(2, 1))
    view = loaded.describe(latest_follower(recorded()))
    assert view["HttpTokens"] == "required" and view["RemediationPending"] is True


def test_pending_when_the_group_was_never_recorded():
    loaded = sources(version("lt-1", 1, REQUIRED, default=True), derived(2, 1))
    assert loaded.describe(latest_follower())["RemediationPending"] is True


def test_not_pending_once_finished():
    finished = sources(
        version("lt-1", 1, {"HttpTokens": "optional"}), dict(derived(2, 1), DefaultVersion=True)
    )
    assert finished.describe(latest_follower(recorded()))["RemediationPending"] is False
    # the source was not the default: nothing to move
    other = sources(
        version("lt-1", 1, {"HttpTokens": "optional"}, default=True),
        version("lt-1", 2, {"HttpTokens": "optional"}),
        derived(3, 2),
    )
    assert other.describe(latest_follower(recorded()))["RemediationPending"] is False
    # a version c7n-imds did not derive
    plain = sources(
        version("lt-1", 1, {"HttpTokens": "optional"}, default=True), version("lt-1", 2, REQUIRED)
    )
    assert plain.describe(latest_follower())["RemediationPending"] is False
    # groups on $Default or a number are found by HttpTokens alone
    pinned = sources(version("lt-1", 1, {"HttpTokens": "optional"}, default=True), derived(2, 1))
    asg = dict(latest_follower(), LaunchTemplate={"LaunchTemplateId": "lt-1", "Version": "2"})
    assert pinned.describe(asg)["RemediationPending"] is False
