"""Rewrite a CloudFormation template so that its Auto Scaling groups launch from launch
templates requiring IMDSv2 instead of launch configurations: groups a stack owns are fixed in
its template, not behind its back. Pure: template text in, text and notes out; no AWS calls.

The rules follow AWS's "Migrate AWS CloudFormation stacks from launch configurations to
launch templates" (Amazon EC2 Auto Scaling User Guide), in particular its "Launch
configuration mapping reference" table, and the CloudFormation reference pages of
AWS::AutoScaling::LaunchConfiguration and AWS::EC2::LaunchTemplate. Every value is carried
unchanged, intrinsic functions included; where a value cannot be carried faithfully,
:func:`migrate` raises ``ValueError`` instead of losing it.
"""
from __future__ import annotations

import copy
import datetime
import json
import re

import yaml

from c7n_imds.names import PRESERVE, TOKENS_REQUIRED

LAUNCH_CONFIGURATION = "AWS::AutoScaling::LaunchConfiguration"
AUTO_SCALING_GROUP = "AWS::AutoScaling::AutoScalingGroup"
LAUNCH_TEMPLATE = "AWS::EC2::LaunchTemplate"
NO_VALUE = {"Ref": "AWS::NoValue"}
TEMPLATE_SUFFIX = "Imdsv2Template"
# Launch configuration properties whose launch template property has the same name and shape
# (the CloudFormation LC spells RamDiskId as the template does, unlike the API's RamdiskId).
SAME_NAME = ("ImageId", "InstanceType", "KeyName", "EbsOptimized", "KernelId", "RamDiskId",
             "UserData")
CLASSIC_LINK = ("ClassicLinkVPCId", "ClassicLinkVPCSecurityGroups")
KNOWN_PROPERTIES = frozenset(SAME_NAME + CLASSIC_LINK + (
    "SecurityGroups", "AssociatePublicIpAddress", "BlockDeviceMappings", "IamInstanceProfile",
    "InstanceMonitoring", "SpotPrice", "PlacementTenancy", "MetadataOptions",
    "LaunchConfigurationName", "InstanceId"))
BLOCK_DEVICE_KEYS = frozenset(("DeviceName", "Ebs", "NoDevice", "VirtualName"))
EBS_KEYS = frozenset(("SnapshotId", "VolumeSize", "VolumeType", "Iops", "Throughput",
                      "DeleteOnTermination", "Encrypted"))
# AWS::EC2::LaunchTemplate MetadataOptions (a superset of the launch configuration's).
METADATA_KEYS = frozenset(("HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint",
                           "HttpProtocolIpv6", "InstanceMetadataTags"))
# Launch configuration properties that become a structure in the template (SpotPrice keeps
# the LC's behaviour, although AWS's guide advises a MixedInstancesPolicy instead).
WRAPPED = {"PlacementTenancy": ("Placement", lambda tenancy: {"Tenancy": tenancy}),
           "SpotPrice": ("InstanceMarketOptions", lambda price: {
               "MarketType": "spot", "SpotOptions": {"MaxPrice": price}})}
UPDATE_EFFECTS = (("AutoScalingReplacingUpdate", "may replace the whole group"),
                  ("AutoScalingRollingUpdate", "replaces the running instances"))
TEMPLATE_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


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
        raise ValueError("the template could not be parsed: %s" % "; ".join(
            "line %s: %s" % (m.linenumber, m.message) for m in matches))
    template = _plain(template)
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ValueError("the text is not a CloudFormation template (no Resources section)")
    return template, ("json" if text.lstrip().startswith("{") else "yaml")


def _plain(value):
    """cfn-lint's node types (str/dict/list subclasses carrying line marks) as plain
    Python values, so that results compare, copy and serialise like any other dict."""
    if isinstance(value, dict):
        return {str.__str__(k) if isinstance(k, str) else k: _plain(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str.__str__(value)
    # An unquoted YAML date (AWSTemplateFormatVersion: 2010-09-09) is text to CloudFormation.
    return value.isoformat() if isinstance(value, datetime.date) else value


def _refuse(lc_id, problem):
    """Refuse, rather than lose or guess a setting: say what and how to proceed."""
    raise ValueError("launch configuration %s: %s; c7n-imds will not guess: migrate %s by "
                     "hand" % (lc_id, problem, lc_id))


# CloudFormation rejects YAML aliases: a value used twice is written out twice.
_NoAliasDumper = type("_NoAliasDumper", (yaml.SafeDumper,),
                      {"ignore_aliases": lambda self, data: True})


def dump_template(template: dict, fmt: str = "json") -> str:
    """Template text for a change set's TemplateBody: JSON, or YAML with every intrinsic
    in its long form; CloudFormation accepts both."""
    if fmt == "json":
        return json.dumps(template, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.dump(template, Dumper=_NoAliasDumper, sort_keys=False,
                         default_flow_style=False, width=100)
    raise ValueError("unknown template format %r (json or yaml)" % fmt)


def migrate(template: dict, groups=None, metadata_options: dict | None = None
            ) -> tuple[dict, list[str]]:
    """Move the template's Auto Scaling groups from launch configurations to new launch
    templates that require IMDSv2. Returns ``(new template, notes)``; the input is not
    changed.

    ``groups`` limits the change to these logical ids; ``metadata_options`` (template
    ``MetadataOptions`` fields; ``preserve`` keeps the configuration's) is laid over
    ``HttpTokens: required``. As AWS's "Migrate AWS CloudFormation stacks from launch
    configurations to launch templates" shows, each group's ``LaunchConfigurationName``
    becomes a ``LaunchTemplate`` of the template's Ref and ``LatestVersionNumber``. A
    configuration is removed only when nothing else in the template uses it.
    """
    new = copy.deepcopy(template)
    resources, wanted = new["Resources"], None if groups is None else set(groups)
    groups_here = {k for k, r in resources.items() if r.get("Type") == AUTO_SCALING_GROUP}
    notes = ["%s: not an Auto Scaling group of this template" % missing
             for missing in sorted((wanted or set()) - groups_here)]
    moving = {}  # group logical id -> launch configuration logical id
    for group_id, resource in resources.items():
        if resource.get("Type") != AUTO_SCALING_GROUP or (
                wanted is not None and group_id not in wanted):
            continue
        if reason := _unmovable(resource.get("Properties") or {}, resources):
            notes.append("%s: not changed: %s" % (group_id, reason))
        else:
            moving[group_id] = resource["Properties"]["LaunchConfigurationName"]["Ref"]
    created = {}  # launch configuration logical id -> launch template logical id
    for lc_id in sorted(set(moving.values())):
        created[lc_id] = _free_id(resources, lc_id + TEMPLATE_SUFFIX)
        lc = resources[lc_id]
        data, lc_notes = launch_template_data(lc_id, lc.get("Properties") or {}, new,
                                              metadata_options)
        # A copy: the configuration may stay, and shared values would become YAML aliases.
        properties = {"LaunchTemplateData": copy.deepcopy(data)}
        if (name := (lc.get("Properties") or {}).get("LaunchConfigurationName")) is not None:
            properties.update(_template_name(lc_id, name, lc_notes))
        # The template stands where the configuration stood: same existence condition and
        # the same prerequisites (an instance role, say).
        resource = {"Type": LAUNCH_TEMPLATE, "Properties": properties, **{
            a: copy.deepcopy(lc[a]) for a in ("Condition", "DependsOn") if a in lc}}
        resources = _insert_after(resources, lc_id, created[lc_id], resource)
        notes += lc_notes + ["%s: launch template %s added from it" % (lc_id, created[lc_id])]
    new["Resources"] = resources
    for group_id, lc_id in moving.items():
        properties = resources[group_id]["Properties"]
        del properties["LaunchConfigurationName"]
        properties["LaunchTemplate"] = {
            "LaunchTemplateId": {"Ref": created[lc_id]},
            "Version": {"Fn::GetAtt": [created[lc_id], "LatestVersionNumber"]}}
        notes.append("%s: now launches from %s" % (group_id, created[lc_id]))
        # What the update does to running instances depends on the group's UpdatePolicy.
        policy = resources[group_id].get("UpdatePolicy") or {}
        notes.append(next(("%s: its UpdatePolicy %s %s during the update" % (group_id, k, e)
                           for k, e in UPDATE_EFFECTS if k in policy),
                          "%s: running instances keep their metadata options until replaced "
                          "(no UpdatePolicy)" % group_id))
    for lc_id, template_id in created.items():
        if users := sorted(_referrers(new, lc_id)):
            notes.append("%s: kept, still used by %s; it keeps failing AutoScaling.3 until "
                         "that changes" % (lc_id, ", ".join(users)))
        elif (resources[lc_id].get("Metadata") or {}):
            notes.append("%s: kept, it carries Metadata (cfn-init reads it by this logical "
                         "id); it keeps failing AutoScaling.3 until removed by hand" % lc_id)
        else:
            del resources[lc_id]
            _replace_depends_on(resources, lc_id, template_id)
            notes.append("%s: removed, no longer used" % lc_id)
    return new, notes


def _unmovable(properties: dict, resources: dict) -> str | None:
    """Why a group is not moved by this rewrite, or None when it is."""
    if "MixedInstancesPolicy" in properties:
        return "it has a MixedInstancesPolicy (its launch templates are changed there)"
    if "LaunchTemplate" in properties:
        return "it already uses a launch template"
    if (name := properties.get("LaunchConfigurationName")) is None:
        return "it names no launch configuration"
    target = name.get("Ref") if isinstance(name, dict) and len(name) == 1 else None
    if (resources.get(target) if isinstance(target, str) else None) is None or resources[
            target].get("Type") != LAUNCH_CONFIGURATION:
        return ("its LaunchConfigurationName %s is not a Ref to a launch configuration of "
                "this template; fix it where that configuration is defined" % json.dumps(name))
    return None


def launch_template_data(lc_id: str, properties: dict, template: dict,
                         metadata_options: dict | None = None) -> tuple[dict, list[str]]:
    """``LaunchTemplateData`` for an AWS::AutoScaling::LaunchConfiguration's properties,
    row by row from the "Launch configuration mapping reference" of AWS's "Migrate AWS
    CloudFormation stacks from launch configurations to launch templates"; with notes."""
    if unknown := sorted(set(properties) - KNOWN_PROPERTIES):
        _refuse(lc_id, "property %s has no known template mapping" % ", ".join(unknown))
    if "InstanceId" in properties:
        # AWS's table maps InstanceId to InstanceId, but LaunchTemplateData has none: the LC
        # copied the instance's settings, which only a describe of the instance could tell.
        _refuse(lc_id, "it is built from instance %s" % json.dumps(properties["InstanceId"]))
    data, notes = {name: properties[name] for name in SAME_NAME if name in properties}, []
    groups = properties.get("SecurityGroups")
    _check_security_groups(lc_id, groups, template["Resources"])
    if "AssociatePublicIpAddress" in properties:
        # A template sets the public address on the primary interface, and the groups must
        # then go there ("either SecurityGroupIds or NetworkInterfaces.Groups, but not
        # both"). An LC's primary interface is deleted with its instance: say so.
        associate = properties["AssociatePublicIpAddress"]
        data["NetworkInterfaces"] = _lift(associate, lambda value: [dict(
            {"DeviceIndex": 0, "AssociatePublicIpAddress": value, "DeleteOnTermination": True},
            **({} if groups is None else {"Groups": groups}))])
        if groups is not None and json.dumps(NO_VALUE) in json.dumps(associate):
            # Where the condition drops the interface, the groups go back to the top.
            data["SecurityGroupIds"] = _lift(associate, lambda v: NO_VALUE,
                                             absent=lambda: groups)
    elif groups is not None:
        data["SecurityGroupIds"] = groups
    if "BlockDeviceMappings" in properties:
        data["BlockDeviceMappings"] = _lift(
            properties["BlockDeviceMappings"],
            lambda mappings: [_lift(m, lambda m: _block_device(lc_id, m, notes))
                              for m in (mappings if isinstance(mappings, list) else _refuse(
                                  lc_id, "BlockDeviceMappings %s is not a list" % json.dumps(
                                      mappings)))])
    if "IamInstanceProfile" in properties:
        data["IamInstanceProfile"] = _lift(
            properties["IamInstanceProfile"],
            lambda value: _instance_profile(lc_id, value, template, notes))
    # An LC enables detailed monitoring unless told otherwise; a template disables it.
    data["Monitoring"] = _lift(properties.get("InstanceMonitoring", True),
                               lambda value: {"Enabled": value},
                               absent=lambda: {"Enabled": True})
    for lc_name, (lt_name, build) in WRAPPED.items():
        if lc_name in properties:
            data[lt_name] = _lift(properties[lc_name], build)
    if "SpotPrice" in properties:
        notes.append("%s: SpotPrice carried as InstanceMarketOptions; AWS advises dropping "
                     "it, or a MixedInstancesPolicy on the group" % lc_id)
    if present := [p for p in CLASSIC_LINK if p in properties]:
        notes.append("%s: %s dropped: EC2-Classic is retired and launch templates have no "
                     "equivalent" % (lc_id, ", ".join(present)))
    data["MetadataOptions"] = _lift(
        properties.get("MetadataOptions", {}),
        lambda options: _metadata_options(lc_id, options, metadata_options),
        absent=lambda: _metadata_options(lc_id, {}, metadata_options))
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


def _check_security_groups(lc_id, groups, resources) -> None:
    """Templates take group ids; an LC also took names. A name, or a Ref of a group with no
    VpcId (which yields its name), would fail in SecurityGroupIds."""
    for group in groups if isinstance(groups, list) else ():
        target = group.get("Ref") if isinstance(group, dict) else None
        resource = resources.get(target) if isinstance(target, str) else None
        if (isinstance(group, str) and not group.startswith("sg-")) or (
                resource and resource.get("Type") == "AWS::EC2::SecurityGroup"
                and "VpcId" not in (resource.get("Properties") or {})):
            _refuse(lc_id, "security group %s is (or yields) a name and templates take "
                    "ids (use !GetAtt X.GroupId)" % json.dumps(group))


def _block_device(lc_id, mapping, notes) -> dict:
    """One LC block device mapping as a template's: NoDevice true becomes the empty
    string that makes EC2 omit the device; Ebs and VirtualName are carried."""
    if not isinstance(mapping, dict) or set(mapping) - BLOCK_DEVICE_KEYS:
        _refuse(lc_id, "block device mapping %s has unknown fields" % json.dumps(mapping))
    ebs = mapping.get("Ebs")
    if isinstance(ebs, dict) and set(ebs) - EBS_KEYS:
        _refuse(lc_id, "Ebs of %s has unknown fields %s" % (
            mapping.get("DeviceName"), ", ".join(sorted(set(ebs) - EBS_KEYS))))
    no_device = mapping.get("NoDevice", False)
    if no_device in (True, "true", "True"):
        if dropped := sorted(set(mapping) - {"DeviceName", "NoDevice"}):
            notes.append("%s: %s is suppressed (NoDevice): its %s not carried" % (
                lc_id, mapping.get("DeviceName"), ", ".join(dropped)))
        return {"DeviceName": mapping.get("DeviceName"), "NoDevice": ""}
    if no_device not in (False, "false", "False"):
        _refuse(lc_id, "NoDevice %s of %s is not a literal boolean (a template needs "
                "\"\" or nothing)" % (json.dumps(no_device), mapping.get("DeviceName")))
    return {k: v for k, v in mapping.items() if k != "NoDevice"}


def _instance_profile(lc_id, value, template, notes) -> dict:
    """An LC's IamInstanceProfile is a name or an ARN; a template says which."""
    def refuse():
        _refuse(lc_id, "is IamInstanceProfile %s a name or an ARN?" % json.dumps(value))
    if isinstance(value, str):
        # Instance profile names cannot hold a colon; ARNs always do.
        return {"Arn": value} if ":" in value else {"Name": value}
    if not isinstance(value, dict) or len(value) != 1:
        refuse()
    (function, argument), = value.items()
    if function == "Fn::GetAtt":
        parts = argument.split(".", 1) if isinstance(argument, str) else argument
        if isinstance(parts, list) and parts[-1:] == ["Arn"]:
            return {"Arn": value}
    elif function == "Ref" and isinstance(argument, str):
        resource = template["Resources"].get(argument) or {}
        if resource.get("Type") == "AWS::IAM::InstanceProfile":
            return {"Name": value}  # Ref of an instance profile returns its name
        parameter = (template.get("Parameters") or {}).get(argument)
        if parameter is not None:
            default = str(parameter.get("Default", ""))
            kind = "Arn" if ":" in default else "Name"
            notes.append("%s: parameter %s taken to hold an instance profile %s (from its "
                         "default); other values must be of that kind" % (
                             lc_id, argument, kind.lower()))
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
    given = {k: v(options.get(k)) if callable(v) else v  # e.g. a hop limit of at least 2
             for k, v in (overrides or {}).items() if v != PRESERVE}
    if unknown := ", ".join(sorted(set(given) - METADATA_KEYS)):
        raise ValueError("unknown metadata options %s; templates know %s" % (
            unknown, ", ".join(sorted(METADATA_KEYS))))
    return {**options, "HttpTokens": TOKENS_REQUIRED, **given}


def _template_name(lc_id, name, notes) -> dict:
    """AWS's table maps LaunchConfigurationName to LaunchTemplateName; template names are
    stricter (3-128 of [a-zA-Z0-9().-/_]), so an invalid literal is left to CloudFormation."""
    valid = not isinstance(name, str) or TEMPLATE_NAME.match(name)
    notes.append("%s: LaunchConfigurationName %s %s" % (lc_id, json.dumps(name), (
        "carried as LaunchTemplateName; the update fails if the account already has a "
        "template of that name") if valid else (
        "is not a valid launch template name; CloudFormation will name the template")))
    return {"LaunchTemplateName": name} if valid else {}


def _free_id(resources: dict, wanted: str) -> str:
    return next(i for i in [wanted] + ["%s%d" % (wanted, n) for n in range(2, 9999)]
                if i not in resources)


def _insert_after(resources: dict, after: str, key: str, value: dict) -> dict:
    """``key`` right after ``after``: a reviewer sees the template beside its LC."""
    items, at = list(resources.items()), list(resources).index(after) + 1
    return dict(items[:at] + [(key, value)] + items[at:])


def _referrers(template: dict, logical_id: str) -> set[str]:
    """Where the template still uses ``logical_id`` through Ref, GetAtt or Sub (DependsOn
    only orders, and is rewritten instead)."""
    found = {"%s %s" % (section[:-1].lower(), name) for section in ("Resources", "Outputs")
             for name, body in (template.get(section) or {}).items()
             if name != logical_id and _uses(
                 {k: v for k, v in body.items() if k != "DependsOn"}, logical_id)}
    return found | {s for s in ("Conditions", "Metadata", "Rules")
                    if _uses(template.get(s), logical_id)}


def _uses(value, logical_id) -> bool:
    if not isinstance(value, dict):
        return isinstance(value, list) and any(_uses(v, logical_id) for v in value)
    get_att = value.get("Fn::GetAtt")
    get_att = get_att.split(".", 1) if isinstance(get_att, str) else get_att
    sub = value.get("Fn::Sub")
    text = sub[0] if isinstance(sub, list) and sub else sub
    return value.get("Ref") == logical_id or (
        isinstance(get_att, list) and get_att[:1] == [logical_id]) or (isinstance(
            text, str) and any(v.split(".")[0].strip() == logical_id
                               for v in SUB_VARIABLE.findall(text))) or any(
        _uses(v, logical_id) for v in value.values())


def _replace_depends_on(resources: dict, old: str, new: str) -> None:
    for resource in resources.values():
        depends = resource.get("DependsOn")
        if depends == old:
            resource["DependsOn"] = new
        elif isinstance(depends, list) and old in depends:
            resource["DependsOn"] = list(dict.fromkeys(new if d == old else d for d in depends))
