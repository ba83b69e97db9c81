"""Where c7n-imds's own resources come from and how a re-run finds them again: names
derived from the source, idempotency tokens, the previous-launch tag codec and the
descriptions of derived versions. Pure."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from c7n_imds.model.refusals import Refused
from c7n_imds.model.translate import TranslationError, launch_template_data, security_group_names
from c7n_imds.model.verify import differences, summary
from c7n_imds.names import ALIASES, BEANSTALK_OPTION, PREVIOUS_LAUNCH_TAG

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
    return (
        launch_configuration["LaunchConfigurationName"],
        _timestamp(launch_configuration.get("CreatedTime")),
    )


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
        return (
            "lc-sha256:"
            + hashlib.sha256(launch["LaunchConfigurationName"].encode("utf-8")).hexdigest()
        )
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
        rest = value[len("eb:%s" % BEANSTALK_OPTION) :]
        if rest == "" or rest.startswith("="):
            return {"BeanstalkOption": rest[1:] if rest else None}
    if value.startswith("eks:") and value.count(":") == 2:
        _, template_id, version = value.split(":")
        if template_id and version:
            return {"NodegroupLaunchTemplate": {"id": template_id, "version": version}}
    if value.startswith("lc:") and len(value) > 3:
        return {"LaunchConfigurationName": value[3:]}
    if value.startswith("lc-sha256:"):
        return {"LaunchConfigurationNameSha256": value[len("lc-sha256:") :]}
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
        int(source_version),
        json.dumps(metadata_options, sort_keys=True, separators=(",", ":")),
    )


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


# -- provenance: what a tagger cannot forge ----------------------------------------------
#
# Every c7n-imds:* tag can be written by anyone with tag rights. What c7n-imds made is
# proven by what EC2 records itself: the principal that created a template or version
# (CreatedBy), a version's description, and content that matches the recorded source.

# role, user and root ARNs (IAM), and an STS role session (a role's own session ARN)
PRINCIPAL_ARN = (
    r"^arn:aws[a-z-]*:(iam::\d{12}:(root|(role|user)/[\w+=,.@/-]+)"
    r"|sts::\d{12}:(assumed-role/[\w+=,.@-]+/[\w+=,.@-]+"
    r"|federated-user/[\w+=,.@-]+))$"
)
_IAM_PRINCIPAL = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):(role|user)/(?:[^/]+/)*([^/]+)$")
_ROOT = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):root$")
_ROLE_SESSION = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")


def principal(arn: str | None) -> tuple[str, ...] | None:
    """(partition, account, kind, name) of a role, user or root ARN, None otherwise.

    A role's session (``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``, what
    GetCallerIdentity and CreatedBy say of a role) is the role: sessions come and go,
    the role's permissions are what is trusted. Role and user names are unique in an
    account whatever their path, so the path is not compared."""
    arn = (arn or "").strip()
    match = _ROLE_SESSION.match(arn)
    if match:
        return match.group(1), match.group(2), "role", match.group(3)
    match = _IAM_PRINCIPAL.match(arn)
    if match:
        return match.group(1), match.group(2), match.group(3), match.group(4)
    match = _ROOT.match(arn)
    if match:
        return match.group(1), match.group(2), "root", ""
    return None


def trusted_creator(created_by: str | None, trusted: tuple[str, ...] | list[str]) -> bool:
    """Whether a CreatedBy names one of the trusted principals (their ARNs in either
    form); an ARN of no known form is trusted only when it is one of them verbatim."""
    if not created_by:
        return False
    key = principal(created_by)
    return any(
        created_by.strip() == arn.strip() or (key is not None and principal(arn) == key)
        for arn in trusted
    )


def untrusted_creator(
    what: str, created_by: str | None, trusted: tuple[str, ...] | list[str]
) -> str | None:
    """None when a trusted principal created it, else why it does not count."""
    if trusted_creator(created_by, trusted):
        return None
    return "%s was created by %s, which is not trusted" % (
        what,
        created_by or "an unknown principal (no CreatedBy)",
    )


def derived_from(version: dict) -> int | None:
    """The version number a c7n-imds version names as its source, else None."""
    derived = parse_derived_version_description(version.get("VersionDescription"))
    return derived[0] if derived else None


def converted_template_problem(launch_configuration: dict, first_version: dict) -> str | None:
    """None when a template's version 1 launches what the launch configuration
    launched (metadata options aside: changing them was the point), else what differs.

    Security groups the configuration names by name are not compared: resolving them
    needs the group's VPC, and the image, type, user data, profile, devices and
    network settings already tell one configuration from another."""
    stored = dict(first_version.get("LaunchTemplateData") or {}, MetadataOptions={})
    by_name = bool(security_group_names(launch_configuration))
    try:
        expected, _ = launch_template_data(launch_configuration, [] if by_name else None)
    except TranslationError as e:
        return str(e)
    expected["MetadataOptions"] = {}
    if by_name:
        stored.pop("SecurityGroupIds", None)
        for interface in stored.get("NetworkInterfaces") or ():
            interface.pop("Groups", None)
    found = differences(expected, stored)
    return summary(found) if found else None


def configuration_copy_problem(recorded: dict, current: dict) -> str | None:
    """None when the launch configuration a group uses differs from the recorded one
    only in its identity and metadata options (what copy-launch-configuration makes),
    else what differs. Launch configurations record no creator: the content is the
    proof, and going back to the recorded one then changes nothing else."""
    ignored = (
        "LaunchConfigurationName",
        "LaunchConfigurationARN",
        "CreatedTime",
        "MetadataOptions",
    )
    found = differences(
        {k: v for k, v in recorded.items() if k not in ignored},
        {k: v for k, v in current.items() if k not in ignored},
    )
    return summary(found) if found else None


class ProvenanceRefused(Refused, ValueError):
    """The record cannot be proven to describe what c7n-imds changed."""


@dataclass
class SpecRestore:
    """How one template specification of a group goes back to its record."""

    spec: dict  # the specification the group launches from afterwards
    target: dict  # the version it then launches (described)
    default_move: tuple[int, int] | None  # the template's default: (from, to)
    done: bool  # the group already launches from it: nothing to change
    proof: str  # why the record was accepted


def plan_spec_restore(
    recorded: dict,
    current: dict,
    lookup: Callable[[str], dict],
    trusted: tuple[str, ...] | list[str],
) -> SpecRestore:
    """Where a recorded template specification takes the group, proven from what a
    tagger cannot write.

    ``recorded`` and ``current`` are {LaunchTemplateId, Version}; ``lookup(version)``
    describes a version of that template (DescribeLaunchTemplateVersions item). The
    record is accepted when the group already launches from its target, or when the
    version it launches is one c7n-imds derived ("from version N", created by a trusted
    principal) from exactly the version the record goes back to. Raises
    :class:`ProvenanceRefused` with the reason otherwise.
    """
    template_id, wanted = recorded["LaunchTemplateId"], str(recorded["Version"])
    if current.get("LaunchTemplateId") != template_id:
        raise ProvenanceRefused(
            "the record names launch template %s, but the group launches from %s"
            % (template_id, current.get("LaunchTemplateId") or "no launch template")
        )
    now = str(current.get("Version") or "$Default")
    recorded_version = lookup(wanted)
    target, version, default_move = recorded_version, wanted, None
    source = derived_from(recorded_version) if wanted in ALIASES else None
    if source is not None:
        # Our version is the template's default (or latest): it goes back to its source.
        problem = untrusted_creator(
            "its %s, version %d," % (wanted, recorded_version["VersionNumber"]),
            recorded_version.get("CreatedBy"),
            trusted,
        )
        if problem:
            raise ProvenanceRefused("launch template %s: %s" % (template_id, problem))
        target = lookup(str(source))
        if wanted == "$Default":
            default_move = (recorded_version["VersionNumber"], source)
        else:
            version = str(source)
    spec = {"LaunchTemplateId": template_id, "Version": version}
    if now == version and default_move is None:
        return SpecRestore(spec, target, None, True, "the group already launches from it")
    current_version = recorded_version if now == wanted else lookup(now)
    number = current_version["VersionNumber"]
    derived = derived_from(current_version)
    if derived is None:
        raise ProvenanceRefused(
            "the record names launch template %s version %s, but the group launches "
            "from version %d, which c7n-imds did not derive" % (template_id, wanted, number)
        )
    problem = untrusted_creator(
        "the group's version %d of launch template %s" % (number, template_id),
        current_version.get("CreatedBy"),
        trusted,
    )
    if problem:
        raise ProvenanceRefused(problem)
    if derived != target["VersionNumber"]:
        raise ProvenanceRefused(
            "the record names launch template %s version %s (now version %d), but the "
            "group's version %d was derived from version %d"
            % (template_id, wanted, target["VersionNumber"], number, derived)
        )
    if wanted not in ALIASES:
        # Deriving from the default version moved the default too: it goes back.
        default = lookup("$Default")
        if default["VersionNumber"] == number:
            default_move = (number, derived)
    return SpecRestore(
        spec,
        target,
        default_move,
        False,
        (
            "version %d was created by %s from version %d"
            % (number, current_version.get("CreatedBy"), derived)
        ),
    )
