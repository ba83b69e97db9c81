"""Renderers for `c7n-imds summary`: a terminal table, CSV, JSON and Markdown here, and
the figures they share with the HTML page (``c7n_imds.summary.dashboard``), so that every
format says the same.

They take the summary ``c7n_imds.summary.aggregate.summarize`` builds (the shape of
schema.json). A count that is null was not measured and is written as an en dash (an
empty cell in CSV), never as 0: a scan that failed must not read as a compliant one.
Every value that comes from an account - group, account, stack and policy names, tag
values, owners, reasons, folder names - is whatever the account's owner typed, so each
format escapes it for what it is: no control characters in a terminal, no table, link or
markup in Markdown, no formula in a spreadsheet.
"""
import csv
import html
import io
import json
import math
import re

from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds.names import LAUNCH_TEMPLATE as LT
from c7n_imds.names import MIXED_INSTANCES_POLICY as MIXED
from c7n_imds.summary.aggregate import OWNER_KINDS, UNKNOWN

DASH = "\u2013"  # not measured
# Security Hub's controls, in the README's order, with what they judge.
CONTROLS = {"AutoScaling.3": "launch configurations should require IMDSv2",
            "AutoScaling.9": "groups should use launch templates",
            "EC2.170": "launch templates should require IMDSv2",
            "EC2.8": "instances should require IMDSv2"}
STATE_LABELS = {"scanned": "scanned", "errored": "errored", "unreadable": "unreadable",
                "not-scanned": "not scanned"}
# The worst first: a region that errored hides more than one that was never expected.
MISSING_ORDER = ("errored", "unreadable", "not-scanned")
GROUP_STATE_LABELS = {"non-compliant": "non-compliant", "held-back": "held back",
                      "exempt": "exempt", "stack-owned": "stack-owned",
                      "fix-proposed": "fix proposed (change set)",
                      "fixed-at-owner": "fixed at owner, rolling out", "failed": "failed",
                      "remediated": "remediated"}
OWNER_LABELS = {"cloudformation": "CloudFormation", "elasticbeanstalk": "Elastic Beanstalk",
                "eks-nodegroup": "EKS node group", UNKNOWN: "owner not named"}
# The columns of the stack-owned counts (aggregate.by_owner), as every format heads them.
OWNER_COUNTS = [("Groups", "Groups"), ("NotActed", "Nobody acted"),
                ("FixProposed", "Fix proposed"),
                ("FixedAtOwner", "Fixed at owner, rolling out"), ("Failed", "Failed")]
LAUNCH_LABELS = {LC: "launch configuration", LT: "launch template",
                 MIXED: "mixed instances policy"}
BY_TYPE = (LC, LT, MIXED, UNKNOWN)
FIGURES = [("NonCompliant", "Non-compliant"), (LC, "LC"), (LT, "LT"), (MIXED, "Mixed"),
           (UNKNOWN, "Launch type unknown"), ("LaunchConfigurations", "Launch configs"),
           ("Remediated", "Remediated"), ("HeldBack", "Held back (IMDSv1 use)"),
           ("Exempt", "Exempt"), ("LeftToStack", "Left to stack"), ("Failed", "Failed")]
# (stack-owned groups have their own table, by account and owner: owners_table)
TREND_FIGURES = [("Scanned", "Scanned"), ("NonCompliant", "Non-compliant"),
                 ("LaunchConfigurations", "Launch configs"), ("Remediated", "Remediated"),
                 ("HeldBack", "Held back (IMDSv1 use)"), ("Exempt", "Exempt"),
                 ("LeftToStack", "Left to stack"), ("Failed", "Failed"),
                 ("StackOwned", "Stack-owned"), ("FixProposed", "Fix proposed"),
                 ("FixedAtOwner", "Fixed at owner")]
# Line breaks, other control characters and the marks that reorder text (a name can
# otherwise start a new table line, or show as something it is not).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


# ---- escaping, per format --------------------------------------------------------------

def plain(value):
    """One line of text: control characters (newlines included) become spaces."""
    return CONTROL_CHARACTERS.sub(" ", str(value))


def markdown(value):
    """Literal text in a Markdown table cell: no column break, code, emphasis, link or
    HTML (``<``, ``>``, ``&`` as entities, so ``<https://...>`` is no autolink either)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(plain(value), quote=False))


def csv_cell(value):
    """A spreadsheet shows a cell starting with = + - @ (or a tab or return) as a
    formula's result; a leading ' makes it text (OWASP's CSV injection advice)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_START) else text


# ---- what every format shows ------------------------------------------------------------

def count(value):
    return DASH if value is None else value


def launch_label(launch_type):
    return UNKNOWN if launch_type is None else LAUNCH_LABELS.get(launch_type, launch_type)


def display_account(record):
    return "%s (%s)" % (record["AccountName"], record["Account"]) if record.get(
        "AccountName") else record["Account"]


def figure_columns(run):
    """The figures of a run's rows; unknown launch types only when there are some."""
    unknown = any(UNKNOWN in (r.get("NonCompliantByLaunchType") or {}) for r in run["Rows"])
    return [(k, label) for k, label in FIGURES if k != UNKNOWN or unknown]


def figure(record, key):
    """A count of a row, account or total; None when not measured."""
    if key not in BY_TYPE:
        return record.get(key)
    if record.get("NonCompliant") is None:
        return None
    return (record.get("NonCompliantByLaunchType") or {}).get(key, 0)


def problems(summary):
    """Scans of the latest run that did not complete (their groups are not counted):
    the Problems, and any other scan whose state is not scanned."""
    seen, found = set(), []
    for scan in summary["Problems"] + [s for s in summary["Scans"] if s["State"] != "scanned"]:
        key = tuple(scan.get(k) for k in ("Account", "Region", "Policy", "State"))
        if key not in seen:
            seen.add(key)
            found.append(scan)
    return found


def owner_label(kind):
    return OWNER_LABELS.get(kind, kind)


def owner_figure(record, kind, key="Groups"):
    """A stack-owned count of one owner kind; None when not measured."""
    if record.get("StackOwned") is None:
        return None
    return ((record.get("StackOwnedByOwner") or {}).get(kind) or {}).get(key, 0)


def owner_rows(run):
    """(label, record, owner kind, counts) of the stack-owned groups: per account each
    owner kind it has groups of, then all accounts per owner kind (the three always,
    so that none reads as not looked for)."""
    found = []
    for record in run["Accounts"]:
        for kind, counts in (record.get("StackOwnedByOwner") or {}).items():
            if counts.get("Groups"):
                found.append((display_account(record), record, kind, counts))
    totals = run["Totals"]
    if totals.get("StackOwned") is not None:
        by = totals.get("StackOwnedByOwner") or {}
        for kind in list(OWNER_KINDS) + [k for k in by if k not in OWNER_KINDS]:
            found.append(("All accounts", None, kind, by.get(kind) or {}))
    return found


def owners_table(run):
    headers = ["Account", "Owner"] + [label for _, label in OWNER_COUNTS]
    return headers, [[label, owner_label(kind)] + [counts.get(k, 0) for k, _ in OWNER_COUNTS]
                     for label, _, kind, counts in owner_rows(run)]


def fix_text(group):
    """What fixes a group at its owner, or what was done there, in one line."""
    fix = group.get("Fix")
    if not fix:
        return DASH
    status, action = fix.get("Status"), fix.get("Action") or "its owner's action"
    if status == "not-run":
        return "run %s (not run yet)" % action
    if status == "skipped":
        return "%s left it: %s" % (action, fix.get("Detail") or DASH)
    if status == "proposed":
        return "change set %s on stack %s, not executed yet: %s" % (
            fix.get("ChangeSetName") or DASH, fix.get("StackName") or DASH,
            fix.get("Command") or fix.get("Detail") or DASH)
    if status in ("applied", "already-applied"):
        return "%s %s; waiting for %s%s" % (
            action, "applied" if status == "applied" else "already in place",
            fix.get("Pending") or DASH,
            "; follow it: %s" % fix["Command"] if fix.get("Command") else "")
    return "%s %s: %s" % (action, status, fix.get("Detail") or DASH)


def group_detail(group):
    """Why a group is listed, in one line: its IMDSv1 calls, exemption, stack or failure."""
    state = group["State"]
    if state == "held-back" and group.get("Calls") is not None:
        return "%d IMDSv1 call(s)%s" % (group["Calls"], "" if group.get("Days") is None
                                        else " in %d days" % group["Days"])
    if state == "exempt":
        return "%s (%s)" % (group.get("Reason") or "no reason given",
                            "until %s" % group["Until"] if group.get("Until") else "no expiry")
    if state == "stack-owned":
        # the owner's action that left it says what fixes it, instead of the guidance
        skipped = (group.get("Fix") or {}).get("Status") == "skipped"
        return "%s: %s" % (group.get("Stack") or "a stack", "; ".join(
            ([("next: " + fix_text(group))] if group.get("Fix") else []) +
            ([] if skipped else [group.get("Reason") or DASH])))
    if state in ("fix-proposed", "fixed-at-owner"):
        return "%s: %s" % (group.get("Stack") or "a stack", fix_text(group))
    return group.get("Reason") or ""


def percent(share):
    # rounded down, so that 99.96 % with a group still open never reads as 100 %
    return DASH if share is None else "%.1f%%" % (math.floor(round(share * 1000, 6)) / 10)


def headlines(runs):
    """Per control (the pack's four, then any other the run names): the share of groups
    compliant now, and its change since the previous run in percentage points (None
    where either run did not measure it)."""
    latest = {c["Control"]: c for c in runs[-1]["Controls"]}
    before = {c["Control"]: c for c in runs[-2]["Controls"]} if len(runs) > 1 else {}

    def share_of(counts):
        # from the counts where they are known: a share rounded up reads as fixed
        if counts.get("InScope") and counts.get("NonCompliant") is not None:
            return (counts["InScope"] - counts["NonCompliant"]) / counts["InScope"]
        return counts.get("CompliantShare")
    found = []
    for control in list(CONTROLS) + [c for c in latest if c not in CONTROLS]:
        now, then = latest.get(control) or {}, before.get(control) or {}
        share, previous = share_of(now), share_of(then)
        found.append(dict(
            Control=control, Title=CONTROLS.get(control, ""), Share=share,
            InScope=now.get("InScope"), NonCompliant=now.get("NonCompliant"),
            FixProposed=now.get("FixProposed"), FixedAtOwner=now.get("FixedAtOwner"),
            Points=None if share is None or previous is None else round(
                (share - previous) * 100, 1)))
    return found


def change(headline, runs):
    """The change of a headline share, in words: what a reader sees."""
    if len(runs) < 2:
        return "%s first run" % DASH
    if headline["Points"] is None:
        return "%s not measured in %s" % (DASH, "this run" if headline["Share"] is None
                                          else "the previous run")
    if not headline["Points"]:
        return "no change since %s" % runs[-2]["Run"]
    return "%s %.1f pp since %s" % ("\u25B2" if headline["Points"] > 0 else "\u25BC",
                                    abs(headline["Points"]), runs[-2]["Run"])


def compliant_of(headline):
    if headline["InScope"] is None or headline["NonCompliant"] is None:
        return "not measured in this run"
    return "%d of %d groups compliant" % (headline["InScope"] - headline["NonCompliant"],
                                          headline["InScope"])


def fixes_pending(headline):
    """The non-compliant groups of a control whose fix is on its way at their owner -
    still counted as failing - in words; "" when none."""
    parts = [text % n for text, n in (
        ("%d with a change set to execute", headline.get("FixProposed")),
        ("%d rolling out at their owner", headline.get("FixedAtOwner"))) if n]
    return "still failing: %s" % ", ".join(parts) if parts else ""


def account_cells(run):
    """The controls, and per account its record and one cell per control: over its
    regions, the state (compliant, non-compliant, or the worst of the regions not
    scanned), the non-compliant groups where scanned, and the regions not scanned;
    None where no policy judged the control in that account."""
    seen = [r["Control"] for r in run["Rows"]] + [c["Control"] for c in run["Controls"]]
    controls = list(CONTROLS) + sorted({c for c in seen if c not in CONTROLS})
    rows, accounts = {}, {}
    for record in run["Accounts"] + run["Rows"]:
        accounts.setdefault(record["Account"], record)
    for r in run["Rows"]:
        rows.setdefault((r["Account"], r["Control"]), []).append(r)
    table = []
    for account, record in accounts.items():
        cells = []
        for control in controls:
            these = rows.get((account, control))
            counts = [r["NonCompliant"] for r in these or () if r["State"] == "scanned"
                      and r["NonCompliant"] is not None]
            missing = sorted(((r["Region"], r["State"]) for r in these or ()
                              if r["State"] != "scanned"), key=lambda m: (
                MISSING_ORDER.index(m[1]) if m[1] in MISSING_ORDER else 0, m[0]))
            state = "non-compliant" if sum(counts) else missing[0][1] if missing else \
                "compliant" if counts else None
            cells.append(dict(State=state, NonCompliant=sum(counts) if counts else None,
                              Missing=missing) if these and state else None)
        table.append((record, cells))
    return controls, table


def cell_text(cell):
    """A cell of account_cells as words, and the regions not scanned, each a line."""
    if not cell:
        return DASH, []
    missing = ["%s: %s" % (region, STATE_LABELS.get(s, s)) for region, s in cell["Missing"]]
    if cell["NonCompliant"] is None:
        return STATE_LABELS.get(cell["State"], cell["State"]), missing
    if cell["State"] == "compliant":
        return "compliant", missing
    return "%d non-compliant" % cell["NonCompliant"], missing


def rows_table(run):
    columns = figure_columns(run)
    headers = ["Account", "Region", "Control", "State", "Scanned"] + [c[1] for c in columns]
    body = [[display_account(r), r["Region"], r["Control"],
             STATE_LABELS.get(r["State"], r["State"]), count(r.get("Scanned"))] +
            [count(figure(r, k)) for k, _ in columns] for r in run["Rows"]]
    totals = run["Totals"]
    body.append(["Total: %d account(s)" % totals["Accounts"], "%d region(s)" % totals["Regions"],
                 "all", "", count(totals.get("Scanned"))] +
                [count(figure(totals, k)) for k, _ in columns])
    return headers, body


def trend_table(summary):
    headers = ["Run", "Folders", "Accounts", "Regions"] + [c[1] for c in TREND_FIGURES]
    body = [[run["Run"], ", ".join(run["Folders"]), run["Totals"]["Accounts"],
             run["Totals"]["Regions"]] + [count(run["Totals"].get(k)) for k, _ in TREND_FIGURES]
            for run in summary["Runs"]]
    return headers, body


def problems_table(summary):
    headers = ["Account", "Region", "Policy", "State", "Reason"]
    return headers, [[display_account(s), s["Region"], s["Policy"] or DASH,
                      STATE_LABELS.get(s["State"], s["State"]), s["Reason"] or DASH]
                     for s in problems(summary)]


def groups_table(summary):
    headers = ["Account", "Region", "Group", "Control", "State", "Launch type", "Owner",
               "Detail"]
    return headers, [[display_account(g), g["Region"], g["Group"], g["Control"],
                      GROUP_STATE_LABELS.get(g["State"], g["State"]),
                      launch_label(g["LaunchType"]), g.get("Owner") or DASH, group_detail(g)]
                     for g in summary["Groups"]]


# ---- the formats --------------------------------------------------------------------------

def render_text(summary, tablefmt, escape):
    from tabulate import tabulate
    latest = summary["Runs"][-1]
    title, section = ("# ", "## ") if tablefmt == "pipe" else ("", "")

    def table(headers, body, text_columns):
        # names stay text (no number parsing); the figures align right
        return tabulate([[escape(c) for c in row] for row in body],
                        [escape(h) for h in headers], tablefmt=tablefmt,
                        disable_numparse=True, colalign=["left"] * text_columns +
                        ["right"] * (len(headers) - text_columns))
    controls, accounts = account_cells(latest)
    out = ["%sIMDSv2 summary, run of %s (%s)" % (
        title, escape(latest["Run"]), escape(", ".join(latest["Folders"]))), "",
        table(["Control", "Groups compliant", "", "Change", "Owner fixes on their way"], [
            [h["Control"], percent(h["Share"]), compliant_of(h), change(h, summary["Runs"]),
             fixes_pending(h) or DASH]
            for h in headlines(summary["Runs"])], text_columns=5), "",
        table(["Account"] + controls, [[display_account(record)] + [
            "; ".join([main] + missing) for main, missing in map(cell_text, cells)]
            for record, cells in accounts], text_columns=len(controls) + 1), "",
        table(*rows_table(latest), text_columns=4)]
    headers, body = owners_table(latest)
    if body:
        out += ["", section + "Stack-owned groups by owner (fixed where they are defined)",
                "", table(headers, body, text_columns=2)]
    headers, body = problems_table(summary)
    if body:
        out += ["", section + "Scans not complete (their groups are not counted)", "",
                table(headers, body, text_columns=len(headers))]
    headers, body = groups_table(summary)
    if body:
        out += ["", section + "Groups", "", table(headers, body, text_columns=len(headers))]
    if len(summary["Runs"]) > 1:
        out += ["", section + "Trend", "", table(*trend_table(summary), text_columns=2)]
    return "\n".join(out) + "\n"


def render_table(summary):
    return render_text(summary, "simple", plain)


def render_markdown(summary):
    return render_text(summary, "pipe", markdown)


def render_json(summary):
    """The summary as it is (schema.json), for other tools."""
    return json.dumps(summary, indent=2, sort_keys=True) + "\n"


def render_csv(summary):
    """The latest run's rows (and its totals as the last line, account ``(all)``), one
    column per figure; an empty cell was not measured."""
    run = summary["Runs"][-1]
    columns = [("NonCompliant", "NonCompliant")] + [
        (t, "NonCompliant:" + t) for t in BY_TYPE] + [
        (k, k) for k in ("LaunchConfigurations", "Remediated", "HeldBack", "Exempt",
                         "LeftToStack", "Failed", "StackOwned")] + [
        ("StackOwned:" + kind, "StackOwned:" + kind) for kind in OWNER_KINDS] + [
        (k, k) for k in ("FixProposed", "FixedAtOwner")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Run", "Account", "AccountName", "Region", "Control", "State",
                     "Scanned"] + [name for _, name in columns])
    for r in run["Rows"] + [dict(run["Totals"], Account="(all)", AccountName=None,
                                 Region="(all)", Control="(all)", State=None)]:
        writer.writerow([csv_cell(v) for v in [
            run["Run"], r["Account"], r["AccountName"], r["Region"], r["Control"], r["State"],
            r.get("Scanned")] + [owner_figure(r, k.partition(":")[2]) if k.startswith(
                "StackOwned:") else figure(r, k) for k, _ in columns]])
    return buffer.getvalue()


def render_html(summary):
    """The page (``c7n_imds.summary.dashboard``, which builds on the figures above and
    so is imported only when asked for)."""
    from c7n_imds.summary.dashboard import render_html as page
    return page(summary)


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json,
             "markdown": render_markdown, "html": render_html}
