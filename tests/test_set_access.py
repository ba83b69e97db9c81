"""`set-metadata-access` (c7n_imds/actions/set_access.py, versions.py) against recorded
AWS responses: faithful new versions (snapshots sent again), the read-back, defaults,
pins, re-runs.

How placebo flights answer a policy run's calls: tests/support/placebo.py. Expected
values are written out from the documented rules, not computed by the code under test.
"""

import pytest

from c7n_imds.actions import RemediationError
from tests.support.placebo import (
    call_order,
    changes,
    derived_options,
    dry_run,
    group_tag,
    recording_factory,
    set_access_policy,
)

PREVIOUS = "c7n-imds:previous-launch"
WEB = "lt-0123456789abcdef0"


def test_set_metadata_access_default_follower_gets_new_default_version(
    placebo_factory, load_policy, tmp_path
):
    """Group web follows $Default of template web, whose default version 3 allows IMDSv1
    (HttpTokens optional, hop limit 1) and has a root volume from a snapshot, user data
    and an instance profile. The account's other template, reports (default version 1,
    also optional), is used by no group and must not be touched.

    Exactly one CreateLaunchTemplateVersion from SourceVersion 3 carrying the merged
    MetadataOptions and the source's block device mappings again: AWS copies
    everything else from the source, but drops the root volume's SnapshotId unless the
    mappings are sent (botocore's documentation of SourceVersion). The new version 4
    is described (read back: DescribeLaunchTemplateVersions _4, what AWS stores - the
    source's data with the new options) and dry-run *before* anything else happens; it
    becomes the default; web is tagged with where it was before the default moved, and
    is not updated (it follows $Default).

    DescribeLaunchTemplateVersions _1 (filter) and _2 (action) answer the $Default
    listing, _3 the action's look for a version an earlier run derived (none).
    """
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_default_follower_gets_new_default_version"
    )
    resources = load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path).run()
    assert [r["AutoScalingGroupName"] for r in resources] == ["web"]

    creates = factory.called("CreateLaunchTemplateVersion")
    assert len(creates) == 1, creates
    (create,) = creates
    assert create["LaunchTemplateId"] == WEB
    assert create["SourceVersion"] == "3"
    assert create["LaunchTemplateData"] == {
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                    "SnapshotId": "snap-0fedcba9876543210",
                    "VolumeSize": 50,
                    "VolumeType": "gp3",
                    "Iops": 3000,
                    "Throughput": 125,
                },
            }
        ],
    }
    assert derived_options(create["VersionDescription"], 3) == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
    }
    assert set(create) == {
        "LaunchTemplateId",
        "SourceVersion",
        "VersionDescription",
        "LaunchTemplateData",
        "ClientToken",
    }
    # deterministic, so racing runs (or a retry after a lost answer) create one version
    assert create["ClientToken"].startswith("c7n-imds-") and len(create["ClientToken"]) <= 64

    # The look for an earlier run's version asks only for versions after the source.
    lookups = factory.called("DescribeLaunchTemplateVersions")
    assert len(lookups) == 4, lookups
    assert lookups[2] == {"LaunchTemplateId": WEB, "MinVersion": "4", "MaxResults": 200}
    # the read-back: exactly the version just created
    assert lookups[3] == {"LaunchTemplateId": WEB, "Versions": ["4"]}

    # the pre-flight launches the stored new version, not the source
    assert factory.called("RunInstances") == [
        dry_run(WEB, "4", SubnetId="subnet-0a1b2c3d4e5f60001")
    ]
    assert factory.called("ModifyLaunchTemplate") == [
        {"LaunchTemplateId": WEB, "DefaultVersion": "4"}
    ]
    assert factory.called("CreateOrUpdateTags") == [
        group_tag("web", PREVIOUS, "lt:%s:$Default" % WEB)
    ]
    assert factory.called("UpdateAutoScalingGroup") == []

    # Create, read back, check, record the way back, and only then move the default.
    assert call_order(
        factory,
        "CreateLaunchTemplateVersion",
        "DescribeLaunchTemplateVersions",
        "RunInstances",
        "CreateOrUpdateTags",
        "ModifyLaunchTemplate",
    )[-5:] == [
        ("CreateLaunchTemplateVersion", WEB),
        ("DescribeLaunchTemplateVersions", WEB),
        ("RunInstances", None),
        ("CreateOrUpdateTags", "web"),
        ("ModifyLaunchTemplate", WEB),
    ]

    assert changes(tmp_path, "asg-lt-imdsv2") == {
        "web": {
            "AutoScalingGroupName": "web",
            "Versions": [{"LaunchTemplateId": WEB, "From": "$Default", "VersionNumber": 4}],
        }
    }


def test_set_metadata_access_set_default_false_keeps_default_version(
    placebo_factory, load_policy, tmp_path
):
    """As above with `set-default: false`: the version is still derived from version 3,
    but the template's default is left alone - no ModifyLaunchTemplate - and the group,
    which follows $Default, is not updated either."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_set_default_false_keeps_default_version"
    )
    load_policy(
        set_access_policy(**{"set-default": False}), session_factory=factory, output_dir=tmp_path
    ).run()
    creates = factory.called("CreateLaunchTemplateVersion")
    assert [(c["LaunchTemplateId"], c["SourceVersion"]) for c in creates] == [(WEB, "3")]
    assert factory.called("ModifyLaunchTemplate") == []
    assert factory.called("UpdateAutoScalingGroup") == []


def test_set_metadata_access_set_default_false_leaves_running_instances_alone(
    placebo_factory, load_policy, tmp_path
):
    """`set-default: false` with `running-instances: modify`: web follows $Default,
    which stays version 3 (HttpTokens optional), so web still launches IMDSv1-capable
    instances. Its running instances must not be given options the group does not give
    ("Runs only after the switch, so instances never get options their group would not
    give" - Remediation.update_running_instances), and the outcome file must not report
    them as modified. The flight answers ModifyInstanceMetadataOptions anyway, so a
    regression fails on the assertion, not on a missing file."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_set_default_false_leaves_running_instances_alone"
    )
    load_policy(
        set_access_policy(**{"set-default": False, "running-instances": "modify"}),
        session_factory=factory,
        output_dir=tmp_path,
    ).run()
    assert factory.called("ModifyLaunchTemplate") == []
    assert factory.called("ModifyInstanceMetadataOptions") == []
    outcome = changes(tmp_path, "asg-lt-imdsv2").get("web", {})
    assert not (outcome.get("RunningInstances") or {}).get("Modified"), outcome


API = "lt-0a1b2c3d4e5f60789"


def test_set_metadata_access_pinned_groups_share_one_new_version(
    placebo_factory, load_policy, tmp_path
):
    """api-blue and api-green are both pinned to version 2 of template api (not the
    default: that is version 1). One version is derived from 2 for both; each group is
    pointed at it; the default is not moved, because the source was not the default.

    DescribeLaunchTemplateVersions _3 (versions after 2) returns version 3, whose
    description says it was derived from *version 1* with the very options wanted: not a
    derivative of 2, so it must not be reused. CreateLaunchTemplateVersion answers 4.
    """
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_pinned_groups_share_one_new_version"
    )
    resources = load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path).run()
    assert sorted(r["AutoScalingGroupName"] for r in resources) == ["api-blue", "api-green"]

    creates = factory.called("CreateLaunchTemplateVersion")
    assert len(creates) == 1, creates
    assert creates[0]["LaunchTemplateId"] == API
    assert creates[0]["SourceVersion"] == "2"
    assert creates[0]["LaunchTemplateData"] == {
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"}
    }
    assert derived_options(creates[0]["VersionDescription"], 2) == {
        "HttpTokens": "required",
        "HttpEndpoint": "enabled",
    }
    lookups = [c for c in factory.called("DescribeLaunchTemplateVersions") if "MinVersion" in c]
    assert lookups == [{"LaunchTemplateId": API, "MinVersion": "3", "MaxResults": 200}]

    assert sorted(
        factory.called("UpdateAutoScalingGroup"), key=lambda c: c["AutoScalingGroupName"]
    ) == [
        {
            "AutoScalingGroupName": "api-blue",
            "LaunchTemplate": {"LaunchTemplateId": API, "Version": "4"},
        },
        {
            "AutoScalingGroupName": "api-green",
            "LaunchTemplate": {"LaunchTemplateId": API, "Version": "4"},
        },
    ]
    assert factory.called("ModifyLaunchTemplate") == []
    # one call records both groups (25 a call): a tag call per group would make
    # tagging the slowest part of a large run
    assert factory.called("CreateOrUpdateTags") == [
        {
            "Tags": [
                group_tag("api-blue", PREVIOUS, "lt:%s:2" % API)["Tags"][0],
                group_tag("api-green", PREVIOUS, "lt:%s:2" % API)["Tags"][0],
            ]
        }
    ]
    # Each group is tried in its own first subnet.
    assert sorted(factory.called("RunInstances"), key=lambda c: c["SubnetId"]) == [
        dry_run(API, "4", SubnetId="subnet-0c1c1c1c1c1c1c1c1"),
        dry_run(API, "4", SubnetId="subnet-0c2c2c2c2c2c2c2c2"),
    ]
    order = call_order(factory, "CreateOrUpdateTags", "UpdateAutoScalingGroup")
    for group in ("api-blue", "api-green"):
        assert order.index(("CreateOrUpdateTags", "api-blue")) < order.index(
            ("UpdateAutoScalingGroup", group)
        ), order


BATCH = "lt-0c0ffee0c0ffee0c1"


def test_set_metadata_access_reuses_version_an_interrupted_run_created(
    placebo_factory, load_policy, tmp_path
):
    """A run was interrupted after creating version 4 of template batch from version 2
    (batch's default; group batch is pinned to 2). DescribeLaunchTemplateVersions _3
    (versions after 2) returns 3, someone's unrelated change, and 4, whose description
    is exactly what this run would write: no version is created, 4 is checked, becomes
    the default (2 was the default) and the group is pointed at it."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_reuses_version_an_interrupted_run_created"
    )
    load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path).run()

    assert factory.called("CreateLaunchTemplateVersion") == []
    lookups = [c for c in factory.called("DescribeLaunchTemplateVersions") if "MinVersion" in c]
    assert lookups == [{"LaunchTemplateId": BATCH, "MinVersion": "3", "MaxResults": 200}]
    # the version found again is verified like a new one: its stored data (the
    # listing's) compared with version 2 plus the options, then dry-run
    assert [c["LaunchTemplate"] for c in factory.called("RunInstances")] == [
        {"LaunchTemplateId": BATCH, "Version": "4"}
    ]
    assert "MetadataOptions" not in factory.called("RunInstances")[0]
    assert factory.called("ModifyLaunchTemplate") == [
        {"LaunchTemplateId": BATCH, "DefaultVersion": "4"}
    ]
    assert factory.called("UpdateAutoScalingGroup") == [
        {
            "AutoScalingGroupName": "batch",
            "LaunchTemplate": {"LaunchTemplateId": BATCH, "Version": "4"},
        }
    ]
    assert changes(tmp_path, "asg-lt-imdsv2")["batch"]["Versions"] == [
        {"LaunchTemplateId": BATCH, "From": "2", "VersionNumber": 4}
    ]


def test_set_metadata_access_read_back_difference_leaves_group_and_default(
    placebo_factory, load_policy, tmp_path
):
    """As test_set_metadata_access_default_follower_gets_new_default_version, but the
    read-back (DescribeLaunchTemplateVersions _4: version 4 as AWS stored it) shows the
    root volume without its SnapshotId - what AWS stores for a version made from a
    source without the mappings. The difference is caught before anything launches:
    no pre-flight, no tag, the default stays 3, the group is not touched, version 4 is
    deleted again (DeleteLaunchTemplateVersions _1), and the error and the outcome file
    name the field."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_read_back_difference_leaves_group_and_default"
    )
    policy = load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert len(factory.called("CreateLaunchTemplateVersion")) == 1
    assert factory.called("DescribeLaunchTemplateVersions")[-1] == {
        "LaunchTemplateId": WEB,
        "Versions": ["4"],
    }
    assert factory.called("RunInstances") == []
    assert factory.called("CreateOrUpdateTags") == []
    assert factory.called("ModifyLaunchTemplate") == []
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("DeleteLaunchTemplateVersions") == [
        {"LaunchTemplateId": WEB, "Versions": ["4"]}
    ]

    reason = raised.value.failures["web"]
    assert "BlockDeviceMappings[/dev/xvda].Ebs.SnapshotId" in reason
    assert "snap-0fedcba9876543210" in reason and "left unchanged" in reason
    outcome = changes(tmp_path, "asg-lt-imdsv2")["web"]
    assert outcome["Error"] == reason
    assert outcome["Differences"] == [
        {
            "Field": "BlockDeviceMappings[/dev/xvda].Ebs.SnapshotId",
            "Expected": "snap-0fedcba9876543210",
            "Stored": None,
        }
    ]


def test_set_metadata_access_create_warning_withdraws_version(
    placebo_factory, load_policy, tmp_path
):
    """CreateLaunchTemplateVersion _1 succeeds but carries a Warning (invalid
    parameters AWS accepted without rejecting the request). The version is not used:
    deleted again, no pre-flight, the default and the group untouched, the warning
    named in the error."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_create_warning_withdraws_version"
    )
    policy = load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()
    assert factory.called("DeleteLaunchTemplateVersions") == [
        {"LaunchTemplateId": WEB, "Versions": ["4"]}
    ]
    for operation in (
        "RunInstances",
        "CreateOrUpdateTags",
        "ModifyLaunchTemplate",
        "UpdateAutoScalingGroup",
    ):
        assert factory.called(operation) == [], operation
    reason = raised.value.failures["web"]
    assert "warning" in reason and "InvalidParameterCombination" in reason
