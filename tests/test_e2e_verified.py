"""End to end: the pack remediates an estate someone else built, and every group then
launches exactly what it launched before, plus IMDSv2 - snapshots included - judged on
a moto server that stores template versions as AWS does (c7n_imds_testing restores
SourceVersion inheritance and its snapshot rule, version deletion, paging and
attribute-based instance types). Then: every kill point between two changes converges
on the next run.
"""

import copy
import json
import urllib.request

import pytest

from c7n_imds.model.outcomes import entries
from c7n_imds_testing import aws_env, run_c7n_imds
from tests import faults
from tests.conftest import REPO

REMEDIATE = str(REPO / "policies" / "remediate.yml")
DETECT = str(REPO / "policies" / "detect.yml")
USER_DATA = "IyEvYmluL2Jhc2gKL29wdC9hcHAvc3RhcnQgLS1zZWNyZXQ9aHVudGVyMgo="


def arm64_image(ec2):
    return ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["arm64"]}])["Images"][
        0
    ]["ImageId"]


def seed(session):
    """Templates with snapshot-backed data volumes on $Default, a pinned version, a
    $Latest version (and a one-version template followed as $Latest, whose default
    must move too), a mixed instances policy with an arm64 per-override template, an
    attribute-based template and a launch configuration; all allow IMDSv1. Returns
    {group: what it launches from} for the checks."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    ][:2]
    sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc["VpcId"])[
        "GroupId"
    ]
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=100)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    data_volume = {
        "DeviceName": "/dev/sdf",
        "Ebs": {
            "SnapshotId": snapshot,
            "VolumeType": "gp3",
            "Iops": 4000,
            "Throughput": 250,
            "DeleteOnTermination": False,
        },
    }
    root = {
        "DeviceName": "/dev/xvda",
        "Ebs": {"VolumeSize": 30, "VolumeType": "gp3", "Encrypted": True},
    }
    optional = {"HttpTokens": "optional", "HttpEndpoint": "enabled"}
    base = {
        "ImageId": "ami-12c6146b",
        "InstanceType": "m5.large",
        "UserData": USER_DATA,
        "SecurityGroupIds": [sg],
        "IamInstanceProfile": {"Name": "app-profile"},
        "BlockDeviceMappings": [root, data_volume],
        "MetadataOptions": optional,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "app", "Value": "orders"}]}
        ],
    }

    def template(name, data, *more):
        template_id = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)[
            "LaunchTemplate"
        ]["LaunchTemplateId"]
        for extra in more:  # further versions, each whole
            ec2.create_launch_template_version(
                LaunchTemplateId=template_id, LaunchTemplateData=extra
            )
        return template_id

    arm = arm64_image(ec2)
    ids = {
        "data": template("data", base),
        "pinned": template(
            "pinned",
            dict(base, InstanceType="c5.large"),
            dict(
                {k: v for k, v in base.items() if k != "SecurityGroupIds"},
                InstanceType="c5.xlarge",
                NetworkInterfaces=[
                    {
                        "DeviceIndex": 0,
                        "AssociatePublicIpAddress": True,
                        "Groups": [sg],
                        "DeleteOnTermination": True,
                    },
                    {"DeviceIndex": 1, "Groups": [sg], "DeleteOnTermination": True},
                ],
            ),
        ),
        "latest": template("latest", base, dict(base, InstanceType="r5.large")),
        # one version, default and latest at once, followed as $Latest
        "fresh": template("fresh", dict(base, InstanceType="t3.large")),
        "mixed-base": template("mixed-base", base),
        "mixed-arm": template("mixed-arm", dict(base, ImageId=arm, InstanceType="m6g.large")),
        "attribute": template(
            "attribute",
            dict(
                {k: v for k, v in base.items() if k != "InstanceType"},
                InstanceRequirements={
                    "VCpuCount": {"Min": 2, "Max": 4},
                    "MemoryMiB": {"Min": 4096, "Max": 16384},
                },
            ),
        ),
    }
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="legacy-lc",
        ImageId="ami-12c6146b",
        InstanceType="t3.small",
        SecurityGroups=[sg],
        UserData="#!/bin/bash\necho legacy\n",
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/sdf",
                "Ebs": {"SnapshotId": snapshot, "VolumeType": "gp3", "DeleteOnTermination": False},
            }
        ],
    )

    def group(name, **launch):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=4,
            DesiredCapacity=0,
            VPCZoneIdentifier=",".join(subnets),
            **launch,
        )

    spec = {
        "data": ("data", "$Default"),
        "pinned": ("pinned", "2"),
        "latest": ("latest", "$Latest"),
        "fresh": ("fresh", "$Latest"),
    }
    for name, (template_name, version) in spec.items():
        group(name, LaunchTemplate={"LaunchTemplateId": ids[template_name], "Version": version})
    group(
        "mixed",
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {
                    "LaunchTemplateId": ids["mixed-base"],
                    "Version": "$Default",
                },
                "Overrides": [
                    {"InstanceType": "c5.large"},
                    {
                        "InstanceType": "m6g.large",
                        "LaunchTemplateSpecification": {
                            "LaunchTemplateId": ids["mixed-arm"],
                            "Version": "1",
                        },
                    },
                ],
            }
        },
    )
    group("attribute", LaunchTemplate={"LaunchTemplateId": ids["attribute"], "Version": "$Default"})
    group("legacy", LaunchConfigurationName="legacy-lc")
    session.client("sqs").create_queue(QueueName="c7n-mailer")
    return ids


def launch_data(session):
    """{group: [(template name, launch template data)]} of what each group launches
    now, and {template name: default version number}."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    result = {}
    for asg in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]:
        policy = (asg.get("MixedInstancesPolicy") or {}).get("LaunchTemplate")
        specs = (
            (
                [policy["LaunchTemplateSpecification"]]
                + [
                    o["LaunchTemplateSpecification"]
                    for o in policy["Overrides"]
                    if o.get("LaunchTemplateSpecification")
                ]
            )
            if policy
            else ([asg["LaunchTemplate"]] if asg.get("LaunchTemplate") else [])
        )
        if not specs:
            config = autoscaling.describe_launch_configurations(
                LaunchConfigurationNames=[asg["LaunchConfigurationName"]]
            )["LaunchConfigurations"][0]
            result[asg["AutoScalingGroupName"]] = [("lc", config)]
            continue
        result[asg["AutoScalingGroupName"]] = [
            (v["LaunchTemplateName"], v["LaunchTemplateData"])
            for spec in specs
            for v in ec2.describe_launch_template_versions(
                LaunchTemplateId=spec["LaunchTemplateId"],
                Versions=[spec.get("Version") or "$Default"],
            )["LaunchTemplateVersions"]
        ]
    defaults = {
        t["LaunchTemplateName"]: (t["DefaultVersionNumber"], t["LatestVersionNumber"])
        for t in ec2.describe_launch_templates()["LaunchTemplates"]
    }
    return result, defaults


def required(data):
    return dict(
        copy.deepcopy(data),
        MetadataOptions=dict(data.get("MetadataOptions") or {}, HttpTokens="required"),
    )


def assert_remediated(before, after, defaults, context=""):
    for group in ("data", "pinned", "latest", "fresh", "mixed", "attribute"):
        assert [name for name, _ in after[group]] == [name for name, _ in before[group]]
        for (name, was), (_, now) in zip(before[group], after[group]):
            # every setting identical - snapshot, user data, interfaces, tags - but IMDS
            assert now == required(was), (context, group, name)
    snapshot = before["data"][0][1]["BlockDeviceMappings"][1]["Ebs"]["SnapshotId"]
    assert after["data"][0][1]["BlockDeviceMappings"][1]["Ebs"]["SnapshotId"] == snapshot
    # the configuration became a template with the same snapshot
    ((name, converted),) = after["legacy"]
    assert name.startswith("legacy-lc-imdsv2-"), context
    assert converted["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == snapshot
    assert converted["MetadataOptions"]["HttpTokens"] == "required"
    # EC2.170 judges defaults: moved where the source was the default; one new version
    # per source version, however often the run was interrupted
    assert {k: v for k, v in defaults.items() if not k.startswith("legacy-lc")} == {
        "data": (2, 2),
        "mixed-base": (2, 2),
        "mixed-arm": (2, 2),
        "attribute": (2, 2),
        "pinned": (1, 3),  # version 2 was pinned, not the default
        "latest": (1, 3),  # the source (2) was the latest, not the default
        "fresh": (2, 2),  # the source was the default too: the default moves
    }, context


def run(endpoint, tmp_path, out, plan=None, *policies):
    env = aws_env(endpoint)
    if plan:
        env = faults.environment(env, tmp_path / "site", plan, REPO)
    return run_c7n_imds(
        ["run", "-s", str(tmp_path / out), "--cache-period", "0"] + list(policies or [REMEDIATE]),
        env,
    )


def test_remediation_keeps_every_setting_of_a_foreign_estate(moto, tmp_path):
    endpoint, session = moto
    seed(session)
    before, _ = launch_data(session)
    result = run(endpoint, tmp_path, "out")
    assert result.returncode == 0, result.stderr[-4000:]
    after, defaults = launch_data(session)

    assert_remediated(before, after, defaults)

    # each pre-flight was logged with what it launched: the arm64 override with its own
    # type, the attribute-based template with a concrete type
    assert "instance type m6g.large" in result.stderr
    verdicts = [line for line in result.stderr.splitlines() if "pre-flight" in line]
    assert all("would launch" in line for line in verdicts), verdicts
    assert any(
        "asg attribute:" in line and "instance type the template's" not in line for line in verdicts
    ), verdicts

    # a second run changes nothing
    again = run(endpoint, tmp_path, "again")
    assert again.returncode == 0, again.stderr[-4000:]
    assert launch_data(session) == (after, defaults)
    changes = [
        entries(json.loads(p.read_text())) for p in (tmp_path / "again").rglob("imds-changes.json")
    ]
    assert all(c == [] for c in changes), changes


def test_a_version_that_would_not_launch_is_withdrawn(moto, tmp_path):
    """The arm64 per-override template is dry-run with the arm64 override's type; paired
    with the base's x86 type, EC2 would refuse it. Here the override's type is made an
    x86 one, so the launch would fail: the new version is withdrawn (deleted), the
    group keeps its policy, the other groups go on."""
    endpoint, session = moto
    ids = seed(session)
    autoscaling = session.client("autoscaling")
    before_policy = {
        "LaunchTemplateSpecification": {
            "LaunchTemplateId": ids["mixed-base"],
            "Version": "$Default",
        }
    }
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName="mixed",
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": before_policy["LaunchTemplateSpecification"],
                "Overrides": [
                    {"InstanceType": "c5.large"},
                    {
                        "InstanceType": "c5.xlarge",
                        "LaunchTemplateSpecification": {
                            "LaunchTemplateId": ids["mixed-arm"],
                            "Version": "1",
                        },
                    },
                ],
            }
        },
    )
    before, _ = launch_data(session)
    result = run(endpoint, tmp_path, "out")
    assert result.returncode != 0
    assert (
        " - mixed: pre-flight RunInstances (DryRun) refused launch template %s" % (ids["mixed-arm"])
        in result.stderr
    )
    assert "architecture" in result.stderr
    after, defaults = launch_data(session)
    assert after["mixed"] == before["mixed"]
    assert defaults["mixed-arm"] == (1, 1)  # version 2 was deleted again
    # the base template's version would have become the default under the failed
    # group: its default stays (the version is made or not, by the order of the work)
    assert defaults["mixed-base"][0] == 1
    assert after["data"][0][1]["MetadataOptions"]["HttpTokens"] == "required"

    # Once the override is fixed, the next run makes the version again. Its create
    # repeats the client token of the withdrawn one, which AWS (and the launcher)
    # answers with the original answer - a version that no longer exists: the read-back
    # notices and the create is repeated with a token of its own.
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName="mixed",
        MixedInstancesPolicy={
            "LaunchTemplate": dict(
                before_policy,
                Overrides=[
                    {"InstanceType": "c5.large"},
                    {
                        "InstanceType": "m6g.large",
                        "LaunchTemplateSpecification": {
                            "LaunchTemplateId": ids["mixed-arm"],
                            "Version": "1",
                        },
                    },
                ],
            )
        },
    )
    again = run(endpoint, tmp_path, "again")
    assert again.returncode == 0, again.stderr[-3000:]
    after, defaults = launch_data(session)
    assert [data["MetadataOptions"]["HttpTokens"] for _, data in after["mixed"]] == [
        "required",
        "required",
    ]
    assert defaults["mixed-arm"] == (3, 3)  # 2 was withdrawn; numbers are never reused
    assert defaults["mixed-base"] == (2, 2)  # made now, or made before and verified


def reset(endpoint):
    urllib.request.urlopen(
        urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    ).close()


@pytest.mark.parametrize("first", [1, 2], ids=["odd-kill-points", "even-kill-points"])
def test_every_kill_point_converges(moto, tmp_path, first):
    """Killed right after its n-th change, for every n: the next run finishes the job
    and the estate ends exactly as after an uninterrupted run - in particular a
    template whose group follows $Latest gets its default moved even when the run was
    killed between CreateLaunchTemplateVersion and ModifyLaunchTemplate (the group then
    already launches from the compliant $Latest, but EC2.170 judges the default).
    The sweep is split by parity (odd and even n) so that its two halves run side by
    side; together they cover every kill point."""
    endpoint, session = moto
    seed(session)
    n, kills = first - 2, []
    while True:
        n += 2
        reset(endpoint)
        seed(session)
        before, _ = launch_data(session)
        log = tmp_path / ("kill-%d.jsonl" % n)
        killed = run(
            endpoint, tmp_path, "kill-%d" % n, {"crash_after_mutating": n, "log": str(log)}
        )
        crashes = [e for e in faults.read_log(log) if e["event"] == "crash"]
        if killed.returncode == 0:
            assert crashes == []
            break
        assert killed.returncode == 137 and len(crashes) == 1, killed.stderr[-3000:]
        kills.append(crashes[0]["operation"])
        again = run(endpoint, tmp_path, "again-%d" % n)
        assert again.returncode == 0, (n, kills[-1], again.stderr[-3000:])
        after, defaults = launch_data(session)
        assert_remediated(before, after, defaults, "killed after change %d (%s)" % (n, kills[-1]))
    # the uninterrupted run's changes: this half was killed after each of its positions
    # (their order varies from run to run: independent templates change side by side)
    changes = [e["operation"] for e in faults.read_log(log) if e["event"] == "mutation"]
    assert len(kills) == len(changes[first - 1 :: 2]), (kills, changes)
    assert {
        "CreateLaunchTemplate",
        "CreateLaunchTemplateVersion",
        "ModifyLaunchTemplate",
        "CreateOrUpdateTags",
        "UpdateAutoScalingGroup",
    } <= set(changes), changes
    print("\nkill points: %d, all converged (%s)" % (len(kills), ", ".join(kills)))
