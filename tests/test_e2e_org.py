"""End to end across an organization: the real `c7n-imds org run` (c7n-org) against a
moto server with 3 accounts x 2 regions, workers started with `spawn` so the plugin
must reach fresh interpreters. moto takes the account id from the assumed role's ARN.
"""

import json
import subprocess
import sys
from pathlib import Path

import boto3
import yaml

from c7n_imds.model.outcomes import entries
from c7n_imds_testing import aws_env
from tests.conftest import REPO

ACCOUNTS = {"111111111111": "payments", "222222222222": "data", "333333333333": "web"}
REGIONS = ["us-east-1", "us-west-2"]


def account_session(endpoint, account_id, region):
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    creds = sts.assume_role(
        RoleArn="arn:aws:iam::%s:role/c7n-imds" % account_id, RoleSessionName="seed"
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
    return lambda service: session.client(service, endpoint_url=endpoint)


def seed(endpoint):
    """Per account and region: 2 LC groups allowing IMDSv1 (sharing one LC), one
    compliant LC group, one LT group allowing IMDSv1."""
    seeded = {}
    for account_id in ACCOUNTS:
        for region in REGIONS:
            client = account_session(endpoint, account_id, region)
            autoscaling, ec2 = client("autoscaling"), client("ec2")
            zone = region + "a"
            autoscaling.create_launch_configuration(
                LaunchConfigurationName="app-lc", ImageId="ami-12c6146b", InstanceType="t3.small"
            )
            autoscaling.create_launch_configuration(
                LaunchConfigurationName="ok-lc",
                ImageId="ami-12c6146b",
                InstanceType="t3.small",
                MetadataOptions={"HttpTokens": "required"},
            )
            template = ec2.create_launch_template(
                LaunchTemplateName="svc",
                LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"},
            )["LaunchTemplate"]["LaunchTemplateId"]
            for name, launch in (
                ("app-1", {"LaunchConfigurationName": "app-lc"}),
                ("app-2", {"LaunchConfigurationName": "app-lc"}),
                ("ok", {"LaunchConfigurationName": "ok-lc"}),
                ("svc", {"LaunchTemplate": {"LaunchTemplateId": template}}),
            ):
                autoscaling.create_auto_scaling_group(
                    AutoScalingGroupName=name,
                    MinSize=0,
                    MaxSize=1,
                    DesiredCapacity=0,
                    AvailabilityZones=[zone],
                    **launch,
                )
            seeded[(account_id, region)] = template
    return seeded


def test_org_run_remediates_every_account_and_region(moto, tmp_path):
    endpoint, _ = moto
    templates = seed(endpoint)
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {
                        "account_id": a,
                        "name": n,
                        "role": "arn:aws:iam::%s:role/c7n-imds" % a,
                        "regions": REGIONS,
                    }
                    for a, n in ACCOUNTS.items()
                ]
            }
        )
    )
    out = tmp_path / "out"
    env = dict(aws_env(endpoint), C7N_IMDS_START_METHOD="spawn", C7N_ORG_PARALLEL="3")
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("c7n-imds")),
            "org",
            "run",
            "-c",
            str(accounts),
            "-s",
            str(out),
            "-u",
            str(REPO / "policies" / "remediate.yml"),
            "--cache-period",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr

    for (account_id, region), template_id in templates.items():
        client = account_session(endpoint, account_id, region)
        groups = {
            g["AutoScalingGroupName"]: g
            for g in client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
        }
        app_templates = {
            groups[n]["LaunchTemplate"]["LaunchTemplateId"] for n in ("app-1", "app-2")
        }
        assert len(app_templates) == 1, (account_id, region)
        assert "LaunchTemplate" not in groups["ok"]
        svc = client("ec2").describe_launch_templates(LaunchTemplateIds=[template_id])[
            "LaunchTemplates"
        ][0]
        assert svc["DefaultVersionNumber"] == 2, (account_id, region)
        # c7n-org's layout: OUT/<account name>/<region>/<policy>/
        changes = entries(
            json.loads(
                (
                    out
                    / ACCOUNTS[account_id]
                    / region
                    / "autoscaling-3-convert-to-imdsv2-launch-template"
                    / "imds-changes.json"
                ).read_text()
            )
        )
        assert sorted(c["AutoScalingGroupName"] for c in changes) == ["app-1", "app-2"]

    # the org-wide summary agrees with what was seeded: per account and region, two
    # launch-configuration groups and one template group allowed IMDSv1, all remediated
    # (state after the run: the read-back proved each, so none is counted failing)
    summary = subprocess.run(
        [str(Path(sys.executable).with_name("c7n-imds")), "summary", str(out), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert summary.returncode == 0, summary.stderr
    report = json.loads(summary.stdout)
    text = json.dumps(report)
    for name in ACCOUNTS.values():
        assert name in text
    print(
        subprocess.run(
            [str(Path(sys.executable).with_name("c7n-imds")), "summary", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    totals = report_totals(report)
    assert (totals["Accounts"], totals["Regions"]) == (3, 2)
    assert totals["Scanned"] == 4 * 6
    assert totals["NonCompliant"] == 0
    assert totals["Remediated"] == 3 * 6
    assert totals["Failed"] == 0


def report_totals(report):
    """The totals of the (single) run in the summary's JSON."""
    return report["Runs"][-1]["Totals"]


def test_org_run_names_each_account_region_it_cannot_reach_before_running(moto, tmp_path):
    """One STS call per account-region before c7n-org starts: an account whose profile
    does not exist is named (with how to leave it out), and no account is run."""
    endpoint, _ = moto
    seed(endpoint)
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {
                        "account_id": "111111111111",
                        "name": "payments",
                        "regions": ["us-east-1"],
                        "role": "arn:aws:iam::111111111111:role/c7n-imds",
                    },
                    {
                        "account_id": "222222222222",
                        "name": "data",
                        "regions": REGIONS,
                        "profile": "data-typo",
                    },
                ]
            }
        )
    )
    env = dict(aws_env(endpoint), HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "no-config"))
    out = tmp_path / "out"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("c7n-imds")),
            "org",
            "run",
            "-c",
            str(accounts),
            "-s",
            str(out),
            "-u",
            str(REPO / "policies" / "remediate.yml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "c7n-imds org run: account data (222222222222) %s: profile data-typo: the config "
        "profile 'data-typo' could not be found; name a profile of ~/.aws/config or "
        "~/.aws/credentials (aws configure list-profiles); fix it, or leave the account "
        "out with --not-accounts data" % region
        for region in REGIONS
    ]
    assert not out.exists()
    templates = account_session(endpoint, "111111111111", "us-east-1")(
        "ec2"
    ).describe_launch_templates()["LaunchTemplates"]
    assert [t["LaunchTemplateName"] for t in templates] == ["svc"]  # nothing converted
