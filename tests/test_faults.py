"""Faults on the network path of the real `c7n-imds` command (tests/faults.py): throttling,
5xx, resets, lost answers and kills lose nothing and converge; a group cut off fails alone."""

import json
from collections import Counter
from pathlib import Path

import c7n_imds
from c7n_imds.model.outcomes import entries
from tests import faults
from tests.support.commands import (
    COPY_LC,
    DETECT,
    FIGURES,
    PREVIOUS_TAG,
    REMEDIATE,
    all_configs,
    all_templates,
    assert_converged,
    c7n,
    check_nothing_lost,
    derived_versions,
    fault_figures,
    grow,
    launch_origin,
    run_args,
    tags_of,
    version,
)
from tests.support.estates import groups_by_name, seed


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
    parallel.write_text(
        Path(REMEDIATE)
        .read_text()
        .replace(
            "        version: $Default\n", "        version: $Default\n        concurrency: 4\n", 1
        )
    )
    assert "concurrency: 4" in parallel.read_text()
    rounds = [(parallel, 31, 0.2, 0.35), (REMEDIATE, 32, 0.25, 0.4)]
    for n, (policy, seed_value, rate, mutating_rate) in enumerate(rounds):
        log = tmp_path / ("faults-%d.jsonl" % n)
        result = c7n(
            run_args(tmp_path / ("out-%d" % n), policy),
            endpoint,
            tmp_path,
            {
                "rate": rate,
                "mutating_rate": mutating_rate,
                "seed": seed_value,
                "log": str(log),
                "services": ["ec2", "auto-scaling", "cloudwatch"],
            },
        )
        i, s, k = fault_figures(log, result.returncode)
        injected, survived, kinds = injected + i, survived + s, kinds + k
        check_nothing_lost(session, configs_before, origin, "after faulty run %d" % n)
        if result.returncode != 0:
            # A failed run must say which group or policy, never die silently.
            assert "failed for" in result.stderr or "had errors" in result.stderr, result.stderr[
                -3000:
            ]
        if n == 0:
            for name in ("extra-1-0", "extra-2-1", "shared-b", "spot"):
                autoscaling.update_auto_scaling_group(
                    AutoScalingGroupName=name, LaunchConfigurationName=origin[name]
                )
    result = c7n(run_args(tmp_path / "clean", REMEDIATE), endpoint, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    check_nothing_lost(session, configs_before, origin, "after the clean run")
    assert_converged(session, origin, left_alone={"compliant", "exempt"})
    assert set(all_configs(autoscaling)) == configs_before
    runs = len(rounds) + 1

    # The deprecated path under faults: new groups on the configurations, copied.
    subnets = groups_by_name(autoscaling)["public"]["VPCZoneIdentifier"]
    late = {
        "late-%d" % i: lc
        for i, lc in enumerate(["extra-1", "extra-1", "extra-2", "extra-3", "public-lc", "spot-lc"])
    }
    for name, lc in late.items():
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName=lc,
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnets,
        )
    origin.update(late)
    log = tmp_path / "faults-copy.jsonl"
    result = c7n(
        run_args(tmp_path / "copy", COPY_LC),
        endpoint,
        tmp_path,
        {
            "rate": 0.25,
            "mutating_rate": 0.4,
            "seed": 33,
            "log": str(log),
            "services": ["ec2", "auto-scaling", "cloudwatch"],
        },
    )
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
    copies = Counter(name.rsplit("-imdsv2-", 1)[0] for name in configs if "-imdsv2-" in name)
    assert copies == Counter({lc: 1 for lc in set(late.values())}), copies
    for name, lc in late.items():
        copy = configs[groups[name]["LaunchConfigurationName"]]
        assert copy["LaunchConfigurationName"].startswith(lc + "-imdsv2-"), name
        assert copy["MetadataOptions"]["HttpTokens"] == "required", name
        assert tags_of(groups[name])[PREVIOUS_TAG] == "lc:" + lc, name

    FIGURES["fault groups"] += len(groups)
    FIGURES["faults injected"] += injected
    FIGURES["faults survived"] += survived
    print(
        "\ntransient faults: %d runs, %d groups, %d faults injected (%s), %d survived"
        % (runs, len(groups), injected, dict(kinds), survived)
    )
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
    crashes = [
        "CreateLaunchTemplate",
        "CreateOrUpdateTags",
        "UpdateAutoScalingGroup",
        "CreateLaunchTemplateVersion",
    ]
    for n, operation in enumerate(crashes):
        log = tmp_path / ("crash-%d.jsonl" % n)
        result = c7n(
            run_args(tmp_path / ("out-%d" % n), REMEDIATE),
            endpoint,
            tmp_path,
            {"crash_after": {"operation": operation, "nth": 1}, "log": str(log)},
        )
        assert result.returncode == 137, (operation, result.stderr[-2000:])
        assert [e["operation"] for e in faults.read_log(log) if e["event"] == "crash"] == [
            operation
        ]
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
    print(
        "\nkilled runs: %d runs, %d groups, %d kills, all survived"
        % (len(crashes) + 1, len(origin) + 1, len(crashes))
    )


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
        autoscaling.create_launch_configuration(LaunchConfigurationName=group + "-lc", **params)
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchConfigurationName=group + "-lc",
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnets,
        )
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    log = tmp_path / "refusals.jsonl"
    result = c7n(
        run_args(tmp_path / "out", REMEDIATE),
        endpoint,
        tmp_path,
        {
            "log": str(log),
            "missing_images": ["ami-0badbadbad0000000"],
            "refuse": [
                {
                    "operation": "CreateLaunchTemplate",
                    "match": "quota-lc",
                    "code": "LaunchTemplateLimitExceeded",
                    "message": "You've reached the maximum number of launch templates (5000).",
                }
            ],
        },
    )
    assert result.returncode != 0
    lines = {
        group: [line for line in result.stderr.splitlines() if " - %s:" % group in line]
        for group in broken
    }
    assert "no-such-sg" in " ".join(lines["ghost-sg"]), result.stderr[-3000:]
    assert "InvalidAMIID.NotFound" in " ".join(lines["no-image"]), result.stderr[-3000:]
    assert "LaunchTemplateLimitExceeded" in " ".join(lines["quota"]), result.stderr[-3000:]
    assert {e["code"] for e in faults.read_log(log)} == {
        "InvalidAMIID.NotFound",
        "LaunchTemplateLimitExceeded",
    }
    check_nothing_lost(session, configs_before, origin, "after the failing run")
    assert_converged(session, origin, left_alone={"compliant"} | set(broken))
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
    assert {c["AutoScalingGroupName"] for c in changes if "Error" in c} == set(broken)
    assert {c["AutoScalingGroupName"] for c in changes if "Error" not in c} == {
        "shared-a",
        "shared-b",
        "public",
        "spot",
        "odd",
    }


def test_a_group_cut_off_by_the_network_fails_alone(moto, tmp_path):
    """Every attempt to switch group `public` dies on the network (the connection
    closes; botocore retries 7 times, then raises ConnectionClosedError, a
    BotoCoreError rather than a ClientError). As with an AWS error, that group must
    fail alone - named, with the reason - while the groups after it are still
    converted and the outcome file is written."""
    endpoint, session = moto
    seed(session)
    autoscaling = session.client("autoscaling")
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    log = tmp_path / "refusals.jsonl"
    result = c7n(
        run_args(tmp_path / "out", REMEDIATE),
        endpoint,
        tmp_path,
        {
            "log": str(log),
            "refuse": [{"operation": "UpdateAutoScalingGroup", "match": "public", "kind": "reset"}],
        },
    )
    assert result.returncode != 0
    # every attempt c7n-imds allows, all cut off
    assert len(faults.read_log(log)) == c7n_imds.aws.MAX_ATTEMPTS
    check_nothing_lost(session, configs_before, origin, "after the cut-off run")
    failed = [line for line in result.stderr.splitlines() if line.startswith(" - public:")]
    assert failed and "Connection" in failed[0], result.stderr[-3000:]
    assert_converged(session, origin, left_alone={"compliant", "public"})
    changes = (
        tmp_path / "out" / "autoscaling-3-convert-to-imdsv2-launch-template" / "imds-changes.json"
    )
    assert {
        c["AutoScalingGroupName"] for c in entries(json.loads(changes.read_text())) if "Error" in c
    } == {"public"}


OUTAGE = {
    "failures": 6,
    "kinds": ["reset", "unavailable", "internal"],
    "services": ["ec2", "auto-scaling", "cloudwatch"],
}


def test_an_outage_of_six_failures_per_api_is_outlasted(moto, tmp_path):
    """Every EC2, Auto Scaling and CloudWatch API - custodian's own group listing
    included - fails its first six attempts (dropped connections, 503, 500 in turn),
    more than botocore's default five attempts survive. The one run still converts
    every group: all calls are as patient with network errors and 5xx as with
    throttling."""
    endpoint, session = moto
    ids = seed(session)
    grow(session, ids, count=2)
    autoscaling = session.client("autoscaling")
    origin = launch_origin(autoscaling)
    configs_before = set(all_configs(autoscaling))
    log = tmp_path / "outage.jsonl"
    result = c7n(
        run_args(tmp_path / "out", REMEDIATE),
        endpoint,
        tmp_path,
        {"log": str(log), "outage": OUTAGE},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    hit = Counter(e["operation"] for e in faults.read_log(log) if e["event"] == "fault")
    assert hit["DescribeAutoScalingGroups"] == 6 and hit["CreateLaunchTemplate"] == 6, hit
    assert hit["UpdateAutoScalingGroup"] == 6 and hit["GetMetricData"] == 6, hit
    check_nothing_lost(session, configs_before, origin, "after the outage")
    assert_converged(session, origin, left_alone={"compliant", "exempt"})


def test_a_describe_that_stays_down_ends_its_policy_with_one_line(moto, tmp_path):
    """Custodian's own listing (DescribeAutoScalingGroups) and our launch
    configuration read never answer: each policy that needs them ends with one line
    naming the API, the region, the error and what was not scanned - no traceback -
    and the run exits non-zero."""
    endpoint, session = moto
    seed(session)
    for operation, what in (
        ("DescribeAutoScalingGroups", "its Auto Scaling groups were not scanned"),
        ("DescribeLaunchConfigurations", "its launch configurations were not read"),
    ):
        result = c7n(
            run_args(tmp_path / operation, DETECT),
            endpoint,
            tmp_path,
            {"refuse": [{"operation": operation, "match": "", "kind": "reset"}]},
        )
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        stopped = [line for line in result.stderr.splitlines() if " stopped: " in line]
        assert stopped, result.stderr[-3000:]
        for line in stopped:
            assert (
                "stopped: %s in us-east-1 failed after retrying (Connection was "
                "closed before we received a valid response from endpoint URL" % (operation) in line
            ), line
            assert line.endswith("%s - run it again when AWS answers" % what), line
