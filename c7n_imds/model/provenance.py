"""Where c7n-imds's own resources come from and how a re-run finds them again: names
derived from the source, idempotency tokens, the previous-launch tag codec and the
descriptions of derived versions. Pure."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone

from c7n_imds.names import BEANSTALK_OPTION, PREVIOUS_LAUNCH_TAG

# Launch template names: 3-128 characters of [a-zA-Z0-9().-/_].
TEMPLATE_NAME_INVALID = re.compile(r"[^a-zA-Z0-9().\-/_]+")
TEMPLATE_NAME_MAX = 128
TEMPLATE_NAME_MARKER = "-imdsv2-"
DIGEST_LENGTH = 10
TAG_VALUE_MAX = 256


def _timestamp(value: datetime | str | None) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value else ""


def source_identity(launch_configuration: dict) -> tuple[str, str]:
    """(name, created) - what tells one launch configuration from a later one of the
    same name. LCs are immutable but can be deleted and re-created under one name."""
    return (launch_configuration["LaunchConfigurationName"],
            _timestamp(launch_configuration.get("CreatedTime")))


def template_name(launch_configuration: dict) -> str:
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


def copy_name(launch_configuration: dict) -> str:
    """A deterministic name for the IMDSv2 copy of a launch configuration (LC names
    allow any character and 255 of them); re-runs find the copy by this name."""
    name, created = source_identity(launch_configuration)
    digest = hashlib.sha256(("%s\0%s" % (name, created)).encode("utf-8")).hexdigest()
    room = LAUNCH_CONFIGURATION_NAME_MAX - len(TEMPLATE_NAME_MARKER) - DIGEST_LENGTH
    return name[:room] + TEMPLATE_NAME_MARKER + digest[:DIGEST_LENGTH]


def client_token(template_name_: str) -> str:
    """CreateLaunchTemplate idempotency token: concurrent or retried creates of the same
    template collapse into one (at most 64 ASCII characters)."""
    return "c7n-imds-" + hashlib.sha256(template_name_.encode("utf-8")).hexdigest()[:48]


def encode_previous_launch(launch: dict) -> str:
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


def encode_previous_mixed_launch(specs: list[dict]) -> str | None:
    """Tag value for a mixed instances policy's template specs (base, then overrides
    that name a template), or None when it does not fit in a tag value."""
    value = "mip:" + ",".join("%s:%s" % (s["LaunchTemplateId"], s["Version"]) for s in specs)
    return value if len(value) <= TAG_VALUE_MAX else None


def encode_previous_beanstalk_option(value: str | None) -> str:
    """Tag value recording an environment's DisableIMDSv1 before c7n-imds set it: its
    value, or none when the environment did not set the option (AWS's default, false)."""
    return "eb:%s%s" % (BEANSTALK_OPTION, "" if value is None else "=" + value)


def encode_previous_nodegroup_launch(template_id: str, version: str) -> str:
    """Tag value recording the launch template version an EKS managed node group used
    before c7n-imds updated it."""
    return "eks:%s:%s" % (template_id, version)


def decode_previous_launch(value: str) -> dict:
    """Inverse of the encoders above; raises ValueError on anything else."""
    if value.startswith("eb:%s" % BEANSTALK_OPTION):
        rest = value[len("eb:%s" % BEANSTALK_OPTION):]
        if rest == "" or rest.startswith("="):
            return {"BeanstalkOption": rest[1:] if rest else None}
    if value.startswith("eks:") and value.count(":") == 2:
        _, template_id, version = value.split(":")
        if template_id and version:
            return {"NodegroupLaunchTemplate": {"id": template_id, "version": version}}
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


def derived_version_description(source_version: int | str, metadata_options: dict) -> str:
    """VersionDescription of a version we derive: names its source, so a re-run finds
    it instead of creating another, and a revert knows where to go back to."""
    return "c7n-imds: from version %d with %s" % (
        int(source_version), json.dumps(metadata_options, sort_keys=True,
                                        separators=(",", ":")))


def parse_derived_version_description(description: str | None) -> tuple[int, dict] | None:
    """(source version, metadata options) of a version we derived, else None."""
    match = DERIVED_VERSION.match(description or "")
    if not match:
        return None
    return int(match.group(1)), json.loads(match.group(2))


def derived_source_spec(version):
    """The template spec of the version a c7n-imds version was derived from."""
    number, _ = parse_derived_version_description(version["VersionDescription"])
    return {"LaunchTemplateId": version["LaunchTemplateId"], "Version": str(number)}
