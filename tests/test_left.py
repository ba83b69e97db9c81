"""policies/left/: the pack's c7n-left policies, run by the real c7n-left over a sample
Terraform tree (tests/data/terraform/before) and its fixed version (after), as a CI
step would before anything deploys."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

E2E = True  # the real c7n-left in a subprocess
C7N_LEFT = str(Path(sys.executable).with_name("c7n-left"))
TREES = REPO / "tests" / "data" / "terraform"


def c7n_left(tree, tmp_path):
    """(exit code, sorted (policy, path)) of plain c7n-left over a tree."""
    out = tmp_path / ("%s.json" % tree)
    result = subprocess.run(
        [
            C7N_LEFT,
            "run",
            "-p",
            str(REPO / "policies" / "left"),
            "-d",
            str(TREES / tree),
            "--output",
            "json",
            "--output-file",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    findings = sorted(
        (r["policy"]["name"], r["resource"]["__tfmeta"]["path"])
        for r in json.loads(out.read_text())["results"]
    )
    return result.returncode, findings


def test_the_unfixed_tree_fails_with_one_finding_per_problem(tmp_path):
    returncode, findings = c7n_left("before", tmp_path)
    assert returncode == 1
    assert findings == [
        ("autoscaling-3-terraform-launch-configuration-imdsv1", "aws_launch_configuration.web"),
        ("autoscaling-9-terraform-group-on-launch-configuration", "aws_autoscaling_group.web"),
        # a launch configuration requiring IMDSv2 still fails AutoScaling.9
        ("autoscaling-9-terraform-launch-configuration", "aws_launch_configuration.hardened_lc"),
        ("autoscaling-9-terraform-launch-configuration", "aws_launch_configuration.web"),
        ("ec2-170-terraform-launch-template-imdsv1", "aws_launch_template.svc"),
        ("ec2-8-terraform-instance-imdsv1", "aws_instance.bastion"),
    ]


def test_the_fixed_tree_passes(tmp_path):
    assert c7n_left("after", tmp_path) == (0, [])


# -- the gate (c7n_imds.left) over module shapes: tests/data/terraform/<shape>/, written
# for c7n-imds in the shapes of terraform-aws-modules autoscaling v3/v4, cloudposse and
# a registry module call; plan/plan.json in the shape of `terraform show -json` --------

AS3, AS9_LC, AS9_GROUP, EC2_170, EC2_8 = (
    "autoscaling-3-terraform-launch-configuration-imdsv1",
    "autoscaling-9-terraform-launch-configuration",
    "autoscaling-9-terraform-group-on-launch-configuration",
    "ec2-170-terraform-launch-template-imdsv1",
    "ec2-8-terraform-instance-imdsv1",
)

# Adjudicated by hand, per shape: what is truly wrong with the defaults as written.
TRUTH = {
    "modules-v3": {
        (AS3, "aws_launch_configuration.this"),
        (AS9_LC, "aws_launch_configuration.this"),
        (AS9_GROUP, "aws_autoscaling_group.this"),
    },
    # the template requires IMDSv2 through its dynamic block; the group uses it
    "modules-v4": {(EC2_170, "aws_launch_template.legacy")},
    # enabled through the context: the template allows IMDSv1
    "cloudposse": {(EC2_170, "aws_launch_template.default")},
    # terraform-aws-modules/autoscaling v7 leaves metadata_options empty by default
    "remote-module": {(EC2_170, "module.asg")},
    "plan": {
        (AS3, "aws_launch_configuration.legacy"),
        (AS9_LC, "aws_launch_configuration.legacy"),
        (AS9_GROUP, "aws_autoscaling_group.legacy"),
        (EC2_170, "module.fleet.aws_launch_template.default"),
    },
}
# What the gate says: findings, and what it reports as not evaluated (failing it).
GATE = {
    "modules-v3": (TRUTH["modules-v3"], set()),
    # a known false positive: tfparse cannot evaluate the unary ! in the group's dynamic
    # launch_template for_each, so the group reads as naming no template (fail closed;
    # the plan resolves it)
    "modules-v4": (TRUTH["modules-v4"] | {(AS9_GROUP, "aws_autoscaling_group.this")}, set()),
    "cloudposse": (
        set(),
        {"module.this", "aws_launch_template.default", "aws_autoscaling_group.default"},
    ),
    "remote-module": (set(), {"module.asg"}),
    "plan": (TRUTH["plan"], set()),
}


def gate(shape, *flags):
    source = (
        ["--plan", str(TREES / "plan" / "plan.json")]
        if shape == "plan"
        else ["-d", str(TREES / shape)]
    )
    from c7n_imds import left

    code, outcome = left.gate(
        str(REPO / "policies" / "left"),
        *((None, source[1]) if shape == "plan" else (source[1], None)),
        accept_unevaluated="--accept-unevaluated" in flags,
    )
    findings = {
        (
            r["policy"]["name"],
            re.sub(
                r"\[[^\]]*\]",
                "",
                r["resource"]["__tfmeta"].get("address", r["resource"]["__tfmeta"]["path"]),
            ),
        )
        for r in outcome["results"]
    }
    return code, findings, {u["address"] for u in outcome["unevaluated"]}


@pytest.mark.parametrize("shape", sorted(GATE))
def test_the_gate_judges_each_resource_or_reports_it_not_evaluated(shape):
    code, findings, unevaluated = gate(shape)
    assert (findings, unevaluated) == GATE[shape]
    assert code == 1  # every shape has something wrong, or something not evaluated
    # no silent pass: everything truly wrong is found or reported as not evaluated
    missed = {(p, a) for p, a in TRUTH[shape] - findings if a not in unevaluated}
    assert missed == set()


def test_not_evaluated_passes_only_when_accepted():
    assert gate("cloudposse", "--accept-unevaluated")[0] == 0
    assert gate("remote-module", "--accept-unevaluated")[0] == 0
    assert gate("modules-v3", "--accept-unevaluated")[0] == 1  # findings still fail


def test_plain_c7n_left_passes_what_it_cannot_evaluate_silently(tmp_path):
    """Why the gate exists: c7n-left alone exits 0 over the cloudposse shape."""
    assert c7n_left("cloudposse", tmp_path) == (0, [])


def test_upstream_still_drops_a_dynamic_block_followed_by_another_block(tmp_path):
    """c7n-left 0.3.39 (tfparse) reads modules-v4's aws_launch_template.this, whose
    dynamic "metadata_options" a lifecycle block follows, as having no metadata
    options. The gate reorders the blocks in a copy (c7n_imds.left.dynamic_last). When
    this test fails, upstream has fixed it: drop the workaround."""
    returncode, findings = c7n_left("modules-v4", tmp_path)
    assert (EC2_170, "aws_launch_template.this") in findings


def test_the_gate_runs_as_a_command(tmp_path):
    out = tmp_path / "gate.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "c7n_imds.left",
            "-p",
            str(REPO / "policies" / "left"),
            "-d",
            str(TREES / "cloudposse"),
            "--output-file",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "NOT EVALUATED aws_launch_template.default" in result.stdout
    assert "it depends on module.this.enabled" in result.stdout
    assert len(json.loads(out.read_text())["unevaluated"]) == 3


def test_the_measured_verdicts_against_the_adjudication(tmp_path):
    """Per shape and policy: what truly is wrong, what plain c7n-left finds, what the
    gate finds or reports. Printed for the record; the gate misses nothing."""
    plain_missed = gate_missed = gate_false = 0
    for shape in sorted(TRUTH):
        _, findings, unevaluated = gate(shape)
        plain = (
            set()
            if shape == "plan"
            else {(p, re.sub(r"\[[^\]]*\]", "", a)) for p, a in c7n_left(shape, tmp_path)[1]}
        )
        plain_missed += len(TRUTH[shape] - plain)
        gate_missed += len({(p, a) for p, a in TRUTH[shape] - findings if a not in unevaluated})
        gate_false += len(findings - TRUTH[shape])
    print(
        "truly wrong %d; plain c7n-left misses %d; the gate misses %d, with %d false "
        "positive(s)" % (sum(map(len, TRUTH.values())), plain_missed, gate_missed, gate_false)
    )
    assert gate_missed == 0
