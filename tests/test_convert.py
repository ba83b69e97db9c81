"""`convert-to-launch-template` (c7n_imds/actions/convert.py, templates.py) against
recorded AWS responses (placebo flight data).

Flight data (tests/data/placebo/<test name>/) is hand-written in AWS's response shape,
where moto differs (docs/moto-gaps.md): launch configurations report
``InstanceMonitoring.Enabled`` (true when never set), omit ``AssociatePublicIpAddress``
unless it was set, keep ``NoDevice: true`` and include ``PlacementTenancy``; a group
switched to a template carries only ``LaunchTemplate``. botocore's own shape check runs
over these files in tests/test_flights.py.

A policy run makes these calls, in this order: DescribeAutoScalingGroups (custodian's
listing), DescribeLaunchConfigurations (the `imds` filter), then the action's own
DescribeAutoScalingGroups (it re-reads the groups), DescribeLaunchConfigurations,
DescribeSubnets/DescribeSecurityGroups when names must be resolved,
DescribeLaunchTemplates, CreateLaunchTemplate per configuration, and per group
CreateOrUpdateTags then UpdateAutoScalingGroup. Placebo answers each operation's calls
in order, whatever their parameters, so where two calls of one operation get different
answers the test says which call gets which.

The expected template names and client tokens are computed here from the documented
rule (LC name, ``-imdsv2-``, the first 10 hex digits of SHA-256 of "name NUL created")
rather than by the code under test: a re-run only finds its own templates if the
name is stable.
"""

import hashlib
import json

import pytest
from c7n.schema import generate, validate

from c7n_imds.actions import RemediationError
from c7n_imds.model.outcomes import entries
from tests.support.placebo import changes, dry_run, group_tag, recording_factory

CREATED_TEXT = "2021-03-04T05:06:07Z"  # the flights' LC CreatedTime, 05:06:07.123 UTC
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/legacy/legacy-batch"
PREVIOUS = "c7n-imds:previous-launch"
SOURCE = "c7n-imds:source"


def template_name(lc_name):
    digest = hashlib.sha256(("%s\0%s" % (lc_name, CREATED_TEXT)).encode()).hexdigest()
    return "%s-imdsv2-%s" % (lc_name, digest[:10])


def client_token(name, launch_template_data):
    """The documented rule: the digest covers the name and the data, so a re-run with
    other options after the template was deleted is a new request, not a mismatch."""
    text = json.dumps([name, launch_template_data, None], sort_keys=True)
    return "c7n-imds-" + hashlib.sha256(text.encode()).hexdigest()[:48]


def convert_policy(**options):
    return {
        "name": "asg-lc-to-imdsv2",
        "resource": "asg",
        "filters": [{"type": "imds", "key": "LaunchType", "value": "launch-configuration"}],
        "actions": [dict({"type": "convert-to-launch-template"}, **options)],
    }


def previous_launch_tag(group, lc_name):
    return {
        "Tags": [
            {
                "ResourceId": group,
                "ResourceType": "auto-scaling-group",
                "Key": PREVIOUS,
                "Value": "lc:" + lc_name,
                "PropagateAtLaunch": False,
            }
        ]
    }


def switched(group, template_id, version="$Default"):
    return {
        "AutoScalingGroupName": group,
        "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": version},
    }


# -- test 4 ------------------------------------------------------------------------------

# base64 of "#!/bin/bash\nyum install -y legacy-agent\necho 'grüße' > /etc/motd\n" (UTF-8),
# as DescribeLaunchConfigurations returns it: the template must carry it unchanged.
LEGACY_USER_DATA = (
    "IyEvYmluL2Jhc2gKeXVtIGluc3RhbGwgLXkgbGVnYWN5LWFnZW50CmVjaG8gJ2dyw7zDn2UnID4gL2V0Yy9tb3RkCg=="
)


def test_convert_carries_every_launch_configuration_setting(placebo_factory, load_policy, tmp_path):
    """Four groups, two configurations: web-a and web-b share web-lc (one template),
    legacy and legacy-az share legacy-lc, which has everything: security group names
    (default VPC, found through legacy's subnets with DescribeSubnets -> VpcId, and for
    legacy-az, which has no subnets, DescribeVpcs isDefault; the names resolved with one
    DescribeSecurityGroups), a public IP,
    a spot price, an instance profile ARN, dedicated tenancy, kernel and ramdisk, an EBS
    volume, a suppressed device (NoDevice true) and an instance store, ClassicLink
    settings, detailed monitoring off. web-lc has AWS's empty strings for KeyName /
    KernelId / RamdiskId / UserData, monitoring reported true, no public IP setting.

    CreateLaunchTemplate_1 answers web-lc's template (lt-0f1...), _2 legacy-lc's
    (lt-0f2...): configurations are converted in the order their first group is listed.
    """
    factory = recording_factory(
        placebo_factory, "test_convert_carries_every_launch_configuration_setting"
    )
    resources = load_policy(convert_policy(), session_factory=factory, output_dir=tmp_path).run()
    assert sorted(r["AutoScalingGroupName"] for r in resources) == [
        "legacy",
        "legacy-az",
        "web-a",
        "web-b",
    ]

    creates = factory.called("CreateLaunchTemplate")
    assert [c["LaunchTemplateName"] for c in creates] == [
        template_name("web-lc"),
        template_name("legacy-lc"),
    ]
    web, legacy = creates
    for create, lc_name in ((web, "web-lc"), (legacy, "legacy-lc")):
        assert create["ClientToken"] == client_token(
            create["LaunchTemplateName"], create["LaunchTemplateData"]
        )
        assert len(create["ClientToken"]) <= 64
        assert len(create["TagSpecifications"]) == 1
        spec = create["TagSpecifications"][0]
        assert spec["ResourceType"] == "launch-template"
        tags = {t["Key"]: t["Value"] for t in spec["Tags"]}
        assert tags[SOURCE] == lc_name
        assert tags["c7n-imds:source-created"] == CREATED_TEXT

    assert web["LaunchTemplateData"] == {
        "ImageId": "ami-0abcdef1234567890",
        "InstanceType": "t3.micro",
        "EbsOptimized": True,
        "Monitoring": {"Enabled": True},
        "IamInstanceProfile": {"Name": "web-profile"},
        "SecurityGroupIds": ["sg-0a0a0a0a0a0a0a0a1"],
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 1,
            "HttpEndpoint": "enabled",
        },
    }
    data = legacy["LaunchTemplateData"]
    expected = {
        "ImageId": "ami-0123456789abcdef0",
        "InstanceType": "c5.large",
        "KeyName": "ops",
        "KernelId": "aki-0123456789abcdef0",
        "RamDiskId": "ari-0123456789abcdef0",
        "UserData": LEGACY_USER_DATA,
        "EbsOptimized": False,
        "Monitoring": {"Enabled": False},
        "IamInstanceProfile": {"Arn": PROFILE_ARN},
        "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.042"}},
        "Placement": {"Tenancy": "dedicated"},
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
            {"DeviceName": "/dev/sdb", "NoDevice": ""},
            {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
        ],
        "NetworkInterfaces": [
            {
                "DeviceIndex": 0,
                "AssociatePublicIpAddress": True,
                "DeleteOnTermination": True,
                "Groups": ["sg-0e0e0e0e0e0e0e0e1", "sg-0c0ffee0000000001", "sg-0f0f0f0f0f0f0f0f2"],
            }
        ],
        "MetadataOptions": {"HttpTokens": "required"},
    }
    for key in sorted(set(expected) | set(data)):
        assert data.get(key) == expected.get(key), "LaunchTemplateData.%s" % key
    assert "SecurityGroupIds" not in data and "ClassicLinkVPCId" not in json.dumps(data)

    # Names resolved in the VPC of the group's subnets (or the default VPC), one call each.
    assert factory.called("DescribeSubnets") == [
        {
            "Filters": [
                {
                    "Name": "subnet-id",
                    "Values": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                }
            ]
        }
    ]
    assert factory.called("DescribeVpcs") == [
        {"Filters": [{"Name": "isDefault", "Values": ["true"]}]}
    ]
    sg_calls = factory.called("DescribeSecurityGroups")
    assert len(sg_calls) == 1
    assert sorted(sg_calls[0]["Filters"], key=lambda f: f["Name"]) == [
        {"Name": "group-name", "Values": ["legacy-web", "ssh"]},
        {"Name": "vpc-id", "Values": ["vpc-0d1e2f3a4b5c60001"]},
    ]

    web_id, legacy_id = "lt-0f1000000000000f1", "lt-0f2000000000000f2"
    assert sorted(
        factory.called("UpdateAutoScalingGroup"), key=lambda c: c["AutoScalingGroupName"]
    ) == [
        switched("legacy", legacy_id),
        switched("legacy-az", legacy_id),
        switched("web-a", web_id),
        switched("web-b", web_id),
    ]
    # One CreateOrUpdateTags per launch configuration, covering all its groups.
    tag_calls = factory.called("CreateOrUpdateTags")
    assert len(tag_calls) == 2
    assert sorted(
        ({"Tags": [t]} for c in tag_calls for t in c["Tags"]),
        key=lambda c: c["Tags"][0]["ResourceId"],
    ) == [
        previous_launch_tag("legacy", "legacy-lc"),
        previous_launch_tag("legacy-az", "legacy-lc"),
        previous_launch_tag("web-a", "web-lc"),
        previous_launch_tag("web-b", "web-lc"),
    ]
    # Each template is tried with a RunInstances DryRun before its groups are switched;
    # groups that would launch identically (same subnet and type) share one check.
    preflights = factory.called("RunInstances")
    assert {c["LaunchTemplate"]["LaunchTemplateId"] for c in preflights} == {legacy_id, web_id}
    assert 2 <= len(preflights) <= 4
    # the version AWS stored, by number, after the read-back
    assert all(c["DryRun"] is True and c["LaunchTemplate"]["Version"] == "1" for c in preflights), (
        preflights
    )
    # Each group is tagged before it is switched, so a crash in between leaves a way back.
    ops = [
        (name, group)
        for _, name, params in factory.api_calls
        if name in ("CreateOrUpdateTags", "UpdateAutoScalingGroup")
        for group in (
            [params["AutoScalingGroupName"]]
            if name == "UpdateAutoScalingGroup"
            else [t["ResourceId"] for t in params["Tags"]]
        )
    ]
    for group in ("web-a", "web-b", "legacy", "legacy-az"):
        assert ops.index(("CreateOrUpdateTags", group)) < ops.index(
            ("UpdateAutoScalingGroup", group)
        ), ops

    changes = entries(json.loads((tmp_path / "asg-lc-to-imdsv2" / "imds-changes.json").read_text()))
    assert sorted(
        (c["AutoScalingGroupName"], c["LaunchTemplateId"], c["TemplateCreated"]) for c in changes
    ) == [
        ("legacy", legacy_id, True),
        ("legacy-az", legacy_id, True),
        ("web-a", web_id, True),
        ("web-b", web_id, True),
    ]


# -- test 5 ------------------------------------------------------------------------------


def test_convert_rerun_reuses_own_template_and_refuses_foreign_one(
    placebo_factory, load_policy, tmp_path
):
    """A re-run, or a run after one interrupted between creating a template and
    switching: DescribeLaunchTemplates already returns web-lc's template, tagged
    c7n-imds:source=web-lc, so nothing is created and web-a is switched to it. A template
    of the name squat-lc's would get exists *without* our tag: squatted fails, is not
    switched, and the error names it. already-done was listed on done-lc but has been
    switched since (the action's own DescribeAutoScalingGroups shows only LaunchTemplate,
    as AWS does): it is left alone.
    """
    factory = recording_factory(
        placebo_factory, "test_convert_rerun_reuses_own_template_and_refuses_foreign_one"
    )
    policy = load_policy(convert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert factory.called("CreateLaunchTemplate") == []
    lookup = factory.called("DescribeLaunchTemplates")
    assert len(lookup) == 1
    assert lookup[0]["Filters"] == [
        {
            "Name": "launch-template-name",
            "Values": sorted([template_name("squat-lc"), template_name("web-lc")]),
        }
    ]
    assert factory.called("UpdateAutoScalingGroup") == [switched("web-a", "lt-0f1000000000000f1")]
    assert factory.called("CreateOrUpdateTags") == [previous_launch_tag("web-a", "web-lc")]
    # The action re-read exactly the listed groups.
    assert factory.called("DescribeAutoScalingGroups")[-1]["AutoScalingGroupNames"] == [
        "web-a",
        "squatted",
        "already-done",
    ]

    error = raised.value
    assert set(error.failures) == {"squatted"}
    reason = error.failures["squatted"]
    assert template_name("squat-lc") in reason
    assert "already exists" in reason and "not created by c7n-imds" in reason
    assert "squatted" in str(error) and "web-a" not in str(error)

    changes = entries(json.loads((tmp_path / "asg-lc-to-imdsv2" / "imds-changes.json").read_text()))
    assert {
        c["AutoScalingGroupName"]: c.get("TemplateCreated", c.get("Error")) for c in changes
    } == {"web-a": False, "squatted": reason}


def test_convert_refuses_a_template_another_principal_created(
    placebo_factory, load_policy, tmp_path
):
    """The same estate, but web-lc's template - right name, right c7n-imds tags - was
    created (CreatedBy) by arn:aws:iam::123456789012:user/intruder, while the policy
    runs as role custodian (GetCallerIdentity: a session of it). Anyone may create a
    template of that name with those tags: web-a fails naming the template and its
    creator, is not switched, the template is neither read further, used, nor deleted,
    and nothing is created in its place."""
    factory = recording_factory(
        placebo_factory, "test_convert_refuses_a_template_another_principal_created"
    )
    policy = load_policy(convert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    for operation in (
        "CreateLaunchTemplate",
        "DeleteLaunchTemplate",
        "RunInstances",
        "DescribeLaunchTemplateVersions",
        "UpdateAutoScalingGroup",
        "CreateOrUpdateTags",
    ):
        assert factory.called(operation) == [], operation
    assert set(raised.value.failures) == {"web-a", "squatted"}
    reason = raised.value.failures["web-a"]
    assert template_name("web-lc") in reason and "lt-0f1000000000000f1" in reason
    assert (
        "was created by arn:aws:iam::123456789012:user/intruder, which is not trusted" in reason
    ), reason
    assert "neither launches from it nor deletes it" in reason
    assert "trusted-principals" in reason


def test_convert_adopts_a_template_a_named_principal_created(placebo_factory, load_policy):
    """The race above, with the template made by another role's session
    (assumed-role/custodian/c7n) while this run is role ci-runner: trusted only
    because the policy names arn:aws:iam::123456789012:role/automation/custodian in
    trusted-principals (a role's ARN with its path matches its sessions)."""
    factory = recording_factory(
        placebo_factory, "test_convert_adopts_a_template_a_named_principal_created"
    )
    load_policy(
        convert_policy(
            **{"trusted-principals": ["arn:aws:iam::123456789012:role/automation/custodian"]}
        ),
        session_factory=factory,
    ).run()
    assert factory.called("UpdateAutoScalingGroup") == [switched("web-a", "lt-0f1000000000000f1")]


def test_convert_create_race_reuses_template_made_meanwhile(placebo_factory, load_policy):
    """Another run creates the template between our look and our create:
    CreateLaunchTemplate fails with InvalidLaunchTemplateName.AlreadyExistsException,
    the second DescribeLaunchTemplates finds it tagged with our source, and the group is
    switched to it."""
    factory = recording_factory(
        placebo_factory, "test_convert_create_race_reuses_template_made_meanwhile"
    )
    load_policy(convert_policy(), session_factory=factory).run()
    assert len(factory.called("CreateLaunchTemplate")) == 1
    assert [c["Filters"][0]["Values"] for c in factory.called("DescribeLaunchTemplates")] == [
        [template_name("web-lc")],
        [template_name("web-lc")],
    ]
    assert factory.called("UpdateAutoScalingGroup") == [switched("web-a", "lt-0f1000000000000f1")]


def test_convert_template_not_yet_visible_after_already_exists(placebo_factory, load_policy):
    """CreateLaunchTemplate says the name is taken, but EC2 (eventually consistent)
    does not list the template yet: that group fails with a clear reason and the next
    configuration (good-lc, CreateLaunchTemplate_2) is still converted."""
    factory = recording_factory(
        placebo_factory, "test_convert_template_not_yet_visible_after_already_exists"
    )
    policy = load_policy(convert_policy(), session_factory=factory)
    with pytest.raises(RemediationError) as raised:
        policy.run()
    assert set(raised.value.failures) == {"web-a"}
    assert template_name("web-lc") in raised.value.failures["web-a"]
    assert factory.called("UpdateAutoScalingGroup") == [switched("good", "lt-0a1000000000000a1")]


# -- test 6 ------------------------------------------------------------------------------


def test_convert_one_failing_group_does_not_stop_the_others(placebo_factory, load_policy, tmp_path):
    """Five groups: good converts; bad-update's UpdateAutoScalingGroup (the second one
    made) fails with ValidationError; bad-sg's configuration names a security group that
    does not exist in its VPC; lc-gone's configuration was deleted; bad-preflight's
    template is refused by the RunInstances DryRun pre-flight (the third one made:
    InvalidAMIID.NotFound). good is switched; the run then fails with a RemediationError
    naming the four others and why, and none of them was switched."""
    factory = recording_factory(
        placebo_factory, "test_convert_one_failing_group_does_not_stop_the_others"
    )
    policy = load_policy(convert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert [c["LaunchTemplateName"] for c in factory.called("CreateLaunchTemplate")] == [
        template_name("good-lc"),
        template_name("update-lc"),
        template_name("refused-lc"),
    ]
    assert [c["LaunchTemplate"]["LaunchTemplateId"] for c in factory.called("RunInstances")] == [
        "lt-0a1000000000000a1",
        "lt-0a2000000000000a2",
        "lt-0a3000000000000a3",
    ]
    assert factory.called("UpdateAutoScalingGroup") == [
        switched("good", "lt-0a1000000000000a1"),
        switched("bad-update", "lt-0a2000000000000a2"),
    ]

    failures = raised.value.failures
    assert sorted(failures) == ["bad-preflight", "bad-sg", "bad-update", "lc-gone"]
    assert "ValidationError" in failures["bad-update"]
    assert "bad-update is pending delete" in failures["bad-update"]
    assert "lt-0a2000000000000a2" in failures["bad-update"]
    assert "'does-not-exist'" in failures["bad-sg"] and "'named-lc'" in failures["bad-sg"]
    assert "'vanished-lc'" in failures["lc-gone"]
    assert "no longer exists" in failures["lc-gone"]
    assert "InvalidAMIID.NotFound" in failures["bad-preflight"]
    assert "lt-0a3000000000000a3" in failures["bad-preflight"]
    message = str(raised.value)
    for group in ("bad-update", "bad-sg", "lc-gone", "bad-preflight"):
        assert " - %s: " % group in message
    assert " - good:" not in message

    changes = entries(json.loads((tmp_path / "asg-lc-to-imdsv2" / "imds-changes.json").read_text()))
    by_group = {c["AutoScalingGroupName"]: c for c in changes}
    assert by_group["good"]["LaunchTemplateId"] == "lt-0a1000000000000a1"
    assert {g for g, c in by_group.items() if "Error" in c} == {
        "bad-update",
        "bad-sg",
        "lc-gone",
        "bad-preflight",
    }


# -- test 7 ------------------------------------------------------------------------------


def test_convert_options_reach_the_api(placebo_factory, load_policy):
    """hop-limit 2, http-endpoint enabled and version $Latest reach CreateLaunchTemplate
    and UpdateAutoScalingGroup; the configuration had hop limit 1, endpoint disabled."""
    factory = recording_factory(placebo_factory, "test_convert_options_reach_the_api")
    load_policy(
        convert_policy(**{"hop-limit": 2, "http-endpoint": "enabled", "version": "$Latest"}),
        session_factory=factory,
    ).run()
    (create,) = factory.called("CreateLaunchTemplate")
    assert create["LaunchTemplateData"]["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
    }
    assert factory.called("UpdateAutoScalingGroup") == [
        switched("containers", "lt-0c4000000000000c4", "$Latest")
    ]


@pytest.fixture(scope="module")
def asg_schema():
    return generate(["aws.asg"])


@pytest.mark.parametrize(
    "options",
    [
        {"hop-limit": 1},
        {"hop-limit": 64},
        {"hop-limit": "preserve"},
        {"http-endpoint": "disabled"},
        {"version": "$Default"},
        {"version": "$Latest"},
        {"http-tokens": "preserve"},
        {},
    ],
)
def test_convert_schema_accepts(asg_schema, options):
    assert validate({"policies": [convert_policy(**options)]}, asg_schema) == []


@pytest.mark.parametrize(
    "options",
    [
        {"hop-limit": 0},
        {"hop-limit": 65},
        {"hop-limit": "2"},
        {"hop-limit": True},
        {"version": 3},
        {"version": "3"},
        {"http-endpoint": "on"},
        {"http-tokens": "optional"},
        {"hop-limits": 2},
    ],
)
def test_convert_schema_rejects(asg_schema, options):
    errors = validate({"policies": [convert_policy(**options)]}, asg_schema)
    assert errors, "accepted %r" % options
    assert "asg-lc-to-imdsv2" in str(errors[0]) or errors[1] == "asg-lc-to-imdsv2"


# -- the pre-flight check and the read-back -------------------------------------------

PUB_TEMPLATE, PRIV_TEMPLATE = "lt-0d1000000000000d1", "lt-0d2000000000000d2"


def test_convert_preflight_refusal_leaves_group_unswitched(placebo_factory, load_policy, tmp_path):
    """pub-app's configuration pub-lc (public IP, so the template has a network
    interface) names an arm64 AMI with an x86_64 instance type; priv-lc is fine. Both
    templates are created (CreateLaunchTemplate _1 pub, _2 priv). RunInstances _1 (DryRun
    for pub-app) fails with InvalidParameterValue - not DryRunOperation - so pub-app is
    neither tagged nor switched; _2 answers DryRunOperation (HTTP 412, what AWS sends
    when the launch would succeed) and priv-app is switched. The run then fails naming
    pub-app and the pre-flight."""
    factory = recording_factory(
        placebo_factory, "test_convert_preflight_refusal_leaves_group_unswitched"
    )
    policy = load_policy(convert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert factory.called("RunInstances") == [
        dry_run(
            PUB_TEMPLATE,
            "1",
            NetworkInterfaces=[
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": True,
                    "Groups": ["sg-0a0a0a0a0a0a0a0a1"],
                    "DeleteOnTermination": True,
                    "SubnetId": "subnet-0aa0000000000aa01",
                }
            ],
        ),
        dry_run(PRIV_TEMPLATE, "1", SubnetId="subnet-0bb0000000000bb01"),
    ]
    # pub's template failed its check and no group uses it: withdrawn
    assert factory.called("DeleteLaunchTemplate") == [{"LaunchTemplateId": PUB_TEMPLATE}]
    assert factory.called("UpdateAutoScalingGroup") == [
        {
            "AutoScalingGroupName": "priv-app",
            "LaunchTemplate": {"LaunchTemplateId": PRIV_TEMPLATE, "Version": "$Default"},
        }
    ]
    assert factory.called("CreateOrUpdateTags") == [group_tag("priv-app", PREVIOUS, "lc:priv-lc")]

    error = raised.value
    assert set(error.failures) == {"pub-app"}
    reason = error.failures["pub-app"]
    assert "pre-flight" in reason
    assert "InvalidParameterValue" in reason and "arm64" in reason
    assert PUB_TEMPLATE in reason
    assert " - pub-app: " in str(error) and "priv-app" not in str(error)

    done = changes(tmp_path, "asg-lc-to-imdsv2")
    assert done["pub-app"]["Error"] == reason
    assert done["priv-app"]["LaunchTemplateId"] == PRIV_TEMPLATE


def test_convert_without_verify_makes_no_preflight_call(placebo_factory, load_policy, tmp_path):
    """The same estate with `verify: false`: no RunInstances call at all, and both
    groups are switched (the flight holds no RunInstances answer)."""
    factory = recording_factory(
        placebo_factory, "test_convert_without_verify_makes_no_preflight_call"
    )
    load_policy(convert_policy(verify=False), session_factory=factory, output_dir=tmp_path).run()
    assert factory.called("RunInstances") == []
    assert factory.called("UpdateAutoScalingGroup") == [
        {
            "AutoScalingGroupName": "pub-app",
            "LaunchTemplate": {"LaunchTemplateId": PUB_TEMPLATE, "Version": "$Default"},
        },
        {
            "AutoScalingGroupName": "priv-app",
            "LaunchTemplate": {"LaunchTemplateId": PRIV_TEMPLATE, "Version": "$Default"},
        },
    ]


def test_convert_create_warning_withdraws_template(placebo_factory, load_policy, tmp_path):
    """CreateLaunchTemplate _1 answers with a Warning: the new template is deleted
    (DeleteLaunchTemplate _1) - no group uses it yet - and the group stays on its
    launch configuration, untagged."""
    factory = recording_factory(placebo_factory, "test_convert_create_warning_withdraws_template")
    policy = load_policy(
        convert_policy(**{"hop-limit": 2, "http-endpoint": "enabled", "version": "$Latest"}),
        session_factory=factory,
        output_dir=tmp_path,
    )
    with pytest.raises(RemediationError) as raised:
        policy.run()
    assert factory.called("DeleteLaunchTemplate") == [{"LaunchTemplateId": "lt-0c4000000000000c4"}]
    assert factory.called("RunInstances") == []
    assert factory.called("CreateOrUpdateTags") == []
    assert factory.called("UpdateAutoScalingGroup") == []
    reason = raised.value.failures["containers"]
    assert "warning" in reason and "HttpPutResponseHopLimit 2" in reason
