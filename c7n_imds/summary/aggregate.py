"""`c7n-imds summary OUT...`: where an organization stands on IMDSv2, read from the
output folders of `c7n-imds run -s OUT` and `c7n-imds org run -s OUT`.

Three layers: ``c7n_imds.summary.load`` reads the files and keeps, of each resource,
only the names and facts counted below (never user data or any other field);
``summarize`` here and the functions it calls are pure; ``c7n_imds.summary.render``
turns a summary into a table, CSV, JSON, Markdown or HTML.

How the figures are counted, per account, region and control, as distinct group names
(a group matched by several policies counts once):

- control: the controls a policy's ``metadata: {controls: [...]}`` names (else those its
  description names: ``AutoScaling.N``, ``EC2.N``), in
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
import datetime
import os
from collections import defaultdict

from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds.names import LAUNCH_TEMPLATE as LT
from c7n_imds.names import MIXED_INSTANCES_POLICY as MIXED

UNKNOWN = "unknown"
CONTROL_SCOPE = {"AutoScaling.3": {LC}, "AutoScaling.9": {LC}, "EC2.170": {LT, MIXED}}
COUNTED_RESOURCES = ("asg", "launch-config", "ec2")
SETS = ("NonCompliant", "LaunchConfigurations", "Remediated", "HeldBack", "Exempt",
        "LeftToStack", "Failed")


# ---- pure aggregation ------------------------------------------------------------

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
    # Earliest policy first: of equally large scans, the one made before any change
    # says how the estate stood (launch types move as groups are converted).
    for o in sorted(outputs, key=lambda o: o["Start"]):
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
    by_place = defaultdict(list)
    for key, figures in cells.items():
        by_place[key[:2]].append(figures)
    for rows in by_place.values():
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
        names[o["Account"]] = names.get(o["Account"]) or account_name(o)
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
            "Totals": dict(Accounts=len({k[0] for k in cells}),
                           Regions=len({k[1] for k in cells}),
                           Scanned=scanned(scans, lambda w: True), **totals)}


def summarize(outputs_per_folder):
    """{"Runs": [...]} oldest first, from ``load_folder`` results, one list per folder."""
    runs = [run for outputs in outputs_per_folder for run in split_runs(outputs)]
    return {"Runs": sorted((summarize_run(r) for r in runs), key=lambda r: r["Start"])}


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")
