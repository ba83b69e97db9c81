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

UNTIL = re.compile(r"^(?P<reason>.*?)\s*\buntil\s+(?P<date>\S+)\s*$", re.IGNORECASE)


def parse_exemption(value: str | None, today: datetime.date) -> dict:
    """Read a ``c7n-imds:exempt`` tag value: a reason, optionally ending in
    ``until YYYY-MM-DD``. Returns the annotation; malformed values are exempt (the safe
    reading) and say why."""
    if value is None:
        return {"Exempt": False, "Malformed": False}
    text = value.strip()
    if not text:
        return {"Exempt": True, "Malformed": True, "Reason": "",
                "Error": "empty value; write a reason, optionally 'until YYYY-MM-DD'"}
    match = UNTIL.match(text)
    if not match:
        return {"Exempt": True, "Malformed": False, "Reason": text, "Until": None,
                "Expired": False}
    try:
        until = datetime.date.fromisoformat(match.group("date"))
    except ValueError:
        return {"Exempt": True, "Malformed": True, "Reason": match.group("reason"),
                "Error": "%r after 'until' is not a date (YYYY-MM-DD)" % match.group("date")}
    expired = until < today
    return {"Exempt": not expired, "Malformed": False, "Reason": match.group("reason"),
            "Until": until.isoformat(), "Expired": expired}


CONTAINER_TAG_PREFIXES = (
    "kubernetes.io/cluster/", "k8s.io/cluster-autoscaler/", "eks:cluster-name",
    "eks:nodegroup-name", "alpha.eksctl.io/", "AmazonECSManaged", "aws:ecs:")
CONTAINER_USER_DATA_MARKERS = (
    b"/etc/eks/bootstrap.sh", b"node.eks.aws", b"ECS_CLUSTER=", b"/etc/ecs/ecs.config")


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


def resolve_hop_limit(option: int | str, existing_metadata_options: dict | None,
                      containers: bool) -> int | str:
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
    key, owner = iac_owner(asg)
    if key == CLOUDFORMATION_TAG:
        return ("managed by CloudFormation stack %s: a change made behind the stack "
                "drifts or is reverted. The %s action proposes a change set that requires "
                "IMDSv2 in the stack's template (its AWS::AutoScaling::LaunchConfiguration "
                "replaced by an AWS::EC2::LaunchTemplate, or HttpTokens required in the "
                "stack's own launch template), for the stack's owner to review and "
                "execute; "
                "stacks defined in Terraform are caught before deploy by c7n-left "
                "(policies/left/)" % (owner, CHANGE_SET_ACTION))
    if key == EKS_NODEGROUP_TAG:
        return ("managed by EKS managed node group %s: EKS owns its launch template and "
                "reverts changes made behind it. The %s action gives the node group's "
                "launch template a version with HttpTokens required and updates the node "
                "group to it (UpdateNodegroupVersion)" % (owner, NODEGROUP_ACTION))
    return ("managed by Elastic Beanstalk environment %s: the %s action sets the option "
            "aws:autoscaling:launchconfiguration DisableIMDSv1=true on the environment "
            "(Beanstalk then launches from a launch template with IMDSv2 required)"
            % (owner, BEANSTALK_ACTION))
