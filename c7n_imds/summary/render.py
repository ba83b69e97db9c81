"""Renderers for `c7n-imds summary`: a terminal table, CSV, JSON, Markdown and one
self-contained HTML page with inline SVG charts (no scripts, no external assets).

They take the summary built by ``c7n_imds.summary.aggregate.summarize``, which holds names and
counts only, and escape every name for the format they write.
"""
import csv
import html
import io
import json

from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds.names import LAUNCH_TEMPLATE as LT
from c7n_imds.names import LAUNCH_TYPES
from c7n_imds.names import MIXED_INSTANCES_POLICY as MIXED
from c7n_imds.summary.aggregate import SETS, UNKNOWN

FIGURE_LABELS = [("NonCompliant", "Non-compliant"), (LC, "LC"), (LT, "LT"),
                 (MIXED, "Mixed"), (UNKNOWN, "Unknown type"),
                 ("LaunchConfigurations", "Launch configs"), ("Remediated", "Remediated"),
                 ("HeldBack", "Held back (IMDSv1 use)"), ("Exempt", "Exempt"),
                 ("LeftToStack", "Left to stack"), ("Failed", "Failed")]


def figure_columns(summary):
    has_unknown = any(UNKNOWN in r["NonCompliantByLaunchType"]
                      for run in summary["Runs"] for r in run["Rows"])
    return [(k, label) for k, label in FIGURE_LABELS if k != UNKNOWN or has_unknown]


def figure(counts, key):
    if key in LAUNCH_TYPES + (UNKNOWN,):
        return counts["NonCompliantByLaunchType"].get(key, 0)
    return counts[key]


def display_account(row):
    return "%s (%s)" % (row["AccountName"], row["Account"]) if row.get("AccountName") \
        else row["Account"]


def dash(value):
    return "-" if value is None else value


def rows_table(summary, run):
    columns = figure_columns(summary)
    headers = ["Account", "Region", "Control", "Scanned"] + [c[1] for c in columns]
    body = [[display_account(r), r["Region"], r["Control"], dash(r["Scanned"])] +
            [figure(r, k) for k, _ in columns] for r in run["Rows"]]
    totals = run["Totals"]
    body.append(["Total: %d account(s)" % totals["Accounts"], "%d region(s)" % totals["Regions"],
                 "all", dash(totals["Scanned"])] + [figure(totals, k) for k, _ in columns])
    return headers, body


def trend_table(summary):
    columns = [c for c in figure_columns(summary) if c[0] not in LAUNCH_TYPES + (UNKNOWN,)]
    headers = ["Run", "Folders", "Accounts", "Regions", "Scanned"] + [c[1] for c in columns]
    body = [[run["Run"], ", ".join(run["Folders"]), run["Totals"]["Accounts"],
             run["Totals"]["Regions"], dash(run["Totals"]["Scanned"])] +
            [run["Totals"][k] for k, _ in columns] for run in summary["Runs"]]
    return headers, body


def render_text(summary, tablefmt, escape=str):
    from tabulate import tabulate
    latest = summary["Runs"][-1]
    title, section = ("# ", "## ") if tablefmt == "pipe" else ("", "")

    def table(headers, body, text_columns):
        # names stay text (no number parsing); the figures align right
        return tabulate([[escape(c) for c in row] for row in body], headers,
                        tablefmt=tablefmt, disable_numparse=True, colalign=["left"] *
                        text_columns + ["right"] * (len(headers) - text_columns))
    out = ["%sIMDSv2 summary, run of %s (%s)" % (
        title, latest["Run"], escape(", ".join(latest["Folders"]))), "",
        table(*rows_table(summary, latest), text_columns=3)]
    if len(summary["Runs"]) > 1:
        out += ["", section + "Trend", "", table(*trend_table(summary), text_columns=2)]
    return "\n".join(out) + "\n"


def render_table(summary):
    return render_text(summary, "simple")


def render_markdown(summary):
    return render_text(summary, "pipe", lambda v: html.escape(str(v)).replace("|", "\\|"))


def render_json(summary):
    return json.dumps(summary, indent=2, sort_keys=False) + "\n"


def render_csv(summary):
    columns = [("NonCompliant", "NonCompliant")] + [
        (t, "NonCompliant:" + t) for t in LAUNCH_TYPES + (UNKNOWN,)] + [
        (k, k) for k in SETS[1:]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Run", "Account", "AccountName", "Region", "Control", "Scanned"] +
                    [name for _, name in columns])
    for run in summary["Runs"]:
        for r in run["Rows"] + [dict(run["Totals"], Account="(all)", AccountName="",
                                     Region="(all)", Control="(all)")]:
            writer.writerow([run["Run"], r["Account"], r["AccountName"] or "", r["Region"],
                             r["Control"], "" if r["Scanned"] is None else r["Scanned"]] +
                            [figure(r, k) for k, _ in columns])
    return buffer.getvalue()


def bar_chart(title, labels, series):
    """Grouped bars as inline SVG: series = [(name, colour, values)]."""
    e = html.escape
    top = max([v for _, _, values in series for v in values] + [1])
    bar, gap, height, left, base = 22, 26, 160, 40, 200
    labels = [label if len(label) <= 24 else label[:23] + "\u2026" for label in labels]
    # wide enough for its label too (about 7 px a character at 12 px)
    group = max([bar * len(series) + gap] + [7 * len(label) + 12 for label in labels])
    width = max(360, left + group * len(labels) + 20)
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" '
             'viewBox="0 0 %d %d"><title>%s</title>' % (width, base + 60, width,
                                                         base + 60, e(title)),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555"/>' % (
                 left - 5, base, width - 10, base)]
    for i, label in enumerate(labels):
        x0 = left + i * group
        for j, (name, colour, values) in enumerate(series):
            h = round(height * values[i] / top)
            x = x0 + j * bar
            parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: '
                         '%s %d</title></rect>' % (x, base - h, bar - 2, h, colour,
                                                   e(label), e(name), values[i]))
            parts.append('<text class="value" x="%d" y="%d" text-anchor="middle">%d</text>'
                         % (x + bar // 2, base - h - 4, values[i]))
        parts.append('<text class="label" x="%d" y="%d" text-anchor="middle">%s</text>' % (
            x0 + (bar * len(series)) // 2, base + 16, e(label)))
    for j, (name, colour, _) in enumerate(series):
        parts.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text '
                     'x="%d" y="%d">%s</text>' % (left + j * 150, base + 34, colour,
                                                  left + j * 150 + 16, base + 44, e(name)))
    return "".join(parts) + "</svg>"


def html_table(headers, body):
    e = html.escape
    return "<table><thead><tr>%s</tr></thead><tbody>%s</tbody></table>" % (
        "".join("<th>%s</th>" % e(str(h)) for h in headers),
        "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % e(str(c)) for c in row)
                for row in body))


CHART_ACCOUNTS = 40
SERIES = (("Non-compliant", "#c0392b", "NonCompliant"),
          ("Remediated", "#27ae60", "Remediated"))
STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
         "margin:1em 0}th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}"
         "th{background:#eee}td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}"
         "svg text{font-size:12px}.note{color:#555;max-width:60em}")


def render_html(summary):
    e = html.escape
    latest = summary["Runs"][-1]
    # an organization may have thousands of accounts: chart those with most to fix
    accounts = sorted(latest["Accounts"], key=lambda a: -a["NonCompliant"])[:CHART_ACCOUNTS]
    shown = "" if len(accounts) == len(latest["Accounts"]) else \
        " (the %d of %d with most non-compliant groups)" % (
            len(accounts), len(latest["Accounts"]))
    body = ["<h1>IMDSv2 compliance summary</h1>",
            "<p>Run of %s, from %s.</p>" % (e(latest["Run"]), e(", ".join(latest["Folders"]))),
            "<h2>Non-compliant and remediated groups per account%s</h2>" % shown,
            bar_chart("Non-compliant and remediated groups per account",
                      [display_account(a) for a in accounts],
                      [(n, c, [a[k] for a in accounts]) for n, c, k in SERIES])]
    if len(summary["Runs"]) > 1:
        body += ["<h2>Trend</h2>", bar_chart(
            "Non-compliant and remediated groups per run",
            [r["Run"][:19] for r in summary["Runs"]],
            [(n, c, [r["Totals"][k] for r in summary["Runs"]]) for n, c, k in SERIES]),
            html_table(*trend_table(summary))]
    body += ["<h2>By account, region and control</h2>", html_table(*rows_table(
        summary, latest)), '<p class="note">Groups are counted once per account and '
        'region, whichever policies matched them. Held back: instances still call IMDSv1 '
        '(CloudWatch MetadataNoToken). Left to stack: managed by CloudFormation, '
        'Elastic Beanstalk or an EKS managed node group. Launch configs: launch '
        'configurations that allow IMDSv1; AutoScaling.3 fails them until deleted.</p>']
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>c7n-imds '
            'IMDSv2 summary</title><style>%s</style></head><body>\n%s\n</body></html>\n' % (
                STYLE, "\n".join(body)))


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json,
             "markdown": render_markdown, "html": render_html}
