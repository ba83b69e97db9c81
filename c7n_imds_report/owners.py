"""Groups that a stack or a service owns - CloudFormation, Elastic Beanstalk or an EKS
managed node group - and are fixed there, not behind the owner's back: a group's owner
kind, how far the fix of each kind's groups has come, and what fixes a group at its
owner (the fix proposed or applied there, with what it waits for and the command that
executes or follows it; else the owner's action, not run yet or why it left the group).
Pure, like ``c7n_imds_report.aggregate``, which counts with it."""

import shlex
from collections import defaultdict

from c7n_imds.names import (
    BEANSTALK_ACTION,
    BEANSTALK_TAG,
    CHANGE_SET_ACTION,
    CLOUDFORMATION_TAG,
    EKS_NODEGROUP_TAG,
    NODEGROUP_ACTION,
)

# The key a count goes under when its kind was not named: an owner that an action left
# a group to without naming it, and (aggregate.count) a launch type no record gave.
UNKNOWN = "unknown"
# The owners of stack-owned groups, by the tag AWS puts on their groups, and the action
# that fixes each.
STACK_KINDS = {
    CLOUDFORMATION_TAG: "cloudformation",
    BEANSTALK_TAG: "elasticbeanstalk",
    EKS_NODEGROUP_TAG: "eks-nodegroup",
}
OWNER_KINDS = tuple(STACK_KINDS.values())
OWNER_ACTION = {
    "cloudformation": CHANGE_SET_ACTION,
    "elasticbeanstalk": BEANSTALK_ACTION,
    "eks-nodegroup": NODEGROUP_ACTION,
}
WHAT_IT_DOES = {
    "cloudformation": "proposes a change set that requires IMDSv2 in the stack's template "
    "(a launch configuration becomes a launch template, or the stack's launch template "
    "gets HttpTokens required), for the stack's owner to review and execute",
    "elasticbeanstalk": "sets DisableIMDSv1=true on the environment, which Elastic "
    "Beanstalk then rolls out from a launch template with IMDSv2 required",
    "eks-nodegroup": "gives the node group's launch template a version with HttpTokens "
    "required and updates the node group to it",
}


def owner_kind(stack):
    """The kind of a group's owner ("cloudformation:NAME" -> "cloudformation")."""
    kind = str(stack or "").partition(":")[0]
    return kind if kind in OWNER_KINDS else None


def by_owner(figures, owner_of):
    """Per owner kind (all three, and "unknown" where an action left a group to a stack
    it did not name): its stack-owned groups, and of them those nobody acted on, with a
    fix proposed, fixed at the owner, or failed (the four add up to Groups)."""
    found = {
        kind: dict(Groups=0, NotActed=0, FixProposed=0, FixedAtOwner=0, Failed=0)
        for kind in OWNER_KINDS
    }
    for key in figures["StackOwned"]:
        kind = owner_of.get(key) or UNKNOWN
        counts = found.setdefault(
            kind, dict(Groups=0, NotActed=0, FixProposed=0, FixedAtOwner=0, Failed=0)
        )
        counts["Groups"] += 1
        state = next(
            (f for f in ("Failed", "FixedAtOwner", "FixProposed") if key in figures[f]), "NotActed"
        )
        counts[state] += 1
    return found


def owner_fixes(cells):
    """{(account, region, control): (non-compliant groups of the row with a fix
    proposed, with one applied at the owner)}: still failing, with a fix on its way."""
    places = defaultdict(lambda: (set(), set()))
    for key, figures in cells.items():
        places[key[:2]][0].update(figures["FixProposed"])
        places[key[:2]][1].update(figures["FixedAtOwner"])
    return {
        key: tuple(len(set(figures["NonCompliant"]) & found) for found in places[key[:2]])
        for key, figures in cells.items()
    }


def next_step(kind, skipped):
    """What fixes a stack-owned group nobody fixed: the reason its owner's own action
    gave for leaving it (it says what does fix it), else that action, not run yet."""
    action = OWNER_ACTION.get(kind)
    if action is None:
        return None
    if skipped.get("Action") == action:
        return dict(
            Action=action,
            Status="skipped",
            Detail=skipped.get("Reason") or "%s left it alone" % action,
        )
    return dict(
        Action=action,
        Status="not-run",
        Detail="not run yet: the %s action %s" % (action, WHAT_IT_DOES[kind]),
    )


def owner_fix(change, kind, region):
    """A fix proposed or applied at the group's owner, with what it waits for and the
    command that executes (a change set) or follows it (an update)."""
    fix = dict(change.get("Fix") or {})
    actions = OWNER_ACTION.values()
    fix["Action"] = next(
        (
            a
            for a in (fix.get("Action"), change.get("Action"), OWNER_ACTION.get(kind))
            if a in actions
        ),
        None,
    )
    fix["Status"] = fix.get("Status") or "applied"
    fix["Detail"] = fix.get("Detail") or change.get("Reason")
    quote = shlex.quote
    if fix["Status"] == "proposed":
        stack, name = fix.get("StackName"), fix.get("ChangeSetName")
        fix["Pending"] = (
            "the stack's owner to review and execute change set %s on stack "
            "%s; the group fails AutoScaling.3 until then"
            % (name or "(unnamed)", stack or "(unnamed)")
        )
        if stack and name:
            fix["Command"] = (
                "aws cloudformation execute-change-set --region %s "
                "--stack-name %s --change-set-name %s" % (quote(region), quote(stack), quote(name))
            )
    elif fix.get("Action") == BEANSTALK_ACTION or kind == "elasticbeanstalk":
        environment = fix.get("EnvironmentName")
        fix["Pending"] = (
            "Elastic Beanstalk's update of environment %s: its instances move "
            "to a launch template with IMDSv2 required"
            % (environment or fix.get("EnvironmentId") or "(unnamed)")
        )
        if environment:
            fix["Command"] = (
                "aws elasticbeanstalk describe-environments --region %s "
                "--environment-names %s" % (quote(region), quote(environment))
            )
    else:
        cluster, nodegroup = fix.get("ClusterName"), fix.get("NodegroupName")
        template = fix.get("LaunchTemplate") or {}
        version = (
            " (launch template %s version %s)"
            % (template.get("id") or template.get("name"), template.get("version") or "?")
            if template
            else ""
        )
        fix["Pending"] = (
            "node group update %s of %s/%s%s: nodes are replaced with "
            "IMDSv2 required" % (fix["UpdateId"], cluster or "?", nodegroup or "?", version)
            if fix.get("UpdateId")
            else "node group %s/%s already launches%s with IMDSv2 required; "
            "nodes started before keep their options until replaced"
            % (cluster or "?", nodegroup or "?", version)
        )
        if cluster and nodegroup and fix.get("UpdateId"):
            fix["Command"] = (
                "aws eks describe-update --region %s --name %s "
                "--nodegroup-name %s --update-id %s"
                % (quote(region), quote(cluster), quote(nodegroup), quote(fix["UpdateId"]))
            )
    return fix
