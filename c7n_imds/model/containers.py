"""Whether a group runs containers, and the hop limit they need to reach IMDSv2 from
inside one (`hop-limit: auto`). Pure."""

from __future__ import annotations

import base64
import binascii

from c7n_imds.names import PRESERVE

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
