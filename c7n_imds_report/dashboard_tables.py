"""The tables of the HTML page (``c7n_imds_report.dashboard``): accounts by control,
stack-owned groups by owner, the groups by state (the drill-down), the scans not
complete, the figures by account, region and control, and the runs. Each is a table the
page's script can sort and filter; without the script it reads the same, unsorted.
"""

import heapq
import re

from c7n_imds.model import escape
from c7n_imds_report import display, stack_owned

# The page stays a few MB at any size (an organisation's lists are in CSV and JSON):
# each drill-down table lists at most this many rows, the worst first, and says so.
TOP = 100
TOP_ROWS = 200  # the figures by account, region and control
FULL_LISTS = {
    "groups": "the JSON summary (<code>--format json</code>, its <code>Groups</code>)",
    "rows": "the CSV summary (<code>--format csv</code>: one line per account, region "
    "and control) or the JSON's <code>Rows</code>",
    "accounts": "the JSON summary's <code>Accounts</code> and <code>Rows</code>, or the "
    "CSV summary",
    "scans": "the JSON summary's <code>Scans</code> and <code>Problems</code>; standard "
    "error names each",
}


def cut_note(shown, total, what, full):
    """What a table leaves out, and where the full list is; "" when nothing is cut."""
    if shown >= total:
        return ""
    return '<p class="note cut">The %d of %d %s; the full list is in %s.</p>' % (
        shown,
        total,
        esc(what),
        FULL_LISTS[full],
    )


# A run of characters no line can break in: such a cell may break anywhere (letting every
# cell do so would squeeze short columns: "Regio/n").
LONG_WORD = re.compile(r"[^\s-]{28,}")


def esc(value):
    """Text for the page, in text and attributes alike (quotes too), control characters
    written out: an account's owner chose it, not the reader of the page."""
    return escape.html(value)


def account_html(record):
    """The account's name with its id beside it (the id alone when it has no name)."""
    return '%s <span class="id">%s</span>' % (
        esc(record.get("AccountName")),
        esc(record["Account"]),
    )


# ---- cells and tables: a cell is (escaped HTML, sort key or None, class) ------------


def text(value):
    return (esc(value), None, "long" if LONG_WORD.search(str(value)) else "")


def number(value, shown=None):
    return (esc(shown or display.count(value)), -1 if value is None else value, "n")


def account_cell(record):
    return (account_html(record), None, text(record.get("AccountName") or "")[2])


def table(table_id, label, headers, rows, empty="None.", kind="data"):
    if not rows:
        return '<p class="empty" id="%s">%s</p>' % (table_id, esc(empty))
    head = "".join('<th scope="col">%s</th>' % esc(h) for h in headers)
    body = "".join(
        "<tr>%s</tr>"
        % "".join(
            '<td data-label="%s"%s%s>%s</td>'
            % (
                esc(header),
                "" if sort is None else ' data-sort="%s"' % esc(sort),
                ' class="%s"' % esc(cls) if cls else "",
                content,
            )
            for header, (content, sort, cls) in zip(headers, row)
        )
        for row in rows
    )
    return (
        '<table class="%s" id="%s" aria-label="%s"><thead><tr>%s</tr></thead>'
        '<tbody>%s</tbody></table>' % (kind, table_id, esc(label), head, body)
    )


# ---- account x control --------------------------------------------------------------


def worst_first(item):
    """An account of the matrix: most non-compliant groups, then regions not scanned."""
    record, cells = item
    return (
        -sum((c or {}).get("NonCompliant") or 0 for c in cells),
        -sum(len((c or {}).get("Missing") or ()) for c in cells),
        record["Account"],
    )


def matrix(run):
    controls, accounts = display.account_cells(run)
    total = len(accounts)
    if total > TOP:
        accounts = sorted(accounts, key=worst_first)[:TOP]
    rows = []
    for record, cells in accounts:
        row = [account_cell(record)]
        for cell in cells:
            main, missing = display.cell_text(cell)
            row.append(
                (
                    "<span>%s</span>%s"
                    % (esc(main), "".join("<small>%s</small>" % esc(m) for m in missing)),
                    -1 if not cell or cell["NonCompliant"] is None else cell["NonCompliant"],
                    "st-" + cell["State"] if cell else "st-none",
                )
            )
        rows.append(row)
    legend = "".join(
        '<li><span class="sw st-%s"></span>%s</li>' % (s, label)
        for s, label in (
            ("compliant", "compliant"),
            ("non-compliant", "non-compliant groups"),
            ("errored", "errored or unreadable"),
            ("not-scanned", "not scanned"),
        )
    )
    return (
        '<ul class="legend">%s<li>%s not measured</li></ul>' % (legend, display.DASH)
        + cut_note(
            len(rows),
            total,
            "accounts with most non-compliant groups, then most regions not scanned",
            "accounts",
        )
        + table("accounts-table", "Accounts by control", ["Account"] + controls, rows)
    )


# ---- stack-owned groups by owner ----------------------------------------------------


def owners(run):
    """Per account and owner kind, and for all accounts, the stack-owned groups and how
    far their fix has come."""
    found = stack_owned.owner_rows(run)
    per_account = [r for r in found if r[1] is not None]
    shown = per_account
    if len(per_account) > TOP:  # the accounts with most stack-owned groups
        shown = sorted(per_account, key=lambda r: (-r[3].get("Groups", 0), r[1]["Account"], r[2]))[
            :TOP
        ]
    rows = [
        [
            (esc(label), None, "") if record is None else account_cell(record),
            text(stack_owned.owner_label(kind)),
        ]
        + [number(counts.get(k, 0)) for k, _ in stack_owned.OWNER_COUNTS]
        for label, record, kind, counts in shown + [r for r in found if r[1] is None]
    ]
    return (
        '<p class="note">Groups that CloudFormation, Elastic Beanstalk or an EKS managed '
        'node group owns are fixed there, not behind the owner\'s back. A fix proposed '
        '(a change set) or rolling out is still counted non-compliant: the group fails '
        'the control until a scan sees it launch with IMDSv2 required.</p>'
        + cut_note(
            len(shown),
            len(per_account),
            "accounts and owners with most stack-owned groups (all accounts below them)",
            "accounts",
        )
        + table(
            "t-owners",
            "Stack-owned groups by owner",
            ["Account", "Owner"] + [label for _, label in stack_owned.OWNER_COUNTS],
            rows,
            empty="Not measured in this run.",
        )
    )


# ---- drill-down ------------------------------------------------------------------------


def calls(group):
    return number(
        group.get("Calls"),
        None
        if group.get("Calls") is None or group.get("Days") is None
        else "%d in %d days" % (group["Calls"], group["Days"]),
    )


WHERE = [
    ("Account", account_cell),
    ("Region", lambda g: text(g["Region"])),
    ("Group", lambda g: text(g["Group"])),
    ("Control", lambda g: text(g["Control"])),
]
LAUNCH = ("Launch type", lambda g: text(display.launch_label(g["LaunchType"])))
OWNER = ("Owner", lambda g: text(g.get("Owner") or display.DASH))
REASON = ("Reason", lambda g: text(g.get("Reason") or display.DASH))
OWNED_BY = ("Owned by", lambda g: text(g.get("Stack") or display.DASH))


def fix_field(name):
    return lambda g: text((g.get("Fix") or {}).get(name) or display.DASH)


def command(group):
    found = (group.get("Fix") or {}).get("Command")
    return ("<code>%s</code>" % esc(found), None, "long") if found else text(display.DASH)


def fix_done(group):
    fix = group.get("Fix") or {}
    return text(
        "%s (%s)"
        % (
            fix.get("Action") or display.DASH,
            "applied" if fix.get("Status") == "applied" else "already in place",
        )
    )


DRILL_DOWN = [
    ("non-compliant", "Non-compliant", "Their launch allows IMDSv1.", [LAUNCH, OWNER]),
    (
        "held-back",
        "Held back: instances still call IMDSv1",
        "Left alone until the calls stop (CloudWatch MetadataNoToken); the owner was notified.",
        [LAUNCH, ("IMDSv1 calls", calls), OWNER],
    ),
    (
        "exempt",
        "Exempt",
        "Tagged c7n-imds:exempt by their owners.",
        [REASON, ("Expires", lambda g: text(g.get("Until") or "no expiry")), OWNER],
    ),
    (
        "stack-owned",
        "Owned by a stack",
        "Changed at the stack, not by c7n-imds; no fix at the owner yet.",
        [
            OWNED_BY,
            ("What to change", lambda g: text(g.get("Reason") or display.DASH)),
            OWNER,
            ("Next step", lambda g: text(stack_owned.fix_text(g))),
        ],
    ),
    (
        "fix-proposed",
        "Fix proposed: a change set to execute",
        "The stack's owner reviews "
        "and executes the change set; until then the group still fails AutoScaling.3.",
        [OWNED_BY, ("Change set", fix_field("ChangeSetName")), ("Execute", command), OWNER],
    ),
    (
        "fixed-at-owner",
        "Fixed at the owner, rolling out",
        "The owner's own update replaces "
        "the group's launch source; counted non-compliant until a scan sees it launch with "
        "IMDSv2 required.",
        [
            OWNED_BY,
            ("Fix", fix_done),
            ("Waiting for", fix_field("Pending")),
            ("Follow it", command),
            OWNER,
        ],
    ),
    ("failed", "Failed", "The change was tried and did not complete.", [LAUNCH, REASON, OWNER]),
    ("remediated", "Remediated in this run", "Now launch with IMDSv2 required.", [LAUNCH, OWNER]),
]


def drill_down(summary):
    """The groups by state, read once: per state its count and the first TOP groups
    (held back: those with most IMDSv1 calls)."""
    counts, kept = {}, {state: [] for state, _, _, _ in DRILL_DOWN}
    for n, g in enumerate(summary["Groups"]):
        state = g["State"]
        counts[state] = counts.get(state, 0) + 1
        if state not in kept:
            continue
        if state == "held-back":
            heapq.heappush(kept[state], ((g.get("Calls") or 0), -n, g))
            if len(kept[state]) > TOP:
                heapq.heappop(kept[state])
        elif len(kept[state]) < TOP:
            kept[state].append(g)
    out = []
    for state, title, note, columns in DRILL_DOWN:
        groups, columns = kept[state], WHERE + columns
        if state == "held-back":
            groups = [g for _, _, g in sorted(groups, key=lambda e: (-e[0], -e[1]))]
        total = counts.get(state, 0)
        out.append(
            '<h3 id="h-%s">%s (%d)</h3><p class="note">%s</p>%s%s'
            % (
                state,
                esc(title),
                total,
                esc(note),
                cut_note(
                    len(groups),
                    total,
                    "groups" + (" with most IMDSv1 calls" if state == "held-back" else ""),
                    "groups",
                ),
                table(
                    "t-" + state,
                    title,
                    [c[0] for c in columns],
                    [[cell(g) for _, cell in columns] for g in groups],
                ),
            )
        )
    return "".join(out)


def problems_table(found):
    total = len(found)
    found = found[:TOP]
    return cut_note(len(found), total, "scans not complete", "scans") + table(
        "t-problems",
        "Scans not complete",
        ["Account", "Region", "Policy", "State", "Reason"],
        [
            [
                account_cell(s),
                text(s["Region"]),
                text(s["Policy"] or display.DASH),
                text(display.STATE_LABELS.get(s["State"], s["State"])),
                text(s["Reason"] or display.DASH),
            ]
            for s in found
        ],
        empty="None: every expected account and region was read.",
    )


# ---- figures tables -----------------------------------------------------------------------


def figures_table(run):
    """The rows with most non-compliant groups (then those not scanned), at most
    TOP_ROWS, in the rows' order."""
    columns = display.figure_columns(run)
    headers = ["Account", "Region", "Control", "State", "Scanned"] + [c[1] for c in columns]
    kept, total = [], 0
    for n, r in enumerate(run["Rows"]):
        total += 1
        key = (r.get("NonCompliant") or 0, r["State"] != "scanned", -n)
        if len(kept) < TOP_ROWS:
            heapq.heappush(kept, (key, r))
        elif key > kept[0][0]:
            heapq.heapreplace(kept, (key, r))
    shown = [r for _, r in sorted(kept, key=lambda e: -e[0][2])]
    rows = [
        [
            account_cell(r),
            text(r["Region"]),
            text(r["Control"]),
            text(display.STATE_LABELS.get(r["State"], r["State"])),
            number(r.get("Scanned")),
        ]
        + [number(display.figure(r, k)) for k, _ in columns]
        for r in shown
    ]
    return cut_note(
        len(shown), total, "rows with most non-compliant groups (then those not scanned)", "rows"
    ) + table("t-figures", "By account, region and control", headers, rows, kind="data wide")


def coverage(run):
    """The controls a run measured, each with its account-regions: the totals of two
    runs that measured different controls, or as many places, are not alike."""
    return (
        ", ".join(
            "%s (%s)" % (c["Control"], c["AccountRegions"])
            if c.get("AccountRegions") is not None
            else c["Control"]
            for c in run["Controls"]
            if c.get("InScope") is not None
        )
        or display.DASH
    )


def trend_table(runs):
    return table(
        "t-trend",
        "Runs",
        ["Run", "Accounts", "Regions"]
        + [label for _, label in display.TREND_FIGURES]
        + ["Controls measured (account-regions)", "Folders"],
        [
            [text(r["Run"]), number(r["Totals"]["Accounts"]), number(r["Totals"]["Regions"])]
            + [number(r["Totals"].get(k)) for k, _ in display.TREND_FIGURES]
            + [text(coverage(r)), text(", ".join(r["Folders"]))]
            for r in runs
        ],
        kind="data wide",
    )
