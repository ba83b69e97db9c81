"""`c7n-imds doctor`: the pure decisions over plain dicts, then the command against a
real moto server.

moto 5.2.5 has no SimulatePrincipalPolicy (docs/moto-gaps.md). The tests that judge the
simulator's answers run the doctor in this process with a session whose every call goes
to moto except SimulatePrincipalPolicy, which a placebo flight in AWS's shape answers
(tests/data/placebo/<test name>/iam.SimulatePrincipalPolicy_<n>.json, one file per
call in order). The subprocess tests do not reach the simulator: moto's caller,
arn:aws:sts::ACCOUNT:user/moto, is no form AWS returns, and the doctor reports its
permissions as not checked.
"""

import copy
import json
import os
import urllib.parse

import boto3
import pytest
import yaml

from c7n_imds.doctor import (
    MAIL_TEMPLATE_FOLDERS,
    chunks,
    implied_checks,
    mail_template_check,
    main,
    queue_location,
    simulation_principal,
    trusts_lambda,
)
from c7n_imds.iam import load_policies, policy_permissions
from c7n_imds_testing import aws_env, run_c7n_imds

ACCOUNT = "123456789012"
REGION = "us-east-1"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:c7n-mailer"
RUNNER_ARN = "arn:aws:iam::123456789012:role/automation/c7n-imds-runner"

# Modelled on the pack: policies/remediate.yml's held-back notice, the periodic mode of
# policies/lambda/remediate-periodic.yml, policies/securityhub.yml's finding.
NOTIFY_POLICY = {
    "name": "asg-imdsv1-in-use-held-back",
    "resource": "asg",
    "filters": [{"type": "imds", "key": "HttpTokens", "value": "optional"}],
    "actions": [
        {
            "type": "notify",
            "template": "imds.html",
            "subject": "IMDSv2: held back",
            "violation_desc": "IMDSv1 still in use.",
            "action_desc": "Left unchanged.",
            "to": ["resource-owner"],
            "transport": {"type": "sqs", "queue": "c7n-mailer"},
        }
    ],
}
LAMBDA_POLICY = {
    "name": "autoscaling-3-convert-to-imdsv2-launch-template-daily",
    "resource": "asg",
    "mode": {
        "type": "periodic",
        "schedule": "rate(1 day)",
        "role": "arn:aws:iam::{account_id}:role/c7n-imds-lambda",
        "packages": ["c7n_imds"],
        "handler": "c7n_imds.handler.run",
    },
    "filters": [{"type": "imds", "key": "LaunchType", "value": "launch-configuration"}],
    "actions": [{"type": "convert-to-launch-template", "hop-limit": "auto"}],
}
HUB_POLICY = {
    "name": "autoscaling-3-asg-imdsv1-finding",
    "resource": "asg",
    "filters": [{"type": "imds", "key": "HttpTokens", "value": "optional"}],
    "actions": [
        {
            "type": "post-finding",
            "types": ["Software and Configuration Checks/AWS Security Best Practices"],
        }
    ],
}
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
ACCOUNT_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def run_doctor(args, endpoint, env=None):
    """The real doctor in a subprocess against the endpoint, as a user runs it."""
    env = env or aws_env(endpoint)
    env.setdefault("HOME", os.environ.get("HOME", "/tmp"))
    return run_c7n_imds(["doctor"] + [str(a) for a in args], env)


def policy_file(tmp_path, *policies, name="policies.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"policies": list(policies)}, sort_keys=False))
    return path


def lines(output, status):
    return [line for line in output.splitlines() if line.startswith("  %-6s" % status)]


def simulator_session(moto, factory, monkeypatch):
    """Credentials of an assumed role (a role with a path, as AWS SSO and most automation
    roles have) in moto; SimulatePrincipalPolicy answered from the test's flight, every
    other call by moto. Returns (session, the simulator requests' parameters)."""
    endpoint, session = moto
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # as the doctor's own clients find it
    session.client("iam").create_role(
        RoleName="c7n-imds-runner",
        Path="/automation/",
        AssumeRolePolicyDocument=json.dumps(ACCOUNT_TRUST),
    )
    credentials = session.client("sts").assume_role(RoleArn=RUNNER_ARN, RoleSessionName="doctor")[
        "Credentials"
    ]
    runner = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )
    requests = []
    runner.events.register_first(
        "before-parameter-build.iam.SimulatePrincipalPolicy",
        lambda params, **kwargs: requests.append(copy.deepcopy(params)),
    )
    runner.events.register("before-call.iam.SimulatePrincipalPolicy", factory.pill._mock_request)
    return runner, requests


# -- pure decisions ---------------------------------------------------------------------


def test_trusts_lambda_reads_every_form_of_trust_policy():
    assert trusts_lambda(LAMBDA_TRUST)
    # GetRole's wire form: URL-encoded JSON
    assert trusts_lambda(urllib.parse.quote(json.dumps(LAMBDA_TRUST)))
    assert trusts_lambda(
        {
            "Statement": {  # one statement, not a list; lists of services
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Principal": {"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]},
            }
        }
    )


def test_trusts_lambda_refuses_other_services_denials_and_other_actions():
    assert not trusts_lambda(EC2_TRUST)
    assert not trusts_lambda(ACCOUNT_TRUST)
    assert not trusts_lambda(None)
    assert not trusts_lambda(
        {"Statement": [dict(LAMBDA_TRUST["Statement"][0], Action="sts:AssumeRoleWithWebIdentity")]}
    )
    assert not trusts_lambda(
        {
            "Statement": LAMBDA_TRUST["Statement"]
            + [dict(LAMBDA_TRUST["Statement"][0], Effect="Deny")]
        }
    )


def test_simulation_principal_maps_caller_arns_to_iam_principals():
    assert simulation_principal(
        "arn:aws:sts::123456789012:assumed-role/c7n-imds-runner/doctor"
    ) == ("role", "c7n-imds-runner")
    assert simulation_principal(
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123abcd/alice@example.com"
    ) == ("role", "AWSReservedSSO_Admin_0123abcd")
    assert simulation_principal("arn:aws:iam::123456789012:user/ops/alice") == (
        "user",
        "arn:aws:iam::123456789012:user/ops/alice",
    )
    assert simulation_principal("arn:aws-cn:iam::123456789012:user/alice")[0] == "user"
    assert simulation_principal("arn:aws:iam::123456789012:root") == ("root", None)


def test_simulation_principal_names_callers_the_simulator_cannot_read():
    for arn in (
        "arn:aws:sts::123456789012:federated-user/alice",
        "arn:aws:sts::123456789012:user/moto",
        "not-an-arn",
    ):
        kind, why = simulation_principal(arn)
        assert kind is None and arn in why, (arn, why)


def test_implied_checks_of_a_policy_set():
    policies = [
        NOTIFY_POLICY,
        dict(NOTIFY_POLICY, name="second-notice"),
        LAMBDA_POLICY,
        HUB_POLICY,
        dict(LAMBDA_POLICY, name="hub", mode={"type": "hub-action", "role": "c7n-imds-lambda"}),
        {"name": "pull", "resource": "asg", "mode": {"type": "pull"}, "actions": ["delete"]},
    ]
    assert implied_checks(policies, ACCOUNT, "eu-west-1") == {
        "queues": {"c7n-mailer": ["asg-imdsv1-in-use-held-back", "second-notice"]},
        "roles": {
            "arn:aws:iam::123456789012:role/c7n-imds-lambda": [LAMBDA_POLICY["name"]],
            "c7n-imds-lambda": ["hub"],
        },
        "hub": {"eu-west-1": ["autoscaling-3-asg-imdsv1-finding", "hub"]},
        "mail_templates": {"imds.html": ["asg-imdsv1-in-use-held-back", "second-notice"]},
    }


def test_chunks_and_queue_locations():
    assert [len(c) for c in chunks(["a"] * 250)] == [100, 100, 50]
    assert chunks([]) == []
    assert queue_location("c7n-mailer", REGION) == (REGION, "c7n-mailer", None, None)
    url = "https://sqs.eu-west-1.amazonaws.com/210987654321/c7n-mailer"
    assert queue_location(url, REGION) == ("eu-west-1", "c7n-mailer", None, url)
    assert queue_location("arn:aws:sqs:eu-west-1:210987654321:c7n-mailer", REGION) == (
        "eu-west-1",
        "c7n-mailer",
        "210987654321",
        None,
    )


def test_template_check_looks_for_the_file_c7n_mailer_loads(tmp_path):
    ok, text = mail_template_check("imds.html", ["p"])
    assert ok and MAIL_TEMPLATE_FOLDERS[0] in text, text
    # c7n-mailer appends .j2 itself: naming the file makes it look for imds.html.j2.j2
    ok, text = mail_template_check("imds.html.j2", ["p"], folders=[str(tmp_path)])
    assert not ok and "no imds.html.j2.j2 in %s" % tmp_path in text, text


# -- the command --------------------------------------------------------------------------


def test_doctor_all_good_exits_zero_with_every_line_ok(
    moto, placebo_factory, monkeypatch, tmp_path, capsys
):
    """Flight: 1 is the queue's sqs:SendMessage on its ARN; 2 and 3 are the policies'
    permissions in two pages (the first truncated, with a Marker)."""
    endpoint, session = moto
    session.client("sqs").create_queue(QueueName="c7n-mailer")
    session.client("iam").create_role(
        RoleName="c7n-imds-lambda", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    session.client("securityhub").enable_security_hub()
    factory = placebo_factory("test_doctor_all_good_exits_zero_with_every_line_ok")
    runner, requests = simulator_session(moto, factory, monkeypatch)
    path = policy_file(tmp_path, NOTIFY_POLICY, LAMBDA_POLICY, HUB_POLICY)

    code = main([str(path)], session=runner)
    out = capsys.readouterr().out
    assert code == 0, out
    body = out.splitlines()[1:-1]
    assert body == lines(out, "ok") and len(body) == 6, out
    assert out.splitlines()[-1] == "0 misses"
    assert (
        "account 123456789012 (arn:aws:sts::123456789012:assumed-role/c7n-imds-runner/"
        "doctor), region us-east-1" in out
    )
    assert "all allowed for %s" % RUNNER_ARN in out
    assert [r["PolicySourceArn"] for r in requests] == [RUNNER_ARN] * 3
    assert requests[0]["ActionNames"] == ["sqs:SendMessage"]
    assert requests[0]["ResourceArns"] == [QUEUE_ARN]
    assert "Marker" not in requests[1]
    assert requests[2]["Marker"] == "AAF3Ye2nR0c7bmltZHMtcGFnZS0x"
    assert requests[1]["ActionNames"] == requests[2]["ActionNames"]
    expected = policy_permissions(load_policies([str(path)])) - {"sqs:SendMessage"}
    assert set(requests[1]["ActionNames"]) == expected
    answered = set()
    for n in (2, 3):
        flight = json.loads(
            (factory.path / ("iam.SimulatePrincipalPolicy_%d.json" % n)).read_text()
        )
        answered.update(r["EvalActionName"] for r in flight["data"]["EvaluationResults"])
    assert answered == expected, "the flight must answer exactly the actions asked"
    # the conditions `c7n-imds iam-policy` puts on iam:PassRole and ec2:CreateTags
    context = {e["ContextKeyName"]: e["ContextKeyValues"] for e in requests[1]["ContextEntries"]}
    assert context == {
        "iam:PassedToService": ["ec2.amazonaws.com"],
        "ec2:CreateAction": ["CreateLaunchTemplate"],
    }


def test_doctor_lists_the_actions_the_caller_lacks(
    moto, placebo_factory, monkeypatch, tmp_path, capsys
):
    """Flight: one page, ec2:CreateLaunchTemplate and iam:PassRole implicitly denied,
    autoscaling:UpdateAutoScalingGroup explicitly denied."""
    factory = placebo_factory("test_doctor_lists_the_actions_the_caller_lacks")
    runner, requests = simulator_session(moto, factory, monkeypatch)
    path = policy_file(tmp_path, dict(LAMBDA_POLICY, mode={"type": "pull"}))

    assert main([str(path)], session=runner) == 1
    out = capsys.readouterr().out
    [miss] = lines(out, "MISS")
    assert miss.startswith("  MISS  iam permissions"), miss
    assert "autoscaling:UpdateAutoScalingGroup (explicitDeny)" in miss
    assert "ec2:CreateLaunchTemplate (implicitDeny)" in miss
    assert "iam:PassRole (implicitDeny)" in miss
    assert "ec2:DescribeVpcs" not in miss
    assert "c7n-imds iam-policy %s" % path in miss
    assert len(requests) == 1


def test_doctor_says_it_could_not_check_when_simulation_is_denied(
    moto, placebo_factory, monkeypatch, tmp_path, capsys
):
    """Flight: AccessDenied for both simulations (the queue's, then the permissions')."""
    moto[1].client("sqs").create_queue(QueueName="c7n-mailer")
    factory = placebo_factory("test_doctor_says_it_could_not_check_when_simulation_is_denied")
    runner, _ = simulator_session(moto, factory, monkeypatch)
    path = policy_file(tmp_path, NOTIFY_POLICY)

    assert main([str(path)], session=runner) == 1
    out = capsys.readouterr().out
    [miss] = lines(out, "MISS")
    assert "iam permissions" in miss and "could not check" in miss
    assert "iam:SimulatePrincipalPolicy" in miss and "c7n-imds iam-policy" in miss
    assert any(
        "sqs queue c7n-mailer" in line and "exists; sending not checked" in line
        for line in lines(out, "ok")
    ), out
    assert out.splitlines()[-1] == "1 miss"


def test_doctor_queue_missing_names_queue_and_fix(moto, tmp_path):
    result = run_doctor([policy_file(tmp_path, NOTIFY_POLICY)], moto[0])
    assert result.returncode == 1, result.stdout + result.stderr
    [queue] = [line for line in lines(result.stdout, "MISS") if "sqs queue" in line]
    assert queue.startswith("  MISS  sqs queue c7n-mailer (policy asg-imdsv1-in-use-held-back)")
    assert "does not exist" in queue
    assert "aws sqs create-queue --queue-name c7n-mailer --region us-east-1" in queue
    assert "c7n-mailer reads it" in queue
    assert lines(result.stdout, "ok")[0] == "  ok    identity"


def test_doctor_looks_in_the_region_given(moto, tmp_path):
    endpoint, session = moto
    session.client("sqs").create_queue(QueueName="c7n-mailer")  # in us-east-1
    result = run_doctor(["-r", "eu-west-1", policy_file(tmp_path, NOTIFY_POLICY)], endpoint)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].endswith("region eu-west-1")
    assert any(
        "--queue-name c7n-mailer --region eu-west-1" in line
        for line in lines(result.stdout, "MISS")
    ), result.stdout


def test_doctor_lambda_role_missing_names_role(moto, tmp_path):
    result = run_doctor([policy_file(tmp_path, LAMBDA_POLICY)], moto[0])
    assert result.returncode == 1, result.stdout + result.stderr
    [role] = [line for line in lines(result.stdout, "MISS") if "lambda role" in line]
    # {account_id} substituted with the caller's account, as custodian does
    assert (
        "lambda role arn:aws:iam::123456789012:role/c7n-imds-lambda (policy "
        "autoscaling-3-convert-to-imdsv2-launch-template-daily)" in role
    )
    assert "does not exist" in role
    assert "aws iam create-role --role-name c7n-imds-lambda" in role
    assert "lambda.amazonaws.com" in role


def test_doctor_role_trusting_ec2_not_lambda_is_a_miss(moto, tmp_path):
    endpoint, session = moto
    session.client("iam").create_role(
        RoleName="c7n-imds-lambda", AssumeRolePolicyDocument=json.dumps(EC2_TRUST)
    )
    result = run_doctor([policy_file(tmp_path, LAMBDA_POLICY)], endpoint)
    assert result.returncode == 1, result.stdout + result.stderr
    [role] = [line for line in lines(result.stdout, "MISS") if "lambda role" in line]
    assert "does not trust lambda.amazonaws.com" in role
    assert "aws iam update-assume-role-policy --role-name c7n-imds-lambda" in role


def test_doctor_lambda_role_trusting_lambda_is_ok(moto, tmp_path):
    endpoint, session = moto
    session.client("iam").create_role(
        RoleName="c7n-imds-lambda", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    result = run_doctor([policy_file(tmp_path, LAMBDA_POLICY)], endpoint)
    assert any(
        "lambda role" in line and "exists and trusts lambda.amazonaws.com" in line
        for line in lines(result.stdout, "ok")
    ), result.stdout + result.stderr


def test_doctor_security_hub_not_enabled_for_post_finding(moto, tmp_path):
    result = run_doctor([policy_file(tmp_path, HUB_POLICY)], moto[0])
    assert result.returncode == 1, result.stdout + result.stderr
    [hub] = [line for line in lines(result.stdout, "MISS") if "security hub" in line]
    assert "(policy autoscaling-3-asg-imdsv1-finding): not enabled in us-east-1" in hub
    assert "aws securityhub enable-security-hub --region us-east-1" in hub


@pytest.mark.parametrize("content", ["policies: [\n  - name: x\n", "just: text\n"])
def test_doctor_bad_policy_file_is_one_line_naming_the_file(moto, tmp_path, content):
    path = tmp_path / "broken.yml"
    path.write_text(content)
    result = run_doctor([path], moto[0])
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("c7n-imds doctor: %s" % path), line


def test_doctor_missing_file_is_one_line(moto, tmp_path):
    result = run_doctor([tmp_path / "absent.yml"], moto[0])
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "c7n-imds doctor: %s: no such file; give the path of a policy file (`c7n-imds "
        "pack copy DIR` puts the pack's files into DIR)" % (tmp_path / "absent.yml")
    ]


def test_doctor_without_credentials_reports_identity_only(moto, tmp_path):
    env = {
        k: v
        for k, v in aws_env(moto[0]).items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    env.update(
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    result = run_doctor([policy_file(tmp_path, NOTIFY_POLICY)], moto[0], env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    [miss] = lines(result.stdout, "MISS")
    assert miss.startswith("  MISS  identity: no AWS credentials found"), miss
    assert result.stdout.splitlines()[-1] == "1 miss"
    assert lines(result.stdout, "ok") == []
