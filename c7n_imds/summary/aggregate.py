"""`c7n-imds summary OUT...`: where an organization stands on IMDSv2, read from the
output trees of `c7n-imds run -s OUT` and `c7n-imds org run -s OUT` (local or S3).

Three layers: ``c7n_imds.summary.load`` reads the files and keeps, of each resource,
only the names and facts counted or listed below (never user data or any other field);
``summarize`` here and the functions it calls are pure; ``c7n_imds.summary.render``
turns a summary (c7n_imds/summary/schema.json, docs/summary.md) into a table, CSV,
JSON, Markdown or the HTML dashboard.

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
state (scanned, errored, unreadable, not scanned - load.py), rows carry the worst state
of their account and region, and ``Problems`` lists every scan that is not ``scanned``.
With an accounts file, an expected account and region that produced nothing is "not
scanned"; a policy that ran in some account-regions of a run and not in others is "not
scanned" where it is missing.

Runs: custodian keeps dated folders under each policy (S3: YYYY/MM/DD/HH), each one run;
otherwise each OUT folder is one run, split by sub-folder while a policy appears twice
for one account and region (``-s OUT/{now:%Y-%m-%d}``). Runs are in time order.
"""
import datetime
import os
import shlex
from collections import defaultdict

from c7n_imds.names import BEANSTALK_ACTION, CHANGE_SET_ACTION, NODEGROUP_ACTION
from c7n_imds.names import LAUNCH_CONFIGURATION as LC
from c7n_imds.names import LAUNCH_TEMPLATE as LT
from c7n_imds.names import MIXED_INSTANCES_POLICY as MIXED

SCHEMA_VERSION = 1
UNKNOWN = "unknown"
CONTROLS = ("AutoScaling.3", "AutoScaling.9", "EC2.170", "EC2.8")
CONTROL_SCOPE = {"AutoScaling.3": {LC}, "AutoScaling.9": {LC}, "EC2.170": {LT, MIXED}}
COUNTED_RESOURCES = ("asg", "launch-config", "ec2")
SETS = ("NonCompliant", "LaunchConfigurations", "Remediated", "HeldBack", "Exempt",
        "LeftToStack", "Failed", "StackOwned", "FixProposed", "FixedAtOwner")
# The owners of stack-owned groups (load.STACK_KINDS), and the action that fixes each.
OWNER_KINDS = ("cloudformation", "elasticbeanstalk", "eks-nodegroup")
OWNER_ACTION = {"cloudformation": CHANGE_SET_ACTION, "elasticbeanstalk": BEANSTALK_ACTION,
                "eks-nodegroup": NODEGROUP_ACTION}
WHAT_IT_DOES = {
    "cloudformation": "proposes a change set that moves the stack's launch configuration "
    "to an IMDSv2 launch template, for the stack's owner to review and execute",
    "elasticbeanstalk": "sets DisableIMDSv1=true on the environment, which Elastic "
    "Beanstalk then rolls out from a launch template with IMDSv2 required",
    "eks-nodegroup": "gives the node group's launch template a version with HttpTokens "
    "required and updates the node group to it"}
# Of several outcomes for one group, the one that says most (failed wins).
OUTCOME_RANK = ("Skipped", "LeftToStack", "FixProposed", "FixedAtOwner", "Remediated",
                "Failed")
# What every figure is when it was not measured (no scan of the place was read).
NOT_MEASURED = dict({figure: None for figure in SETS}, NonCompliantByLaunchType={},
                    StackOwnedByOwner={})
STATES = ("scanned", "not-scanned", "unreadable", "errored")  # worst last
NOT_SCANNED = "no output for this account and region: its role could not be assumed, " \
    "or it was not part of the run"


# ---- pure aggregation ------------------------------------------------------------

def owner_kind(stack):
    """The kind of a group's owner ("cloudformation:NAME" -> "cloudformation")."""
    kind = str(stack or "").partition(":")[0]
    return kind if kind in OWNER_KINDS else None


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
    if output.get("AccountName"):
        return output["AccountName"]
    dated = (output.get("RunKey") or "").split("/")
    parts = [p for p in output["Parts"] if p not in dated]
    if len(parts) >= 3 and parts[-2] == output["Region"]:
        return parts[-3]
    return None


def split_runs(outputs):
    """Runs in one tree: dated folders first, then - while a policy appears twice for
    one account and region - by the next sub-folder."""
    by_date = defaultdict(list)
    for o in outputs:
        by_date[o.get("RunKey")].append(o)
    if len(by_date) > 1 or None not in by_date:
        return [run for key in sorted(by_date, key=lambda k: k or "")
                for run in (by_rank(by_date[key]) if key else split_runs(by_date[key]))]
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


def by_rank(outputs):
    """Runs within one dated folder (custodian keeps one per hour): a policy's n-th
    execution there, in time order, belongs to the n-th run."""
    ranked = defaultdict(list)
    for o in sorted(outputs, key=lambda o: o["Start"]):
        ranked[(o["Account"], o["Region"], o["Policy"])].append(o)
    runs = defaultdict(list)
    for executions in ranked.values():
        for rank, o in enumerate(executions):
            runs[rank].append(o)
    return [runs[rank] for rank in sorted(runs)]


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


def by_owner(figures, owner_of):
    """Per owner kind (all three, and "unknown" where an action left a group to a stack
    it did not name): its stack-owned groups, and of them those nobody acted on, with a
    fix proposed, fixed at the owner, or failed (the four add up to Groups)."""
    found = {kind: dict(Groups=0, NotActed=0, FixProposed=0, FixedAtOwner=0, Failed=0)
             for kind in OWNER_KINDS}
    for key in figures["StackOwned"]:
        kind = owner_of.get(key) or UNKNOWN
        counts = found.setdefault(kind, dict(Groups=0, NotActed=0, FixProposed=0,
                                             FixedAtOwner=0, Failed=0))
        counts["Groups"] += 1
        state = next((f for f in ("Failed", "FixedAtOwner", "FixProposed")
                      if key in figures[f]), "NotActed")
        counts[state] += 1
    return found


def scanned(scans, where_filter):
    known = [s["Scanned"] for where, s in scans.items() if where_filter(where)]
    return sum(known) if known else None


def worst(states):
    return max(states, key=STATES.index) if states else "not-scanned"


def scan_states(outputs, expected):
    """Each account, region and policy of a run with its state, plus what was expected
    (accounts file) or run elsewhere in the run but produced nothing."""
    names = {o["Account"]: account_name(o) for o in outputs}
    names.update({a: n for (a, _), n in (expected or {}).items() if n})
    found = [dict(Account=o["Account"], AccountName=names.get(o["Account"]),
                  Region=o["Region"], Policy=o["Policy"], State=o["State"],
                  Reason=o["Reason"]) for o in outputs]
    policies = sorted({o["Policy"] for o in outputs if o["State"] == "scanned"})
    places = {(o["Account"], o["Region"]) for o in outputs} | set(expected or ())
    have = {(s["Account"], s["Region"], s["Policy"]) for s in found}
    for account, region in sorted(places):
        if not any((account, region) == (s["Account"], s["Region"]) for s in found):
            found.append(dict(Account=account, AccountName=names.get(account),
                              Region=region, Policy=None, State="not-scanned",
                              Reason=NOT_SCANNED))
            continue
        for policy in policies:
            if (account, region, policy) not in have:
                found.append(dict(Account=account, AccountName=names.get(account),
                                  Region=region, Policy=policy, State="not-scanned",
                                  Reason="no output for this policy here"))
    return sorted(found, key=lambda s: (s["Account"], s["Region"], s["Policy"] or ""))


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


def owner_fixes(cells):
    """{(account, region, control): (non-compliant groups of the row with a fix
    proposed, with one applied at the owner)}: still failing, with a fix on its way."""
    places = defaultdict(lambda: (set(), set()))
    for key, figures in cells.items():
        places[key[:2]][0].update(figures["FixProposed"])
        places[key[:2]][1].update(figures["FixedAtOwner"])
    return {key: tuple(len(set(figures["NonCompliant"]) & found) for found in places[key[:2]])
            for key, figures in cells.items()}


def control_shares(rows, controls, fixes=None):
    """Per control: groups in scope, non-compliant (those with an owner fix proposed or
    rolling out included: they fail the control until a scan sees them fixed), and the
    compliant share."""
    shares = []
    for control in [c for c in CONTROLS if c in controls] + [
            c for c in controls if c not in CONTROLS]:
        mine = [r for r in rows if r["Control"] == control and r["State"] == "scanned"
                and r["Scanned"] is not None]
        in_scope = sum(r["Scanned"] for r in mine) if mine else None
        non_compliant = sum(r["NonCompliant"] or 0 for r in mine) if mine else None
        pending = [(fixes or {}).get((r["Account"], r["Region"], control), (0, 0))
                   for r in mine]
        shares.append(dict(Control=control, InScope=in_scope, NonCompliant=non_compliant,
                           CompliantShare=round(max(0.0, 1 - non_compliant / in_scope), 4)
                           if in_scope else None,
                           FixProposed=sum(p[0] for p in pending) if mine else None,
                           FixedAtOwner=sum(p[1] for p in pending) if mine else None))
    return shares


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


def next_step(kind, skipped):
    """What fixes a stack-owned group nobody fixed: the reason its owner's own action
    gave for leaving it (it says what does fix it), else that action, not run yet."""
    action = OWNER_ACTION.get(kind)
    if action is None:
        return None
    if skipped.get("Action") == action:
        return dict(Action=action, Status="skipped", Detail=skipped.get("Reason") or
                    "%s left it alone" % action)
    return dict(Action=action, Status="not-run",
                Detail="not run yet: the %s action %s" % (action, WHAT_IT_DOES[kind]))


def owner_fix(change, kind, region):
    """A fix proposed or applied at the group's owner, with what it waits for and the
    command that executes (a change set) or follows it (an update)."""
    fix = dict(change.get("Fix") or {})
    actions = OWNER_ACTION.values()
    fix["Action"] = next((a for a in (fix.get("Action"), change.get("Action"),
                                      OWNER_ACTION.get(kind)) if a in actions), None)
    fix["Status"] = fix.get("Status") or "applied"
    fix["Detail"] = fix.get("Detail") or change.get("Reason")
    quote = shlex.quote
    if fix["Status"] == "proposed":
        stack, name = fix.get("StackName"), fix.get("ChangeSetName")
        fix["Pending"] = ("the stack's owner to review and execute change set %s on stack "
                          "%s; the group fails AutoScaling.3 until then" % (
                              name or "(unnamed)", stack or "(unnamed)"))
        if stack and name:
            fix["Command"] = ("aws cloudformation execute-change-set --region %s "
                              "--stack-name %s --change-set-name %s" % (
                                  quote(region), quote(stack), quote(name)))
    elif fix.get("Action") == BEANSTALK_ACTION or kind == "elasticbeanstalk":
        environment = fix.get("EnvironmentName")
        fix["Pending"] = ("Elastic Beanstalk's update of environment %s: its instances move "
                          "to a launch template with IMDSv2 required" % (
                              environment or fix.get("EnvironmentId") or "(unnamed)"))
        if environment:
            fix["Command"] = ("aws elasticbeanstalk describe-environments --region %s "
                              "--environment-names %s" % (quote(region), quote(environment)))
    else:
        cluster, nodegroup = fix.get("ClusterName"), fix.get("NodegroupName")
        template = fix.get("LaunchTemplate") or {}
        version = " (launch template %s version %s)" % (
            template.get("id") or template.get("name"), template.get("version") or "?") \
            if template else ""
        fix["Pending"] = ("node group update %s of %s/%s%s: nodes are replaced with "
                          "IMDSv2 required" % (fix["UpdateId"], cluster or "?",
                                               nodegroup or "?", version)
                          if fix.get("UpdateId") else
                          "node group %s/%s already launches%s with IMDSv2 required; "
                          "nodes started before keep their options until replaced" % (
                              cluster or "?", nodegroup or "?", version))
        if cluster and nodegroup and fix.get("UpdateId"):
            fix["Command"] = ("aws eks describe-update --region %s --name %s "
                              "--nodegroup-name %s --update-id %s" % (
                                  quote(region), quote(cluster), quote(nodegroup),
                                  quote(fix["UpdateId"])))
    return fix


def resolve_accounts(outputs, expected):
    """An output that could not be read knows its account only by the name in its
    path (c7n-org's layout): give it the id that the accounts file, or the other
    outputs of the same account, name."""
    ids = {name: account for (account, _), name in (expected or {}).items() if name}
    ids.update({account_name(o): o["Account"] for o in outputs
                if o["State"] != "unreadable" and account_name(o)})
    return [dict(o, Account=ids.get(o["Account"], o["Account"]))
            if o["State"] == "unreadable" else o for o in outputs]


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
