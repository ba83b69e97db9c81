"""Two `c7n-imds` runs at once make one of everything (forced into the create race)."""

import subprocess
import sys
from pathlib import Path

from tests import faults
from tests.support.commands import (
    FIGURES,
    PREVIOUS_TAG,
    REMEDIATE,
    SOURCE_TAG,
    all_configs,
    all_templates,
    c7n,
    check_nothing_lost,
    command_env,
    derived_versions,
    launch_origin,
    run_args,
    tags_of,
    version,
)
from tests.support.estates import groups_by_name, seed


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
    plan = {
        "record": True,
        "log": str(log),
        "barriers": [
            {"operation": op, "folder": str(tmp_path / "barrier"), "parties": 2, "timeout": 20}
            for op in ("CreateLaunchTemplate", "CreateLaunchTemplateVersion")
        ],
    }
    env = command_env(endpoint, tmp_path, plan)
    script = Path(sys.executable).with_name("c7n-imds")
    runs = [
        subprocess.Popen(
            [str(script)] + run_args(tmp_path / ("out-%d" % n), REMEDIATE),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
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
    assert (
        version(ec2, lt, "$Default")["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"]
        == "required"
    )
    # Both processes created an IMDSv2 version of existing-lt from version 1. AWS
    # collapses the two into one only if they carry the same idempotency token (moto
    # ignores tokens and keeps both, so its version count proves nothing here).
    version_tokens = {}
    for e in calls:
        if e["operation"] == "CreateLaunchTemplateVersion":
            version_tokens.setdefault((e["LaunchTemplateId"], e["SourceVersion"]), set()).add(
                e.get("ClientToken")
            )
    assert version_tokens and all(len(t) == 1 for t in version_tokens.values()), (
        "concurrent runs sent CreateLaunchTemplateVersion for the same source version "
        "with different ClientTokens: AWS keeps both versions, as moto did (%d IMDSv2 "
        "versions of %s)" % (len(derived_versions(ec2, lt)), lt),
        version_tokens,
    )
