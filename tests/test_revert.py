"""`revert-imds-remediation` (c7n_imds/actions/revert.py) against recorded AWS
responses.

How placebo flights answer a policy run's calls: tests/support/placebo.py. Expected
values are written out from the documented rules, not computed by the code under test.

Tags are not proof: a record is accepted only when what the group launches from now is
provably c7n-imds's work (CreatedBy of the template or version, a derived version's
description, content matching the record). The flights' runner is the role c7n-imds
(sts GetCallerIdentity answers a session of it, arn:aws:sts::123456789012:
assumed-role/c7n-imds/c7n-imds-run-2025); templates and versions it made carry another
session of that role in CreatedBy (assumed-role/c7n-imds/c7n-imds-run-2024), as a
run on another day would. DescribeLaunchTemplateVersions is called once per version
looked up, in the order each test's docstring gives.
"""

import datetime

import pytest

from c7n_imds.actions import RemediationError
from c7n_imds.cli import format_preview
from tests.support.placebo import asg_policy, call_order, changes, group_tag, recording_factory

PREVIOUS = "c7n-imds:previous-launch"
EXEMPT = "c7n-imds:exempt"
INTRUDER = "arn:aws:iam::123456789012:user/intruder"
MUTATING = (
    "UpdateAutoScalingGroup",
    "ModifyLaunchTemplate",
    "CreateOrUpdateTags",
    "DeleteTags",
    "DeleteChangeSet",
)


def revert_policy(**options):
    return asg_policy(
        "asg-revert-imds",
        dict({"type": "revert-imds-remediation"}, **options),
        [{"tag:%s" % PREVIOUS: "present"}],
    )


def assert_unchanged(factory):
    for operation in MUTATING:
        assert factory.called(operation) == [], operation


def exemption_today(factory, group, before):
    """The group's exemption call, dated the day of the run."""
    after = datetime.datetime.now(datetime.timezone.utc).date()
    calls = [c for c in factory.called("CreateOrUpdateTags") if c["Tags"][0]["ResourceId"] == group]
    assert len(calls) == 1, calls
    assert calls[0] in (
        group_tag(group, EXEMPT, "reverted by c7n-imds on %s" % day.isoformat())
        for day in {before, after}
    ), calls


def test_revert_refuses_when_launch_configuration_is_gone(placebo_factory, load_policy, tmp_path):
    """Group app was converted from old-lc (tag c7n-imds:previous-launch = lc:old-lc),
    and old-lc has since been deleted: DescribeLaunchConfigurations returns nothing. The
    revert is refused with a message naming the configuration; nothing is changed -
    not the group, not its tags."""
    factory = recording_factory(
        placebo_factory, "test_revert_refuses_when_launch_configuration_is_gone"
    )
    policy = load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert factory.called("DescribeLaunchConfigurations") == [
        {"LaunchConfigurationNames": ["old-lc"]}
    ]
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("DeleteTags") == []
    assert factory.called("CreateOrUpdateTags") == []
    assert set(raised.value.failures) == {"app"}
    reason = raised.value.failures["app"]
    assert "'old-lc'" in reason and "no longer exists" in reason


def test_revert_restores_launch_configuration(placebo_factory, load_policy, tmp_path):
    """The same group with old-lc still there. Its template lt-0a9000000000000a9 was
    created by another session of the running role, and its version 1 launches what
    old-lc launched (metadata options aside): the record is proven. The group goes
    back to old-lc, is tagged c7n-imds:exempt so the next scheduled remediation leaves
    it alone, and only then is the record removed - in that order, so that a run
    stopped in between is finished by the next."""
    factory = recording_factory(placebo_factory, "test_revert_restores_launch_configuration")
    before = datetime.datetime.now(datetime.timezone.utc).date()
    load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path).run()

    assert factory.called("DescribeLaunchTemplates") == [
        {"LaunchTemplateIds": ["lt-0a9000000000000a9"]}
    ]
    assert factory.called("DescribeLaunchTemplateVersions") == [
        {"LaunchTemplateId": "lt-0a9000000000000a9", "Versions": ["1"]}
    ]
    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "app", "LaunchConfigurationName": "old-lc"}
    ]
    assert factory.called("DeleteTags") == [
        {"Tags": [{"ResourceId": "app", "ResourceType": "auto-scaling-group", "Key": PREVIOUS}]}
    ]
    exemption_today(factory, "app", before)
    assert call_order(factory, "UpdateAutoScalingGroup", "DeleteTags", "CreateOrUpdateTags") == [
        ("UpdateAutoScalingGroup", "app"),
        ("CreateOrUpdateTags", "app"),
        ("DeleteTags", "app"),
    ]
    assert changes(tmp_path, "asg-revert-imds") == {
        "app": {"AutoScalingGroupName": "app", "RevertedTo": "lc:old-lc"}
    }


def test_revert_refuses_a_template_another_principal_created(
    placebo_factory, load_policy, tmp_path
):
    """Group app carries lc:old-lc, and old-lc exists, but the template the group
    launches from was created by arn:aws:iam::123456789012:user/intruder - anyone who
    may tag a group and create a template could have set this up. Refused with the
    record, the template and its creator named; nothing changes (its version 1 is not
    even read)."""
    factory = recording_factory(
        placebo_factory, "test_revert_refuses_a_template_another_principal_created"
    )
    policy = load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert_unchanged(factory)
    assert factory.called("DescribeLaunchTemplateVersions") == []
    reason = raised.value.failures["app"]
    assert reason.startswith("c7n-imds:previous-launch lc:old-lc is not proven: ")
    assert (
        "the group's launch template lt-0a9000000000000a9 (old-lc-imdsv2-83ef75657b) "
        "was created by %s, which is not trusted" % INTRUDER in reason
    ), reason
    assert "arn:aws:sts::123456789012:assumed-role/c7n-imds/c7n-imds-run-2025" in reason
    assert reason.endswith("; nothing changed"), reason


def test_revert_refuses_a_template_not_made_from_the_record(placebo_factory, load_policy, tmp_path):
    """The template is ours (CreatedBy: the running role), but its version 1 launches
    image ami-0badc0ffee0000000 while old-lc launches ami-0abcdef1234567890: it was not
    made from the configuration the record names, so going "back" would launch
    something else. Refused, naming the differing field; nothing changes."""
    factory = recording_factory(
        placebo_factory, "test_revert_refuses_a_template_not_made_from_the_record"
    )
    policy = load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert_unchanged(factory)
    reason = raised.value.failures["app"]
    assert "version 1 of the group's launch template lt-0a9000000000000a9" in reason
    assert "was not made from launch configuration 'old-lc'" in reason
    assert "ImageId: expected 'ami-0abcdef1234567890', stored 'ami-0badc0ffee0000000'" in reason, (
        reason
    )


def test_revert_trusts_the_principals_the_policy_names(placebo_factory, load_policy, tmp_path):
    """The template was created by a session of role deployer (a pipeline), which the
    policy names as arn:aws:iam::123456789012:role/ci/deployer in trusted-principals:
    a role's ARN, with its path, matches its sessions' ARN. Reverted."""
    factory = recording_factory(
        placebo_factory, "test_revert_trusts_the_principals_the_policy_names"
    )
    load_policy(
        revert_policy(**{"trusted-principals": ["arn:aws:iam::123456789012:role/ci/deployer"]}),
        session_factory=factory,
        output_dir=tmp_path,
    ).run()
    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "app", "LaunchConfigurationName": "old-lc"}
    ]


def test_revert_puts_a_pinned_group_back_and_the_default_it_moved(
    placebo_factory, load_policy, tmp_path
):
    """web-a was pinned to version 2 of lt-0b7000000000000b7 (record lt:...:2) and is
    now pinned to version 3, described "c7n-imds: from version 2 with {...}" and
    created by the running role; version 3 is also the template's default (version 2
    was the default when it was derived). Versions are read: 2 (the record's target),
    3 (the group's), $Default (3). The default goes back to 2, the group is pinned to
    2, exempt, then untagged."""
    factory = recording_factory(
        placebo_factory, "test_revert_puts_a_pinned_group_back_and_the_default_it_moved"
    )
    before = datetime.datetime.now(datetime.timezone.utc).date()
    load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path).run()

    assert [c["Versions"] for c in factory.called("DescribeLaunchTemplateVersions")] == [
        ["2"],
        ["3"],
        ["$Default"],
    ]
    assert factory.called("ModifyLaunchTemplate") == [
        {"LaunchTemplateId": "lt-0b7000000000000b7", "DefaultVersion": "2"}
    ]
    assert factory.called("UpdateAutoScalingGroup") == [
        {
            "AutoScalingGroupName": "web-a",
            "LaunchTemplate": {"LaunchTemplateId": "lt-0b7000000000000b7", "Version": "2"},
        }
    ]
    exemption_today(factory, "web-a", before)
    assert [
        name
        for name, _ in call_order(
            factory,
            "ModifyLaunchTemplate",
            "UpdateAutoScalingGroup",
            "CreateOrUpdateTags",
            "DeleteTags",
        )
    ] == ["ModifyLaunchTemplate", "UpdateAutoScalingGroup", "CreateOrUpdateTags", "DeleteTags"]


def test_revert_refuses_forged_template_records(placebo_factory, load_policy, tmp_path):
    """Three records a tagger could write, each refused with its reason and nothing
    changed: forged-creator's version 3 says "from version 2" but was created by
    user/intruder (versions read: 2, 3); wrong-source's record names version 1 while
    its version 4 (ours) was derived from version 2 (read: 1, 4); other-template's
    record names lt-0b7000000000000b7 but it launches from lt-0c1000000000000c1 (nothing
    read)."""
    factory = recording_factory(placebo_factory, "test_revert_refuses_forged_template_records")
    policy = load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert_unchanged(factory)
    failures = raised.value.failures
    assert set(failures) == {"forged-creator", "wrong-source", "other-template"}
    assert (
        "the group's version 3 of launch template lt-0b7000000000000b7 was created "
        "by %s, which is not trusted" % INTRUDER in failures["forged-creator"]
    )
    assert (
        "the record names launch template lt-0b7000000000000b7 version 1 (now "
        "version 1), but the group's version 4 was derived from version 2"
        in failures["wrong-source"]
    ), failures["wrong-source"]
    assert (
        "the record names launch template lt-0b7000000000000b7, but the group "
        "launches from lt-0c1000000000000c1" in failures["other-template"]
    )
    assert all(r.endswith("; nothing changed") for r in failures.values())


def test_revert_finishes_a_group_already_back_on_its_configuration(
    placebo_factory, load_policy, tmp_path
):
    """A revert stopped after switching app back to old-lc (and after exempting it):
    app launches from old-lc and still carries the record. The next run proves
    nothing is left to restore, switches nothing, writes the exemption again and
    removes the record."""
    factory = recording_factory(
        placebo_factory, "test_revert_finishes_a_group_already_back_on_its_configuration"
    )
    before = datetime.datetime.now(datetime.timezone.utc).date()
    load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path).run()
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("DescribeLaunchTemplates") == []
    exemption_today(factory, "app", before)
    assert factory.called("DeleteTags") == [
        {"Tags": [{"ResourceId": "app", "ResourceType": "auto-scaling-group", "Key": PREVIOUS}]}
    ]


def test_revert_exempts_stack_groups_before_withdrawing_change_sets(
    placebo_factory, load_policy, tmp_path
):
    """Two groups of stack web, no record (c7n-imds proposed change set
    c7n-imds-imdsv2-3f9a1c2b7d4e and changed nothing): both groups are exempt before
    the change set is deleted, so that a run stopped after the delete does not leave
    them to be proposed for again."""
    factory = recording_factory(
        placebo_factory, "test_revert_exempts_stack_groups_before_withdrawing_change_sets"
    )
    before = datetime.datetime.now(datetime.timezone.utc).date()
    policy = asg_policy(
        "asg-revert-imds",
        {"type": "revert-imds-remediation"},
        [{"tag:aws:cloudformation:stack-name": "web"}],
    )
    load_policy(policy, session_factory=factory, output_dir=tmp_path).run()

    groups = ["web-WebGroup-1A2B3C4D5E6F", "web-WorkerGroup-6F5E4D3C2B1A"]
    for group in groups:
        exemption_today(factory, group, before)
    assert [name for name, _ in call_order(factory, "CreateOrUpdateTags", "DeleteChangeSet")] == [
        "CreateOrUpdateTags",
        "CreateOrUpdateTags",
        "DeleteChangeSet",
    ]
    assert set(changes(tmp_path, "asg-revert-imds")) == set(groups)


def test_plan_previews_each_revert_and_its_provenance(placebo_factory, load_policy):
    """`c7n-imds plan` calls the action's preview: read only. app goes back to old-lc
    (proven by its template's creator and version 1); api's default goes back from
    version 4 (ours, from version 3) to 3; forged's version 3 was made by
    user/intruder, so it is under Failures with why. Each target shows its image,
    instance profile and user data as size and the start of its SHA-256 - never the
    user data itself."""
    factory = recording_factory(
        placebo_factory, "test_plan_previews_each_revert_and_its_provenance"
    )
    policy = load_policy(revert_policy(), session_factory=factory)
    resources = policy.resource_manager.resources()
    [action] = policy.resource_manager.actions
    preview = action.preview(resources)

    assert_unchanged(factory)
    reverts = {r["AutoScalingGroupName"]: r for r in preview["Reverts"]}
    assert set(reverts) == {"app", "api"}
    # "#!/bin/bash\necho hello > /tmp/hello\n": 36 bytes
    assert reverts["app"]["Launches"] == [
        {
            "Target": "launch configuration 'old-lc'",
            "ImageId": "ami-0abcdef1234567890",
            "IamInstanceProfile": "arn:aws:iam::123456789012:instance-profile/app-profile",
            "UserData": {"Bytes": 36, "Sha256": "084a1688a4ed"},
        }
    ]
    assert reverts["app"]["Provenance"].startswith(
        "verified: launch template lt-0a9000000000000a9 was created by "
        "arn:aws:sts::123456789012:assumed-role/c7n-imds/c7n-imds-run-2024"
    )
    # "#cloud-config\npackages: [nginx]\n": 32 bytes
    assert reverts["api"]["Launches"] == [
        {
            "Target": "launch template lt-0d4000000000000d4 version 3",
            "ImageId": "ami-0fedcba9876543210",
            "IamInstanceProfile": "arn:aws:iam::123456789012:instance-profile/api",
            "UserData": {"Bytes": 32, "Sha256": "fb22a7db4937"},
        }
    ]
    assert reverts["api"]["Changes"] == [
        "switch the group",
        "launch template lt-0d4000000000000d4 default version 4 -> 3",
    ]
    assert "was created by %s, which is not trusted" % INTRUDER in preview["Failures"]["forged"]
    assert "IyEvYmlu" not in repr(preview) and "I2Nsb3Vk" not in repr(preview)

    text = format_preview(
        dict(
            preview, Policy="asg-revert-imds", Region="us-east-1", Action="revert-imds-remediation"
        )
    ).splitlines()
    assert text[0] == (
        "policy asg-revert-imds (us-east-1) action revert-imds-remediation: "
        "0 template(s), 0 version(s), 2 revert(s), 1 failure(s)"
    )
    assert "  revert app (record lc:old-lc): switch the group" in text
    assert (
        "    -> launch configuration 'old-lc': image ami-0abcdef1234567890, instance "
        "profile arn:aws:iam::123456789012:instance-profile/app-profile, user data "
        "36 bytes, sha256 084a1688a4ed..."
    ) in text
    assert any(
        line.startswith(
            "  cannot remediate forged: c7n-imds:previous-launch "
            "lt:lt-0b7000000000000b7:2 is not proven"
        )
        for line in text
    )
