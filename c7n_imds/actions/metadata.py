"""`set-metadata-access`: launch-template groups get a new template version with the
requested metadata options."""
import copy
import json
import logging

from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.common import (
    AWS_ERRORS, HOP_LIMIT_SCHEMA, HTTP_ENDPOINT_SCHEMA, IAC_MANAGED_SCHEMA, REFRESH_PREFERENCES_SCHEMA,
    RUNNING_INSTANCES_SCHEMA, Remediation, current_groups, describe_error)
from c7n_imds.launch import (
    LAUNCH_TEMPLATE, MIXED_INSTANCES_POLICY, LaunchSources, launch_references, retry)
from c7n_imds.translate import (
    PRESERVE, client_token, derived_version_description, encode_previous_launch,
    encode_previous_mixed_launch,
    merge_metadata_options)

log = logging.getLogger("custodian.c7n_imds.actions")


def template_group_specs(asg):
    """The template specs a launch-template or mixed-instances group launches from."""
    launch_type, refs = launch_references(asg)
    return refs if launch_type in (LAUNCH_TEMPLATE, MIXED_INSTANCES_POLICY) else []


@ASG.action_registry.register("set-metadata-access")
class SetMetadataAccess(Remediation):
    """Give launch-template groups a template version with the requested IMDS options.

    For every template version a group launches from - its launch template, or each
    template of a mixed instances policy including per-override templates - that does
    not already have the requested options, a new version is created from it
    (``SourceVersion``: every other setting, block-device snapshots included, is kept)
    with the options merged into its existing metadata options. Each (template,
    version) pair is handled once, however many groups share it.

    The new version becomes the template's default when it was made from the default
    version (AWS Config's check behind EC2.170 judges the default version), unless
    ``set-default: false``. Groups pinned to a version number are pointed at the new
    number; groups following ``$Default`` or ``$Latest`` launch from it without further
    change. Groups already compliant are left alone, and a re-run changes nothing:
    a version created by an earlier, interrupted run is found by its description and
    reused. Each group is tagged ``c7n-imds:previous-launch`` so it can be reverted.

    Before any group or default changes, a ``RunInstances`` DryRun with the new version
    (``verify``, on by default) catches a template EC2 would refuse.

    Options: ``http-tokens`` (default ``required``), ``hop-limit`` (``preserve``, 1-64,
    or ``auto``: at least 2 for groups that evidently run containers), ``http-endpoint``,
    ``metadata-tags`` (``preserve``, ``enabled``, ``disabled``), ``set-default``,
    ``verify``, ``running-instances`` (``keep``, ``modify``, ``refresh``),
    ``refresh-preferences`` and ``iac-managed`` (``skip`` or ``remediate``), as for
    ``convert-to-launch-template``.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-template-require-imdsv2
            resource: asg
            filters:
              - type: imds
                key: LaunchType
                op: in
                value: [launch-template, mixed-instances-policy]
              - type: imds
                key: HttpTokens
                value: optional
            actions:
              - type: set-metadata-access
                http-tokens: required
                hop-limit: preserve
    """

    schema = type_schema(
        "set-metadata-access",
        **{"http-tokens": {"enum": ["required", "optional"]},
           "hop-limit": HOP_LIMIT_SCHEMA,
           "http-endpoint": HTTP_ENDPOINT_SCHEMA,
           "metadata-tags": {"enum": [PRESERVE, "enabled", "disabled"]},
           "set-default": {"type": "boolean"},
           "iac-managed": IAC_MANAGED_SCHEMA,
           "verify": {"type": "boolean"},
           "running-instances": RUNNING_INSTANCES_SCHEMA,
           "refresh-preferences": REFRESH_PREFERENCES_SCHEMA})
    permissions = LaunchSources.permissions + (
        "autoscaling:DescribeAutoScalingGroups", "ec2:CreateLaunchTemplateVersion",
        "ec2:ModifyLaunchTemplate", "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:CreateOrUpdateTags", "ec2:RunInstances", "iam:PassRole",
        "ec2:ModifyInstanceMetadataOptions", "autoscaling:StartInstanceRefresh")

    def requested(self, existing, groups, user_data=None):
        return merge_metadata_options(
            existing, http_tokens=self.data.get("http-tokens", "required"),
            hop_limit=self.hop_limit(groups, existing, user_data),
            http_endpoint=self.data.get("http-endpoint", PRESERVE),
            instance_metadata_tags=self.data.get("metadata-tags", PRESERVE))

    # -- planning -----------------------------------------------------------------------

    def plan(self, asgs, ec2, autoscaling):
        """({(template id, source number): work}, failures, groups). Describe calls only."""
        groups = [a for a in self.eligible(current_groups(autoscaling, asgs))
                  if template_group_specs(a)]
        sources = LaunchSources.for_manager(self.manager, ec2, autoscaling).load(groups)
        work, failures = {}, {}
        for asg in groups:
            name = asg["AutoScalingGroupName"]
            if previous_template_launch(asg) is None:
                # no way back could be recorded: change nothing for this group
                failures[name] = ("its mixed instances policy names too many templates to "
                                  "record in the c7n-imds:previous-launch tag (256 "
                                  "characters), so it could not be reverted; remediate it "
                                  "by hand")
                continue
            needed = []
            for spec in template_group_specs(asg):
                version = sources.template_version(spec)
                if version is None:
                    failures[name] = ("launch template %s version %s no longer exists; "
                                      "point the group at a valid version first" % (
                                          spec.get("LaunchTemplateId") or
                                          spec.get("LaunchTemplateName"), spec["Version"]))
                    break
                data = version.get("LaunchTemplateData") or {}
                existing = data.get("MetadataOptions")
                unchanged = merge_metadata_options(existing, http_tokens=PRESERVE)
                if self.requested(existing, [asg], data.get("UserData")) != unchanged:
                    needed.append((spec, version))
            else:
                for spec, version in needed:
                    key = (version["LaunchTemplateId"], version["VersionNumber"])
                    item = work.setdefault(key, {"Source": version, "Groups": []})
                    item["Groups"].append((asg, spec))
                    if spec["Version"] == "$Latest":
                        item["FollowedAsLatest"] = True
        return work, failures

    def preview(self, asgs):
        """What `process` would create: one version per (template, source version)."""
        ec2, autoscaling = self.clients()
        work, failures = self.plan(asgs, ec2, autoscaling)
        versions = []
        for (template_id, number), item in sorted(work.items()):
            data = item["Source"].get("LaunchTemplateData") or {}
            groups = [asg for asg, _ in item["Groups"]]
            versions.append({
                "LaunchTemplateId": template_id,
                "LaunchTemplateName": item["Source"].get("LaunchTemplateName"),
                "SourceVersion": number,
                "MakeDefault": bool(item["Source"].get("DefaultVersion")) and
                self.data.get("set-default", True),
                "MetadataOptions": self.requested(
                    data.get("MetadataOptions"), groups, data.get("UserData")),
                "Groups": [asg["AutoScalingGroupName"] for asg in groups]})
        return {"Versions": versions, "Failures": failures, "Skipped": list(self.skipped)}

    # -- execution ----------------------------------------------------------------------

    def process(self, asgs):
        ec2, autoscaling = self.clients()
        work, failures = self.plan(asgs, ec2, autoscaling)
        self.guard_shared_templates(work, template_followers(autoscaling, work), failures)
        self.check_before_creating(ec2, work, failures)
        new_versions = {}
        # Per template, the version followed as $Latest is derived last, so that its
        # derivative ends up the latest.
        for key in sorted(work, key=lambda k: (k[0], bool(work[k].get("FollowedAsLatest")),
                                               k[1])):
            item = work[key]
            if any(asg["AutoScalingGroupName"] in failures for asg, _ in item["Groups"]):
                continue
            try:
                new_versions[key] = self.ensure_version(
                    ec2, item["Source"], [asg for asg, _ in item["Groups"]])
            except AWS_ERRORS as e:
                for asg, _ in item["Groups"]:
                    failures[asg["AutoScalingGroupName"]] = \
                        "creating a version of launch template %s from version %s: %s" % (
                            key[0], key[1], describe_error(e))
        results, switched = self.apply(ec2, autoscaling, work, new_versions, failures)
        results = list(self.skipped) + results
        metadata = {}
        for key, item in work.items():
            if key in new_versions:
                options = (new_versions[key].get("LaunchTemplateData") or {}).get(
                    "MetadataOptions") or {}
                for asg, _ in item["Groups"]:
                    metadata.setdefault(asg["AutoScalingGroupName"], options)
        self.update_running_instances(ec2, autoscaling, switched, results, failures,
                                      uses_template=True, metadata=metadata)
        return self.finish(results, failures)

    def guard_shared_templates(self, work, followers, failures):
        """A template is shared with groups this run does not change (exempt, held
        back, compliant, filtered out). A new version becomes every follower's $Latest,
        so a template followed as $Latest by such a group is refused; and its $Default
        is not moved under such a group - this run's groups are pinned to the new
        version instead."""
        in_run = {}
        for (template_id, _), item in work.items():
            for asg, spec in item["Groups"]:
                in_run.setdefault(template_id, set()).add(
                    (asg["AutoScalingGroupName"], spec["Version"]))
        for key, item in work.items():
            template_id = key[0]
            following = followers.get(template_id, {})
            latest_outside = sorted(following.get("$Latest", set()) - {
                name for name, version in in_run[template_id] if version == "$Latest"})
            if latest_outside:
                for asg, _ in item["Groups"]:
                    failures[asg["AutoScalingGroupName"]] = (
                        "launch template %s is followed as $Latest by %s, which this run "
                        "does not change; a new version would change what they launch. "
                        "Pin them to a version number or remediate them in the same run"
                        % (template_id, ", ".join(latest_outside)))
                continue
            default_outside = sorted(following.get("$Default", set()) - {
                name for name, version in in_run[template_id] if version == "$Default"})
            if item["Source"].get("DefaultVersion") and default_outside:
                log.warning("launch template %s: default version %s kept because %s "
                            "follow it and are not changed by this run; this run's groups "
                            "are pinned to the new version instead", template_id, key[1],
                            ", ".join(default_outside))
                item["DefaultOutsiders"] = default_outside

    def check_before_creating(self, ec2, work, failures):
        """RunInstances DryRun with each source version and the new metadata options, so
        nothing is created - not even a $Latest - that EC2 would refuse. A version shared
        by groups goes live for all of them or for none."""
        for key, item in sorted(work.items()):
            data = item["Source"].get("LaunchTemplateData") or {}
            groups = [asg for asg, _ in item["Groups"]]
            metadata = self.requested(data.get("MetadataOptions"), groups, data.get("UserData"))
            names = [asg["AutoScalingGroupName"] for asg in groups]
            if any(n in failures for n in names):
                refused = {}
            else:
                refused = {asg["AutoScalingGroupName"]: self.preflight(
                    ec2, asg, key[0], key[1], data, metadata_options=metadata)
                    for asg in groups}
                refused = {n: r for n, r in refused.items() if r}
            if refused or any(n in failures for n in names):
                for name in names:
                    failures[name] = refused.get(name) or failures.get(name) or (
                        "not changed: another group sharing launch template %s version "
                        "%s failed" % key)

    def ensure_version(self, ec2, source, groups):
        """The new version for a source version: reused if an earlier run made it."""
        template_id, number = source["LaunchTemplateId"], source["VersionNumber"]
        data = source.get("LaunchTemplateData") or {}
        metadata = self.requested(data.get("MetadataOptions"), groups, data.get("UserData"))
        description = derived_version_description(number, metadata)
        paginator = ec2.get_paginator("describe_launch_template_versions")
        pages = retry(lambda: list(paginator.paginate(
            LaunchTemplateId=template_id, MinVersion=str(number + 1),
            PaginationConfig={"PageSize": 200})))
        for version in (v for page in pages for v in page["LaunchTemplateVersions"]):
            if version.get("VersionDescription") == description:
                return version
        version = retry(
            ec2.create_launch_template_version, LaunchTemplateId=template_id,
            SourceVersion=str(number), VersionDescription=description,
            # Runs racing on the same source version (overlapping schedules) create
            # it once: the token makes the retried or repeated create idempotent.
            ClientToken=client_token("%s:%s:%s" % (template_id, number, description)),
            LaunchTemplateData={"MetadataOptions": metadata})["LaunchTemplateVersion"]
        log.info("launch template %s: version %s created from version %s with metadata "
                 "options %s", template_id, version["VersionNumber"], number,
                 json.dumps(metadata, sort_keys=True))
        # What the version launches is the source's data with the new options; AWS
        # merges SourceVersion, but keep the source data for the pre-flight check.
        version.setdefault("LaunchTemplateData", dict(
            source.get("LaunchTemplateData") or {}, MetadataOptions=metadata))
        return version

    def apply(self, ec2, autoscaling, work, new_versions, failures):
        results, switched, group_specs, defaults = [], {}, {}, []
        for key, item in sorted(work.items()):
            new = new_versions.get(key)
            if new is None:
                continue
            names = [asg["AutoScalingGroupName"] for asg, _ in item["Groups"]]
            for asg, spec in item["Groups"]:
                if spec["Version"] == "$Default" and item.get("DefaultOutsiders"):
                    spec = dict(spec, PinInstead=True)
                elif spec["Version"] == "$Default" and not self.data.get("set-default", True):
                    # The default stays where it is, so this group launches as before.
                    continue
                group_specs.setdefault(asg["AutoScalingGroupName"], (asg, []))[1].append(
                    (spec, new))
            if item["Source"].get("DefaultVersion") and not item.get("DefaultOutsiders"):
                defaults.append((key, new, names))
        for name, (asg, _) in sorted(group_specs.items()):
            try:
                self.record_previous_launch(autoscaling, name, previous_template_launch(asg))
            except AWS_ERRORS as e:
                failures[name] = "tagging the group: %s" % describe_error(e)
        for (template_id, number), new, names in defaults:
            if not self.data.get("set-default", True):
                log.warning("launch template %s: default version %s left as it is "
                            "(set-default: false); groups following $Default keep it",
                            template_id, number)
                continue
            try:
                retry(ec2.modify_launch_template, LaunchTemplateId=template_id,
                      DefaultVersion=str(new["VersionNumber"]))
                log.info("launch template %s: default version %s -> %s", template_id,
                         number, new["VersionNumber"])
            except AWS_ERRORS as e:
                for name in names:
                    failures[name] = "setting the default version of %s: %s" % (
                        template_id, describe_error(e))
                    group_specs.pop(name, None)
        for name, (asg, specs) in sorted(group_specs.items()):
            if name in failures:
                continue
            try:
                self.point_group(autoscaling, asg, specs)
            except AWS_ERRORS as e:
                failures[name] = "pointing the group at the new version: %s" % (
                    describe_error(e))
                continue
            switched[name] = asg
            results.append({"AutoScalingGroupName": name, "Versions": [
                {"LaunchTemplateId": new["LaunchTemplateId"], "From": spec["Version"],
                 "VersionNumber": new["VersionNumber"]} for spec, new in specs]})
        return results, list(switched.values())

    def point_group(self, autoscaling, asg, specs):
        """Point pinned specs at the new version numbers."""
        name = asg["AutoScalingGroupName"]
        pinned = {(s.get("LaunchTemplateId") or new["LaunchTemplateId"], s["Version"]): new
                  for s, new in specs
                  if s["Version"] not in ("$Default", "$Latest") or s.get("PinInstead")}
        update = repoint(asg, pinned)
        if update:
            retry(autoscaling.update_auto_scaling_group, AutoScalingGroupName=name, **update)
        for spec, new in specs:
            log.info("asg %s: launch template %s %s -> version %s (%s)", name,
                     new["LaunchTemplateId"], spec["Version"], new["VersionNumber"],
                     "pinned" if spec.get("PinInstead") else
                     "pointed" if spec["Version"] not in ("$Default", "$Latest")
                     else "follows " + spec["Version"])


def template_followers(autoscaling, work):
    """{template id: {"$Default": {groups}, "$Latest": {groups}}} over every group in the
    region, read fresh, for the templates this run would give a new version."""
    wanted = {template_id for template_id, _ in work}
    followers = {}
    if not wanted:
        return followers
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate(
            PaginationConfig={"PageSize": 100}):
        for asg in page["AutoScalingGroups"]:
            for spec in template_group_specs(asg):
                if spec.get("LaunchTemplateId") in wanted and spec["Version"] in (
                        "$Default", "$Latest"):
                    followers.setdefault(spec["LaunchTemplateId"], {}).setdefault(
                        spec["Version"], set()).add(asg["AutoScalingGroupName"])
    return followers


def previous_template_launch(asg):
    """Tag value for a template group's launch, or None when it will not fit."""
    launch_type, refs = launch_references(asg)
    if launch_type == LAUNCH_TEMPLATE:
        return encode_previous_launch(
            {"LaunchTemplateId": refs[0]["LaunchTemplateId"], "Version": refs[0]["Version"]})
    return encode_previous_mixed_launch(refs)


def repoint(asg, pinned):
    """UpdateAutoScalingGroup parameters pointing pinned specs at new version numbers,
    or {} when the group follows $Default/$Latest only. A mixed instances policy is
    sent whole: UpdateAutoScalingGroup replaces it."""
    def updated(spec):
        key = (spec.get("LaunchTemplateId"), str(spec.get("Version") or "$Default"))
        if key in pinned:
            return {"LaunchTemplateId": key[0],
                    "Version": str(pinned[key]["VersionNumber"])}, True
        return {"LaunchTemplateId": spec.get("LaunchTemplateId"),
                "Version": str(spec.get("Version") or "$Default")}, False

    if not pinned:
        return {}
    if asg.get("MixedInstancesPolicy"):
        policy = copy.deepcopy(asg["MixedInstancesPolicy"])
        lt = policy["LaunchTemplate"]
        lt["LaunchTemplateSpecification"], changed = updated(lt["LaunchTemplateSpecification"])
        for override in lt.get("Overrides") or ():
            if override.get("LaunchTemplateSpecification"):
                override["LaunchTemplateSpecification"], more = updated(
                    override["LaunchTemplateSpecification"])
                changed = changed or more
        return {"MixedInstancesPolicy": policy} if changed else {}
    spec, changed = updated(asg["LaunchTemplate"])
    return {"LaunchTemplate": spec} if changed else {}
