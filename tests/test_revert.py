"""`revert-imds-remediation` (c7n_imds/actions/revert.py) against recorded AWS
responses.

How placebo flights answer a policy run's calls: tests/support/placebo.py. Expected
values are written out from the documented rules, not computed by the code under test.
"""
import datetime

import pytest

from c7n_imds.actions import RemediationError
from tests.support.placebo import asg_policy, call_order, changes, group_tag, recording_factory

PREVIOUS = "c7n-imds:previous-launch"
EXEMPT = "c7n-imds:exempt"


def revert_policy():
    return asg_policy("asg-revert-imds", {"type": "revert-imds-remediation"},
                      [{"tag:%s" % PREVIOUS: "present"}])


def test_revert_refuses_when_launch_configuration_is_gone(placebo_factory, load_policy,
                                                          tmp_path):
    """Group app was converted from old-lc (tag c7n-imds:previous-launch = lc:old-lc),
    and old-lc has since been deleted: DescribeLaunchConfigurations returns nothing. The
    revert is refused with a message naming the configuration; nothing is changed -
    not the group, not its tags."""
    factory = recording_factory(placebo_factory,
                                "test_revert_refuses_when_launch_configuration_is_gone")
    policy = load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert factory.called("DescribeLaunchConfigurations") == [
        {"LaunchConfigurationNames": ["old-lc"]}]
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("DeleteTags") == []
    assert factory.called("CreateOrUpdateTags") == []
    assert set(raised.value.failures) == {"app"}
    reason = raised.value.failures["app"]
    assert "'old-lc'" in reason and "no longer exists" in reason


def test_revert_restores_launch_configuration(placebo_factory, load_policy, tmp_path):
    """The same group with old-lc still there: the group goes back to old-lc, the
    previous-launch tag is removed and the group is tagged c7n-imds:exempt so the next
    scheduled remediation leaves it alone - in that order."""
    factory = recording_factory(placebo_factory, "test_revert_restores_launch_configuration")
    before = datetime.datetime.now(datetime.timezone.utc).date()
    load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path).run()
    after = datetime.datetime.now(datetime.timezone.utc).date()

    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "app", "LaunchConfigurationName": "old-lc"}]
    assert factory.called("DeleteTags") == [{"Tags": [{
        "ResourceId": "app", "ResourceType": "auto-scaling-group", "Key": PREVIOUS}]}]
    (exempt,) = factory.called("CreateOrUpdateTags")
    assert exempt in (group_tag("app", EXEMPT, "reverted by c7n-imds on %s" % day.isoformat())
                      for day in {before, after}), exempt
    assert call_order(factory, "UpdateAutoScalingGroup", "DeleteTags",
                      "CreateOrUpdateTags") == [
        ("UpdateAutoScalingGroup", "app"), ("DeleteTags", "app"),
        ("CreateOrUpdateTags", "app")]
    assert changes(tmp_path, "asg-revert-imds") == {"app": {
        "AutoScalingGroupName": "app", "RevertedTo": "lc:old-lc"}}
