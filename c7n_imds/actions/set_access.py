"""`set-metadata-access`: launch-template groups get a new template version with the
requested metadata options."""

import copy
import logging

from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import (
    ALLOW_LAUNCH_CHANGES_SCHEMA,
    HOP_LIMIT_SCHEMA,
    HTTP_ENDPOINT_SCHEMA,
    IAC_MANAGED_SCHEMA,
    IMDSV1_GATE_SCHEMA,
    RATE_BUDGET_SCHEMA,
    REFRESH_PREFERENCES_SCHEMA,
    RUNNING_INSTANCES_SCHEMA,
)
from c7n_imds.actions.versions import VersionMaking
from c7n_imds.aws import AWS_ERRORS, all_groups, describe_error, retry, tags_of, template_followers
from c7n_imds.consumers import CONSUMER_PERMISSIONS, template_consumers
from c7n_imds.model.changes import data_changes
from c7n_imds.model.gate import GROUP
from c7n_imds.model.launch_source import launch_references, template_group_specs
from c7n_imds.model.plans import GroupSpec, Plan, Snapshot, VersionPlan, independent_sets
from c7n_imds.model.provenance import (
    derived_source_spec,
    encode_previous_launch,
    encode_previous_mixed_launch,
)
from c7n_imds.model.translate import merge_metadata_options
from c7n_imds.names import (
    ALIASES,
    DEFAULT,
    LAUNCH_TEMPLATE,
    PRESERVE,
    PREVIOUS_LAUNCH_TAG,
    SET_ACCESS_ACTION,
)
from c7n_imds.sources import LaunchSources

log = logging.getLogger("custodian.c7n_imds.actions")


@ASG.action_registry.register(SET_ACCESS_ACTION)
class SetMetadataAccess(VersionMaking, Remediation):
    """Give launch-template groups a template version with the requested IMDS options.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-template-require-imdsv2
            resource: asg
            filters:
            - {type: imds, key: LaunchType, op: ne, value: launch-configuration}
            - {type: imds, key: HttpTokens, value: optional}
            actions:
            - {type: set-metadata-access, http-tokens: required, hop-limit: preserve}
    """

    schema = type_schema(
        SET_ACCESS_ACTION,
        **{
            "http-tokens": {"enum": ["required", "optional"]},
            "hop-limit": HOP_LIMIT_SCHEMA,
            "http-endpoint": HTTP_ENDPOINT_SCHEMA,
            "metadata-tags": {"enum": [PRESERVE, "enabled", "disabled"]},
            "set-default": {"type": "boolean"},
            "iac-managed": IAC_MANAGED_SCHEMA,
            "verify": {"type": "boolean"},
            "running-instances": RUNNING_INSTANCES_SCHEMA,
            "rate-budget": RATE_BUDGET_SCHEMA,
            "refresh-preferences": REFRESH_PREFERENCES_SCHEMA,
            "allow-launch-changes": ALLOW_LAUNCH_CHANGES_SCHEMA,
            "imdsv1-gate": IMDSV1_GATE_SCHEMA,
        },
    )
    permissions = LaunchSources.permissions + (
        "autoscaling:DescribeAutoScalingGroups",
        "ec2:CreateLaunchTemplateVersion",
        "ec2:DeleteLaunchTemplateVersions",
        "ec2:ModifyLaunchTemplate",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:CreateOrUpdateTags",
        # AWS checks these when a group is pointed at a version.
        "ec2:RunInstances",
        "iam:PassRole",
    )
    # a default that moves is gated on every fleet and instance launched from it too
    gate_permissions = CONSUMER_PERMISSIONS
    # Attribute-based templates get a concrete instance type for the DryRun, from the
    # architecture of their image (which may be named by an SSM parameter).
    verify_permissions = (
        "ec2:RunInstances",
        "ec2:DescribeImages",
        "ec2:GetInstanceTypesFromInstanceRequirements",
        "ssm:GetParameters",
    )

    def requested(self, existing, groups, user_data=None):
        return merge_metadata_options(
            existing,
            http_tokens=self.options.http_tokens,
            hop_limit=self.hop_limit(groups, existing, user_data),
            http_endpoint=self.options.http_endpoint,
            instance_metadata_tags=self.options.metadata_tags,
        )

    # -- planning -----------------------------------------------------------------------

    def read(self, asgs, ec2, autoscaling):
        """Everything a plan is made from, read now (describe calls only): the groups
        as they are, and the template versions they launch from - for a group an
        earlier run left half-done, also the version its derived one was made from."""
        groups = [
            a for a in self.eligible(current_groups(autoscaling, asgs)) if template_group_specs(a)
        ]
        loaded = LaunchSources.for_manager(self.manager, ec2, autoscaling).load(groups)
        derived_from = [
            derived_source_spec(version)
            for asg in groups
            for spec in template_group_specs(asg)
            for version in [loaded.template_version(spec)]
            if version is not None and loaded.remediation_pending(spec, version, asg)
        ]
        missing = [spec for spec in derived_from if loaded.template_version(spec) is None]
        if missing:
            loaded.load_template_versions(missing)
        return Snapshot(groups=groups, launch_sources=loaded)

    def plan(self, snapshot):
        """The Plan, from a snapshot alone: a VersionPlan per (template, source version)
        that needs a new version, the groups that cannot be remediated and why, those
        left alone."""
        groups, sources = snapshot.groups, snapshot.launch_sources
        work, failures = {}, {}
        for asg in groups:
            name = asg["AutoScalingGroupName"]
            if previous_template_launch(asg) is None:
                # no way back could be recorded: change nothing for this group
                failures[name] = (
                    "its mixed instances policy names too many templates to "
                    "record in the c7n-imds:previous-launch tag (256 "
                    "characters), so it could not be reverted; remediate it "
                    "by hand"
                )
                continue
            needed = []
            for spec in template_group_specs(asg):
                version = sources.template_version(spec)
                if version is None:
                    failures[name] = (
                        "launch template %s version %s no longer exists; "
                        "point the group at a valid version first"
                        % (
                            spec.get("LaunchTemplateId") or spec.get("LaunchTemplateName"),
                            spec["Version"],
                        )
                    )
                    break
                if sources.remediation_pending(spec, version, asg):
                    # An earlier run stopped half-way: finish from the version ours was
                    # derived from (the derived one is found again and verified).
                    version = sources.template_version(derived_source_spec(version))
                    if version is None:
                        failures[name] = (
                            "an earlier run derived launch template %s version %s for "
                            "this group, but its source version no longer exists; point "
                            "the group at a valid version"
                            % (spec.get("LaunchTemplateId"), spec["Version"])
                        )
                        break
                data = version.get("LaunchTemplateData") or {}
                existing = data.get("MetadataOptions")
                unchanged = merge_metadata_options(existing, http_tokens=PRESERVE)
                if self.requested(existing, [asg], data.get("UserData")) != unchanged:
                    needed.append((spec, version))
            else:
                for spec, version in needed:
                    key = (version["LaunchTemplateId"], version["VersionNumber"])
                    item = work.setdefault(key, VersionPlan(source=version))
                    item.groups.append(GroupSpec(asg, spec))
                    if spec["Version"] == "$Latest":
                        item.followed_as_latest = True
        for key, item in sorted(work.items()):
            data = item.source.get("LaunchTemplateData") or {}
            item.metadata_options = self.requested(
                data.get("MetadataOptions"), [asg for asg, _ in item.groups], data.get("UserData")
            )
            for asg, spec in item.groups:
                # the contract: the new version is the source version but for its
                # metadata options (block devices re-sent, read back before use)
                change = self.group_change(
                    asg,
                    "launch template %s %s (version %s)" % (key[0], spec["Version"], key[1]),
                    "launch template %s new version from %s" % (key[0], key[1]),
                    data.get("MetadataOptions"),
                    item.metadata_options,
                    data_changes(data, dict(data, MetadataOptions=item.metadata_options)),
                )
                problem = self.refusal(change)
                if problem:
                    failures[asg["AutoScalingGroupName"]] = problem
                item.group_changes.append(change)
        for key in [k for k, item in work.items() if any(g.name in failures for g in item.groups)]:
            # a version serves its groups together: one refused, none changes
            for group in work.pop(key).groups:
                failures.setdefault(
                    group.name, "shares launch template %s version %s with a refused group" % key
                )
        return Plan(
            items=[work[key] for key in sorted(work)], failures=failures, skipped=list(self.skipped)
        )

    def preview(self, asgs):
        """What `process` would create: one version per (template, source version)."""
        ec2, autoscaling = self.clients()
        return self.plan(self.read(asgs, ec2, autoscaling)).preview(
            "Versions", set_default=self.options.set_default
        )

    # -- execution ----------------------------------------------------------------------

    def remediate(self, asgs):
        ec2, autoscaling = self.clients()
        plan = self.remember(self.plan(self.read(asgs, ec2, autoscaling)))
        work, failures = {item.key: item for item in plan.items}, plan.failures
        region_groups = all_groups(autoscaling) if work else []
        followers = template_followers(autoscaling, work, region_groups)
        self.guard_shared_templates(work, followers, failures)
        self.gate_other_consumers(work, region_groups)
        new_versions, results, switched = {}, list(self.skipped), []
        # Each set of templates that no group shares with another set is finished -
        # versions proven, groups tagged, defaults moved, pinned groups pointed - before
        # the next starts: the changes then run beside the next set's pre-flight
        # DryRuns instead of after all of them, and RunInstances's small rate limit
        # alone bounds a large run.
        for keys in independent_sets(work):
            part = {key: work[key] for key in keys}
            made = self.make_versions(ec2, part, followers, failures)
            new_versions.update(made)
            part_results, part_switched = self.apply(
                ec2, autoscaling, part, made, followers, failures
            )
            results += part_results
            switched += part_switched
        metadata = {}
        for key, item in work.items():
            if key in new_versions:
                options = (new_versions[key].get("LaunchTemplateData") or {}).get(
                    "MetadataOptions"
                ) or {}
                for asg, _ in item.groups:
                    metadata.setdefault(asg["AutoScalingGroupName"], options)
        self.update_running_instances(
            ec2, autoscaling, switched, results, failures, uses_template=True, metadata=metadata
        )
        return self.finish(results, failures)

    def guard_shared_templates(self, work, followers, failures):
        """A template is shared with groups this run does not change (exempt, held
        back, compliant, filtered out). A new version becomes every follower's $Latest,
        so a template followed as $Latest by such a group is refused; and its $Default
        is not moved under such a group - this run's groups are pinned to the new
        version instead."""
        in_run = {}
        for (template_id, _), item in work.items():
            for asg, spec in item.groups:
                in_run.setdefault(template_id, set()).add(
                    (asg["AutoScalingGroupName"], spec["Version"])
                )
        for key, item in work.items():
            template_id = key[0]
            following = followers.get(template_id, {})
            latest_outside = sorted(
                following.get("$Latest", set())
                - {name for name, version in in_run[template_id] if version == "$Latest"}
            )
            if latest_outside:
                for asg, _ in item.groups:
                    failures[asg["AutoScalingGroupName"]] = (
                        "launch template %s is followed as $Latest by %s, which this run "
                        "does not change; a new version would change what they launch. "
                        "Pin them to a version number or remediate them in the same run"
                        % (template_id, ", ".join(latest_outside))
                    )
                continue
            default_outside = sorted(
                following.get("$Default", set())
                - {name for name, version in in_run[template_id] if version == "$Default"}
            )
            if item.source.get("DefaultVersion") and default_outside:
                log.warning(
                    "launch template %s: default version %s kept because %s "
                    "follow it and are not changed by this run; this run's groups "
                    "are pinned to the new version instead",
                    template_id,
                    key[1],
                    ", ".join(default_outside),
                )
                item.default_outsiders = default_outside

    def gate_other_consumers(self, work, region_groups):
        """Before a template's default moves, whatever else launches from it - EC2
        Fleets, Spot Fleets, instances launched from it directly - passes the gate;
        otherwise the default stays and this run's $Default followers are pinned to the
        new version instead (as for groups outside the run), and the log says which
        consumer held it."""
        gate = self.gate()
        moving = {
            key[0]: item.source.get("LaunchTemplateName")
            for key, item in work.items()
            if item.source.get("DefaultVersion")
            and not item.default_outsiders
            and self.options.set_default
        }
        if gate is None or not moving:
            return
        consumers = template_consumers(gate.session, moving, region_groups)
        for key, item in sorted(work.items()):
            # groups were judged already: this run's by the gate, others' by followers
            others = [c for c in consumers.get(key[0], ()) if c.kind != GROUP]
            if key[0] not in moving or not others:
                continue
            verdict = gate.check(others)
            if verdict.passed:
                log.info(
                    "launch template %s: default moves; also launched from by %s, "
                    "none of which calls IMDSv1",
                    key[0],
                    ", ".join(verdict.consumers),
                )
                continue
            log.warning(
                "launch template %s: default version %s kept: %s; this run's groups "
                "are pinned to the new version instead",
                key[0],
                key[1],
                "; ".join(verdict.blocked),
            )
            item.default_outsiders = verdict.blocked

    def apply(self, ec2, autoscaling, work, new_versions, followers, failures):
        results, switched, group_specs, defaults = [], {}, {}, []
        for key, item in sorted(work.items()):
            new = new_versions.get(key)
            if new is None:
                continue
            names = [asg["AutoScalingGroupName"] for asg, _ in item.groups]
            for asg, spec in item.groups:
                # A $Default follower is pinned to the new number when the default must
                # stay for groups outside the run.
                pin = spec["Version"] not in ALIASES or (
                    spec["Version"] == DEFAULT and bool(item.default_outsiders)
                )
                if spec["Version"] == DEFAULT and not pin and not self.options.set_default:
                    # The default stays where it is, so this group launches as before.
                    continue
                group_specs.setdefault(asg["AutoScalingGroupName"], (asg, []))[1].append(
                    (spec, new, pin)
                )
            if item.source.get("DefaultVersion") and not item.default_outsiders:
                defaults.append((key, new, names))
        # failed groups, and those an earlier, interrupted run recorded, are left out
        untagged = {
            name: previous_template_launch(asg)
            for name, (asg, _) in sorted(group_specs.items())
            if name not in failures
            and tags_of(asg).get(PREVIOUS_LAUNCH_TAG) != previous_template_launch(asg)
        }
        for problem, names in self.record_previous_launches(autoscaling, untagged):
            for name in names:
                failures[name] = "tagging the group: %s" % problem
        # a group whose tag could not be written must not change with a default
        self.settle(ec2, work, new_versions, followers, failures)
        for (template_id, number), new, names in defaults:
            if (template_id, number) not in new_versions:
                continue
            if not self.options.set_default:
                log.warning(
                    "launch template %s: default version %s left as it is "
                    "(set-default: false); groups following $Default keep it",
                    template_id,
                    number,
                )
                continue
            try:
                retry(
                    ec2.modify_launch_template,
                    LaunchTemplateId=template_id,
                    DefaultVersion=str(new["VersionNumber"]),
                )
                log.info(
                    "launch template %s: default version %s -> %s",
                    template_id,
                    number,
                    new["VersionNumber"],
                )
            except AWS_ERRORS as e:
                for name in names:
                    failures[name] = "setting the default version of %s: %s" % (
                        template_id,
                        describe_error(e),
                    )
                    group_specs.pop(name, None)
        for name, (asg, specs) in sorted(group_specs.items()):
            if name in failures:
                continue
            try:
                self.point_group(autoscaling, asg, specs)
            except AWS_ERRORS as e:
                failures[name] = "pointing the group at the new version: %s" % (describe_error(e))
                continue
            switched[name] = asg
            results.append(
                {
                    "AutoScalingGroupName": name,
                    "Versions": [
                        {
                            "LaunchTemplateId": new["LaunchTemplateId"],
                            "From": spec["Version"],
                            "VersionNumber": new["VersionNumber"],
                        }
                        for spec, new, _ in specs
                    ],
                }
            )
        return results, list(switched.values())

    def point_group(self, autoscaling, asg, specs):
        """Point pinned specs - (spec, new version, pin) - at the new version numbers."""
        name = asg["AutoScalingGroupName"]
        pinned = {
            (s.get("LaunchTemplateId") or new["LaunchTemplateId"], s["Version"]): new
            for s, new, pin in specs
            if pin
        }
        update = repoint(asg, pinned)
        if update:
            retry(autoscaling.update_auto_scaling_group, AutoScalingGroupName=name, **update)
        for spec, new, pin in specs:
            log.info(
                "asg %s: launch template %s %s -> version %s (%s)",
                name,
                new["LaunchTemplateId"],
                spec["Version"],
                new["VersionNumber"],
                "follows " + spec["Version"]
                if not pin
                else "pointed"
                if spec["Version"] not in ALIASES
                else "pinned",
            )


def previous_template_launch(asg):
    """Tag value for a template group's launch, or None when it will not fit."""
    launch_type, refs = launch_references(asg)
    if launch_type == LAUNCH_TEMPLATE:
        return encode_previous_launch(
            {"LaunchTemplateId": refs[0]["LaunchTemplateId"], "Version": refs[0]["Version"]}
        )
    return encode_previous_mixed_launch(refs)


def repoint(asg, pinned):
    """UpdateAutoScalingGroup parameters pointing pinned specs at new version numbers,
    or {} when the group follows $Default/$Latest only. A mixed instances policy is
    sent whole: UpdateAutoScalingGroup replaces it."""

    def updated(spec):
        key = (spec.get("LaunchTemplateId"), str(spec.get("Version") or "$Default"))
        if key in pinned:
            return {"LaunchTemplateId": key[0], "Version": str(pinned[key]["VersionNumber"])}, True
        return {
            "LaunchTemplateId": spec.get("LaunchTemplateId"),
            "Version": str(spec.get("Version") or "$Default"),
        }, False

    if not pinned:
        return {}
    if asg.get("MixedInstancesPolicy"):
        policy = copy.deepcopy(asg["MixedInstancesPolicy"])
        lt = policy["LaunchTemplate"]
        lt["LaunchTemplateSpecification"], changed = updated(lt["LaunchTemplateSpecification"])
        for override in lt.get("Overrides") or ():
            if override.get("LaunchTemplateSpecification"):
                override["LaunchTemplateSpecification"], more = updated(
                    override["LaunchTemplateSpecification"]
                )
                changed = changed or more
        return {"MixedInstancesPolicy": policy} if changed else {}
    spec, changed = updated(asg["LaunchTemplate"])
    return {"LaunchTemplate": spec} if changed else {}
