"""Making new template versions that are proven before anything launches from them:
created (or found again), read back, pre-flighted, and withdrawn when they fail - used
by `set-metadata-access`."""

import json
import logging

from botocore.exceptions import ClientError

from c7n_imds.aws import AWS_ERRORS, describe_error, retry
from c7n_imds.model.provenance import client_token, derived_version_description
from c7n_imds.model.verify import (
    CannotCarry,
    block_device_mappings_request,
    expected_version_data,
    warning_messages,
)
from c7n_imds.names import VERSION_NOT_FOUND

log = logging.getLogger("custodian.c7n_imds.actions")


class VersionMaking:
    """The version lifecycle of `set-metadata-access` (mixed into the action)."""

    def make_versions(self, ec2, work, followers, failures):
        """{(template id, source number): new version}, each one read back and
        pre-flighted before anything can switch to it. A version that fails is
        withdrawn (deleted) so that nothing launches from it - not even the groups that
        follow $Latest - and its groups fail with the reason."""
        new_versions = {}
        # Per template, the version followed as $Latest is derived last, so that its
        # derivative ends up the latest.
        ordered = sorted(work, key=lambda k: (k[0], bool(work[k].followed_as_latest), k[1]))
        for key in self.progress.each(ordered, lambda key: len(work[key].groups)):
            item = work[key]
            names = [asg["AutoScalingGroupName"] for asg, _ in item.groups]
            if any(n in failures for n in names):
                for name in names:
                    failures.setdefault(
                        name,
                        "not changed: another group sharing launch "
                        "template %s version %s failed" % key,
                    )
                continue
            try:
                version, problem = self.verified_version(ec2, item, followers)
            except AWS_ERRORS + (CannotCarry,) as e:
                version, problem = (
                    None,
                    (
                        "creating a version of launch template %s from version %s: %s"
                        % (key[0], key[1], describe_error(e))
                    ),
                )
            if version is not None:
                new_versions[key] = version
                continue
            for name in names:
                failures[name] = problem
            if any(w.followed_as_latest for k, w in work.items() if k[0] == key[0]):
                # The template's $Latest must stay what its followers launched.
                self.take_back(
                    ec2,
                    key[0],
                    work,
                    new_versions,
                    followers,
                    failures,
                    "the new version of launch template %s for the groups that "
                    "follow $Latest failed (%s)" % (key[0], problem),
                )
        self.settle(ec2, work, new_versions, followers, failures)
        return new_versions

    def all_or_none(self, item):
        """Whether a new version goes live for every group sharing it at once: it
        becomes their $Latest, or it becomes the template's default."""
        return bool(item.followed_as_latest) or bool(
            item.source.get("DefaultVersion")
            and self.options.set_default
            and not item.default_outsiders
        )

    def settle(self, ec2, work, new_versions, followers, failures):
        """A group changes completely or not at all, and a version that goes live for
        all groups sharing it goes live for all of them or for none: while a group of
        such a version has failed (another of its templates, its tag), the version is
        not used, and a version that is already its followers' $Latest is taken back."""
        while True:
            broken = [
                key
                for key in sorted(new_versions)
                if self.all_or_none(work[key])
                and any(asg["AutoScalingGroupName"] in failures for asg, _ in work[key].groups)
            ]
            if not broken:
                return
            for key in broken:
                if key not in new_versions:
                    continue  # taken back with another version of its template
                failed = sorted(
                    asg["AutoScalingGroupName"]
                    for asg, _ in work[key].groups
                    if asg["AutoScalingGroupName"] in failures
                )
                reason = "group %s, which shares launch template %s version %s, failed" % (
                    failed[0],
                    key[0],
                    new_versions[key]["VersionNumber"],
                )
                if work[key].followed_as_latest:
                    self.take_back(ec2, key[0], work, new_versions, followers, failures, reason)
                    continue
                del new_versions[key]  # unused: a later run finds and verifies it again
                for asg, _ in work[key].groups:
                    failures.setdefault(asg["AutoScalingGroupName"], "not changed: %s" % reason)

    def take_back(self, ec2, template_id, work, new_versions, followers, failures, reason):
        """Withdraw every version this run made of a template, so that its $Latest is
        again what its followers launched, and fail the groups they were for."""
        for key in [k for k in sorted(new_versions, reverse=True) if k[0] == template_id]:
            self.withdraw(ec2, new_versions.pop(key), followers)
            for asg, _ in work[key].groups:
                failures.setdefault(
                    asg["AutoScalingGroupName"],
                    (
                        "not changed: %s, so this run's versions of launch template %s were "
                        "withdrawn" % (reason, template_id)
                    ),
                )

    def verified_version(self, ec2, item, followers):
        """(version, None) once a new version for the item is stored as intended and
        EC2 would launch every group of the item from it, else (None, reason). A
        version an earlier run left that fails the check is withdrawn and made anew."""
        version, created, warnings = self.ensure_version(ec2, item)
        problem = self.check_version(ec2, item, version, warnings)
        if problem and not created and self.withdraw(ec2, version, followers):
            log.warning(
                "launch template %s: version %s left by an earlier run failed its "
                "check (%s); withdrawn and made again",
                version["LaunchTemplateId"],
                version["VersionNumber"],
                problem,
            )
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
        source = item.source
        template_id, number = version["LaunchTemplateId"], version["VersionNumber"]
        problem = self.stored_problem(
            "launch template %s version %s (made from version %s)"
            % (template_id, number, source["VersionNumber"]),
            expected_version_data(source.get("LaunchTemplateData"), item.metadata_options),
            version.get("LaunchTemplateData"),
            warnings,
            [asg["AutoScalingGroupName"] for asg, _ in item.groups],
        )
        if problem:
            return problem
        data = version.get("LaunchTemplateData") or {}
        for asg, spec in item.groups:
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
            log.warning(
                "launch template %s: version %s failed its check but is kept: %s",
                template_id,
                number,
                "it is the default"
                if not pinned
                else "groups %s are pinned to it" % ", ".join(sorted(pinned)),
            )
            return False
        try:
            answer = retry(
                ec2.delete_launch_template_versions,
                LaunchTemplateId=template_id,
                Versions=[str(number)],
            )
        except AWS_ERRORS as e:
            log.error(
                "launch template %s: version %s failed its check and could not be "
                "deleted (%s); delete it by hand",
                template_id,
                number,
                describe_error(e),
            )
            return False
        if answer.get("UnsuccessfullyDeletedLaunchTemplateVersions"):
            log.error(
                "launch template %s: version %s failed its check and could not be "
                "deleted (%s); delete it by hand",
                template_id,
                number,
                json.dumps(answer["UnsuccessfullyDeletedLaunchTemplateVersions"], default=str),
            )
            return False
        log.warning(
            "launch template %s: version %s failed its check and was deleted", template_id, number
        )
        return True

    def ensure_version(self, ec2, item):
        """(version, created, warnings): the new version for a source version, reused if
        an earlier run made it (found by its description)."""
        source = item.source
        template_id, number = source["LaunchTemplateId"], source["VersionNumber"]
        data = source.get("LaunchTemplateData") or {}
        description = derived_version_description(number, item.metadata_options)
        paginator = ec2.get_paginator("describe_launch_template_versions")
        pages = retry(
            lambda: list(
                paginator.paginate(
                    LaunchTemplateId=template_id,
                    MinVersion=str(number + 1),
                    PaginationConfig={"PageSize": 200},
                )
            )
        )
        for version in (v for page in pages for v in page["LaunchTemplateVersions"]):
            if version.get("VersionDescription") == description:
                return version, False, []
        # SourceVersion inherits every parameter but block-device snapshots, which AWS
        # drops unless they are sent again: send the mappings whenever there are any,
        # and the metadata options whole.
        launch_template_data = {"MetadataOptions": item.metadata_options}
        if data.get("BlockDeviceMappings"):
            launch_template_data["BlockDeviceMappings"] = block_device_mappings_request(
                data["BlockDeviceMappings"], "launch template %s version %s" % (template_id, number)
            )
        return self.create_version(ec2, template_id, number, description, launch_template_data)

    def create_version(
        self, ec2, template_id, number, description, launch_template_data, stale=None
    ):
        response = retry(
            ec2.create_launch_template_version,
            LaunchTemplateId=template_id,
            SourceVersion=str(number),
            VersionDescription=description,
            # Runs racing on the same source version (overlapping schedules) create
            # it once: the token makes the retried or repeated create idempotent.
            ClientToken=client_token(
                json.dumps([template_id, number, description, stale], sort_keys=True)
            ),
            LaunchTemplateData=launch_template_data,
        )
        created = response["LaunchTemplateVersion"]
        try:
            # What AWS stored, not what it answered: describe exactly that version.
            version = retry(
                ec2.describe_launch_template_versions,
                LaunchTemplateId=template_id,
                Versions=[str(created["VersionNumber"])],
            )["LaunchTemplateVersions"][0]
        except ClientError as e:
            if e.response["Error"]["Code"] not in VERSION_NOT_FOUND or stale:
                raise
            # The token matched an earlier create of a version deleted since (AWS
            # answers a repeated token with the original answer): create it anew.
            return self.create_version(
                ec2,
                template_id,
                number,
                description,
                launch_template_data,
                stale=created["VersionNumber"],
            )
        log.info(
            "launch template %s: version %s created from version %s with metadata options %s",
            template_id,
            version["VersionNumber"],
            number,
            json.dumps(launch_template_data["MetadataOptions"], sort_keys=True),
        )
        return version, True, warning_messages(response)
