"""`revert-imds-remediation`: put a group back on what it launched from before, when
what it launches now is provably what c7n-imds made from that."""

import copy
import datetime
import hashlib
import logging
from dataclasses import dataclass, field

from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups, tag_group
from c7n_imds.actions.options import RATE_BUDGET_SCHEMA
from c7n_imds.actions.trust import TRUSTED_PRINCIPALS_SCHEMA, Trusting
from c7n_imds.aws import AWS_ERRORS, describe_error, imds_session, retry
from c7n_imds.model.launch_source import launch_references
from c7n_imds.model.ownership import iac_owner
from c7n_imds.model.provenance import (
    ProvenanceRefused,
    configuration_copy_problem,
    converted_template_problem,
    decode_previous_launch,
    plan_spec_restore,
    untrusted_creator,
)
from c7n_imds.model.redaction import user_data_fingerprint
from c7n_imds.model.refusals import Refused
from c7n_imds.names import (
    CLOUDFORMATION_TAG,
    EXEMPT_TAG,
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    MIXED_INSTANCES_POLICY,
    PREVIOUS_LAUNCH_TAG,
    REVERT_ACTION,
)

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


class RevertRefused(Refused):
    """The recorded launch cannot be restored; nothing was changed for the group."""


def group_tags(asg):
    return {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}


@dataclass
class GroupRevert:
    """What reverting one group does, decided from what was read (no change made)."""

    name: str
    record: str
    update: dict | None  # UpdateAutoScalingGroup parameters; None: nothing to switch
    default_moves: list = field(default_factory=list)  # (template id, from, to)
    launches: list = field(default_factory=list)  # what it launches afterwards (preview)
    proof: str = ""

    def preview(self):
        return {
            "AutoScalingGroupName": self.name,
            "Record": self.record,
            "Launches": self.launches,
            "Provenance": "verified: " + self.proof,
            "Changes": ([] if self.update is None else ["switch the group"])
            + ["launch template %s default version %s -> %s" % move for move in self.default_moves]
            or ["none (already reverted)"],
        }


def launch_preview(target, launch_data):
    """What a target launches, safe to print: never the user data, only its size and
    the start of its SHA-256."""
    profile = launch_data.get("IamInstanceProfile")
    if isinstance(profile, dict):
        profile = profile.get("Arn") or profile.get("Name")
    user_data = launch_data.get("UserData")
    fingerprint = user_data_fingerprint(user_data) if user_data else None
    return {
        "Target": target,
        "ImageId": launch_data.get("ImageId"),
        "IamInstanceProfile": profile or None,
        "UserData": fingerprint
        and {"Bytes": fingerprint["Bytes"], "Sha256": fingerprint["Sha256"][:12]},
    }


class ExemptBeforeDelete:
    """A CloudFormation client whose first DeleteChangeSet is preceded by ``before``:
    the owner's withdraw deletes as it lists, and the groups must be exempt before
    anything is removed, so that a run killed in between still converges."""

    def __init__(self, client, before):
        self._client, self._before, self._done = client, before, False

    def __getattr__(self, name):
        return getattr(self._client, name)

    def delete_change_set(self, **kwargs):
        if not self._done:
            self._before()
            self._done = True
        return self._client.delete_change_set(**kwargs)


@ASG.action_registry.register(REVERT_ACTION)
class RevertImdsRemediation(Trusting, Remediation):
    """Put a group back on exactly what it launched from before c7n-imds changed it.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-revert-imds
            resource: asg
            filters:
            - tag:c7n-imds:previous-launch: present
            - AutoScalingGroupName: legacy-app
            actions:
            - type: revert-imds-remediation
              trusted-principals: ['arn:aws:iam::123456789012:role/c7n-imds-lambda']
    """

    schema = type_schema(
        REVERT_ACTION,
        exempt={"type": "boolean"},
        **{"rate-budget": RATE_BUDGET_SCHEMA, "trusted-principals": TRUSTED_PRINCIPALS_SCHEMA},
    )
    permissions = (
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeLaunchConfigurations",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:ModifyLaunchTemplate",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:CreateOrUpdateTags",
        "autoscaling:DeleteTags",
        "ec2:RunInstances",
        "iam:PassRole",
        "cloudformation:DescribeStacks",
        "cloudformation:ListChangeSets",
        "cloudformation:DeleteChangeSet",
        "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeConfigurationSettings",
        "elasticbeanstalk:UpdateEnvironment",
        "elasticbeanstalk:DescribeEnvironmentResources",
        "eks:DescribeNodegroup",
        "eks:UpdateNodegroupVersion",
    )
    verify_permissions = ()  # puts back what was proven before; no pre-flight
    gate_permissions = ()  # nothing new launches: no usage to gate on

    def remediate(self, asgs):
        ec2, autoscaling = self.clients()
        results, failures, defaults_restored = [], {}, {}
        withdrawn = {}  # stack name -> (deleted, executed) change sets
        groups = current_groups(autoscaling, asgs)
        stacks = self.stack_groups(groups)
        for asg in self.progress.each(groups, lambda _: 1):
            name = asg["AutoScalingGroupName"]
            value = group_tags(asg).get(PREVIOUS_LAUNCH_TAG)
            owner = iac_owner(asg)
            if not value and owner and owner[0] == CLOUDFORMATION_TAG:
                self.withdraw(asg, owner[1], stacks, withdrawn, results, failures)
                continue
            if not value:
                log.info("asg %s: no %s tag; nothing to revert", name, PREVIOUS_LAUNCH_TAG)
                continue
            try:
                record = decode_previous_launch(value)
            except ValueError as e:
                failures[name] = "cannot read the %s tag (%s); revert by hand" % (
                    PREVIOUS_LAUNCH_TAG,
                    e,
                )
                continue
            at_owner = next(
                (restore for key, restore in OWNER_RESTORES.items() if key in record), None
            )
            if at_owner:
                self.restore_at_owner(at_owner, autoscaling, asg, record, value, results, failures)
                continue
            try:
                plan = self.plan_group(ec2, autoscaling, asg, record, value)
            except RevertRefused as e:
                failures[name] = str(e)
                continue
            except AWS_ERRORS as e:
                failures[name] = "reading what it launched from: %s" % describe_error(e)
                continue
            try:
                self.apply(ec2, autoscaling, plan, defaults_restored)
            except AWS_ERRORS as e:
                failures[name] = "reverting: %s; run the revert again" % describe_error(e)
                continue
            log.info("asg %s: reverted to %s (%s)", name, value, plan.proof)
            results.append({"AutoScalingGroupName": name, "RevertedTo": value})
        return self.finish(results, failures)

    def preview(self, asgs):
        """What a run would do for each group, read only: its target, the target's
        image, instance profile and user data fingerprint, and whether the record was
        proven (a group whose record is not proven is under Failures, with why)."""
        ec2, autoscaling = self.clients()
        reverts, failures = [], {}
        for asg in current_groups(autoscaling, asgs):
            name = asg["AutoScalingGroupName"]
            value = group_tags(asg).get(PREVIOUS_LAUNCH_TAG)
            owner = iac_owner(asg)
            if not value:
                if owner and owner[0] == CLOUDFORMATION_TAG:
                    reverts.append(
                        {
                            "AutoScalingGroupName": name,
                            "Record": None,
                            "Launches": [],
                            "Provenance": "change sets are c7n-imds's by name",
                            "Changes": [
                                "delete the change sets c7n-imds proposed to stack "
                                "%s that were not executed" % owner[1]
                            ],
                        }
                    )
                continue
            try:
                record = decode_previous_launch(value)
                if any(key in record for key in OWNER_RESTORES):
                    reverts.append(
                        {
                            "AutoScalingGroupName": name,
                            "Record": value,
                            "Launches": [],
                            "Provenance": "restored at its owner, which checks its own state",
                            "Changes": ["put the owner back as recorded"],
                        }
                    )
                    continue
                reverts.append(self.plan_group(ec2, autoscaling, asg, record, value).preview())
            except (ValueError, RevertRefused) as e:
                failures[name] = str(e)
            except AWS_ERRORS as e:
                failures[name] = "reading what it launched from: %s" % describe_error(e)
        return {"Reverts": reverts, "Failures": failures, "Skipped": []}

    # -- deciding: what the record restores, and whether it is proven -----------------

    def plan_group(self, ec2, autoscaling, asg, record, value):
        """The GroupRevert of a launch configuration or template record; raises
        RevertRefused, naming the record and why, when it cannot be restored."""
        try:
            if "LaunchConfigurationName" in record or "LaunchConfigurationNameSha256" in record:
                return self.plan_configuration(ec2, autoscaling, asg, record, value)
            return self.plan_templates(ec2, asg, record, value)
        except ProvenanceRefused as e:
            raise RevertRefused(
                "%s %s is not proven: %s; nothing changed" % (PREVIOUS_LAUNCH_TAG, value, e)
            )

    def plan_configuration(self, ec2, autoscaling, asg, record, value):
        config = self.find_configuration(autoscaling, record)
        config_name = config["LaunchConfigurationName"]
        target = [launch_preview("launch configuration %r" % config_name, config)]
        plan = GroupRevert(
            asg["AutoScalingGroupName"],
            value,
            {"LaunchConfigurationName": config_name},
            launches=target,
        )
        kind, refs = launch_references(asg)
        if kind == LAUNCH_CONFIGURATION and refs[0].strip() == config_name.strip():
            plan.update, plan.proof = None, "the group already launches from it"
        elif kind == LAUNCH_CONFIGURATION:
            # copy-launch-configuration's copy; configurations record no creator
            current = self.configuration(autoscaling, refs[0])
            problem = (
                configuration_copy_problem(config, current) if current else "it no longer exists"
            )
            if problem:
                raise ProvenanceRefused(
                    "the group's launch configuration %r is not a copy of %r (%s)"
                    % (refs[0], config_name, problem)
                )
            plan.proof = (
                "launch configuration %r differs from it only in metadata options" % refs[0]
            )
        elif kind == LAUNCH_TEMPLATE:
            plan.proof = self.converted_proof(ec2, refs[0]["LaunchTemplateId"], config)
        else:
            raise ProvenanceRefused(
                "the group launches from %s, which no conversion "
                "of c7n-imds makes" % (kind or "nothing")
            )
        return plan

    def converted_proof(self, ec2, template_id, config):
        """Why the group's template is c7n-imds's conversion of the configuration: a
        trusted principal created it, and its version 1 launches what the
        configuration launched. Its c7n-imds:source tag is only a hint."""
        found = retry(ec2.describe_launch_templates, LaunchTemplateIds=[template_id])[
            "LaunchTemplates"
        ]
        if not found:
            raise RevertRefused("the group's launch template %s no longer exists" % template_id)
        template = found[0]
        what = "the group's launch template %s (%s)" % (
            template_id,
            template.get("LaunchTemplateName"),
        )
        problem = untrusted_creator(what, template.get("CreatedBy"), self.trusted_principals())
        if problem:
            raise ProvenanceRefused(
                "%s (trusted: %s)" % (problem, ", ".join(self.trusted_principals()) or "none")
            )
        first = self.version(ec2, template_id, "1")
        problem = converted_template_problem(config, first)
        if problem:
            raise ProvenanceRefused(
                "version 1 of %s was not made from launch "
                "configuration %r: %s" % (what, config["LaunchConfigurationName"], problem)
            )
        return "launch template %s was created by %s from it" % (template_id, template["CreatedBy"])

    def plan_templates(self, ec2, asg, record, value):
        recorded = record.get("MixedInstancesPolicy") or [record]
        kind, current = launch_references(asg)
        if (
            "MixedInstancesPolicy" in record
            and kind != MIXED_INSTANCES_POLICY
            or "MixedInstancesPolicy" not in record
            and kind != LAUNCH_TEMPLATE
        ):
            raise ProvenanceRefused("the group launches from %s now" % (kind or "nothing"))
        if len(current) != len(recorded):
            raise RevertRefused(
                "the group's mixed instances policy no longer has the %d template "
                "specifications recorded; revert it by hand" % len(recorded)
            )
        trusted = self.trusted_principals()
        restores = [
            plan_spec_restore(spec, now, self.lookup(ec2, spec["LaunchTemplateId"]), trusted)
            for spec, now in zip(recorded, current)
        ]
        plan = GroupRevert(
            asg["AutoScalingGroupName"],
            value,
            None,
            default_moves=list(
                {(r.spec["LaunchTemplateId"],) + r.default_move for r in restores if r.default_move}
            ),
            launches=[
                launch_preview(
                    "launch template %s version %s"
                    % (r.spec["LaunchTemplateId"], r.target["VersionNumber"]),
                    r.target.get("LaunchTemplateData") or {},
                )
                for r in restores
            ],
            proof="; ".join(r.proof for r in restores),
        )
        if all(r.done for r in restores):
            return plan
        if kind == LAUNCH_TEMPLATE:
            plan.update = {"LaunchTemplate": restores[0].spec}
            if recorded[0]["Version"] == "$Latest" and restores[0].spec["Version"] != "$Latest":
                log.warning(
                    "launch template %s: $Latest is a version c7n-imds derived "
                    "from version %s; the group is pinned to version %s",
                    restores[0].spec["LaunchTemplateId"],
                    restores[0].spec["Version"],
                    restores[0].spec["Version"],
                )
            return plan
        policy = copy.deepcopy(asg["MixedInstancesPolicy"])
        lt = policy["LaunchTemplate"]
        slots = [lt] + [
            o for o in lt.get("Overrides") or () if o.get("LaunchTemplateSpecification")
        ]
        for slot, restore in zip(slots, restores):
            slot["LaunchTemplateSpecification"] = restore.spec
        plan.update = {"MixedInstancesPolicy": policy}
        return plan

    def lookup(self, ec2, template_id):
        """A version of one template by number or alias, described once per plan."""
        seen = {}

        def describe(version):
            if version not in seen:
                seen[version] = self.version(ec2, template_id, version)
            return seen[version]

        return describe

    def find_configuration(self, autoscaling, record):
        """The recorded launch configuration, described; it must still exist."""
        name = record.get("LaunchConfigurationName")
        if name is not None:
            found = self.configuration(autoscaling, name)
            if found:
                return found
        else:
            digest = record["LaunchConfigurationNameSha256"]
            for page in autoscaling.get_paginator("describe_launch_configurations").paginate():
                for config in page["LaunchConfigurations"]:
                    candidate = config["LaunchConfigurationName"]
                    if hashlib.sha256(candidate.encode("utf-8")).hexdigest() == digest:
                        return config
            name = "with SHA-256 %s" % digest
        raise RevertRefused(
            "launch configuration %r no longer exists, so the group cannot go back to "
            "it; point the group at a valid launch source by hand" % name
        )

    @staticmethod
    def configuration(autoscaling, name):
        found = retry(autoscaling.describe_launch_configurations, LaunchConfigurationNames=[name])[
            "LaunchConfigurations"
        ]
        return found[0] if found else None

    def version(self, ec2, template_id, version):
        try:
            found = retry(
                ec2.describe_launch_template_versions,
                LaunchTemplateId=template_id,
                Versions=[version],
            )
        except AWS_ERRORS as e:
            raise RevertRefused(
                "launch template %s version %s no longer exists (%s), so the group "
                "cannot go back to it" % (template_id, version, describe_error(e))
            )
        if not found["LaunchTemplateVersions"]:
            raise RevertRefused(
                "launch template %s version %s no longer exists" % (template_id, version)
            )
        return found["LaunchTemplateVersions"][0]

    # -- changing: restore, exempt, then remove the record ----------------------------

    def apply(self, ec2, autoscaling, plan, defaults_restored):
        for template_id, current, source in plan.default_moves:
            if template_id in defaults_restored:
                continue
            retry(
                ec2.modify_launch_template, LaunchTemplateId=template_id, DefaultVersion=str(source)
            )
            defaults_restored[template_id] = source
            log.info("launch template %s: default version %s -> %s", template_id, current, source)
        if plan.update:
            retry(
                autoscaling.update_auto_scaling_group, AutoScalingGroupName=plan.name, **plan.update
            )
        self.close_record(autoscaling, plan.name)

    def close_record(self, autoscaling, name):
        """Exempt first, then remove the record: stopped in between, the group is left
        alone by the scheduled remediation and the next revert finishes."""
        self.exempt_group(autoscaling, name)
        retry(
            autoscaling.delete_tags,
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": PREVIOUS_LAUNCH_TAG,
                }
            ],
        )

    def exempt_group(self, autoscaling, name):
        if self.data.get("exempt", True):
            tag_group(
                autoscaling,
                name,
                EXEMPT_TAG,
                "reverted by c7n-imds on %s"
                % (datetime.datetime.now(datetime.timezone.utc).date().isoformat()),
            )

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

    @staticmethod
    def stack_groups(groups):
        """{stack name: [group names]} of the stack-owned groups without a record."""
        stacks = {}
        for asg in groups:
            owner = iac_owner(asg)
            if (
                owner
                and owner[0] == CLOUDFORMATION_TAG
                and not group_tags(asg).get(PREVIOUS_LAUNCH_TAG)
            ):
                stacks.setdefault(owner[1], []).append(asg["AutoScalingGroupName"])
        return stacks

    def withdraw(self, asg, stack_name, stacks, withdrawn, results, failures):
        """A CloudFormation-owned group was never changed: c7n-imds only proposed change
        sets to its stack. Reverting deletes those its owner did not execute - after
        the stack's groups in this run are exempt."""
        name = asg["AutoScalingGroupName"]
        withdraw = OWNER_WITHDRAWS.get(CLOUDFORMATION_TAG)
        if withdraw is None:
            failures[name] = (
                "owned by stack %s, but c7n_imds.owners is not loaded; "
                "import c7n_imds (or run c7n-imds) and revert again" % stack_name
            )
            return
        if stack_name not in withdrawn:
            autoscaling = self.clients()[1]
            client = ExemptBeforeDelete(
                imds_session(self.manager).client("cloudformation"),
                lambda: [
                    self.exempt_group(autoscaling, group) for group in stacks.get(stack_name, ())
                ],
            )
            try:
                withdrawn[stack_name] = withdraw(client, stack_name)
            except AWS_ERRORS as e:
                failures[name] = "withdrawing the change sets proposed to stack %s: %s" % (
                    stack_name,
                    describe_error(e),
                )
                return
        deleted, executed = withdrawn[stack_name]
        if executed:
            failures[name] = (
                "stack %s's owner executed change set(s) %s; c7n-imds does not change the "
                "stack - to go back, update the stack with its previous template"
                % (stack_name, ", ".join(executed))
            )
            return
        if not deleted:
            log.info(
                "asg %s: no change set of c7n-imds on stack %s; nothing to revert", name, stack_name
            )
            return
        log.info(
            "asg %s: change set(s) %s proposed to stack %s deleted",
            name,
            ", ".join(deleted),
            stack_name,
        )
        results.append(
            {
                "AutoScalingGroupName": name,
                "Withdrawn": {"StackName": stack_name, "ChangeSetNames": deleted},
            }
        )
