"""c7n_imds_report.dashboard (`c7n-imds summary --format html`) as a reader sees it, and
the escaping of every format (c7n_imds_report.render).

The summary is built by hand in schema.json's shape (checked against it): 3 accounts x 2
regions over 3 runs in which a remediation brings the non-compliant groups down and the
last run only detects; one errored scan, one account and region not scanned, one output
that cannot be read; held-back, exempt, stack-owned and failed groups; long names; and
the values an account's owner can type into a name or tag: markup, a formula, Markdown.

The page is opened in real headless Chromium (Debian's /usr/bin/chromium, which
`make test` installs) and the assertions read what Chromium made of it: the DOM after
the page's script ran (--dump-dom), with a test-only script appended to a copy of the
page that writes into the DOM what it measured - elements wider than their box or out
of the viewport, SVG labels outside their viewBox, resources loaded - and how the
tables answered a filter and a click. Chromium's headless window is at least 500 px
wide, so the phone (390 px) is an iframe of that width in a wrapper page. Chromium runs
with every host name unresolvable and a proxy on a closed port of 127.0.0.1: nothing
leaves the machine, and a page that needed the network would show it.
"""

import csv
import io
import json
import re
import struct
from html import escape
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from c7n_imds.model.escape import controls as escape_controls
from c7n_imds_report import dashboard, render
from tests.support.browser import Dom, cells, chromium, column

# Chromium is a real program, which `make test` installs: these are end-to-end tests, out
# of `make test-unit` (the escaping tests with them: one module per unit).
E2E = True
SCHEMA = json.loads((Path(dashboard.__file__).parent / "schema.json").read_text())
LC, LT, MIXED = "launch-configuration", "launch-template", "mixed-instances-policy"
AS3, AS9, EC2_170, EC2_8 = "AutoScaling.3", "AutoScaling.9", "EC2.170", "EC2.8"
US, EU = "us-east-1", "eu-west-1"
DASH = "\u2013"

# Values an account's owner chooses, each aimed at one of the formats.
IMG = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://evil")'
LINK = "[x](javascript:alert(1))"
PIPES = "ops|oncall\nsecond line"
DDE = "=cmd|' /C calc'!A0 <b>\"lab\"</b>"  # an account name: CSV, Markdown and HTML at once
# a control a policy of the user's own names (metadata: controls), quoted into attributes
CUSTOM = 'Custom.1" onmouseover="alert(2)'
LONG_ACCOUNT = "data-platform-analytics-shared-services-eu-central-production-cluster-01"
LONG_GROUP = "ledger-batch-workers-nightly-reconciliation-eu-west-1-spot-fleet-blue-01"
# nowhere to break a line: 100 characters
ONE_WORD = "MetricsAgentV1LegacyCollectorFleetForPaymentsLedgerReconciliationNightlyBatchJobsSlot01"
ONE_WORD += "X" * (100 - len(ONE_WORD))
A1, A2, A3 = "111111111111", "222222222222", "333333333333"
NAMES = {A1: "payments-prod", A2: LONG_ACCOUNT, A3: DDE}
RUNS = ["2024-05-06 06:00:00 UTC", "2024-05-13 06:00:00 UTC", "2024-05-20 06:00:00 UTC"]
# an owner's names, typed by the account's owner, land in a command and a table
STACK = 'orders"><script>alert(3)</script>'
CHANGE_SET = "c7n-imds-imdsv2-cart|" + LINK
EXECUTE = (
    "aws cloudformation execute-change-set --region us-east-1 --stack-name "
    "'orders\"><script>alert(3)</script>' --change-set-name 'c7n-imds-imdsv2-cart|%s'" % LINK
)
NODEGROUP = "prod/" + ONE_WORD
UPDATE = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
GUIDANCE = (
    "managed by CloudFormation stack orders-prod-stack: set MetadataOptions "
    "HttpTokens: required in the stack's launch template and update the stack"
)


# ---- the summary, by hand ---------------------------------------------------------------


def figures(
    non_compliant,
    by_type=None,
    scanned=None,
    remediated=0,
    held=0,
    exempt=0,
    stack=0,
    failed=0,
    configs=None,
):
    if non_compliant is None:  # nothing measured
        return dict(
            Scanned=None,
            NonCompliant=None,
            NonCompliantByLaunchType={},
            LaunchConfigurations=None,
            Remediated=None,
            HeldBack=None,
            Exempt=None,
            LeftToStack=None,
            Failed=None,
        )
    return dict(
        Scanned=scanned,
        NonCompliant=non_compliant,
        NonCompliantByLaunchType=by_type or ({LC: non_compliant} if non_compliant else {}),
        LaunchConfigurations=configs,
        Remediated=remediated,
        HeldBack=held,
        Exempt=exempt,
        LeftToStack=stack,
        Failed=failed,
    )


def row(account, region, control, non_compliant, by_type=None, state="scanned", **kw):
    return dict(
        figures(non_compliant, by_type, **kw),
        Account=account,
        AccountName=NAMES[account],
        Region=region,
        Control=control,
        State=state,
    )


def latest_rows():
    """The last run: A1 and A2 still have work; A2's EC2.170 scan errored in eu-west-1;
    A3's eu-west-1 was not scanned; EC2.8 only ran in A1 us-east-1 and its output cannot
    be read."""
    rows = [
        row(A1, US, AS3, 0, scanned=6, configs=0),
        row(A1, US, AS9, 5, scanned=6),
        row(A1, US, EC2_170, 3, {LT: 2, MIXED: 1}, scanned=6, held=1),
        row(A1, US, EC2_8, None, state="unreadable"),
        row(A1, EU, AS3, 0, scanned=6, exempt=1),
        row(A1, EU, AS9, 3, scanned=6),
        row(A1, EU, EC2_170, 1, {LT: 1}, scanned=6),
        row(A2, US, AS3, 3, scanned=8, held=1, stack=1),
        row(A2, US, AS9, 4, scanned=8),
        row(A2, US, EC2_170, 0, scanned=8, held=1),
        row(A2, EU, AS3, 2, {LC: 1, "unknown": 1}, scanned=5, failed=1),
        row(A2, EU, AS9, 2, scanned=5),
        row(A2, EU, EC2_170, None, state="errored"),
        row(A3, US, AS3, 0, scanned=3),
        row(A3, US, AS9, 0, scanned=3),
        row(A3, US, EC2_170, 0, scanned=3, exempt=1),
    ]
    rows += [row(A3, EU, c, None, state="not-scanned") for c in (AS3, AS9, EC2_170)]
    return rows


def earlier_rows(shares):
    """An earlier run: every account and region scanned, non-compliant groups per
    account as given, on AutoScaling.3."""
    return [
        row(account, region, AS3, n // 2 if region == US else n - n // 2, scanned=10)
        for account, n in shares.items()
        for region in (US, EU)
    ]


def control(name, in_scope, non_compliant):
    share = None if in_scope is None else (in_scope - non_compliant) / in_scope
    return dict(Control=name, InScope=in_scope, NonCompliant=non_compliant, CompliantShare=share)


def run(index, rows, accounts, controls, totals):
    return dict(
        Run=RUNS[index],
        Start=1714975200.0 + index * 7 * 86400,
        Folders=["s3://audit-bucket/imds/%s" % RUNS[index][:10]],
        Rows=rows,
        Accounts=[
            dict(figures(n, scanned=s, remediated=r), Account=a, AccountName=NAMES[a])
            for a, (n, s, r) in accounts.items()
        ],
        Controls=[control(*c) for c in controls],
        Totals=dict(
            figures(
                *totals[:1],
                scanned=totals[1],
                remediated=totals[2],
                held=totals[3],
                exempt=2,
                stack=1,
                failed=totals[4],
                configs=9,
            ),
            Accounts=3,
            Regions=2,
        ),
    )


def group(account, region, name, control_, state, launch_type, **kw):
    return dict(
        dict(Calls=None, Days=None, Owner=None, Reason=None, Until=None, Stack=None),
        Account=account,
        AccountName=NAMES[account],
        Region=region,
        Group=name,
        Control=control_,
        State=state,
        LaunchType=launch_type,
        **kw,
    )


def scan(account, region, policy, state, reason):
    return dict(
        Account=account,
        AccountName=NAMES[account],
        Region=region,
        Policy=policy,
        State=state,
        Reason=reason,
    )


GROUPS = [
    group(
        A1, US, "checkout-api-blue", EC2_170, "non-compliant", LT, Owner="team-payments@example.com"
    ),
    group(A1, EU, LONG_GROUP, AS9, "non-compliant", LC, Owner="data-eng"),
    group(A2, US, IMG, AS3, "non-compliant", LC, Owner=FORMULA),
    group(A2, US, "mixed-fleet", EC2_170, "non-compliant", MIXED),
    group(A2, EU, "legacy-reporting", AS3, "non-compliant", None),
    group(A1, US, ONE_WORD, AS3, "held-back", LC, Calls=1234, Days=14, Owner=PIPES),
    group(A2, US, LINK, EC2_170, "held-back", LT, Calls=7, Days=14, Owner="ml-team"),
    group(
        A1,
        EU,
        "vendor-appliance",
        AS3,
        "exempt",
        LC,
        Reason="+vendor agent needs IMDSv1",
        Until="2025-01-31",
        Owner="vendor-ops",
    ),
    group(A3, US, "lab-sandbox", EC2_170, "exempt", LT, Reason="@security approved: ticket SEC-42"),
    group(
        A2,
        US,
        "orders-asg",
        AS3,
        "stack-owned",
        LC,
        Stack="cloudformation:orders-prod-stack",
        Reason=GUIDANCE,
        Owner="orders-team",
        OwnerKind="cloudformation",
        Fix=dict(
            Action="create-stack-change-set",
            Status="not-run",
            Detail="not run yet: the create-stack-change-set action proposes a change set",
        ),
    ),
    group(
        A1,
        US,
        "eks-nodes",
        EC2_170,
        "stack-owned",
        LT,
        Stack="eks-nodegroup:prod-ng-1",
        Reason="managed by EKS managed node group prod-ng-1: give it a launch template "
        "version with HttpTokens required",
    ),
    group(
        A2,
        EU,
        "broken-sg-group",
        AS3,
        "failed",
        LC,
        Reason="-InvalidGroup.NotFound: security group sg-0f00 does not exist",
    ),
    # fixed at their owners: a change set to execute, a Beanstalk environment updating,
    # a node group update rolling out
    group(
        A2,
        US,
        "cart-asg",
        AS3,
        "fix-proposed",
        LC,
        Stack="cloudformation:" + STACK,
        OwnerKind="cloudformation",
        Owner="cart-team",
        Reason="change set ready",
        Fix=dict(
            Action="create-stack-change-set",
            Status="proposed",
            StackName=STACK,
            ChangeSetName=CHANGE_SET,
            ChangeSetId="arn:aws:cloudformation:us-east-1:"
            "222222222222:changeSet/c7n-imds-imdsv2-cart/1",
            Detail="change set ready",
            Pending="the stack's owner to review and execute change set",
            Command=EXECUTE,
        ),
    ),
    group(
        A1,
        EU,
        "shop-web",
        AS3,
        "fixed-at-owner",
        LC,
        Stack="elasticbeanstalk:shop-prod",
        OwnerKind="elasticbeanstalk",
        Reason="DisableIMDSv1=true set",
        Fix=dict(
            Action="disable-beanstalk-imdsv1",
            Status="applied",
            EnvironmentName="shop-prod",
            EnvironmentId="e-abc123",
            Detail="DisableIMDSv1=true set",
            Pending="Elastic Beanstalk's update of environment shop-prod",
            Command="aws elasticbeanstalk describe-environments --region eu-west-1 "
            "--environment-names shop-prod",
        ),
    ),
    group(
        A1,
        US,
        "gpu-nodes",
        EC2_170,
        "fixed-at-owner",
        LT,
        Stack="eks-nodegroup:" + NODEGROUP,
        OwnerKind="eks-nodegroup",
        Owner="ml-platform",
        Reason="update started",
        Fix=dict(
            Action="set-nodegroup-metadata-access",
            Status="already-applied",
            ClusterName="prod",
            NodegroupName=ONE_WORD,
            UpdateId=UPDATE,
            LaunchTemplate={"id": "lt-0abc", "version": "7"},
            Detail="update started",
            Pending="node group update %s of %s" % (UPDATE, NODEGROUP),
            Command="aws eks describe-update --region us-east-1 --name prod "
            "--nodegroup-name %s --update-id %s" % (ONE_WORD, UPDATE),
        ),
    ),
]
PROBLEMS = [
    scan(
        A2,
        EU,
        "ec2-170-asg-launch-template-imdsv1",
        "errored",
        "UnauthorizedOperation calling DescribeLaunchTemplateVersions",
    ),
    scan(A3, EU, None, "not-scanned", "in accounts.yml, but no output for this region"),
    scan(
        A1,
        US,
        "ec2-8-asg-instances-imdsv1",
        "unreadable",
        "resources.json: Expecting value: line 1 column 1 (char 0)",
    ),
]


OWNER_KINDS = ("cloudformation", "elasticbeanstalk", "eks-nodegroup")


def owners(groups=0, not_acted=0, proposed=0, fixed=0, failed=0):
    return dict(
        Groups=groups, NotActed=not_acted, FixProposed=proposed, FixedAtOwner=fixed, Failed=failed
    )


def estate():
    """Non-compliant 36 -> 26 -> 18 as 10, then 8 groups are remediated; the last run
    only detects (0 remediated in it)."""
    runs = [
        run(
            0,
            earlier_rows({A1: 20, A2: 10, A3: 6}),
            {A1: (20, 20, 5), A2: (10, 20, 2), A3: (6, 20, 3)},
            [(AS3, 40, 20), (AS9, 40, 30), (EC2_170, 24, 6), (EC2_8, 52, 8)],
            (36, 60, 10, 5, 0),
        ),
        run(
            1,
            earlier_rows({A1: 15, A2: 8, A3: 3}),
            {A1: (15, 20, 3), A2: (8, 20, 2), A3: (3, 20, 3)},
            [(AS3, 40, 12), (AS9, 40, 24), (EC2_170, 24, 3), (EC2_8, 50, 5)],
            (26, 60, 8, 4, 2),
        ),
        run(
            2,
            latest_rows(),
            {A1: (12, 12, 0), A2: (6, 13, 0), A3: (0, 3, 0)},
            [
                (AS3, 36, 5),
                (AS9, 36, 14),
                (EC2_170, 20, 4),
                (EC2_8, None, None),
                (CUSTOM, None, None),
            ],
            (18, 28, 0, 2, 1),
        ),
    ]
    latest = runs[-1]  # the stack-owned groups by owner (the earlier runs predate them)
    owned = {
        A1: {
            "elasticbeanstalk": owners(1, fixed=1),
            "eks-nodegroup": owners(2, not_acted=1, fixed=1),
        },
        A2: {"cloudformation": owners(2, not_acted=1, proposed=1)},
        A3: {},
    }
    for record in latest["Accounts"]:
        by = dict({k: owners() for k in OWNER_KINDS}, **owned[record["Account"]])
        record.update(
            StackOwned=sum(c["Groups"] for c in by.values()),
            StackOwnedByOwner=by,
            FixProposed=sum(c["FixProposed"] for c in by.values()),
            FixedAtOwner=sum(c["FixedAtOwner"] for c in by.values()),
        )
    latest["Totals"].update(
        StackOwned=5,
        FixProposed=1,
        FixedAtOwner=2,
        StackOwnedByOwner={
            "cloudformation": owners(2, not_acted=1, proposed=1),
            "elasticbeanstalk": owners(1, fixed=1),
            "eks-nodegroup": owners(2, not_acted=1, fixed=1),
        },
    )
    for entry in latest["Controls"]:  # of the non-compliant, a fix on its way
        proposed, fixed = {AS3: (1, 1), EC2_170: (0, 1)}.get(entry["Control"], (None, None))
        entry.update(FixProposed=proposed, FixedAtOwner=fixed)
    scans = [
        scan(a, r, p, "scanned", None)
        for a in (A1, A2, A3)
        for r in (US, EU)
        for p in (
            "autoscaling-3-asg-launch-configuration-imdsv1",
            "autoscaling-9-asg-uses-launch-configuration",
        )
        if (a, r) != (A3, EU)
    ] + PROBLEMS
    return {
        "SchemaVersion": 2,
        "Runs": runs,
        "Scans": scans,
        "Groups": GROUPS,
        "Problems": PROBLEMS,
    }


def test_the_hand_built_summary_is_in_the_schema():
    summary = estate()
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(summary), key=str)
    assert errors == []
    # and the schema can fail: a count of 0 where it was not measured would pass, but
    # not a text
    broken = estate()
    broken["Runs"][0]["Totals"]["NonCompliant"] = "unknown"
    assert list(Draft202012Validator(SCHEMA).iter_errors(broken))


# ---- Chromium ---------------------------------------------------------------------------

SELF_CHECK = """<script>(function () {
  function name(el) {
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " +
      JSON.stringify((el.textContent || "").trim().slice(0, 50));
  }
  var width = document.documentElement.clientWidth, report = {width: width,
    overflowing: [], outside: [], svgOutside: [], svgOverlapping: [], sorted: {}, filtered: {}};
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") return;
    var box = el.getBoundingClientRect();
    if (!box.width && !box.height) return;
    if (el.clientWidth && el.scrollWidth > el.clientWidth + 1) report.overflowing.push(name(el));
    if (box.right > width + 0.5 || box.left < -0.5) report.outside.push(name(el));
  });
  if (document.documentElement.scrollWidth > width) report.overflowing.push("the page");
  document.querySelectorAll("svg").forEach(function (svg) {
    var view = svg.getBoundingClientRect(), boxes = [];
    svg.querySelectorAll("text").forEach(function (text) {
      var b = text.getBoundingClientRect();
      if (b.left < view.left - 0.5 || b.top < view.top - 0.5 || b.right > view.right + 0.5 ||
          b.bottom > view.bottom + 0.5) report.svgOutside.push(text.textContent);
      boxes.forEach(function (other) {  // a label over another cannot be read
        if (b.left < other[0].right && other[0].left < b.right && b.top < other[0].bottom &&
            other[0].top < b.bottom) report.svgOverlapping.push([other[1], text.textContent]);
      });
      boxes.push([b, text.textContent]);
    });
  });
  report.resources = performance.getEntriesByType("resource").map(function (e) {
    return e.name; });
  function shown(table) {
    return Array.prototype.filter.call(table.tBodies[0].rows, function (row) {
      return row.getBoundingClientRect().height > 0; }).map(function (row) {
      return row.cells[2].textContent; });
  }
  function filter(table, text) {
    var input = table.previousElementSibling.querySelector("input.filter");
    input.value = text; input.dispatchEvent(new Event("input"));
    return {rows: shown(table), count: table.previousElementSibling.textContent};
  }
  var groups = document.getElementById("t-non-compliant");
  report.filtered.img = filter(groups, "IMG SRC");
  report.filtered.nothing = filter(groups, "no such group");
  report.filtered.all = filter(groups, "");
  ["t-non-compliant", "t-held-back"].forEach(function (id) {
    var table = document.getElementById(id), orders = [];
    var button = table.tHead.rows[0].cells[id === "t-held-back" ? 5 : 2].querySelector("button");
    button.click(); orders.push(shown(table));
    button.click(); orders.push(shown(table));
    report.sorted[id] = orders;
  });
  var out = document.createElement("pre");
  out.id = "self-check"; out.hidden = true; out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
})();</script>"""

FRAME = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="frame" style="display:block;border:0;width:%dpx;height:%dpx" srcdoc="%s">
</iframe><textarea id="dom"></textarea><script>
var frame = document.getElementById("frame");
function copy() {
  document.getElementById("dom").textContent = frame.contentDocument.documentElement.outerHTML;
}
if (frame.contentDocument && frame.contentDocument.getElementById("self-check")) copy();
else frame.addEventListener("load", copy);
</script></body></html>"""


FRAMED = (390, 820, 1280)  # a phone, a tablet, a laptop (Chromium's window: >= 500 px)
# A dialog (alert(1) run by an injected handler) would hold headless Chromium forever:
# the copies opened record it on the page instead.
DIALOG_TRAP = (
    "<head><script>window.alert = window.confirm = window.prompt = function (m) "
    "{ document.documentElement.setAttribute('data-dialog', String(m)); };</script>"
)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """{width: (DOM root, self-check report)} of the page at 1400 px and, framed, at
    FRAMED widths; "no-script": the DOM of a copy that may run no script; "one-run": of
    a summary of one run; "folder": where the files lie - dashboard.html as rendered,
    and screenshots of it (before the self-check sorted and filtered): dashboard-1400.png,
    and dashboard-390.png (the phone's frame, its whole height, in a 500 px window)."""
    folder = tmp_path_factory.mktemp("dashboard")
    rendered = dashboard.render_html(estate())
    page = rendered.replace("<head>", DIALOG_TRAP, 1)
    checked = page.replace("</body>", SELF_CHECK + "</body>")
    assert checked.count(SELF_CHECK) == 1 and page.count(DIALOG_TRAP) == 1
    one_run = estate()
    one_run["Runs"] = one_run["Runs"][-1:]
    assert list(Draft202012Validator(SCHEMA).iter_errors(one_run)) == []
    files = {
        "dashboard": rendered,
        "shown": page,
        "check": checked,
        "phone": FRAME % (390, 2400, escape(page)),
        # --dump-dom itself needs JavaScript: the copy's policy forbids only its scripts
        "no-script": rendered.replace(
            "<head>",
            "<head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'\">",
            1,
        ),
        "one-run": dashboard.render_html(one_run).replace("<head>", DIALOG_TRAP, 1),
    }
    # the frames are as high as a phone's screen; their scroll bars take no room
    files.update(("check-%d" % w, FRAME % (w, 844, escape(checked))) for w in FRAMED)
    for name, text in files.items():
        (folder / (name + ".html")).write_text(text, encoding="utf-8")
    framed = ("--hide-scrollbars",)
    jobs = [
        ("shown", 1400, ("--screenshot=%s" % (folder / "dashboard-1400.png"),)),
        ("phone", 500, framed + ("--screenshot=%s" % (folder / "dashboard-390.png"),)),
        ("check", 1400, ()),
        ("no-script", 1400, ()),
        ("one-run", 1400, ()),
    ] + [("check-%d" % w, max(500, w), framed) for w in FRAMED]
    doms = dict(
        zip(
            [j[0] for j in jobs],
            chromium(*[(folder / (name + ".html"), width, extra) for name, width, extra in jobs]),
        )
    )
    found = {
        "folder": folder,
        "no-script": Dom(doms["no-script"]).root,
        "one-run": Dom(doms["one-run"]).root,
    }
    for width, name in [(1400, "check")] + [(w, "check-%d" % w) for w in FRAMED]:
        root = Dom(doms[name]).root
        if width in FRAMED:
            inner = root.find("dom")
            assert inner is not None and inner.children, "the %d px frame did not load" % width
            root = Dom("".join(inner.children)).root
        check = root.find("self-check")
        assert check is not None, "the self-check did not run at %d px" % width
        found[width] = (root, json.loads("".join(check.children)))
    return found


WIDTHS = pytest.mark.parametrize("width", [1400, 390])


@pytest.mark.parametrize("width", (1400,) + FRAMED)
def test_the_page_fits_its_screen_and_loads_nothing(pages, width):
    root, report = pages[width]
    # at 1400 px, less the desktop's scroll bar; framed, the scroll bars take no room
    assert 1380 <= report["width"] <= 1400 if width == 1400 else report["width"] == width
    assert (report["overflowing"], report["outside"]) == ([], [])
    assert (report["svgOutside"], report["svgOverlapping"]) == ([], [])
    assert report["resources"] == []
    assert not [
        e.tag
        for e in root.iter()
        if e.tag in ("link", "img", "iframe", "object")
        or "src" in e.attrs
        or not e.attrs.get("href", "#").startswith("#")
    ]


@WIDTHS
def test_headline_share_per_control(pages, width):
    root, _ = pages[width]
    cards = {
        e.attrs["data-control"]: e
        for e in root.find("headline").all("div")
        if "data-control" in e.attrs
    }
    assert list(cards) == [AS3, AS9, EC2_170, EC2_8, CUSTOM]

    def shown(control):
        card = cards[control]
        return tuple(
            next(p for p in card.all("p") if cls in p.attrs.get("class", "")).text()
            for cls in ("share", "of", "delta")
        )

    since = "since " + RUNS[1]
    assert shown(AS3) == ("86.1%", "31 of 36 groups compliant", "\u25b2 16.1 pp " + since)
    assert shown(AS9) == ("61.1%", "22 of 36 groups compliant", "\u25b2 21.1 pp " + since)
    assert shown(EC2_170) == ("80.0%", "16 of 20 groups compliant", "\u25bc 7.5 pp " + since)
    assert shown(EC2_8) == (DASH, "not measured in this run", DASH + " not measured in this run")
    assert "0 of" not in cards[EC2_8].text() and "0.0%" not in cards[EC2_8].text()
    assert shown(CUSTOM) == shown(EC2_8)  # not in the previous run either


@WIDTHS
def test_accounts_by_control_coloured_by_state(pages, width):
    root, _ = pages[width]
    headers = [th.text() for th in root.find("accounts-table").all("th")]
    assert headers == ["Account", AS3, AS9, EC2_170, EC2_8, CUSTOM]
    rows = {row[0][0]: row[1:] for row in cells(root, "accounts-table")}
    assert list(rows) == [
        "payments-prod " + A1,
        LONG_ACCOUNT + " " + A2,
        " ".join(DDE.split()) + " " + A3,
    ]
    compliant, open_ = "st-compliant", "st-non-compliant"
    assert rows["payments-prod " + A1] == [
        ("compliant", compliant),
        ("8 non-compliant", open_),
        ("4 non-compliant", open_),
        ("unreadable us-east-1: unreadable", "st-unreadable"),
        (DASH, "st-none"),
    ]
    assert (
        rows[LONG_ACCOUNT + " " + A2]
        == [
            ("5 non-compliant", open_),
            ("6 non-compliant", open_),
            ("0 non-compliant eu-west-1: errored", "st-errored"),
        ]
        + [(DASH, "st-none")] * 2
    )
    assert (
        list(rows.values())[2]
        == [("0 non-compliant eu-west-1: not scanned", "st-not-scanned")] * 3
        + [(DASH, "st-none")] * 2
    )


@WIDTHS
def test_trend_shows_the_remediation(pages, width):
    root, _ = pages[width]
    chart = root.find("trend-chart")
    points = {}
    for text in chart.all("text"):
        if text.attrs.get("class") == "point":
            points.setdefault(text.attrs["data-series"], []).append(int(text.text()))
    assert points == {"NonCompliant": [36, 26, 18], "Remediated": [10, 8, 0]}
    runs = [t.text() for t in chart.all("text") if t.attrs.get("class") == "run"]
    assert runs == ["2024-05-06 06:00 UTC", "2024-05-13 06:00 UTC", "2024-05-20 06:00 UTC"]
    ticks = [int(t.text()) for t in chart.all("text") if t.attrs.get("class") == "tick"]
    assert ticks == [0, 10, 20, 30, 40]
    assert column(root, "t-trend", 4) == ["36", "26", "18"]
    assert column(root, "t-trend", 6) == ["10", "8", "0"]


@WIDTHS
def test_per_account_chart_counts_what_the_runs_remediated(pages, width):
    root, _ = pages[width]
    accounts = [e for e in root.find("account-chart").all("div") if e.attrs.get("class") == "acct"]
    shown = {
        a.attrs["data-account"]: {
            bar.attrs["data-series"]: bar.all("span")[-1].text()
            for bar in a.all("div")
            if bar.attrs.get("class") == "bar-row"
        }
        for a in accounts
    }
    assert list(shown) == [A1, A2, A3]  # the most to fix first
    assert shown == {
        A1: {"b-nc-first": "20", "b-nc": "12", "b-rem": "8"},
        A2: {"b-nc-first": "10", "b-nc": "6", "b-rem": "4"},
        A3: {"b-nc-first": "6", "b-nc": "0", "b-rem": "6"},
    }
    # the full names, not cut at 24 characters
    assert [a.all("div")[1].text() for a in accounts] == [
        "payments-prod " + A1,
        LONG_ACCOUNT + " " + A2,
        " ".join(DDE.split()) + " " + A3,
    ]


@WIDTHS
def test_drill_down_lists_every_group_and_scan(pages, width):
    root, _ = pages[width]

    def table(table_id):  # in the page's order (the self-check sorted some tables)
        rows = [[text for text, _ in row] for row in cells(root, table_id)]
        return sorted(rows, key=lambda r: [g["Group"] for g in GROUPS].index(r[2]))

    assert [(r[2], r[4], r[5]) for r in table("t-non-compliant")] == [
        ("checkout-api-blue", "launch template", "team-payments@example.com"),
        (LONG_GROUP, "launch configuration", "data-eng"),
        (IMG, "launch configuration", FORMULA),
        ("mixed-fleet", "mixed instances policy", DASH),
        ("legacy-reporting", "unknown", DASH),
    ]  # only where the type truly is unknown
    assert [(r[2], r[5], r[6]) for r in table("t-held-back")] == [
        (ONE_WORD, "1234 in 14 days", "ops|oncall\\nsecond line"),  # newline written out
        (LINK, "7 in 14 days", "ml-team"),
    ]
    assert [(r[2], r[4], r[5]) for r in table("t-exempt")] == [
        ("vendor-appliance", "+vendor agent needs IMDSv1", "2025-01-31"),
        ("lab-sandbox", "@security approved: ticket SEC-42", "no expiry"),
    ]
    assert [(r[2], r[4], r[5], r[6]) for r in table("t-stack-owned")] == [
        ("orders-asg", "cloudformation:orders-prod-stack", GUIDANCE, "orders-team"),
        ("eks-nodes", "eks-nodegroup:prod-ng-1", GROUPS[10]["Reason"], DASH),
    ]
    assert [(r[2], r[5]) for r in table("t-failed")] == [
        ("broken-sg-group", "-InvalidGroup.NotFound: security group sg-0f00 does not exist")
    ]
    assert root.find("t-remediated").text() == "None."
    problems = [[text for text, _ in row] for row in cells(root, "t-problems")]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in problems] == [
        (
            LONG_ACCOUNT + " " + A2,
            EU,
            "ec2-170-asg-launch-template-imdsv1",
            "errored",
            PROBLEMS[0]["Reason"],
        ),
        (" ".join(DDE.split()) + " " + A3, EU, DASH, "not scanned", PROBLEMS[1]["Reason"]),
        (
            "payments-prod " + A1,
            US,
            "ec2-8-asg-instances-imdsv1",
            "unreadable",
            PROBLEMS[2]["Reason"],
        ),
    ]
    assert (
        root.find("alert")
        .text()
        .startswith(
            "3 scan(s) did not complete in this run (1 errored, 1 not scanned, 1 unreadable)"
        )
    )
    # the launch-template groups show their type; no "Unknown type" anywhere
    assert "Unknown type" not in root.text()
    lt = next(
        r
        for r in cells(root, "t-figures")
        if r[2][0] == EC2_170 and r[1][0] == US and r[0][0].endswith(A1)
    )
    headers = [th.text() for th in root.find("t-figures").all("th")]
    assert dict(zip(headers, (text for text, _ in lt)))["LT"] == "2"


@WIDTHS
def test_stack_owned_groups_by_owner_and_what_fixes_them(pages, width):
    root, _ = pages[width]
    owners_ = [[text for text, _ in row] for row in cells(root, "t-owners")]
    assert owners_ == [
        ["payments-prod " + A1, "Elastic Beanstalk", "1", "0", "0", "1", "0"],
        ["payments-prod " + A1, "EKS node group", "2", "1", "0", "1", "0"],
        [LONG_ACCOUNT + " " + A2, "CloudFormation", "2", "1", "1", "0", "0"],
        ["All accounts", "CloudFormation", "2", "1", "1", "0", "0"],
        ["All accounts", "Elastic Beanstalk", "1", "0", "0", "1", "0"],
        ["All accounts", "EKS node group", "2", "1", "0", "1", "0"],
    ]
    assert [th.text() for th in root.find("t-owners").all("th")] == [
        "Account",
        "Owner",
        "Groups",
        "Nobody acted",
        "Fix proposed",
        "Fixed at owner, rolling out",
        "Failed",
    ]
    totals = {
        li.attrs["data-figure"]: li.all("strong")[0].text() for li in root.find("totals").all("li")
    }
    assert (totals["StackOwned"], totals["FixProposed"], totals["FixedAtOwner"]) == ("5", "1", "2")
    # a fix on its way is no compliance: the share is the same, and says so
    cards = {
        e.attrs["data-control"]: e
        for e in root.find("headline").all("div")
        if "data-control" in e.attrs
    }
    pending = {
        c: [p.text() for p in card.all("p") if p.attrs.get("class") == "pending"]
        for c, card in cards.items()
    }
    assert pending == {
        AS3: ["still failing: 1 with a change set to execute, 1 rolling out at their owner"],
        AS9: [],
        EC2_170: ["still failing: 1 rolling out at their owner"],
        EC2_8: [],
        CUSTOM: [],
    }
    assert "86.1%" in cards[AS3].text()

    (proposed,) = [[text for text, _ in row] for row in cells(root, "t-fix-proposed")]
    assert proposed[2:] == [
        "cart-asg",
        AS3,
        "cloudformation:" + STACK,
        CHANGE_SET,
        EXECUTE,
        "cart-team",
    ]
    (code,) = root.find("t-fix-proposed").all("code")  # the command, as text to copy
    assert code.text() == EXECUTE
    fixed = sorted(
        ([text for text, _ in row] for row in cells(root, "t-fixed-at-owner")), key=lambda r: r[2]
    )
    assert [r[2:6] for r in fixed] == [
        [
            "gpu-nodes",
            EC2_170,
            "eks-nodegroup:" + NODEGROUP,
            "set-nodegroup-metadata-access (already in place)",
        ],
        ["shop-web", AS3, "elasticbeanstalk:shop-prod", "disable-beanstalk-imdsv1 (applied)"],
    ]
    assert fixed[0][6] == "node group update %s of %s" % (UPDATE, NODEGROUP)
    assert fixed[1][7] == (
        "aws elasticbeanstalk describe-environments --region eu-west-1 "
        "--environment-names shop-prod"
    )
    next_steps = {r[2][0]: r[7][0] for r in cells(root, "t-stack-owned")}
    assert next_steps == {
        "orders-asg": "run create-stack-change-set (not run yet)",
        "eks-nodes": DASH,
    }  # a summary without a fix: nothing invented
    headings = [h.text() for h in root.find("groups").all("h3")]
    assert headings == [
        "Non-compliant (5)",
        "Held back: instances still call IMDSv1 (2)",
        "Exempt (2)",
        "Owned by a stack (2)",
        "Fix proposed: a change set to execute (1)",
        "Fixed at the owner, rolling out (2)",
        "Failed (1)",
        "Remediated in this run (0)",
    ]


@WIDTHS
def test_hostile_values_stay_text(pages, width):
    root, _ = pages[width]
    elements = list(root.iter())
    assert not [e.tag for e in elements if e.tag in ("img", "b")]
    assert [e.attrs["href"] for e in elements if e.tag == "a"] == ["#scans"]
    assert not [(e.tag, k) for e in elements for k in e.attrs if k.startswith("on")]
    groups = column(root, "t-non-compliant", 2)
    assert IMG in groups and LINK in column(root, "t-held-back", 2)
    assert FORMULA in column(root, "t-non-compliant", 5)
    assert " ".join(DDE.split()) + " " + A3 in column(root, "accounts-table", 0)
    assert "data-dialog" not in root.all("html")[0].attrs  # no injected handler ran
    # no script but the page's own, the test's dialog trap and self-check
    assert len(root.all("script")) == 3


@WIDTHS
def test_tables_sort_and_filter(pages, width):
    root, report = pages[width]
    assert len([e for e in root.iter() if e.tag == "input"]) == len(root.all("table"))
    filtered = report["filtered"]
    assert filtered["img"] == {"rows": [IMG], "count": "1 of 5 rows"}
    assert filtered["nothing"]["rows"] == [] and len(filtered["all"]["rows"]) == 5
    ascending, descending = report["sorted"]["t-non-compliant"]
    assert ascending == [IMG, "checkout-api-blue", LONG_GROUP, "legacy-reporting", "mixed-fleet"]
    assert descending == ascending[::-1]
    assert report["sorted"]["t-held-back"] == [[LINK, ONE_WORD], [ONE_WORD, LINK]]  # 7, then 1234


def test_screenshots_are_pngs_of_the_window(pages):
    for name, width in (("dashboard-1400.png", 1400), ("dashboard-390.png", 500)):
        data = (pages["folder"] / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        assert struct.unpack(">II", data[16:24]) == (width, 2400), name


def test_without_javascript_the_page_shows_everything(pages):
    root = pages["no-script"]
    assert not root.all("input") and not root.all("button")  # the script did not run
    assert len(cells(root, "t-non-compliant")) == 5 and len(cells(root, "t-problems")) == 3
    assert IMG in column(root, "t-non-compliant", 2)
    assert [
        c.text() for c in root.find("headline").all("p") if "share" in c.attrs.get("class", "")
    ] == ["86.1%", "61.1%", "80.0%", DASH, DASH]


def test_one_run_says_there_is_no_change_yet(pages):
    root = pages["one-run"]
    deltas = [
        p.text() for p in root.find("headline").all("p") if "delta" in p.attrs.get("class", "")
    ]
    assert deltas == [DASH + " first run"] * 5
    assert root.find("trend-chart") is None and "One run" in root.find("trend").text()
    # no earlier run: the account chart shows now and what this run remediated
    assert {
        b.attrs["data-series"]
        for b in root.find("account-chart").all("div")
        if b.attrs.get("class") == "bar-row"
    } == {"b-nc", "b-rem"}


# ---- the other formats ------------------------------------------------------------------

HOSTILE = [
    IMG,
    FORMULA,
    LINK,
    PIPES,
    DDE,
    "+vendor agent needs IMDSv1",
    "@security approved: ticket SEC-42",
    "-InvalidGroup.NotFound",
    "\tx",
    "\rx",
    "`code` *bold* _em_ ~strike~ \\ <https://evil>",
]


def test_csv_cells_never_start_a_formula():
    for value in HOSTILE:
        cell = render.csv_cell(value)
        # a tab or return is written out (\\x09, \\x0d), which starts no formula
        assert cell.startswith("'") == value.startswith(("=", "+", "-", "@"))
        assert cell.lstrip("'") == escape_controls(value)
    assert render.csv_cell(0) == "0" and render.csv_cell(None) == ""
    lines = list(csv.reader(io.StringIO(render.render_csv(estate()))))
    header, body = lines[0], lines[1:]
    assert header[:7] == ["Run", "Account", "AccountName", "Region", "Control", "State", "Scanned"]
    assert {r[0] for r in body} == {RUNS[2]}  # the latest run only
    assert len(body) == len(latest_rows()) + 1 and body[-1][1] == "(all)"
    assert not [c for r in body for c in r if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'" + DDE in [r[2] for r in body]
    by = {(r[1], r[3], r[4]): dict(zip(header, r)) for r in body}
    assert by[(A2, EU, EC2_170)]["State"] == "errored"
    assert by[(A2, EU, EC2_170)]["NonCompliant"] == ""  # not measured: empty, not 0
    assert by[(A1, US, EC2_170)]["NonCompliant:" + LT] == "2"


def test_markdown_keeps_hostile_values_literal():
    for value in HOSTILE:
        escaped = render.markdown(value)
        assert "\n" not in escaped and "\r" not in escaped and "<" not in escaped
        assert not re.search(r"(?<!\\)[|`*_\[\]~]", escaped.replace("\\\\", "")), escaped
    text = render.render_markdown(estate())
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" not in text  # parentheses are not special
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "\\[x\\](javascript:alert(1))" in text and "ops\\|oncall\\\\nsecond line" in text
    for table in re.split(r"\n\n", text):
        lines = [line for line in table.splitlines() if line.startswith("|")]
        columns = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(columns) <= 1, table  # no value broke or added a column
    assert "<" not in text.replace("&lt;", "")


def test_table_and_json():
    summary = estate()
    text = render.render_table(summary)
    assert "\r" not in text and "\t" not in text
    assert [line for line in text.splitlines() if ONE_WORD in line][0].count(
        "ops|oncall\\nsecond line"
    ) == 1
    assert re.search(
        r"^%s\s+86\.1%%\s+31 of 36 groups compliant\s+\u25B2 16\.1 pp" % AS3, text, re.M
    )
    assert re.search(r"^payments-prod \(%s\)\s+compliant\s+8 non-compliant" % A1, text, re.M)
    assert re.search(
        r"^%s \(%s\)\s+%s\s+EC2\.170\s+errored\s+%s\s+%s" % (LONG_ACCOUNT, A2, EU, DASH, DASH),
        text,
        re.M,
    )
    out = render.render_json(summary)
    assert json.loads(out) == summary
    # written as it is read, so that an organisation's lists never sit in memory: keys
    # sorted, each item of a list on a line of its own
    lines = out.splitlines()
    groups = [line for line in lines if '"Group":' in line]
    assert [json.loads(line.strip().rstrip(",")) for line in groups] == summary["Groups"]
    assert all(line.startswith("    {") for line in groups)
    assert (lines[0], lines[-2], lines[-1]) == ("{", '  "SchemaVersion": 2', "}")


def test_long_lists_are_cut_and_say_where_the_full_ones_are():
    # an organisation: 250 accounts, 300 non-compliant groups, 500 held back, 1,000 rows
    summary = estate()
    latest = summary["Runs"][-1]
    accounts = ["%012d" % (500000000000 + n) for n in range(250)]
    NAMES.update({a: "acct-%d" % n for n, a in enumerate(accounts)})
    try:
        latest["Accounts"] = [
            dict(figures(n % 7, scanned=10), Account=a, AccountName=NAMES[a])
            for n, a in enumerate(accounts)
        ]
        latest["Rows"] = [
            row(a, r, c, (n * 3) % 11, scanned=20)
            for n, (a, r, c) in enumerate(
                (a, r, c) for a in accounts for r in (US, EU) for c in (AS3, AS9)
            )
        ]
        summary["Groups"] = [
            group(a, US, "g-%d" % n, AS3, "non-compliant", LC)
            for n, a in enumerate(accounts + accounts[:50])
        ] + [
            group(accounts[n % 250], EU, "busy-%d" % n, AS3, "held-back", LC, Calls=n, Days=14)
            for n in range(500)
        ]
        page = dashboard.render_html(summary)
    finally:
        for a in accounts:
            NAMES.pop(a)
    top = dashboard.TOP
    assert (
        len(
            re.findall(
                r"<tr><td data-label=\"Account\"",
                page.split('id="t-non-compliant"')[1].split("</table>")[0],
            )
        )
        == top
    )
    assert "Non-compliant (300)" in page
    assert "The %d of 300 groups; the full list is in the JSON summary" % top in page
    held = page.split('id="t-held-back"')[1].split("</table>")[0]
    calls = [int(c) for c in re.findall(r'data-label="IMDSv1 calls" data-sort="(\d+)"', held)]
    assert calls == list(range(499, 499 - top, -1))  # most calls first
    assert "The %d of 500 groups with most IMDSv1 calls" % top in page
    figures_rows = page.split('id="t-figures"')[1].split("</table>")[0].count("<tr>") - 1
    assert figures_rows == dashboard.TOP_ROWS
    assert "The %d of 1000 rows with most non-compliant groups" % dashboard.TOP_ROWS in page
    assert "--format csv</code>: one line per account, region and control" in page
    assert "The %d of 250 accounts with most non-compliant groups" % top in page
