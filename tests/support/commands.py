"""Running the real `c7n-imds` command with faults injected (tests/faults.py), and
reading the estate back, for the reliability tests; FIGURES adds up what they survived."""

import hashlib
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from c7n_imds_testing import aws_env, run_c7n_imds
from tests import faults
from tests.conftest import REPO
from tests.support.estates import groups_by_name

REMEDIATE = str(REPO / "policies" / "remediate.yml")
DETECT = str(REPO / "policies" / "detect.yml")
COPY_LC = str(REPO / "policies" / "remediate-copy-lc.yml")
SOURCE_TAG = "c7n-imds:source"
PREVIOUS_TAG = "c7n-imds:previous-launch"
EXEMPT_TAG = "c7n-imds:exempt"
DERIVED = "c7n-imds: from version "
TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
SLEEP_SCALE = 0.01  # backoff sleeps inside the command, scaled; retry limits unchanged
FIGURES = Counter()


def command_env(endpoint, tmp_path, plan=None, endpoint_url=None):
    env = aws_env(endpoint_url or endpoint)
    env["HOME"] = os.environ.get("HOME", "/tmp")
    if plan is None:
        return env
    plan = dict(plan)
    plan.setdefault("sleep_scale", SLEEP_SCALE)
    return faults.environment(env, tmp_path / "site", plan, REPO)


def c7n(args, endpoint, tmp_path, plan=None, endpoint_url=None):
    FIGURES["runs"] += 1
    return run_c7n_imds(list(args), command_env(endpoint, tmp_path, plan, endpoint_url))


def c7n_together(commands, endpoint, tmp_path):
    """Several read-only `c7n-imds` commands at once (their start-up dominates)."""
    script = Path(sys.executable).with_name("c7n-imds")
    env = command_env(endpoint, tmp_path)
    processes = [
        subprocess.Popen(
            [str(script)] + list(args),
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in commands
    ]
    FIGURES["runs"] += len(processes)
    results = []
    for args, process in zip(commands, processes):
        stdout, stderr = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def run_args(out, *policies, verbose=False):
    return (
        ["run"]
        + (["-v", "-v"] if verbose else [])
        + ["-s", str(out), "--cache-period", "0"]
        + [str(p) for p in policies]
    )


def fault_figures(log, returncode):
    """(injected, survived) for one run: a fault is survived when the call it hit
    succeeded on a later attempt, or when the run still ended well."""
    events = faults.read_log(log)
    injected = sum(e["event"] == "fault" for e in events)
    survived = (
        injected if returncode == 0 else sum(e["count"] for e in events if e["event"] == "survived")
    )
    return injected, survived, Counter(e["kind"] for e in events if e["event"] == "fault")


def all_configs(autoscaling):
    return {
        c["LaunchConfigurationName"]: c
        for c in autoscaling.get_paginator("describe_launch_configurations")
        .paginate()
        .build_full_result()["LaunchConfigurations"]
    }


def all_templates(ec2):
    return {
        t["LaunchTemplateId"]: t
        for t in ec2.describe_launch_templates(MaxResults=200)["LaunchTemplates"]
    }


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or ()}


def version(ec2, template_id, which):
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[str(which)]
    )["LaunchTemplateVersions"]
    assert len(versions) == 1, (template_id, which)
    return versions[0]


def derived_versions(ec2, template_id):
    return [
        v
        for v in ec2.describe_launch_template_versions(
            LaunchTemplateId=template_id, MaxResults=200
        )["LaunchTemplateVersions"]
        if (v.get("VersionDescription") or "").startswith(DERIVED)
    ]


def check_nothing_lost(session, configs_before, origin, when):
    """What must hold after every run, even one killed half way: each group launches
    from something that exists, no launch configuration was deleted, at most one
    template per source configuration, and a template a group uses is the one made
    from that group's own configuration."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    configs = set(all_configs(autoscaling))
    assert configs_before <= configs, (
        when,
        "launch configuration(s) deleted",
        configs_before - configs,
    )
    templates = all_templates(ec2)
    per_source = Counter(
        tags_of(t)[SOURCE_TAG] for t in templates.values() if SOURCE_TAG in tags_of(t)
    )
    assert all(n == 1 for n in per_source.values()), (when, "duplicate templates", per_source)
    for name, group in groups_by_name(autoscaling).items():
        spec = group.get("LaunchTemplate")
        if spec:  # moto keeps the old LaunchConfigurationName beside it: template wins
            assert spec["LaunchTemplateId"] in templates, (when, name, spec)
            version(ec2, spec["LaunchTemplateId"], spec["Version"])  # resolves
            source = tags_of(templates[spec["LaunchTemplateId"]]).get(SOURCE_TAG)
            if source is not None:
                assert source == origin[name], (when, name, source)
        else:
            assert group.get("LaunchConfigurationName") in configs, (when, name, group)


def assert_converged(session, origin, left_alone, lt_groups=("lt-group",)):
    """Every non-compliant, non-exempt launch-configuration group is on the template
    made from its configuration, whose default version requires IMDSv2, and recorded
    where it came from; template groups got exactly one IMDSv2 version."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    groups = groups_by_name(autoscaling)
    templates = all_templates(ec2)
    for name, lc in origin.items():
        group = groups[name]
        if name in left_alone:
            assert not group.get("LaunchTemplate"), name
            assert group["LaunchConfigurationName"] == lc, name
            continue
        spec = group.get("LaunchTemplate")
        assert spec, "%s still launches from %r" % (name, lc)
        assert tags_of(templates[spec["LaunchTemplateId"]])[SOURCE_TAG] == lc, name
        data = version(ec2, spec["LaunchTemplateId"], spec["Version"])["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required", name
        previous = tags_of(group)[PREVIOUS_TAG]
        assert previous in ("lc:" + lc, "lc-sha256:" + hashlib.sha256(lc.encode()).hexdigest()), (
            name,
            previous,
        )
    for name in lt_groups:
        spec = groups[name]["LaunchTemplate"]
        default = version(ec2, spec["LaunchTemplateId"], "$Default")
        assert default["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"
        assert len(derived_versions(ec2, spec["LaunchTemplateId"])) == 1, name


def launch_origin(autoscaling):
    return {
        n: g["LaunchConfigurationName"]
        for n, g in groups_by_name(autoscaling).items()
        if g.get("LaunchConfigurationName") and not g.get("LaunchTemplate")
    }


def grow(session, ids, count=8):
    """More launch-configuration groups (two per configuration) and an exempt one."""
    autoscaling = session.client("autoscaling")
    subnets = groups_by_name(autoscaling)["public"]["VPCZoneIdentifier"]
    for i in range(count):
        autoscaling.create_launch_configuration(
            LaunchConfigurationName="extra-%d" % i,
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            SecurityGroups=[ids["app_sg"]],
        )
        for j in range(2):
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName="extra-%d-%d" % (i, j),
                MinSize=0,
                MaxSize=1,
                DesiredCapacity=0,
                VPCZoneIdentifier=subnets,
                LaunchConfigurationName="extra-%d" % i,
            )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="exempt",
        LaunchConfigurationName="extra-0",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnets,
        Tags=[
            {"Key": EXEMPT_TAG, "Value": "vendor agent needs IMDSv1", "PropagateAtLaunch": False}
        ],
    )
