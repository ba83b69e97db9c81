"""Lambda: the function archive c7n builds for our policies carries the plugin, and the
handler imported from the extracted archive runs the policy on a scheduled event
against a moto server - our filters and actions execute there."""

import json
import subprocess
import sys
import textwrap
import zipfile

from c7n.config import Config
from c7n.loader import PolicyLoader
from c7n.mu import PolicyLambda

from c7n_imds.iam import deploy_permissions, load_policies
from c7n_imds_testing import aws_env
from tests import faults
from tests.conftest import REPO
from tests.support.commands import c7n
from tests.support.estates import groups_by_name, seed

POLICY_FILE = REPO / "policies" / "lambda" / "remediate-periodic.yml"

RUN_HANDLER = textwrap.dedent("""
    import json, sys, types
    import c7n_imds, c7n
    from c7n_imds.handler import run
    print(json.dumps({"c7n_imds": c7n_imds.__file__, "c7n": c7n.__file__}))
    event = {"id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "region": "us-east-1",
             "time": "2026-11-29T00:00:00Z", "resources": [], "detail": {}}
    context = types.SimpleNamespace(
        aws_request_id="r1", function_name="custodian-test",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:f")
    run(event, context)
""")


def build_archive(tmp_path):
    loader = PolicyLoader(Config.empty(region="us-east-1", account_id="123456789012"))
    policy = [
        p
        for p in loader.load_file(str(POLICY_FILE))
        if p.name == "autoscaling-3-convert-to-imdsv2-launch-template-daily"
    ][0]
    function = PolicyLambda(policy)
    assert function.handler == "c7n_imds.handler.run"
    archive = function.get_archive()
    path = tmp_path / "function.zip"
    path.write_bytes(archive.get_bytes())
    return path


def test_archive_carries_the_plugin_and_the_handler_runs_it(moto, tmp_path):
    endpoint, session = moto
    seed(session)
    archive = build_archive(tmp_path)
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        config = json.loads(z.read("config.json"))
        extracted = tmp_path / "task"
        z.extractall(extracted)
    assert {
        "c7n_imds/__init__.py",
        "c7n_imds/handler.py",
        "c7n_imds/actions/convert.py",
        "c7n/handler.py",
        "config.json",
    } <= names
    assert config["policies"][0]["mode"]["handler"] == "c7n_imds.handler.run"

    script = extracted / "invoke_handler.py"
    script.write_text(RUN_HANDLER)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=str(extracted),
        capture_output=True,
        text=True,
        env=dict(aws_env(endpoint), PYTHONPATH=str(extracted)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    origin = json.loads(result.stdout.splitlines()[0])
    # the plugin and custodian came from the archive, not from this checkout
    assert origin["c7n_imds"].startswith(str(extracted))
    assert origin["c7n"].startswith(str(extracted))

    groups = groups_by_name(session.client("autoscaling"))
    converted = {n for n, g in groups.items() if g.get("LaunchTemplate")} - {"lt-group"}
    assert converted == {"shared-a", "shared-b", "public", "spot", "odd"}


# The hub action's run from a finding, gated like the schedule: tests/test_e2e_hub.py.


# botocore's event names -> IAM's service prefixes (post-finding's calls are the run's)
DEPLOY_PREFIX = {"eventbridge": "events"}
LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def test_security_hub_pack_deploys_its_custom_action(moto, tmp_path):
    """`c7n-imds run policies/securityhub.yml` as the README says: the findings are
    posted, and the hub action is deployed whole - the function (carrying the plugin),
    the event rule for the custom action's ARN targeting it, and the custom action
    itself (c7n 0.9.53 cannot deploy it without c7n_imds.upstream's workaround). A
    second run updates in place."""
    endpoint, session = moto
    seed(session)
    session.client("securityhub").enable_security_hub()
    session.client("iam").create_role(
        RoleName="c7n-imds-lambda", AssumeRolePolicyDocument=LAMBDA_TRUST
    )
    policy_file = str(REPO / "policies" / "securityhub.yml")
    calls = tmp_path / "calls.jsonl"
    for attempt in range(2):
        result = c7n(
            ["run", "-s", str(tmp_path / "out"), "--cache-period", "0", policy_file],
            endpoint,
            tmp_path,
            {"record": True, "log": str(calls)},
        )
        assert result.returncode == 0, result.stderr[-3000:]
    # `c7n-imds iam-policy --deploy` allows every deploying call custodian made
    allowed, _ = deploy_permissions(load_policies([policy_file]))
    made = {
        "%s:%s" % (DEPLOY_PREFIX.get(e["service"], e["service"]), e["operation"])
        for e in faults.read_log(calls)
        if e["event"] == "call"
        and e["service"] in ("lambda", "eventbridge", "securityhub")
        and e["operation"] not in ("BatchImportFindings", "GetFindings")
    }
    assert made and made <= allowed, made - allowed
    name = "custodian-autoscaling-3-remediate-from-finding"
    function = session.client("lambda").get_function(FunctionName=name)
    assert function["Configuration"]["Handler"] == "c7n_imds.handler.run"
    action_arn = (
        "arn:aws:securityhub:us-east-1:123456789012:action/custom/"
        "autoscaling-3-remediate-from-finding"
    )
    (target,) = session.client("securityhub").describe_action_targets(
        ActionTargetArns=[action_arn]
    )["ActionTargets"]
    assert target["Description"].startswith("Security Hub AutoScaling.3 custom action")
    events = session.client("events")
    pattern = json.loads(events.describe_rule(Name=name)["EventPattern"])
    assert pattern["resources"] == [action_arn]
    assert pattern["source"] == ["aws.securityhub"]
    (rule_target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert rule_target["Arn"] == function["Configuration"]["FunctionArn"]
    findings = session.client("securityhub").get_findings()["Findings"]
    titles = {f["Title"] for f in findings}
    assert "Launch configuration allows IMDSv1 (AutoScaling.3)" in titles
    recommendation = {f["Remediation"]["Recommendation"]["Text"] for f in findings}
    assert all("c7n-imds run -s out policies/remediate.yml" in r for r in recommendation)
