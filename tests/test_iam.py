"""`c7n-imds iam-policy` covers every call a real run makes.

Custodian records each policy's API calls in metadata.json ("api-stats"); every one of
them, across detect and remediate runs against moto, must be allowed by the generated
policy."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from c7n_imds.iam import policy_permissions
from tests.conftest import REPO
from tests.support.estates import seed

# botocore endpoint prefixes that differ from IAM's service prefixes
IAM_PREFIX = {"monitoring": "cloudwatch"}


def test_generated_policy_covers_every_call_of_a_run(moto, c7n_imds_cmd, tmp_path):
    endpoint, session = moto
    seed(session)
    session.client("sqs").create_queue(QueueName="c7n-mailer")
    files = [str(REPO / "policies" / f) for f in ("detect.yml", "remediate.yml",
                                                  "cleanup.yml")]
    result = c7n_imds_cmd(["iam-policy"] + files, endpoint)
    document = json.loads(result.stdout)
    assert document["Version"] == "2012-10-17"
    allowed = set()
    for statement in document["Statement"]:
        actions = statement["Action"]
        allowed.update([actions] if isinstance(actions, str) else actions)
    pass_role = [s for s in document["Statement"] if s["Action"] == "iam:PassRole"][0]
    # ec2.amazonaws.com, and ec2.amazonaws.com.cn in the aws-cn partition
    assert pass_role["Condition"] == {
        "StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}
    tagging = [s for s in document["Statement"] if s["Action"] == "ec2:CreateTags"][0]
    assert tagging["Condition"] == {"StringEquals": {
        "ec2:CreateAction": ["CreateLaunchTemplate", "RunInstances"]}}
    # templates c7n-imds did not make may take their image from an SSM parameter
    assert "ssm:GetParameters" in allowed
    # remediate.yml keeps running instances as they are
    assert not {"ec2:ModifyInstanceMetadataOptions",
                "autoscaling:StartInstanceRefresh"} & allowed

    for f in files:
        c7n_imds_cmd(["run", "-s", str(tmp_path / Path(f).stem), "--cache-period", "0", f],
                     endpoint)
    made = set()
    for metadata in tmp_path.rglob("metadata.json"):
        for call in json.loads(metadata.read_text())["api-stats"]:
            service, operation = call.split(".", 1)
            made.add("%s:%s" % (IAM_PREFIX.get(service, service), operation))
    assert {"ec2:CreateLaunchTemplate", "autoscaling:UpdateAutoScalingGroup",
            "ec2:RunInstances"} <= made  # the run really remediated
    assert made - allowed == set()
    assert {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"} <= allowed


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ("policies: [\n", "not valid YAML"),
    ("policies:\n  - name: p\n    resource: asg\n    actions:\n"
     "      - {type: set-metadata-access, hop-limit: 99}\n", "invalid policy"),
    ("# nothing\n", "holds no policies"),
], ids=["missing", "bad-yaml", "invalid", "empty"])
def test_iam_policy_refuses_bad_input_in_one_line(tmp_path, content, words):
    path = tmp_path / "policy.yml"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("c7n-imds")), "iam-policy", str(path)],
        capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and words in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("action, present, absent", [
    ({"type": "set-metadata-access"},
     {"ec2:RunInstances", "ec2:GetInstanceTypesFromInstanceRequirements",
      "ec2:DeleteLaunchTemplateVersions"},
     {"ec2:ModifyInstanceMetadataOptions", "autoscaling:StartInstanceRefresh"}),
    ({"type": "set-metadata-access", "running-instances": "modify"},
     {"ec2:ModifyInstanceMetadataOptions"}, {"autoscaling:StartInstanceRefresh"}),
    ({"type": "set-metadata-access", "running-instances": "refresh"},
     {"autoscaling:StartInstanceRefresh"}, {"ec2:ModifyInstanceMetadataOptions"}),
    ({"type": "set-metadata-access", "verify": False},
     {"ec2:CreateLaunchTemplateVersion"},
     {"ec2:GetInstanceTypesFromInstanceRequirements", "ec2:DescribeImages"}),
    ({"type": "convert-to-launch-template"}, {"ec2:DeleteLaunchTemplate"},
     {"ssm:GetParameters", "ec2:ModifyInstanceMetadataOptions"}),
])
def test_permissions_follow_the_options(load_policy, action, present, absent):
    """Only what a policy's options use: running-instances keep needs nothing on
    running instances, modify and refresh each need their one call, verify false
    drops what only the pre-flight needs; a conversion makes templates from AMI ids,
    so it needs no SSM parameter."""
    policy = load_policy({"name": "p", "resource": "asg", "actions": [action]},
                         session_factory=None)
    permissions = policy_permissions([policy])
    assert present <= permissions
    assert not absent & permissions


def test_deploy_policy_is_for_lambda_modes_only(tmp_path):
    """--deploy: the deployer's calls, and iam:PassRole of the modes' roles to Lambda
    only; files without a Lambda mode have nothing to deploy (one line)."""
    command = str(Path(sys.executable).with_name("c7n-imds"))
    result = subprocess.run([command, "iam-policy", "--deploy", str(
        REPO / "policies" / "lambda" / "remediate-periodic.yml")], capture_output=True,
        text=True)
    assert result.returncode == 0, result.stderr
    deploy, passing = json.loads(result.stdout)["Statement"]
    assert {"lambda:CreateFunction", "events:PutRule"} <= set(deploy["Action"])
    assert not [a for a in deploy["Action"] if a.startswith(("ec2:", "autoscaling:"))]
    assert passing["Resource"] == ["arn:aws:iam::*:role/c7n-imds-lambda"]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    none = subprocess.run([command, "iam-policy", "--deploy", str(
        REPO / "policies" / "detect.yml")], capture_output=True, text=True)
    assert none.returncode == 2 and none.stderr.count("\n") == 1
    assert "no policy in" in none.stderr and "Lambda mode" in none.stderr
