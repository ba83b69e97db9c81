"""What every format of `c7n-imds summary` shows, so that each says the same: the labels
of controls, states, launch types and figures, a count (an en dash where it was not
measured, never 0: a scan that failed must not read as a compliant one), the headline
share of each control and its change, the account x control cells, and the scans that
did not complete. ``c7n_imds_report.render`` writes them as a table, CSV, JSON or
Markdown, ``c7n_imds_report.dashboard`` as the HTML page; each escapes them for itself.
"""

import math

from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds.names import LAUNCH_TEMPLATE as LT
from c7n_imds.names import MIXED_INSTANCES_POLICY as MIXED
from c7n_imds_report.owners import UNKNOWN

DASH = "\u2013"  # not measured
# Security Hub's controls, in the README's order, with what they judge.
CONTROLS = {
    "AutoScaling.3": "launch configurations should require IMDSv2",
    "AutoScaling.9": "groups should use launch templates",
    "EC2.170": "launch templates should require IMDSv2",
    "EC2.8": "instances should require IMDSv2",
}
STATE_LABELS = {
    "scanned": "scanned",
    "errored": "errored",
    "unreadable": "unreadable",
    "not-scanned": "not scanned",
}
# The worst first: a region that errored hides more than one that was never expected.
MISSING_ORDER = ("errored", "unreadable", "not-scanned")
LAUNCH_LABELS = {LC: "launch configuration", LT: "launch template", MIXED: "mixed instances policy"}
BY_TYPE = (LC, LT, MIXED, UNKNOWN)
FIGURES = [
    ("NonCompliant", "Non-compliant"),
    (LC, "LC"),
    (LT, "LT"),
    (MIXED, "Mixed"),
    (UNKNOWN, "Launch type unknown"),
    ("LaunchConfigurations", "Launch configs"),
    ("Remediated", "Remediated"),
    ("HeldBack", "Held back (IMDSv1 use)"),
    ("Exempt", "Exempt"),
    ("LeftToStack", "Left to stack"),
    ("Failed", "Failed"),
]
# (stack-owned groups have their own table, by account and owner: stack_owned.owners_table)
TREND_FIGURES = [
    ("Scanned", "Scanned"),
    ("NonCompliant", "Non-compliant"),
    ("LaunchConfigurations", "Launch configs"),
    ("Remediated", "Remediated"),
    ("HeldBack", "Held back (IMDSv1 use)"),
    ("Exempt", "Exempt"),
    ("LeftToStack", "Left to stack"),
    ("Failed", "Failed"),
    ("StackOwned", "Stack-owned"),
    ("FixProposed", "Fix proposed"),
    ("FixedAtOwner", "Fixed at owner"),
]


# ---- what every format shows ------------------------------------------------------------


def count(value):
    return DASH if value is None else value


def launch_label(launch_type):
    return UNKNOWN if launch_type is None else LAUNCH_LABELS.get(launch_type, launch_type)


def display_account(record):
    return (
        "%s (%s)" % (record["AccountName"], record["Account"])
        if record.get("AccountName")
        else record["Account"]
    )


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
        headline = dict(
            Control=control,
            Title=CONTROLS.get(control, ""),
            Share=share,
            InScope=now.get("InScope"),
            NonCompliant=now.get("NonCompliant"),
            FixProposed=now.get("FixProposed"),
            FixedAtOwner=now.get("FixedAtOwner"),
            Points=None
            if share is None or previous is None
            else round((share - previous) * 100, 1),
        )
        if "Change" in now:  # the summary compared it (stream.compare_runs)
            change = now["Change"]
            headline.update(
                Points=change["Points"],
                Since=change["Since"],
                Coverage=(change["AccountRegionsBefore"], now.get("AccountRegions")),
            )
        found.append(headline)
    return found


def change(headline, runs):
    """The change of a headline share, in words: what a reader sees."""
    if len(runs) < 2:
        return "%s first run" % DASH
    if "Since" in headline:
        if headline["Share"] is None:
            return "%s not measured in this run" % DASH
        if headline["Since"] is None:
            return "%s first run that measured it" % DASH
        before, now = headline["Coverage"]
        if headline["Points"] is None:
            return "%s not compared: measured in %s account-region(s), %s in the run of %s" % (
                DASH,
                now,
                before,
                headline["Since"],
            )
        if not headline["Points"]:
            return "no change since %s" % headline["Since"]
        return "%s %.1f pp since %s" % (
            "\u25b2" if headline["Points"] > 0 else "\u25bc",
            abs(headline["Points"]),
            headline["Since"],
        )
    if headline["Points"] is None:
        return "%s not measured in %s" % (
            DASH,
            "this run" if headline["Share"] is None else "the previous run",
        )
    if not headline["Points"]:
        return "no change since %s" % runs[-2]["Run"]
    return "%s %.1f pp since %s" % (
        "\u25b2" if headline["Points"] > 0 else "\u25bc",
        abs(headline["Points"]),
        runs[-2]["Run"],
    )


def compliant_of(headline):
    if headline["InScope"] is None or headline["NonCompliant"] is None:
        return "not measured in this run"
    return "%d of %d groups compliant" % (
        headline["InScope"] - headline["NonCompliant"],
        headline["InScope"],
    )


def fixes_pending(headline):
    """The non-compliant groups of a control whose fix is on its way at their owner -
    still counted as failing - in words; "" when none."""
    parts = [
        text % n
        for text, n in (
            ("%d with a change set to execute", headline.get("FixProposed")),
            ("%d rolling out at their owner", headline.get("FixedAtOwner")),
        )
        if n
    ]
    return "still failing: %s" % ", ".join(parts) if parts else ""


def account_cells(run):
    """The controls, and per account its record and one cell per control: over its
    regions, the state (compliant, non-compliant, or the worst of the regions not
    scanned), the non-compliant groups where scanned, and the regions not scanned;
    None where no policy judged the control in that account."""
    if "_matrix" in run:
        return matrix_cells(run)
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
            counts = [
                r["NonCompliant"]
                for r in these or ()
                if r["State"] == "scanned" and r["NonCompliant"] is not None
            ]
            missing = sorted(
                ((r["Region"], r["State"]) for r in these or () if r["State"] != "scanned"),
                key=lambda m: (MISSING_ORDER.index(m[1]) if m[1] in MISSING_ORDER else 0, m[0]),
            )
            state = (
                "non-compliant"
                if sum(counts)
                else missing[0][1]
                if missing
                else "compliant"
                if counts
                else None
            )
            cells.append(
                dict(State=state, NonCompliant=sum(counts) if counts else None, Missing=missing)
                if these and state
                else None
            )
        table.append((record, cells))
    return controls, table


def matrix_cells(run):
    """account_cells from the cells the summary counted as it read (stream.Run.finish):
    the rows of an organisation are not read again."""
    matrix = run["_matrix"]
    seen = {c for _, c in matrix} | {c["Control"] for c in run["Controls"]}
    controls = list(CONTROLS) + sorted(c for c in seen if c not in CONTROLS)
    table = []
    for record in run["Accounts"]:
        cells = []
        for control in controls:
            found = matrix.get((record["Account"], control))
            if not found:
                cells.append(None)
                continue
            count, missing = (
                found[0],
                sorted(
                    found[1],
                    key=lambda m: (MISSING_ORDER.index(m[1]) if m[1] in MISSING_ORDER else 0, m[0]),
                ),
            )
            state = (
                "non-compliant"
                if count
                else missing[0][1]
                if missing
                else "compliant"
                if count is not None
                else None
            )
            cells.append(dict(State=state, NonCompliant=count, Missing=missing) if state else None)
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
