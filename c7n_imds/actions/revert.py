"""`revert-imds-remediation`: put a group back on what it launched from before."""
import copy
import datetime
import hashlib
import logging

from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups, tag_group
from c7n_imds.actions.options import RATE_BUDGET_SCHEMA
from c7n_imds.aws import AWS_ERRORS, describe_error, imds_session, retry
from c7n_imds.model.provenance import decode_previous_launch, parse_derived_version_description
from c7n_imds.model.safety import iac_owner
from c7n_imds.names import ALIASES, CLOUDFORMATION_TAG, EXEMPT_TAG, PREVIOUS_LAUNCH_TAG

log = logging.getLogger("custodian.c7n_imds.actions")

# The way back at a group's owner, registered by each owner module of c7n_imds.owners
# (so that revert imports no owner): a restore per record key (decode_previous_launch),
# called as restore(session, asg, record), and the withdraw of a stack's change sets,
# called as withdraw(cloudformation_client, stack_name) -> (deleted, executed).
OWNER_RESTORES = {}
OWNER_WITHDRAWS = {}


def register_owner_restore(record_key, restore):
    OWNER_RESTORES[record_key] = restore
    return restore


def register_owner_withdraw(owner_tag, withdraw):
    OWNER_WITHDRAWS[owner_tag] = withdraw
    return withdraw


class RevertRefused(Exception):
    """The recorded launch cannot be restored; nothing was changed for the group."""


def group_tags(asg):
    return {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}


@ASG.action_registry.register("revert-imds-remediation")
class RevertImdsRemediation(Remediation):
    """Put a group back on exactly what it launched from before c7n-imds changed it.

    Reads the group's ``c7n-imds:previous-launch`` tag, written before every change:

    - a launch configuration: the group is switched back to it;
    - a launch template version number: the group is pinned to it again;
    - ``$Default``: when the template's default is a version c7n-imds derived, the
      default goes back to the version it was derived from (this affects every group
      that follows the template's default, as the change did);
    - ``$Latest``: a later version cannot be un-made, so the group is pinned to the
      version c7n-imds derived its latest from, and a warning says so;
    - a mixed instances policy: each template spec as recorded;
    - ``eb:DisableIMDSv1[=value]``: the Elastic Beanstalk environment's option goes back
      to the recorded value, or is removed where it was not set (Beanstalk then
      replaces the environment's instances);
    - ``eks:TEMPLATE:VERSION``: the EKS managed node group is updated back to that
      version of its launch template (UpdateNodegroupVersion; EKS replaces the nodes);
    - a group a CloudFormation stack owns (c7n-imds never changed it, it proposed a
      change set): the change sets of c7n-imds that the stack's owner did not execute
      are deleted; one that was executed is the owner's change, and is refused.

    A group whose recorded configuration or version no longer exists is refused with a
    clear message and left unchanged. Afterwards the tag is removed and, unless
    ``exempt: false``, the group is tagged ``c7n-imds:exempt`` ("reverted ... on DATE")
    so that the next scheduled remediation does not undo the revert. The templates and
    configurations c7n-imds created are kept.

    ``rate-budget`` (0-1, default 0.5): the share of each of AWS's
    API rate limits (token buckets, c7n_imds/model/rates.py) the run may use; every
    EC2 and Auto Scaling request is paced within it, the rest stays for the
    account's own automation.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-revert-imds
            resource: asg
            filters:
              - "tag:c7n-imds:previous-launch": present
              - AutoScalingGroupName: legacy-app
            actions:
              - type: revert-imds-remediation
    """

    schema = type_schema("revert-imds-remediation", exempt={"type": "boolean"},
                         **{"rate-budget": RATE_BUDGET_SCHEMA})
    permissions = (
        "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
        "ec2:DescribeLaunchTemplateVersions", "ec2:ModifyLaunchTemplate",
        "autoscaling:UpdateAutoScalingGroup", "autoscaling:CreateOrUpdateTags",
        "autoscaling:DeleteTags", "ec2:RunInstances", "iam:PassRole",
        "cloudformation:DescribeStacks", "cloudformation:ListChangeSets",
        "cloudformation:DeleteChangeSet", "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeConfigurationSettings", "elasticbeanstalk:UpdateEnvironment",
        "eks:DescribeNodegroup", "eks:UpdateNodegroupVersion")
    verify_permissions = ()  # puts back what was proven before; no pre-flight

    def remediate(self, asgs):
        ec2, autoscaling = self.clients()
        results, failures, defaults_restored = [], {}, {}
        withdrawn = {}  # stack name -> (deleted, executed) change sets
        for asg in self.progress.each(current_groups(autoscaling, asgs), lambda _: 1):
            name = asg["AutoScalingGroupName"]
            value = group_tags(asg).get(PREVIOUS_LAUNCH_TAG)
            owner = iac_owner(asg)
            if not value and owner and owner[0] == CLOUDFORMATION_TAG:
                self.withdraw(asg, owner[1], withdrawn, results, failures)
                continue
            if not value:
                log.info("asg %s: no %s tag; nothing to revert", name, PREVIOUS_LAUNCH_TAG)
                continue
            try:
                record = decode_previous_launch(value)
            except ValueError as e:
                failures[name] = "cannot read the %s tag (%s); revert by hand" % (
                    PREVIOUS_LAUNCH_TAG, e)
                continue
            at_owner = next((restore for key, restore in OWNER_RESTORES.items()
                             if key in record), None)
            if at_owner:
                self.restore_at_owner(at_owner, autoscaling, asg, record, value, results,
                                      failures)
                continue
            try:
                update = self.restore(ec2, autoscaling, asg, record, defaults_restored)
            except RevertRefused as e:
                failures[name] = str(e)
                continue
            except AWS_ERRORS as e:
                failures[name] = "restoring what it launched from: %s" % describe_error(e)
                continue
            try:
                if update:
                    retry(autoscaling.update_auto_scaling_group,
                          AutoScalingGroupName=name, **update)
                self.close_record(autoscaling, name)
            except AWS_ERRORS as e:
                failures[name] = "reverting: %s" % describe_error(e)
                continue
            log.info("asg %s: reverted to %s", name, value)
            results.append({"AutoScalingGroupName": name, "RevertedTo": value})
        return self.finish(results, failures)

    def restore_at_owner(self, restore, autoscaling, asg, record, value, results, failures):
        """The group's owner - a Beanstalk environment's option, an EKS node group's
        template version - goes back to what the record says; the group itself is not
        switched (its owner does that)."""
        name = asg["AutoScalingGroupName"]
        try:
            done = restore(imds_session(self.manager), asg, record)
            self.close_record(autoscaling, name)
        except ValueError as e:
            failures[name] = str(e)
            return
        except AWS_ERRORS as e:
            failures[name] = "reverting at its owner: %s" % describe_error(e)
            return
        log.info("asg %s: %s", name, done)
        results.append({"AutoScalingGroupName": name, "RevertedTo": value, "Detail": done})

    def withdraw(self, asg, stack_name, withdrawn, results, failures):
        """A CloudFormation-owned group was never changed: c7n-imds only proposed change
        sets to its stack. Reverting deletes those its owner did not execute."""
        name = asg["AutoScalingGroupName"]
        withdraw = OWNER_WITHDRAWS.get(CLOUDFORMATION_TAG)
        if withdraw is None:
            failures[name] = ("owned by stack %s, but c7n_imds.owners is not loaded; "
                              "import c7n_imds (or run c7n-imds) and revert again" % stack_name)
            return
        if stack_name not in withdrawn:
            try:
                withdrawn[stack_name] = withdraw(
                    imds_session(self.manager).client("cloudformation"),
                    stack_name)
            except AWS_ERRORS as e:
                failures[name] = "withdrawing the change sets proposed to stack %s: %s" % (
                    stack_name, describe_error(e))
                return
        deleted, executed = withdrawn[stack_name]
        if executed:
            failures[name] = (
                "stack %s's owner executed change set(s) %s; c7n-imds does not change the "
                "stack - to go back, update the stack with its previous template" % (
                    stack_name, ", ".join(executed)))
            return
        if not deleted:
            log.info("asg %s: no change set of c7n-imds on stack %s; nothing to revert",
                     name, stack_name)
            return
        if self.data.get("exempt", True):
            tag_group(self.clients()[1], name, EXEMPT_TAG, "reverted by c7n-imds on %s" % (
                datetime.datetime.now(datetime.timezone.utc).date().isoformat()))
        log.info("asg %s: change set(s) %s proposed to stack %s deleted", name,
                 ", ".join(deleted), stack_name)
        results.append({"AutoScalingGroupName": name, "Withdrawn": {
            "StackName": stack_name, "ChangeSetNames": deleted}})

    def restore(self, ec2, autoscaling, asg, record, defaults_restored):
        """UpdateAutoScalingGroup parameters that restore the record (template defaults
        are restored here, once per template)."""
        if "LaunchConfigurationName" in record or "LaunchConfigurationNameSha256" in record:
            return {"LaunchConfigurationName": self.find_configuration(autoscaling, record)}
        if "MixedInstancesPolicy" in record:
            return {"MixedInstancesPolicy": self.restore_mixed(
                ec2, asg, record["MixedInstancesPolicy"], defaults_restored)}
        return {"LaunchTemplate": self.restore_spec(ec2, record, defaults_restored)}

    def find_configuration(self, autoscaling, record):
        name = record.get("LaunchConfigurationName")
        if name is not None:
            found = retry(autoscaling.describe_launch_configurations,
                          LaunchConfigurationNames=[name])["LaunchConfigurations"]
            if found:
                return name
        else:
            digest = record["LaunchConfigurationNameSha256"]
            for page in autoscaling.get_paginator("describe_launch_configurations").paginate():
                for config in page["LaunchConfigurations"]:
                    candidate = config["LaunchConfigurationName"]
                    if hashlib.sha256(candidate.encode("utf-8")).hexdigest() == digest:
                        return candidate
            name = "with SHA-256 %s" % digest
        raise RevertRefused(
            "launch configuration %r no longer exists, so the group cannot go back to "
            "it; point the group at a valid launch source by hand" % name)

    def restore_spec(self, ec2, spec, defaults_restored):
        template_id, version = spec["LaunchTemplateId"], spec["Version"]
        if version not in ALIASES:
            self.version(ec2, template_id, version)  # must still exist
            # Deriving from the default version moved the default too: move it back.
            default = self.version(ec2, template_id, "$Default")
            derived = parse_derived_version_description(default.get("VersionDescription"))
            if derived and str(derived[0]) == version:
                self.restore_default(ec2, template_id, default, version, defaults_restored)
            return {"LaunchTemplateId": template_id, "Version": version}
        current = self.version(ec2, template_id, version)
        derived = parse_derived_version_description(current.get("VersionDescription"))
        if derived is None:
            return {"LaunchTemplateId": template_id, "Version": version}
        source = str(derived[0])
        self.version(ec2, template_id, source)
        if version == "$Latest":
            log.warning("launch template %s: $Latest is a version c7n-imds derived from "
                        "version %s; the group is pinned to version %s", template_id,
                        source, source)
            return {"LaunchTemplateId": template_id, "Version": source}
        self.restore_default(ec2, template_id, current, source, defaults_restored)
        return {"LaunchTemplateId": template_id, "Version": version}

    def restore_default(self, ec2, template_id, current, source, defaults_restored):
        if template_id in defaults_restored:
            return
        retry(ec2.modify_launch_template, LaunchTemplateId=template_id,
              DefaultVersion=source)
        defaults_restored[template_id] = source
        log.info("launch template %s: default version %s -> %s", template_id,
                 current["VersionNumber"], source)

    def restore_mixed(self, ec2, asg, recorded, defaults_restored):
        policy = copy.deepcopy(asg.get("MixedInstancesPolicy") or {})
        lt = policy.get("LaunchTemplate") or {}
        slots = [lt] + [o for o in lt.get("Overrides") or ()
                        if o.get("LaunchTemplateSpecification")]
        if not lt or len(slots) != len(recorded):
            raise RevertRefused(
                "the group's mixed instances policy no longer has the %d template "
                "specifications recorded; revert it by hand" % len(recorded))
        for slot, spec in zip(slots, recorded):
            slot["LaunchTemplateSpecification"] = self.restore_spec(
                ec2, spec, defaults_restored)
        return policy

    def version(self, ec2, template_id, version):
        try:
            found = retry(ec2.describe_launch_template_versions,
                          LaunchTemplateId=template_id, Versions=[version])
        except AWS_ERRORS as e:
            raise RevertRefused(
                "launch template %s version %s no longer exists (%s), so the group "
                "cannot go back to it" % (template_id, version, describe_error(e)))
        if not found["LaunchTemplateVersions"]:
            raise RevertRefused("launch template %s version %s no longer exists" % (
                template_id, version))
        return found["LaunchTemplateVersions"][0]

    def close_record(self, autoscaling, name):
        retry(autoscaling.delete_tags, Tags=[{
            "ResourceId": name, "ResourceType": "auto-scaling-group",
            "Key": PREVIOUS_LAUNCH_TAG}])
        if self.data.get("exempt", True):
            tag_group(autoscaling, name, EXEMPT_TAG, "reverted by c7n-imds on %s" % (
                datetime.datetime.now(datetime.timezone.utc).date().isoformat()))
