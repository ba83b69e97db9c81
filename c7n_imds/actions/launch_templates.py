"""Making the launch template of a converted configuration, proven before any group
switches to it: created (or found again, and checked to be ours), the version its
groups will follow described, and withdrawn when it fails - used by
`convert-to-launch-template`."""

import json
import logging

from botocore.exceptions import ClientError
from c7n.utils import chunks

from c7n_imds.actions.trust import Trusting
from c7n_imds.aws import AWS_ERRORS, describe_error, retry, tags_of
from c7n_imds.model.provenance import client_token, untrusted_creator
from c7n_imds.model.refusals import Refused
from c7n_imds.model.verify import differences, warning_messages
from c7n_imds.names import (
    SOURCE_CREATED_TAG,
    SOURCE_TAG,
    TEMPLATE_NAME_EXISTS,
    TEMPLATE_NOT_FOUND,
    VERSION_NOT_FOUND,
)

log = logging.getLogger("custodian.c7n_imds.actions")
TEMPLATE_NAMES_PER_CALL = 100
# A template or version the create just answered with is not there (a stale token).
CREATED_NOT_FOUND = TEMPLATE_NOT_FOUND[:1] + VERSION_NOT_FOUND


class TemplateRefused(Refused):
    """The plan's template cannot be used as it stands (not ours, not visible yet);
    the groups of that configuration are not changed."""


class TemplateMaking(Trusting):
    """The template lifecycle of `convert-to-launch-template` (mixed into the action)."""

    def existing_templates(self, ec2, names):
        """{name: DescribeLaunchTemplates item} for those of the names that exist."""
        found = {}
        paginator = ec2.get_paginator("describe_launch_templates")
        for batch in chunks(sorted(set(names)), TEMPLATE_NAMES_PER_CALL):
            pages = retry(
                lambda: list(
                    paginator.paginate(
                        Filters=[{"Name": "launch-template-name", "Values": batch}],
                        PaginationConfig={"PageSize": 200},
                    )
                )
            )
            for page in pages:
                found.update({t["LaunchTemplateName"]: t for t in page["LaunchTemplates"]})
        return found

    def ensure_template(self, ec2, plan, existing):
        """(template, stored version, created, warnings): the plan's template, created
        unless an earlier run already did, and the version its groups will follow as
        AWS stored it (described, not taken from the create's answer)."""
        name = plan.launch_template_name
        if name not in existing:
            try:
                return self.create_template(ec2, plan)
            except ClientError as e:
                # Another run created it between our look and our create.
                if e.response["Error"]["Code"] != TEMPLATE_NAME_EXISTS:
                    raise
                existing.update(self.existing_templates(ec2, [name]))
                if name not in existing:
                    raise TemplateRefused(
                        "launch template %s was created concurrently but is not visible "
                        "yet; run the policy again to finish" % name
                    )
        template = existing[name]
        if tags_of(template).get(SOURCE_TAG) != plan.launch_configuration_name:
            raise TemplateRefused(
                "a launch template named %s already exists and was not created by c7n-imds "
                "from this launch configuration; rename or delete it" % name
            )
        # Anyone may create a template of this name with our tags: only one a trusted
        # principal created is adopted (and then only if its content verifies).
        problem = untrusted_creator(
            "launch template %s (%s)" % (name, template["LaunchTemplateId"]),
            template.get("CreatedBy"),
            self.trusted_principals(),
        )
        if problem:
            raise TemplateRefused(
                "%s (trusted: %s); c7n-imds neither launches from it nor deletes it - "
                "delete it if nobody should use it, or name its creator in "
                "trusted-principals" % (problem, ", ".join(self.trusted_principals()) or "none")
            )
        return template, self.followed_version(ec2, template["LaunchTemplateId"]), False, []

    def create_template(self, ec2, plan, stale=None):
        data = plan.launch_template_data
        response = retry(
            ec2.create_launch_template,
            LaunchTemplateName=plan.launch_template_name,
            LaunchTemplateData=data,
            # The token covers the data too: a later run with other options, after the
            # template was deleted, must not meet IdempotentParameterMismatch.
            ClientToken=client_token(
                json.dumps([plan.launch_template_name, data, stale], sort_keys=True)
            ),
            VersionDescription="c7n-imds: from launch configuration, IMDSv2",
            TagSpecifications=[
                {
                    "ResourceType": "launch-template",
                    "Tags": [
                        {"Key": SOURCE_TAG, "Value": plan.launch_configuration_name},
                        {"Key": SOURCE_CREATED_TAG, "Value": plan.source_created},
                    ],
                }
            ],
        )
        template = response["LaunchTemplate"]
        try:
            stored = self.followed_version(ec2, template["LaunchTemplateId"])
        except ClientError as e:
            if e.response["Error"]["Code"] not in CREATED_NOT_FOUND or stale:
                raise
            # The token matched an earlier create of a template deleted since (AWS
            # answers a repeated token with the original answer): create it anew.
            return self.create_template(ec2, plan, stale=template["LaunchTemplateId"])
        log.info(
            "launch template %s (%s) created from launch configuration %r",
            plan.launch_template_name,
            template["LaunchTemplateId"],
            plan.launch_configuration_name,
        )
        return template, stored, True, warning_messages(response)

    def followed_version(self, ec2, template_id):
        """The template version the converted groups follow ($Default or $Latest)."""
        return retry(
            ec2.describe_launch_template_versions,
            LaunchTemplateId=template_id,
            Versions=[self.options.version],
        )["LaunchTemplateVersions"][0]

    @staticmethod
    def reuse_problem(plan, stored):
        """A clearer reason when an earlier run converted with other metadata options
        (http-tokens: preserve, another hop limit): never switch a group to settings
        it did not ask for. Only the options the product sets are compared."""
        wanted = plan.launch_template_data["MetadataOptions"]
        data = dict(stored.get("LaunchTemplateData") or {})
        if differences(
            dict(plan.launch_template_data, MetadataOptions={}), dict(data, MetadataOptions={})
        ):
            return None
        if not differences(
            {"MetadataOptions": wanted}, {"MetadataOptions": data.get("MetadataOptions")}
        ):
            return None
        return (
            "launch template %s, made from this configuration by an earlier run, has "
            "metadata options %s in version %s; this run asks for %s. Use "
            "set-metadata-access on the groups already on it, then run again"
            % (
                plan.launch_template_name,
                json.dumps(data.get("MetadataOptions") or {}, sort_keys=True),
                stored["VersionNumber"],
                json.dumps(wanted, sort_keys=True),
            )
        )

    def withdraw_template(self, ec2, template):
        """Delete a template this run created that no group may use: nothing else
        launches from it yet, and a re-run makes it anew."""
        try:
            retry(ec2.delete_launch_template, LaunchTemplateId=template["LaunchTemplateId"])
            log.warning(
                "launch template %s: failed its check; deleted", template["LaunchTemplateId"]
            )
        except AWS_ERRORS as e:
            log.error(
                "launch template %s failed its check and could not be deleted (%s); "
                "delete it by hand",
                template["LaunchTemplateId"],
                describe_error(e),
            )
