"""Require IMDSv2 in a CloudFormation template's own launch templates: an Auto Scaling
group that launches from an AWS::EC2::LaunchTemplate defined in the same stack gets
``HttpTokens: required`` in that template's ``LaunchTemplateData.MetadataOptions``. Pure:
template in, template and notes out; no AWS calls. (Groups on launch configurations are
:mod:`c7n_imds.model.cfn`'s; :func:`rewrite` does both.)

What CloudFormation does with the change decides which groups it reaches:

- Launch templates are immutable: a change of ``LaunchTemplateData`` becomes a new
  version of the template ("Modify a launch template (manage launch template versions)",
  Amazon EC2 User Guide), updated in place - only ``LaunchTemplateName`` is
  create-only (the resource's schema, as cfn-lint ships it).
- CloudFormation does not move the template's default version: a stack update adds
  version 2 and the default stays 1, and a template cannot name its default version
  (aws-cloudformation/cloudformation-coverage-roadmap#1518).
- A group's ``LaunchTemplateSpecification.Version`` cannot be ``$Latest`` or
  ``$Default``; it is ``Fn::GetAtt`` of the template's ``LatestVersionNumber`` or
  ``DefaultVersionNumber``, or a number (AWS::AutoScaling::AutoScalingGroup
  LaunchTemplateSpecification).

So a group whose Version is ``LatestVersionNumber`` launches the new version after the
update. One on ``DefaultVersionNumber`` keeps the default, which does not move; one on a
literal number keeps that number. Neither would get the change, and changing their
Version would override a choice their owner wrote down: they are left, with what to do.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from c7n_imds.model import cfn
from c7n_imds.names import TOKENS_REQUIRED

LATEST, DEFAULT = "LatestVersionNumber", "DefaultVersionNumber"
ID_ATTRIBUTE = "LaunchTemplateId"


class _Refused(Exception):
    """A launch template whose MetadataOptions cannot be set faithfully."""


@dataclass(frozen=True)
class Rewrite:
    """A stack's template with its requested groups made to require IMDSv2."""
    template: dict
    notes: list = field(default_factory=list)
    fixed: tuple = ()  # group logical ids that launch with IMDSv2 required once executed
    modified: tuple = ()  # logical ids the change set must show as Modify
    left: dict = field(default_factory=dict)  # group logical id -> why it is not fixed


def rewrite(template: dict, groups, metadata_options: dict | None = None) -> Rewrite:
    """:func:`cfn.migrate` for the groups on launch configurations, then
    :func:`require_imdsv2` for those on the stack's own launch templates."""
    groups = sorted(groups)
    new, migrate_notes = cfn.migrate(template, groups=groups,
                                     metadata_options=metadata_options)
    moved = [g for g in groups
             if any(n.startswith("%s: now launches from " % g) for n in migrate_notes)]
    rest = [g for g in groups if g not in moved]
    new, notes, fixed, templates = _require(new, rest, metadata_options)
    # cfn.migrate's "already uses a launch template" is superseded by what happened here
    taken = [g for g in rest if _specifications(_properties(new, g))]
    notes = [n for n in migrate_notes if not any(
        n.startswith("%s: not changed: " % g) for g in taken)] + notes
    left = {g: next((n for n in notes if n.startswith(g + ": not")),
                    "%s: not changed by the rewrite" % g)
            for g in groups if g not in moved and g not in fixed}
    return Rewrite(template=new, notes=notes, fixed=tuple(sorted(moved + fixed)),
                   modified=tuple(sorted(moved + templates)), left=left)


def require_imdsv2(template: dict, groups=None, metadata_options: dict | None = None
                   ) -> tuple[dict, list[str]]:
    """Set ``HttpTokens: required`` in the launch templates of this template that the
    Auto Scaling groups (``groups``: these logical ids only) launch from, where the
    groups' Version follows the template's latest version. Returns ``(new template,
    notes)``; the input is not changed.

    ``metadata_options`` are laid over the template's own ``MetadataOptions`` exactly
    as :func:`cfn.migrate` does for launch configurations; every other value, intrinsic
    functions included, is carried unchanged, and a setting under ``Fn::If`` is set in
    each branch. A template already requiring IMDSv2 is not touched."""
    new, notes, _, _ = _require(template, groups, metadata_options)
    return new, notes


def _require(template, groups, metadata_options):
    """(new template, notes, fixed group ids, modified template ids)."""
    new = copy.deepcopy(template)
    resources = new["Resources"]
    wanted = None if groups is None else set(groups)
    # every group of the stack, asked for or not: a template's change reaches them all
    uses = {g: [_follows(resources, where, spec) for where, spec in _specifications(
        r.get("Properties") or {})] for g, r in resources.items()
        if r.get("Type") == cfn.AUTO_SCALING_GROUP}
    asked = [g for g in sorted(uses) if uses[g] and (wanted is None or g in wanted)]
    notes, refused, changed = [], {}, []
    latest_users = sorted({t for g in asked for t, problem in uses[g] if not problem})
    for template_id in latest_users:
        lt = resources[template_id].setdefault("Properties", {})
        data = lt.get("LaunchTemplateData", {})
        if _requires(data):
            continue
        try:
            lt["LaunchTemplateData"] = cfn._lift(data, lambda d: _with_required(
                template_id, d, metadata_options))
        except _Refused as e:
            refused[template_id] = str(e)
            notes.append("%s: not changed: %s" % (template_id, e))
            continue
        changed.append(template_id)
        notes += _template_notes(new, template_id, uses)
    fixed = []
    for group_id in asked:
        problems = [p for _, p in uses[group_id] if p] + [
            "its launch template %s %s" % (t, refused[t])
            for t in dict.fromkeys(t for t, p in uses[group_id] if not p) if t in refused]
        if problems:
            notes.append("%s: not changed: %s" % (group_id, "; ".join(problems)))
            continue
        templates = sorted({t for t, _ in uses[group_id]})
        if not set(templates) & set(changed):
            notes.append("%s: not changed: %s already require(s) IMDSv2 (HttpTokens "
                         "required) in the stack's template, so what the group launches "
                         "is not what the template says - has the stack drifted, or not "
                         "been updated since?" % (group_id, ", ".join(templates)))
            continue
        fixed.append(group_id)
        notes.append("%s: launches from %s, which now require(s) IMDSv2, once the change "
                     "set is executed" % (group_id, ", ".join(templates)))
        notes.append(_update_effect(resources[group_id], group_id))
    return new, notes, fixed, changed


def _properties(template, group_id) -> dict:
    return (template["Resources"].get(group_id) or {}).get("Properties") or {}


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
    found = [("MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification",
              launch.get("LaunchTemplateSpecification"))]
    overrides = launch.get("Overrides")
    for n, override in enumerate(overrides if isinstance(overrides, list) else ()):
        if isinstance(override, dict) and "LaunchTemplateSpecification" in override:
            found.append(("MixedInstancesPolicy Overrides[%d]" % n,
                          override["LaunchTemplateSpecification"]))
    if overrides is not None and not isinstance(overrides, list):
        found.append(("MixedInstancesPolicy Overrides", overrides))
    return found


def _follows(resources, where, spec) -> tuple[str | None, str | None]:
    """(the stack's launch template the specification names, or None; None when the
    group follows that template's latest version, else why the change misses it)."""
    if not isinstance(spec, dict) or spec.get("Version") is None or (
            len(spec) == 1 and next(iter(spec)).startswith(("Fn::", "Ref"))):
        return None, "its %s %s cannot be read as a launch template and version" % (
            where, json.dumps(spec))
    template_id = _template_of(resources, spec)
    if template_id is None:
        named = spec.get("LaunchTemplateId", spec.get("LaunchTemplateName"))
        return None, ("its launch template %s (%s) is defined outside this stack; fix it "
                      "where it is defined" % (json.dumps(named), where))
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
            "the group; %s" % (template_id, instead))
    if isinstance(version, (str, int)) and not isinstance(version, bool):
        return template_id, (
            "it is pinned to version %s of %s, which a change of the template (a new "
            "version) would not reach; %s" % (version, template_id, instead))
    return template_id, ("its Version %s of %s is not the template's latest version, "
                         "so a change of the template might not reach it; %s" % (
                             json.dumps(version), template_id, instead))


def _template_of(resources, spec) -> str | None:
    """The logical id of the stack's AWS::EC2::LaunchTemplate a specification names:
    a Ref or GetAtt LaunchTemplateId of it, or the same name the template is given."""
    templates = {k for k, r in resources.items() if r.get("Type") == cfn.LAUNCH_TEMPLATE}
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
            return next((t for t in sorted(templates) if (resources[t].get(
                "Properties") or {}).get("LaunchTemplateName") == value), None)
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
    if isinstance(data, dict) and set(data) == {"Fn::If"} and isinstance(
            data["Fn::If"], list) and len(data["Fn::If"]) == 3:
        return all(_requires(branch) for branch in data["Fn::If"][1:])
    return isinstance(data, dict) and _options_require(data.get("MetadataOptions"))


def _options_require(options) -> bool:
    if isinstance(options, dict) and set(options) == {"Fn::If"} and isinstance(
            options["Fn::If"], list) and len(options["Fn::If"]) == 3:
        return all(_options_require(branch) for branch in options["Fn::If"][1:])
    return isinstance(options, dict) and options.get("HttpTokens") == TOKENS_REQUIRED


def _with_required(template_id, data, metadata_options) -> dict:
    """Launch template data (one branch) with HttpTokens required, the options laid
    over its MetadataOptions as cfn.migrate lays them over a configuration's."""
    if not isinstance(data, dict) or _is_intrinsic(data):
        raise _Refused("its LaunchTemplateData %s is computed (an intrinsic function), so "
                       "c7n-imds cannot set HttpTokens in it faithfully; set HttpTokens: "
                       "required in it by hand" % json.dumps(data))
    data = dict(data)
    data["MetadataOptions"] = cfn._lift(
        data.get("MetadataOptions", {}),
        lambda options: _options(template_id, options, metadata_options),
        absent=lambda: _options(template_id, {}, metadata_options))
    return data


def _options(template_id, options, metadata_options) -> dict:
    if not isinstance(options, dict) or _is_intrinsic(options):
        raise _Refused("its MetadataOptions %s is computed (a parameter or an intrinsic "
                       "function), so c7n-imds cannot set HttpTokens in it faithfully; set "
                       "HttpTokens: required in it by hand" % json.dumps(options))
    if unknown := sorted(set(options) - cfn.METADATA_KEYS):
        raise _Refused("its MetadataOptions has fields c7n-imds does not know (%s); set "
                       "HttpTokens: required in it by hand" % ", ".join(unknown))
    return cfn._metadata_options(template_id, options, metadata_options)


def _is_intrinsic(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(
        ("Fn::", "Ref"))


def _template_notes(template, template_id, uses) -> list[str]:
    """What the change of one launch template does, and to whom."""
    reached = sorted(g for g, specs in uses.items() if (template_id, None) in specs)
    missed = sorted(g for g, specs in uses.items() if g not in reached and any(
        t == template_id for t, _ in specs))
    notes = ["%s: HttpTokens set to required in its LaunchTemplateData.MetadataOptions; "
             "CloudFormation adds it as a new version of %s when the change set is "
             "executed" % (template_id, template_id),
             "%s: the new version reaches every group of the stack on its "
             "LatestVersionNumber: %s" % (template_id, ", ".join(reached)),
             "%s: its default version stays where it is (CloudFormation does not move it), "
             "and the default is what Security Hub EC2.170 and AWS Config's "
             "ec2-launch-template-imdsv2-check judge: after the update, aws ec2 "
             "modify-launch-template --default-version the new version" % template_id]
    if missed:
        notes.append("%s: also used by %s on another Version, which the change does not "
                     "reach" % (template_id, ", ".join(missed)))
    others = sorted(r for r in cfn._referrers(template, template_id)
                    if r.startswith("resource ") and r[len("resource "):] not in uses)
    if others:
        notes.append("%s: also used by %s; review what a new version of the template "
                     "does there before executing" % (template_id, ", ".join(others)))
    return notes


def _update_effect(resource, group_id) -> str:
    """What the group's update does to its running instances (as cfn.migrate says)."""
    policy = resource.get("UpdatePolicy") or {}
    return next(("%s: its UpdatePolicy %s %s during the update" % (group_id, k, e)
                 for k, e in cfn.UPDATE_EFFECTS if k in policy),
                "%s: running instances keep their metadata options until replaced "
                "(no UpdatePolicy)" % group_id)
