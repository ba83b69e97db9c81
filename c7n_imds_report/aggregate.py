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
import itertools
from collections import defaultdict

from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds.names import LAUNCH_TEMPLATE as LT
from c7n_imds.names import MIXED_INSTANCES_POLICY as MIXED
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
from c7n_imds_report.runs import (
    scan_states,
    split_runs,  # noqa: F401  (the runs of a tree)
    worst,
)

SCHEMA_VERSION = 2
# The resource each control's AWS Config rule evaluates (Security Hub's view).
RESOURCE_TYPES = {
    "AutoScaling.3": "launch-configuration",
    "AutoScaling.9": "auto-scaling-group",
    "EC2.170": "launch-template",
    "EC2.8": "instance",
}
COUNTED_RESOURCES = ("asg", "launch-config", "ec2")
SETS = (
    "NonCompliant",
    "LaunchConfigurations",
    "Remediated",
    "HeldBack",
    "Exempt",
    "LeftToStack",
    "Failed",
    "StackOwned",
    "FixProposed",
    "FixedAtOwner",
)
# Of several outcomes for one group, the one that says most (failed wins).
OUTCOME_RANK = ("Skipped", "LeftToStack", "FixProposed", "FixedAtOwner", "Remediated", "Failed")
# What every figure is when it was not measured (no scan of the place was read).
NOT_MEASURED = dict(
    {figure: None for figure in SETS}, NonCompliantByLaunchType={}, StackOwnedByOwner={}
)


# ---- pure aggregation ------------------------------------------------------------


def primary_control(controls, launch_type):
    """The control a group's other figures (exempt, held back, stack-owned, outcomes) are
    listed under: AutoScaling.3 for a launch configuration, EC2.170 for a template, as
    Security Hub judges them, when the run measured it; else ``control_for``'s."""
    if launch_type == LC and "AutoScaling.3" in controls:
        return "AutoScaling.3"
    if launch_type in (LT, MIXED) and "EC2.170" in controls:
        return "EC2.170"
    return control_for(
        [c for c in controls if c not in ("AutoScaling.9", "EC2.8")] or controls, launch_type
    )


def judged(control, controls, launch_type):
    """Whether ``control`` judges a group of ``launch_type`` on the group view, and by
    what: "launch" (fails when its launch allows IMDSv1) or "type" (AutoScaling.9: fails
    when it launches from a launch configuration). EC2.8 judges instances (not here)."""
    if control == "AutoScaling.9":
        return "type"
    if control == "AutoScaling.3":
        return "launch" if launch_type == LC else None
    if control == "EC2.170":
        return "launch" if launch_type in (LT, MIXED) else None
    if control == "EC2.8":
        return None
    return "launch" if primary_control(controls, launch_type) == control else None


def run_cells(outputs):
    """{(account, region, control): {figure: {group: launch type}}}, the scans, what each
    account and region measured at all, owners, and Security Hub's resource view.

    State after the run: a group's launch (its type and HttpTokens) is the last one seen
    - a record of a later policy, or the launch source an action's read-back proved
    (a ``changed`` outcome) - so a group remediated in the run counts compliant, and a
    group matched by several policies counts once per control."""
    launch_of, scans, measured = {}, {}, defaultdict(set)
    owner_of, optional = {}, set()  # {(account, region, group): owner kind or None}
    final, controls_at = {}, defaultdict(set)
    lcs, instances, inventory = {}, {}, defaultdict(set)
    ordered = sorted(outputs, key=lambda o: o["Start"])
    scan_at, uncontrolled = {}, set()
    # Outputs that started at the same instant cannot be told apart in time: their
    # records are read first, then the changes their actions proved (read back after).
    for _, batch in itertools.groupby(ordered, key=lambda o: o["Start"]):
        batch = list(batch)
        for o in batch:
            read_records(
                o,
                launch_of,
                owner_of,
                final,
                lcs,
                instances,
                controls_at,
                inventory,
                uncontrolled,
                scans,
                scan_at,
            )
        for o in batch:
            if o["State"] != "scanned" or o["Resource"] not in COUNTED_RESOURCES:
                continue
            where = (o["Account"], o["Region"])
            for change in o["Changes"]:
                if change["Outcome"] != "Remediated":
                    continue
                key = where + (change["Group"],)
                seen = final.setdefault(key, [None, launch_of.get(key)])
                before, after = seen[1], change.get("LaunchTypeAfter") or seen[1]
                seen[0], seen[1] = "required", after
                if where in scans and before and after != before and scan_at[where] <= o["Start"]:
                    by_type = scans[where]["ByLaunchType"]  # the scan came before it
                    for t, step in ((before, -1), (after, 1)):
                        entry = by_type.setdefault(t, {"Groups": 0})
                        entry["Groups"] = max(0, (entry.get("Groups") or 0) + step)
    for key, (tokens, _) in final.items():
        if tokens == "optional":
            optional.add(key)
    cells = defaultdict(lambda: {figure: {} for figure in SETS})
    for where, controls in controls_at.items():
        for control in controls:
            cells[where + (control,)]  # a row even when empty
    for o in ordered:
        if o["Resource"] not in COUNTED_RESOURCES or o["State"] != "scanned":
            continue
        where = (o["Account"], o["Region"])
        controls = sorted(controls_at[where], key=control_sort_key)
        if o["Resource"] == "launch-config":
            measured[where].add("LaunchConfigurations")
        if o.get("MeasuresUsage"):
            measured[where].add("HeldBack")
        for r in o["Records"]:
            if r["Kind"] != "group":
                continue
            key = where + (r["Name"],)
            launch_type = final.get(key, [None, None])[1] or launch_of.get(key)
            figures = cells[where + (primary_control(controls, launch_type),)]
            if r.get("Exempt"):
                figures["Exempt"].setdefault(r["Name"], launch_type)
            if r.get("Stack") and key in optional:
                figures["StackOwned"].setdefault(r["Name"], launch_type)
            if r.get("Calls", 0) > 0:
                figures["HeldBack"].setdefault(r["Name"], launch_type)
        for change in o["Changes"]:
            key = where + (change["Group"],)
            if not counted_outcome(change, key, owner_of, optional):
                continue
            launch_type = launch_of.get(key)  # the launch the action found
            figures = cells[where + (primary_control(controls, launch_type),)]
            figures[change["Outcome"]].setdefault(change["Group"], launch_type)
            if change["Outcome"] in ("LeftToStack", "FixProposed", "FixedAtOwner") or (
                change["Outcome"] == "Failed" and owner_of.get(key)
            ):
                figures["StackOwned"].setdefault(change["Group"], launch_type)
    for key, (tokens, launch_type) in final.items():
        where = key[:2]
        controls = sorted(controls_at[where], key=control_sort_key)
        for control in controls:
            # "other": the groups of the policies that name no control
            how = (
                ("launch" if key in uncontrolled else None)
                if control == "other"
                else judged(control, controls, launch_type)
            )
            if how == "type" and launch_type == LC or how == "launch" and tokens == "optional":
                cells[where + (control,)]["NonCompliant"].setdefault(key[2], launch_type)
    for key, record in instances.items():  # EC2.8 on groups: one with an IMDSv1 instance
        if (
            record["HttpTokens"] == "optional"
            and record["Name"]
            and "EC2.8" in controls_at[key[:2]]
        ):
            cells[key[:2] + ("EC2.8",)]["NonCompliant"].setdefault(
                record["Name"], launch_of.get(key[:2] + (record["Name"],))
            )
    for key, record in lcs.items():
        if record["HttpTokens"] == "optional":
            where = key[:2]
            control = (
                "AutoScaling.3"
                if "AutoScaling.3" in controls_at[where]
                else primary_control(sorted(controls_at[where], key=control_sort_key), LC)
            )
            cells[where + (control,)]["LaunchConfigurations"].setdefault(key[2], LC)
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
    read = defaultdict(set)
    for o in ordered:
        if o["State"] == "scanned":
            read[(o["Account"], o["Region"])].add(o["Resource"])
    return (
        cells,
        scans,
        measured,
        owner_of,
        resource_view(lcs, instances, inventory, read, controls_at),
    )


def read_records(
    o,
    launch_of,
    owner_of,
    final,
    lcs,
    instances,
    controls_at,
    inventory,
    uncontrolled,
    scans,
    scan_at,
):
    """What one output's records and scan say (run_cells' first pass): launch types and
    owners from every output; the last launch seen, launch configurations, instances,
    controls and scans from the outputs that were read. The latest scan wins (it saw
    the changes of every policy before it); of scans that started together, the
    largest."""
    where = (o["Account"], o["Region"])
    for r in o["Records"]:
        key = where + (r["Name"],)
        if r["Kind"] == "group" and r["LaunchType"]:
            launch_of.setdefault(key, r["LaunchType"])
        if r["Kind"] == "group":
            owner_of[key] = owner_of.get(key) or owner_kind(r.get("Stack"))
    for change in o["Changes"]:
        key = where + (change["Group"],)
        if not owner_of.get(key) and owner_kind(change.get("Owner")):
            owner_of[key] = owner_kind(change["Owner"])
    if o["State"] != "scanned" or o["Resource"] not in COUNTED_RESOURCES:
        return
    # a policy that names no control serves "other": its groups are judged there
    controls_at[where].update(o["Controls"] or ["other"])
    if o.get("Inventory"):
        inventory[where].add(o["Resource"])
    for r in o["Records"]:
        key = where + (r["Name"],)
        if r["Kind"] == "group":
            seen = final.setdefault(key, [None, None])
            seen[0] = r["HttpTokens"] or seen[0]
            seen[1] = r["LaunchType"] or seen[1]
            if not o["Controls"]:
                uncontrolled.add(key)
        elif r["Kind"] == "launch-config":
            lcs[key] = r
        elif r["Kind"] == "instance" and r.get("InstanceId"):
            instances[where + (r["InstanceId"],)] = r
    scan = o["Scan"]
    if (
        scan
        and isinstance(scan.get("Scanned"), int)
        and (
            where not in scans
            or scan_at[where] < o["Start"]
            or scan["Scanned"] >= scans[where]["Scanned"]
        )
    ):
        scan_at[where] = o["Start"]
        scans[where] = dict(
            scan,
            ByLaunchType={
                t: dict(v)
                for t, v in (scan.get("ByLaunchType") or {}).items()
                if isinstance(v, dict)
            },
        )


def resource_view(lcs, instances, inventory, read, controls_at):
    """{(account, region, control): figures on the resource Security Hub's AWS Config
    rule evaluates}: every launch configuration for AutoScaling.3
    (autoscaling-launchconfig-requires-imdsv2), every instance for EC2.8
    (ec2-imdsv2-check). In scope is known only from a policy that records every one
    (``metadata: {inventory: true}``, policies/detect.yml); non-compliant from any policy
    of that resource; kept launch configurations awaiting cleanup from imds-converted."""
    found = {}
    for control, resource, records in (
        ("AutoScaling.3", "launch-config", lcs),
        ("EC2.8", "ec2", instances),
    ):
        per_place = defaultdict(lambda: [0, 0, 0])
        for key, record in records.items():
            counts = per_place[key[:2]]
            counts[0] += 1
            counts[1] += record["HttpTokens"] == "optional"
            counts[2] += bool(record.get("DeleteAfter")) and record["HttpTokens"] == "optional"
        for where, controls in controls_at.items():
            if control not in controls:
                continue
            counts = per_place.get(where, [0, 0, 0])
            found[where + (control,)] = dict(
                ResourceType=RESOURCE_TYPES[control],
                Resources=counts[0] if resource in inventory[where] else None,
                ResourcesNonCompliant=counts[1] if resource in read[where] else None,
                AwaitingCleanup=counts[2]
                if resource in inventory[where] and control == "AutoScaling.3"
                else None,
            )
    return found


def counted_outcome(change, key, owner_of, optional):
    """Whether an outcome counts: not a group left alone for a reason other than its
    owner (exempt; or a group no stack owns, skipped by an owner action), nor an owner
    fix found already in place on a group that already complies."""
    outcome = change["Outcome"]
    if outcome == "Skipped":
        return False
    if outcome == "LeftToStack" and key in owner_of and not owner_of[key]:
        return False  # read with its tags: no stack or service owns it
    if (
        outcome == "FixedAtOwner"
        and (change.get("Fix") or {}).get("Status") == "already-applied"
        and key in owner_of
        and key not in optional
    ):
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
    return {
        bucket: count(figures, set().union(*(measured[p] for p in places[bucket])), owner_of)
        for bucket, figures in buckets.items()
    }


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


def in_scope(control, scan):
    """Groups the control judges, from the latest scan (conversions after it applied):
    AutoScaling.3 those launching from a launch configuration, EC2.170 from templates,
    the others every group."""
    by_type = {t: (v.get("Groups") or 0) for t, v in (scan.get("ByLaunchType") or {}).items()}
    if not scan:
        return None
    if control == "AutoScaling.3":
        return by_type.get(LC, 0)
    if control == "EC2.170":
        return by_type.get(LT, 0) + by_type.get(MIXED, 0)
    return scan.get("Scanned")


def at_least(in_scope, non_compliant):
    """Groups in scope: the scan's, and never fewer than those counted failing (a scan
    that did not see a group the records name)."""
    if in_scope is None or non_compliant is None:
        return in_scope
    return max(in_scope, non_compliant)


def summarize_run(outputs, expected=None):
    """Rows, accounts, totals and scan states of a run's outputs (the streaming summary
    gives it one account-region at a time)."""
    cells, scans, measured, owner_of, resources = run_cells(outputs)
    states = scan_states(outputs, expected)
    state_of = defaultdict(list)
    for s in states:
        state_of[(s["Account"], s["Region"])].append(s["State"])
    names = {s["Account"]: s["AccountName"] for s in states}
    controls = sorted(
        {k[2] for k in cells} | {c for o in outputs for c in o["Controls"]}, key=control_sort_key
    ) or ["other"]
    for where in state_of:  # an account-region with nothing counted still has rows
        for control in controls if where not in {k[:2] for k in cells} else ():
            cells[where + (control,)]
    rows = []
    for key, counts in sorted(
        tally(cells, lambda k: k, measured, owner_of).items(),
        key=lambda kv: (kv[0][0], kv[0][1], control_sort_key(kv[0][2])),
    ):
        scan, state = scans.get(key[:2]) or {}, worst(state_of[key[:2]])
        if state != "scanned" and not scan:
            counts = dict(counts, **NOT_MEASURED)
        resource = resources.get(key) or dict(
            ResourceType=RESOURCE_TYPES.get(key[2], "auto-scaling-group"),
            Resources=None,
            ResourcesNonCompliant=None,
            AwaitingCleanup=None,
        )
        if resource["ResourceType"] == "auto-scaling-group" and scan:
            resource = dict(
                resource,
                Resources=at_least(in_scope(key[2], scan), counts["NonCompliant"]),
                ResourcesNonCompliant=counts["NonCompliant"],
            )
        rows.append(
            dict(
                Account=key[0],
                AccountName=names.get(key[0]),
                Region=key[1],
                Control=key[2],
                State=state,
                Scanned=at_least(in_scope(key[2], scan), counts["NonCompliant"]),
                ScannedByLaunchType={
                    t: v.get("Groups")
                    for t, v in sorted((scan.get("ByLaunchType") or {}).items())
                    if isinstance(v, dict)
                },
                **counts,
                **resource,
            )
        )
    accounts = [
        dict(
            Account=a,
            AccountName=names.get(a),
            Scanned=scanned(scans, lambda w, a=a: w[0] == a),
            **counts,
        )
        for (a,), counts in sorted(tally(cells, lambda k: k[:1], measured, owner_of).items())
    ]
    for account in accounts:  # nothing of it was read: not measured, not 0
        if not any(
            worst(states) == "scanned"
            for where, states in state_of.items()
            if where[0] == account["Account"]
        ):
            account.update(NOT_MEASURED)
    totals = tally(cells, lambda k: (), measured, owner_of).get(()) or count({f: {} for f in SETS})
    start = min((o["Start"] for o in outputs if o["Start"]), default=0)
    return {
        "Run": iso(start),
        "Start": start,
        "Folders": sorted({o["Folder"] for o in outputs}),
        "Rows": rows,
        "Accounts": accounts,
        "Controls": control_shares(rows, controls, owner_fixes(cells)),
        "Totals": dict(
            Accounts=len({k[0] for k in cells}),
            Regions=len({k[1] for k in cells}),
            Scanned=scanned(scans, lambda w: True),
            **totals,
        ),
        "_outputs": outputs,
        "_states": states,
    }


def drill_down(outputs, states):
    """The latest run's groups that are not compliant, or were changed, and why; for a
    stack-owned group, its owner and what fixes it (the fix proposed or applied at the
    owner, else the action that would)."""
    names = {s["Account"]: s["AccountName"] for s in states}
    facts, changes = {}, {}
    controls = defaultdict(set)  # what each account-region measured, as run_cells has it
    for o in outputs:
        if o["State"] == "scanned" and o["Resource"] in COUNTED_RESOURCES:
            controls[(o["Account"], o["Region"])].update(o["Controls"] or ["other"])
    for o in sorted(outputs, key=lambda o: o["Start"]):
        for r in o["Records"] if o["Resource"] in COUNTED_RESOURCES else ():
            if r["Kind"] != "group":
                continue
            key = (o["Account"], o["Region"], r["Name"])
            seen = facts.setdefault(key, dict(r, Controls=o["Controls"], Optional=False))
            if r["HttpTokens"]:  # the last launch seen (state after the run)
                seen["Optional"] = r["HttpTokens"] == "optional"
            for field in (
                "LaunchType",
                "Owner",
                "Stack",
                "StackGuidance",
                "ExemptReason",
                "ExemptUntil",
                "Days",
            ):
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
        groups.append(
            dict(
                Account=key[0],
                AccountName=names.get(key[0]),
                Region=key[1],
                Group=key[2],
                Control=primary_control(
                    sorted(controls[key[:2]], key=control_sort_key), launch_type
                )
                if controls[key[:2]]
                else control_for(fact.get("Controls") or change.get("Controls") or [], launch_type),
                State=state,
                LaunchType=launch_type,
                Calls=int(fact["Calls"]) if state == "held-back" else None,
                Days=fact.get("Days") if state == "held-back" else None,
                Owner=fact.get("Owner"),
                Reason=reason,
                Until=fact.get("ExemptUntil") if state == "exempt" else None,
                Stack=stack if owned else None,
                OwnerKind=kind if owned else None,
                Fix=fix,
            )
        )
    return groups


def summarize(outputs_per_folder, expected=None):
    """The summary (schema.json) from ``load_folder`` results, one list per folder;
    ``expected``: {(account id, region): account name} from an accounts file. Counted
    one account-region at a time (``c7n_imds_report.stream``), as the command does."""
    from c7n_imds_report.stream import summarize_units, unit_of

    def units():
        for tree, outputs in enumerate(outputs_per_folder):
            by_unit = defaultdict(list)
            for o in outputs:
                by_unit[unit_of(o["Parts"])].append(o)
            for unit in sorted(by_unit):
                yield tree, by_unit[unit][0]["Folder"], by_unit[unit]

    return summarize_units(units(), expected)


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
