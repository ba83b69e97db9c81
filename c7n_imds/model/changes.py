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

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
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
    "replace-all-at-once": "every instance replaced at the same time (no rolling replacement)",
    "other": "any other launch parameter (placement, monitoring, market options, ...)",
}
METADATA = "metadata-options"  # what every IMDS fix changes: never refused

# LaunchTemplateData (and launch configuration) fields by kind; a field not listed is
# "other", so a field AWS adds later is never silently accepted.
FIELD_KINDS: dict[str, str] = {
    "MetadataOptions": METADATA,
    "ImageId": "image",
    "KernelId": "image",
    "RamDiskId": "image",
    "RamdiskId": "image",
    "InstanceType": "instance-types",
    "InstanceRequirements": "instance-types",
    "Overrides": "instance-types",
    "InstanceTypes": "instance-types",
    "SecurityGroupIds": "network",
    "SecurityGroups": "network",
    "NetworkInterfaces": "network",
    "AssociatePublicIpAddress": "network",
    "VPCZoneIdentifier": "network",
    "Subnets": "network",
    "BlockDeviceMappings": "storage",
    "EbsOptimized": "storage",
    "IamInstanceProfile": "instance-profile",
    "UserData": "user-data",
    "KeyName": "key-pair",
    "MinSize": "group-size",
    "MaxSize": "group-size",
    "DesiredCapacity": "group-size",
    # the launch views below
    "BlockDevices": "storage",
    "SpotMaxPrice": "other",
    "Monitoring": "other",
    "Tenancy": "other",
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
        return "%s: %s %s -> %s%s" % (
            self.kind,
            self.field,
            _shown(before),
            _shown(after),
            " (%s)" % self.why if self.why else "",
        )

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
    for name in sorted(set(before) | set(after)):
        if name in skip:
            continue
        old, new = before.get(name), after.get(name)
        if (_empty(old) and _empty(new)) or _normal(old) == _normal(new):
            continue
        changes.append(LaunchChange(kind_of(name), name, old, new))
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
    return (
        "%s would also change what instances launch with: %s; nothing was changed - "
        "add %s to the action's allow-launch-changes to accept exactly that"
        % (what, "; ".join(c.line() for c in changes), ", ".join(kinds))
    )


# -- launch views: what instances start with, from either launch shape ----------------
#
# A conversion turns a launch configuration into launch template data (translate.py).
# To prove it changes nothing but the metadata options, both are reduced here, by code
# that shares nothing with the translation, to the same view of what an instance gets,
# and compared. A mapping slip in translate.py then shows up as a launch change.


def _text(value: Any) -> str | None:
    value = value.strip() if isinstance(value, str) else value
    return value or None


def _price(value: Any) -> str | None:
    try:
        return str(Decimal(str(value)).normalize()) if value not in (None, "") else None
    except InvalidOperation:
        return str(value)


def _ebs(ebs: dict) -> dict:
    return {
        k: (_text(v) if isinstance(v, str) else v)
        for k, v in sorted(ebs.items())
        if v not in (None, "")
    }


def _devices(mappings: list[dict] | None, no_device: Any) -> dict:
    devices: dict[str | None, Any] = {}
    for mapping in mappings or ():
        name = _text(mapping.get("DeviceName"))
        if mapping.get("NoDevice") == no_device and "NoDevice" in mapping:
            devices[name] = "suppressed"
        elif mapping.get("VirtualName"):
            devices[name] = "instance store %s" % mapping["VirtualName"]
        else:
            devices[name] = _ebs(mapping.get("Ebs") or {})
    return devices


def configuration_view(configuration: dict, security_group_ids: list[str] | None = None) -> dict:
    """What an instance launched from a launch configuration gets (AWS's semantics:
    monitoring is on unless disabled; default tenancy is no tenancy)."""
    monitoring = configuration.get("InstanceMonitoring")
    return {
        "ImageId": _text(configuration.get("ImageId")),
        "InstanceType": _text(configuration.get("InstanceType")),
        "KeyName": _text(configuration.get("KeyName")),
        "KernelId": _text(configuration.get("KernelId")),
        "RamdiskId": _text(configuration.get("RamdiskId")),
        "SecurityGroups": sorted(
            _text(g)
            for g in (
                security_group_ids
                if security_group_ids is not None
                else configuration.get("SecurityGroups") or ()
            )
        ),
        "AssociatePublicIpAddress": configuration.get("AssociatePublicIpAddress"),
        "Monitoring": True if monitoring is None else bool(monitoring.get("Enabled", True)),
        "SpotMaxPrice": _price(configuration.get("SpotPrice")),
        "IamInstanceProfile": _text(configuration.get("IamInstanceProfile")),
        "Tenancy": None
        if configuration.get("PlacementTenancy") in (None, "", "default")
        else configuration["PlacementTenancy"],
        "EbsOptimized": bool(configuration.get("EbsOptimized")),
        "UserData": _text(configuration.get("UserData")),
        "BlockDevices": _devices(configuration.get("BlockDeviceMappings"), True),
    }


def template_view(launch_template_data: dict) -> dict:
    """The same view of launch template data (monitoring off unless enabled; the
    primary network interface's groups and public address count as the instance's)."""
    data = launch_template_data
    primary: dict = next(
        (n for n in data.get("NetworkInterfaces") or () if n.get("DeviceIndex", 0) == 0), {}
    )
    groups = (
        list(data.get("SecurityGroupIds") or ())
        + list(data.get("SecurityGroups") or ())
        + list(primary.get("Groups") or ())
    )
    market = data.get("InstanceMarketOptions") or {}
    profile = data.get("IamInstanceProfile") or {}
    tenancy = (data.get("Placement") or {}).get("Tenancy")
    return {
        "ImageId": _text(data.get("ImageId")),
        "InstanceType": _text(data.get("InstanceType")),
        "KeyName": _text(data.get("KeyName")),
        "KernelId": _text(data.get("KernelId")),
        "RamdiskId": _text(data.get("RamDiskId")),
        "SecurityGroups": sorted(_text(g) for g in groups),
        "AssociatePublicIpAddress": primary.get("AssociatePublicIpAddress"),
        "Monitoring": bool((data.get("Monitoring") or {}).get("Enabled")),
        "SpotMaxPrice": _price((market.get("SpotOptions") or {}).get("MaxPrice"))
        if market.get("MarketType") == "spot"
        else None,
        "IamInstanceProfile": _text(profile.get("Name") or profile.get("Arn")),
        "Tenancy": None if tenancy in (None, "", "default") else tenancy,
        "EbsOptimized": bool(data.get("EbsOptimized")),
        "UserData": _text(data.get("UserData")),
        "BlockDevices": _devices(data.get("BlockDeviceMappings"), ""),
    }


@dataclass
class GroupChange:
    """The plan of one group, as every change path states it: what it launches from
    before and after, the metadata options before and after, every launch-affecting
    change beyond them, and how its running instances are replaced."""

    group: str
    before: str
    after: str
    metadata_before: dict = field(default_factory=dict)
    metadata_after: dict = field(default_factory=dict)
    launch_changes: list[LaunchChange] = field(default_factory=list)
    replacement: str = ""

    def record(self) -> dict:
        return {
            "AutoScalingGroupName": self.group,
            "Before": self.before,
            "After": self.after,
            "MetadataOptions": metadata_line(self.metadata_before, self.metadata_after),
            "LaunchChanges": [c.record() for c in self.launch_changes],
            "Replacement": self.replacement,
        }


METADATA_SHOWN = ("HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint", "InstanceMetadataTags")
# what AWS applies where a launch leaves a metadata option unset (HttpTokens: the
# account default or the AMI decide; "optional" is the classic default)
METADATA_UNSET = {
    "HttpTokens": "optional (unset)",
    "HttpPutResponseHopLimit": "1 (unset)",
    "HttpEndpoint": "enabled (unset)",
    "InstanceMetadataTags": "disabled (unset)",
}


def metadata_line(before: dict, after: dict) -> str:
    """ "HttpTokens optional -> required, HttpPutResponseHopLimit 1 -> 2" (what changes)."""
    parts = []
    for key in METADATA_SHOWN:
        old = (before or {}).get(key)
        new = (after or {}).get(key)
        if new is None or old == new:
            continue
        parts.append("%s %s -> %s" % (key, METADATA_UNSET[key] if old is None else old, new))
    return ", ".join(parts) or "unchanged"


def replacement_of_instances(mode: str, preferences: dict | None = None) -> tuple[str, bool]:
    """(how the group's running instances get the new options, whether all of them
    are replaced at once) for the actions' `running-instances` option."""
    if mode == "modify":
        return (
            "running instances modified in place (ModifyInstanceMetadataOptions); none replaced",
            False,
        )
    if mode == "refresh":
        preferences = preferences or {}
        low = preferences.get("MinHealthyPercentage")
        high = preferences.get("MaxHealthyPercentage")
        if low == 0 and (high is None or high <= 100):
            return (
                "instance refresh with MinHealthyPercentage 0: every instance replaced at once",
                True,
            )
        return (
            "instance refresh, rolling: at least %s healthy"
            % (
                "%d%%" % low
                if low is not None
                else "the group's instance maintenance policy's minimum (else 90%)"
            ),
            False,
        )
    return (
        "none now: running instances keep their options until scaling or a refresh "
        "replaces them (running-instances: keep)",
        False,
    )
