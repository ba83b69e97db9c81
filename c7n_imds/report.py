"""`c7n-imds summary OUT...`: where an organization stands on IMDSv2, read from the
output folders of `c7n-imds run -s OUT` and `c7n-imds org run -s OUT`.

Three layers: ``load_folder`` reads the files and keeps, of each resource, only the
names and facts counted below (never user data or any other field); ``summarize`` and
the functions it calls are pure; ``render_*`` turn a summary into text.

How the figures are counted, per account, region and control, as distinct group names
(a group matched by several policies counts once):

- control: the controls a policy's description names (``AutoScaling.N``, ``EC2.N``), in
  order. A group goes to the first of them that judges its launch type (AutoScaling.3
  and .9 judge launch configurations, EC2.170 launch templates and mixed instances
  policies; others judge any), else to the first named; no control named: ``other``.
- scanned: groups seen by the first ``imds`` filter of the account and region's
  policies (``imds-scan.json``; the largest count wins). The same on each control row.
- non-compliant: groups whose launch allows IMDSv1 (``c7n-imds:launch`` HttpTokens
  ``optional``), by launch type; for AutoScaling.9, groups that launch from a launch
  configuration; for EC2.8 instance records, groups (``aws:autoscaling:groupName``)
  with an instance whose MetadataOptions allow IMDSv1. Launch configurations that allow
  IMDSv1 (AutoScaling.3 judges every one, used or not) are counted on their own.
- remediated / failed / left to stack: entries of ``imds-changes.json`` (success,
  ``Error``, ``Skipped``); failed wins over remediated; revert policies are ignored.
- held back (IMDSv1 use): groups whose instances made IMDSv1 calls
  (``c7n-imds:imdsv1-calls`` Total > 0) and that no policy remediated. Only runs that
  evaluate ``imdsv1-usage`` (remediate.yml, notify.yml) can know this.
- exempt: groups whose ``c7n-imds:exemption`` says Exempt.

A file a policy writes only when its filter or action runs (``imds-scan.json``,
``imds-changes.json``) is ignored when older than that policy's execution start: it is
left over from an earlier run into the same folder.

Each OUT folder is one run (keyed by its earliest execution start); a folder in which a
policy appears twice for one account and region holds several runs and is split by
sub-folder. Several runs give a trend, one line per run with totals. Totals count
distinct groups per account and region across controls.
"""
import argparse
import csv
import datetime
import html
import io
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

LC, LT, MIXED, UNKNOWN = (
    "launch-configuration", "launch-template", "mixed-instances-policy", "unknown")
LAUNCH_TYPES = (LC, LT, MIXED)
CONTROL = re.compile(r"\b((?:AutoScaling|EC2)\.\d+)\b")
CONTROL_SCOPE = {"AutoScaling.3": {LC}, "AutoScaling.9": {LC}, "EC2.170": {LT, MIXED}}
COUNTED_RESOURCES = ("asg", "launch-config", "ec2")
LAUNCH_KEY, USAGE_KEY, EXEMPT_KEY = (
    "c7n-imds:launch", "c7n-imds:imdsv1-calls", "c7n-imds:exemption")
GROUP_TAG = "aws:autoscaling:groupName"
REVERT_ACTION = "revert-imds-remediation"
SETS = ("NonCompliant", "LaunchConfigurations", "Remediated", "HeldBack", "Exempt",
        "LeftToStack", "Failed")
MTIME_SLACK = 2  # seconds; some filesystems store coarse modification times


# ---- reading ---------------------------------------------------------------------

def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fresh_json(path, start):
    try:
        if os.path.getmtime(path) < start - MTIME_SLACK:
            return None
    except OSError:
        return None
    return read_json(path)


def load_folder(root):
    """Every policy output under ``root`` (any layout), reduced to counted facts."""
    root = Path(root)
    outputs = []
    for meta_path in sorted(root.rglob("metadata.json")):
        meta = read_json(meta_path)
        if not isinstance(meta, dict) or not isinstance(meta.get("policy"), dict):
            continue
        folder = meta_path.parent
        start = float((meta.get("execution") or {}).get("start") or 0)
        resources = read_json(folder / "resources.json")
        outputs.append(policy_output(
            meta, resources if isinstance(resources, list) else [],
            fresh_json(folder / "imds-scan.json", start),
            fresh_json(folder / "imds-changes.json", start),
            folder.relative_to(root).parts, str(root)))
    return outputs


def policy_output(meta, resources, scan, changes, parts, folder):
    """One policy's output as plain facts. Pure."""
    policy, config = meta["policy"], meta.get("config") or {}
    resource = str(policy.get("resource") or "")
    resource = resource[4:] if resource.startswith("aws.") else resource
    actions = [a.get("type") if isinstance(a, dict) else a
               for a in policy.get("actions") or ()]
    records = [resource_facts(resource, r) for r in resources if isinstance(r, dict)]
    return {
        "Folder": folder, "Parts": tuple(parts), "Policy": str(policy.get("name")),
        "Resource": resource, "Controls": controls_of(policy.get("description")),
        "Account": str(config.get("account_id") or "unknown"),
        "Region": str(config.get("region") or "unknown"),
        "Start": float((meta.get("execution") or {}).get("start") or 0),
        "Records": [r for r in records if r["Name"]],
        "Scan": scan if isinstance(scan, dict) else None,
        "Changes": [] if REVERT_ACTION in actions else change_outcomes(changes)}


def resource_facts(resource, record):
    """The fields counted, and nothing else, of one resource record."""
    launch = record.get(LAUNCH_KEY) if isinstance(record.get(LAUNCH_KEY), dict) else {}
    if resource == "launch-config":
        return {"Kind": "launch-config", "Name": record.get("LaunchConfigurationName"),
                "LaunchType": LC, "HttpTokens": launch.get("HttpTokens")}
    if resource == "ec2":
        tags = {t.get("Key"): t.get("Value") for t in record.get("Tags") or ()
                if isinstance(t, dict)}
        return {"Kind": "instance", "Name": tags.get(GROUP_TAG), "LaunchType": None,
                "HttpTokens": (record.get("MetadataOptions") or {}).get("HttpTokens")}
    usage = record.get(USAGE_KEY) if isinstance(record.get(USAGE_KEY), dict) else {}
    exemption = record.get(EXEMPT_KEY) if isinstance(record.get(EXEMPT_KEY), dict) else {}
    calls = usage.get("Total")
    return {"Kind": "group", "Name": record.get("AutoScalingGroupName"),
            "LaunchType": launch.get("LaunchType"), "HttpTokens": launch.get("HttpTokens"),
            "Calls": calls if isinstance(calls, (int, float)) else 0,
            "Exempt": exemption.get("Exempt") is True}


def change_outcomes(changes):
    outcomes = []
    for entry in changes if isinstance(changes, list) else ():
        if not isinstance(entry, dict) or not entry.get("AutoScalingGroupName"):
            continue
        if "RevertedTo" in entry:
            continue
        outcome = "Failed" if "Error" in entry else (
            "LeftToStack" if "Skipped" in entry else "Remediated")
        outcomes.append({"Group": str(entry["AutoScalingGroupName"]), "Outcome": outcome})
    return outcomes


# ---- pure aggregation ------------------------------------------------------------

def controls_of(description):
    found = []
    for control in CONTROL.findall(str(description or "")):
        if control not in found:
            found.append(control)
    return found


def control_for(controls, launch_type):
    for control in controls:
        scope = CONTROL_SCOPE.get(control)
        if launch_type is None or scope is None or launch_type in scope:
            return control
    return controls[0] if controls else "other"


def control_sort_key(control):
    prefix, _, number = control.partition(".")
    return (prefix == "other", prefix, int(number) if number.isdigit() else 0)


def account_name(output):
    """c7n-org writes OUT/<account name>/<region>/<policy>/: the name, when so laid out."""
    parts = output["Parts"]
    if len(parts) >= 3 and parts[-2] == output["Region"]:
        return parts[-3]
    return None


def split_runs(outputs):
    """Runs in one folder: while a policy appears twice for one account and region,
    split by the next sub-folder (e.g. ``-s OUT/{now:%Y-%m-%d}``)."""
    keys = [(o["Account"], o["Region"], o["Policy"]) for o in outputs]
    if len(set(keys)) == len(keys):
        return [outputs] if outputs else []
    by_child, runs = defaultdict(list), []
    for o in outputs:
        if len(o["Parts"]) > 1:
            by_child[o["Parts"][0]].append(dict(
                o, Parts=o["Parts"][1:], Folder=os.path.join(o["Folder"], o["Parts"][0])))
        else:
            by_child[None].append(o)
    for child in sorted(by_child, key=lambda c: (c is None, c or "")):
        runs.extend(split_runs(by_child[child]) if child else [by_child[child]])
    return runs


def run_cells(outputs):
    """{(account, region, control): {figure: {group: launch type}}} and the scans."""
    launch_of, scans = {}, {}
    for o in outputs:
        for r in o["Records"]:
            if r["Kind"] == "group" and r["LaunchType"]:
                launch_of.setdefault((o["Account"], o["Region"], r["Name"]), r["LaunchType"])
    cells = defaultdict(lambda: {figure: {} for figure in SETS})
    for o in outputs:
        if o["Resource"] not in COUNTED_RESOURCES:
            continue
        where = (o["Account"], o["Region"])
        scan = o["Scan"]
        if scan and isinstance(scan.get("Scanned"), int) and (
                where not in scans or scan["Scanned"] > scans[where]["Scanned"]):
            scans[where] = scan
        cells[where + (control_for(o["Controls"], None),)]  # a row even when empty
        for r in o["Records"]:
            launch_type = r["LaunchType"] or launch_of.get(where + (r["Name"],))
            control = control_for(o["Controls"], launch_type)
            figures = cells[where + (control,)]
            if r["Kind"] == "launch-config":
                if r["HttpTokens"] == "optional":
                    figures["LaunchConfigurations"].setdefault(r["Name"], LC)
                continue
            if (launch_type == LC if control == "AutoScaling.9"
                    else r["HttpTokens"] == "optional"):
                figures["NonCompliant"].setdefault(r["Name"], launch_type)
            if r.get("Exempt"):
                figures["Exempt"].setdefault(r["Name"], launch_type)
            if r.get("Calls", 0) > 0:
                figures["HeldBack"].setdefault(r["Name"], launch_type)
        for change in o["Changes"]:
            launch_type = launch_of.get(where + (change["Group"],))
            cells[where + (control_for(o["Controls"], launch_type),)][
                change["Outcome"]].setdefault(change["Group"], launch_type)
    for where in {key[:2] for key in cells}:
        rows = [figures for key, figures in cells.items() if key[:2] == where]
        remediated = {g for f in rows for g in f["Remediated"]}
        failed = {g for f in rows for g in f["Failed"]}
        for figures in rows:
            figures["Remediated"] = {g: t for g, t in figures["Remediated"].items()
                                     if g not in failed}
            figures["HeldBack"] = {g: t for g, t in figures["HeldBack"].items()
                                   if g not in remediated}
    return cells, scans


def tally(cells, bucket_of):
    """Counts of distinct (account, region, group) per bucket of rows."""
    buckets = defaultdict(lambda: {figure: {} for figure in SETS})
    for key, figures in cells.items():
        merged = buckets[bucket_of(key)]
        for figure, members in figures.items():
            for name, launch_type in members.items():
                merged[figure].setdefault(key[:2] + (name,), launch_type)
    return {bucket: count(figures) for bucket, figures in buckets.items()}


def count(figures):
    counts = {figure: len(figures[figure]) for figure in SETS}
    by_type = defaultdict(int)
    for launch_type in figures["NonCompliant"].values():
        by_type[launch_type or UNKNOWN] += 1
    counts["NonCompliantByLaunchType"] = dict(sorted(by_type.items()))
    return counts


def scanned(scans, where_filter):
    known = [s["Scanned"] for where, s in scans.items() if where_filter(where)]
    return sum(known) if known else None


def summarize_run(outputs):
    cells, scans = run_cells(outputs)
    names = {}
    for o in outputs:
        names.setdefault(o["Account"], account_name(o))
    rows = []
    for key, counts in sorted(tally(cells, lambda k: k).items(), key=lambda kv: (
            kv[0][0], kv[0][1], control_sort_key(kv[0][2]))):
        scan = scans.get(key[:2]) or {}
        rows.append(dict(
            Account=key[0], AccountName=names.get(key[0]), Region=key[1], Control=key[2],
            Scanned=scan.get("Scanned"), ScannedByLaunchType={
                t: v.get("Groups") for t, v in sorted((scan.get("ByLaunchType") or {}).items())
                if isinstance(v, dict)}, **counts))
    accounts = [dict(Account=a, AccountName=names.get(a),
                     Scanned=scanned(scans, lambda w, a=a: w[0] == a), **counts)
                for (a,), counts in sorted(tally(cells, lambda k: k[:1]).items())]
    totals = tally(cells, lambda k: ()).get(()) or count({f: {} for f in SETS})
    start = min(o["Start"] for o in outputs)
    return {"Run": iso(start), "Start": start,
            "Folders": sorted({o["Folder"] for o in outputs}),
            "Rows": rows, "Accounts": accounts,
            "Totals": dict(Accounts=len(names), Regions=len({k[1] for k in cells}),
                           Scanned=scanned(scans, lambda w: True), **totals)}


def summarize(outputs_per_folder):
    """{"Runs": [...]} oldest first, from ``load_folder`` results, one list per folder."""
    runs = [run for outputs in outputs_per_folder for run in split_runs(outputs)]
    return {"Runs": sorted((summarize_run(r) for r in runs), key=lambda r: r["Start"])}


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


# ---- rendering -------------------------------------------------------------------

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
    body.append(["Total (%d accounts)" % totals["Accounts"], "%d regions" % totals["Regions"],
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

    def table(headers, body):
        return tabulate([[escape(c) for c in row] for row in body], headers,
                        tablefmt=tablefmt, disable_numparse=True)
    out = ["%sIMDSv2 summary, run of %s (%s)" % (
        title, latest["Run"], escape(", ".join(latest["Folders"]))), "",
        table(*rows_table(summary, latest))]
    if len(summary["Runs"]) > 1:
        out += ["", section + "Trend", "", table(*trend_table(summary))]
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
    group = bar * len(series) + gap
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
            x0 + (group - gap) // 2, base + 16, e(label if len(label) <= 24
                                                    else label[:23] + "\u2026")))
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


SERIES = (("Non-compliant", "#c0392b", "NonCompliant"),
          ("Remediated", "#27ae60", "Remediated"))
STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
         "margin:1em 0}th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}"
         "th{background:#eee}td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}"
         "svg text{font-size:12px}.note{color:#555;max-width:60em}")


def render_html(summary):
    e = html.escape
    latest = summary["Runs"][-1]
    accounts = latest["Accounts"]
    body = ["<h1>IMDSv2 compliance summary</h1>",
            "<p>Run of %s, from %s.</p>" % (e(latest["Run"]), e(", ".join(latest["Folders"]))),
            "<h2>Non-compliant and remediated groups per account</h2>",
            bar_chart("Non-compliant and remediated groups per account",
                      [display_account(a) for a in accounts],
                      [(n, c, [a[k] for a in accounts]) for n, c, k in SERIES])]
    if len(summary["Runs"]) > 1:
        body += ["<h2>Trend</h2>", bar_chart(
            "Non-compliant and remediated groups per run",
            [r["Run"][:16] for r in summary["Runs"]],
            [(n, c, [r["Totals"][k] for r in summary["Runs"]]) for n, c, k in SERIES]),
            html_table(*trend_table(summary))]
    body += ["<h2>By account, region and control</h2>", html_table(*rows_table(
        summary, latest)), '<p class="note">Groups are counted once per account and '
        'region, whichever policies matched them. Held back: instances still call IMDSv1 '
        '(CloudWatch MetadataNoToken). Left to stack: managed by CloudFormation or '
        'Elastic Beanstalk. Launch configs: launch configurations that allow IMDSv1; '
        'AutoScaling.3 fails them until deleted.</p>']
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>c7n-imds '
            'IMDSv2 summary</title><style>%s</style></head><body>\n%s\n</body></html>\n' % (
                STYLE, "\n".join(body)))


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json,
             "markdown": render_markdown, "html": render_html}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="c7n-imds summary", description="IMDSv2 compliance per account, region and "
        "control, from the output folders of `c7n-imds run -s` / `c7n-imds org run -s`. "
        "Several folders (or runs in one folder) give a trend.")
    parser.add_argument("folders", nargs="+", metavar="OUTPUT_DIR")
    parser.add_argument("--format", choices=sorted(RENDERERS), default="table")
    parser.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    options = parser.parse_args(argv)
    outputs = []
    for folder in options.folders:
        loaded = load_folder(folder) if os.path.isdir(folder) else []
        if not loaded:
            print("c7n-imds summary: no custodian output (metadata.json) under %s" % folder,
                  file=sys.stderr)
            return 2
        outputs.append(loaded)
    text = RENDERERS[options.format](summarize(outputs))
    if options.output:
        with open(options.output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
