"""End to end: the real `c7n-imds` command in a subprocess against a real moto server.

The estate is seeded here with plain boto3 calls and the expected templates are written
out by hand from the launch configurations' describe output, so these checks do not
reuse the code under test. Where moto deviates from AWS (docs/moto-gaps.md) the expectation
follows what moto *describes*, since that is what the command reads: moto reports
``InstanceMonitoring.Enabled: false`` and ``AssociatePublicIpAddress: false`` when they
were never set, and drops ``NoDevice``.
"""

import base64
import hashlib
import json
from pathlib import Path

import pytest

from c7n_imds.model.outcomes import entries
from tests.conftest import REPO, read_resources
from tests.support.estates import (
    CANARY,
    ODD_NAME,
    PROFILE_ARN,
    USER_DATA,
    USER_DATA_TEXT,
    groups_by_name,
    seed,
)

REMEDIATE = str(REPO / "policies" / "remediate.yml")
DETECT = str(REPO / "policies" / "detect.yml")


def expected_templates(ids):
    """LaunchTemplateData per LC, written out from docs/mapping.md by hand."""
    app, named = ids["app_sg"], ids["named_sg"]

    def interface(public, groups):
        return [
            {
                "DeviceIndex": 0,
                "AssociatePublicIpAddress": public,
                "DeleteOnTermination": True,
                "Groups": groups,
            }
        ]

    return {
        "shared-lc": {
            "ImageId": "ami-11111111",
            "InstanceType": "t3.medium",
            "KeyName": "ops",
            "UserData": USER_DATA,
            "IamInstanceProfile": {"Name": "app-profile"},
            "EbsOptimized": True,
            "Monitoring": {"Enabled": False},
            "NetworkInterfaces": interface(False, [app]),
            "MetadataOptions": {"HttpTokens": "required"},
        },
        "public-lc": {
            "ImageId": "ami-22222222",
            "InstanceType": "t3.small",
            "EbsOptimized": False,
            "Monitoring": {"Enabled": True},
            "NetworkInterfaces": interface(True, [named]),
            "MetadataOptions": {"HttpTokens": "required"},
        },
        "spot-lc": {
            "ImageId": "ami-33333333",
            "InstanceType": "c5.large",
            "EbsOptimized": False,
            "KernelId": "aki-12345678",
            "RamDiskId": "ari-12345678",
            "IamInstanceProfile": {"Arn": PROFILE_ARN},
            "Monitoring": {"Enabled": False},
            "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.042"}},
            "NetworkInterfaces": interface(False, [app]),
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 3,
                "HttpEndpoint": "enabled",
            },
        },
        ODD_NAME: {
            "ImageId": "ami-44444444",
            "InstanceType": "r5.large",
            "EbsOptimized": False,
            "Monitoring": {"Enabled": False},
            "NetworkInterfaces": interface(False, [app]),
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "VolumeSize": 40,
                        "VolumeType": "gp3",
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                        "Throughput": 250,
                        "Iops": 4000,
                    },
                },
                {
                    "DeviceName": "/dev/sdb",
                    "Ebs": {
                        "SnapshotId": "snap-0123456789abcdef0",
                        "VolumeSize": 100,
                        "VolumeType": "io2",
                        "Iops": 5000,
                        "DeleteOnTermination": False,
                    },
                },
                {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"},
            ],
            "MetadataOptions": {"HttpTokens": "required"},
        },
    }


def templates_by_name(ec2):
    return {
        t["LaunchTemplateName"]: t
        for t in ec2.describe_launch_templates(MaxResults=200)["LaunchTemplates"]
    }


def estate_state(session):
    """Everything a run could change, for before/after comparison."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    versions = {}
    for t in templates_by_name(ec2).values():
        versions[t["LaunchTemplateName"]] = (t["DefaultVersionNumber"], t["LatestVersionNumber"])
    groups = {
        name: (
            g.get("LaunchTemplate"),
            g.get("LaunchConfigurationName"),
            sorted((t["Key"], t["Value"]) for t in g.get("Tags", ())),
        )
        for name, g in groups_by_name(autoscaling).items()
    }
    configs = sorted(
        c["LaunchConfigurationName"]
        for c in autoscaling.get_paginator("describe_launch_configurations")
        .paginate()
        .build_full_result()["LaunchConfigurations"]
    )
    return {"templates": versions, "groups": groups, "configs": configs}


def normalize_ebs(data):
    """moto echoes numbers in template data as given; AWS too. Compare as JSON."""
    return json.loads(json.dumps(data, sort_keys=True))


@pytest.fixture
def estate(moto):
    endpoint, session = moto
    return endpoint, session, seed(session)


def test_remediate_converts_every_noncompliant_group_faithfully(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, ids = estate
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    result = c7n_imds_cmd(
        ["run", "-s", str(tmp_path / "out"), "--cache-period", "0", REMEDIATE], endpoint
    )

    matched = {
        r["AutoScalingGroupName"]
        for r in read_resources(tmp_path / "out", "autoscaling-3-convert-to-imdsv2-launch-template")
    }
    assert matched == {"shared-a", "shared-b", "public", "spot", "odd"}

    groups = groups_by_name(autoscaling)
    templates = templates_by_name(ec2)
    expected = expected_templates(ids)
    template_of = {}
    for group, lc in ids["groups"].items():
        if lc == "compliant-lc":
            continue
        spec = groups[group]["LaunchTemplate"]
        assert spec["Version"] == "$Default", group
        template_of[group] = spec["LaunchTemplateId"]
        template = [
            t for t in templates.values() if t["LaunchTemplateId"] == spec["LaunchTemplateId"]
        ][0]
        tags = {t["Key"]: t["Value"] for t in template["Tags"]}
        assert tags["c7n-imds:source"] == lc
        group_tags = {t["Key"]: t["Value"] for t in groups[group]["Tags"]}
        assert group_tags["c7n-imds:previous-launch"] == "lc:" + lc
        version = ec2.describe_launch_template_versions(
            LaunchTemplateId=spec["LaunchTemplateId"], Versions=["$Default"]
        )["LaunchTemplateVersions"][0]
        # the template's own tags stay off its launch data (moto leaks them; the test
        # launcher stores them as AWS does, docs/moto-gaps.md)
        data = dict(version["LaunchTemplateData"])
        assert normalize_ebs(data) == normalize_ebs(expected[lc]), group
        # user data byte for byte, decoded too
        if lc == "shared-lc":
            assert base64.b64decode(data["UserData"]).decode("utf-8") == USER_DATA_TEXT

    # one template per launch configuration, shared by both groups
    assert template_of["shared-a"] == template_of["shared-b"]
    assert len(set(template_of.values())) == 4
    assert len(templates) == 5  # four new + the pre-existing one
    # valid template names derived from the LC names
    odd_template = [t for t in templates.values() if t["LaunchTemplateId"] == template_of["odd"]][0]
    assert odd_template["LaunchTemplateName"].startswith("ingest/lake_(v2)_")

    # compliant and template groups untouched; launch configurations all kept
    assert groups["compliant"]["LaunchConfigurationName"] == "compliant-lc"
    assert "LaunchTemplate" not in groups["compliant"]
    assert groups["lt-group"]["LaunchTemplate"]["LaunchTemplateId"] == ids["template_id"]
    assert len(estate_state(session)["configs"]) == 5

    # one readable line per changed group, and the user data never appears
    log_lines = [line for line in result.stderr.splitlines() if "-> launch template" in line]
    assert len(log_lines) == 5
    assert CANARY not in result.stdout + result.stderr
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
            assert USER_DATA.encode() not in path.read_bytes(), path


def test_second_run_changes_nothing(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, _ = estate
    c7n_imds_cmd(["run", "-s", str(tmp_path / "one"), "--cache-period", "0", REMEDIATE], endpoint)
    after_first = estate_state(session)
    c7n_imds_cmd(["run", "-s", str(tmp_path / "two"), "--cache-period", "0", REMEDIATE], endpoint)
    assert estate_state(session) == after_first
    assert read_resources(tmp_path / "two", "autoscaling-3-convert-to-imdsv2-launch-template") == []


def test_interrupted_run_finishes_the_job(estate, c7n_imds_cmd, tmp_path):
    """A template created by an earlier run that died before switching the group is
    reused, not duplicated."""
    endpoint, session, _ = estate
    c7n_imds_cmd(["run", "-s", str(tmp_path / "one"), "--cache-period", "0", REMEDIATE], endpoint)
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    # put one group back on its configuration, as if the switch had never happened
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName="shared-b", LaunchConfigurationName="shared-lc"
    )
    before = templates_by_name(ec2)
    c7n_imds_cmd(["run", "-s", str(tmp_path / "two"), "--cache-period", "0", REMEDIATE], endpoint)
    after = templates_by_name(ec2)
    assert set(after) == set(before)
    shared_b = groups_by_name(autoscaling)["shared-b"]
    shared_a = groups_by_name(autoscaling)["shared-a"]
    assert (
        shared_b["LaunchTemplate"]["LaunchTemplateId"]
        == shared_a["LaunchTemplate"]["LaunchTemplateId"]
    )


def test_detect_reports_each_control(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, _ = estate
    c7n_imds_cmd(["run", "-s", str(tmp_path), "--cache-period", "0", DETECT], endpoint)
    names = lambda policy, key: sorted(r[key] for r in read_resources(tmp_path, policy))  # noqa
    assert names("autoscaling-3-asg-launch-configuration-imdsv1", "AutoScalingGroupName") == [
        "odd",
        "public",
        "shared-a",
        "shared-b",
        "spot",
    ]
    assert names("autoscaling-9-asg-uses-launch-configuration", "AutoScalingGroupName") == [
        "compliant",
        "odd",
        "public",
        "shared-a",
        "shared-b",
        "spot",
    ]
    configs = read_resources(tmp_path, "autoscaling-3-launch-configuration-imdsv1")
    assert sorted(c["LaunchConfigurationName"] for c in configs) == sorted(
        ["shared-lc", "public-lc", "spot-lc", ODD_NAME]
    )
    # the LC records carry a fingerprint of the user data, never the data
    shared = [c for c in configs if c["LaunchConfigurationName"] == "shared-lc"][0]
    assert shared["UserData"] == {
        "Bytes": len(USER_DATA_TEXT.encode()),
        "Sha256": hashlib.sha256(USER_DATA_TEXT.encode()).hexdigest(),
    }
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_plan_previews_without_changing_anything(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, _ = estate
    before = estate_state(session)
    result = c7n_imds_cmd(["plan", "-s", str(tmp_path), "--cache-period", "0", REMEDIATE], endpoint)
    assert estate_state(session) == before
    assert "launch configuration 'shared-lc' -> launch template shared-lc-imdsv2-" in result.stdout
    assert "groups: shared-a, shared-b" in result.stdout
    assert '"Bytes": %d' % len(USER_DATA_TEXT.encode()) in result.stdout
    assert CANARY not in result.stdout + result.stderr and USER_DATA not in result.stdout
    plan = json.loads(
        (
            tmp_path / "autoscaling-3-convert-to-imdsv2-launch-template" / "imds-plan.json"
        ).read_text()
    )
    assert len(plan["Templates"]) == 4 and plan["Failures"] == {}
    # the contract's plan, per group: every launch-affecting difference (none here:
    # the views of configuration and template agree but for the metadata options)
    changes = {c["AutoScalingGroupName"]: c for c in plan["GroupChanges"]}
    assert set(changes) >= {"shared-a", "shared-b"}
    assert all(c["LaunchChanges"] == [] for c in changes.values()), changes
    assert changes["shared-a"]["MetadataOptions"].startswith("HttpTokens optional")
    assert (
        "group shared-a: launch configuration shared-lc -> launch template "
        "shared-lc-imdsv2-" in result.stdout
    )
    assert "launch changes: none beyond metadata options" in result.stdout
    assert "running instances: none now" in result.stdout


def test_every_policy_file_validates_and_schema_shows_docs(c7n_imds_cmd, moto):
    endpoint, _ = moto
    # exactly what users type (`policies/*.yml`), plus the Lambda variants; c7n-mailer and
    # c7n-org configuration examples live in subfolders so that glob stays valid
    files = sorted(
        str(p)
        for p in list((REPO / "policies").glob("*.yml"))
        + list((REPO / "policies" / "lambda").glob("*.yml"))
    )
    assert files
    c7n_imds_cmd(["validate"] + files, endpoint)
    result = c7n_imds_cmd(["schema", "asg.actions.convert-to-launch-template"], endpoint)
    assert "launch template that requires IMDSv2" in result.stdout
    assert "hop-limit" in result.stdout
    assert "c7n-imds run" in (REPO / "README.md").read_text()


def test_plain_custodian_does_not_know_our_actions(tmp_path, moto):
    """Why `c7n-imds` exists: custodian alone has no plugin loading (README: running it)."""
    import subprocess
    import sys

    from c7n_imds_testing import aws_env

    result = subprocess.run(
        [str(Path(sys.executable).with_name("custodian")), "validate", REMEDIATE],
        env=aws_env(moto[0]),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Configuration invalid" in result.stderr and "'type': 'imds'" in result.stderr


def test_revert_returns_a_converted_group_to_its_configuration(estate, c7n_imds_cmd, tmp_path):
    """moto keeps a group's LaunchTemplate after UpdateAutoScalingGroup switches it back
    to a launch configuration (AWS replaces it), so only the configuration name and the
    tags are checked here; the exact call is checked with placebo data."""
    endpoint, session, _ = estate
    c7n_imds_cmd(["run", "-s", str(tmp_path / "one"), "--cache-period", "0", REMEDIATE], endpoint)
    revert = tmp_path / "revert.yml"
    revert.write_text(
        "policies:\n"
        "  - name: revert-public\n"
        "    resource: asg\n"
        "    filters:\n"
        "      - AutoScalingGroupName: public\n"
        "    actions:\n"
        "      - revert-imds-remediation\n"
    )
    c7n_imds_cmd(["run", "-s", str(tmp_path / "two"), "--cache-period", "0", str(revert)], endpoint)
    group = groups_by_name(session.client("autoscaling"))["public"]
    assert group["LaunchConfigurationName"] == "public-lc"
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert "c7n-imds:previous-launch" not in tags
    assert tags["c7n-imds:exempt"].startswith("reverted by c7n-imds on ")


def test_exempt_groups_are_not_remediated(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, _ = estate
    autoscaling = session.client("autoscaling")
    autoscaling.create_or_update_tags(
        Tags=[
            {
                "ResourceId": "spot",
                "ResourceType": "auto-scaling-group",
                "Key": "c7n-imds:exempt",
                "Value": "legacy agent needs IMDSv1",
                "PropagateAtLaunch": False,
            }
        ]
    )
    c7n_imds_cmd(["run", "-s", str(tmp_path), "--cache-period", "0", REMEDIATE], endpoint)
    current = groups_by_name(autoscaling)
    assert not current["spot"].get("LaunchTemplate")
    assert current["shared-a"].get("LaunchTemplate")


def test_copy_launch_configuration_path(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, ids = estate
    autoscaling = session.client("autoscaling")
    c7n_imds_cmd(
        [
            "run",
            "-s",
            str(tmp_path),
            "--cache-period",
            "0",
            str(REPO / "policies" / "remediate-copy-lc.yml"),
        ],
        endpoint,
    )
    configs = {
        c["LaunchConfigurationName"]: c
        for c in autoscaling.get_paginator("describe_launch_configurations")
        .paginate()
        .build_full_result()["LaunchConfigurations"]
    }
    groups = groups_by_name(autoscaling)
    for group, source in ids["groups"].items():
        if source == "compliant-lc":
            assert groups[group]["LaunchConfigurationName"] == source
            continue
        copy = configs[groups[group]["LaunchConfigurationName"]]
        assert copy["LaunchConfigurationName"].startswith(source[:20])
        assert "-imdsv2-" in copy["LaunchConfigurationName"]
        original = configs[source]
        for field in set(original) | set(copy):
            if field in (
                "LaunchConfigurationName",
                "LaunchConfigurationARN",
                "CreatedTime",
                "MetadataOptions",
            ):
                continue
            assert copy.get(field) == original.get(field), (group, field)
        assert copy["MetadataOptions"]["HttpTokens"] == "required"
    assert (
        groups["shared-a"]["LaunchConfigurationName"]
        == groups["shared-b"]["LaunchConfigurationName"]
    )
    assert len(configs) == 5 + 4  # originals kept, one copy per non-compliant source


def test_cleanup_deletes_only_replaced_unused_configurations(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, ids = estate
    autoscaling = session.client("autoscaling")
    c7n_imds_cmd(["run", "-s", str(tmp_path / "one"), "--cache-period", "0", REMEDIATE], endpoint)
    # a group created on a replaced configuration after the conversion still uses it
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="late",
        LaunchConfigurationName="shared-lc",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        AvailabilityZones=["us-east-1a"],
    )

    def configs():
        return sorted(
            c["LaunchConfigurationName"]
            for c in autoscaling.get_paginator("describe_launch_configurations")
            .paginate()
            .build_full_result()["LaunchConfigurations"]
        )

    soak = (REPO / "policies" / "cleanup.yml").read_text()
    c7n_imds_cmd(
        [
            "run",
            "-s",
            str(tmp_path / "two"),
            "--cache-period",
            "0",
            str(REPO / "policies" / "cleanup.yml"),
        ],
        endpoint,
    )
    assert len(configs()) == 5  # still inside the 14-day soak period
    now = tmp_path / "cleanup-now.yml"
    now.write_text(soak.replace("days: 14", "days: 0"))
    c7n_imds_cmd(["run", "-s", str(tmp_path / "three"), "--cache-period", "0", str(now)], endpoint)
    assert configs() == ["compliant-lc", "shared-lc"]


def test_running_instances_modified_in_place_after_the_switch(estate, c7n_imds_cmd, tmp_path):
    endpoint, session, _ = estate
    ec2 = session.client("ec2")
    policy = tmp_path / "modify.yml"
    policy.write_text(
        (REPO / "policies" / "remediate.yml")
        .read_text()
        .replace(
            "        version: $Default\n",
            "        version: $Default\n        running-instances: modify\n",
            1,
        )
    )
    assert "running-instances: modify" in policy.read_text()

    def tokens():
        return {
            i["InstanceId"]: i["MetadataOptions"]["HttpTokens"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
            if any(t["Value"] == "shared-a" for t in i.get("Tags", ()))
        }

    assert set(tokens().values()) == {"optional"}
    c7n_imds_cmd(["run", "-s", str(tmp_path / "out"), "--cache-period", "0", str(policy)], endpoint)
    assert tokens() and set(tokens().values()) == {"required"}
    changes = entries(
        json.loads(
            (
                tmp_path
                / "out"
                / "autoscaling-3-convert-to-imdsv2-launch-template"
                / "imds-changes.json"
            ).read_text()
        )
    )
    shared_a = [c for c in changes if c["AutoScalingGroupName"] == "shared-a"][0]
    assert shared_a["RunningInstances"]["Modified"] == sorted(tokens())


def test_an_earlier_template_with_other_options_is_not_reused(estate, c7n_imds_cmd, tmp_path):
    """shared-a was moved off its configuration with `http-tokens: preserve` (IMDSv1 still
    allowed). The regular remediation of shared-b must not switch it to that template."""
    endpoint, session, _ = estate
    preserve = tmp_path / "preserve.yml"
    preserve.write_text(
        "policies:\n"
        "  - name: preserve-a\n"
        "    resource: asg\n"
        "    filters:\n"
        "      - AutoScalingGroupName: shared-a\n"
        "    actions:\n"
        "      - type: convert-to-launch-template\n"
        "        http-tokens: preserve\n"
    )
    c7n_imds_cmd(
        ["run", "-s", str(tmp_path / "one"), "--cache-period", "0", str(preserve)], endpoint
    )
    result = c7n_imds_cmd(
        ["run", "-s", str(tmp_path / "two"), "--cache-period", "0", REMEDIATE],
        endpoint,
        check=False,
    )
    assert result.returncode != 0
    failed = [line for line in result.stderr.splitlines() if line.startswith(" - shared-b:")]
    assert failed and "set-metadata-access" in failed[0]
    groups = groups_by_name(session.client("autoscaling"))
    assert groups["shared-b"]["LaunchConfigurationName"] == "shared-lc"
    assert not groups["shared-b"].get("LaunchTemplate")
    assert groups["public"].get("LaunchTemplate")  # the others were converted
