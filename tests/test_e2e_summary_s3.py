"""The org-wide summary people can trust: the real `c7n-imds org run` (c7n-org) writing
to moto's S3 (`-s s3://…`) for three accounts, one of which cannot be entered (AssumeRole
answers AccessDenied, as AWS does for a missing role), then one output file corrupted.
`c7n-imds summary s3://…` with the accounts file must name exactly those two as not
scanned and unreadable, exit 3, and still count everything else: before (detect), the
remediation, after (detect) as a trend.
"""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import boto3
import jsonschema
import yaml

from c7n_imds_testing import aws_env
from tests import faults
from tests.conftest import REPO
from tests.support.browser import Dom, cells, chromium

ACCOUNTS = {"111111111111": "payments", "222222222222": "data", "444444444444": "no-role"}
REGION = "us-east-1"
BUCKET = "imds-reports"
COMMAND = str(Path(sys.executable).with_name("c7n-imds"))
DETECT = str(REPO / "policies" / "detect.yml")
REMEDIATE = str(REPO / "policies" / "remediate.yml")


def account_client(endpoint, account_id, service):
    creds = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).assume_role(RoleArn="arn:aws:iam::%s:role/c7n-imds" % account_id, RoleSessionName="seed")[
        "Credentials"
    ]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def seed(endpoint):
    """Per account: two groups on one launch configuration allowing IMDSv1, and one
    compliant group."""
    for account_id in ACCOUNTS:
        autoscaling = account_client(endpoint, account_id, "autoscaling")
        autoscaling.create_launch_configuration(
            LaunchConfigurationName="app-lc", ImageId="ami-12c6146b", InstanceType="t3.small"
        )
        autoscaling.create_launch_configuration(
            LaunchConfigurationName="ok-lc",
            ImageId="ami-12c6146b",
            InstanceType="t3.small",
            MetadataOptions={"HttpTokens": "required"},
        )
        for name, config in (("app-1", "app-lc"), ("app-2", "app-lc"), ("ok", "ok-lc")):
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=name,
                LaunchConfigurationName=config,
                MinSize=0,
                MaxSize=1,
                DesiredCapacity=0,
                AvailabilityZones=[REGION + "a"],
            )
        if account_id == "111111111111":  # left alone on purpose, listed as exempt
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName="vendor",
                LaunchConfigurationName="app-lc",
                MinSize=0,
                MaxSize=1,
                DesiredCapacity=0,
                AvailabilityZones=[REGION + "a"],
                Tags=[
                    {
                        "Key": "c7n-imds:exempt",
                        "Value": "vendor agent until 2099-01-01",
                        "PropagateAtLaunch": False,
                    }
                ],
            )


def org_run(endpoint, tmp_path, accounts, prefix, policy):
    env = faults.environment(
        aws_env(endpoint),
        tmp_path / "site",
        {
            "refuse": [
                {
                    "operation": "AssumeRole",
                    "match": "444444444444",
                    "status": 403,
                    "code": "AccessDenied",
                    "message": "User: arn:aws:iam::123456789012:user/ci is "
                    "not authorized to perform: sts:AssumeRole on resource: "
                    "arn:aws:iam::444444444444:role/c7n-imds",
                }
            ]
        },
        REPO,
    )
    env.update(C7N_IMDS_START_METHOD="spawn", C7N_ORG_PARALLEL="3")
    return subprocess.run(
        # ?region= spares custodian's probe of the bucket's region over HTTPS
        [
            COMMAND,
            "org",
            "run",
            "-c",
            str(accounts),
            "-s",
            "s3://%s/%s?region=%s" % (BUCKET, prefix, REGION),
            # the org run names the account it cannot enter and runs none until it is left
            # out (c7n_imds.org): the summary's accounts file still expects it
            "-u",
            policy,
            "--cache-period",
            "0",
            "--not-accounts",
            "no-role",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_summary_from_s3_names_the_missing_and_the_corrupt(moto, tmp_path):
    endpoint, session = moto
    seed(endpoint)
    session.client("s3").create_bucket(Bucket=BUCKET)
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {
                        "account_id": a,
                        "name": n,
                        "role": "arn:aws:iam::%s:role/c7n-imds" % a,
                        "regions": [REGION],
                    }
                    for a, n in ACCOUNTS.items()
                ]
            }
        )
    )
    for prefix, policy in (("before", DETECT), ("fix", REMEDIATE), ("after", DETECT)):
        org_run(endpoint, tmp_path, accounts, prefix, policy)

    s3 = session.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not [k for k in keys if "/no-role/" in k]  # nothing could be written there
    (broken,) = [
        k
        for k in keys
        if k.startswith("after/data/%s/asg-imds-exempt/" % REGION)
        and k.endswith("/resources.json.gz")
    ]
    s3.put_object(Bucket=BUCKET, Key=broken, Body=gzip.compress(b'[{"AutoScalingGr'))

    result = subprocess.run(
        [COMMAND, "summary"]
        + ["s3://%s/%s" % (BUCKET, p) for p in ("before", "fix", "after")]
        + ["-c", str(accounts), "--format", "json", "-o", str(tmp_path / "summary.json")],
        env=aws_env(endpoint),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    jsonschema.Draft202012Validator(
        json.loads((REPO / "c7n_imds_report" / "schema.json").read_text())
    ).validate(summary)
    problems = [(p["Account"], p["Policy"], p["State"]) for p in summary["Problems"]]
    assert problems == [
        ("222222222222", "asg-imds-exempt", "unreadable"),
        ("444444444444", None, "not-scanned"),
    ], summary["Problems"]
    assert result.stderr.splitlines() == [
        "c7n-imds summary: unreadable 222222222222 (data) us-east-1 policy asg-imds-exempt: "
        "resources.json: Unterminated string starting at: line 1 column 3 (char 2)",
        "c7n-imds summary: not-scanned 444444444444 (no-role) us-east-1: no output for this "
        "account and region: its role could not be assumed, or it was not part of the run",
    ]

    before, fix, after = summary["Runs"]
    assert [run["Folders"] for run in summary["Runs"]] == [
        ["s3://%s/%s" % (BUCKET, prefix)] for prefix in ("before", "fix", "after")
    ]
    by_account = {r["Account"]: r for r in after["Accounts"]}
    assert set(by_account) == set(ACCOUNTS)
    assert by_account["444444444444"]["NonCompliant"] is None  # not measured, not 0
    # AutoScaling.3: app-1, app-2 of both readable accounts and the exempt vendor, then
    # vendor alone; AutoScaling.9 also counts "ok", which stays on its (compliant)
    # launch configuration
    as3 = [
        {c["Control"]: c for c in run["Controls"]}["AutoScaling.3"]["NonCompliant"]
        for run in (before, after)
    ]
    assert as3 == [5, 1]
    assert [run["Totals"]["NonCompliant"] for run in (before, after)] == [7, 3]
    assert fix["Totals"]["Remediated"] == 4
    rows = {(r["Account"], r["Control"]): r for r in after["Rows"]}
    assert rows[("444444444444", "AutoScaling.3")]["State"] == "not-scanned"
    assert rows[("444444444444", "AutoScaling.3")]["NonCompliant"] is None
    assert rows[("222222222222", "AutoScaling.3")]["State"] == "unreadable"
    assert rows[("111111111111", "AutoScaling.3")]["State"] == "scanned"
    shares = {c["Control"]: c["CompliantShare"] for c in after["Controls"]}
    # the unreadable account is not counted; AutoScaling.3 judges the groups still on
    # launch configurations: ok and the exempt vendor (app-1, app-2 launch from a
    # template now)
    assert shares["AutoScaling.3"] == 0.5
    # the trend compares it with the remediation's run, which measured it in 2
    (as3,) = [c for c in after["Controls"] if c["Control"] == "AutoScaling.3"]
    assert as3["AccountRegions"] == 1 and as3["Change"] == dict(
        Since=fix["Run"], Points=None, AccountRegionsBefore=2
    )
    before_shares = {c["Control"]: c["CompliantShare"] for c in before["Controls"]}
    assert before_shares["AutoScaling.3"] == round(1 - 5 / 7, 4)
    assert [
        (g["Account"], g["Group"], g["State"], g["Reason"], g["Until"]) for g in summary["Groups"]
    ] == [("111111111111", "vendor", "exempt", "vendor agent", "2099-01-01")]

    # the dashboard of the same trees, as a browser shows it
    page = tmp_path / "dashboard.html"
    assert (
        subprocess.run(
            [COMMAND, "summary"]
            + ["s3://%s/%s" % (BUCKET, p) for p in ("before", "fix", "after")]
            + ["-c", str(accounts), "--format", "html", "-o", str(page)],
            env=aws_env(endpoint),
            capture_output=True,
            text=True,
            timeout=300,
        ).returncode
        == 3
    )
    screenshot = tmp_path / "dashboard.png"
    (dom,) = chromium((page, 1400, ["--screenshot=%s" % screenshot]))
    root = Dom(dom).root
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cards = {
        e.attrs["data-control"]: e.text()
        for e in root.find("headline").all("div")
        if "data-control" in e.attrs
    }
    # the unreadable account: AutoScaling.3 was measured in fewer account-regions than
    # in the run before, so the shares are not compared - the card says why, no arrow
    assert "50.0%" in cards["AutoScaling.3"]
    assert (
        "not compared: measured in 1 account-region(s), 2 in the run of" in cards["AutoScaling.3"]
    )
    assert "\u25b2" not in cards["AutoScaling.3"] and "\u25bc" not in cards["AutoScaling.3"]
    points = {}
    for text in root.find("trend-chart").all("text"):
        if text.attrs.get("class") == "point":
            points.setdefault(text.attrs["data-series"], []).append(int(text.text()))
    assert points["NonCompliant"][0] == 7 and points["NonCompliant"][-1] == 3
    assert points["Remediated"][1] == 4
    assert [row[2][0] for row in cells(root, "t-exempt")] == ["vendor"]
    problems = [(row[0][0], row[3][0]) for row in cells(root, "t-problems")]
    assert problems == [
        ("data 222222222222", "unreadable"),
        ("no-role 444444444444", "not scanned"),
    ]
