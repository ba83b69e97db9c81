"""`c7n-imds summary OUT...`: where an organization stands on IMDSv2, read from the
output trees of `c7n-imds run -s OUT` and `c7n-imds org run -s OUT` (local or S3).

Three layers: ``c7n_imds_report.load`` reads the files and keeps, of each resource,
only the names and facts counted or listed below (never user data or any other field);
``summarize`` here and the functions it calls are pure, with the modules beside it:
``runs`` (the runs in a tree, the state of each scan), ``controls`` (which control
judges a group, each control's share) and ``owners`` (stack-owned groups, what fixes
them); ``c7n_imds_report.render`` turns a summary (c7n_imds_report/schema.json,
docs/summary.md) into a table, CSV, JSON, Markdown or the HTML dashboard.

How the figures are counted, per account, region and control, as distinct group names
(a group matched by several policies counts once):

- control: the controls a policy's ``metadata: {controls: [...]}`` names (else those its
  description names). A group goes to the first of them that judges its launch type
  (AutoScaling.3 and .9 judge launch configurations, EC2.170 launch templates and mixed
  instances policies; others judge any), else to the first named; none: ``other``.
- scanned: groups seen by the ``imds`` filter (``imds-scan.json``; the largest count of
  the account and region wins); ``None`` - not measured - when no policy scanned.
- non-compliant: groups whose launch allows IMDSv1, by launch type; for AutoScaling.9,
  groups that launch from a launch configuration; for EC2.8 instance records, groups
  with an instance that allows IMDSv1. Launch configurations that allow IMDSv1 are
  counted on their own (``None`` when no policy read launch configurations).
- remediated / failed / left to stack: entries of ``imds-changes.json``; failed wins
  over remediated; revert policies are ignored. Left to stack: groups an action left
  to their stack or service (not those left alone as exempt, nor those an owner action
  skipped because no stack or service owns them).
- stack-owned: groups owned by CloudFormation, Elastic Beanstalk or an EKS managed node
  group (their tags) that allow IMDSv1, or that an action left to, or fixed at, their
  owner; per owner kind, how many nobody acted on, have a fix proposed (a change set
  to execute), were fixed at the owner (its update rolling out) or failed. A proposed
  or applied owner fix changes no other figure: the group stays non-compliant until a
  scan sees it launch with IMDSv2 required.
- held back: groups whose instances made IMDSv1 calls and that no policy remediated
  (``None`` when no policy of the account and region evaluated ``imdsv1-usage``).
- exempt: groups whose ``c7n-imds:exemption`` says Exempt.
- compliant share of a control: 1 - non-compliant / scanned over the account-regions
  that were scanned.

A scan that failed is never a compliant one: each account, region and policy has a
state (scanned, errored, unreadable, not scanned - load.py, runs.py), rows carry the
worst state of their account and region, and ``Problems`` lists every scan that is not
``scanned``. Which outputs make one run, and when a missing one is "not scanned": runs.py.
"""
import datetime
from collections import defaultdict

from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds_report.controls import control_for, control_shares, control_sort_key
from c7n_imds_report.owners import (
    OWNER_ACTION,
    UNKNOWN,
    by_owner,
    next_step,
    owner_fix,
    owner_fixes,
    owner_kind,
)
from c7n_imds_report.runs import resolve_accounts, scan_states, split_runs, worst

SCHEMA_VERSION = 1
COUNTED_RESOURCES = ("asg", "launch-config", "ec2")
SETS = ("NonCompliant", "LaunchConfigurations", "Remediated", "HeldBack", "Exempt",
        "LeftToStack", "Failed", "StackOwned", "FixProposed", "FixedAtOwner")
# Of several outcomes for one group, the one that says most (failed wins).
OUTCOME_RANK = ("Skipped", "LeftToStack", "FixProposed", "FixedAtOwner", "Remediated",
                "Failed")
# What every figure is when it was not measured (no scan of the place was read).
NOT_MEASURED = dict({figure: None for figure in SETS}, NonCompliantByLaunchType={},
                    StackOwnedByOwner={})


# ---- pure aggregation ------------------------------------------------------------

def run_cells(outputs):
    """{(account, region, control): {figure: {group: launch type}}}, the scans, and
    what each account and region measured at all."""
    launch_of, scans, measured = {}, {}, defaultdict(set)
    owner_of, optional = {}, set()  # {(account, region, group): owner kind or None}
    for o in outputs:
        for r in o["Records"]:
            key = (o["Account"], o["Region"], r["Name"])
            if r["Kind"] == "group" and r["LaunchType"]:
                launch_of.setdefault(key, r["LaunchType"])
            if r["Kind"] == "group":
                owner_of[key] = owner_of.get(key) or owner_kind(r.get("Stack"))
                if r["HttpTokens"] == "optional":
                    optional.add(key)
        for change in o["Changes"]:
            key = (o["Account"], o["Region"], change["Group"])
            if not owner_of.get(key) and owner_kind(change.get("Owner")):
                owner_of[key] = owner_kind(change["Owner"])
    cells = defaultdict(lambda: {figure: {} for figure in SETS})
    # Earliest policy first: of equally large scans, the one made before any change
    # says how the estate stood (launch types move as groups are converted).
    for o in sorted(outputs, key=lambda o: o["Start"]):
        if o["Resource"] not in COUNTED_RESOURCES or o["State"] != "scanned":
            continue
        where = (o["Account"], o["Region"])
        if o["Resource"] == "launch-config":
            measured[where].add("LaunchConfigurations")
        if o.get("MeasuresUsage"):
            measured[where].add("HeldBack")
        scan = o["Scan"]
        if scan and isinstance(scan.get("Scanned"), int) and (
                where not in scans or scan["Scanned"] > scans[where]["Scanned"]):
            scans[where] = scan
        cells[where + (control_for(o["Controls"], None),)]  # a row even when empty
        for r in o["Records"]:
            launch_type = r["LaunchType"] or launch_of.get(where + (r["Name"],))
            figures = cells[where + (control_for(o["Controls"], launch_type),)]
            if r["Kind"] == "launch-config":
                if r["HttpTokens"] == "optional":
                    figures["LaunchConfigurations"].setdefault(r["Name"], LC)
                continue
            if (launch_type == LC if control_for(o["Controls"], launch_type) ==
                    "AutoScaling.9" else r["HttpTokens"] == "optional"):
                figures["NonCompliant"].setdefault(r["Name"], launch_type)
            if r.get("Exempt"):
                figures["Exempt"].setdefault(r["Name"], launch_type)
            if r.get("Stack") and r["HttpTokens"] == "optional":
                figures["StackOwned"].setdefault(r["Name"], launch_type)
            if r.get("Calls", 0) > 0:
                figures["HeldBack"].setdefault(r["Name"], launch_type)
        for change in o["Changes"]:
            key = where + (change["Group"],)
            if not counted_outcome(change, key, owner_of, optional):
                continue
            launch_type = launch_of.get(key)
            figures = cells[where + (control_for(o["Controls"], launch_type),)]
            figures[change["Outcome"]].setdefault(change["Group"], launch_type)
            if change["Outcome"] in ("LeftToStack", "FixProposed", "FixedAtOwner") or (
                    change["Outcome"] == "Failed" and owner_of.get(key)):
                figures["StackOwned"].setdefault(change["Group"], launch_type)
    by_place = defaultdict(list)
    for key, figures in cells.items():
        by_place[key[:2]].append(figures)
    for rows in by_place.values():
        remediated = {g for f in rows for g in f["Remediated"]}
        failed = {g for f in rows for g in f["Failed"]}
        fixed = {g for f in rows for g in f["FixedAtOwner"]} - failed
        proposed = {g for f in rows for g in f["FixProposed"]} - failed - fixed

        def keep(figures, figure, leave_out):
            figures[figure] = {g: t for g, t in figures[figure].items() if g not in leave_out}
        for figures in rows:
            keep(figures, "Remediated", failed)
            keep(figures, "HeldBack", remediated)
            keep(figures, "FixedAtOwner", failed)
            keep(figures, "FixProposed", failed | fixed)
            keep(figures, "LeftToStack", fixed | proposed)  # its owner acted
    return cells, scans, measured, owner_of


def counted_outcome(change, key, owner_of, optional):
    """Whether an outcome counts: not a group left alone for a reason other than its
    owner (exempt; or a group no stack owns, skipped by an owner action), nor an owner
    fix found already in place on a group that already complies."""
    outcome = change["Outcome"]
    if outcome == "Skipped":
        return False
    if outcome == "LeftToStack" and key in owner_of and not owner_of[key]:
        return False  # read with its tags: no stack or service owns it
    if outcome == "FixedAtOwner" and (change.get("Fix") or {}).get(
            "Status") == "already-applied" and key in owner_of and key not in optional:
        return False
    return True


def tally(cells, bucket_of, measured, owner_of=None):
    """Counts of distinct (account, region, group) per bucket of rows; a figure that no
    account-region of the bucket measured is None."""
    buckets = defaultdict(lambda: {figure: {} for figure in SETS})
    places = defaultdict(set)
    for key, figures in cells.items():
        merged = buckets[bucket_of(key)]
        places[bucket_of(key)].add(key[:2])
        for figure, members in figures.items():
            for name, launch_type in members.items():
                merged[figure].setdefault(key[:2] + (name,), launch_type)
    return {bucket: count(figures, set().union(*(measured[p] for p in places[bucket])),
                          owner_of)
            for bucket, figures in buckets.items()}


def count(figures, measured=frozenset(("LaunchConfigurations", "HeldBack")), owner_of=None):
    """The figures' counts; ``figures`` keyed by (account, region, group) as tally
    merges them, ``owner_of`` the owner kind of each."""
    counts = {figure: len(figures[figure]) for figure in SETS}
    for figure in ("LaunchConfigurations", "HeldBack"):
        if figure not in measured:
            counts[figure] = None
    by_type = defaultdict(int)
    for launch_type in figures["NonCompliant"].values():
        by_type[launch_type or UNKNOWN] += 1
    counts["NonCompliantByLaunchType"] = dict(sorted(by_type.items()))
    counts["StackOwnedByOwner"] = by_owner(figures, owner_of or {})
    return counts


def scanned(scans, where_filter):
    known = [s["Scanned"] for where, s in scans.items() if where_filter(where)]
    return sum(known) if known else None


def summarize_run(outputs, expected=None):
    cells, scans, measured, owner_of = run_cells(outputs)
    states = scan_states(outputs, expected)
    state_of = defaultdict(list)
    for s in states:
        state_of[(s["Account"], s["Region"])].append(s["State"])
    names = {s["Account"]: s["AccountName"] for s in states}
    controls = sorted({k[2] for k in cells} | {c for o in outputs for c in o["Controls"]},
                      key=control_sort_key) or ["other"]
    for where in state_of:  # an account-region with nothing counted still has rows
        for control in controls if where not in {k[:2] for k in cells} else ():
            cells[where + (control,)]
    rows = []
    for key, counts in sorted(tally(cells, lambda k: k, measured, owner_of).items(),
                              key=lambda kv: (kv[0][0], kv[0][1], control_sort_key(kv[0][2]))):
        scan, state = scans.get(key[:2]) or {}, worst(state_of[key[:2]])
        if state != "scanned" and not scan:
            counts = dict(counts, **NOT_MEASURED)
        rows.append(dict(
            Account=key[0], AccountName=names.get(key[0]), Region=key[1], Control=key[2],
            State=state, Scanned=scan.get("Scanned"), ScannedByLaunchType={
                t: v.get("Groups") for t, v in sorted((scan.get("ByLaunchType") or {}).items())
                if isinstance(v, dict)}, **counts))
    accounts = [dict(Account=a, AccountName=names.get(a),
                     Scanned=scanned(scans, lambda w, a=a: w[0] == a), **counts)
                for (a,), counts in sorted(tally(cells, lambda k: k[:1], measured,
                                                 owner_of).items())]
    for account in accounts:  # nothing of it was read: not measured, not 0
        if not any(worst(states) == "scanned" for where, states in state_of.items()
                   if where[0] == account["Account"]):
            account.update(NOT_MEASURED)
    totals = tally(cells, lambda k: (), measured, owner_of).get(()) or count(
        {f: {} for f in SETS})
    start = min((o["Start"] for o in outputs if o["Start"]), default=0)
    return {"Run": iso(start), "Start": start,
            "Folders": sorted({o["Folder"] for o in outputs}),
            "Rows": rows, "Accounts": accounts,
            "Controls": control_shares(rows, controls, owner_fixes(cells)),
            "Totals": dict(Accounts=len({k[0] for k in cells}),
                           Regions=len({k[1] for k in cells}),
                           Scanned=scanned(scans, lambda w: True), **totals),
            "_outputs": outputs, "_states": states}


def drill_down(outputs, states):
    """The latest run's groups that are not compliant, or were changed, and why; for a
    stack-owned group, its owner and what fixes it (the fix proposed or applied at the
    owner, else the action that would)."""
    names = {s["Account"]: s["AccountName"] for s in states}
    facts, changes = {}, {}
    for o in outputs:
        for r in o["Records"]:
            if r["Kind"] != "group":
                continue
            key = (o["Account"], o["Region"], r["Name"])
            seen = facts.setdefault(key, dict(r, Controls=o["Controls"], Optional=False))
            seen["Optional"] |= r["HttpTokens"] == "optional"
            for field in ("LaunchType", "Owner", "Stack", "StackGuidance", "ExemptReason",
                          "ExemptUntil", "Days"):
                seen[field] = seen.get(field) or r.get(field)
            seen["Calls"] = max(seen.get("Calls") or 0, r.get("Calls") or 0)
            seen["Exempt"] = seen.get("Exempt") or r.get("Exempt") or r.get("ExemptByTag")
        for change in o["Changes"]:
            key = (o["Account"], o["Region"], change["Group"])
            before = changes.get(key, {}).get("Outcome", "Skipped")
            if OUTCOME_RANK.index(change["Outcome"]) >= OUTCOME_RANK.index(before):
                changes[key] = dict(change, Controls=o["Controls"])
    groups = []
    for key in sorted(set(facts) | set(changes)):
        fact, change = facts.get(key, {}), changes.get(key, {})
        outcome, stack = change.get("Outcome"), fact.get("Stack") or change.get("Owner")
        kind = owner_kind(stack)
        if outcome == "LeftToStack" and fact and not fact.get("Stack"):
            outcome = "Skipped"  # read with its tags: no stack or service owns it
        state, reason, fix = None, None, None
        if outcome == "Failed":
            state, reason = "failed", change.get("Reason")
            if change.get("Action") in OWNER_ACTION.values():
                fix = dict(Action=change["Action"], Status="failed", Detail=reason)
        elif outcome == "Remediated":
            state = "remediated"
        elif outcome in ("FixedAtOwner", "FixProposed"):
            fix = owner_fix(change, kind, key[1])
            if not (fix["Status"] == "already-applied" and fact and not fact["Optional"]):
                state = "fixed-at-owner" if outcome == "FixedAtOwner" else "fix-proposed"
                reason = fix.get("Detail")
        elif outcome == "LeftToStack" or (fact.get("Optional") and stack):
            state, reason = "stack-owned", fact.get("StackGuidance") or change.get("Reason")
            fix = next_step(kind, change if outcome == "LeftToStack" else {})
        elif fact.get("Optional") and fact.get("Exempt"):
            state, reason = "exempt", fact.get("ExemptReason")
        elif fact.get("Optional") and fact.get("Calls"):
            state = "held-back"
        elif fact.get("Optional"):
            state = "non-compliant"
        if state is None:
            continue
        launch_type = fact.get("LaunchType")
        owned = state in ("stack-owned", "fix-proposed", "fixed-at-owner") or fix is not None
        groups.append(dict(
            Account=key[0], AccountName=names.get(key[0]), Region=key[1], Group=key[2],
            Control=control_for(fact.get("Controls") or change.get("Controls") or [],
                                launch_type),
            State=state, LaunchType=launch_type,
            Calls=int(fact["Calls"]) if state == "held-back" else None,
            Days=fact.get("Days") if state == "held-back" else None,
            Owner=fact.get("Owner"), Reason=reason,
            Until=fact.get("ExemptUntil") if state == "exempt" else None,
            Stack=stack if owned else None, OwnerKind=kind if owned else None, Fix=fix))
    return groups


def summarize(outputs_per_folder, expected=None):
    """The summary (schema.json) from ``load_folder`` results, one list per folder;
    ``expected``: {(account id, region): account name} from an accounts file."""
    runs = [run for outputs in outputs_per_folder
            for run in split_runs(resolve_accounts(outputs, expected))]
    summaries = sorted((summarize_run(r, expected) for r in runs), key=lambda r: r["Start"])
    latest = summaries[-1] if summaries else {"_outputs": [], "_states": scan_states(
        [], expected)}
    states = latest["_states"]
    groups = drill_down(latest["_outputs"], states)
    for run in summaries:
        del run["_outputs"], run["_states"]
    return {"SchemaVersion": SCHEMA_VERSION, "Runs": summaries, "Scans": states,
            "Groups": groups, "Problems": [s for s in states if s["State"] != "scanned"]}


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")
