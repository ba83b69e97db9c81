"""Stack-owned groups as every format shows them: the owner kinds' names, the table of
their groups by account and owner (``c7n_imds_report.owners.by_owner``'s counts), and
in one line what fixes a group at its owner or what was done there."""

from c7n_imds_report.display import DASH, display_account
from c7n_imds_report.owners import OWNER_KINDS, UNKNOWN

OWNER_LABELS = {
    "cloudformation": "CloudFormation",
    "elasticbeanstalk": "Elastic Beanstalk",
    "eks-nodegroup": "EKS node group",
    UNKNOWN: "owner not named",
}
# The columns of the stack-owned counts (owners.by_owner), as every format heads them.
OWNER_COUNTS = [
    ("Groups", "Groups"),
    ("NotActed", "Nobody acted"),
    ("FixProposed", "Fix proposed"),
    ("FixedAtOwner", "Fixed at owner, rolling out"),
    ("Failed", "Failed"),
]


def owner_label(kind):
    return OWNER_LABELS.get(kind, kind)


def owner_figure(record, kind, key="Groups"):
    """A stack-owned count of one owner kind; None when not measured."""
    if record.get("StackOwned") is None:
        return None
    return ((record.get("StackOwnedByOwner") or {}).get(kind) or {}).get(key, 0)


def owner_rows(run):
    """(label, record, owner kind, counts) of the stack-owned groups: per account each
    owner kind it has groups of, then all accounts per owner kind (the three always,
    so that none reads as not looked for)."""
    found = []
    for record in run["Accounts"]:
        for kind, counts in (record.get("StackOwnedByOwner") or {}).items():
            if counts.get("Groups"):
                found.append((display_account(record), record, kind, counts))
    totals = run["Totals"]
    if totals.get("StackOwned") is not None:
        by = totals.get("StackOwnedByOwner") or {}
        for kind in list(OWNER_KINDS) + [k for k in by if k not in OWNER_KINDS]:
            found.append(("All accounts", None, kind, by.get(kind) or {}))
    return found


def owners_table(run):
    headers = ["Account", "Owner"] + [label for _, label in OWNER_COUNTS]
    return headers, [
        [label, owner_label(kind)] + [counts.get(k, 0) for k, _ in OWNER_COUNTS]
        for label, _, kind, counts in owner_rows(run)
    ]


def fix_text(group):
    """What fixes a group at its owner, or what was done there, in one line."""
    fix = group.get("Fix")
    if not fix:
        return DASH
    status, action = fix.get("Status"), fix.get("Action") or "its owner's action"
    if status == "not-run":
        return "run %s (not run yet)" % action
    if status == "skipped":
        return "%s left it: %s" % (action, fix.get("Detail") or DASH)
    if status == "proposed":
        return "change set %s on stack %s, not executed yet: %s" % (
            fix.get("ChangeSetName") or DASH,
            fix.get("StackName") or DASH,
            fix.get("Command") or fix.get("Detail") or DASH,
        )
    if status in ("applied", "already-applied"):
        return "%s %s; waiting for %s%s" % (
            action,
            "applied" if status == "applied" else "already in place",
            fix.get("Pending") or DASH,
            "; follow it: %s" % fix["Command"] if fix.get("Command") else "",
        )
    return "%s %s: %s" % (action, status, fix.get("Detail") or DASH)
