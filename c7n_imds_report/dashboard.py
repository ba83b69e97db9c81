"""The page of `c7n-imds summary --format html`: one self-contained file a security lead
can present, mail or put on a share - no network, no external assets - so that it opens
the same anywhere, years later, and tells no one when it is opened.

Everything is rendered here, so the page shows every figure without JavaScript (a mail
client or a locked-down browser runs none); a small inline script only adds sorting and
filtering, reads the DOM and carries no data, so no account value lands in a script.
Every value that comes from an account (group, account, stack, policy and folder names,
tag values, owners, reasons) goes through ``esc`` (``c7n_imds_report.dashboard_tables``) -
control characters written out, then ``html.escape`` with quotes - in text and
attributes alike: the account's owner chose it, not the reader of the page.
"""

import math
from collections import Counter

from c7n_imds_report import display
from c7n_imds_report.dashboard_tables import (
    TOP,
    TOP_ROWS,
    account_html,
    drill_down,
    esc,
    figures_table,
    matrix,
    owners,
    problems_table,
    trend_table,
)

CHART_ACCOUNTS = 40  # an organization may have thousands: chart those with most to fix
DIGIT = 14  # a digit's width at the chart's largest font (a phone's), in viewBox units

STYLE = """
*{box-sizing:border-box}body{margin:0 auto;max-width:1600px;padding:16px clamp(10px,3vw,32px);
 color:#1f2328;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
h1{font-size:1.6em;margin:.2em 0}h3{font-size:1.05em;margin:1.2em 0 .3em}
h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid #d0d7de}
p,li,h1,h2,h3,.acct-name,td.long{overflow-wrap:anywhere}.id{font-size:.9em;white-space:nowrap}
.meta,.note,.empty,.id,td small{color:#57606a}table.data tr[hidden]{display:none}
.alert{border-left:4px solid #bf8700;background:#fff8c5;padding:8px 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(14em,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-radius:8px;padding:10px 14px}.card h3,.card p{margin:0}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.pending{color:#9a6700}.share{font-size:2.2em;font-weight:700}.up{color:#1a7f37}.down{color:#cf222e}
.totals,.legend{display:flex;flex-wrap:wrap;gap:4px 20px;padding:0;list-style:none}
.sw{display:inline-block;width:1em;height:1em;border:1px solid #8c959f;margin-right:4px}
table{border-collapse:collapse;width:100%;margin:.3em 0 1em}table.wide{font-size:.9em}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;white-space:nowrap}td{overflow-wrap:break-word}
td small{display:block}th button{font:inherit;font-weight:600;color:inherit;background:none;
 border:0;padding:0;cursor:pointer;text-align:left}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
.st-compliant{background:#dafbe1}.st-non-compliant{background:#ffebe9}
.st-errored,.st-unreadable{background:#fff1c2}.st-not-scanned{background:#eaeef2}
.tools{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:.3em 0}
.filter{font:inherit;padding:3px 6px;width:18em;max-width:100%}
svg{display:block;width:100%;height:auto;max-width:800px}svg text{font-size:14px;fill:#1f2328}
.grid{stroke:#d0d7de}.axis{stroke:#57606a}svg polyline[class]{fill:none;stroke-width:2.5}
.s-nc{stroke:#cf222e;fill:#cf222e}.s-rem{stroke:#1a7f37;fill:#1a7f37}
.acct{margin:.7em 0}.acct-name{font-weight:600}.bar-value{text-align:right}
.bar-row{display:grid;grid-template-columns:13em 1fr 3.5em;gap:8px;align-items:center}
.track{display:block;height:.9em;background:#f6f8fa}.bar{display:block;height:100%}
.b-nc-first{background:#f4a19b}.b-nc{background:#cf222e}.b-rem{background:#1a7f37}
@media (max-width:700px){.bar-row{grid-template-columns:8.5em 1fr 3em}svg text{font-size:21px}}
"""
# Where a table no longer fits, each row becomes a card of labelled values: below a
# tablet's width for every table, below a laptop's for the wide ones (measured with
# tests/test_dashboard.py's self-check; the widest needs about 1250 px).
CARDS = """@media (max-width:%(width)dpx){
 %(t)s,%(t)s tbody,%(t)s tr,%(t)s td{display:block}
 %(t)s thead tr{display:flex;flex-wrap:wrap;gap:4px}
 %(t)s tr{border:1px solid #d0d7de;border-radius:6px;margin:0 0 8px;padding:4px 0}
 %(t)s td{border:0;padding:2px 10px;overflow-wrap:anywhere}
 %(t)s td.n{text-align:left;white-space:normal}
 %(t)s td::before{content:attr(data-label);display:block;font-size:.8em;color:#57606a}}
"""
STYLE += CARDS % {"t": "table.data", "width": 900} + CARDS % {"t": "table.wide", "width": 1300}

# Sorting (click a header) and filtering (a text box per table); without it the page
# shows the same tables, unsorted.
SCRIPT = """(function () {
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };
  function key(cell) {
    var sort = cell.getAttribute("data-sort");
    return sort !== null && !isNaN(sort) ? Number(sort) : cell.textContent.trim().toLowerCase();
  }
  function compare(a, b) {
    return typeof a === "number" && typeof b === "number" ? a - b
      : String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  each(document.querySelectorAll("table.data"), function (table) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var tools = document.createElement("div"), input = document.createElement("input"),
      count = document.createElement("span");
    tools.className = "tools"; input.type = "search"; input.className = "filter";
    input.placeholder = "Filter"; input.setAttribute("aria-label", "Filter: " +
      table.getAttribute("aria-label")); tools.append(input, count); table.before(tools);
    input.addEventListener("input", function () {
      var query = input.value.trim().toLowerCase(), shown = 0;
      rows.forEach(function (row) {
        row.hidden = query !== "" && row.textContent.toLowerCase().indexOf(query) < 0;
        shown += row.hidden ? 0 : 1;
      });
      count.textContent = query ? shown + " of " + rows.length + " rows" : "";
    });
    each(table.tHead.rows[0].cells, function (th, column) {
      var button = document.createElement("button");
      button.type = "button"; button.append.apply(button, th.childNodes); th.append(button);
      button.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        each(th.parentNode.cells, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        rows.sort(function (a, b) {
          return compare(key(a.cells[column]), key(b.cells[column])) * (up ? 1 : -1);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();"""


# ---- the headline: compliant share per control -------------------------------------


def headline_cards(runs):
    cards = []
    for h in display.headlines(runs):
        trend = "" if not h["Points"] else "up" if h["Points"] > 0 else "down"
        cards.append(
            '<div class="card" data-control="%s"><h3>%s</h3><p class="what">%s</p>'
            '<p class="share">%s</p><p class="of">%s</p><p class="delta %s">%s</p>%s</div>'
            % (
                esc(h["Control"]),
                esc(h["Control"]),
                esc(h["Title"]),
                display.percent(h["Share"]),
                esc(display.compliant_of(h)),
                trend,
                esc(display.change(h, runs)),
                '<p class="pending">%s</p>' % esc(display.fixes_pending(h))
                if display.fixes_pending(h)
                else "",
            )
        )
    return '<div class="cards" id="headline">%s</div>' % "".join(cards)


def totals_strip(run):
    totals = run["Totals"]
    items = [
        ("NonCompliant", "non-compliant"),
        ("HeldBack", "held back"),
        ("Exempt", "exempt"),
        ("StackOwned", "stack-owned"),
        ("FixProposed", "fix proposed (still failing)"),
        ("FixedAtOwner", "fixed at owner, rolling out"),
        ("LeftToStack", "left to stack"),
        ("Failed", "failed"),
        ("Remediated", "remediated in this run"),
        ("Scanned", "scanned"),
    ]
    return '<ul class="totals" id="totals">%s</ul>' % "".join(
        '<li data-figure="%s"><strong>%s</strong> %s</li>'
        % (k, esc(display.count(totals.get(k))), label)
        for k, label in items
    )


# ---- charts ---------------------------------------------------------------------------


def nice_step(rough):
    magnitude = 10 ** math.floor(math.log10(rough)) if rough > 0 else 1
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)


def trend_chart(runs):
    """Non-compliant and remediated totals per run, an inline SVG line chart whose
    viewBox holds every label apart from the others, so that it scales to any width."""
    series = (
        ("NonCompliant", "s-nc", "non-compliant groups"),
        ("Remediated", "s-rem", "remediated in the run"),
    )
    peak = max(
        [r["Totals"][k] for r in runs for k, _, _ in series if r["Totals"].get(k) is not None] + [1]
    )
    step = max(1, nice_step(peak / 4))
    ceiling = step * math.ceil(peak / step)
    width, height, right, top, base, pad = 640, 330, 16, 48, 224, 64
    left = 20 + DIGIT * len(str(ceiling))
    span = (width - left - right - 2 * pad) / max(1, len(runs) - 1)  # from a run to the next
    # at most 4 run labels, each a full step from the next; the last run's always
    every = max(1, math.ceil((len(runs) - 1) / 3))
    labelled = [
        i
        for i in range(len(runs))
        if i == len(runs) - 1 or (i % every == 0 and len(runs) - 1 - i >= every)
    ]

    def x(i):
        return left + pad + span * i

    def y(v):
        return top + (base - top) * (1 - v / ceiling)

    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" id="trend-chart" role="img" viewBox="0 '
        '0 %d %d"><title>Non-compliant and remediated groups per run</title><text x="4" '
        'y="22">groups</text>' % (width, height)
    ]
    parts += [
        '<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/><text class="tick" '
        'x="%d" y="%.1f" text-anchor="end">%d</text>'
        % (left, y(v), width - right, y(v), left - 8, y(v) + 5, v)
        for v in range(0, ceiling + 1, step)
    ]
    parts.append(
        '<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>' % (left, base, width - right, base)
    )
    for i in labelled:
        day, _, clock = runs[i]["Run"].partition(" ")
        parts.append(
            '<text class="run" x="%.1f" y="%d" text-anchor="middle"><tspan x="%.1f">'
            '%s</tspan><tspan x="%.1f" dy="1.2em">%s UTC</tspan></text>'
            % (x(i), base + 32, x(i), esc(day), x(i), esc(clock[:5]))
        )
    for j, (key, cls, name) in enumerate(series):
        points = [
            (i, r["Totals"][key]) for i, r in enumerate(runs) if r["Totals"].get(key) is not None
        ]
        parts.append(
            '<polyline class="%s" points="%s"/>'
            % (cls, " ".join("%.1f,%.1f" % (x(i), y(v)) for i, v in points))
        )
        for i, v in points:
            parts.append(
                '<circle class="%s" cx="%.1f" cy="%.1f" r="4"><title>%s: %s %d'
                '</title></circle>' % (cls, x(i), y(v), esc(runs[i]["Run"]), name, v)
            )
            # values over the points where they fit between them; the remediated one
            # under its point where it would hit the other's, and none if no room there
            other = runs[i]["Totals"].get("NonCompliant")
            close = j and other is not None and abs(y(other) - y(v)) < 26
            if span >= DIGIT * len(str(peak)) + 8 and not (close and y(v) + 30 > base):
                parts.append(
                    '<text class="point" data-series="%s" x="%.1f" y="%.1f" text-'
                    'anchor="middle">%d</text>' % (key, x(i), y(v) + (24 if close else -9), v)
                )
        parts.append(
            '<rect class="%s" x="%d" y="%d" width="14" height="14"/><text x="%d" '
            'y="%d">%s</text>' % (cls, 4 + j * 300, height - 24, 24 + j * 300, height - 12, name)
        )
    return "".join(parts) + "</svg>"


def account_bars(runs):
    """Per account: non-compliant at its first run and now, and what the runs
    remediated - a detect-only last run would otherwise show 0 remediated everywhere."""
    first, remediated = {}, {}
    for run in runs:
        for a in run["Accounts"]:
            first.setdefault(a["Account"], a["NonCompliant"])
            if a["Remediated"] is not None:
                remediated[a["Account"]] = remediated.get(a["Account"], 0) + a["Remediated"]
    latest = runs[-1]["Accounts"]
    accounts = sorted(latest, key=lambda a: (-(a["NonCompliant"] or 0), a["Account"]))
    accounts = accounts[:CHART_ACCOUNTS]
    bars = ([("non-compliant, first run", "b-nc-first", first)] if len(runs) > 1 else []) + [
        ("non-compliant now", "b-nc", {a["Account"]: a["NonCompliant"] for a in latest}),
        ("remediated, all runs", "b-rem", remediated),
    ]
    top = max([v for _, _, by in bars for v in by.values() if v] + [1])
    shown = (
        ""
        if len(accounts) == len(latest)
        else '<p class="note">The %d of %d accounts with most non-compliant groups.</p>'
        % (len(accounts), len(latest))
    )
    return shown + '<div id="account-chart">%s</div>' % "".join(
        '<div class="acct" data-account="%s"><div class="acct-name">%s</div>%s</div>'
        % (
            esc(a["Account"]),
            account_html(a),
            "".join(
                '<div class="bar-row" data-series="%s"><span class="bar-label">%s</span>'
                '<span class="track"><span class="bar %s" style="width:%.1f%%"></span>'
                '</span><span class="bar-value">%s</span></div>'
                % (
                    cls,
                    label,
                    cls,
                    100 * (by.get(a["Account"]) or 0) / top,
                    esc(display.count(by.get(a["Account"]))),
                )
                for label, cls, by in bars
            ),
        )
        for a in accounts
    )


# ---- the page -------------------------------------------------------------------------------


def render_html(summary):
    runs = summary["Runs"]
    latest = runs[-1]
    found = display.problems(summary)
    states = Counter(display.STATE_LABELS.get(s["State"], s["State"]) for s in found)
    alert = (
        '<p class="alert" id="alert">%d scan(s) did not complete in this run (%s): the '
        'groups they would have read are not counted. See <a href="#scans">scans not '
        'complete</a>.</p>'
        % (len(found), esc(", ".join("%d %s" % (n, s) for s, n in sorted(states.items()))))
        if found
        else ""
    )
    chart = (
        trend_chart(runs)
        if len(runs) > 1
        else '<p class="note">One run: the next run '
        'into another folder (or a dated sub-folder) gives a trend.</p>'
    )
    body = [
        "<header><h1>IMDSv2 compliance</h1>",
        '<p class="meta">Run of %s; %d account(s), %d region(s); %d run(s) since %s. '
        'From %s.</p>'
        % (
            esc(latest["Run"]),
            latest["Totals"]["Accounts"],
            latest["Totals"]["Regions"],
            len(runs),
            esc(runs[0]["Run"]),
            esc(", ".join(latest["Folders"])),
        ),
        alert,
        "</header>",
        '<section id="controls"><h2>Security Hub controls: groups compliant</h2>',
        headline_cards(runs),
        totals_strip(latest),
        "</section>",
        '<section id="accounts"><h2>Accounts by control</h2>%s</section>' % matrix(latest),
        '<section id="trend"><h2>Trend</h2>%s%s</section>' % (chart, trend_table(runs)),
        '<section id="per-account"><h2>Per account</h2>%s</section>' % account_bars(runs),
        '<section id="owners"><h2>Stack-owned groups by owner</h2>%s</section>' % owners(latest),
        '<section id="groups"><h2>Groups</h2>%s</section>' % drill_down(summary),
        '<section id="scans"><h2>Scans not complete</h2>%s</section>' % problems_table(found),
        '<section id="figures"><h2>By account, region and control</h2>%s</section>'
        % figures_table(latest),
        '<p class="note">Groups are counted once per account and region, whichever '
        'policies matched them. %s: not measured (no policy of the run could know it). '
        'Held back: instances still call IMDSv1. Stack-owned: managed by CloudFormation, '
        'Elastic Beanstalk or an EKS managed node group; left to stack: of them, those an '
        'action left to their owner. Fix proposed, fixed at owner: still non-compliant '
        'until the change set is executed, or the owner\'s update has replaced the '
        'instances\' launch source. Launch configs: launch '
        'configurations that allow IMDSv1; AutoScaling.3 fails them until deleted. '
        'The page stays small at any size: a table of more than %d accounts, groups or '
        'scans (%d rows by account, region and control) lists the worst, says so, and '
        'names where the full list is (<code>c7n-imds summary --format csv</code> or '
        '<code>--format json</code> of the same trees).</p>' % (display.DASH, TOP, TOP_ROWS),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<title>IMDSv2 compliance, %s</title><style>%s</style></head><body>\n%s\n'
        '<script>%s</script>\n</body></html>\n'
        % (esc(latest["Run"]), STYLE, "\n".join(body), SCRIPT)
    )
