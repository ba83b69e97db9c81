"""Reliability: faults, crashes, concurrent runs, bad input and secrets.

Everything runs through the real `c7n-imds` command in a subprocess against a moto
server, as a user would run it. Faults are injected *inside* that process with botocore
event hooks (tests/faults.py, loaded through a generated ``sitecustomize.py``):
throttling, 503, 500, connection resets and lost responses at seeded rates, and
``os._exit(137)`` right after a chosen call to simulate the process being killed.

Where moto is not AWS (docs/moto-gaps.md and below) the injector answers as AWS would:

- moto answers a ``RunInstances`` DryRun before validating anything, so a template
  naming a missing image passes moto's pre-flight; the injector answers
  ``InvalidAMIID.NotFound`` for images listed as missing, as EC2 does;
- moto has no launch template quota; the injector answers
  ``LaunchTemplateLimitExceeded`` for one configuration's template;
- moto ignores ``ClientToken``, so a replayed ``CreateLaunchTemplateVersion`` makes a
  second version where AWS would not: lost responses are not injected on it, and the
  concurrency test checks the idempotency tokens sent (what AWS deduplicates on)
  rather than moto's version count.

Figures (runs, groups, faults injected and survived) are printed; run with ``-s``.
"""
import base64
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import zlib
from collections import Counter
from pathlib import Path

import pytest
import yaml

from c7n_imds.testing import aws_env, run_c7n_imds
from tests import faults
from tests.conftest import REPO
from tests.support.estates import CANARY, ODD_NAME, USER_DATA, USER_DATA_TEXT, groups_by_name, seed

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


# -- running the command --------------------------------------------------------------

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
    processes = [subprocess.Popen([str(script)] + list(args), env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for args in commands]
    FIGURES["runs"] += len(processes)
    results = []
    for args, process in zip(commands, processes):
        stdout, stderr = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def run_args(out, *policies, verbose=False):
    return ["run"] + (["-v", "-v"] if verbose else []) + [
        "-s", str(out), "--cache-period", "0"] + [str(p) for p in policies]


def fault_figures(log, returncode):
    """(injected, survived) for one run: a fault is survived when the call it hit
    succeeded on a later attempt, or when the run still ended well."""
    events = faults.read_log(log)
    injected = sum(e["event"] == "fault" for e in events)
    survived = injected if returncode == 0 else sum(
        e["count"] for e in events if e["event"] == "survived")
    return injected, survived, Counter(e["kind"] for e in events if e["event"] == "fault")


# -- reading the estate ---------------------------------------------------------------

def all_configs(autoscaling):
    return {c["LaunchConfigurationName"]: c for c in autoscaling.get_paginator(
        "describe_launch_configurations").paginate().build_full_result()[
            "LaunchConfigurations"]}


def all_templates(ec2):
    return {t["LaunchTemplateId"]: t for t in ec2.describe_launch_templates(
        MaxResults=200)["LaunchTemplates"]}


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or ()}


def version(ec2, template_id, which):
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[str(which)])["LaunchTemplateVersions"]
    assert len(versions) == 1, (template_id, which)
    return versions[0]


def derived_versions(ec2, template_id):
    return [v for v in ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, MaxResults=200)["LaunchTemplateVersions"]
        if (v.get("VersionDescription") or "").startswith(DERIVED)]


def check_nothing_lost(session, configs_before, origin, when):
    """What must hold after every run, even one killed half way: each group launches
    from something that exists, no launch configuration was deleted, at most one
    template per source configuration, and a template a group uses is the one made
    from that group's own configuration."""
    ec2, autoscaling = session.client("ec2"), session.client("autoscaling")
    configs = set(all_configs(autoscaling))
    assert configs_before <= configs, (when, "launch configuration(s) deleted",
                                       configs_before - configs)
    templates = all_templates(ec2)
    per_source = Counter(tags_of(t)[SOURCE_TAG] for t in templates.values()
                         if SOURCE_TAG in tags_of(t))
    assert all(n == 1 for n in per_source.values()), (when, "duplicate templates",
                                                       per_source)
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
        assert previous in ("lc:" + lc, "lc-sha256:" + hashlib.sha256(
            lc.encode()).hexdigest()), (name, previous)
    for name in lt_groups:
        spec = groups[name]["LaunchTemplate"]
        default = version(ec2, spec["LaunchTemplateId"], "$Default")
        assert default["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"
        assert len(derived_versions(ec2, spec["LaunchTemplateId"])) == 1, name


def launch_origin(autoscaling):
    return {n: g["LaunchConfigurationName"] for n, g in groups_by_name(autoscaling).items()
            if g.get("LaunchConfigurationName") and not g.get("LaunchTemplate")}


def grow(session, ids, count=8):
    """More launch-configuration groups (two per configuration) and an exempt one."""
    autoscaling = session.client("autoscaling")
    subnets = groups_by_name(autoscaling)["public"]["VPCZoneIdentifier"]
    for i in range(count):
        autoscaling.create_launch_configuration(
            LaunchConfigurationName="extra-%d" % i, ImageId="ami-12c6146b",
            InstanceType="t3.micro", SecurityGroups=[ids["app_sg"]])
        for j in range(2):
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName="extra-%d-%d" % (i, j), MinSize=0, MaxSize=1,
                DesiredCapacity=0, VPCZoneIdentifier=subnets,
                LaunchConfigurationName="extra-%d" % i)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="exempt", LaunchConfigurationName="extra-0", MinSize=0,
        MaxSize=1, DesiredCapacity=0, VPCZoneIdentifier=subnets, Tags=[{
            "Key": EXEMPT_TAG, "Value": "vendor agent needs IMDSv1",
            "PropagateAtLaunch": False}])


# -- 1. faults ------------------------------------------------------------------------

def test_transient_faults_lose_nothing_and_converge(moto, tmp_path):
    """Throttling, 503, 500, connection resets and lost responses on every call at
    seeded rates; between the faulty runs some groups are put back on their
    configurations (as an operator might) so that the second faulty run switches
    groups too. After each run nothing is lost; a clean run converges. Then the
    deprecated copy path, under faults too."""
    endpoint, session = moto
    ids = seed(session)
    grow(session, ids)
    autoscaling = session.client("autoscaling")
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    kinds, injected, survived = Counter(), 0, 0
    # the first round converts four configurations at a time (option `concurrency`)
    parallel = tmp_path / "remediate-parallel.yml"
    parallel.write_text(Path(REMEDIATE).read_text().replace(
        "        version: $Default\n", "        version: $Default\n        concurrency: 4\n", 1))
    assert "concurrency: 4" in parallel.read_text()
    rounds = [(parallel, 31, 0.2, 0.35), (REMEDIATE, 32, 0.25, 0.4)]
    for n, (policy, seed_value, rate, mutating_rate) in enumerate(rounds):
        log = tmp_path / ("faults-%d.jsonl" % n)
        result = c7n(run_args(tmp_path / ("out-%d" % n), policy), endpoint, tmp_path, {
            "rate": rate, "mutating_rate": mutating_rate, "seed": seed_value,
            "log": str(log), "services": ["ec2", "auto-scaling", "cloudwatch"]})
        i, s, k = fault_figures(log, result.returncode)
        injected, survived, kinds = injected + i, survived + s, kinds + k
        check_nothing_lost(session, configs_before, origin, "after faulty run %d" % n)
        if result.returncode != 0:
            # A failed run must say which group or policy, never die silently.
            assert "failed for" in result.stderr or "had errors" in result.stderr, \
                result.stderr[-3000:]
        if n == 0:
            for name in ("extra-1-0", "extra-2-1", "shared-b", "spot"):
                autoscaling.update_auto_scaling_group(
                    AutoScalingGroupName=name, LaunchConfigurationName=origin[name])
    result = c7n(run_args(tmp_path / "clean", REMEDIATE), endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    check_nothing_lost(session, configs_before, origin, "after the clean run")
    assert_converged(session, origin, left_alone={"compliant", "exempt"})
    assert set(all_configs(autoscaling)) == configs_before
    runs = len(rounds) + 1

    # The deprecated path under faults: new groups on the configurations, copied.
    subnets = groups_by_name(autoscaling)["public"]["VPCZoneIdentifier"]
    late = {"late-%d" % i: lc for i, lc in enumerate(
        ["extra-1", "extra-1", "extra-2", "extra-3", "public-lc", "spot-lc"])}
    for name, lc in late.items():
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchConfigurationName=lc, MinSize=0, MaxSize=1,
            DesiredCapacity=0, VPCZoneIdentifier=subnets)
    origin.update(late)
    log = tmp_path / "faults-copy.jsonl"
    result = c7n(run_args(tmp_path / "copy", COPY_LC), endpoint, tmp_path, {
        "rate": 0.25, "mutating_rate": 0.4, "seed": 33, "log": str(log),
        "services": ["ec2", "auto-scaling", "cloudwatch"]})
    i, s, k = fault_figures(log, result.returncode)
    injected, survived, kinds = injected + i, survived + s, kinds + k
    check_nothing_lost(session, configs_before, origin, "after the faulty copy run")
    runs += 1
    if result.returncode != 0:
        assert "failed for" in result.stderr or "had errors" in result.stderr
        result = c7n(run_args(tmp_path / "copy-clean", COPY_LC), endpoint, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        runs += 1
    configs, groups = all_configs(autoscaling), groups_by_name(autoscaling)
    copies = Counter(name.rsplit("-imdsv2-", 1)[0] for name in configs
                     if "-imdsv2-" in name)
    assert copies == Counter({lc: 1 for lc in set(late.values())}), copies
    for name, lc in late.items():
        copy = configs[groups[name]["LaunchConfigurationName"]]
        assert copy["LaunchConfigurationName"].startswith(lc + "-imdsv2-"), name
        assert copy["MetadataOptions"]["HttpTokens"] == "required", name
        assert tags_of(groups[name])[PREVIOUS_TAG] == "lc:" + lc, name

    FIGURES["fault groups"] += len(groups)
    FIGURES["faults injected"] += injected
    FIGURES["faults survived"] += survived
    print("\ntransient faults: %d runs, %d groups, %d faults injected (%s), %d survived" % (
        runs, len(groups), injected, dict(kinds), survived))
    assert len(kinds) >= 3 and injected >= 20, kinds
    assert survived > 0


def test_killed_runs_lose_nothing_and_a_rerun_finishes(moto, tmp_path):
    """The process is killed (os._exit(137)) right after: the first template is made;
    the first group is tagged (the action records c7n-imds:previous-launch *before*
    switching); the first group is switched; the first IMDSv2 template version is made
    (before the default moves). Each time nothing is lost; a clean run converges with
    one template per configuration and one new version."""
    endpoint, session = moto
    seed(session)
    autoscaling, ec2 = session.client("autoscaling"), session.client("ec2")
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    crashes = ["CreateLaunchTemplate", "CreateOrUpdateTags", "UpdateAutoScalingGroup",
               "CreateLaunchTemplateVersion"]
    for n, operation in enumerate(crashes):
        log = tmp_path / ("crash-%d.jsonl" % n)
        result = c7n(run_args(tmp_path / ("out-%d" % n), REMEDIATE), endpoint, tmp_path,
                     {"crash_after": {"operation": operation, "nth": 1}, "log": str(log)})
        assert result.returncode == 137, (operation, result.stderr[-2000:])
        assert [e["operation"] for e in faults.read_log(log) if e["event"] == "crash"] == \
            [operation]
        FIGURES["faults injected"] += 1
        FIGURES["faults survived"] += 1
        check_nothing_lost(session, configs_before, origin, "killed after " + operation)
        groups = groups_by_name(autoscaling)
        switched = sorted(g for g in origin if groups[g].get("LaunchTemplate"))
        tagged = sorted(g for g in origin if PREVIOUS_TAG in tags_of(groups[g]))
        if operation == "CreateLaunchTemplate":
            assert switched == [] and tagged == []
            assert len(all_templates(ec2)) == 2  # existing-lt + the first new one
        elif operation == "CreateOrUpdateTags":
            # the first configuration's groups are tagged (one call may tag several)
            # but none is switched: all still on their (existing) configurations
            assert switched == [] and tagged
            assert len({origin[g] for g in tagged}) == 1, tagged
        elif operation == "UpdateAutoScalingGroup":
            assert len(switched) == 1 and switched[0] in tagged
        else:  # the convert policy finished; the new version exists, not yet default
            assert len(switched) == 5
            lt = groups["lt-group"]["LaunchTemplate"]["LaunchTemplateId"]
            assert len(derived_versions(ec2, lt)) == 1
            default = version(ec2, lt, "$Default")["LaunchTemplateData"]
            assert (default.get("MetadataOptions") or {}).get("HttpTokens") != "required"
    result = c7n(run_args(tmp_path / "clean", REMEDIATE), endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    check_nothing_lost(session, configs_before, origin, "after the clean run")
    assert_converged(session, origin, left_alone={"compliant"})
    assert len(all_templates(ec2)) == 5  # existing-lt + one per non-compliant LC
    FIGURES["fault groups"] += len(origin) + 1
    print("\nkilled runs: %d runs, %d groups, %d kills, all survived" % (
        len(crashes) + 1, len(origin) + 1, len(crashes)))


# -- 2. concurrency -------------------------------------------------------------------

def test_two_runs_at_once_make_one_of_everything(moto, tmp_path):
    """Two `c7n-imds run policies/remediate.yml` on one estate at the same time. Each
    process waits for the other just before its first CreateLaunchTemplate and its
    first CreateLaunchTemplateVersion, so both have looked, found nothing, and create:
    the "already exists" race happens every time, not by luck."""
    endpoint, session = moto
    seed(session)
    autoscaling, ec2 = session.client("autoscaling"), session.client("ec2")
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    log = tmp_path / "calls.jsonl"
    plan = {"record": True, "log": str(log), "barriers": [
        {"operation": op, "folder": str(tmp_path / "barrier"), "parties": 2, "timeout": 20}
        for op in ("CreateLaunchTemplate", "CreateLaunchTemplateVersion")]}
    env = command_env(endpoint, tmp_path, plan)
    script = Path(sys.executable).with_name("c7n-imds")
    runs = [subprocess.Popen(
        [str(script)] + run_args(tmp_path / ("out-%d" % n), REMEDIATE), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    outputs = [r.communicate(timeout=120) for r in runs]
    FIGURES["runs"] += 2
    events = faults.read_log(log)
    assert not [e for e in events if e["event"] == "barrier-timeout"], events
    for run, (stdout, stderr) in zip(runs, outputs):
        if run.returncode != 0:
            failures = [line for line in stderr.splitlines() if line.startswith(" - ")]
            assert failures and all("again" in line for line in failures), stderr[-3000:]
    check_nothing_lost(session, configs_before, origin, "after two concurrent runs")

    calls = [e for e in events if e["event"] == "call"]
    creates = [e for e in calls if e["operation"] == "CreateLaunchTemplate"]
    # both processes tried the first template: one of them met AlreadyExists
    first = creates[0]["LaunchTemplateName"]
    assert len({e["pid"] for e in creates if e["LaunchTemplateName"] == first}) == 2
    tokens = {}
    for e in creates:
        tokens.setdefault(e["LaunchTemplateName"], set()).add(e.get("ClientToken"))
    assert all(len(t) == 1 and None not in t for t in tokens.values()), tokens

    third = c7n(run_args(tmp_path / "third", REMEDIATE), endpoint, tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    check_nothing_lost(session, configs_before, origin, "after the third run")
    groups = groups_by_name(autoscaling)
    templates = all_templates(ec2)
    assert len(templates) == 5  # existing-lt + one per non-compliant configuration
    for name, lc in origin.items():
        if name != "compliant":
            spec = groups[name]["LaunchTemplate"]
            assert tags_of(templates[spec["LaunchTemplateId"]])[SOURCE_TAG] == lc
            assert tags_of(groups[name])[PREVIOUS_TAG] == "lc:" + lc
    lt = groups["lt-group"]["LaunchTemplate"]["LaunchTemplateId"]
    assert version(ec2, lt, "$Default")["LaunchTemplateData"]["MetadataOptions"][
        "HttpTokens"] == "required"
    # Both processes created an IMDSv2 version of existing-lt from version 1. AWS
    # collapses the two into one only if they carry the same idempotency token (moto
    # ignores tokens and keeps both, so its version count proves nothing here).
    version_tokens = {}
    for e in calls:
        if e["operation"] == "CreateLaunchTemplateVersion":
            version_tokens.setdefault((e["LaunchTemplateId"], e["SourceVersion"]), set()).add(
                e.get("ClientToken"))
    assert version_tokens and all(len(t) == 1 for t in version_tokens.values()), (
        "concurrent runs sent CreateLaunchTemplateVersion for the same source version "
        "with different ClientTokens: AWS keeps both versions, as moto did (%d IMDSv2 "
        "versions of %s)" % (len(derived_versions(ec2, lt)), lt), version_tokens)


# -- 3. bad input ---------------------------------------------------------------------

ASG_ACTION_OPTIONS = {
    "http-endpoint": ("on", "'preserve', 'enabled', 'disabled'"),
    "running-instances": ("replace", "'keep', 'modify', 'refresh'"),
    "iac-managed": ("ignore", "'skip', 'remediate'"),
}
HOP = ("hop-limit", [(0, "'maximum': 64"), (65, "'maximum': 64"), ("two", "'auto'")])
REFRESH = [
    ({"MinHealthyPercentage": 101}, "MinHealthyPercentage", "'maximum': 100"),
    ({"MaxHealthyPercentage": 99}, "MaxHealthyPercentage", "'minimum': 100"),
    ({"InstanceWarmup": -1}, "InstanceWarmup", "'minimum': 0"),
    ({"SkipMatching": "yes"}, "SkipMatching", "'boolean'"),
    ({"ScaleInProtectedInstances": "Skip"}, "ScaleInProtectedInstances", "'Refresh'"),
    ({"StandbyInstances": "Keep"}, "StandbyInstances", "'Terminate'"),
    ({"BakeTime": -5}, "BakeTime", "'minimum': 0"),
    ({"Unknown": 1}, "Unknown", "MinHealthyPercentage"),
    # what StartInstanceRefresh would refuse only after the groups switched
    ({"MaxHealthyPercentage": 150}, "MaxHealthyPercentage", "needs MinHealthyPercentage"),
    ({"MinHealthyPercentage": 40, "MaxHealthyPercentage": 150}, "MaxHealthyPercentage",
     "more than 100"),
]


def bad_option_cases():
    """(resource, kind, block, option, allowed) - one invalid value each. `allowed` is
    text the message must show: the allowed values or the limit."""
    cases = []

    def action(resource, action_type, option, value, allowed):
        cases.append((resource, "actions", {"type": action_type, option: value}, option,
                      allowed))

    remediations = [("asg", "convert-to-launch-template"), ("asg", "set-metadata-access"),
                    ("asg", "copy-launch-configuration"),
                    ("launch-config", "convert-to-launch-template")]
    for resource, action_type in remediations:
        for option, (value, allowed) in ASG_ACTION_OPTIONS.items():
            action(resource, action_type, option, value, allowed)
        for value, allowed in HOP[1]:
            action(resource, action_type, HOP[0], value, allowed)
        for value, sub, allowed in REFRESH:
            cases.append((resource, "actions", {"type": action_type,
                                                "refresh-preferences": value},
                          "refresh-preferences", allowed))
        action(resource, action_type, "no-such-option", 1, "was unexpected")
    for resource in ("asg", "launch-config"):
        action(resource, "convert-to-launch-template", "http-tokens", "optional",
               "'required', 'preserve'")
        action(resource, "convert-to-launch-template", "version", "3",
               "'$Default', '$Latest'")
        action(resource, "convert-to-launch-template", "verify", "yes", "'boolean'")
        for value, allowed in ((0, "'minimum': 1"), (17, "'maximum': 16"),
                               ("4", "'integer'")):
            action(resource, "convert-to-launch-template", "concurrency", value, allowed)
    action("asg", "set-metadata-access", "http-tokens", "maybe", "'required', 'optional'")
    action("asg", "set-metadata-access", "metadata-tags", "on",
           "'preserve', 'enabled', 'disabled'")
    action("asg", "set-metadata-access", "set-default", "no", "'boolean'")
    action("asg", "set-metadata-access", "verify", "yes", "'boolean'")
    action("asg", "copy-launch-configuration", "http-tokens", "required", "was unexpected")
    action("asg", "revert-imds-remediation", "exempt", "yes", "'boolean'")
    action("asg", "revert-imds-remediation", "no-such-option", 1, "was unexpected")

    def filter_(resource, block, option, allowed):
        cases.append((resource, "filters", block, option, allowed))

    for resource in ("asg", "launch-config"):
        filter_(resource, {"type": "imds", "key": "HttpTokens", "op": "bogus",
                           "value": "optional"}, "op", "'eq'")
        filter_(resource, {"type": "imds", "key": "HttpTokens", "value": "optional",
                           "value_type": "bogus"}, "value_type", "'age'")
    filter_("asg", {"type": "imdsv1-usage", "days": 0, "value": 0}, "days",
            "'minimum': 1")
    filter_("asg", {"type": "imdsv1-usage", "days": 456, "value": 0}, "days",
            "'maximum': 455")
    filter_("asg", {"type": "imdsv1-usage", "days": "14", "value": 0}, "days", "'number'")
    filter_("asg", {"type": "imdsv1-usage", "missing": "maybe", "value": 0}, "missing",
            "'exclude', 'zero', 'include'")
    filter_("ec2", {"type": "imdsv1-usage", "days": 0, "value": 0}, "days", "'minimum': 1")
    filter_("ec2", {"type": "imdsv1-usage", "missing": "maybe", "value": 0}, "missing",
            "'exclude', 'zero', 'include'")
    for resource in ("asg", "ec2"):
        filter_(resource, {"type": "imdsv1-usage", "op": "bogus", "value": 0}, "op", "'eq'")
        filter_(resource, {"type": "imdsv1-usage", "value_type": "bogus", "value": 0},
                "value_type", "'age'")
    filter_("asg", {"type": "imds-exempt", "key": "Exempt", "value_type": "bogus",
                    "value": True}, "value_type", "'age'")
    filter_("asg", {"type": "imds-exempt", "key": "Exempt", "op": "bogus",
                    "value": True}, "op", "'eq'")
    filter_("launch-config", {"type": "imds-converted", "days": -1}, "days",
            "'minimum': 0")
    filter_("launch-config", {"type": "imds-converted", "days": "14"}, "days", "'number'")
    filter_("launch-config", {"type": "imds-converted", "day": 3}, "day",
            "was unexpected")
    return cases


def mistyped_filter_cases():
    """Keys and values the filters document a fixed set of. A mistyped one silently
    matches nothing (or everything), so a remediation policy silently does nothing."""
    cases = []
    for resource in ("asg", "launch-config"):
        cases += [
            (resource, "filters", {"type": "imds", "key": "HttpToken", "value": "optional"},
             "key", "HttpTokens"),
            (resource, "filters", {"type": "imds", "key": "HttpTokens", "value": "requried"},
             "value", "'required', 'optional'"),
            (resource, "filters", {"type": "imds", "key": "LaunchType",
                                   "value": "launch-configuraton"}, "value", "launch-template"),
        ]
    cases += [
        ("asg", "filters", {"type": "imdsv1-usage", "key": "Totl", "value": 0}, "key",
         "Total"),
        ("asg", "filters", {"type": "imds-exempt", "key": "Exempted", "value": True}, "key",
         "Exempt"),
    ]
    return cases


VALID_POLICIES = """
policies:
  - name: every-option-valid-asg
    resource: asg
    filters:
      - {type: imds, key: HttpTokens, value: optional}
      - {type: imds, key: LaunchType, op: in, value: [launch-configuration]}
      - {type: imdsv1-usage, days: 14, value: 0, missing: zero, op: eq}
      - {type: imds-exempt, key: Exempt, value: false}
    actions:
      - type: convert-to-launch-template
        http-tokens: required
        hop-limit: auto
        http-endpoint: preserve
        version: $Latest
        verify: false
        concurrency: 16
        iac-managed: remediate
        running-instances: refresh
        refresh-preferences: {MinHealthyPercentage: 50, MaxHealthyPercentage: 150,
          InstanceWarmup: 60, SkipMatching: true, ScaleInProtectedInstances: Wait,
          StandbyInstances: Ignore, BakeTime: 0}
  - name: every-option-valid-template
    resource: asg
    actions:
      - {type: set-metadata-access, http-tokens: optional, hop-limit: 64,
         http-endpoint: enabled, metadata-tags: disabled, set-default: false,
         verify: true, iac-managed: skip, running-instances: modify}
  - name: every-option-valid-copy
    resource: asg
    actions:
      - {type: copy-launch-configuration, hop-limit: 1, http-endpoint: disabled,
         iac-managed: skip, running-instances: keep}
  - name: every-option-valid-revert
    resource: asg
    actions:
      - {type: revert-imds-remediation, exempt: false}
  - name: every-option-valid-lc
    resource: launch-config
    filters:
      - {type: imds, key: HttpTokens, value: optional}
      - {type: imds-converted, days: 0}
    actions:
      - {type: convert-to-launch-template, hop-limit: preserve, version: $Default,
         concurrency: 1}
  - name: every-option-valid-ec2
    resource: ec2
    filters:
      - {type: imdsv1-usage, days: 455, missing: include, value: 0, op: gt}
"""


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """One `c7n-imds validate` over every bad case, each in its own file, plus a file
    using every option validly. Its AWS endpoint is a closed port and every HTTP
    request it attempts is recorded."""
    tmp_path = tmp_path_factory.mktemp("validate")
    cases = {"option": bad_option_cases(), "typo": mistyped_filter_cases()}
    files, expected = [], {}
    for group, group_cases in cases.items():
        for n, (resource, kind, block, option, allowed) in enumerate(group_cases):
            name = "bad-%s-%02d-%s-%s" % (
                group, n, resource, re.sub(r"[^a-z0-9]+", "-", block["type"]))
            path = tmp_path / ("%s.yml" % name)
            path.write_text(yaml.safe_dump({"policies": [
                {"name": name, "resource": resource, kind: [block]}]}, sort_keys=False))
            files.append(str(path))
            expected[str(path)] = (group, name, option, allowed, block)
    valid = tmp_path / "valid.yml"
    valid.write_text(VALID_POLICIES)
    log = tmp_path / "calls.jsonl"
    result = c7n(["validate", str(valid)] + files, None, tmp_path,
                 {"record": True, "log": str(log)}, endpoint_url="http://127.0.0.1:9")
    FIGURES["invalid options checked"] += len(expected)
    return result, split_validate_output(result.stderr), expected, str(valid), log


def validate_problems(validated, group):
    result, verdicts, expected, _, _ = validated
    problems, checked = [], 0
    for path, (case_group, name, option, allowed, block) in expected.items():
        if case_group != group:
            continue
        checked += 1
        text = verdicts.get(path)
        if text is None or text == "valid":
            problems.append("%s accepted: %s" % (name, json.dumps(block)))
            continue
        missing = [part for part in (name, option, allowed) if part not in text]
        if missing:
            problems.append("%s: message lacks %s:\n%s" % (name, missing, text[:600]))
    return problems, checked


def test_every_invalid_option_is_rejected_at_validate_without_api_calls(validated):
    """Every option of every c7n-imds filter and action, given an invalid value, is
    refused by `c7n-imds validate` with a message naming the policy, the option and
    what is allowed - before, and without, any API call."""
    result, verdicts, _, valid, log = validated
    assert result.returncode != 0
    assert faults.read_log(log) == [], "validate made API calls"
    for marker in ("Could not connect", "EndpointConnectionError", "Traceback"):
        assert marker not in result.stderr, marker
    assert verdicts.get(valid) == "valid", verdicts.get(valid)
    problems, checked = validate_problems(validated, "option")
    assert checked >= 60
    assert not problems, "%d of %d invalid options not rejected properly:\n%s" % (
        len(problems), checked, "\n".join(problems))


def test_the_invalid_cases_cover_every_option_there_is():
    """Every option of every filter and action c7n-imds registers (read from their
    schemas, so a new option needs a case here) has an invalid-value case above."""
    from c7n.filters import ValueFilter
    from c7n.resources.asg import ASG, LaunchConfig
    from c7n.resources.ec2 import EC2
    covered = {(resource, block["type"], option)
               for resource, _, block, option, _ in bad_option_cases()}
    covered |= {(resource, block["type"], "refresh-preferences." + sub)
                for resource, _, block, _, _ in bad_option_cases()
                for sub in block.get("refresh-preferences") or ()}
    value_filter_options = set(ValueFilter.schema["properties"])
    missing = []
    for resource, manager in (("asg", ASG), ("launch-config", LaunchConfig), ("ec2", EC2)):
        for registry in (manager.filter_registry, manager.action_registry):
            for name, klass in registry.items():
                if not klass.__module__.startswith("c7n_imds"):
                    continue
                properties = klass.schema.get("properties") or {}
                options = set(properties) - value_filter_options - {"type"}
                if set(properties) & value_filter_options - {"type"}:
                    options |= {"op", "value_type"}  # the value filter's own enums
                for option in options:
                    if (resource, name, option) not in covered:
                        missing.append((resource, name, option))
                nested = (properties.get("refresh-preferences") or {}).get("properties")
                for sub in nested or ():
                    if (resource, name, "refresh-preferences." + sub) not in covered:
                        missing.append((resource, name, "refresh-preferences." + sub))
    assert not missing, "options without an invalid-value case: %s" % sorted(missing)


def test_mistyped_filter_keys_and_values_are_rejected_at_validate(validated):
    """`imds`, `imdsv1-usage` and `imds-exempt` document a closed set of keys (and
    `HttpTokens` / `LaunchType` a closed set of values). A typo such as
    ``key: HttpToken`` validates today and then matches no group, so remediation
    silently does nothing - the classic false green."""
    problems, checked = validate_problems(validated, "typo")
    assert not problems, "%d of %d mistyped filter keys/values accepted:\n%s" % (
        len(problems), checked, "\n".join(problems))


def split_validate_output(stderr):
    """{file: 'valid' | the error text logged for it}."""
    verdicts, current = {}, None
    for line in stderr.splitlines():
        match = re.search(r"Configuration (valid|invalid): (\S+)$", line)
        if match:
            current = match.group(2)
            verdicts[current] = "valid" if match.group(1) == "valid" else ""
            if match.group(1) == "valid":
                current = None
            continue
        if current is not None:
            verdicts[current] += line + "\n"
    return verdicts


def test_unresolvable_groups_fail_clearly_and_the_others_convert(moto, tmp_path):
    """One configuration names a security group that does not exist, one an image
    that does not exist (the pre-flight DryRun refuses it, answered as EC2 does), and
    one's template hits the launch template quota. Those groups fail with a message
    naming them and why, stay on their configurations, and every other group is
    converted; the run exits non-zero."""
    endpoint, session = moto
    ids = seed(session)
    autoscaling = session.client("autoscaling")
    subnets = groups_by_name(autoscaling)["public"]["VPCZoneIdentifier"]
    broken = {
        "ghost-sg": dict(SecurityGroups=["no-such-sg"]),
        "no-image": dict(ImageId="ami-0badbadbad0000000", SecurityGroups=[ids["app_sg"]]),
        "quota": dict(SecurityGroups=[ids["app_sg"]]),
    }
    for group, params in broken.items():
        params = dict(dict(ImageId="ami-12c6146b", InstanceType="t3.micro"), **params)
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=group + "-lc", **params)
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group, LaunchConfigurationName=group + "-lc", MinSize=0,
            MaxSize=1, DesiredCapacity=0, VPCZoneIdentifier=subnets)
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    log = tmp_path / "refusals.jsonl"
    result = c7n(run_args(tmp_path / "out", REMEDIATE), endpoint, tmp_path, {
        "log": str(log), "missing_images": ["ami-0badbadbad0000000"],
        "refuse": [{"operation": "CreateLaunchTemplate", "match": "quota-lc",
                    "code": "LaunchTemplateLimitExceeded", "message":
                    "You've reached the maximum number of launch templates (5000)."}]})
    assert result.returncode != 0
    lines = {group: [line for line in result.stderr.splitlines()
                     if " - %s:" % group in line] for group in broken}
    assert "no-such-sg" in " ".join(lines["ghost-sg"]), result.stderr[-3000:]
    assert "InvalidAMIID.NotFound" in " ".join(lines["no-image"]), result.stderr[-3000:]
    assert "LaunchTemplateLimitExceeded" in " ".join(lines["quota"]), result.stderr[-3000:]
    assert {e["code"] for e in faults.read_log(log)} == {
        "InvalidAMIID.NotFound", "LaunchTemplateLimitExceeded"}
    check_nothing_lost(session, configs_before, origin, "after the failing run")
    assert_converged(session, origin, left_alone={"compliant"} | set(broken))
    changes = json.loads((tmp_path / "out" / "autoscaling-3-convert-to-imdsv2-launch-template"
                          / "imds-changes.json").read_text())
    assert {c["AutoScalingGroupName"] for c in changes if "Error" in c} == set(broken)
    assert {c["AutoScalingGroupName"] for c in changes if "Error" not in c} == {
        "shared-a", "shared-b", "public", "spot", "odd"}


def test_a_group_cut_off_by_the_network_fails_alone(moto, tmp_path):
    """Every attempt to switch group `public` dies on the network (the connection
    closes; botocore retries 4 times, then raises ConnectionClosedError, a
    BotoCoreError rather than a ClientError). As with an AWS error, that group must
    fail alone - named, with the reason - while the groups after it are still
    converted and the outcome file is written."""
    endpoint, session = moto
    seed(session)
    autoscaling = session.client("autoscaling")
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    log = tmp_path / "refusals.jsonl"
    result = c7n(run_args(tmp_path / "out", REMEDIATE), endpoint, tmp_path, {
        "log": str(log), "refuse": [
            {"operation": "UpdateAutoScalingGroup", "match": "public", "kind": "reset"}]})
    assert result.returncode != 0
    assert len(faults.read_log(log)) == 5  # botocore's 5 attempts, all cut off
    check_nothing_lost(session, configs_before, origin, "after the cut-off run")
    failed = [line for line in result.stderr.splitlines() if line.startswith(" - public:")]
    assert failed and "Connection" in failed[0], result.stderr[-3000:]
    assert_converged(session, origin, left_alone={"compliant", "public"})
    changes = tmp_path / "out" / "autoscaling-3-convert-to-imdsv2-launch-template" / \
        "imds-changes.json"
    assert {c["AutoScalingGroupName"] for c in json.loads(changes.read_text())
            if "Error" in c} == {"public"}


LONG_NAME = ("Prod \u00e9t\u00e9 / web (v2) [blue] #1 & 'q' \"dq\" <x> 100% ~ \u2713 "
             * 8)[:254] + "z"
ODD_NAMES = {
    "long": LONG_NAME,
    "odd": ODD_NAME,
    "space": "a b",
    "under": "a_b",  # sanitizes like "a b": the templates must still differ
    "unicode": "\u540d\u524d\u3060\u3051",  # nothing valid left in a template name
    "short": "x",
    "punct": "..//..",
    "copy-long": LONG_NAME[:-1] + "y",
    "copy-space": "c d ",  # trailing white space
}
COPY_GROUPS = ("copy-long", "copy-space")
ODD_POLICIES = """
policies:
  - name: convert-odd
    resource: asg
    filters:
      - "tag:path": convert
      - {type: imds, key: HttpTokens, value: optional}
    actions:
      - convert-to-launch-template
  - name: copy-odd
    resource: asg
    filters:
      - "tag:path": copy
      - {type: imds, key: HttpTokens, value: optional}
    actions:
      - copy-launch-configuration
"""


def test_odd_and_255_character_names_convert_copy_and_revert(moto, tmp_path):
    endpoint, session = moto
    assert len(LONG_NAME) == 255
    autoscaling, ec2 = session.client("autoscaling"), session.client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    for group, lc in ODD_NAMES.items():
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=lc, ImageId="ami-12c6146b", InstanceType="t3.micro",
            UserData=USER_DATA_TEXT)
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group, LaunchConfigurationName=lc, MinSize=0, MaxSize=1,
            DesiredCapacity=0, VPCZoneIdentifier=subnet, Tags=[{
                "Key": "path", "Value": "copy" if group in COPY_GROUPS else "convert",
                "PropagateAtLaunch": False}])
    assert set(all_configs(autoscaling)) == set(ODD_NAMES.values())
    policy = tmp_path / "odd.yml"
    policy.write_text(ODD_POLICIES)
    result = c7n(run_args(tmp_path / "out", policy), endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    groups, templates = groups_by_name(autoscaling), all_templates(ec2)
    configs = all_configs(autoscaling)
    converted = [g for g in ODD_NAMES if g not in COPY_GROUPS]
    used = set()
    for group in converted:
        spec = groups[group]["LaunchTemplate"]
        template = templates[spec["LaunchTemplateId"]]
        assert TEMPLATE_NAME.match(template["LaunchTemplateName"]), template
        assert tags_of(template)[SOURCE_TAG] == ODD_NAMES[group]
        data = version(ec2, spec["LaunchTemplateId"], "$Default")["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert base64.b64decode(data["UserData"]).decode() == USER_DATA_TEXT
        used.add(spec["LaunchTemplateId"])
    assert len(used) == len(converted)  # "a b" and "a_b" got different templates
    assert tags_of(groups["long"])[PREVIOUS_TAG].startswith("lc-sha256:")
    assert tags_of(groups["odd"])[PREVIOUS_TAG] == "lc:" + ODD_NAME
    for group in COPY_GROUPS:
        copy_name = groups[group]["LaunchConfigurationName"]
        assert copy_name != ODD_NAMES[group] and "-imdsv2-" in copy_name, copy_name
        assert len(copy_name) <= 255
        assert configs[copy_name]["MetadataOptions"]["HttpTokens"] == "required"
        assert base64.b64decode(configs[copy_name]["UserData"]).decode() == USER_DATA_TEXT
    assert set(configs) >= set(ODD_NAMES.values())  # originals kept

    revert = tmp_path / "revert.yml"
    revert.write_text(textwrap.dedent("""
        policies:
          - name: revert-odd
            resource: asg
            filters:
              - type: value
                key: AutoScalingGroupName
                op: in
                value: [long, copy-long, copy-space, unicode]
            actions:
              - revert-imds-remediation
    """))
    result = c7n(run_args(tmp_path / "revert", revert), endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = groups_by_name(autoscaling)
    for group in ("long", "copy-long", "copy-space", "unicode"):
        assert groups[group]["LaunchConfigurationName"] == ODD_NAMES[group], group
        assert PREVIOUS_TAG not in tags_of(groups[group]), group


# -- 4. secrets -----------------------------------------------------------------------

def secret_needles():
    """The canary as text, the whole user data as base64, and the canary's own base64
    at each of the three byte alignments it can have inside a longer base64 text, each
    also URL-encoded (as a query-protocol request body carries it)."""
    from urllib.parse import quote
    needles = {CANARY, USER_DATA}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + CANARY.encode() + b"\0\0").decode()
        # base64 characters whose 6 bits all come from the canary
        first, last = -(-8 * offset // 6), 8 * (offset + len(CANARY)) // 6
        needles.add(encoded[first:last])
    needles |= {quote(n, safe="") for n in needles}
    needles |= {base64.b64encode(USER_DATA.encode()).decode()}
    return sorted(n.encode() for n in needles if len(n) >= 12)


def test_user_data_canary_never_leaves_the_configuration(moto, tmp_path):
    """detect, plan, remediate (with an owner notification), the copy path and the
    summary, all at debug verbosity; every byte of stdout, stderr, every output file
    and every message put on the mailer queue is searched for the canary."""
    endpoint, session = moto
    seed(session)
    autoscaling = session.client("autoscaling")
    cloudwatch, sqs = session.client("cloudwatch"), session.client("sqs")
    queue_url = sqs.create_queue(QueueName="c7n-mailer")["QueueUrl"]
    # shared-a's instance still calls IMDSv1: held back, its owner notified
    instance = groups_by_name(autoscaling)["shared-a"]["Instances"][0]["InstanceId"]
    cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=[{
        "MetricName": "MetadataNoToken", "Value": 3, "Unit": "Count",
        "Timestamp": datetime.datetime.now(datetime.timezone.utc)
        - datetime.timedelta(hours=2),
        "Dimensions": [{"Name": "InstanceId", "Value": instance}]}])
    outputs = []

    def record(results):
        for result in results:
            outputs.append((" ".join(result.args[:2]), result.stdout + result.stderr))
            assert result.returncode == 0, (result.args, result.stderr[-3000:])

    record(c7n_together([
        run_args(tmp_path / "detect", DETECT, verbose=True),
        ["plan", "-v", "-v", "-s", str(tmp_path / "plan"), "--cache-period", "0",
         REMEDIATE]], endpoint, tmp_path))
    record([c7n(run_args(tmp_path / "remediate", REMEDIATE, verbose=True), endpoint,
                tmp_path)])
    groups = groups_by_name(autoscaling)
    assert groups["shared-b"].get("LaunchTemplate") and not groups["shared-a"].get(
        "LaunchTemplate")
    # the copy path: a new group on the canary's configuration, copied with IMDSv2
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="late", LaunchConfigurationName="shared-lc", MinSize=0,
        MaxSize=1, DesiredCapacity=0, VPCZoneIdentifier=groups["public"]["VPCZoneIdentifier"])
    record([c7n(run_args(tmp_path / "copy", COPY_LC, verbose=True), endpoint, tmp_path)])
    late = groups_by_name(autoscaling)["late"]["LaunchConfigurationName"]
    assert late != "shared-lc"
    copied = all_configs(autoscaling)[late]
    assert base64.b64decode(copied["UserData"]).decode() == USER_DATA_TEXT  # it did pass
    # the needles do find the secret where it legitimately is
    assert any(n in copied["UserData"].encode() for n in secret_needles())
    folders = [str(tmp_path / f) for f in ("detect", "remediate", "copy")]
    if (REPO / "c7n_imds" / "report.py").exists():
        record(c7n_together([["summary"] + folders] + [
            ["summary", "--format", fmt, "-o", str(tmp_path / ("summary." + fmt))] + folders
            for fmt in ("json", "html")], endpoint, tmp_path))

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)[
        "Messages"]
    assert messages, "the held-back group's notification was not sent"
    for message in messages:
        decoded = zlib.decompress(base64.b64decode(message["Body"]))
        assert b"shared-a" in decoded
        outputs.append(("sqs message", decoded.decode("utf-8", "replace")))
        outputs.append(("sqs message body", message["Body"]))
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "site" not in p.parts]
    assert any(p.name == "custodian-run.log" for p in files)
    leaks = []
    for needle in secret_needles():
        for what, text in outputs:
            if needle in text.encode("utf-8"):
                leaks.append("%s in output of %s" % (needle, what))
        for path in files:
            if needle in path.read_bytes():
                leaks.append("%s in %s" % (needle, path.relative_to(tmp_path)))
    FIGURES["secret files searched"] += len(files)
    print("\nsecrets: %d outputs, %d files, %d messages searched for %d needles" % (
        len(outputs), len(files), len(messages), len(secret_needles())))
    assert not leaks, leaks


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    yield
    print("\nreliability figures: %s" % dict(FIGURES))
