"""Typed plans: what each remediation action will make and change, decided before any
change, printed by `c7n-imds plan` and carried out by the action from the same record.

One plan per action run: its items (a template per launch configuration, a version per
source version, a copy per configuration), the groups that cannot be remediated and
why, and the groups left to their stack or exemption. A preview is the plan in a form
safe to print: group names only, user data as its size and SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from c7n_imds.model.changes import GroupChange
from c7n_imds.model.redaction import redact


@dataclass
class TemplatePlan:
    """`convert-to-launch-template`: the launch template for one launch configuration,
    and the groups that switch to it."""

    launch_configuration_name: str
    source_created: str
    launch_template_name: str
    launch_template_data: dict
    notes: list[str]
    groups: list[dict]
    group_changes: list[GroupChange] = field(default_factory=list)

    @property
    def metadata_options(self) -> dict:
        return self.launch_template_data["MetadataOptions"]

    def preview(self) -> dict:
        return {
            "LaunchConfigurationName": self.launch_configuration_name,
            "SourceCreated": self.source_created,
            "LaunchTemplateName": self.launch_template_name,
            "LaunchTemplateData": redact(self.launch_template_data),
            "Notes": list(self.notes),
            "Groups": [asg["AutoScalingGroupName"] for asg in self.groups],
        }


class GroupSpec(NamedTuple):
    """One template specification of a group that a new version serves."""

    asg: dict
    spec: dict

    @property
    def name(self) -> str:
        return self.asg["AutoScalingGroupName"]


@dataclass
class VersionPlan:
    """`set-metadata-access`: the new version of one (template, source version), and the
    group specifications it serves."""

    source: dict  # the source version, as described
    groups: list[GroupSpec] = field(default_factory=list)
    metadata_options: dict = field(default_factory=dict)
    followed_as_latest: bool = False  # a group follows the template's $Latest
    # groups outside the run that follow the template's $Default: the default stays
    # and this run's $Default followers are pinned instead
    default_outsiders: list[str] = field(default_factory=list)
    group_changes: list[GroupChange] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int]:
        return self.source["LaunchTemplateId"], self.source["VersionNumber"]

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]

    @property
    def source_is_default(self) -> bool:
        return bool(self.source.get("DefaultVersion"))

    def preview(self, set_default: bool) -> dict:
        return {
            "LaunchTemplateId": self.key[0],
            "LaunchTemplateName": self.source.get("LaunchTemplateName"),
            "SourceVersion": self.key[1],
            "MakeDefault": self.source_is_default and set_default and not self.default_outsiders,
            "MetadataOptions": self.metadata_options,
            "Groups": self.group_names,
        }


@dataclass
class CopyPlan:
    """`copy-launch-configuration`: the IMDSv2 copy of one launch configuration."""

    source: str
    config: dict
    parameters: dict  # CreateLaunchConfiguration parameters (user data as raw bytes)
    groups: list[dict] = field(default_factory=list)
    group_changes: list[GroupChange] = field(default_factory=list)

    @property
    def copy_name(self) -> str:
        return self.parameters["LaunchConfigurationName"]

    def preview(self) -> dict:
        shown = {k: v for k, v in self.parameters.items() if k != "UserData"}
        return {
            "LaunchConfigurationName": self.source,
            "CopyLaunchConfigurationName": self.copy_name,
            "MetadataOptions": self.parameters["MetadataOptions"],
            "CarriesUserData": bool(self.parameters.get("UserData")),
            "Parameters": shown,
            "Groups": [asg["AutoScalingGroupName"] for asg in self.groups],
        }


@dataclass
class Snapshot:
    """What a plan is made from, read before any change: the groups as they are now and
    what they launch from (for a conversion: their launch configurations by group name,
    and security group names resolved to ids per (group, name))."""

    groups: list[dict]
    launch_configurations: dict[str, dict | None] = field(default_factory=dict)
    security_group_ids: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # for new template versions: the template versions loaded for the groups (a
    # c7n_imds.sources.LaunchSources, read only through its lookups)
    launch_sources: Any = None


@dataclass
class Plan:
    """What one action run will do."""

    items: list[Any] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)

    def preview(self, kind: str, **options: Any) -> dict:
        """Safe to print; GroupChanges: per group, every launch-affecting difference
        (model/changes.GroupChange)."""
        return {
            kind: [item.preview(**options) for item in self.items],
            "GroupChanges": [
                change.record()
                for item in self.items
                for change in getattr(item, "group_changes", ())
            ],
            "Failures": dict(self.failures),
            "Skipped": list(self.skipped),
        }


def independent_sets(work: dict[tuple[str, Any], Any]) -> list[list[tuple[str, Any]]]:
    """The work's keys, (template id, source version), in sets that share neither a
    template (its versions are made, and taken back, together) nor a group (a group
    changes completely or not at all), in a stable order."""
    parent = {key: key for key in work}

    def root(key: tuple[str, Any]) -> tuple[str, Any]:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    first_of: dict[tuple[str, str], tuple[str, Any]] = {}
    for key in sorted(work):
        for tie in [("template", key[0])] + [
            ("group", asg["AutoScalingGroupName"]) for asg, _ in work[key].groups
        ]:
            other = first_of.setdefault(tie, key)
            parent[root(key)] = root(other)
    sets: dict[tuple[str, Any], list[tuple[str, Any]]] = {}
    for key in sorted(work):
        sets.setdefault(root(key), []).append(key)
    return sorted(sets.values())
