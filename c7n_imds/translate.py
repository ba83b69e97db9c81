"""Pure data transforms between AWS launch shapes.

Everything here takes and returns plain dicts in AWS's own field names. There are no AWS
calls and no c7n imports, so every rule can be tested exhaustively and checked against
botocore's service model.

The launch configuration -> launch template mapping follows AWS's "launch configuration
mapping reference" (Auto Scaling user guide); see DESIGN.md section 6.
"""
import base64
import binascii
import hashlib
import json
import re
from datetime import datetime, timezone

SOURCE_TAG = "c7n-imds:source"
SOURCE_CREATED_TAG = "c7n-imds:source-created"
PREVIOUS_LAUNCH_TAG = "c7n-imds:previous-launch"

TOKENS_REQUIRED = "required"
TOKENS_OPTIONAL = "optional"
PRESERVE = "preserve"

# Launch template names: 3-128 characters of [a-zA-Z0-9().-/_].
TEMPLATE_NAME_INVALID = re.compile(r"[^a-zA-Z0-9().\-/_]+")
TEMPLATE_NAME_MAX = 128
TEMPLATE_NAME_MARKER = "-imdsv2-"
DIGEST_LENGTH = 10
TAG_VALUE_MAX = 256

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
    SAME_NAME_FIELDS + tuple(RENAMED_FIELDS) + IDENTITY_FIELDS + CLASSIC_LINK_FIELDS + (
        "EbsOptimized", "SecurityGroups", "AssociatePublicIpAddress", "InstanceMonitoring",
        "SpotPrice", "IamInstanceProfile", "PlacementTenancy", "BlockDeviceMappings",
        "MetadataOptions"))

EBS_FIELDS = ("SnapshotId", "VolumeSize", "VolumeType", "DeleteOnTermination", "Iops",
              "Encrypted", "Throughput")
METADATA_FIELDS = ("HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint",
                   "HttpProtocolIpv6", "InstanceMetadataTags")


class TranslationError(ValueError):
    """A launch configuration cannot be carried faithfully into a launch template."""


def refuse_unknown_fields(launch_configuration, purpose):
    """A field this code does not know would be lost: refuse instead."""
    unknown = sorted(set(launch_configuration) - HANDLED_FIELDS)
    if unknown:
        raise TranslationError(
            "launch configuration %r has field(s) %s that c7n-imds does not know how to "
            "%s; upgrade c7n-imds or do it by hand" % (
                launch_configuration.get("LaunchConfigurationName"), ", ".join(unknown),
                purpose))


def security_group_names(launch_configuration):
    """Entries of an LC's SecurityGroups that are names (default VPC), not ids."""
    return [g for g in launch_configuration.get("SecurityGroups") or ()
            if not SECURITY_GROUP_ID.match(g)]


def merge_metadata_options(existing, http_tokens=TOKENS_REQUIRED, hop_limit=PRESERVE,
                           http_endpoint=PRESERVE, instance_metadata_tags=PRESERVE):
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


def _block_device_mapping(lc_mapping):
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


def _ebs(lc_ebs):
    """An LC's Ebs settings, ids stripped: recorded AWS answers carry trailing spaces
    in SnapshotIds (e.g. "snap-5d72a050 "), which must not reach a create."""
    return {k: (lc_ebs[k].strip() if isinstance(lc_ebs[k], str) else lc_ebs[k])
            for k in EBS_FIELDS if lc_ebs.get(k) is not None}


def _copied_block_device_mapping(lc_mapping):
    """An LC block device mapping for a copy: the same one-of rule as above."""
    mapping = {"DeviceName": lc_mapping["DeviceName"]}
    if lc_mapping.get("NoDevice"):
        mapping["NoDevice"] = True
    elif lc_mapping.get("VirtualName"):
        mapping["VirtualName"] = lc_mapping["VirtualName"]
    elif lc_mapping.get("Ebs"):
        mapping["Ebs"] = _ebs(lc_mapping["Ebs"])
    return mapping


def launch_template_data(launch_configuration, security_group_ids=None, *,
                         http_tokens=TOKENS_REQUIRED, hop_limit=PRESERVE,
                         http_endpoint=PRESERVE):
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
                "first" % (lc.get("LaunchConfigurationName"), ", ".join(names)))
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
        "Enabled": bool((lc.get("InstanceMonitoring") or {}).get("Enabled", True))}

    if lc.get("IamInstanceProfile"):
        profile = lc["IamInstanceProfile"]
        data["IamInstanceProfile"] = (
            {"Arn": profile} if profile.startswith("arn:") else {"Name": profile})

    if lc.get("SpotPrice"):
        data["InstanceMarketOptions"] = {
            "MarketType": "spot", "SpotOptions": {"MaxPrice": lc["SpotPrice"]}}

    if lc.get("PlacementTenancy"):
        data["Placement"] = {"Tenancy": lc["PlacementTenancy"]}

    if lc.get("BlockDeviceMappings"):
        data["BlockDeviceMappings"] = [
            _block_device_mapping(m) for m in lc["BlockDeviceMappings"]]

    if lc.get("AssociatePublicIpAddress") is not None:
        # The public IP setting lives on the primary network interface in a template,
        # and a template with interfaces must carry its groups there too.
        interface = {"DeviceIndex": 0,
                     "AssociatePublicIpAddress": lc["AssociatePublicIpAddress"],
                     "DeleteOnTermination": True}
        if security_group_ids:
            interface["Groups"] = list(security_group_ids)
        data["NetworkInterfaces"] = [interface]
    elif security_group_ids:
        data["SecurityGroupIds"] = list(security_group_ids)

    if any(lc.get(f) for f in CLASSIC_LINK_FIELDS):
        notes.append(
            "ClassicLink settings (%s) dropped: EC2-Classic is retired and launch "
            "templates have no equivalent" % ", ".join(
                f for f in CLASSIC_LINK_FIELDS if lc.get(f)))

    data["MetadataOptions"] = merge_metadata_options(
        lc.get("MetadataOptions"), http_tokens=http_tokens, hop_limit=hop_limit,
        http_endpoint=http_endpoint)
    return data, notes


def _timestamp(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value else ""


def source_identity(launch_configuration):
    """(name, created) - what tells one launch configuration from a later one of the
    same name. LCs are immutable but can be deleted and re-created under one name."""
    return (launch_configuration["LaunchConfigurationName"],
            _timestamp(launch_configuration.get("CreatedTime")))


def template_name(launch_configuration):
    """A valid, deterministic launch template name for a launch configuration.

    LC names allow almost any character and 255 of them; template names allow 3-128 of
    ``[a-zA-Z0-9().-/_]``. The readable part is the LC name with other characters
    replaced and cut to fit; the digest of the exact name and creation time keeps
    names unique when two LC names sanitize alike, and gives a re-created LC of the same
    name its own template.
    """
    name, created = source_identity(launch_configuration)
    digest = hashlib.sha256(("%s\0%s" % (name, created)).encode("utf-8")).hexdigest()
    readable = TEMPLATE_NAME_INVALID.sub("_", name).strip("_") or "lc"
    room = TEMPLATE_NAME_MAX - len(TEMPLATE_NAME_MARKER) - DIGEST_LENGTH
    return readable[:room] + TEMPLATE_NAME_MARKER + digest[:DIGEST_LENGTH]


LAUNCH_CONFIGURATION_NAME_MAX = 255


def copy_name(launch_configuration):
    """A deterministic name for the IMDSv2 copy of a launch configuration (LC names
    allow any character and 255 of them); re-runs find the copy by this name."""
    name, created = source_identity(launch_configuration)
    digest = hashlib.sha256(("%s\0%s" % (name, created)).encode("utf-8")).hexdigest()
    room = LAUNCH_CONFIGURATION_NAME_MAX - len(TEMPLATE_NAME_MARKER) - DIGEST_LENGTH
    return name[:room] + TEMPLATE_NAME_MARKER + digest[:DIGEST_LENGTH]


def launch_configuration_copy(launch_configuration, new_name, *, http_tokens=TOKENS_REQUIRED,
                              hop_limit=PRESERVE, http_endpoint=PRESERVE):
    """CreateLaunchConfiguration parameters for a copy identical in every field but the
    metadata options. Returns ``(parameters, notes)``.

    The describe output holds user data base64-encoded, and botocore encodes
    CreateLaunchConfiguration's UserData itself: the copy gets the decoded bytes, so
    what reaches AWS is the same base64 text, byte for byte.
    """
    lc = launch_configuration
    refuse_unknown_fields(lc, "copy")
    params, notes = {"LaunchConfigurationName": new_name}, []
    for field in ("ImageId", "KeyName", "InstanceType", "KernelId", "RamdiskId",
                  "SpotPrice", "IamInstanceProfile", "PlacementTenancy"):
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
            _copied_block_device_mapping(m) for m in lc["BlockDeviceMappings"]]
    if any(lc.get(f) for f in CLASSIC_LINK_FIELDS):
        notes.append("ClassicLink settings (%s) not copied: EC2-Classic is retired" % (
            ", ".join(f for f in CLASSIC_LINK_FIELDS if lc.get(f))))
    params["MetadataOptions"] = {
        k: v for k, v in merge_metadata_options(
            lc.get("MetadataOptions"), http_tokens=http_tokens, hop_limit=hop_limit,
            http_endpoint=http_endpoint).items()
        if k in ("HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint")}
    return params, notes


def client_token(template_name_):
    """CreateLaunchTemplate idempotency token: concurrent or retried creates of the same
    template collapse into one (at most 64 ASCII characters)."""
    return "c7n-imds-" + hashlib.sha256(template_name_.encode("utf-8")).hexdigest()[:48]


def encode_previous_launch(launch):
    """Tag value recording what a group launched from before we changed it.

    ``launch`` is one of ``{"LaunchConfigurationName": name}`` or
    ``{"LaunchTemplateId": id, "Version": version}``. Launch configuration names can be
    255 characters, more than a tag value holds once prefixed; such a name is recorded
    by digest, which :func:`decode_previous_launch` reports for the caller to match.
    """
    if "LaunchConfigurationName" in launch:
        value = "lc:" + launch["LaunchConfigurationName"]
        if len(value) <= TAG_VALUE_MAX:
            return value
        return "lc-sha256:" + hashlib.sha256(
            launch["LaunchConfigurationName"].encode("utf-8")).hexdigest()
    return "lt:%s:%s" % (launch["LaunchTemplateId"], launch.get("Version") or "$Default")


def encode_previous_mixed_launch(specs):
    """Tag value for a mixed instances policy's template specs (base, then overrides
    that name a template), or None when it does not fit in a tag value."""
    value = "mip:" + ",".join("%s:%s" % (s["LaunchTemplateId"], s["Version"]) for s in specs)
    return value if len(value) <= TAG_VALUE_MAX else None


def decode_previous_launch(value):
    """Inverse of the encoders above; raises ValueError on anything else."""
    if value.startswith("lc:") and len(value) > 3:
        return {"LaunchConfigurationName": value[3:]}
    if value.startswith("lc-sha256:"):
        return {"LaunchConfigurationNameSha256": value[len("lc-sha256:"):]}
    if value.startswith("lt:") and value.count(":") == 2:
        _, template_id, version = value.split(":")
        return {"LaunchTemplateId": template_id, "Version": version}
    if value.startswith("mip:") and len(value) > 4:
        specs = []
        for item in value[4:].split(","):
            if item.count(":") != 1:
                break
            template_id, version = item.split(":")
            specs.append({"LaunchTemplateId": template_id, "Version": version})
        else:
            return {"MixedInstancesPolicy": specs}
    raise ValueError("not a %s value: %r" % (PREVIOUS_LAUNCH_TAG, value))


DERIVED_VERSION = re.compile(r"^c7n-imds: from version (\d+) with (\{.*\})$")


def derived_version_description(source_version, metadata_options):
    """VersionDescription of a version we derive: names its source, so a re-run finds
    it instead of creating another, and a revert knows where to go back to."""
    return "c7n-imds: from version %d with %s" % (
        int(source_version), json.dumps(metadata_options, sort_keys=True,
                                        separators=(",", ":")))


def parse_derived_version_description(description):
    """(source version, metadata options) of a version we derived, else None."""
    match = DERIVED_VERSION.match(description or "")
    if not match:
        return None
    return int(match.group(1)), json.loads(match.group(2))


def user_data_fingerprint(user_data):
    """Size and SHA-256 of the decoded user data: enough to check a conversion against
    the original file without ever showing its content."""
    try:
        raw = base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        raw = user_data.encode("utf-8")
    return {"Bytes": len(raw), "Sha256": hashlib.sha256(raw).hexdigest()}


def redact(launch_template_data):
    """A copy safe to print, log or report: user data replaced by its fingerprint."""
    shown = dict(launch_template_data)
    if shown.get("UserData"):
        shown["UserData"] = user_data_fingerprint(shown["UserData"])
    return shown


def metadata_view(metadata_options):
    """The `imds` filter keys for a set of metadata options (from an LC or LT version).

    Only HttpTokens has a fixed meaning when unset - ``optional``, i.e. IMDSv1 allowed
    unless the account default or the AMI says otherwise. Other unset keys stay None.
    """
    options = metadata_options or {}
    return {
        "HttpTokens": options.get("HttpTokens") or TOKENS_OPTIONAL,
        "HttpEndpoint": options.get("HttpEndpoint"),
        "HttpPutResponseHopLimit": options.get("HttpPutResponseHopLimit"),
        "InstanceMetadataTags": options.get("InstanceMetadataTags"),
    }


def effective_http_tokens(launch_http_tokens, account_defaults, image_imds_support):
    """What instances really get (DESIGN.md section 6): a value in the launch data wins,
    then the account default for the region, then the AMI (``ImdsSupport: v2.0`` means
    tokens required); otherwise ``optional``."""
    if launch_http_tokens in (TOKENS_REQUIRED, TOKENS_OPTIONAL):
        return launch_http_tokens
    account = (account_defaults or {}).get("HttpTokens")
    if account in (TOKENS_REQUIRED, TOKENS_OPTIONAL):
        return account
    if image_imds_support == "v2.0":
        return TOKENS_REQUIRED
    return TOKENS_OPTIONAL


def weakness(view):
    """Sort key: lower is weaker. IMDS with tokens optional is the weakest; a disabled
    endpoint cannot be reached with or without a token."""
    if view.get("HttpEndpoint") == "disabled":
        return 2
    return 1 if view.get("HttpTokens") == TOKENS_REQUIRED else 0
