"""policies/left/: the pack's c7n-left policies, run by the real c7n-left over a sample
Terraform tree (tests/data/terraform/before) and its fixed version (after), as a CI
step would before anything deploys."""
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

E2E = True  # the real c7n-left in a subprocess
C7N_LEFT = str(Path(sys.executable).with_name("c7n-left"))
TREES = REPO / "tests" / "data" / "terraform"


def c7n_left(tree, tmp_path):
    out = tmp_path / ("%s.json" % tree)
    result = subprocess.run(
        [C7N_LEFT, "run", "-p", str(REPO / "policies" / "left"), "-d", str(TREES / tree),
         "--output", "json", "--output-file", str(out)],
        capture_output=True, text=True, timeout=300)
    findings = sorted((r["policy"]["name"], r["resource"]["__tfmeta"]["path"])
                      for r in json.loads(out.read_text())["results"])
    return result.returncode, findings


def test_the_unfixed_tree_fails_with_one_finding_per_problem(tmp_path):
    returncode, findings = c7n_left("before", tmp_path)
    assert returncode == 1
    assert findings == [
        ("autoscaling-3-terraform-launch-configuration-imdsv1",
         "aws_launch_configuration.web"),
        ("autoscaling-9-terraform-group-on-launch-configuration", "aws_autoscaling_group.web"),
        # a launch configuration requiring IMDSv2 still fails AutoScaling.9
        ("autoscaling-9-terraform-launch-configuration",
         "aws_launch_configuration.hardened_lc"),
        ("autoscaling-9-terraform-launch-configuration", "aws_launch_configuration.web"),
        ("ec2-170-terraform-launch-template-imdsv1", "aws_launch_template.svc"),
        ("ec2-8-terraform-instance-imdsv1", "aws_instance.bastion")]


def test_the_fixed_tree_passes(tmp_path):
    assert c7n_left("after", tmp_path) == (0, [])
