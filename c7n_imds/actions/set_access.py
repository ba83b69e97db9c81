"""`set-metadata-access`: launch-template groups get a new template version with the
requested metadata options."""
import copy
import json
import logging

from botocore.exceptions import ClientError
from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import (
    HOP_LIMIT_SCHEMA,
    HTTP_ENDPOINT_SCHEMA,
    IAC_MANAGED_SCHEMA,
    REFRESH_PREFERENCES_SCHEMA,
    RUNNING_INSTANCES_SCHEMA,
)
from c7n_imds.aws import AWS_ERRORS, all_groups, describe_error, retry, tags_of
from c7n_imds.model.launch_source import launch_references
from c7n_imds.model.provenance import (
    client_token,
    derived_version_description,
    encode_previous_launch,
    encode_previous_mixed_launch,
    parse_derived_version_description,
)
from c7n_imds.model.translate import merge_metadata_options
from c7n_imds.model.verify import (
    CannotCarry,
    block_device_mappings_request,
    expected_version_data,
    warning_messages,
)
from c7n_imds.names import (
    LAUNCH_TEMPLATE,
    MIXED_INSTANCES_POLICY,
    PRESERVE,
    PREVIOUS_LAUNCH_TAG,
    VERSION_NOT_FOUND,
)
from c7n_imds.sources import LaunchSources

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
    not already have the requested options, a new version is created from it with
    ``SourceVersion``, the options merged into its existing metadata options and sent
    whole, and its block device mappings sent again: AWS drops every inherited EBS
    ``SnapshotId`` from a new version unless the mappings are given explicitly. Each
    (template, version) pair is handled once, however many groups share it.

    Nothing launches from the new version before it is proven: c7n-imds describes the
    version AWS stored and compares it field by field with the source version plus the
    requested options (docs/readback.md lists the few normalisations accepted), treats
    a ``Warning`` in AWS's answer the same way, and then runs a ``RunInstances`` DryRun
    with the stored version as each group would launch it - in a mixed instances
    policy with an instance type (and image) of the template's own override, a
    concrete type for attribute-based templates, and the template's network
    interfaces whole (``verify``, on by default). A version that fails is deleted again
    (so groups following ``$Latest`` never launch from it), its groups are left
    unchanged and the run reports the differing fields.

    The new version becomes the template's default when it was made from the default
    version (AWS Config's check behind EC2.170 judges the default version), unless
    ``set-default: false``. Groups pinned to a version number are pointed at the new
    number; groups following ``$Default`` or ``$Latest`` launch from it without further
    change. Groups already compliant are left alone, and a re-run changes nothing:
    a version created by an earlier, interrupted run is found by its description,
    verified and reused; a group following ``$Latest`` whose run stopped before the
    default moved is found by the ``imds`` key ``RemediationPending``. Each group is
    tagged ``c7n-imds:previous-launch`` so it can be reverted.

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
        "ec2:DeleteLaunchTemplateVersions", "ec2:ModifyLaunchTemplate",
        "autoscaling:UpdateAutoScalingGroup", "autoscaling:CreateOrUpdateTags",
        # AWS checks these when a group is pointed at a version.
        "ec2:RunInstances", "iam:PassRole")
    # Attribute-based templates get a concrete instance type for the DryRun, from the
    # architecture of their image (which may be named by an SSM parameter).
    verify_permissions = ("ec2:RunInstances", "ec2:DescribeImages",
                          "ec2:GetInstanceTypesFromInstanceRequirements",
                          "ssm:GetParameters")

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
                if sources.remediation_pending(spec, version, asg):
                    # An earlier run stopped half-way: finish from the version ours was
                    # derived from (the derived one is found again and verified).
                    version = self.derived_source(sources, version)
                    if version is None:
                        failures[name] = (
                            "an earlier run derived launch template %s version %s for "
                            "this group, but its source version no longer exists; point "
                            "the group at a valid version" % (
                                spec.get("LaunchTemplateId"), spec["Version"]))
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
        for item in work.values():
            data = item["Source"].get("LaunchTemplateData") or {}
            item["Metadata"] = self.requested(
                data.get("MetadataOptions"), [asg for asg, _ in item["Groups"]],
                data.get("UserData"))
        return work, failures

    @staticmethod
    def derived_source(sources, version):
        """The version a c7n-imds version was derived from (loaded when needed)."""
        number, _ = parse_derived_version_description(version["VersionDescription"])
        spec = {"LaunchTemplateId": version["LaunchTemplateId"], "Version": str(number)}
        if sources.template_version(spec) is None:
            sources.load_template_versions([spec])
        return sources.template_version(spec)

    def preview(self, asgs):
        """What `process` would create: one version per (template, source version)."""
        ec2, autoscaling = self.clients()
        work, failures = self.plan(asgs, ec2, autoscaling)
        versions = []
        for (template_id, number), item in sorted(work.items()):
            groups = [asg for asg, _ in item["Groups"]]
            versions.append({
                "LaunchTemplateId": template_id,
                "LaunchTemplateName": item["Source"].get("LaunchTemplateName"),
                "SourceVersion": number,
                "MakeDefault": bool(item["Source"].get("DefaultVersion")) and
                self.data.get("set-default", True),
                "MetadataOptions": item["Metadata"],
                "Groups": [asg["AutoScalingGroupName"] for asg in groups]})
        return {"Versions": versions, "Failures": failures, "Skipped": list(self.skipped)}

    # -- execution ----------------------------------------------------------------------

    def process(self, asgs):
        ec2, autoscaling = self.clients()
        work, failures = self.plan(asgs, ec2, autoscaling)
        followers = template_followers(autoscaling, work)
        self.guard_shared_templates(work, followers, failures)
        new_versions = self.make_versions(ec2, work, followers, failures)
        results, switched = self.apply(ec2, autoscaling, work, new_versions, followers,
                                       failures)
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

    def make_versions(self, ec2, work, followers, failures):
        """{(template id, source number): new version}, each one read back and
        pre-flighted before anything can switch to it. A version that fails is
        withdrawn (deleted) so that nothing launches from it - not even the groups that
        follow $Latest - and its groups fail with the reason."""
        new_versions = {}
        # Per template, the version followed as $Latest is derived last, so that its
        # derivative ends up the latest.
        for key in sorted(work, key=lambda k: (k[0], bool(work[k].get("FollowedAsLatest")),
                                               k[1])):
            item = work[key]
            names = [asg["AutoScalingGroupName"] for asg, _ in item["Groups"]]
            if any(n in failures for n in names):
                for name in names:
                    failures.setdefault(name, "not changed: another group sharing launch "
                                        "template %s version %s failed" % key)
                continue
            try:
                version, problem = self.verified_version(ec2, item, followers)
            except AWS_ERRORS + (CannotCarry,) as e:
                version, problem = None, (
                    "creating a version of launch template %s from version %s: %s" % (
                        key[0], key[1], describe_error(e)))
            if version is not None:
                new_versions[key] = version
                continue
            for name in names:
                failures[name] = problem
            if any(w.get("FollowedAsLatest") for k, w in work.items() if k[0] == key[0]):
                # The template's $Latest must stay what its followers launched.
                self.take_back(ec2, key[0], work, new_versions, followers, failures,
                               "the new version of launch template %s for the groups that "
                               "follow $Latest failed (%s)" % (key[0], problem))
        self.settle(ec2, work, new_versions, followers, failures)
        return new_versions

    def all_or_none(self, item):
        """Whether a new version goes live for every group sharing it at once: it
        becomes their $Latest, or it becomes the template's default."""
        return bool(item.get("FollowedAsLatest")) or bool(
            item["Source"].get("DefaultVersion") and self.data.get("set-default", True)
            and not item.get("DefaultOutsiders"))

    def settle(self, ec2, work, new_versions, followers, failures):
        """A group changes completely or not at all, and a version that goes live for
        all groups sharing it goes live for all of them or for none: while a group of
        such a version has failed (another of its templates, its tag), the version is
        not used, and a version that is already its followers' $Latest is taken back."""
        while True:
            broken = [key for key in sorted(new_versions) if self.all_or_none(work[key]) and
                      any(asg["AutoScalingGroupName"] in failures
                          for asg, _ in work[key]["Groups"])]
            if not broken:
                return
            for key in broken:
                if key not in new_versions:
                    continue  # taken back with another version of its template
                failed = sorted(asg["AutoScalingGroupName"] for asg, _ in work[key]["Groups"]
                                if asg["AutoScalingGroupName"] in failures)
                reason = "group %s, which shares launch template %s version %s, failed" % (
                    failed[0], key[0], new_versions[key]["VersionNumber"])
                if work[key].get("FollowedAsLatest"):
                    self.take_back(ec2, key[0], work, new_versions, followers, failures,
                                   reason)
                    continue
                del new_versions[key]  # unused: a later run finds and verifies it again
                for asg, _ in work[key]["Groups"]:
                    failures.setdefault(asg["AutoScalingGroupName"],
                                        "not changed: %s" % reason)

    def take_back(self, ec2, template_id, work, new_versions, followers, failures, reason):
        """Withdraw every version this run made of a template, so that its $Latest is
        again what its followers launched, and fail the groups they were for."""
        for key in [k for k in sorted(new_versions, reverse=True) if k[0] == template_id]:
            self.withdraw(ec2, new_versions.pop(key), followers)
            for asg, _ in work[key]["Groups"]:
                failures.setdefault(asg["AutoScalingGroupName"], (
                    "not changed: %s, so this run's versions of launch template %s were "
                    "withdrawn" % (reason, template_id)))

    def verified_version(self, ec2, item, followers):
        """(version, None) once a new version for the item is stored as intended and
        EC2 would launch every group of the item from it, else (None, reason). A
        version an earlier run left that fails the check is withdrawn and made anew."""
        version, created, warnings = self.ensure_version(ec2, item)
        problem = self.check_version(ec2, item, version, warnings)
        if problem and not created and self.withdraw(ec2, version, followers):
            log.warning("launch template %s: version %s left by an earlier run failed its "
                        "check (%s); withdrawn and made again", version["LaunchTemplateId"],
                        version["VersionNumber"], problem)
            version, created, warnings = self.ensure_version(ec2, item)
            problem = self.check_version(ec2, item, version, warnings)
        if problem:
            if created:
                self.withdraw(ec2, version, followers)
            return None, problem
        return version, None

    def check_version(self, ec2, item, version, warnings):
        """The read-back (``version`` as described after its create, or as an earlier
        run left it), then the pre-flight: None, or why no group may use it."""
        source = item["Source"]
        template_id, number = version["LaunchTemplateId"], version["VersionNumber"]
        problem = self.stored_problem(
            "launch template %s version %s (made from version %s)" % (
                template_id, number, source["VersionNumber"]),
            expected_version_data(source.get("LaunchTemplateData"), item["Metadata"]),
            version.get("LaunchTemplateData"), warnings,
            [asg["AutoScalingGroupName"] for asg, _ in item["Groups"]])
        if problem:
            return problem
        data = version.get("LaunchTemplateData") or {}
        for asg, spec in item["Groups"]:
            refused = self.preflight(ec2, asg, spec, template_id, number, data)
            if refused:
                return refused
        return None

    def withdraw(self, ec2, version, followers):
        """Delete a version of ours that failed its check, unless it is the default or a
        group is pinned to it; True when it is gone."""
        template_id, number = version["LaunchTemplateId"], version["VersionNumber"]
        pinned = followers.get(template_id, {}).get(str(number))
        if version.get("DefaultVersion") or pinned:
            log.warning("launch template %s: version %s failed its check but is kept: %s",
                        template_id, number, "it is the default" if not pinned else
                        "groups %s are pinned to it" % ", ".join(sorted(pinned)))
            return False
        try:
            answer = retry(ec2.delete_launch_template_versions, LaunchTemplateId=template_id,
                           Versions=[str(number)])
        except AWS_ERRORS as e:
            log.error("launch template %s: version %s failed its check and could not be "
                      "deleted (%s); delete it by hand", template_id, number,
                      describe_error(e))
            return False
        if answer.get("UnsuccessfullyDeletedLaunchTemplateVersions"):
            log.error("launch template %s: version %s failed its check and could not be "
                      "deleted (%s); delete it by hand", template_id, number, json.dumps(
                          answer["UnsuccessfullyDeletedLaunchTemplateVersions"], default=str))
            return False
        log.warning("launch template %s: version %s failed its check and was deleted",
                    template_id, number)
        return True

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

    def ensure_version(self, ec2, item):
        """(version, created, warnings): the new version for a source version, reused if
        an earlier run made it (found by its description)."""
        source = item["Source"]
        template_id, number = source["LaunchTemplateId"], source["VersionNumber"]
        data = source.get("LaunchTemplateData") or {}
        description = derived_version_description(number, item["Metadata"])
        paginator = ec2.get_paginator("describe_launch_template_versions")
        pages = retry(lambda: list(paginator.paginate(
            LaunchTemplateId=template_id, MinVersion=str(number + 1),
            PaginationConfig={"PageSize": 200})))
        for version in (v for page in pages for v in page["LaunchTemplateVersions"]):
            if version.get("VersionDescription") == description:
                return version, False, []
        # SourceVersion inherits every parameter but block-device snapshots, which AWS
        # drops unless they are sent again: send the mappings whenever there are any,
        # and the metadata options whole.
        launch_template_data = {"MetadataOptions": item["Metadata"]}
        if data.get("BlockDeviceMappings"):
            launch_template_data["BlockDeviceMappings"] = block_device_mappings_request(
                data["BlockDeviceMappings"], "launch template %s version %s" % (
                    template_id, number))
        return self.create_version(ec2, template_id, number, description,
                                   launch_template_data)

    def create_version(self, ec2, template_id, number, description, launch_template_data,
                       stale=None):
        response = retry(
            ec2.create_launch_template_version, LaunchTemplateId=template_id,
            SourceVersion=str(number), VersionDescription=description,
            # Runs racing on the same source version (overlapping schedules) create
            # it once: the token makes the retried or repeated create idempotent.
            ClientToken=client_token(json.dumps(
                [template_id, number, description, stale], sort_keys=True)),
            LaunchTemplateData=launch_template_data)
        created = response["LaunchTemplateVersion"]
        try:
            # What AWS stored, not what it answered: describe exactly that version.
            version = retry(
                ec2.describe_launch_template_versions, LaunchTemplateId=template_id,
                Versions=[str(created["VersionNumber"])])["LaunchTemplateVersions"][0]
        except ClientError as e:
            if e.response["Error"]["Code"] not in VERSION_NOT_FOUND or stale:
                raise
            # The token matched an earlier create of a version deleted since (AWS
            # answers a repeated token with the original answer): create it anew.
            return self.create_version(ec2, template_id, number, description,
                                       launch_template_data, stale=created["VersionNumber"])
        log.info("launch template %s: version %s created from version %s with metadata "
                 "options %s", template_id, version["VersionNumber"], number,
                 json.dumps(launch_template_data["MetadataOptions"], sort_keys=True))
        return version, True, warning_messages(response)

    def apply(self, ec2, autoscaling, work, new_versions, followers, failures):
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
            if name in failures or tags_of(asg).get(
                    PREVIOUS_LAUNCH_TAG) == previous_template_launch(asg):
                continue  # failed, or recorded by an earlier, interrupted run
            try:
                self.record_previous_launch(autoscaling, name, previous_template_launch(asg))
            except AWS_ERRORS as e:
                failures[name] = "tagging the group: %s" % describe_error(e)
        # a group whose tag could not be written must not change with a default
        self.settle(ec2, work, new_versions, followers, failures)
        for (template_id, number), new, names in defaults:
            if (template_id, number) not in new_versions:
                continue
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
    """{template id: {version ("$Default", "$Latest" or a number): {groups}}} over every
    group in the region, read fresh, for the templates this run would give a new
    version."""
    wanted = {template_id for template_id, _ in work}
    followers = {}
    if not wanted:
        return followers
    for asg in all_groups(autoscaling):
        for spec in template_group_specs(asg):
            if spec.get("LaunchTemplateId") in wanted:
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
