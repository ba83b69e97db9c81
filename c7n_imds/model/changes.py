"""Launch-affecting changes: what differs, for the instances a group (a fleet, an
environment, a node group) will launch, between before and after a change - not only
what the change sends.

Every remediation path plans its change as a list of :class:`LaunchChange` and is
refused when the list holds anything beyond the metadata options, unless the policy
opted in to exactly that kind with the action's ``allow-launch-changes`` option. An
image, a Kubernetes or AMI release, a group size, a replacement of every instance at
once is never a side effect of an IMDS fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from c7n_imds.model.redaction import user_data_fingerprint

# The kinds a policy can opt in to (`allow-launch-changes`), each with what it covers.
LAUNCH_CHANGE_KINDS: dict[str, str] = {
    "image": "the image instances start from (ImageId, an SSM parameter resolving to "
             "another AMI, a node group's AMI release)",
    "kubernetes-version": "an EKS node group's Kubernetes version",
    "instance-types": "instance types, attribute-based selection, overrides",
    "network": "subnets, security groups, network interfaces, public addresses",
    "storage": "block device mappings (volumes, snapshots, sizes, encryption)",
    "instance-profile": "the IAM instance profile",
    "user-data": "user data (compared by SHA-256, never shown)",
    "key-pair": "the SSH key pair",
    "group-size": "MinSize, MaxSize, DesiredCapacity",
    "replace-all-at-once": "every instance replaced at the same time (no rolling "
                           "replacement)",
    "other": "any other launch parameter (placement, monitoring, market options, ...)",
}
METADATA = "metadata-options"  # what every IMDS fix changes: never refused

# LaunchTemplateData (and launch configuration) fields by kind; a field not listed is
# "other", so a field AWS adds later is never silently accepted.
FIELD_KINDS: dict[str, str] = {
    "MetadataOptions": METADATA,
    "ImageId": "image", "KernelId": "image", "RamDiskId": "image", "RamdiskId": "image",
    "InstanceType": "instance-types", "InstanceRequirements": "instance-types",
    "Overrides": "instance-types", "InstanceTypes": "instance-types",
    "SecurityGroupIds": "network", "SecurityGroups": "network",
    "NetworkInterfaces": "network", "AssociatePublicIpAddress": "network",
    "VPCZoneIdentifier": "network", "Subnets": "network",
    "BlockDeviceMappings": "storage", "EbsOptimized": "storage",
    "IamInstanceProfile": "instance-profile",
    "UserData": "user-data",
    "KeyName": "key-pair",
    "MinSize": "group-size", "MaxSize": "group-size", "DesiredCapacity": "group-size",
}


@dataclass(frozen=True)
class LaunchChange:
    """One launch-affecting difference: `field` goes from `before` to `after`."""
    kind: str
    field: str
    before: Any = None
    after: Any = None
    why: str = ""  # how it comes about, where not obvious (e.g. "UsePreviousValue
    # re-resolves the SSM parameter")

    def line(self) -> str:
        """Safe to print: user data only as its size and SHA-256."""
        before, after = self.before, self.after
        if self.kind == "user-data":
            before, after = _fingerprint(before), _fingerprint(after)
        return "%s: %s %s -> %s%s" % (self.kind, self.field, _shown(before), _shown(after),
                                      " (%s)" % self.why if self.why else "")

    def record(self) -> dict:
        """For imds-changes.json and the plan's JSON."""
        shown = self.line()
        return {"Kind": self.kind, "Field": self.field, "Line": shown}


def _fingerprint(value: Any) -> str:
    if not value:
        return "none"
    fingerprint = user_data_fingerprint(value)
    return "%d bytes sha256:%s" % (fingerprint["Bytes"], fingerprint["Sha256"][:12])


def _shown(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "(unset)"
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(_shown(v) for v in value)
    return str(value)


def kind_of(field: str) -> str:
    return FIELD_KINDS.get(field, "other")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def data_changes(before: dict, after: dict, ignore: Iterable[str] = ()) -> list[LaunchChange]:
    """The launch-affecting changes between two launch parameter sets of one shape
    (LaunchTemplateData, or a launch configuration), field by field; metadata options
    are left out (they are the point of the change). Unset and empty are the same."""
    skip = set(ignore) | {"MetadataOptions"}
    changes = []
    for field in sorted(set(before) | set(after)):
        if field in skip:
            continue
        old, new = before.get(field), after.get(field)
        if (_empty(old) and _empty(new)) or _normal(old) == _normal(new):
            continue
        changes.append(LaunchChange(kind_of(field), field, old, new))
    return changes


def _normal(value: Any) -> Any:
    """Order-free for lists of ids (security groups), stripped strings."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(v.strip() for v in value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if not _empty(v)}
    return value


def refused(changes: Iterable[LaunchChange], allowed: Iterable[str]) -> list[LaunchChange]:
    """The changes the policy did not opt in to (metadata options always pass)."""
    allowed = set(allowed)
    return [c for c in changes if c.kind != METADATA and c.kind not in allowed]


def refusal(what: str, changes: list[LaunchChange]) -> str:
    """The one-line reason for refusing a plan with launch-affecting changes."""
    kinds = sorted({c.kind for c in changes})
    return ("%s would also change what instances launch with: %s; nothing was changed - "
            "add %s to the action's allow-launch-changes to accept exactly that" % (
                what, "; ".join(c.line() for c in changes),
                ", ".join(kinds)))
