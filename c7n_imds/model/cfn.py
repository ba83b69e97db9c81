"""Require IMDSv2 in a CloudFormation template, for the Auto Scaling groups a stack owns
(groups a stack owns are fixed in its template, not behind its back), and judge what
else executing that change would do. Pure: template and describe records in, a
structured result out; no AWS calls.

Two rewrites, one result (:class:`Rewrite`, whose notes are typed :class:`Note`):

- A group on an ``AWS::AutoScaling::LaunchConfiguration`` moves to a new
  ``AWS::EC2::LaunchTemplate`` requiring IMDSv2 (:func:`migrate`), following AWS's
  "Migrate AWS CloudFormation stacks from launch configurations to launch templates"
  (Amazon EC2 Auto Scaling User Guide), its "Launch configuration mapping reference"
  table, and the CloudFormation reference pages of both resources. Every value is
  carried unchanged, intrinsic functions included; where a value cannot be carried
  faithfully, ``ValueError`` is raised instead of losing it.
- A group on a launch template of the same stack gets ``HttpTokens: required`` in that
  template (:func:`require_imdsv2`). Launch templates are immutable: a change of
  ``LaunchTemplateData`` becomes a new version ("Modify a launch template", Amazon EC2
  User Guide), and CloudFormation does not move the default version
  (aws-cloudformation/cloudformation-coverage-roadmap#1518). A group's
  ``LaunchTemplateSpecification.Version`` is ``Fn::GetAtt`` of ``LatestVersionNumber``
  or ``DefaultVersionNumber``, or a number: only a group on ``LatestVersionNumber``
  launches the new version; the others are left with what to do.

What executing the update does besides (:func:`refusal_of_template`,
:func:`deployed_from`, :func:`stack_policy_denials`, :func:`size_changes`,
:func:`parameter_changes`, :func:`replacement`) follows the CloudFormation user guide:
transforms are processed after submission, a stack policy applies to every update
and a change set cannot override it, an update sets a group's size properties to the
template's values, ``UsePreviousValue`` re-resolves an SSM-typed parameter, and only
``WillReplace: true`` makes ``AutoScalingReplacingUpdate`` replace a group.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import NoReturn

import yaml

from c7n_imds.model.changes import LaunchChange
from c7n_imds.model.containers import CONTAINER_USER_DATA_MARKERS
from c7n_imds.model.refusals import Refused
from c7n_imds.names import PRESERVE, TOKENS_REQUIRED

LAUNCH_CONFIGURATION = "AWS::AutoScaling::LaunchConfiguration"
AUTO_SCALING_GROUP = "AWS::AutoScaling::AutoScalingGroup"
LAUNCH_TEMPLATE = "AWS::EC2::LaunchTemplate"
NO_VALUE = {"Ref": "AWS::NoValue"}
TEMPLATE_SUFFIX = "Imdsv2Template"
# Launch configuration properties whose launch template property has the same name and shape
# (the CloudFormation LC spells RamDiskId as the template does, unlike the API's RamdiskId).
SAME_NAME = (
    "ImageId",
    "InstanceType",
    "KeyName",
    "EbsOptimized",
    "KernelId",
    "RamDiskId",
    "UserData",
)
CLASSIC_LINK = ("ClassicLinkVPCId", "ClassicLinkVPCSecurityGroups")
KNOWN_PROPERTIES = frozenset(
    SAME_NAME
    + CLASSIC_LINK
    + (
        "SecurityGroups",
        "AssociatePublicIpAddress",
        "BlockDeviceMappings",
        "IamInstanceProfile",
        "InstanceMonitoring",
        "SpotPrice",
        "PlacementTenancy",
        "MetadataOptions",
        "LaunchConfigurationName",
        "InstanceId",
    )
)
BLOCK_DEVICE_KEYS = frozenset(("DeviceName", "Ebs", "NoDevice", "VirtualName"))
EBS_KEYS = frozenset(
    (
        "SnapshotId",
        "VolumeSize",
        "VolumeType",
        "Iops",
        "Throughput",
        "DeleteOnTermination",
        "Encrypted",
    )
)
# AWS::EC2::LaunchTemplate MetadataOptions (a superset of the launch configuration's).
METADATA_KEYS = frozenset(
    (
        "HttpTokens",
        "HttpPutResponseHopLimit",
        "HttpEndpoint",
        "HttpProtocolIpv6",
        "InstanceMetadataTags",
    )
)
# Launch configuration properties that become a structure in the template (SpotPrice keeps
# the LC's behaviour, although AWS's guide advises a MixedInstancesPolicy instead).
WRAPPED = {
    "PlacementTenancy": ("Placement", lambda tenancy: {"Tenancy": tenancy}),
    "SpotPrice": (
        "InstanceMarketOptions",
        lambda price: {"MarketType": "spot", "SpotOptions": {"MaxPrice": price}},
    ),
}
TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")
LATEST, DEFAULT = "LatestVersionNumber", "DefaultVersionNumber"
ID_ATTRIBUTE = "LaunchTemplateId"

# What a note says about its subject (a logical id), so that callers select notes by
# kind instead of reading their prose.
NOTE_KINDS = (
    "absent",  # an asked-for group that is not an Auto Scaling group of the template
    "left",  # a group (or a launch template) not changed, with why
    "mapping",  # how a configuration's value was carried (or dropped)
    "added",  # a launch template added from a configuration
    "moved",  # a group now launching from the added template
    "update",  # what the update does to the group's running instances
    "kept",  # a configuration kept, with why
    "removed",  # a configuration removed
    "required",  # a stack launch template given HttpTokens required
    "reach",  # which groups a changed launch template reaches, or does not
    "fixed",  # a group that launches with IMDSv2 required once executed
)


@dataclass(frozen=True)
class Note:
    """One thing the rewrite did or left, about one logical id (a kind of NOTE_KINDS)."""

    subject: str
    kind: str
    text: str

    def __str__(self):
        return "%s: %s" % (self.subject, self.text)


@dataclass(frozen=True)
class Rewrite:
    """A template with its requested groups made to require IMDSv2."""

    template: dict
    notes: tuple = ()
    fixed: tuple = ()  # group logical ids that launch with IMDSv2 required once executed
    moved: dict = field(default_factory=dict)  # group -> the launch template added for it
    required: tuple = ()  # the stack's launch templates given HttpTokens required
    removed: tuple = ()  # launch configurations removed (no longer used)
    left: dict = field(default_factory=dict)  # group logical id -> why it is not fixed

    @property
    def modified(self) -> tuple:
        """The logical ids the change set must show as Modify: the moved groups and
        the changed templates (a group on a changed template need not change itself)."""
        return tuple(sorted(set(self.moved) | set(self.required)))

    def lines(self) -> list[str]:
        return [str(n) for n in self.notes]


def parse_template(text: str) -> tuple[dict, str]:
    """Parse template text (JSON, or YAML with short-form intrinsics such as ``!Ref`` or
    ``!GetAtt X.Y``) into plain dicts, lists and scalars with every intrinsic in its long
    form. Returns ``(template, "json" | "yaml")``. cfn-lint's decoder parses: it knows
    every short form and rejects duplicate keys and alias bombs, as CloudFormation does."""
    # Imported here: cfn-lint loads ~1,000 modules (schemas for every resource type), and
    # only the CloudFormation path needs it.
    from cfnlint.decode import decode_str

    template, matches = decode_str(text)
    if matches or template is None:
        raise ValueError(
            "the template could not be parsed: %s"
            % "; ".join("line %s: %s" % (m.linenumber, m.message) for m in matches)
        )
    template = _plain(template)
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ValueError("the text is not a CloudFormation template (no Resources section)")
    return template, ("json" if text.lstrip().startswith("{") else "yaml")


def _plain(value):
    """cfn-lint's node types (str/dict/list subclasses carrying line marks) as plain
    Python values, so that results compare, copy and serialise like any other dict."""
    if isinstance(value, dict):
        return {str.__str__(k) if isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str.__str__(value)
    # An unquoted YAML date (AWSTemplateFormatVersion: 2010-09-09) is text to CloudFormation.
    return value.isoformat() if isinstance(value, datetime.date) else value


def _refuse(lc_id, problem) -> NoReturn:
    """Refuse, rather than lose or guess a setting: say what and how to proceed."""
    raise ValueError(
        "launch configuration %s: %s; c7n-imds will not guess: migrate %s by "
        "hand" % (lc_id, problem, lc_id)
    )


# CloudFormation rejects YAML aliases: a value used twice is written out twice.
_NoAliasDumper = type(
    "_NoAliasDumper", (yaml.SafeDumper,), {"ignore_aliases": lambda self, data: True}
)


def dump_template(template: dict, fmt: str = "json") -> str:
    """Template text for a change set's TemplateBody: JSON, or YAML with every intrinsic
    in its long form; CloudFormation accepts both."""
    if fmt == "json":
        return json.dumps(template, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.dump(
            template, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=100
        )
    raise ValueError("unknown template format %r (json or yaml)" % fmt)


def rewrite(
    template: dict,
    groups=None,
    metadata_options: dict | None = None,
    parameters: dict | None = None,
) -> Rewrite:
    """Both rewrites: :func:`migrate` for the groups (logical ids; None: all) that name
    no launch template, then :func:`require_imdsv2` for those on launch templates.
    ``parameters``: the stack's parameter values (DescribeStacks), where known."""
    resources = _resources(template)
    asked = (
        sorted(g for g, r in resources.items() if _is_group(r))
        if groups is None
        else sorted(groups)
    )
    on_templates = [
        g
        for g in asked
        if _is_group(resources.get(g)) and _specifications(resources[g].get("Properties") or {})
    ]
    moved = migrate(
        template, [g for g in asked if g not in on_templates], metadata_options, parameters
    )
    done = require_imdsv2(moved.template, on_templates, metadata_options)
    return Rewrite(
        template=done.template,
        notes=moved.notes + done.notes,
        fixed=tuple(sorted(moved.fixed + done.fixed)),
        moved=moved.moved,
        required=done.required,
        removed=moved.removed,
        left={**moved.left, **done.left},
    )


def _resources(template: dict) -> dict:
    resources = template.get("Resources")
    return resources if isinstance(resources, dict) else {}


def _is_group(resource) -> bool:
    return isinstance(resource, dict) and resource.get("Type") == AUTO_SCALING_GROUP


def migrate(
    template: dict,
    groups=None,
    metadata_options: dict | None = None,
    parameters: dict | None = None,
) -> Rewrite:
    """Move the template's Auto Scaling groups from launch configurations to new launch
    templates that require IMDSv2; the input is not changed.

    ``groups`` limits the change to these logical ids; ``metadata_options`` (template
    ``MetadataOptions`` fields; ``preserve`` keeps the configuration's) is laid over
    ``HttpTokens: required``. As AWS's "Migrate AWS CloudFormation stacks from launch
    configurations to launch templates" shows, each group's ``LaunchConfigurationName``
    becomes a ``LaunchTemplate`` of the template's Ref and ``LatestVersionNumber`` (an
    ``Fn::If`` over configurations: the same ``Fn::If`` over their templates). A
    configuration's ``Metadata`` (cfn-init) moves to its template, with the references
    to it by logical id in user data and cfn-hup hooks rewritten; a configuration is
    removed when nothing else in the template uses it.
    """
    new = copy.deepcopy(template)
    resources, wanted = new["Resources"], None if groups is None else set(groups)
    groups_here = {k for k, r in resources.items() if _is_group(r)}
    notes = [
        Note(missing, "absent", "not an Auto Scaling group of this template")
        for missing in sorted((wanted or set()) - groups_here)
    ]
    moving = {}  # group logical id -> its LaunchConfigurationName (a Ref, or Fn::If of them)
    for group_id, resource in resources.items():
        if not _is_group(resource) or (wanted is not None and group_id not in wanted):
            continue
        if reason := _unmovable(resource.get("Properties") or {}, resources):
            notes.append(Note(group_id, "left", "not changed: %s" % reason))
        else:
            moving[group_id] = resource["Properties"]["LaunchConfigurationName"]
    created = {}  # launch configuration logical id -> launch template logical id
    keep = {}  # launch configuration logical id -> why its Metadata stays with it
    for lc_id in sorted({lc for name in moving.values() for lc in _configurations(name)}):
        created[lc_id] = _free_id(resources, lc_id + TEMPLATE_SUFFIX)
        lc = resources[lc_id]
        data, lc_notes = launch_template_data(
            lc_id, lc.get("Properties") or {}, new, metadata_options, parameters
        )
        # A copy: the configuration may stay, and shared values would become YAML aliases.
        properties = {"LaunchTemplateData": copy.deepcopy(data)}
        moved_metadata = None
        if lc.get("Metadata"):
            moved_metadata, problem = _move_metadata(
                new, lc_id, created[lc_id], properties["LaunchTemplateData"]
            )
            if problem:
                keep[lc_id] = problem
            else:
                lc_notes.append(
                    Note(
                        lc_id,
                        "mapping",
                        "Metadata moved to %s; cfn-init and "
                        "cfn-hup references to %s rewritten to it" % (created[lc_id], lc_id),
                    )
                )
        if (name := (lc.get("Properties") or {}).get("LaunchConfigurationName")) is not None:
            properties.update(_template_name(lc_id, name, lc_notes))
        # The template stands where the configuration stood: same existence condition and
        # the same prerequisites (an instance role, say).
        resource = {
            "Type": LAUNCH_TEMPLATE,
            "Properties": properties,
            **{a: copy.deepcopy(lc[a]) for a in ("Condition", "DependsOn") if a in lc},
        }
        if moved_metadata is not None:
            resource["Metadata"] = moved_metadata
        resources = _insert_after(resources, lc_id, created[lc_id], resource)
        notes += lc_notes + [
            Note(lc_id, "added", "launch template %s added from it" % created[lc_id])
        ]
    new["Resources"] = resources
    for group_id, name in moving.items():
        properties = resources[group_id]["Properties"]
        del properties["LaunchConfigurationName"]
        # An Fn::If over configurations becomes the same Fn::If over their templates.
        properties["LaunchTemplate"] = _over_configurations(
            name,
            lambda lc_id: {
                "LaunchTemplateId": {"Ref": created[lc_id]},
                "Version": {"Fn::GetAtt": [created[lc_id], LATEST]},
            },
        )
        notes.append(
            Note(
                group_id,
                "moved",
                "now launches from %s" % " or ".join(created[lc] for lc in _configurations(name)),
            )
        )
        notes.append(update_effect(resources[group_id], group_id))
    removed = []
    for lc_id, template_id in created.items():
        if users := sorted(_referrers(new, lc_id)):
            notes.append(
                Note(
                    lc_id,
                    "kept",
                    "kept, still used by %s; it keeps failing "
                    "AutoScaling.3 until that changes" % ", ".join(users),
                )
            )
        elif lc_id in keep:
            notes.append(
                Note(
                    lc_id,
                    "kept",
                    "kept with its Metadata: %s; it keeps failing "
                    "AutoScaling.3 until that is rewritten by hand" % keep[lc_id],
                )
            )
        else:
            del resources[lc_id]
            _replace_depends_on(resources, lc_id, template_id)
            removed.append(lc_id)
            notes.append(Note(lc_id, "removed", "removed, no longer used"))
    return Rewrite(
        template=new,
        notes=tuple(notes),
        fixed=tuple(sorted(moving)),
        moved={
            g: " or ".join(created[lc] for lc in _configurations(name))
            for g, name in moving.items()
        },
        removed=tuple(removed),
        left={n.subject: str(n) for n in notes if n.kind in ("absent", "left")},
    )


def update_effect(resource: dict, group_id: str) -> Note:
    """What the group's update does to its running instances, from its UpdatePolicy:
    AutoScalingReplacingUpdate replaces the group only with ``WillReplace: true``."""
    policy = resource.get("UpdatePolicy") or {}
    replaces = replaces_group(resource)
    if replaces is True:
        text = (
            "its UpdatePolicy AutoScalingReplacingUpdate has WillReplace: true: the "
            "update replaces the whole group (a new group, then the old one deleted)"
        )
    elif replaces is None:
        text = (
            "its UpdatePolicy AutoScalingReplacingUpdate WillReplace is computed (%s): "
            "the update may replace the whole group"
            % json.dumps(policy["AutoScalingReplacingUpdate"].get("WillReplace"))
        )
    elif "AutoScalingRollingUpdate" in policy:
        text = (
            "its UpdatePolicy AutoScalingRollingUpdate replaces the running instances "
            "during the update"
        )
    else:
        text = (
            "running instances keep their metadata options until replaced (no "
            "UpdatePolicy replaces them)"
        )
    return Note(group_id, "update", text)


def replaces_group(resource: dict) -> bool | None:
    """Whether the group's UpdatePolicy AutoScalingReplacingUpdate replaces it: True
    for ``WillReplace: true``, False when absent or false, None when computed."""
    policy = (resource.get("UpdatePolicy") or {}) if isinstance(resource, dict) else {}
    replacing = policy.get("AutoScalingReplacingUpdate") if isinstance(policy, dict) else None
    will = replacing.get("WillReplace") if isinstance(replacing, dict) else None
    if isinstance(will, (dict, list)):
        return None
    return will is True or str(will).lower() == "true"


def _unmovable(properties: dict, resources: dict) -> str | None:
    """Why a group is not moved by this rewrite, or None when it is."""
    if "MixedInstancesPolicy" in properties:
        return "it has a MixedInstancesPolicy (its launch templates are changed there)"
    if "LaunchTemplate" in properties:
        return "it already uses a launch template"
    if (name := properties.get("LaunchConfigurationName")) is None:
        return "it names no launch configuration"
    try:
        _configurations(name, resources)
    except ValueError:
        return (
            "its LaunchConfigurationName %s is not a Ref to a launch configuration of "
            "this template (nor an Fn::If over such Refs); fix it where that "
            "configuration is defined" % json.dumps(name)
        )
    return None


def _configurations(name, resources=None) -> list[str]:
    """The launch configurations of this template a group's LaunchConfigurationName
    names: a Ref, or an Fn::If whose every branch is one (nested Fn::If too)."""
    branches = name.get("Fn::If") if isinstance(name, dict) and len(name) == 1 else None
    if isinstance(branches, list) and len(branches) == 3:
        found = [lc for branch in branches[1:] for lc in _configurations(branch, resources)]
        return list(dict.fromkeys(found))
    target = name.get("Ref") if isinstance(name, dict) and len(name) == 1 else None
    if not isinstance(target, str) or (
        resources is not None and (resources.get(target) or {}).get("Type") != LAUNCH_CONFIGURATION
    ):
        raise ValueError(target)
    return [target]


def _over_configurations(name, build):
    """``build(configuration)`` at each leaf of a LaunchConfigurationName."""
    branches = name.get("Fn::If") if isinstance(name, dict) and len(name) == 1 else None
    if isinstance(branches, list) and len(branches) == 3:
        return {"Fn::If": [branches[0]] + [_over_configurations(b, build) for b in branches[1:]]}
    return build(name["Ref"])


def launch_template_data(
    lc_id: str,
    properties: dict,
    template: dict,
    metadata_options: dict | None = None,
    parameters: dict | None = None,
) -> tuple[dict, list[Note]]:
    """``LaunchTemplateData`` for an AWS::AutoScaling::LaunchConfiguration's properties,
    row by row from the "Launch configuration mapping reference" of AWS's "Migrate AWS
    CloudFormation stacks from launch configurations to launch templates"; with notes
    (:class:`Note`). ``parameters``: the stack's parameter values, which decide what a
    parameter holds (an instance profile's name or ARN); None when not known."""
    if unknown := sorted(set(properties) - KNOWN_PROPERTIES):
        _refuse(lc_id, "property %s has no known template mapping" % ", ".join(unknown))
    if "InstanceId" in properties:
        # AWS's table maps InstanceId to InstanceId, but LaunchTemplateData has none: the LC
        # copied the instance's settings, which only a describe of the instance could tell.
        _refuse(lc_id, "it is built from instance %s" % json.dumps(properties["InstanceId"]))
    data, notes = {name: properties[name] for name in SAME_NAME if name in properties}, []
    groups = properties.get("SecurityGroups")
    names = _security_group_names(lc_id, groups, template["Resources"])
    if names and "AssociatePublicIpAddress" not in properties and all(names):
        # Every group given by name (a default VPC, as AWS's older samples are): carried
        # as LaunchTemplateData.SecurityGroups, which takes names, as AWS's own
        # migrations of those samples do.
        data["SecurityGroups"] = groups
        groups = None
        notes.append(
            Note(
                lc_id,
                "mapping",
                "SecurityGroups given by name carried as SecurityGroups (names, default VPC)",
            )
        )
    elif any(names):
        # Ids are needed (a network interface, or ids beside the names): a group of this
        # stack has its id as GetAtt GroupId; a literal name has none c7n-imds can know.
        groups = _as_ids(lc_id, groups, names)
        notes.append(
            Note(
                lc_id,
                "mapping",
                "security groups of this stack given by name carried by id (Fn::GetAtt GroupId)",
            )
        )
    if "AssociatePublicIpAddress" in properties:
        # A template sets the public address on the primary interface, and the groups must
        # then go there ("either SecurityGroupIds or NetworkInterfaces.Groups, but not
        # both"). An LC's primary interface is deleted with its instance: say so.
        associate = properties["AssociatePublicIpAddress"]
        data["NetworkInterfaces"] = _lift(
            associate,
            lambda value: [
                dict(
                    {
                        "DeviceIndex": 0,
                        "AssociatePublicIpAddress": value,
                        "DeleteOnTermination": True,
                    },
                    **({} if groups is None else {"Groups": groups}),
                )
            ],
        )
        if groups is not None and json.dumps(NO_VALUE) in json.dumps(associate):
            # Where the condition drops the interface, the groups go back to the top.
            data["SecurityGroupIds"] = _lift(associate, lambda v: NO_VALUE, absent=lambda: groups)
    elif groups is not None:
        data["SecurityGroupIds"] = groups
    if "BlockDeviceMappings" in properties:
        data["BlockDeviceMappings"] = _lift(
            properties["BlockDeviceMappings"],
            lambda mappings: [
                _lift(m, lambda m: _block_device(lc_id, m, notes))
                for m in (
                    mappings
                    if isinstance(mappings, list)
                    else _refuse(
                        lc_id, "BlockDeviceMappings %s is not a list" % json.dumps(mappings)
                    )
                )
            ],
        )
    if "IamInstanceProfile" in properties:
        data["IamInstanceProfile"] = _lift(
            properties["IamInstanceProfile"],
            lambda value: _instance_profile(lc_id, value, template, notes, parameters),
        )
    # An LC enables detailed monitoring unless told otherwise; a template disables it.
    data["Monitoring"] = _lift(
        properties.get("InstanceMonitoring", True),
        lambda value: {"Enabled": value},
        absent=lambda: {"Enabled": True},
    )
    for lc_name, (lt_name, build) in WRAPPED.items():
        if lc_name in properties:
            data[lt_name] = _lift(properties[lc_name], build)
    if "SpotPrice" in properties:
        notes.append(
            Note(
                lc_id,
                "mapping",
                "SpotPrice carried as InstanceMarketOptions; "
                "AWS advises dropping it, or a MixedInstancesPolicy on the group",
            )
        )
    if present := [p for p in CLASSIC_LINK if p in properties]:
        notes.append(
            Note(
                lc_id,
                "mapping",
                "%s dropped: EC2-Classic is retired and launch "
                "templates have no equivalent" % ", ".join(present),
            )
        )
    data["MetadataOptions"] = _lift(
        properties.get("MetadataOptions", {}),
        lambda options: _metadata_options(lc_id, options, metadata_options),
        absent=lambda: _metadata_options(lc_id, {}, metadata_options),
    )
    return data, notes


def _lift(value, build, absent=None):
    """``build(value)`` pushed inside ``Fn::If`` branches, so a condition still picks
    between the same settings; ``AWS::NoValue`` stays absent (or is ``absent()``)."""
    branches = value.get("Fn::If") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(branches, list) and len(branches) == 3:
        return {"Fn::If": [branches[0]] + [_lift(b, build, absent) for b in branches[1:]]}
    if value == NO_VALUE:
        return absent() if absent else NO_VALUE
    return build(value)


def _security_group_names(lc_id, groups, resources) -> list:
    """Per entry of an LC's SecurityGroups, what makes it a name: "" for an id (or a
    value c7n-imds takes as one: a parameter, an import), the entry for a literal name,
    or the logical id of this stack's AWS::EC2::SecurityGroup without VpcId, whose Ref
    yields its name. A template's SecurityGroupIds and network interfaces take ids."""
    found: list = []
    for group in groups if isinstance(groups, list) else ():
        target = group.get("Ref") if isinstance(group, dict) and len(group) == 1 else None
        resource = resources.get(target) if isinstance(target, str) else None
        if isinstance(group, str) and not group.startswith("sg-"):
            found.append(group)
        elif (
            resource
            and resource.get("Type") == "AWS::EC2::SecurityGroup"
            and "VpcId" not in (resource.get("Properties") or {})
        ):
            found.append(target)
        else:
            found.append("")
    return found


def _as_ids(lc_id, groups, names) -> list:
    ids = []
    for group, name in zip(groups, names):
        if not name:
            ids.append(group)
        elif isinstance(group, dict):
            ids.append({"Fn::GetAtt": [name, "GroupId"]})
        else:
            _refuse(
                lc_id,
                "security group %s is a name, and where the template needs ids "
                "(a public address, or ids beside it) only its id will do" % json.dumps(group),
            )
    return ids


def _block_device(lc_id, mapping, notes) -> dict:
    """One LC block device mapping as a template's: NoDevice true becomes the empty
    string that makes EC2 omit the device; Ebs and VirtualName are carried."""
    if not isinstance(mapping, dict) or set(mapping) - BLOCK_DEVICE_KEYS:
        _refuse(lc_id, "block device mapping %s has unknown fields" % json.dumps(mapping))
    ebs = mapping.get("Ebs")
    if isinstance(ebs, dict) and set(ebs) - EBS_KEYS:
        _refuse(
            lc_id,
            "Ebs of %s has unknown fields %s"
            % (mapping.get("DeviceName"), ", ".join(sorted(set(ebs) - EBS_KEYS))),
        )
    no_device = mapping.get("NoDevice", False)
    if no_device in (True, "true", "True"):
        if dropped := sorted(set(mapping) - {"DeviceName", "NoDevice"}):
            notes.append(
                Note(
                    lc_id,
                    "mapping",
                    "%s is suppressed (NoDevice): its %s not "
                    "carried" % (mapping.get("DeviceName"), ", ".join(dropped)),
                )
            )
        return {"DeviceName": mapping.get("DeviceName"), "NoDevice": ""}
    if no_device not in (False, "false", "False"):
        _refuse(
            lc_id,
            "NoDevice %s of %s is not a literal boolean (a template needs "
            "\"\" or nothing)" % (json.dumps(no_device), mapping.get("DeviceName")),
        )
    return {k: v for k, v in mapping.items() if k != "NoDevice"}


def _instance_profile(lc_id, value, template, notes, parameters=None) -> dict:
    """An LC's IamInstanceProfile is a name or an ARN; a template says which. A parameter
    is judged by the stack's actual value, never by its default or description."""

    def refuse() -> NoReturn:
        _refuse(lc_id, "is IamInstanceProfile %s a name or an ARN?" % json.dumps(value))

    if isinstance(value, str):
        # Instance profile names cannot hold a colon; ARNs always do.
        return {"Arn": value} if ":" in value else {"Name": value}
    if not isinstance(value, dict) or len(value) != 1:
        refuse()
    ((function, argument),) = value.items()
    if function == "Fn::GetAtt":
        parts = argument.split(".", 1) if isinstance(argument, str) else argument
        if isinstance(parts, list) and parts[-1:] == ["Arn"]:
            return {"Arn": value}
    elif function == "Ref" and isinstance(argument, str):
        resource = template["Resources"].get(argument) or {}
        if resource.get("Type") == "AWS::IAM::InstanceProfile":
            return {"Name": value}  # Ref of an instance profile returns its name
        if argument in (template.get("Parameters") or {}):
            actual = (parameters or {}).get(argument)
            if actual is None or actual == NO_ECHO:
                _refuse(
                    lc_id,
                    "is IamInstanceProfile %s a name or an ARN? the stack's "
                    "value of parameter %s is %s"
                    % (
                        json.dumps(value),
                        argument,
                        "NoEcho (hidden)" if actual == NO_ECHO else "not known",
                    ),
                )
            kind = "Arn" if ":" in str(actual) else "Name"
            notes.append(
                Note(
                    lc_id,
                    "mapping",
                    "parameter %s holds an instance profile %s "
                    "(the stack's value); a later value of the other kind fails "
                    "to launch" % (argument, kind.lower()),
                )
            )
            return {kind: value}
    elif function == "Fn::Sub":
        text = argument[0] if isinstance(argument, list) and argument else argument
        # Pseudo parameters (stack name, region...) hold no colon; other variables might.
        text = re.sub(r"\$\{AWS::[^}]*\}", "", text) if isinstance(text, str) else ""
        if text.startswith("arn:"):
            return {"Arn": value}
        if text and ":" not in text and "${" not in text:
            return {"Name": value}
    refuse()


def _metadata_options(lc_id, options, overrides) -> dict:
    if not isinstance(options, dict) or set(options) - METADATA_KEYS:
        _refuse(lc_id, "MetadataOptions %s cannot be carried" % json.dumps(options))
    given = {
        k: v(options.get(k)) if callable(v) else v  # e.g. a hop limit of at least 2
        for k, v in (overrides or {}).items()
        if v != PRESERVE
    }
    if unknown := ", ".join(sorted(set(given) - METADATA_KEYS)):
        raise ValueError(
            "unknown metadata options %s; templates know %s"
            % (unknown, ", ".join(sorted(METADATA_KEYS)))
        )
    return {**options, "HttpTokens": TOKENS_REQUIRED, **given}


def _template_name(lc_id, name, notes) -> dict:
    """AWS's table maps LaunchConfigurationName to LaunchTemplateName; template names are
    stricter (3-128 of [a-zA-Z0-9().-/_]), so an invalid literal is left to CloudFormation."""
    valid = not isinstance(name, str) or TEMPLATE_NAME.match(name)
    notes.append(
        Note(
            lc_id,
            "mapping",
            "LaunchConfigurationName %s %s"
            % (
                json.dumps(name),
                (
                    "carried as LaunchTemplateName; the update fails if the account already has a "
                    "template of that name"
                )
                if valid
                else ("is not a valid launch template name; CloudFormation will name the template"),
            ),
        )
    )
    return {"LaunchTemplateName": name} if valid else {}


def _free_id(resources: dict, wanted: str) -> str:
    return next(
        i for i in [wanted] + ["%s%d" % (wanted, n) for n in range(2, 9999)] if i not in resources
    )


def _insert_after(resources: dict, after: str, key: str, value: dict) -> dict:
    """``key`` right after ``after``: a reviewer sees the template beside its LC."""
    items, at = list(resources.items()), list(resources).index(after) + 1
    return dict(items[:at] + [(key, value)] + items[at:])


def _referrers(template: dict, logical_id: str) -> set[str]:
    """Where the template still uses ``logical_id`` through Ref, GetAtt or Sub (DependsOn
    only orders, and is rewritten instead)."""
    found = {
        "%s %s" % (section[:-1].lower(), name)
        for section in ("Resources", "Outputs")
        for name, body in (template.get(section) or {}).items()
        if name != logical_id
        and _uses({k: v for k, v in body.items() if k != "DependsOn"}, logical_id)
    }
    return found | {
        s for s in ("Conditions", "Metadata", "Rules") if _uses(template.get(s), logical_id)
    }


def _uses(value, logical_id) -> bool:
    if not isinstance(value, dict):
        return isinstance(value, list) and any(_uses(v, logical_id) for v in value)
    get_att = value.get("Fn::GetAtt")
    get_att = get_att.split(".", 1) if isinstance(get_att, str) else get_att
    sub = value.get("Fn::Sub")
    text = sub[0] if isinstance(sub, list) and sub else sub
    return (
        value.get("Ref") == logical_id
        or (isinstance(get_att, list) and get_att[:1] == [logical_id])
        or (
            isinstance(text, str)
            and any(v.split(".")[0].strip() == logical_id for v in SUB_VARIABLE.findall(text))
        )
        or any(_uses(v, logical_id) for v in value.values())
    )


def _cfn_init_patterns(logical_id: str) -> list:
    """How cfn-init, cfn-hup and cfn-get-metadata name the resource whose Metadata they
    read: ``--resource X`` / ``--resource=X`` / ``-r X``, and a hook's
    ``path=Resources.X.Metadata...``."""
    name = re.escape(logical_id)
    return [
        re.compile(r"((?:^|(?<=\s))(?:--resource[= ]|-r )\s*)%s(?![A-Za-z0-9])" % name),
        re.compile(r"(Resources\.)%s(?=\.Metadata)" % name),
    ]


def _rewrite_strings(value, change):
    """``change(text)`` applied to every literal string of a value, intrinsic functions
    walked (Fn::Join parts, Fn::Sub text) but not the names they take (Ref, GetAtt)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_rewrite_strings(v, change) for v in value]
    if isinstance(value, dict):
        return {
            k: v if k in ("Ref", "Fn::GetAtt", "Condition") else _rewrite_strings(v, change)
            for k, v in value.items()
        }
    return value


def _strings(value) -> list[str]:
    """The literal strings of a value (as :func:`_rewrite_strings` walks it)."""
    found: list[str] = []

    def collect(text):
        found.append(text)
        return text

    _rewrite_strings(value, collect)
    return found


def _move_metadata(template: dict, lc_id: str, lt_id: str, data: dict):
    """(the configuration's Metadata for the launch template, None) with every cfn-init /
    cfn-hup reference to ``lc_id`` in it and in ``data``'s UserData (changed in place)
    rewritten to ``lt_id``; (None, why) when that cannot be done safely: the id is still
    named after the rewrite (a reference split over Fn::Join parts, say), or another
    resource's cfn-init reads the configuration's Metadata."""
    patterns = _cfn_init_patterns(lc_id)

    def change(text):
        for pattern in patterns:
            text = pattern.sub(lambda m: m.group(1) + lt_id, text)
        return text

    metadata = _rewrite_strings(template["Resources"][lc_id]["Metadata"], change)
    user_data = _rewrite_strings(data.get("UserData"), change)
    word = re.compile(r"(?<![A-Za-z0-9])%s(?![A-Za-z0-9])" % re.escape(lc_id))
    left = [t for t in _strings(metadata) + _strings(user_data) if word.search(t)]
    if left:
        return None, (
            "its logical id is still named in %s after rewriting the cfn-init "
            "and cfn-hup references, so what reads it cannot be told" % json.dumps(left[0][:120])
        )
    readers = sorted(
        name
        for name, resource in _resources(template).items()
        if name != lc_id
        and isinstance(resource, dict)
        and any(p.search(t) for t in _strings(resource) for p in patterns)
    )
    if readers:
        return None, "cfn-init of %s reads it by this logical id" % ", ".join(readers)
    if "UserData" in data:
        data["UserData"] = user_data
    return metadata, None


# What shows that instances run containers (c7n_imds.model.containers's markers), as text.
CONTAINER_MARKERS = tuple(m.decode("ascii") for m in CONTAINER_USER_DATA_MARKERS)


def runs_containers_in(template: dict, group_id: str) -> bool:
    """Whether the group's launch configurations or templates in this template set up
    ECS or EKS: a marker in the literal parts of their UserData (Fn::Base64 over Fn::Sub
    or Fn::Join: the parts written out; a literal base64 string decoded) or of their
    Metadata (cfn-init writing /etc/ecs/ecs.config)."""
    resources = _resources(template)
    properties = (resources.get(group_id) or {}).get("Properties") or {}
    sources = []
    if "LaunchConfigurationName" in properties:
        try:
            sources += _configurations(properties["LaunchConfigurationName"], resources)
        except ValueError:
            pass
    sources += [
        t
        for _, spec in _specifications(properties)
        if isinstance(spec, dict)
        for t in [_template_of(resources, spec)]
        if t
    ]
    for source in sources:
        resource = resources[source]
        texts = _strings(resource.get("Metadata")) + _strings(resource.get("Properties"))
        for text in list(texts):
            try:  # a literal UserData is base64
                texts.append(base64.b64decode(text, validate=True).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass
        if any(marker in text for text in texts for marker in CONTAINER_MARKERS):
            return True
    return False


def _replace_depends_on(resources: dict, old: str, new: str) -> None:
    for resource in resources.values():
        depends = resource.get("DependsOn")
        if depends == old:
            resource["DependsOn"] = new
        elif isinstance(depends, list) and old in depends:
            resource["DependsOn"] = list(dict.fromkeys(new if d == old else d for d in depends))


class _Refused(Refused):
    """A launch template whose MetadataOptions cannot be set faithfully."""


def require_imdsv2(template: dict, groups=None, metadata_options: dict | None = None) -> Rewrite:
    """Set ``HttpTokens: required`` in the launch templates of this template that the
    Auto Scaling groups (``groups``: these logical ids only) launch from, where the
    groups' Version follows the template's latest version; the input is not changed.

    ``metadata_options`` are laid over the template's own ``MetadataOptions`` exactly
    as :func:`migrate` does for launch configurations; every other value, intrinsic
    functions included, is carried unchanged, and a setting under ``Fn::If`` is set in
    each branch. A template already requiring IMDSv2 is not touched."""
    new = copy.deepcopy(template)
    resources = new["Resources"]
    wanted = None if groups is None else set(groups)
    # every group of the stack, asked for or not: a template's change reaches them all
    uses = {
        g: [
            _follows(resources, where, spec)
            for where, spec in _specifications(r.get("Properties") or {})
        ]
        for g, r in resources.items()
        if _is_group(r)
    }
    asked = [g for g in sorted(uses) if uses[g] and (wanted is None or g in wanted)]
    notes, refused, changed = [], {}, []
    latest_users = sorted(
        {t for g in asked for t, problem in uses[g] if not problem and t is not None}
    )
    for template_id in latest_users:
        lt = resources[template_id].setdefault("Properties", {})
        data = lt.get("LaunchTemplateData", {})
        if _requires(data):
            continue
        try:
            lt["LaunchTemplateData"] = _lift(
                data, lambda d: _with_required(template_id, d, metadata_options)
            )
        except _Refused as e:
            refused[template_id] = str(e)
            notes.append(Note(template_id, "left", "not changed: %s" % e))
            continue
        changed.append(template_id)
        notes += _template_notes(new, template_id, uses)
    fixed, left = [], {}
    for group_id in asked:
        problems = [p for _, p in uses[group_id] if p] + [
            "its launch template %s %s" % (t, refused[t])
            for t in dict.fromkeys(t for t, p in uses[group_id] if not p)
            if t in refused
        ]
        templates = sorted({t for t, _ in uses[group_id] if t is not None})
        if not problems and not set(templates) & set(changed):
            problems = [
                "%s already require(s) IMDSv2 (HttpTokens required) in the stack's "
                "template, so what the group launches is not what the template "
                "says - has the stack drifted, or not been updated since?" % ", ".join(templates)
            ]
        if problems:
            note = Note(group_id, "left", "not changed: %s" % "; ".join(problems))
            notes.append(note)
            left[group_id] = str(note)
            continue
        fixed.append(group_id)
        notes.append(
            Note(
                group_id,
                "fixed",
                "launches from %s, which now require(s) IMDSv2, "
                "once the change set is executed" % ", ".join(templates),
            )
        )
        notes.append(update_effect(resources[group_id], group_id))
    return Rewrite(
        template=new,
        notes=tuple(notes),
        fixed=tuple(fixed),
        required=tuple(sorted(changed)),
        left=left,
    )


def _specifications(properties: dict) -> list[tuple[str, object]]:
    """(where, LaunchTemplateSpecification) of a group's properties: its
    LaunchTemplate, or its MixedInstancesPolicy's template and per-override templates."""
    if "LaunchTemplate" in properties:
        return [("LaunchTemplate", properties["LaunchTemplate"])]
    policy = properties.get("MixedInstancesPolicy")
    if policy is None:
        return []
    launch = policy.get("LaunchTemplate") if isinstance(policy, dict) else None
    if not isinstance(launch, dict):
        return [("MixedInstancesPolicy", launch if launch is not None else policy)]
    found = [
        (
            "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification",
            launch.get("LaunchTemplateSpecification"),
        )
    ]
    overrides = launch.get("Overrides")
    for n, override in enumerate(overrides if isinstance(overrides, list) else ()):
        if isinstance(override, dict) and "LaunchTemplateSpecification" in override:
            found.append(
                ("MixedInstancesPolicy Overrides[%d]" % n, override["LaunchTemplateSpecification"])
            )
    if overrides is not None and not isinstance(overrides, list):
        found.append(("MixedInstancesPolicy Overrides", overrides))
    return found


def _follows(resources, where, spec) -> tuple[str | None, str | None]:
    """(the stack's launch template the specification names, or None; None when the
    group follows that template's latest version, else why the change misses it)."""
    if (
        not isinstance(spec, dict)
        or spec.get("Version") is None
        or (len(spec) == 1 and next(iter(spec)).startswith(("Fn::", "Ref")))
    ):
        return None, "its %s %s cannot be read as a launch template and version" % (
            where,
            json.dumps(spec),
        )
    template_id = _template_of(resources, spec)
    if template_id is None:
        named = spec.get("LaunchTemplateId", spec.get("LaunchTemplateName"))
        return None, (
            "its launch template %s (%s) is defined outside this stack; fix it "
            "where it is defined" % (json.dumps(named), where)
        )
    version = spec["Version"]
    attribute = _get_att(version)
    if attribute == (template_id, LATEST):
        return template_id, None
    instead = "set its Version to !GetAtt %s.%s, then run again" % (template_id, LATEST)
    if attribute == (template_id, DEFAULT):
        return template_id, (
            "it follows %s's DefaultVersionNumber, and CloudFormation does not move a "
            "template's default version when it updates the template (it adds a new "
            "version; the default stays), so HttpTokens required there would not reach "
            "the group; %s" % (template_id, instead)
        )
    if isinstance(version, (str, int)) and not isinstance(version, bool):
        return template_id, (
            "it is pinned to version %s of %s, which a change of the template (a new "
            "version) would not reach; %s" % (version, template_id, instead)
        )
    return template_id, (
        "its Version %s of %s is not the template's latest version, "
        "so a change of the template might not reach it; %s"
        % (json.dumps(version), template_id, instead)
    )


def _template_of(resources, spec) -> str | None:
    """The logical id of the stack's AWS::EC2::LaunchTemplate a specification names:
    a Ref or GetAtt LaunchTemplateId of it, or the same name the template is given."""
    templates = {k for k, r in resources.items() if r.get("Type") == LAUNCH_TEMPLATE}
    for key in ("LaunchTemplateId", "LaunchTemplateName"):
        value = spec.get(key)
        if value is None:
            continue
        target = value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None
        if target in templates:
            return target
        attribute = _get_att(value)
        if attribute and attribute[0] in templates and attribute[1] == ID_ATTRIBUTE:
            return attribute[0]
        if key == "LaunchTemplateName":
            return next(
                (
                    t
                    for t in sorted(templates)
                    if (resources[t].get("Properties") or {}).get("LaunchTemplateName") == value
                ),
                None,
            )
    return None


def _get_att(value) -> tuple | None:
    """(logical id, attribute) of a Fn::GetAtt, long form as a list or a dotted string."""
    if not isinstance(value, dict) or len(value) != 1 or "Fn::GetAtt" not in value:
        return None
    argument = value["Fn::GetAtt"]
    parts = argument.split(".", 1) if isinstance(argument, str) else argument
    return tuple(parts) if isinstance(parts, list) and len(parts) == 2 else None


def _requires(data) -> bool:
    """True when launch template data requires IMDSv2 in every case (each Fn::If branch
    of the data and of its MetadataOptions)."""
    if (
        isinstance(data, dict)
        and set(data) == {"Fn::If"}
        and isinstance(data["Fn::If"], list)
        and len(data["Fn::If"]) == 3
    ):
        return all(_requires(branch) for branch in data["Fn::If"][1:])
    return isinstance(data, dict) and _options_require(data.get("MetadataOptions"))


def _options_require(options) -> bool:
    if (
        isinstance(options, dict)
        and set(options) == {"Fn::If"}
        and isinstance(options["Fn::If"], list)
        and len(options["Fn::If"]) == 3
    ):
        return all(_options_require(branch) for branch in options["Fn::If"][1:])
    return isinstance(options, dict) and options.get("HttpTokens") == TOKENS_REQUIRED


def _with_required(template_id, data, metadata_options) -> dict:
    """Launch template data (one branch) with HttpTokens required, the options laid
    over its MetadataOptions as migrate lays them over a configuration's."""
    if not isinstance(data, dict) or _is_intrinsic(data):
        raise _Refused(
            "its LaunchTemplateData %s is computed (an intrinsic function), so "
            "c7n-imds cannot set HttpTokens in it faithfully; set HttpTokens: "
            "required in it by hand" % json.dumps(data)
        )
    data = dict(data)
    data["MetadataOptions"] = _lift(
        data.get("MetadataOptions", {}),
        lambda options: _options(template_id, options, metadata_options),
        absent=lambda: _options(template_id, {}, metadata_options),
    )
    return data


def _options(template_id, options, metadata_options) -> dict:
    if not isinstance(options, dict) or _is_intrinsic(options):
        raise _Refused(
            "its MetadataOptions %s is computed (a parameter or an intrinsic "
            "function), so c7n-imds cannot set HttpTokens in it faithfully; set "
            "HttpTokens: required in it by hand" % json.dumps(options)
        )
    if unknown := sorted(set(options) - METADATA_KEYS):
        raise _Refused(
            "its MetadataOptions has fields c7n-imds does not know (%s); set "
            "HttpTokens: required in it by hand" % ", ".join(unknown)
        )
    return _metadata_options(template_id, options, metadata_options)


def _is_intrinsic(value) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)).startswith(("Fn::", "Ref"))
    )


def _template_notes(template, template_id, uses) -> list[Note]:
    """What the change of one launch template does, and to whom."""
    reached = sorted(g for g, specs in uses.items() if (template_id, None) in specs)
    missed = sorted(
        g
        for g, specs in uses.items()
        if g not in reached and any(t == template_id for t, _ in specs)
    )
    notes = [
        Note(
            template_id,
            "required",
            "HttpTokens set to required in its "
            "LaunchTemplateData.MetadataOptions; CloudFormation adds it as a new "
            "version of %s when the change set is executed" % template_id,
        ),
        Note(
            template_id,
            "reach",
            "the new version reaches every group of the stack "
            "on its LatestVersionNumber: %s" % ", ".join(reached),
        ),
        Note(
            template_id,
            "reach",
            "its default version stays where it is "
            "(CloudFormation does not move it), and the default is what Security "
            "Hub EC2.170 and AWS Config's ec2-launch-template-imdsv2-check judge: "
            "after the update, aws ec2 modify-launch-template --default-version the "
            "new version",
        ),
    ]
    if missed:
        notes.append(
            Note(
                template_id,
                "reach",
                "also used by %s on another Version, which "
                "the change does not reach" % ", ".join(missed),
            )
        )
    others = sorted(
        r
        for r in _referrers(template, template_id)
        if r.startswith("resource ") and r[len("resource ") :] not in uses
    )
    if others:
        notes.append(
            Note(
                template_id,
                "reach",
                "also used by %s; review what a new version "
                "of the template does there before executing" % ", ".join(others),
            )
        )
    return notes


# -- what executing the change set does besides requiring IMDSv2 ------------------------

# Transforms whose processing leaves the template's own resources as written, so a change
# of them is what is deployed: SAM adds serverless resources beside them; the language
# extensions add intrinsic functions (Fn::ForEach, refused below, makes resources).
CARRIED_TRANSFORMS = ("AWS::Serverless-2016-10-31", "AWS::LanguageExtensions")
SIZE_PROPERTIES = ("MinSize", "MaxSize", "DesiredCapacity")
SIZE_ADVICE = (
    "executing an update sets the group's MinSize, MaxSize and DesiredCapacity "
    "to the template's values: make the template say the group's sizes, or add "
    "UpdatePolicy.AutoScalingScheduledAction.IgnoreUnmodifiedGroupSizeProperties: "
    "true to the group, or opt in to group-size"
)
NO_ECHO = "****"  # DescribeStacks' value of a NoEcho parameter


def refusal_of_template(template: dict) -> str | None:
    """Why the template cannot be carried through a change set faithfully, or None.
    ``GetTemplate`` (Original) returns it as submitted, transforms unprocessed: what
    ``Fn::ForEach``, ``Fn::Transform`` (AWS::Include) or a macro makes of it is known only
    after CloudFormation processes it."""
    found = _keys(template, "Fn::ForEach::")
    if found:
        return (
            "its template makes resources with Fn::ForEach (%s, transform "
            "AWS::LanguageExtensions): what they become exists only in the processed "
            "template, so c7n-imds cannot change them faithfully - require IMDSv2 in "
            "the template's source" % ", ".join(sorted(found)[:3])
        )
    if _keys(template, "Fn::Transform"):
        return (
            "its template uses Fn::Transform (a macro or AWS::Include inserts part of "
            "it when CloudFormation processes it), so c7n-imds cannot tell what is "
            "deployed - require IMDSv2 in the template's source"
        )
    macros = [n for n in transforms_of(template) if n not in CARRIED_TRANSFORMS]
    if macros:
        return (
            "its template uses the transform %s (a macro rewrites the template when "
            "CloudFormation processes it), so c7n-imds cannot tell what is deployed - "
            "require IMDSv2 in the template's source" % ", ".join(macros)
        )
    if not all(isinstance(r, dict) for r in _resources(template).values()):
        return "its Resources section holds entries that are not resources"
    return None


def transforms_of(template: dict) -> list[str]:
    """The names in the template's Transform section (a name, a list, or {Name, ...})."""
    value = template.get("Transform")
    items = value if isinstance(value, list) else [] if value is None else [value]
    return [str(i.get("Name") if isinstance(i, dict) else i) for i in items]


def _keys(value, prefix) -> set:
    """Keys starting with ``prefix`` anywhere in the value."""
    if isinstance(value, list):
        return set().union(*(_keys(v, prefix) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = {k for k in value if isinstance(k, str) and k.startswith(prefix)}
    return found.union(*(_keys(v, prefix) for v in value.values()))


@dataclass(frozen=True)
class Source:
    """Where a stack is deployed from, when that is not the stack itself: a change made
    only in the stack is reverted by the next deploy from there."""

    kind: str  # cdk, sam, stackset, service-catalog, pipeline
    evidence: str
    advice: str

    def line(self) -> str:
        return "%s (%s): %s" % (SOURCE_NAMES[self.kind], self.evidence, self.advice)


SOURCE_NAMES = {
    "cdk": "deployed by the AWS CDK",
    "sam": "deployed with AWS SAM",
    "stackset": "an instance of a CloudFormation StackSet",
    "service-catalog": "a Service Catalog provisioned product",
    "pipeline": "deployed by a pipeline",
}
SOURCE_ADVICE = {
    "cdk": "require IMDSv2 in the CDK app - requireImdsv2: true on the ec2.LaunchTemplate "
    "(Python: LaunchTemplate(require_imdsv2=True)) or on the "
    "autoscaling.AutoScalingGroup (require_imdsv2=True) - and deploy it; otherwise "
    "the next cdk deploy reverts this change",
    "sam": "require IMDSv2 in the SAM template and sam deploy it; otherwise the next "
    "sam deploy reverts this change",
    "stackset": "require IMDSv2 in the stack set's template in its administrator account "
    "(aws cloudformation update-stack-set); otherwise the next stack set "
    "operation reverts this change",
    "service-catalog": "require IMDSv2 in the product's template (a new provisioning "
    "artifact) and update the provisioned product; otherwise its next "
    "update reverts this change",
    "pipeline": "require IMDSv2 in the template in the pipeline's source; otherwise the "
    "next pipeline run reverts this change",
}
STACK_SET_NAME = re.compile(r"^StackSet-")
PIPELINE = re.compile(r"pipeline", re.IGNORECASE)


def deployed_from(stack: dict, template: dict) -> list[Source]:
    """Where the stack (a DescribeStacks record) is deployed from, by what CDK, SAM,
    StackSets, Service Catalog and pipelines leave on a stack or its template."""
    found = []
    resources = _resources(template)
    cdk = (
        [
            "resource %s" % k
            for k, r in resources.items()
            if isinstance(r, dict) and r.get("Type") == "AWS::CDK::Metadata"
        ]
        + ["parameter BootstrapVersion"]
        * ("BootstrapVersion" in (template.get("Parameters") or {}))
        + [
            "aws:cdk:path %s" % r["Metadata"]["aws:cdk:path"]
            for r in resources.values()
            if isinstance(r, dict)
            and isinstance(r.get("Metadata"), dict)
            and "aws:cdk:path" in r["Metadata"]
        ][:1]
    )
    if cdk:
        found.append(("cdk", ", ".join(cdk)))
    if "AWS::Serverless-2016-10-31" in transforms_of(template):
        found.append(("sam", "Transform AWS::Serverless-2016-10-31"))
    tags = {t.get("Key"): t.get("Value") for t in stack.get("Tags") or ()}
    if STACK_SET_NAME.match(stack.get("StackName", "")):
        found.append(("stackset", "stack name %s" % stack["StackName"]))
    catalog = sorted(k for k in tags if str(k).startswith("aws:servicecatalog:"))
    if catalog:
        found.append(("service-catalog", "tag %s" % catalog[0]))
    role = stack.get("RoleARN") or ""
    pipeline = ["service role %s" % role] * bool(PIPELINE.search(role)) + [
        "tag %s=%s" % (k, v)
        for k, v in sorted(tags.items())
        if PIPELINE.search(str(k)) or PIPELINE.search(str(v))
    ][:1]
    if pipeline:
        found.append(("pipeline", ", ".join(pipeline)))
    return [Source(kind, evidence, SOURCE_ADVICE[kind]) for kind, evidence in found]


def stack_policy_denials(body, wanted: dict) -> list[str]:
    """Why the stack policy (GetStackPolicy's StackPolicyBody; None when there is none)
    would stop the update: ``wanted`` maps logical ids to (resource type, the update
    actions they get: Update:Modify, Update:Replace, Update:Delete). A stack policy
    applies to every update and a change set cannot override it; once a stack has one,
    what it does not allow it denies ("Prevent updates to stack resources",
    CloudFormation User Guide)."""
    if not body:
        return []
    try:
        policy = json.loads(body) if isinstance(body, str) else body
        statements = policy["Statement"]
        statements = statements if isinstance(statements, list) else [statements]
    except (ValueError, TypeError, KeyError):
        return [
            "its stack policy could not be read, so whether it allows the update cannot be told"
        ]
    problems = []
    for logical_id, (resource_type, actions) in sorted(wanted.items()):
        for action in sorted(actions):
            matching = [
                (i, s)
                for i, s in enumerate(statements)
                if isinstance(s, dict) and _applies(s, action, logical_id, resource_type)
            ]
            deny = next(((i, s) for i, s in matching if s.get("Effect") == "Deny"), None)
            if deny is not None:
                problems.append(
                    "its stack policy denies %s on %s (statement %s: %s)"
                    % (
                        action,
                        logical_id,
                        deny[1].get("Sid") or "#%d" % (deny[0] + 1),
                        json.dumps(deny[1], sort_keys=True),
                    )
                )
            elif not any(s.get("Effect") == "Allow" for _, s in matching):
                problems.append(
                    "its stack policy allows %s on %s in no statement (a stack "
                    "policy denies every update it does not allow)" % (action, logical_id)
                )
    return problems


def _applies(statement: dict, action: str, logical_id: str, resource_type: str) -> bool:
    resource = "LogicalResourceId/%s" % logical_id
    return (
        _matches(statement, "Action", action, ignore_case=True)
        and _matches(statement, "Resource", resource)
        and _condition_holds(statement.get("Condition"), resource_type)
    )


def _matches(statement, key, value, ignore_case=False) -> bool:
    """Whether Key (or NotKey) of a statement covers the value; wildcards as IAM's."""

    def covered(patterns):
        patterns = patterns if isinstance(patterns, list) else [patterns]
        fold = (lambda s: str(s).lower()) if ignore_case else str
        return any(fnmatch.fnmatchcase(fold(value), fold(p)) for p in patterns)

    if key in statement:
        return covered(statement[key])
    if "Not" + key in statement:
        return not covered(statement["Not" + key])
    return False


def _condition_holds(condition, resource_type) -> bool:
    """A stack policy's Condition names resource types (StringEquals / StringLike and
    their negations on ResourceType); one it cannot read is taken to hold, which makes
    a Deny stop the update rather than be overlooked."""
    if not condition:
        return True
    if not isinstance(condition, dict):
        return True
    for operator, tests in condition.items():
        if not isinstance(tests, dict):
            return True
        types = tests.get("ResourceType")
        types = types if isinstance(types, list) else [types]
        hit = any(fnmatch.fnmatchcase(resource_type, str(t)) for t in types)
        if operator in ("StringEquals", "StringLike") and not hit:
            return False
        if operator in ("StringNotEquals", "StringNotLike") and hit:
            return False
    return True


def ignores_unmodified_sizes(resource: dict) -> bool:
    policy = resource.get("UpdatePolicy") or {}
    scheduled = policy.get("AutoScalingScheduledAction") if isinstance(policy, dict) else None
    value = (
        scheduled.get("IgnoreUnmodifiedGroupSizeProperties")
        if isinstance(scheduled, dict)
        else None
    )
    return value is True or str(value).lower() == "true"


def size_changes(
    template: dict, group_id: str, group: dict, parameters: dict
) -> list[LaunchChange]:
    """The size properties executing the update would set on the group: each of
    MinSize, MaxSize, DesiredCapacity the template gives (a literal, or a Ref of a
    parameter, valued from ``parameters``: the stack's) that differs from the live
    group's (a DescribeAutoScalingGroups record); one the template computes otherwise
    cannot be told equal, so it counts as a change. None when the group's UpdatePolicy
    ignores unmodified size properties."""
    resource = _resources(template).get(group_id) or {}
    if ignores_unmodified_sizes(resource):
        return []
    properties = resource.get("Properties") or {}
    changes = []
    for name in SIZE_PROPERTIES:
        if name not in properties:
            continue  # CloudFormation leaves what the template does not say
        value, how = _size_of(properties[name], parameters)
        if value is not None and value == group.get(name):
            continue
        changes.append(
            LaunchChange(
                "group-size",
                name,
                group.get(name),
                value if value is not None else json.dumps(properties[name]),
                why="the update sets the template's %s" % how,
            )
        )
    return changes


def _size_of(value, parameters) -> tuple[int | None, str]:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return int(value), "value"
        except ValueError:
            return None, "value"
    target = value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(target, str) and target in parameters and parameters[target] != NO_ECHO:
        try:
            return int(parameters[target]), "parameter %s" % target
        except ValueError:
            return None, "parameter %s" % target
    return None, "computed value, which c7n-imds cannot resolve before execution"


def parameter_changes(
    template: dict, stack_parameters, change_set_parameters
) -> list[LaunchChange]:
    """SSM-typed parameters that resolve differently in the change set than in the stack:
    with UsePreviousValue CloudFormation "always fetches the latest values from Parameter
    Store". ``ResolvedValue`` of DescribeStacks' and DescribeChangeSet's Parameters; a
    parameter that feeds an ImageId is an image change."""
    before = {p.get("ParameterKey"): p.get("ResolvedValue") for p in stack_parameters or ()}
    changes = []
    for parameter in change_set_parameters or ():
        key, after = parameter.get("ParameterKey"), parameter.get("ResolvedValue")
        if after is None or before.get(key) is None or before[key] == after:
            continue
        declared = (template.get("Parameters") or {}).get(key) or {}
        changes.append(
            LaunchChange(
                "image" if _feeds_image(template, key) else "other",
                "parameter %s" % key,
                before[key],
                after,
                why="UsePreviousValue re-resolves %s %s from Parameter "
                "Store"
                % (declared.get("Type", "SSM parameter"), parameter.get("ParameterValue") or key),
            )
        )
    return changes


def _feeds_image(template, parameter) -> bool:
    def images(value):
        if isinstance(value, list):
            return [i for v in value for i in images(v)]
        if not isinstance(value, dict):
            return []
        return [v for k, v in value.items() if k == "ImageId"] + images(list(value.values()))

    return any(_uses(value, parameter) for value in images(_resources(template)))


def replacement(change_set: dict, group_id: str, template: dict) -> tuple[str, list]:
    """What executing the change set does to the group itself, and the launch change
    that is when the group is replaced: DescribeChangeSet's ``Replacement`` for it
    (True, or Conditional: "may"), and its UpdatePolicy's AutoScalingReplacingUpdate,
    which replaces the group only with ``WillReplace: true``."""
    change = next(
        (
            c.get("ResourceChange") or {}
            for c in change_set.get("Changes") or ()
            if (c.get("ResourceChange") or {}).get("LogicalResourceId") == group_id
        ),
        None,
    )
    said = (change or {}).get("Replacement")
    will = replaces_group(_resources(template).get(group_id) or {})
    if said == "True" or will is True:
        why = (
            "the change set says Replacement: True"
            if said == "True"
            else "its UpdatePolicy AutoScalingReplacingUpdate has WillReplace: true"
        )
        return (
            "replaces the whole group (%s): a new group is made, then this one is deleted" % why
        ), [LaunchChange("replace-all-at-once", "Replacement", "False", "True", why=why)]
    if said == "Conditional" or will is None:
        why = (
            "the change set says Replacement: Conditional"
            if said == "Conditional"
            else "its UpdatePolicy AutoScalingReplacingUpdate WillReplace is computed"
        )
        return "may replace the whole group (%s)" % why, [
            LaunchChange("replace-all-at-once", "Replacement", "False", "Conditional", why=why)
        ]
    if change is None:
        return (
            "not replaced: the group itself is not changed; its launch template gets a new version"
        ), []
    return "not replaced: the change set updates the group in place (Replacement: %s)" % (
        said or "not given"
    ), []
