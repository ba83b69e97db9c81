"""Renderers for `c7n-imds summary`: a terminal table, CSV, JSON and Markdown here, the
HTML page in ``c7n_imds_report.dashboard``. What they show comes from
``c7n_imds_report.display`` and ``c7n_imds_report.stack_owned``, so that every format
says the same.

They take the summary ``c7n_imds_report.aggregate.summarize`` builds (the shape of
schema.json). A count that is null was not measured and is written as an en dash (an
empty cell in CSV), never as 0: a scan that failed must not read as a compliant one.
Every value that comes from an account - group, account, stack and policy names, tag
values, owners, reasons, folder names - is whatever the account's owner typed, so each
format escapes it for what it is (c7n_imds.model.escape): control characters written out
in every format, so no value starts a line of its own; no table, link or markup in
Markdown; no formula in a spreadsheet.
"""

import csv
import io
import itertools
import json

from c7n_imds.model import escape
from c7n_imds_report.display import (
    BY_TYPE,
    DASH,
    STATE_LABELS,
    TREND_FIGURES,
    account_cells,
    cell_text,
    change,
    compliant_of,
    count,
    display_account,
    figure,
    figure_columns,
    fixes_pending,
    headlines,
    launch_label,
    percent,
    problems,
)
from c7n_imds_report.load import orjson
from c7n_imds_report.owners import OWNER_KINDS
from c7n_imds_report.stack_owned import fix_text, owner_figure, owners_table
from c7n_imds_report.stream import Spool

GROUP_STATE_LABELS = {
    "non-compliant": "non-compliant",
    "held-back": "held back",
    "exempt": "exempt",
    "stack-owned": "stack-owned",
    "fix-proposed": "fix proposed (change set)",
    "fixed-at-owner": "fixed at owner, rolling out",
    "failed": "failed",
    "remediated": "remediated",
}
# Escaping, per format, is c7n_imds.model.escape's: control characters written out
# (``\\n``, ``\\xNN``, ``\\uNNNN``) everywhere, plus each format's own.
plain = escape.controls
markdown = escape.markdown
csv_cell = escape.csv_cell


# ---- the text tables --------------------------------------------------------------------


def group_detail(group):
    """Why a group is listed, in one line: its IMDSv1 calls, exemption, stack or failure."""
    state = group["State"]
    if state == "held-back" and group.get("Calls") is not None:
        return "%d IMDSv1 call(s)%s" % (
            group["Calls"],
            "" if group.get("Days") is None else " in %d days" % group["Days"],
        )
    if state == "exempt":
        return "%s (%s)" % (
            group.get("Reason") or "no reason given",
            "until %s" % group["Until"] if group.get("Until") else "no expiry",
        )
    if state == "stack-owned":
        # the owner's action that left it says what fixes it, instead of the guidance
        skipped = (group.get("Fix") or {}).get("Status") == "skipped"
        return "%s: %s" % (
            group.get("Stack") or "a stack",
            "; ".join(
                ([("next: " + fix_text(group))] if group.get("Fix") else [])
                + ([] if skipped else [group.get("Reason") or DASH])
            ),
        )
    if state in ("fix-proposed", "fixed-at-owner"):
        return "%s: %s" % (group.get("Stack") or "a stack", fix_text(group))
    return group.get("Reason") or ""


def rows_table(run):
    columns = figure_columns(run)
    headers = ["Account", "Region", "Control", "State", "Scanned"] + [c[1] for c in columns]
    body = [
        [
            display_account(r),
            r["Region"],
            r["Control"],
            STATE_LABELS.get(r["State"], r["State"]),
            count(r.get("Scanned")),
        ]
        + [count(figure(r, k)) for k, _ in columns]
        for r in run["Rows"]
    ]
    totals = run["Totals"]
    body.append(
        [
            "Total: %d account(s)" % totals["Accounts"],
            "%d region(s)" % totals["Regions"],
            "all",
            "",
            count(totals.get("Scanned")),
        ]
        + [count(figure(totals, k)) for k, _ in columns]
    )
    return headers, body


def trend_table(summary):
    headers = ["Run", "Folders", "Accounts", "Regions"] + [c[1] for c in TREND_FIGURES]
    body = [
        [run["Run"], ", ".join(run["Folders"]), run["Totals"]["Accounts"], run["Totals"]["Regions"]]
        + [count(run["Totals"].get(k)) for k, _ in TREND_FIGURES]
        for run in summary["Runs"]
    ]
    return headers, body


def problems_table(summary):
    headers = ["Account", "Region", "Policy", "State", "Reason"]
    return headers, [
        [
            display_account(s),
            s["Region"],
            s["Policy"] or DASH,
            STATE_LABELS.get(s["State"], s["State"]),
            s["Reason"] or DASH,
        ]
        for s in problems(summary)
    ]


def groups_table(summary):
    headers = ["Account", "Region", "Group", "Control", "State", "Launch type", "Owner", "Detail"]
    return headers, [
        [
            display_account(g),
            g["Region"],
            g["Group"],
            g["Control"],
            GROUP_STATE_LABELS.get(g["State"], g["State"]),
            launch_label(g["LaunchType"]),
            g.get("Owner") or DASH,
            group_detail(g),
        ]
        for g in summary["Groups"]
    ]


# ---- the formats --------------------------------------------------------------------------


def render_text(summary, tablefmt, escape):
    from tabulate import tabulate

    latest = summary["Runs"][-1]
    title, section = ("# ", "## ") if tablefmt == "pipe" else ("", "")

    def table(headers, body, text_columns):
        # names stay text (no number parsing); the figures align right
        return tabulate(
            [[escape(c) for c in row] for row in body],
            [escape(h) for h in headers],
            tablefmt=tablefmt,
            disable_numparse=True,
            colalign=["left"] * text_columns + ["right"] * (len(headers) - text_columns),
        )

    controls, accounts = account_cells(latest)
    out = [
        "%sIMDSv2 summary, run of %s (%s)"
        % (title, escape(latest["Run"]), escape(", ".join(latest["Folders"]))),
        "",
        table(
            ["Control", "Groups compliant", "", "Change", "Owner fixes on their way"],
            [
                [
                    h["Control"],
                    percent(h["Share"]),
                    compliant_of(h),
                    change(h, summary["Runs"]),
                    fixes_pending(h) or DASH,
                ]
                for h in headlines(summary["Runs"])
            ],
            text_columns=5,
        ),
        "",
        table(
            ["Account"] + controls,
            [
                [display_account(record)]
                + ["; ".join([main] + missing) for main, missing in map(cell_text, cells)]
                for record, cells in accounts
            ],
            text_columns=len(controls) + 1,
        ),
        "",
        table(*rows_table(latest), text_columns=4),
    ]
    headers, body = owners_table(latest)
    if body:
        out += [
            "",
            section + "Stack-owned groups by owner (fixed where they are defined)",
            "",
            table(headers, body, text_columns=2),
        ]
    headers, body = problems_table(summary)
    if body:
        out += [
            "",
            section + "Scans not complete (their groups are not counted)",
            "",
            table(headers, body, text_columns=len(headers)),
        ]
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


def public(value):
    """A summary's value without the keys it keeps for the renderers (``_matrix``)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not k.startswith("_")}
    return value


def item_json(item):
    """One item of a list, on one line, keys sorted (orjson where installed: an
    organisation's summary has hundreds of thousands of them)."""
    if orjson is not None:
        try:
            data = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
            if data.isascii() and b"\x7f" not in data:  # else written out, as json does
                return data.decode("ascii")
        except TypeError:
            pass  # a value orjson does not write (an int over 64 bits): as json does
    return json.dumps(item, sort_keys=True)


def write_json(summary, out):
    """The summary as it is (schema.json), for other tools: written as it is read, list
    by list, so that the full lists of an organisation's summary never sit in memory
    (their items one per line)."""

    def value(v, indent):
        pad = " " * indent
        if isinstance(v, dict):
            out.write("{")
            for n, key in enumerate(sorted(k for k in v if not k.startswith("_"))):
                out.write("%s\n%s  %s: " % ("," if n else "", pad, json.dumps(key)))
                value(v[key], indent + 2)
            out.write("\n%s}" % pad if any(not k.startswith("_") for k in v) else "}")
        elif isinstance(v, (list, tuple, Spool)):
            out.write("[")
            n = -1
            for n, item in enumerate(v):
                out.write("%s\n%s  " % ("," if n else "", pad))
                if isinstance(item, dict) and any(isinstance(x, Spool) for x in item.values()):
                    value(item, indent + 2)  # a run: its rows are a spool
                else:
                    out.write(item_json(public(item)))
            out.write("\n%s]" % pad if n >= 0 else "]")
        else:
            out.write(json.dumps(v))

    value(summary, 0)
    out.write("\n")


def render_json(summary):
    buffer = io.StringIO()
    write_json(summary, buffer)
    return buffer.getvalue()


def render_csv(summary):
    buffer = io.StringIO()
    write_csv(summary, buffer)
    return buffer.getvalue()


def write_csv(summary, buffer):
    """The latest run's rows (and its totals as the last line, account ``(all)``), one
    column per figure; an empty cell was not measured."""
    run = summary["Runs"][-1]
    columns = (
        [("NonCompliant", "NonCompliant")]
        + [(t, "NonCompliant:" + t) for t in BY_TYPE]
        + [
            (k, k)
            for k in (
                "LaunchConfigurations",
                "Remediated",
                "HeldBack",
                "Exempt",
                "LeftToStack",
                "Failed",
                "StackOwned",
            )
        ]
        + [("StackOwned:" + kind, "StackOwned:" + kind) for kind in OWNER_KINDS]
        + [(k, k) for k in ("FixProposed", "FixedAtOwner")]
    )
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["Run", "Account", "AccountName", "Region", "Control", "State", "Scanned"]
        + [name for _, name in columns]
    )
    for r in itertools.chain(
        run["Rows"],
        [
            dict(
                run["Totals"],
                Account="(all)",
                AccountName=None,
                Region="(all)",
                Control="(all)",
                State=None,
            )
        ],
    ):
        writer.writerow(
            [
                csv_cell(v)
                for v in [
                    run["Run"],
                    r["Account"],
                    r["AccountName"],
                    r["Region"],
                    r["Control"],
                    r["State"],
                    r.get("Scanned"),
                ]
                + [
                    owner_figure(r, k.partition(":")[2])
                    if k.startswith("StackOwned:")
                    else figure(r, k)
                    for k, _ in columns
                ]
            ]
        )


def render_html(summary):
    """The page (``c7n_imds_report.dashboard``, which builds on the figures above and
    so is imported only when asked for)."""
    from c7n_imds_report.dashboard import render_html as page

    return page(summary)


def write(summary, fmt, out):
    """The summary in ``fmt`` onto ``out``; JSON and CSV as they are read (an
    organisation's full lists), the others as one text."""
    if fmt == "json":
        write_json(summary, out)
    elif fmt == "csv":
        write_csv(summary, out)
    else:
        out.write(RENDERERS[fmt](summary))


RENDERERS = {
    "table": render_table,
    "csv": render_csv,
    "json": render_json,
    "markdown": render_markdown,
    "html": render_html,
}
