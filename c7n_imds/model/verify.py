"""Read-back: does what AWS stored launch exactly what the group launched before, plus
the requested metadata options?

AWS does not validate launch template parameters at creation, may merge inherited
parameters (``SourceVersion``) and may normalise what it stores. The only proof is to
describe the created item and compare it, field by field, with the intent. This module
is that comparison; each accepted normalisation is listed in :data:`NORMALISATIONS`
(and in docs/readback.md) with its reason. Anything else is a difference, and a
difference means the group is not switched and no default moves.
"""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from c7n_imds.model.redaction import user_data_fingerprint
from c7n_imds.model.refusals import Refused

# (where, what is accepted, why) - the only differences a read-back tolerates.
NORMALISATIONS: tuple[tuple[str, str, str], ...] = (
    (
        "any field",
        "absent, null, an empty string, an empty list and an empty structure "
        "are the same (but for NoDevice, whose empty string suppresses a device)",
        "AWS omits unset members in describe output, and launch configurations describe "
        "unset ids (KernelId, RamdiskId) as empty strings",
    ),
    (
        "ids and names (fields ending in Id or Name, security group lists)",
        "leading and trailing white space is ignored",
        "recorded AWS answers carry "
        "trailing spaces in launch configuration names and Ebs SnapshotIds; AWS resolves "
        "the id without them",
    ),
    (
        "SecurityGroupIds, SecurityGroups, NetworkInterfaces[].Groups",
        "compared as sets",
        "the order of security groups has no meaning to EC2",
    ),
    (
        "MetadataOptions.State",
        "ignored",
        "a response-only member (pending or applied) "
        "that says whether the options have been applied; not a launch parameter",
    ),
    (
        "MetadataOptions.HttpEndpoint, HttpProtocolIpv6, InstanceMetadataTags",
        "stored with AWS's documented default (enabled, disabled, disabled) where the "
        "intent leaves it unset",
        "AWS may echo the default it applies; botocore "
        "documents these defaults for launch templates. HttpTokens and "
        "HttpPutResponseHopLimit get no such allowance: their defaults depend on the AMI",
    ),
    (
        "BlockDeviceMappings",
        "compared by DeviceName (a difference names the device: "
        "BlockDeviceMappings[/dev/xvda].Ebs.SnapshotId)",
        "a device's place in the list has no meaning; its name identifies it",
    ),
    (
        "Monitoring.Enabled",
        "false is the same as unset",
        "detailed monitoring is off in a launch template unless enabled",
    ),
    (
        "InstanceMarketOptions.SpotOptions.MaxPrice",
        "compared as a decimal number",
        "AWS may store a price with more decimal places (0.05 as 0.050000)",
    ),
)

METADATA_DEFAULTS = {
    "HttpEndpoint": "enabled",
    "HttpProtocolIpv6": "disabled",
    "InstanceMetadataTags": "disabled",
}
RESPONSE_ONLY = {("MetadataOptions", "State")}
SET_VALUED = ("SecurityGroupIds", "SecurityGroups", "Groups")

# Block device mapping members of the request shape (LaunchTemplateBlockDeviceMapping-
# Request and LaunchTemplateEbsBlockDeviceRequest in botocore's EC2 model; a unit test
# checks these against the installed botocore, so a new member cannot be lost).
BLOCK_DEVICE_FIELDS = ("DeviceName", "VirtualName", "Ebs", "NoDevice")
EBS_FIELDS = (
    "Encrypted",
    "DeleteOnTermination",
    "Iops",
    "KmsKeyId",
    "SnapshotId",
    "VolumeSize",
    "VolumeType",
    "Throughput",
    "VolumeInitializationRate",
    "EbsCardIndex",
)


class CannotCarry(Refused, ValueError):
    """Something of the source cannot be sent back to AWS unchanged."""


def block_device_mappings_request(mappings: list[dict], source: str) -> list[dict]:
    """A version's block device mappings (describe shape) in request shape.

    A new version made with ``SourceVersion`` loses every inherited ``SnapshotId``
    unless the mappings are sent explicitly, so they are always sent. A member this code
    does not know would be dropped by that: refuse instead.
    """
    request = []
    for mapping in mappings:
        unknown = set(mapping) - set(BLOCK_DEVICE_FIELDS)
        unknown |= {"Ebs." + k for k in set(mapping.get("Ebs") or {}) - set(EBS_FIELDS)}
        if unknown:
            raise CannotCarry(
                "%s: block device mapping %s has member(s) %s that c7n-imds cannot carry "
                "into a new version; upgrade c7n-imds or change it by hand"
                % (source, mapping.get("DeviceName"), ", ".join(sorted(unknown)))
            )
        item = {k: copy.deepcopy(v) for k, v in mapping.items() if v is not None}
        if "Ebs" in item:
            item["Ebs"] = {
                k: (v.strip() if isinstance(v, str) else v)
                for k, v in item["Ebs"].items()
                if v is not None
            }
        request.append(item)
    return request


def _is_unset(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _is_identifier(key: str) -> bool:
    return key.endswith("Id") or key.endswith("Name") or key in SET_VALUED


def _normalise(value: Any, key: str = "", parent: str = "") -> Any:
    if isinstance(value, dict):
        result = {}
        for k, v in value.items():
            if (key, k) in RESPONSE_ONLY:
                continue
            v = _normalise(v, k, key)
            # NoDevice "" suppresses a device: the one empty string that means something.
            if k == "NoDevice" or not _is_unset(v):
                result[k] = v
        if key == "Monitoring" and result.get("Enabled") is False:
            result.pop("Enabled")
        return result
    if isinstance(value, list):
        items = [_normalise(v, key, parent) for v in value]
        items = [v for v in items if not _is_unset(v)]
        if key in SET_VALUED:
            return sorted(items, key=repr)
        if key == "BlockDeviceMappings" and all(
            isinstance(m, dict) and m.get("DeviceName") for m in items
        ):
            return _ByDevice({m["DeviceName"]: m for m in items})
        return items
    if isinstance(value, str):
        if _is_identifier(key):
            value = value.strip()
        if key == "MaxPrice":
            try:
                return Decimal(value).normalize()
            except InvalidOperation:
                return value
    return value


class _ByDevice(dict):
    """Block device mappings keyed by device name (a difference names the device)."""


def _walk(expected: Any, stored: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(expected, dict) and stored is None:
        stored = {}
    if isinstance(stored, dict) and expected is None:
        expected = {}
    if isinstance(expected, dict) and isinstance(stored, dict):
        by_device = isinstance(expected, _ByDevice) or isinstance(stored, _ByDevice)
        for key in sorted(set(expected) | set(stored)):
            if by_device:
                if key not in expected or key not in stored:
                    # a whole device added or lost
                    yield "%s[%s]" % (path, key), expected.get(key), stored.get(key)
                else:
                    yield from _walk(expected[key], stored[key], "%s[%s]" % (path, key))
            else:
                yield from _walk(
                    expected.get(key), stored.get(key), "%s.%s" % (path, key) if path else key
                )
    elif isinstance(expected, list) and isinstance(stored, list) and len(expected) == len(stored):
        for index, (e, s) in enumerate(zip(expected, stored)):
            yield from _walk(e, s, "%s[%d]" % (path, index))
    elif expected != stored:
        yield path, expected, stored


def differences(expected: dict, stored: dict) -> list[dict]:
    """Field-level differences between the intended launch data and what AWS stored,
    after the accepted normalisations; ``[]`` when they launch the same. Each item is
    ``{"Field", "Expected", "Stored"}`` with user data shown only as size and SHA-256."""
    intent, actual = _normalise(expected or {}), _normalise(stored or {})
    wanted_options = intent.get("MetadataOptions") or {}
    stored_options = actual.get("MetadataOptions") or {}
    for key, default in METADATA_DEFAULTS.items():
        if key not in wanted_options and stored_options.get(key) == default:
            stored_options.pop(key)
    if "MetadataOptions" in actual and not stored_options:
        actual.pop("MetadataOptions")
    found = []
    for field, want, got in _walk(intent, actual, ""):
        if field == "UserData":
            want = user_data_fingerprint(want) if want else None
            got = user_data_fingerprint(got) if got else None
        found.append({"Field": field, "Expected": _plain(want), "Stored": _plain(got)})
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


def expected_version_data(source_data: dict, metadata_options: dict) -> dict:
    """What a version made from ``source_data`` with new metadata options should hold:
    every parameter of the source, the options replaced whole."""
    data = copy.deepcopy(source_data or {})
    data["MetadataOptions"] = dict(metadata_options)
    return data


def expected_configuration_copy(
    source: dict, copy_name: str, metadata_options: dict, dropped: tuple[str, ...] = ()
) -> dict:
    """What DescribeLaunchConfigurations should say of an IMDSv2 copy: the source's
    every field, but its name, ARN, creation time, metadata options and the fields the
    copy cannot carry (``dropped``: EC2-Classic's)."""
    data = {
        k: copy.deepcopy(v)
        for k, v in source.items()
        if k not in ("LaunchConfigurationARN", "CreatedTime") + tuple(dropped)
    }
    data["LaunchConfigurationName"] = copy_name
    data["MetadataOptions"] = dict(metadata_options)
    return data


def stored_configuration(described: dict, dropped: tuple[str, ...] = ()) -> dict:
    """A described launch configuration, without what :func:`expected_configuration_copy`
    leaves out."""
    return {
        k: v
        for k, v in described.items()
        if k not in ("LaunchConfigurationARN", "CreatedTime") + tuple(dropped)
    }


def warning_messages(response: dict) -> list[str]:
    """The ``Warning`` of a CreateLaunchTemplate / CreateLaunchTemplateVersion answer:
    invalid parameters or combinations AWS accepted without rejecting the request."""
    errors = ((response or {}).get("Warning") or {}).get("Errors") or []
    return ["%s: %s" % (e.get("Code"), e.get("Message")) for e in errors]


def summary(differences_: list[dict], limit: int = 6) -> str:
    """One line naming each differing field, its intended and its stored value."""

    def shown(value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"Bytes", "Sha256"}:
            return "user data of %d bytes, sha256 %s" % (value["Bytes"], value["Sha256"][:12])
        return "unset" if value is None else repr(value)

    parts = [
        "%s: expected %s, stored %s" % (d["Field"], shown(d["Expected"]), shown(d["Stored"]))
        for d in differences_[:limit]
    ]
    if len(differences_) > limit:
        parts.append("and %d more" % (len(differences_) - limit))
    return "; ".join(parts)
