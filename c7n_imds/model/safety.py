"""What keeps a remediation from breaking a workload: exemptions, the owners of a
group (stacks and services), containers and the hop limit they need. Pure."""

from __future__ import annotations

import base64
import binascii
import datetime
import re

from c7n_imds.names import (
    BEANSTALK_ACTION,
    CHANGE_SET_ACTION,
    CLOUDFORMATION_TAG,
    EKS_NODEGROUP_TAG,
    NODEGROUP_ACTION,
    OWNER_TAGS,
    PRESERVE,
)

# The expiry: "until" and an ISO date, anywhere in the value ("until 2027-03-31 (CHG-1)").
UNTIL = re.compile(r"\buntil\b", re.IGNORECASE)
UNTIL_DATE = re.compile(r"\buntil\s+(?P<date>\d{4}-\d\d-\d\d)(?=$|[\s,;.)\]])", re.IGNORECASE)
# What reads as a date or an expiry word. Outside "until YYYY-MM-DD" a real ISO date is a
# record ("reverted by c7n-imds on 2026-11-01", as revert-imds-remediation writes); any
# other date or an expiry word means a person meant an end date that a silent "exempt
# for good" would ignore.
MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
DATE_LIKE = re.compile(
    r"\b\d{4}[-/.]\d{1,2}(?:[-/.]\d{1,2})?\b"  # 2027-03-31, 2027/3/31, 2027-03
    r"|\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b"  # 31/03/2027, 3.31.27
    r"|\b%s\s*\d{1,4}\b|\b\d{1,2}(?:st|nd|rd|th)?\s*%s"  # March 31, 31st Mar
    r"|\b(?:expir\w*|exp|till?|thru)\b" % (MONTH, MONTH),
    re.IGNORECASE,
)
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")
EXEMPTION_FORMAT = "a reason, optionally with 'until YYYY-MM-DD'"


def _unreadable_date(text: str) -> str | None:
    """The first date-like part or expiry word of ``text`` that is not an ISO date."""
    for found in DATE_LIKE.finditer(text):
        part = found.group()
        if ISO_DATE.fullmatch(part):
            try:
                datetime.date.fromisoformat(part)
                continue
            except ValueError:
                pass
        return part
    return None


def _malformed(reason: str, error: str) -> dict:
    return {
        "Exempt": True,
        "Malformed": True,
        "Reason": reason,
        "Until": None,
        "Expired": False,
        "Error": "%s; write %s" % (error, EXEMPTION_FORMAT),
    }


def parse_exemption(value: str | None, today: datetime.date) -> dict:
    """Read a ``c7n-imds:exempt`` tag value: a reason, with an optional expiry ``until
    YYYY-MM-DD`` anywhere in it (``vendor agent until 2027-03-31``, ``until 2027-03-31
    (CHG-1)``). Exempt until the end of that day; for good without an expiry.

    Malformed - empty, ``until`` without an ISO date after it (or twice), a date that
    does not exist, a date not written YYYY-MM-DD or an expiry word ("expires
    31/03/2027", "till March 31") - counts as exempt and says why (``Error``): an
    exemption protects a fleet that still calls IMDSv1 from an outage, and a typo in its
    date must not end that protection overnight; the report of malformed exemptions
    (policies/detect.yml, notify.yml) makes its owner fix it, since until then it never
    expires. Pure."""
    if value is None:
        return {"Exempt": False, "Malformed": False}
    text = " ".join(value.split())
    if not text:
        return _malformed("", "empty value")
    untils = UNTIL.findall(text)
    if not untils:
        other = _unreadable_date(text)
        if other:
            return _malformed(
                text,
                "%r reads as a date or an expiry, but only 'until YYYY-MM-DD' sets one" % other,
            )
        return {"Exempt": True, "Malformed": False, "Reason": text, "Until": None, "Expired": False}
    match = UNTIL_DATE.search(text)
    if len(untils) > 1:
        return _malformed(text, "'until' appears %d times" % len(untils))
    if not match:
        found = UNTIL.search(text)  # there is one: untils is not empty
        after = text[found.end() :].split() if found else []
        return _malformed(
            text,
            "%s after 'until' is not a date (YYYY-MM-DD)" % repr(after[0])
            if after
            else "no date after 'until'",
        )
    # "until 2027-03-31, CHG-9": the reason is what is left, without a dangling comma
    reason = re.sub(
        r" ([,;:])", r"\1", " ".join((text[: match.start()] + " " + text[match.end() :]).split())
    ).strip(" ,;:-")
    try:
        until = datetime.date.fromisoformat(match.group("date"))
    except ValueError:
        return _malformed(reason, "%r after 'until' is not a date" % match.group("date"))
    other = _unreadable_date(reason)
    if other:
        return _malformed(
            reason,
            "%r besides 'until %s' reads as another date or expiry" % (other, until.isoformat()),
        )
    expired = until < today
    return {
        "Exempt": not expired,
        "Malformed": False,
        "Reason": reason,
        "Until": until.isoformat(),
        "Expired": expired,
    }


CONTAINER_TAG_PREFIXES = (
    "kubernetes.io/cluster/",
    "k8s.io/cluster-autoscaler/",
    "eks:cluster-name",
    "eks:nodegroup-name",
    "alpha.eksctl.io/",
    "AmazonECSManaged",
    "aws:ecs:",
)
CONTAINER_USER_DATA_MARKERS = (
    b"/etc/eks/bootstrap.sh",
    b"node.eks.aws",
    b"ECS_CLUSTER=",
    b"/etc/ecs/ecs.config",
)


def runs_containers(asg: dict, user_data: str | None = None) -> bool:
    """Whether a group evidently runs containers, which need a hop limit of 2 or more
    to reach IMDSv2 from inside a container: EKS/ECS/Kubernetes tags on the group, or
    an EKS/ECS bootstrap in its user data (read here, never shown)."""
    if any(t["Key"].startswith(CONTAINER_TAG_PREFIXES) for t in asg.get("Tags") or ()):
        return True
    if user_data:
        try:
            raw = base64.b64decode(user_data)
        except (binascii.Error, ValueError):
            return False
        return any(marker in raw for marker in CONTAINER_USER_DATA_MARKERS)
    return False


def resolve_hop_limit(
    option: int | str, existing_metadata_options: dict | None, containers: bool
) -> int | str:
    """`hop-limit: auto`: at least 2 where containers run, else keep what is there."""
    if option != "auto":
        return option
    if not containers:
        return PRESERVE
    current = (existing_metadata_options or {}).get("HttpPutResponseHopLimit") or 1
    return max(int(current), 2)


def iac_owner(asg: dict) -> tuple[str, str] | None:
    """(tag, owner name) of the stack or environment that manages a group, or None."""
    tags = {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}
    for key in OWNER_TAGS:
        if tags.get(key):
            return key, tags[key]
    return None


def iac_guidance(asg: dict) -> str:
    """What fixes a stack-owned group where it is defined, and the action that does it."""
    found = iac_owner(asg)
    if found is None:
        raise ValueError(
            "group %s is not owned by a stack or service" % asg.get("AutoScalingGroupName")
        )
    key, owner = found
    if key == CLOUDFORMATION_TAG:
        return (
            "managed by CloudFormation stack %s: a change made behind the stack "
            "drifts or is reverted. The %s action proposes a change set that requires "
            "IMDSv2 in the stack's template (its AWS::AutoScaling::LaunchConfiguration "
            "replaced by an AWS::EC2::LaunchTemplate, or HttpTokens required in the "
            "stack's own launch template), for the stack's owner to review and "
            "execute; "
            "stacks defined in Terraform are caught before deploy by c7n-left "
            "(policies/left/)" % (owner, CHANGE_SET_ACTION)
        )
    if key == EKS_NODEGROUP_TAG:
        return (
            "managed by EKS managed node group %s: EKS owns its launch template and "
            "reverts changes made behind it. The %s action gives the node group's "
            "launch template a version with HttpTokens required and updates the node "
            "group to it (UpdateNodegroupVersion)" % (owner, NODEGROUP_ACTION)
        )
    return (
        "managed by Elastic Beanstalk environment %s: the %s action sets the option "
        "aws:autoscaling:launchconfiguration DisableIMDSv1=true on the environment "
        "(Beanstalk then launches from a launch template with IMDSv2 required)"
        % (owner, BEANSTALK_ACTION)
    )
