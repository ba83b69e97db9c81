"""c7n_imds_report (`c7n-imds summary`): figures checked against what was seeded, in every format.

End to end: a small estate on a real moto server, the real `c7n-imds run` of
policies/detect.yml and policies/remediate.yml into one folder, detect.yml again into a
second (the trend), then `c7n-imds summary` in a subprocess. The expected figures are
written out by hand from the seeded estate. Unit: the aggregation over hand-written
folders in c7n-org's layout (accounts x regions, two runs in one parent folder).
"""

import base64
import csv
import datetime
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import boto3
import jsonschema
import pytest

from c7n_imds_report import aggregate, cli, load
from c7n_imds_testing import EndpointSession, aws_env, moto_server, run_c7n_imds
from tests.conftest import REGION, REPO

DETECT = str(REPO / "policies" / "detect.yml")
REMEDIATE = str(REPO / "policies" / "remediate.yml")
CANARY = "s3cr3t-report-canary-91b3"
ACCOUNT = "123456789012"  # moto's default account
FORMATS = ("table", "csv", "json", "markdown", "html")


# ---- end to end --------------------------------------------------------------------


def seed(session):
    """9 groups: web-1, web-2 (one LC), batch: IMDSv1, to be converted; legacy: exempt;
    stacked: CloudFormation-managed; busy: its instance called IMDSv1; broken: its LC
    names a security group that does not exist (conversion fails); compliant: LC with
    IMDSv2 required; lt-group: launch template allowing IMDSv1."""
    autoscaling, ec2 = session.client("autoscaling"), session.client("ec2")
    for name, extra in (
        ("web-lc", {"UserData": "#!/bin/sh\nexport TOKEN=%s\n" % CANARY}),
        ("batch-lc", {"MetadataOptions": {"HttpTokens": "optional"}}),
        ("legacy-lc", {}),
        ("stack-lc", {}),
        ("busy-lc", {}),
        ("broken-lc", {"SecurityGroups": ["no-such-group"]}),
        ("ok-lc", {"MetadataOptions": {"HttpTokens": "required"}}),
    ):
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=name, ImageId="ami-12c6146b", InstanceType="t3.small", **extra
        )
    template = ec2.create_launch_template(
        LaunchTemplateName="svc",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"},
    )["LaunchTemplate"]
    groups = {
        "web-1": "web-lc",
        "web-2": "web-lc",
        "batch": "batch-lc",
        "legacy": "legacy-lc",
        "stacked": "stack-lc",
        "busy": "busy-lc",
        "broken": "broken-lc",
        "compliant": "ok-lc",
    }
    tags = {
        "legacy": ("c7n-imds:exempt", "vendor agent until 2099-01-01"),
        "stacked": ("aws:cloudformation:stack-name", "app-stack"),
        "web-1": ("note", CANARY),
    }  # a field the report must not carry
    for group, config in groups.items():
        extra = {}
        if group in tags:
            extra["Tags"] = [
                {"Key": tags[group][0], "Value": tags[group][1], "PropagateAtLaunch": False}
            ]
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchConfigurationName=config,
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=1 if group == "busy" else 0,
            AvailabilityZones=["us-east-1a"],
            **extra,
        )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="lt-group",
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        AvailabilityZones=["us-east-1a"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Default"},
    )
    busy = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["busy"])[
        "AutoScalingGroups"
    ][0]["Instances"][0]["InstanceId"]
    session.client("cloudwatch").put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "MetadataNoToken",
                "Value": 7,
                "Unit": "Count",
                "Dimensions": [{"Name": "InstanceId", "Value": busy}],
                "Timestamp": datetime.datetime.now(datetime.timezone.utc)
                - datetime.timedelta(hours=2),
            }
        ],
    )
    session.client("sqs").create_queue(QueueName="c7n-mailer")  # remediate.yml notifies


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run 1: detect + remediate into one folder; run 2: detect after remediation."""
    base = tmp_path_factory.mktemp("summary")
    with moto_server() as endpoint:
        session = EndpointSession(
            boto3.Session(
                region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            ),
            endpoint,
        )
        seed(session)
        env = aws_env(endpoint)

        def run(folder, policies):
            return run_c7n_imds(
                ["run", "-s", str(base / folder), "--cache-period", "0", policies], env
            )

        assert run("one", DETECT).returncode == 0
        remediation = run("one", REMEDIATE)
        # `broken` cannot be converted: the run reports it and fails
        assert remediation.returncode != 0 and "broken" in remediation.stderr
        assert run("two", DETECT).returncode == 0
    return base


def summary_of(folders, fmt, out_dir):
    """`c7n-imds summary FOLDERS --format FMT -o FILE` as a user runs it."""
    target = out_dir / ("summary-%s.out" % fmt)
    result = run_c7n_imds(
        ["summary"] + [str(f) for f in folders] + ["--format", fmt, "-o", str(target)],
        dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    return target.read_text(encoding="utf-8")


FIGURES = (
    "Scanned",
    "NonCompliant",
    "NonCompliantByLaunchType",
    "LaunchConfigurations",
    "Remediated",
    "HeldBack",
    "Exempt",
    "LeftToStack",
    "Failed",
)
LC, LT = "launch-configuration", "launch-template"


def row(
    non_compliant, by_type, configs=0, remediated=0, held=0, exempt=0, stack=0, failed=0, scanned=9
):
    return dict(
        zip(
            FIGURES,
            (scanned, non_compliant, by_type, configs, remediated, held, exempt, stack, failed),
        )
    )


# State after the run: the groups remediated in run 1 (web-1, web-2, batch converted;
# lt-group's template) count compliant, their action's read-back having proved it; the
# converted groups launch from templates now (EC2.170's scope). Remediated, failed, held
# back are what the run did, under the control of the launch the action found.
EXPECTED_RUN_1 = {
    # 4 LC groups still allow IMDSv1 (legacy, stacked, busy, broken) of the 5 left on
    # LCs; 6 LCs allow IMDSv1 (web-lc is shared; kept after conversion)
    "AutoScaling.3": row(
        4, {LC: 4}, configs=6, remediated=3, held=1, exempt=1, stack=1, failed=1, scanned=5
    ),
    "AutoScaling.9": row(5, {LC: 5}),  # every LC group, the compliant one too
    "EC2.8": row(1, {LC: 1}),  # busy's running instance
    "EC2.170": row(0, {}, remediated=1, scanned=4),
}
# detect.yml does not measure IMDSv1 use: held back is "not measured", not 0
EXPECTED_RUN_2 = {
    "AutoScaling.3": row(4, {LC: 4}, configs=6, exempt=1, held=None, scanned=5),
    "AutoScaling.9": row(5, {LC: 5}, held=None),
    "EC2.8": row(1, {LC: 1}, held=None),
    "EC2.170": row(0, {}, held=None, scanned=4),
}
CONTROL_FIELDS = (
    "Control",
    "InScope",
    "NonCompliant",
    "CompliantShare",
    "Resources",
    "ResourcesNonCompliant",
    "ResourceShare",
)


def test_summary_json_matches_the_seeded_estate(runs, tmp_path):
    summary = json.loads(summary_of([runs / "one", runs / "two"], "json", tmp_path))
    # the documented, versioned schema (docs/summary.md) holds for what was written
    schema = json.loads((REPO / "c7n_imds_report" / "schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(summary)
    assert summary["SchemaVersion"] == 2 and summary["Problems"] == []
    first, second = summary["Runs"]
    assert first["Start"] < second["Start"]
    assert first["Folders"] == [str(runs / "one")] and second["Folders"] == [str(runs / "two")]
    for run, expected in ((first, EXPECTED_RUN_1), (second, EXPECTED_RUN_2)):
        assert [(r["Account"], r["Region"]) for r in run["Rows"]] == [(ACCOUNT, REGION)] * len(
            expected
        )
        got = {r["Control"]: {k: r[k] for k in FIGURES} for r in run["Rows"]}
        assert got == expected
    assert {k: first["Totals"][k] for k in FIGURES + ("Accounts", "Regions")} == dict(
        row(5, {LC: 5}, configs=6, remediated=4, held=1, exempt=1, stack=1, failed=1),
        Accounts=1,
        Regions=1,
    )
    # the run that remediated states each control as the detect after it does
    assert [{k: c[k] for k in CONTROL_FIELDS} for c in first["Controls"]] == [
        {k: c[k] for k in CONTROL_FIELDS} for c in second["Controls"]
    ]
    assert {k: second["Totals"][k] for k in FIGURES} == row(
        5, {LC: 5}, configs=6, exempt=1, held=None
    )
    # the latest scan of run 1 came after the conversions
    assert first["Rows"][0]["ScannedByLaunchType"] == {LC: 5, LT: 4}
    # Security Hub's view (detect.yml's inventory): 7 launch configurations, 6 allow
    # IMDSv1; after the conversions web-lc and batch-lc are kept, unused, until cleanup
    # deletes them - awaiting cleanup in the detect after the remediation
    (as3,) = [c for c in second["Controls"] if c["Control"] == "AutoScaling.3"]
    assert (as3["Resources"], as3["ResourcesNonCompliant"], as3["AwaitingCleanup"]) == (7, 6, 2)


class Tables(HTMLParser):
    """Cells of every table (by id, in order), the raw text of every <svg>, and the
    text of every <script>."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.by_id, self.cell, self.in_script = [], {}, None, False
        self.scripts = []
        self.feed(text)
        self.svgs = re.findall(r"<svg\b.*?</svg>", text, re.S)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
            if dict(attrs).get("id"):
                self.by_id[dict(attrs)["id"]] = self.tables[-1]
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "script":
            self.in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None
        elif tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.in_script:
            self.scripts[-1] += data


def svg_points(svg):
    """{series: [values]} of the trend chart's points."""
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    points = {}
    for t in root.iter(ns + "text"):
        if t.get("class") == "point":
            points.setdefault(t.get("data-series"), []).append(int(t.text))
    return points


def test_summary_html_csv_markdown_table(runs, tmp_path):
    folders = [runs / "one", runs / "two"]
    text = summary_of(folders, "html", tmp_path)
    page = Tables(text)
    trend, rows = page.by_id["t-trend"], page.by_id["t-figures"]
    # trend: both runs end with 5 non-compliant (state after the run); 4 remediated, 0
    (chart,) = page.svgs
    assert svg_points(chart) == {"NonCompliant": [5, 5], "Remediated": [4, 0]}
    header = trend[0]
    assert [dict(zip(header, r))["Remediated"] for r in trend[1:]] == ["4", "0"]
    by_control = {r[2]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert by_control["AutoScaling.3"]["Non-compliant"] == "4"
    assert by_control["AutoScaling.3"]["Launch configs"] == "6"
    assert by_control["AutoScaling.3"]["Held back (IMDSv1 use)"] == "\u2013"  # not measured
    assert by_control["AutoScaling.9"]["LC"] == "5"
    # self-contained: no link to anything but the SVG namespace, and the one script
    # carries no value from the accounts
    assert "<link" not in text
    assert "http" not in text.replace("http://www.w3.org/2000/svg", "")
    assert not [s for s in page.scripts if ACCOUNT in s or "web-1" in s or "legacy" in s]

    lines = list(csv.DictReader(io.StringIO(summary_of(folders, "csv", tmp_path))))
    as3 = [r for r in lines if r["Control"] == "AutoScaling.3"][0]
    assert (
        as3["State"],
        as3["NonCompliant"],
        as3["NonCompliant:launch-configuration"],
        as3["Remediated"],
        as3["HeldBack"],
        as3["Exempt"],
        as3["LeftToStack"],
        as3["Failed"],
    ) == ("scanned", "4", "4", "0", "", "1", "0", "0")
    assert [
        (r["Control"], r["NonCompliant"], r["Remediated"]) for r in lines if r["Control"] == "(all)"
    ] == [("(all)", "5", "0")]

    markdown = summary_of(folders, "markdown", tmp_path).splitlines()
    table_start = next(i for i, line in enumerate(markdown) if line.startswith("| Account"))
    assert re.match(r"^\|[:\- |]+\|$", markdown[table_start + 1])
    assert "## Trend" in markdown

    table = summary_of(folders, "table", tmp_path)
    assert re.search(
        r"^%s\s+%s\s+AutoScaling\.3\s+scanned\s+5\s+4\s+4\b" % (ACCOUNT, REGION), table, re.M
    )


def test_no_user_data_or_other_fields_in_any_format(runs, tmp_path):
    # the canary really is in the estate the report reads...
    assert any(CANARY in p.read_text(errors="replace") for p in runs.rglob("resources.json"))
    encoded = base64.b64encode(("#!/bin/sh\nexport TOKEN=%s\n" % CANARY).encode()).decode()
    for fmt in FORMATS:
        text = summary_of([runs / "one", runs / "two"], fmt, tmp_path)
        # ...and in no output: neither user data nor tags nor instance ids
        assert CANARY not in text and encoded not in text, fmt
        assert not re.search(r"\b(i|lt|sg|subnet)-[0-9a-f]{8,}", text), fmt
        assert "web-lc" not in text and "web-1" not in text, fmt


def test_summary_refuses_a_folder_without_output(tmp_path):
    result = run_c7n_imds(["summary", str(tmp_path)], dict(os.environ))
    assert result.returncode == 2 and "no custodian output" in result.stderr


def test_summary_refuses_an_output_file_in_a_missing_folder(tmp_path):
    target = tmp_path / "missing" / "report.html"
    result = run_c7n_imds(["summary", str(tmp_path), "-o", str(target)], dict(os.environ))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and str(target.parent) in result.stderr


# ---- unit: aggregation over hand-written folders ------------------------------------

START = 1_700_000_000.0  # before the files are written, as in a real run
AS3 = "Security Hub AutoScaling.3: groups whose launch configuration allows IMDSv1."
BOTH = "Supports AutoScaling.3 and EC2.170: groups exempt from IMDSv2 remediation."


def group(name, launch_type=LC, tokens="optional", calls=None, exempt=None, **other):
    record = {"AutoScalingGroupName": name, "Tags": [{"Key": "note", "Value": CANARY}], **other}
    if launch_type:
        record["c7n-imds:launch"] = {
            "LaunchType": launch_type,
            "HttpTokens": tokens,
            "LaunchName": "secret-launch-name",
        }
    if calls is not None:
        record["c7n-imds:imdsv1-calls"] = {"Total": calls, "Instances": {"i-0abc": calls}}
    if exempt is not None:
        record["c7n-imds:exemption"] = {"Exempt": exempt, "Reason": "vendor agent"}
    return record


def write_policy(
    root,
    parts,
    name,
    description,
    resources,
    resource="asg",
    account=ACCOUNT,
    region=REGION,
    start=START,
    scan=None,
    changes=None,
    actions=(),
    stale_changes=False,
):
    folder = Path(root, *parts, name)
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "policy": {
                    "name": name,
                    "resource": resource,
                    "description": description,
                    "actions": [{"type": a} for a in actions],
                },
                "execution": {"start": start},
                "config": {"account_id": account, "region": region},
            }
        )
    )
    (folder / "resources.json").write_text(json.dumps(resources))
    if scan is not None:
        (folder / "imds-scan.json").write_text(
            json.dumps({"Scanned": scan, "ByLaunchType": {LC: {"Groups": scan, "Optional": 1}}})
        )
    if changes is not None:
        path = folder / "imds-changes.json"
        path.write_text(json.dumps(changes))
        if stale_changes:  # left over from an earlier run into the same folder
            os.utime(path, (START - 86400, START - 86400))


def org_day(root, day, start):
    """One c7n-org run: OUT/<account name>/<region>/<policy>/ for 2 accounts x 2 regions."""
    for account, name in (("111111111111", "payments"), ("222222222222", "r&d <lab>|x")):
        for region in ("us-east-1", "eu-west-1"):
            parts = (day, name, region)
            kw = dict(account=account, region=region, start=start)
            write_policy(
                root, parts, "as3-groups", AS3, [group("app-1"), group("app-2")], scan=4, **kw
            )
            write_policy(
                root,
                parts,
                "ec2-170-groups",
                "Security Hub EC2.170: LT groups.",
                [group("svc", LT)],
                scan=4,
                **kw,
            )
            write_policy(
                root,
                parts,
                "as9-groups",
                "Security Hub AutoScaling.9: LC groups.",
                [group("app-1"), group("app-2"), group("ok", tokens="required")],
                scan=6,
                **kw,
            )
            write_policy(
                root,
                parts,
                "as3-configs",
                AS3,
                [
                    {
                        "LaunchConfigurationName": "app-lc",
                        "UserData": CANARY,
                        "c7n-imds:launch": {"HttpTokens": "optional", "LaunchType": LC},
                    },
                    {
                        "LaunchConfigurationName": "ok-lc",
                        "UserData": CANARY,
                        "c7n-imds:launch": {"HttpTokens": "required", "LaunchType": LC},
                    },
                ],
                resource="launch-config",
                **kw,
            )
            # not a resource the summary counts: no EC2.8 row on day 1 from this
            write_policy(
                root,
                parts,
                "account-defaults",
                "Supports EC2.8.",
                [{"AutoScalingGroupName": "app-1"}],
                resource="account",
                **kw,
            )
            if day == "day2":  # the fix ran on day 2 only
                write_policy(
                    root,
                    parts,
                    "convert",
                    AS3,
                    [group("app-1", calls=0, exempt=False), group("app-2", calls=0)],
                    actions=["convert-to-launch-template"],
                    changes=[
                        {"AutoScalingGroupName": "app-1", "LaunchTemplateId": "lt-1"},
                        {"AutoScalingGroupName": "app-2", "Error": "AccessDenied: no"},
                        # switched, but its running instances could not be modified
                        {"AutoScalingGroupName": "both", "LaunchTemplateId": "lt-1"},
                        {"AutoScalingGroupName": "both", "Error": "modify failed"},
                        {"AutoScalingGroupName": "gone", "Skipped": "stack"},
                    ],
                    **kw,
                )
                write_policy(
                    root,
                    parts,
                    "held-back",
                    "Security Hub AutoScaling.3 and EC2.170: still calling IMDSv1.",
                    [group("svc", LT, calls=3), group("app-1", calls=5)],  # remediated all the same
                    **kw,
                )
                write_policy(
                    root,
                    parts,
                    "exempt",
                    BOTH,
                    [group("svc", None, exempt=True), group("ok", None, exempt=False)],
                    **kw,
                )
                write_policy(
                    root,
                    parts,
                    "revert",
                    AS3,
                    [],
                    changes=[
                        {"AutoScalingGroupName": "ok", "RevertedTo": "lc:ok-lc"},
                        {"AutoScalingGroupName": "ok", "LaunchTemplateId": "lt-2"},
                    ],
                    actions=["revert-imds-remediation"],
                    **kw,
                )
                write_policy(
                    root,
                    parts,
                    "reused-folder",
                    AS3,
                    [],
                    changes=[{"AutoScalingGroupName": "old", "LaunchTemplateId": "lt-3"}],
                    actions=["convert-to-launch-template"],
                    stale_changes=True,
                    **kw,
                )
                write_policy(
                    root,
                    parts,
                    "instances",
                    "Security Hub EC2.8: instances.",
                    [
                        {
                            "InstanceId": "i-0abc",
                            "UserData": CANARY,
                            "MetadataOptions": {"HttpTokens": "optional"},
                            "Tags": [{"Key": "aws:autoscaling:groupName", "Value": "svc"}],
                        }
                    ],
                    resource="ec2",
                    **kw,
                )
                write_policy(root, parts, "no-control", "A custom report.", [group("app-1")], **kw)


def test_aggregation_over_an_org_layout_with_two_runs(tmp_path):
    org_day(tmp_path, "day1", START)
    org_day(tmp_path, "day2", START + 86400)
    summary = aggregate.summarize([load.load_folder(tmp_path)])
    day1, day2 = summary["Runs"]
    assert day1["Folders"] == [os.path.join(str(tmp_path), "day1")]
    assert {r["AccountName"] for r in day2["Rows"]} == {"payments", "r&d <lab>|x"}
    assert len(day1["Rows"]) == 4 * 3 and len(day2["Rows"]) == 4 * 5

    def rows(run):
        return {(r["Account"], r["Region"], r["Control"]): r for r in run["Rows"]}

    one = rows(day1)[("111111111111", "eu-west-1", "AutoScaling.3")]
    # the latest scan wins (of scans that started together, the largest); ok requires
    # IMDSv2; so does ok-lc
    assert (
        one["Scanned"],
        one["NonCompliant"],
        one["NonCompliantByLaunchType"],
        one["LaunchConfigurations"],
    ) == (6, 2, {LC: 2}, 1)
    assert rows(day1)[("111111111111", "eu-west-1", "AutoScaling.9")]["NonCompliant"] == 3

    by = rows(day2)
    as3 = by[("222222222222", "us-east-1", "AutoScaling.3")]
    # state after the run: app-1, matched by 5 policies, counts once and, remediated
    # (its read-back proved the template), is compliant and not held back; app-2 and
    # both failed; gone left to its stack; the revert and the stale changes file count
    # for nothing. Records of policies that started with the convert do not undo it.
    assert {
        k: as3[k]
        for k in ("NonCompliant", "Remediated", "Failed", "LeftToStack", "HeldBack", "Exempt")
    } == dict(NonCompliant=1, Remediated=1, Failed=2, LeftToStack=1, HeldBack=0, Exempt=0)
    # app-1 launches from a template now: out of AutoScaling.3's scope, into EC2.170's
    assert (as3["Scanned"], by[("222222222222", "us-east-1", "EC2.170")]["Scanned"]) == (5, 1)
    ec2_170 = by[("222222222222", "us-east-1", "EC2.170")]
    assert (ec2_170["NonCompliant"], ec2_170["HeldBack"], ec2_170["Exempt"]) == (1, 1, 1)
    assert by[("222222222222", "us-east-1", "EC2.8")]["NonCompliantByLaunchType"] == {LT: 1}
    # the policy that names no control serves "other": its one group, app-1, was
    # remediated in the run
    assert by[("222222222222", "us-east-1", "other")]["NonCompliant"] == 0
    assert all(r["Control"] != "EC2.8" or r["Remediated"] == 0 for r in day2["Rows"])

    totals = day2["Totals"]  # 2 accounts x 2 regions, groups counted once across controls
    assert (totals["Accounts"], totals["Regions"], totals["Scanned"]) == (2, 2, 24)
    # per place app-2 (AutoScaling.3 and .9), ok (AutoScaling.9) and svc (EC2.170)
    assert (totals["NonCompliant"], totals["NonCompliantByLaunchType"]) == (12, {LC: 8, LT: 4})
    assert (
        totals["Remediated"],
        totals["Failed"],
        totals["LeftToStack"],
        totals["HeldBack"],
        totals["Exempt"],
        totals["LaunchConfigurations"],
    ) == (4, 8, 4, 4, 4, 4)
    assert [a["NonCompliant"] for a in day2["Accounts"]] == [6, 6]
    assert [r["Totals"]["Remediated"] for r in summary["Runs"]] == [0, 4]


def test_renderers_escape_names_and_carry_no_record_fields(tmp_path):
    org_day(tmp_path, "day1", START)
    org_day(tmp_path, "day2", START + 86400)
    for fmt in FORMATS:
        out = tmp_path / ("out." + fmt)
        assert cli.main([str(tmp_path), "--format", fmt, "-o", str(out)]) == 0
        text = out.read_text(encoding="utf-8")
        for secret in (CANARY, "secret-launch-name", "i-0abc", "lt-1", "app-lc"):
            assert secret not in text, (fmt, secret)
        if fmt in ("html", "markdown"):
            assert "<lab>" not in text and "r&amp;d &lt;lab&gt;" in text, fmt
        if fmt == "html":
            page = Tables(text)
            assert len(page.svgs) == 1 and all(ET.fromstring(s) is not None for s in page.svgs)
        if fmt == "markdown":
            assert "r&amp;d &lt;lab&gt;\\|x" in text  # a | in a name keeps the columns
        if fmt == "json":
            assert json.loads(text)["Runs"][1]["Totals"]["NonCompliant"] == 12


def test_controls_and_run_splitting_rules():
    # a policy's metadata names its controls; older outputs and the user's own
    # policies may name them only in the description
    assert load.controls_of(
        {"metadata": {"controls": ["EC2.170", "AutoScaling.3"]}, "description": "AutoScaling.9"}
    ) == ["EC2.170", "AutoScaling.3"]
    assert load.controls_of(
        {
            "description": "Security Hub EC2.170 (and AutoScaling.3 for "
            "template groups); EC2.170 again"
        }
    ) == ["EC2.170", "AutoScaling.3"]
    assert load.controls_of({"metadata": {"owner": "x"}}) == []
    assert aggregate.control_for(["AutoScaling.3", "EC2.170"], LT) == "EC2.170"
    assert aggregate.control_for(["AutoScaling.3", "EC2.170"], LC) == "AutoScaling.3"
    assert aggregate.control_for(["AutoScaling.3", "EC2.8"], LT) == "EC2.8"
    assert aggregate.control_for(["AutoScaling.3"], LT) == "AutoScaling.3"
    assert aggregate.control_for([], None) == "other"
    facts = load.resource_facts("asg", group("g", calls=2, exempt=True, UserData=CANARY))
    assert facts == {
        "Kind": "group",
        "Name": "g",
        "LaunchType": LC,
        "HttpTokens": "optional",
        "Calls": 2,
        "Days": None,
        "UsageMeasured": True,
        "Exempt": True,
        "ExemptByTag": False,
        "ExemptReason": "vendor agent",
        "ExemptUntil": None,
        "Owner": None,
        "Stack": None,
        "StackGuidance": None,
    }

    def output(parts, policy="p"):
        return {
            "Account": ACCOUNT,
            "Region": REGION,
            "Policy": policy,
            "Parts": parts,
            "Folder": "OUT",
        }

    one_run = [output(("a",), "p"), output(("b",), "q")]
    assert aggregate.split_runs(one_run) == [one_run]
    runs = aggregate.split_runs([output(("d1", "x", "p")), output(("d2", "x", "p"))])
    assert [[o["Folder"] for o in run] for run in runs] == [
        [os.path.join("OUT", "d1")],
        [os.path.join("OUT", "d2")],
    ]


def test_a_failed_scan_is_never_a_compliant_one(tmp_path):
    """Each way a scan can fail gets its state and reason, its figures are "not
    measured" (None) rather than 0, and the command exits 3 naming each."""
    parts = ("acct", REGION)
    write_policy(tmp_path, parts, "good", AS3, [group("app-1")], scan=3)
    write_policy(tmp_path, parts, "corrupt", AS3, [group("app-2")], scan=3)
    (tmp_path / "acct" / REGION / "corrupt" / "resources.json").write_text('[{"Auto')
    write_policy(tmp_path, ("other", REGION), "good", AS3, [], account="999999999999")
    folder = tmp_path / "other" / REGION / "good"
    (folder / "resources.json").unlink()
    meta = json.loads((folder / "metadata.json").read_text())
    meta["metrics"] = [{"MetricName": "PolicyException", "Value": 1}]
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "custodian-run.log").write_text(
        "2026-12-01 10:00:00,000 - custodian.commands - ERROR - policy good stopped: "
        "DescribeAutoScalingGroups in us-east-1 failed after 8 attempts (Throttling: Rate "
        "exceeded); its Auto Scaling groups were not scanned\nTraceback (most recent call "
        "last):\n  ...\n"
    )
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(
        json.dumps(
            {
                "accounts": [
                    {"account_id": ACCOUNT, "name": "acct", "regions": [REGION]},
                    {"account_id": "999999999999", "name": "other", "regions": [REGION]},
                    {
                        "account_id": "555555555555",
                        "name": "quiet",
                        "regions": [REGION, "eu-west-1"],
                    },
                ]
            }
        )
    )
    out = tmp_path / "summary.json"
    assert cli.main([str(tmp_path), "-c", str(accounts), "--format", "json", "-o", str(out)]) == 3
    summary = json.loads(out.read_text())
    assert [(p["Account"], p["Region"], p["Policy"], p["State"]) for p in summary["Problems"]] == [
        ("123456789012", REGION, "corrupt", "unreadable"),
        ("555555555555", "eu-west-1", None, "not-scanned"),
        ("555555555555", REGION, None, "not-scanned"),
        ("999999999999", REGION, "good", "errored"),
    ]
    reasons = {p["Policy"]: p["Reason"] for p in summary["Problems"]}
    assert reasons["good"].startswith("policy good stopped: DescribeAutoScalingGroups")
    assert reasons["corrupt"].startswith("resources.json: ")
    rows = {(r["Account"], r["Region"]): r for r in summary["Runs"][-1]["Rows"]}
    assert rows[("555555555555", REGION)]["State"] == "not-scanned"
    assert rows[("555555555555", REGION)]["NonCompliant"] is None
    assert rows[("999999999999", REGION)]["State"] == "errored"
    assert rows[("999999999999", REGION)]["NonCompliant"] is None
    assert rows[(ACCOUNT, REGION)]["NonCompliant"] == 1  # what could be read still counts


def test_group_failures_do_not_make_a_scan_errored():
    log = (
        "2026-12-01 10:00:00,000 - custodian.c7n_imds.actions - ERROR - asg web: not "
        "remediated: AccessDenied\n"
        "2026-12-01 10:00:00,001 - custodian.output - ERROR - Error while executing "
        "policy\nTraceback (most recent call last):\n"
        "c7n_imds.actions.base.RemediationError: convert failed for 1 group(s)\n"
        "2026-12-01 10:00:01,000 - custodian.output - ERROR - Error while executing "
        "policy: Could not connect to the endpoint URL\n"
    )
    assert load.run_log_errors(log) == [
        "Error while executing policy: Could not connect to the endpoint URL"
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("accounts: [", "not YAML"),
        ("accounts: {a: 1}", "not a c7n-org accounts file"),
        ("accounts: [{account_id: '1', name: x}]", "no regions"),
    ],
)
def test_a_bad_accounts_file_is_one_line(tmp_path, capsys, content, message):
    write_policy(tmp_path, (), "good", AS3, [group("app-1")], scan=1)
    accounts = tmp_path / "accounts.yml"
    accounts.write_text(content)
    assert cli.main([str(tmp_path), "-c", str(accounts)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("c7n-imds summary: -c %s: " % accounts) and message in line


# ---- unit: stack-owned groups, by owner, and what fixes each ---------------------------

CFN, EB, EKS = "cloudformation", "elasticbeanstalk", "eks-nodegroup"
CHANGE_SET_NAME = "c7n-imds-imdsv2-orders-lc"
CHANGE_SET_ID = (
    "arn:aws:cloudformation:us-east-1:111111111111:changeSet/%s/"
    "0c5c4e1a-9f3b-4d2e-8c1a-2f7e6b5d4c3b" % CHANGE_SET_NAME
)
# what an account's owner can type into an environment name, a stack tag or a change set
HOSTILE_ENV = "<img src=x onerror=alert(1)>|shop"
HOSTILE_STACK = "=HYPERLINK(\"http://evil\")"
HOSTILE_CHANGE_SET = "cs; rm -rf ~ [x](javascript:alert(1))"
OWNER_POLICIES = "Security Hub AutoScaling.3 and EC2.170: fixed at the owner."


def tagged(name, tags, launch_type=LC, tokens="optional", **other):
    """A group record as custodian writes it: DescribeAutoScalingGroups' Tags, with the
    imds filter's annotation."""
    record = group(name, launch_type, tokens, **other)
    record["Tags"] = record["Tags"] + [
        {
            "Key": k,
            "Value": v,
            "PropagateAtLaunch": True,
            "ResourceId": name,
            "ResourceType": "auto-scaling-group",
        }
        for k, v in tags.items()
    ]
    return record


def stack_tags(stack):
    return {
        "aws:cloudformation:stack-name": stack,
        "aws:cloudformation:logical-id": "WebGroup",
        "aws:cloudformation:stack-id": "arn:aws:cloudformation:us-east-1:1:stack/%s/x" % stack,
    }


def beanstalk_tags(environment, environment_id):
    # Beanstalk makes its groups through CloudFormation: both tags, Beanstalk is the owner
    return dict(
        stack_tags("awseb-%s-stack" % environment_id),
        **{
            "elasticbeanstalk:environment-name": environment,
            "elasticbeanstalk:environment-id": environment_id,
        },
    )


def nodegroup_tags(cluster, nodegroup):
    return dict(
        stack_tags("eks-%s-%s" % (cluster, nodegroup)),
        **{
            "eks:cluster-name": cluster,
            "eks:nodegroup-name": nodegroup,
            "kubernetes.io/cluster/%s" % cluster: "owned",
        },
    )


def guidance(tags):
    from c7n_imds.model.ownership import iac_guidance

    return iac_guidance({"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})


def owner_estate(root):
    """One c7n-org run (OUT/<account name>/<region>/<policy>/): detect, then each owner
    action and convert, writing imds-changes.json as the actions do."""
    a1 = dict(account="111111111111", region=REGION)
    parts = ("payments", REGION)
    groups = {
        "cfn-web": stack_tags("orders-stack"),
        "cfn-batch": stack_tags("batch-stack"),
        "cfn-skipped": stack_tags("nested-stack"),
        "cfn-failed": stack_tags("old-stack"),
        "eb-app": beanstalk_tags("shop-prod", "e-abc123"),
        "eb-done": beanstalk_tags("shop-stage", "e-def456"),
        "eb-compliant": beanstalk_tags("shop-dev", "e-ghi789"),
        "plain": {},
        "exempt-one": {"c7n-imds:exempt": "vendor agent until 2099-01-01"},
    }
    lc_groups = [
        tagged(g, t, exempt=True if g == "exempt-one" else None)
        for g, t in groups.items()
        if g != "eb-compliant"
    ]
    eks = {"eks-ng": nodegroup_tags("prod", "ng-1"), "eks-ng2": nodegroup_tags("prod", "ng-2")}
    lt_groups = [tagged(g, t, LT) for g, t in eks.items()]
    write_policy(
        root, parts, "autoscaling-3-asg-launch-configuration-imdsv1", AS3, lc_groups, scan=12, **a1
    )
    write_policy(
        root,
        parts,
        "ec2-170-asg-launch-template-imdsv1",
        "Security Hub EC2.170: LT groups.",
        lt_groups,
        scan=12,
        **a1,
    )
    write_policy(
        root,
        parts,
        "beanstalk-disable-imdsv1",
        OWNER_POLICIES,
        [
            tagged(g, groups[g], tokens="required" if g == "eb-compliant" else "optional")
            for g in ("eb-app", "eb-done", "eb-compliant", "plain")
        ],
        actions=["disable-beanstalk-imdsv1", "notify"],
        changes=[
            {
                "AutoScalingGroupName": "eb-app",
                "Owner": "elasticbeanstalk:shop-prod",
                "OwnerFix": {
                    "Action": "disable-beanstalk-imdsv1",
                    "Status": "applied",
                    "EnvironmentName": "shop-prod",
                    "EnvironmentId": "e-abc123",
                    "Detail": "environment shop-prod: DisableIMDSv1=true set; "
                    "Elastic Beanstalk is updating the environment",
                },
            },
            {
                "AutoScalingGroupName": "eb-done",
                "Owner": "elasticbeanstalk:shop-stage",
                "OwnerFix": {
                    "Action": "disable-beanstalk-imdsv1",
                    "Status": "already-applied",
                    "EnvironmentName": "shop-stage",
                    "EnvironmentId": "e-def456",
                    "Detail": "environment shop-stage already has DisableIMDSv1=true",
                },
            },
            {
                "AutoScalingGroupName": "eb-compliant",
                "Owner": "elasticbeanstalk:shop-dev",
                "OwnerFix": {
                    "Action": "disable-beanstalk-imdsv1",
                    "Status": "already-applied",
                    "EnvironmentName": "shop-dev",
                    "EnvironmentId": "e-ghi789",
                    "Detail": "environment shop-dev already has DisableIMDSv1=true",
                },
            },
            {
                "AutoScalingGroupName": "plain",
                "Skipped": "not owned by a stack or service; "
                "the in-place actions (convert-to-launch-template, set-metadata-access) fix it",
            },
        ],
        **a1,
    )
    write_policy(
        root,
        parts,
        "eks-nodegroup-metadata-access",
        OWNER_POLICIES,
        [lt_groups[0]],
        actions=["set-nodegroup-metadata-access"],
        changes=[
            {
                "AutoScalingGroupName": "eks-ng",
                "Owner": "eks-nodegroup:prod/ng-1",
                "OwnerFix": {
                    "Action": "set-nodegroup-metadata-access",
                    "Status": "applied",
                    "ClusterName": "prod",
                    "NodegroupName": "ng-1",
                    "LaunchTemplate": {"id": "lt-0123456789abcdef0", "version": 4},
                    "UpdateId": "a1b2c3d4-0000-4000-8000-000000000001",
                    "Detail": "node group prod/ng-1: launch template "
                    "version 4 (HttpTokens required), update started",
                },
            }
        ],
        **a1,
    )
    write_policy(
        root,
        parts,
        "cloudformation-change-set",
        OWNER_POLICIES,
        [tagged(g, groups[g]) for g in ("cfn-web", "cfn-skipped", "cfn-failed")],
        actions=["create-stack-change-set"],
        changes=[
            {
                "AutoScalingGroupName": "cfn-web",
                "Owner": "cloudformation:orders-stack",
                "OwnerFix": {
                    "Action": "create-stack-change-set",
                    "Status": "proposed",
                    "StackName": "orders-stack",
                    "ChangeSetName": CHANGE_SET_NAME,
                    "ChangeSetId": CHANGE_SET_ID,
                    "Detail": "change set %s on stack orders-stack is ready for "
                    "review: aws cloudformation execute-change-set --stack-name "
                    "orders-stack --change-set-name %s" % (CHANGE_SET_NAME, CHANGE_SET_NAME),
                },
            },
            {
                "AutoScalingGroupName": "cfn-skipped",
                "Skipped": "stack nested-stack: the "
                "group's launch configuration is not defined in this stack's template; "
                "change it in the stack that defines it",
            },
            {
                "AutoScalingGroupName": "cfn-failed",
                "Error": "stack old-stack: CreateChangeSet: ValidationError: Stack is in "
                "UPDATE_ROLLBACK_FAILED state",
            },
        ],
        **a1,
    )
    (Path(root, *parts, "cloudformation-change-set", "custodian-run.log")).write_text(
        "2026-12-01 10:00:00,000 - custodian.c7n_imds.actions - ERROR - asg cfn-failed: "
        "not remediated: stack old-stack: CreateChangeSet: ValidationError\n"
        "2026-12-01 10:00:00,001 - custodian.output - ERROR - Error while executing "
        "policy\nTraceback (most recent call last):\n"
        "c7n_imds.actions.base.RemediationError: create-stack-change-set failed for 1 "
        "group(s)\n"
    )
    write_policy(
        root,
        parts,
        "convert",
        AS3,
        [
            tagged("cfn-batch", groups["cfn-batch"]),
            tagged("exempt-one", groups["exempt-one"]),
            tagged("eb-app", groups["eb-app"]),
        ],
        actions=["convert-to-launch-template"],
        changes=[
            {"AutoScalingGroupName": "cfn-batch", "Skipped": guidance(groups["cfn-batch"])},
            # left to its environment here, fixed there by the Beanstalk policy
            {"AutoScalingGroupName": "eb-app", "Skipped": guidance(groups["eb-app"])},
            {
                "AutoScalingGroupName": "exempt-one",
                "Skipped": "exempt: vendor agent until 2099-01-01",
            },
        ],
        **a1,
    )
    # a second account: owner names its owner typed
    a2 = dict(account="222222222222", region=REGION)
    parts = ("r&d <lab>", REGION)
    hostile = {"h-cfn": stack_tags(HOSTILE_STACK), "h-eb": beanstalk_tags(HOSTILE_ENV, "e-zzz999")}
    write_policy(
        root,
        parts,
        "autoscaling-3-asg-launch-configuration-imdsv1",
        AS3,
        [tagged(g, t) for g, t in hostile.items()],
        scan=2,
        **a2,
    )
    write_policy(
        root,
        parts,
        "cloudformation-change-set",
        OWNER_POLICIES,
        [tagged("h-cfn", hostile["h-cfn"])],
        actions=["create-stack-change-set"],
        changes=[
            {
                "AutoScalingGroupName": "h-cfn",
                "Owner": "cloudformation:" + HOSTILE_STACK,
                "OwnerFix": {
                    "Action": "create-stack-change-set",
                    "Status": "proposed",
                    "StackName": HOSTILE_STACK,
                    "ChangeSetName": HOSTILE_CHANGE_SET,
                    "ChangeSetId": "arn:aws:cloudformation:x",
                    "Detail": "change set ready",
                },
            }
        ],
        **a2,
    )
    # c7n-org runs every policy in every account: here they found nothing
    for policy, actions in (
        ("ec2-170-asg-launch-template-imdsv1", []),
        ("beanstalk-disable-imdsv1", ["disable-beanstalk-imdsv1"]),
        ("eks-nodegroup-metadata-access", ["set-nodegroup-metadata-access"]),
        ("convert", ["convert-to-launch-template"]),
    ):
        write_policy(
            root,
            parts,
            policy,
            "Security Hub EC2.170: LT groups." if not actions else OWNER_POLICIES,
            [],
            scan=2 if not actions else None,
            actions=actions,
            changes=[] if actions else None,
            **a2,
        )


def owned_counts(groups=0, not_acted=0, proposed=0, fixed=0, failed=0):
    return dict(
        Groups=groups, NotActed=not_acted, FixProposed=proposed, FixedAtOwner=fixed, Failed=failed
    )


def test_stack_owned_groups_are_counted_by_owner_kind(tmp_path):
    owner_estate(tmp_path)
    summary = aggregate.summarize([load.load_folder(tmp_path)])
    jsonschema.Draft202012Validator(
        json.loads((REPO / "c7n_imds_report" / "schema.json").read_text())
    ).validate(summary)
    assert summary["Problems"] == []  # one group's failure does not make the scan errored
    (run,) = summary["Runs"]
    rows = {(r["Account"], r["Control"]): r for r in run["Rows"]}
    as3 = rows[("111111111111", "AutoScaling.3")]
    # 8 LC groups allow IMDSv1; of them 6 stack-owned (Beanstalk's under Beanstalk,
    # though they carry the stack tag too); the compliant Beanstalk group is not counted
    assert {
        k: as3[k]
        for k in (
            "NonCompliant",
            "StackOwned",
            "LeftToStack",
            "FixProposed",
            "FixedAtOwner",
            "Failed",
            "Remediated",
            "Exempt",
        )
    } == dict(
        NonCompliant=8,
        StackOwned=6,
        LeftToStack=2,
        FixProposed=1,
        FixedAtOwner=2,
        Failed=1,
        Remediated=0,
        Exempt=1,
    )
    assert as3["StackOwnedByOwner"] == {
        CFN: owned_counts(4, not_acted=2, proposed=1, failed=1),
        EB: owned_counts(2, fixed=2),
        EKS: owned_counts(),
    }
    ec2_170 = rows[("111111111111", "EC2.170")]
    assert (ec2_170["NonCompliant"], ec2_170["StackOwned"], ec2_170["FixedAtOwner"]) == (2, 2, 1)
    assert ec2_170["StackOwnedByOwner"][EKS] == owned_counts(2, not_acted=1, fixed=1)
    accounts = {a["Account"]: a for a in run["Accounts"]}
    assert accounts["111111111111"]["StackOwnedByOwner"] == {
        CFN: owned_counts(4, not_acted=2, proposed=1, failed=1),
        EB: owned_counts(2, fixed=2),
        EKS: owned_counts(2, not_acted=1, fixed=1),
    }
    assert accounts["222222222222"]["StackOwnedByOwner"] == {
        CFN: owned_counts(1, proposed=1),
        EB: owned_counts(1, not_acted=1),
        EKS: owned_counts(),
    }
    totals = run["Totals"]  # org-wide
    assert (
        totals["StackOwned"],
        totals["FixProposed"],
        totals["FixedAtOwner"],
        totals["LeftToStack"],
        totals["Remediated"],
    ) == (10, 2, 3, 2, 0)
    assert totals["StackOwnedByOwner"] == {
        CFN: owned_counts(5, not_acted=2, proposed=2, failed=1),
        EB: owned_counts(3, not_acted=1, fixed=2),
        EKS: owned_counts(2, not_acted=1, fixed=1),
    }
    # a fix proposed or rolling out is not compliance: the shares count those groups
    # as failing, and say how many of them have a fix on its way
    fields = ("Control", "InScope", "NonCompliant", "CompliantShare", "FixProposed", "FixedAtOwner")
    controls = {c["Control"]: {k: c[k] for k in fields} for c in run["Controls"]}
    assert controls["AutoScaling.3"] == dict(
        Control="AutoScaling.3",
        InScope=14,
        NonCompliant=10,
        CompliantShare=round(1 - 10 / 14, 4),
        FixProposed=2,
        FixedAtOwner=2,
    )
    # EC2.170 judges the template groups only: the two node groups (the scans here count
    # every group as a launch configuration's; in scope is never fewer than failing)
    assert controls["EC2.170"] == dict(
        Control="EC2.170",
        InScope=2,
        NonCompliant=2,
        CompliantShare=0.0,
        FixProposed=0,
        FixedAtOwner=1,
    )


def test_each_stack_owned_group_shows_its_owner_and_what_fixes_it(tmp_path):
    owner_estate(tmp_path)
    summary = aggregate.summarize([load.load_folder(tmp_path)])
    groups = {(g["Account"][:1], g["Group"]): g for g in summary["Groups"]}
    assert {k[1]: g["State"] for k, g in groups.items()} == {
        "cfn-web": "fix-proposed",
        "cfn-batch": "stack-owned",
        "cfn-skipped": "stack-owned",
        "cfn-failed": "failed",
        "eb-app": "fixed-at-owner",
        "eb-done": "fixed-at-owner",
        "eks-ng": "fixed-at-owner",
        "eks-ng2": "stack-owned",
        "plain": "non-compliant",
        "exempt-one": "exempt",
        "h-cfn": "fix-proposed",
        "h-eb": "stack-owned",
    }
    # the compliant Beanstalk group, already fixed at its environment, is not listed
    web = groups[("1", "cfn-web")]
    assert (web["Stack"], web["OwnerKind"], web["Control"]) == (
        "cloudformation:orders-stack",
        CFN,
        "AutoScaling.3",
    )
    assert web["Fix"] == {
        "Action": "create-stack-change-set",
        "Status": "proposed",
        "StackName": "orders-stack",
        "ChangeSetName": CHANGE_SET_NAME,
        "ChangeSetId": CHANGE_SET_ID,
        "Detail": web["Reason"],
        "Command": "aws cloudformation execute-change-set --region us-east-1 --stack-name "
        "orders-stack --change-set-name " + CHANGE_SET_NAME,
        "Pending": "the stack's owner to review and execute change set %s on stack "
        "orders-stack; the group fails AutoScaling.3 until then" % CHANGE_SET_NAME,
    }
    batch = groups[("1", "cfn-batch")]  # convert left it to its stack: the action to run
    assert batch["Fix"]["Action"] == "create-stack-change-set"
    assert batch["Fix"]["Status"] == "not-run"
    assert batch["Reason"] == guidance(stack_tags("batch-stack"))
    skipped = groups[("1", "cfn-skipped")]  # its owner's action said what fixes it
    assert (skipped["Fix"]["Status"], skipped["Fix"]["Detail"]) == (
        "skipped",
        "stack nested-stack: the group's launch configuration is not defined "
        "in this stack's template; change it in the stack that defines it",
    )
    failed = groups[("1", "cfn-failed")]
    assert (failed["Stack"], failed["Fix"]["Status"], failed["Fix"]["Action"]) == (
        "cloudformation:old-stack",
        "failed",
        "create-stack-change-set",
    )
    assert failed["Reason"].endswith("UPDATE_ROLLBACK_FAILED state")
    app = groups[("1", "eb-app")]
    assert (app["Stack"], app["OwnerKind"]) == ("elasticbeanstalk:shop-prod", EB)
    assert {
        k: app["Fix"][k]
        for k in ("Action", "Status", "EnvironmentName", "EnvironmentId", "Command")
    } == {
        "Action": "disable-beanstalk-imdsv1",
        "Status": "applied",
        "EnvironmentName": "shop-prod",
        "EnvironmentId": "e-abc123",
        "Command": "aws elasticbeanstalk describe-environments --region us-east-1 "
        "--environment-names shop-prod",
    }
    assert app["Fix"]["Pending"].startswith("Elastic Beanstalk's update of environment shop-prod")
    assert groups[("1", "eb-done")]["Fix"]["Status"] == "already-applied"
    nodes = groups[("1", "eks-ng")]
    assert (nodes["Stack"], nodes["Control"], nodes["LaunchType"]) == (
        "eks-nodegroup:prod/ng-1",
        "EC2.170",
        LT,
    )
    assert nodes["Fix"]["LaunchTemplate"] == {"id": "lt-0123456789abcdef0", "version": "4"}
    assert nodes["Fix"]["Command"] == (
        "aws eks describe-update --region us-east-1 --name prod --nodegroup-name ng-1 "
        "--update-id a1b2c3d4-0000-4000-8000-000000000001"
    )
    assert "update a1b2c3d4-0000-4000-8000-000000000001 of prod/ng-1" in nodes["Fix"]["Pending"]
    assert (groups[("1", "eks-ng2")]["Stack"], groups[("1", "eks-ng2")]["Fix"]["Action"]) == (
        "eks-nodegroup:prod/ng-2",
        "set-nodegroup-metadata-access",
    )
    # a group no stack owns, skipped by an owner action, stays plainly non-compliant
    assert (groups[("1", "plain")]["Stack"], groups[("1", "plain")]["Fix"]) == (None, None)
    hostile = groups[("2", "h-cfn")]
    # pasted into a shell, the command runs nothing else
    assert hostile["Fix"]["Command"].endswith(
        "--stack-name '=HYPERLINK(\"http://evil\")' --change-set-name "
        "'cs; rm -rf ~ [x](javascript:alert(1))'"
    )
    assert groups[("2", "h-eb")]["Stack"] == "elasticbeanstalk:" + HOSTILE_ENV


def test_owner_outcomes_are_never_counted_as_remediated():
    # an owner action's record without a known OwnerFix, or of a shape to come
    outcomes = load.change_outcomes(
        [
            {"AutoScalingGroupName": "a", "Owner": "elasticbeanstalk:x"},
            {
                "AutoScalingGroupName": "b",
                "Owner": "elasticbeanstalk:x",
                "OwnerFix": {"Action": "disable-beanstalk-imdsv1", "Status": "queued"},
            },
            {"AutoScalingGroupName": "c", "LaunchTemplateId": "lt-1"},
            {"AutoScalingGroupName": "d", "Skipped": "exempt: vendor"},
            {"AutoScalingGroupName": "e", "Skipped": "managed by CloudFormation stack s: ..."},
        ],
        ["disable-beanstalk-imdsv1", "notify"],
    )
    assert [o["Outcome"] for o in outcomes] == [
        "Skipped",
        "Skipped",
        "Skipped",
        "Skipped",
        "LeftToStack",
    ]
    assert [
        o["Outcome"]
        for o in load.change_outcomes(
            [{"AutoScalingGroupName": "c", "LaunchTemplateId": "lt-1"}],
            ["convert-to-launch-template", "notify"],
        )
    ] == ["Remediated"]
    # a node group already on an IMDSv2 version: no update to follow
    (outcome,) = load.change_outcomes(
        [
            {
                "AutoScalingGroupName": "n",
                "Owner": "eks-nodegroup:prod/workers",
                "OwnerFix": {
                    "Action": "set-nodegroup-metadata-access",
                    "Status": "already-applied",
                    "ClusterName": "prod",
                    "NodegroupName": "workers",
                    "UpdateId": None,
                    "LaunchTemplate": {"id": "lt-0abc", "version": "2"},
                    "Detail": "already",
                },
            }
        ],
        ["set-nodegroup-metadata-access"],
    )
    fix = aggregate.owner_fix(outcome, "eks-nodegroup", REGION)
    assert outcome["Outcome"] == "FixedAtOwner" and "UpdateId" not in fix
    assert "Command" not in fix and fix["Pending"].startswith(
        "node group prod/workers already launches (launch template lt-0abc version 2)"
    )
    # Beanstalk groups carry the stack tag too: their owner is the environment
    facts = load.resource_facts("asg", tagged("g", beanstalk_tags("env", "e-1")))
    assert facts["Stack"] == "elasticbeanstalk:env"
    facts = load.resource_facts("asg", tagged("g", {"eks:nodegroup-name": "ng"}, LT))
    assert facts["Stack"] == "eks-nodegroup:ng"  # no cluster tag: the node group alone


def test_every_format_shows_owners_and_fixes_escaped(tmp_path):
    owner_estate(tmp_path / "out")
    texts = {}
    for fmt in FORMATS:
        out = tmp_path / ("summary." + fmt)
        assert cli.main([str(tmp_path / "out"), "--format", fmt, "-o", str(out)]) == 0
        texts[fmt] = out.read_text(encoding="utf-8")
    for fmt, text in texts.items():
        assert CANARY not in text and "secret-launch-name" not in text, fmt
        if fmt in ("html", "markdown"):
            assert "<img" not in text, fmt
    table = texts["table"]
    # the counts by owner, per account and org-wide
    lines = [re.sub(r"\s{2,}", " | ", line.strip()) for line in table.splitlines()]
    assert "payments (111111111111) | CloudFormation | 4 | 2 | 1 | 0 | 1" in lines
    assert "payments (111111111111) | Elastic Beanstalk | 2 | 0 | 0 | 2 | 0" in lines
    assert "payments (111111111111) | EKS node group | 2 | 1 | 0 | 1 | 0" in lines
    assert "All accounts | CloudFormation | 5 | 2 | 2 | 0 | 1" in lines
    assert "All accounts | EKS node group | 2 | 1 | 0 | 1 | 0" in lines
    assert re.search(
        r"^AutoScaling\.3 .*still failing: 2 with a change set to execute, 2 "
        r"rolling out at their owner",
        table,
        re.M,
    )
    # each fix, in the groups' detail
    assert re.search(
        r"cfn-web .*fix proposed \(change set\) .*cloudformation:orders-stack: "
        r"change set %s on stack orders-stack, not executed yet: aws "
        r"cloudformation execute-change-set --region us-east-1 --stack-name "
        r"orders-stack --change-set-name %s" % (CHANGE_SET_NAME, CHANGE_SET_NAME),
        table,
    )
    assert re.search(
        r"eb-app .*fixed at owner, rolling out .*elasticbeanstalk:shop-prod: "
        r"disable-beanstalk-imdsv1 applied; waiting for Elastic Beanstalk's "
        r"update of environment shop-prod",
        table,
    )
    assert re.search(
        r"eks-ng .*set-nodegroup-metadata-access applied; waiting for node "
        r"group update a1b2c3d4-0000-4000-8000-000000000001",
        table,
    )
    assert re.search(
        r"cfn-batch .*stack-owned .*cloudformation:batch-stack: next: run "
        r"create-stack-change-set \(not run yet\); managed by CloudFormation "
        r"stack batch-stack",
        table,
    )
    assert re.search(r"eks-ng2 .*next: run set-nodegroup-metadata-access", table)
    assert re.search(
        r"cfn-skipped .*cloudformation:nested-stack: next: create-stack-change-"
        r"set left it: stack nested-stack: the group's launch configuration is "
        r"not defined in this stack's template; change it in the stack that "
        r"defines it\s*$",
        table,
        re.M,
    )

    markdown = texts["markdown"]
    assert "## Stack-owned groups by owner" in markdown
    assert "elasticbeanstalk:&lt;img src=x onerror=alert(1)&gt;\\|shop" in markdown
    assert "cs; rm -rf \\~ \\[x\\](javascript:alert(1))" in markdown
    for block in re.split(r"\n\n", markdown):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in lines}) <= 1, block

    rows = list(csv.DictReader(io.StringIO(texts["csv"])))
    by = {(r["Account"], r["Control"]): r for r in rows}
    as3 = by[("111111111111", "AutoScaling.3")]
    assert (
        as3["StackOwned"],
        as3["StackOwned:cloudformation"],
        as3["StackOwned:elasticbeanstalk"],
        as3["StackOwned:eks-nodegroup"],
        as3["FixProposed"],
        as3["FixedAtOwner"],
    ) == ("6", "4", "2", "0", "1", "2")
    total = by[("(all)", "(all)")]
    assert (total["StackOwned"], total["StackOwned:eks-nodegroup"]) == ("10", "2")

    page = Tables(texts["html"])
    owners = page.by_id["t-owners"]
    assert owners[0] == [
        "Account",
        "Owner",
        "Groups",
        "Nobody acted",
        "Fix proposed",
        "Fixed at owner, rolling out",
        "Failed",
    ]
    assert ["All accounts", "Elastic Beanstalk", "3", "1", "0", "2", "0"] in owners
    proposed = {r[2]: r for r in page.by_id["t-fix-proposed"][1:]}
    assert proposed["h-cfn"][4:7] == [
        "cloudformation:" + HOSTILE_STACK,
        HOSTILE_CHANGE_SET,
        "aws cloudformation execute-change-set --region us-east-1 --stack-name "
        "'=HYPERLINK(\"http://evil\")' --change-set-name "
        "'cs; rm -rf ~ [x](javascript:alert(1))'",
    ]
    assert "&lt;img src=x onerror=alert(1)&gt;|shop" in texts["html"]
    fixed = {r[2]: r for r in page.by_id["t-fixed-at-owner"][1:]}
    assert set(fixed) == {"eb-app", "eb-done", "eks-ng"}
    assert fixed["eb-done"][5] == "disable-beanstalk-imdsv1 (already in place)"
    stack_owned = {r[2]: r for r in page.by_id["t-stack-owned"][1:]}
    assert set(stack_owned) == {"cfn-batch", "cfn-skipped", "eks-ng2", "h-eb"}
    assert stack_owned["cfn-skipped"][7].startswith(
        "create-stack-change-set left it: stack nested-stack"
    )


# ---- account-made text: control characters, in every format ----------------------------

FORGED_LINE = "\n2026-12-01 10:00:00,000 - custodian.commands - ERROR - forged"


def test_every_format_writes_out_control_characters(tmp_path, capsys):
    """A group name, a tag value, a reason and an account folder with a newline, a
    line separator and an escape sequence stay on their line in every format, written
    out; JSON stays the values as they are."""
    name = "web" + FORGED_LINE
    exempt = dict(
        group("vendor\u2028x", exempt=True),
        **{
            "c7n-imds:exemption": {
                "Exempt": True,
                "Reason": "agent\x1b[2K" + FORGED_LINE,
                "Until": None,
            }
        },
    )
    write_policy(
        tmp_path,
        ("acct\nx", REGION),
        "as3-groups",
        AS3,
        [group(name, calls=3, Tags=[{"Key": "owner", "Value": "ops\r\nteam"}]), exempt],
        scan=2,
    )
    write_policy(tmp_path, ("acct\nx", REGION), "broken", AS3, [], scan=2)
    (tmp_path / "acct\nx" / REGION / "broken" / "resources.json").write_text("[")
    texts = {}
    for fmt in FORMATS:
        out = tmp_path / ("summary." + fmt)
        assert cli.main([str(tmp_path), "--format", fmt, "-o", str(out)]) == 3
        texts[fmt] = out.read_text(encoding="utf-8")
    for fmt, text in texts.items():
        for line in text.splitlines():
            assert not line.startswith("2026-12-01"), (fmt, line)
        assert "\x1b" not in text and "\u2028" not in text and "\r" not in text, fmt
    assert "web\\n2026-12-01 10:00:00,000" in texts["table"]
    assert "agent\\x1b[2K\\n2026-12-01" in texts["table"]
    assert "vendor\\u2028x" in texts["table"] and "ops\\x0d\\nteam" in texts["table"]
    assert "web\\\\n2026-12-01" in texts["markdown"]  # Markdown shows the backslash
    assert "web\\n2026-12-01" in texts["html"] and "vendor\\u2028x" in texts["html"]
    assert {row[1] for row in csv.reader(io.StringIO(texts["csv"]))} >= {"Account"}
    assert all(len(line.split(",")) > 5 for line in texts["csv"].splitlines())
    groups = {g["Group"] for g in json.loads(texts["json"])["Groups"]}
    assert name in groups  # JSON carries the value itself, encoded as JSON
    # the problems named on standard error, one line each
    problems = [line for line in capsys.readouterr().err.splitlines() if line]
    assert problems and all(line.startswith("c7n-imds summary: unreadable") for line in problems), (
        problems
    )


# ---- summary s3://...: bounded reading ----------------------------------------------------


class FakeBody:
    def __init__(self, data):
        self.data, self.read_bytes = data, 0

    def iter_chunks(self, size):
        for start in range(0, len(self.data), size):
            self.read_bytes += len(self.data[start : start + size])
            yield self.data[start : start + size]

    def close(self):
        pass


class FakeS3:
    """list_objects_v2 and get_object over {key: bytes}, as fetch_s3 calls them."""

    def __init__(self, objects):
        self.objects = objects

    def client(self, service):
        return self

    def get_paginator(self, name):
        return self

    def paginate(self, Bucket, Prefix):
        return [{"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)]}]

    def get_object(self, Bucket, Key):
        return {"Body": FakeBody(self.objects[Key])}


def gzip_bomb(size):
    """``size`` bytes of zeros as gzip members of 16 MiB each: about 1/1000 of that."""
    import gzip

    member = gzip.compress(bytes(16 << 20), compresslevel=9)
    return member * (size // (16 << 20))


def test_a_gzip_bomb_in_s3_is_one_unreadable_line_never_expanded(tmp_path):
    import gzip

    meta = json.dumps(
        {
            "policy": {"name": "as3-groups", "resource": "asg", "description": AS3},
            "execution": {"start": START},
            "config": {"account_id": ACCOUNT, "region": REGION},
        }
    ).encode()
    bomb = gzip_bomb(1 << 30)  # 1 GiB of zeros in about 1 MB
    assert len(bomb) < 2 << 20
    prefix = "out/acct/%s/as3-groups/" % REGION
    s3 = FakeS3(
        {
            prefix + "metadata.json.gz": gzip.compress(meta),
            prefix + "resources.json.gz": bomb,
            prefix + "custodian-run.log.gz": gzip.compress(b""),
        }
    )
    folder = load.fetch_s3("s3://bucket/out", session=s3)
    try:
        kept = folder / "acct" / REGION / "as3-groups" / "resources.json"
        assert kept.stat().st_size < 200  # the reason, not the content
        (output,) = load.load_folder(folder)
    finally:
        import shutil

        shutil.rmtree(folder)
    assert output["State"] == "unreadable"
    assert output["Reason"] == (
        "resources.json: s3://bucket/%sresources.json.gz is over 64 MiB decompressed" % prefix
    )


def test_bounded_reading_of_members_and_of_truncated_data():
    import gzip
    import zlib

    two = gzip.compress(b"[1,") + gzip.compress(b"2]")
    assert load.read_bounded([two[:5], two[5:17], two[17:]], True) == b"[1,2]"
    assert load.read_bounded([b"plain"], False) == b"plain"
    with pytest.raises(load.TooLarge):
        load.read_bounded([gzip.compress(bytes(1025))], True, limit=1024)
    with pytest.raises(load.TooLarge):
        load.read_bounded([bytes(600), bytes(600)], False, limit=1024)
    with pytest.raises(EOFError):
        load.read_bounded([gzip.compress(b"[1,2,3]")[:-4]], True)
    with pytest.raises(zlib.error):
        load.read_bounded([b"not gzip"], True)


# ---- the report is its own package; its Athena queries run on DuckDB --------------------


def test_the_plugin_never_imports_the_report():
    """No module of c7n_imds imports c7n_imds_report at module level (the CLI reaches it
    inside `summary` only), so neither the plugin nor its Lambda archive carries it."""
    import ast

    for path in (REPO / "c7n_imds").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.startswith("c7n_imds_report") for n in names), path


def athena_results(root):
    """queries.sql over duckdb.sql's views of ``root``: the SQL Athena runs."""
    import duckdb  # the test extra installs it (the report extra too)

    athena = REPO / "c7n_imds_report" / "athena"
    con = duckdb.connect()
    for statement in (athena / "duckdb.sql").read_text().replace("{root}", str(root)).split(";"):
        if any(not line.startswith("--") for line in statement.strip().splitlines()):
            con.execute(statement)
    parts = re.split(r"^-- name: (\w+)\n", (athena / "queries.sql").read_text(), flags=re.M)
    found = {}
    for name, sql in zip(parts[1::2], parts[2::2]):
        sql = sql.strip().rstrip(";")
        if name == "groups_after_run":
            con.execute("CREATE VIEW groups_after_run AS " + sql)
        else:
            found[name] = con.execute(sql).fetchall()
    return found


def test_athena_queries_state_each_control_as_the_summary(runs, tmp_path):
    found = athena_results(runs / "one")
    summary = json.loads(summary_of([runs / "one"], "json", tmp_path))
    rows = {
        r["Control"]: r["NonCompliant"]
        for r in summary["Runs"][-1]["Rows"]
        if r["Control"] in ("AutoScaling.3", "AutoScaling.9", "EC2.170")
    }
    sql = {control: n for _, _, control, n in found["controls"]}
    assert (
        {c: sql.get(c, 0) for c in rows}
        == rows
        == {"AutoScaling.3": 4, "AutoScaling.9": 5, "EC2.170": 0}
    )
    # detect.yml's inventory records every launch configuration: 7, 6 allow IMDSv1
    # (web-lc, kept after its groups' conversion, among them) - as Security Hub counts
    assert found["launch_configurations"] == [(ACCOUNT, REGION, 7, 6)]
    (as3,) = [c for c in summary["Runs"][-1]["Controls"] if c["Control"] == "AutoScaling.3"]
    assert (as3["Resources"], as3["ResourcesNonCompliant"], as3["ResourceShare"]) == (
        7,
        6,
        round(1 / 7, 4),
    )


def test_summary_without_the_report_installed_says_so_in_one_line(tmp_path):
    # the plugin installed without the `report` extra: c7n_imds_report cannot be imported
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'c7n_imds_report':\n"
        "            raise ModuleNotFoundError(\"No module named 'c7n_imds_report'\")\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(tmp_path), str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from c7n_imds.cli import main; "
            "sys.exit(main(['summary', %r]))" % str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "c7n-imds summary: not installed: pip install 'c7n-imds[report]'\n"


def test_reading_in_worker_processes_gives_the_same_summary(tmp_path, monkeypatch):
    # an organisation's tree is read by a pool of processes, a bounded number of
    # account-regions ahead; the summary is the one read in this process
    from c7n_imds_report import stream

    org_day(tmp_path / "tree", "day1", START)
    org_day(tmp_path / "tree", "day2", START + 86400)
    texts = []
    for workers, parallel_after in (("1", 32), ("2", 1)):
        monkeypatch.setenv("C7N_IMDS_SUMMARY_WORKERS", workers)
        monkeypatch.setattr(stream, "PARALLEL_AFTER", parallel_after)
        monkeypatch.setattr(stream, "IN_FLIGHT", 2)
        out = tmp_path / ("summary-%s.json" % workers)
        assert cli.main([str(tmp_path / "tree"), "--format", "json", "-o", str(out)]) == 0
        texts.append(out.read_text())
    assert texts[0] == texts[1] and json.loads(texts[0])["Runs"][1]["Totals"]["Remediated"] == 4
