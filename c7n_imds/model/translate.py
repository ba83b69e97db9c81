"""Pure data transforms between AWS launch shapes.

Everything here takes and returns plain dicts in AWS's own field names. There are no AWS
calls and no c7n imports, so every rule can be tested exhaustively and checked against
botocore's service model.

The launch configuration -> launch template mapping follows AWS's "launch configuration
mapping reference" (Auto Scaling user guide); see docs/mapping.md.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from c7n_imds.model.refusals import Refused
from c7n_imds.names import PRESERVE, TOKENS_REQUIRED

# A hop limit: a number, or `preserve` (keep what the source has).
HopLimit = int | str
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]+$")
# Launch configuration fields with a straight launch template equivalent
# (an empty string in the describe output means "unset").
SAME_NAME_FIELDS = ("ImageId", "InstanceType", "KeyName", "KernelId", "UserData")
RENAMED_FIELDS = {"RamdiskId": "RamDiskId"}
# Fields that describe the configuration itself, not the instances it launches.
IDENTITY_FIELDS = ("LaunchConfigurationName", "LaunchConfigurationARN", "CreatedTime")
# EC2-Classic was retired in 2023; these have no launch template equivalent.
CLASSIC_LINK_FIELDS = ("ClassicLinkVPCId", "ClassicLinkVPCSecurityGroups")
HANDLED_FIELDS = frozenset(
    SAME_NAME_FIELDS
    + tuple(RENAMED_FIELDS)
    + IDENTITY_FIELDS
    + CLASSIC_LINK_FIELDS
    + (
        "EbsOptimized",
        "SecurityGroups",
        "AssociatePublicIpAddress",
        "InstanceMonitoring",
        "SpotPrice",
        "IamInstanceProfile",
        "PlacementTenancy",
        "BlockDeviceMappings",
        "MetadataOptions",
    )
)
EBS_FIELDS = (
    "SnapshotId",
    "VolumeSize",
    "VolumeType",
    "DeleteOnTermination",
    "Iops",
    "Encrypted",
    "Throughput",
)
METADATA_FIELDS = (
    "HttpTokens",
    "HttpPutResponseHopLimit",
    "HttpEndpoint",
    "HttpProtocolIpv6",
    "InstanceMetadataTags",
)


class TranslationError(Refused, ValueError):
    """A launch configuration cannot be carried faithfully into a launch template."""


def refuse_unknown_fields(launch_configuration: dict, purpose: str) -> None:
    """A field this code does not know would be lost: refuse instead."""
    unknown = sorted(set(launch_configuration) - HANDLED_FIELDS)
    if unknown:
        raise TranslationError(
            "launch configuration %r has field(s) %s that c7n-imds does not know how to "
            "%s; upgrade c7n-imds or do it by hand"
            % (launch_configuration.get("LaunchConfigurationName"), ", ".join(unknown), purpose)
        )


def security_group_names(launch_configuration: dict) -> list[str]:
    """Entries of an LC's SecurityGroups that are names (default VPC), not ids."""
    return [
        g
        for g in launch_configuration.get("SecurityGroups") or ()
        if not SECURITY_GROUP_ID.match(g)
    ]


def merge_metadata_options(
    existing: dict | None,
    http_tokens: str = TOKENS_REQUIRED,
    hop_limit: HopLimit = PRESERVE,
    http_endpoint: str = PRESERVE,
    instance_metadata_tags: str = PRESERVE,
) -> dict:
    """Metadata options with the requested settings laid over the existing ones.

    Settings left at ``preserve`` keep whatever the source had, including "unset" (which
    lets the account default or the AMI decide at launch).
    """
    merged = {k: v for k, v in (existing or {}).items() if k in METADATA_FIELDS}
    if http_tokens != PRESERVE:
        merged["HttpTokens"] = http_tokens
    if hop_limit != PRESERVE:
        merged["HttpPutResponseHopLimit"] = int(hop_limit)
    if http_endpoint != PRESERVE:
        merged["HttpEndpoint"] = http_endpoint
    if instance_metadata_tags != PRESERVE:
        merged["InstanceMetadataTags"] = instance_metadata_tags
    return merged


def _block_device_mapping(lc_mapping: dict) -> dict:
    """One LC block device mapping as a template one. A mapping is exactly one of:
    suppressed (NoDevice), an instance store volume (VirtualName), or an EBS volume.
    (moto adds an empty ``Ebs`` to instance store mappings; AWS never combines them.)"""
    mapping = {"DeviceName": lc_mapping["DeviceName"]}
    if lc_mapping.get("NoDevice"):
        # LC: boolean true; LT: an empty string suppresses the device.
        mapping["NoDevice"] = ""
    elif lc_mapping.get("VirtualName"):
        mapping["VirtualName"] = lc_mapping["VirtualName"]
    elif lc_mapping.get("Ebs"):
        mapping["Ebs"] = _ebs(lc_mapping["Ebs"])
    return mapping


def _ebs(lc_ebs: dict) -> dict:
    """An LC's Ebs settings, ids stripped: recorded AWS answers carry trailing spaces
    in SnapshotIds (e.g. "snap-5d72a050 "), which must not reach a create."""
    return {
        k: (lc_ebs[k].strip() if isinstance(lc_ebs[k], str) else lc_ebs[k])
        for k in EBS_FIELDS
        if lc_ebs.get(k) is not None
    }


def _copied_block_device_mapping(lc_mapping: dict) -> dict:
    """An LC block device mapping for a copy: the same one-of rule as above."""
    mapping = {"DeviceName": lc_mapping["DeviceName"]}
    if lc_mapping.get("NoDevice"):
        mapping["NoDevice"] = True
    elif lc_mapping.get("VirtualName"):
        mapping["VirtualName"] = lc_mapping["VirtualName"]
    elif lc_mapping.get("Ebs"):
        mapping["Ebs"] = _ebs(lc_mapping["Ebs"])
    return mapping


def launch_template_data(
    launch_configuration: dict,
    security_group_ids: list[str] | None = None,
    *,
    http_tokens: str = TOKENS_REQUIRED,
    hop_limit: HopLimit = PRESERVE,
    http_endpoint: str = PRESERVE,
) -> tuple[dict, list[str]]:
    """Translate a DescribeLaunchConfigurations item into LaunchTemplateData.

    ``security_group_ids`` are the LC's security groups as ids, in order, with any names
    already resolved by the caller (see :func:`security_group_names`); when omitted, the
    LC must hold ids only.

    Returns ``(launch_template_data, notes)``; notes are human-readable remarks about
    settings that could not be carried (ClassicLink). Raises :class:`TranslationError`
    for anything that cannot be carried faithfully, such as a field this code does not
    know, so nothing is silently lost.
    """
    lc = launch_configuration
    refuse_unknown_fields(lc, "carry into a launch template")
    if security_group_ids is None:
        names = security_group_names(lc)
        if names:
            raise TranslationError(
                "launch configuration %r names security groups %s; resolve them to ids "
                "first" % (lc.get("LaunchConfigurationName"), ", ".join(names))
            )
        security_group_ids = list(lc.get("SecurityGroups") or ())

    data, notes = {}, []
    for field in SAME_NAME_FIELDS:
        if lc.get(field):
            data[field] = lc[field]
    for lc_field, lt_field in RENAMED_FIELDS.items():
        if lc.get(lc_field):
            data[lt_field] = lc[lc_field]
    if lc.get("EbsOptimized") is not None:
        data["EbsOptimized"] = lc["EbsOptimized"]

    # An LC enables detailed monitoring unless told otherwise; an LT disables it.
    data["Monitoring"] = {
        "Enabled": bool((lc.get("InstanceMonitoring") or {}).get("Enabled", True))
    }

    if lc.get("IamInstanceProfile"):
        profile = lc["IamInstanceProfile"]
        data["IamInstanceProfile"] = (
            {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
        )

    if lc.get("SpotPrice"):
        data["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"MaxPrice": lc["SpotPrice"]},
        }

    if lc.get("PlacementTenancy"):
        data["Placement"] = {"Tenancy": lc["PlacementTenancy"]}

    if lc.get("BlockDeviceMappings"):
        data["BlockDeviceMappings"] = [_block_device_mapping(m) for m in lc["BlockDeviceMappings"]]

    if lc.get("AssociatePublicIpAddress") is not None:
        # The public IP setting lives on the primary network interface in a template,
        # and a template with interfaces must carry its groups there too.
        interface = {
            "DeviceIndex": 0,
            "AssociatePublicIpAddress": lc["AssociatePublicIpAddress"],
            "DeleteOnTermination": True,
        }
        if security_group_ids:
            interface["Groups"] = list(security_group_ids)
        data["NetworkInterfaces"] = [interface]
    elif security_group_ids:
        data["SecurityGroupIds"] = list(security_group_ids)

    if any(lc.get(f) for f in CLASSIC_LINK_FIELDS):
        notes.append(
            "ClassicLink settings (%s) dropped: EC2-Classic is retired and launch "
            "templates have no equivalent" % ", ".join(f for f in CLASSIC_LINK_FIELDS if lc.get(f))
        )

    data["MetadataOptions"] = merge_metadata_options(
        lc.get("MetadataOptions"),
        http_tokens=http_tokens,
        hop_limit=hop_limit,
        http_endpoint=http_endpoint,
    )
    return data, notes


def launch_configuration_copy(
    launch_configuration: dict,
    new_name: str,
    *,
    http_tokens: str = TOKENS_REQUIRED,
    hop_limit: HopLimit = PRESERVE,
    http_endpoint: str = PRESERVE,
) -> tuple[dict, list[str]]:
    """CreateLaunchConfiguration parameters for a copy identical in every field but the
    metadata options. Returns ``(parameters, notes)``.

    The describe output holds user data base64-encoded, and botocore encodes
    CreateLaunchConfiguration's UserData itself: the copy gets the decoded bytes, so
    what reaches AWS is the same base64 text, byte for byte.
    """
    lc = launch_configuration
    refuse_unknown_fields(lc, "copy")
    params: dict[str, Any] = {"LaunchConfigurationName": new_name}
    notes: list[str] = []
    for field in (
        "ImageId",
        "KeyName",
        "InstanceType",
        "KernelId",
        "RamdiskId",
        "SpotPrice",
        "IamInstanceProfile",
        "PlacementTenancy",
    ):
        if lc.get(field):
            params[field] = lc[field]
    for field in ("EbsOptimized", "AssociatePublicIpAddress", "InstanceMonitoring"):
        if lc.get(field) is not None:
            params[field] = lc[field]
    if lc.get("SecurityGroups"):
        params["SecurityGroups"] = list(lc["SecurityGroups"])
    if lc.get("UserData"):
        params["UserData"] = base64.b64decode(lc["UserData"])
    if lc.get("BlockDeviceMappings"):
        params["BlockDeviceMappings"] = [
            _copied_block_device_mapping(m) for m in lc["BlockDeviceMappings"]
        ]
    if any(lc.get(f) for f in CLASSIC_LINK_FIELDS):
        notes.append(
            "ClassicLink settings (%s) not copied: EC2-Classic is retired"
            % (", ".join(f for f in CLASSIC_LINK_FIELDS if lc.get(f)))
        )
    params["MetadataOptions"] = {
        k: v
        for k, v in merge_metadata_options(
            lc.get("MetadataOptions"),
            http_tokens=http_tokens,
            hop_limit=hop_limit,
            http_endpoint=http_endpoint,
        ).items()
        if k in ("HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint")
    }
    return params, notes
