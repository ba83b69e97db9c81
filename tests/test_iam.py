"""`c7n-imds iam-policy` covers every call a real run makes.

Custodian records each policy's API calls in metadata.json ("api-stats"); every one of
them, across detect and remediate runs against moto, must be allowed by the generated
policy."""
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.test_e2e import seed

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
    assert pass_role["Condition"]["StringEquals"]["iam:PassedToService"] == \
        "ec2.amazonaws.com"

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


def test_iam_policy_rejects_a_missing_file():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("c7n-imds")), "iam-policy", "no-such.yml"],
        capture_output=True, text=True)
    assert result.returncode != 0
