"""`disable-beanstalk-imdsv1`: groups an Elastic Beanstalk environment owns are fixed at
the environment, by its option aws:autoscaling:launchconfiguration DisableIMDSv1."""

import dataclasses
import logging

from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import (
    ALLOW_LAUNCH_CHANGES_SCHEMA,
    IMDSV1_GATE_SCHEMA,
    RATE_BUDGET_SCHEMA,
)
from c7n_imds.actions.revert import register_owner_restore
from c7n_imds.aws import AWS_ERRORS, describe_error, imds_session, retry, tags_of
from c7n_imds.model.changes import GroupChange, LaunchChange, refusal, refused
from c7n_imds.model.provenance import decode_previous_launch, encode_previous_beanstalk_option
from c7n_imds.names import (
    BEANSTALK_ACTION,
    BEANSTALK_OPTION,
    BEANSTALK_TAG,
    LAUNCH_ANNOTATION,
    PREVIOUS_LAUNCH_TAG,
)
from c7n_imds.owners.environments import (
    ALL_AT_ONCE,
    OPTION,
    OPTION_SETTING,
    all_at_once_remedy,
    configuration_sets,
    describe_environments,
    environment_groups,
    environment_reference,
    is_true,
    not_listed,
    not_ready,
    option_value,
    previous_value,
    replacement,
    restore_environment,
    shown,
)

log = logging.getLogger("custodian.c7n_imds.actions")

ALL_AT_ONCE_KIND = "replace-all-at-once"  # c7n_imds.model.changes.LAUNCH_CHANGE_KINDS
# UpdateEnvironment runs with the caller's credentials: Beanstalk updates the
# environment's CloudFormation stack, and moving it to a launch template makes and
# deletes launch templates and versions and launches instances from them. Beanstalk's
# managed policy AdministratorAccess-AWSElasticBeanstalk includes all of it; these are
# the launch template part, which custom policies most often lack (Beanstalk's "Migrating
# your Elastic Beanstalk environment to launch templates").
UPDATE_ENVIRONMENT_PERMISSIONS = (
    "cloudformation:UpdateStack",
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackResource",
    "cloudformation:DescribeStackResources",
    "cloudformation:GetTemplate",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DeleteLaunchTemplate",
    "ec2:DeleteLaunchTemplateVersions",
    "ec2:RunInstances",
    "ec2:CreateTags",
    "autoscaling:UpdateAutoScalingGroup",
    "iam:PassRole",
)


def effect(plan_replacement):
    """What UpdateEnvironment does to the instances, from Beanstalk's documentation:
    DisableIMDSv1 needs a launch template, so an environment still on a launch
    configuration is moved to one; a launch settings change replaces every instance,
    the way the environment's update policy and type decide (never promised rolling
    where it is not)."""
    return (
        "Beanstalk launches the environment's instances from a launch template with "
        "IMDSv2 required (replacing a launch configuration) and replaces every "
        "instance - %s" % plan_replacement.line()
    )


@dataclasses.dataclass
class EnvironmentPlan:
    """One environment to change, and the groups it owns in this run."""

    environment: dict
    groups: list = dataclasses.field(default_factory=list)  # matched, and listed by it
    listed: list = dataclasses.field(default_factory=list)  # every group it lists
    current: str | None = None  # DisableIMDSv1 as the deployed configuration shows it
    draft_failed: bool = False  # the last update setting it to true failed to deploy
    replacement: object = None  # environments.Replacement of the deployed configuration

    @property
    def names(self):
        return [asg["AutoScalingGroupName"] for asg in self.groups]

    @property
    def label(self):
        return "%s (%s)" % (self.environment["EnvironmentName"], self.environment["EnvironmentId"])

    def launch_changes(self):
        """Beyond the metadata options: an all-at-once replacement, if it is one."""
        if self.replacement is None or self.replacement.mode != ALL_AT_ONCE:
            return []
        return [
            LaunchChange(
                ALL_AT_ONCE_KIND,
                "instances",
                "running",
                "all terminated and replaced at the same time",
                self.replacement.settings,
            )
        ]


@ASG.action_registry.register(BEANSTALK_ACTION)
class DisableBeanstalkImdsv1(Remediation):
    """Require IMDSv2 on an Elastic Beanstalk environment's instances by setting its
    option ``aws:autoscaling:launchconfiguration`` ``DisableIMDSv1`` to ``true``.

    :example:

    .. code-block:: yaml

        policies:
          - name: beanstalk-disable-imdsv1
            resource: asg
            filters:
            - tag:elasticbeanstalk:environment-name: present
            - {type: imds, key: HttpTokens, value: optional}
            - {type: imds-exempt, key: Exempt, value: false}
            - {type: imdsv1-usage, days: 14, value: 0, missing: zero}
            actions:
            - type: disable-beanstalk-imdsv1
    """

    schema = type_schema(
        BEANSTALK_ACTION,
        **{
            "rate-budget": RATE_BUDGET_SCHEMA,
            "allow-launch-changes": ALLOW_LAUNCH_CHANGES_SCHEMA,
            "imdsv1-gate": IMDSV1_GATE_SCHEMA,
        },
    )
    permissions = (
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:CreateOrUpdateTags",
        "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeEnvironmentResources",
        "elasticbeanstalk:DescribeConfigurationSettings",
        "elasticbeanstalk:ValidateConfigurationSettings",
        "elasticbeanstalk:UpdateEnvironment",
    )
    verify_permissions = ()  # the check is ValidateConfigurationSettings, declared above

    def beanstalk_clients(self):
        session = imds_session(self.manager)
        return session.client("autoscaling"), session.client("elasticbeanstalk")

    # -- planning -----------------------------------------------------------------------

    def read(self, asgs, autoscaling, beanstalk):
        """The plan, read now (describe calls only): ([EnvironmentPlan], failures,
        already fixed [EnvironmentPlan])."""
        groups = self.owned(current_groups(autoscaling, asgs), BEANSTALK_TAG)
        failures, plans = {}, {}
        try:
            environments = describe_environments(
                beanstalk, {environment_reference(asg) for asg in groups}
            )
        except AWS_ERRORS as e:
            for asg in groups:
                failures[asg["AutoScalingGroupName"]] = (
                    "reading its Elastic Beanstalk environment: %s; nothing was changed"
                    % describe_error(e)
                )
            return [], failures, []
        for asg in groups:
            reference = environment_reference(asg)
            environment = environments.get(reference)
            if environment is None:
                failures[asg["AutoScalingGroupName"]] = (
                    "Elastic Beanstalk environment %s was not found (terminated, or not "
                    "visible to this role); nothing was changed" % reference[1]
                )
                continue
            plans.setdefault(
                environment["EnvironmentId"], EnvironmentPlan(environment)
            ).groups.append(asg)
        ready, done = [], []
        for environment_id in sorted(plans):
            plan = plans[environment_id]
            if not self.read_owned(beanstalk, plan, failures):
                continue
            problem = not_ready(plan.environment)
            if problem is None:
                try:
                    sets = configuration_sets(beanstalk, plan.environment)
                except AWS_ERRORS as e:
                    problem = "reading environment %s's configuration: %s" % (
                        plan.environment["EnvironmentName"],
                        describe_error(e),
                    )
            if problem:
                failures.update({name: problem for name in plan.names})
                continue
            plan.current = option_value(sets.get("deployed"))
            plan.draft_failed = is_true(option_value(sets.get("failed")))
            plan.replacement = replacement(sets.get("deployed"))
            (done if is_true(plan.current) else ready).append(plan)
        return ready, failures, done

    def read_owned(self, beanstalk, plan, failures):
        """Keep in the plan only the groups the environment lists among its resources
        (DescribeEnvironmentResources); a group whose tags name it but that it does not
        list fails, so a forged tag never changes an environment. False when no group
        is left."""
        environment = plan.environment
        try:
            plan.listed = environment_groups(beanstalk, environment)
        except AWS_ERRORS as e:
            failures.update(
                {
                    name: "reading environment %s's resources: %s; nothing was "
                    "changed" % (environment["EnvironmentName"], describe_error(e))
                    for name in plan.names
                }
            )
            return False
        for asg in plan.groups:
            if asg["AutoScalingGroupName"] not in plan.listed:
                log.warning("asg %s: %s", asg["AutoScalingGroupName"], not_listed(asg, environment))
                failures[asg["AutoScalingGroupName"]] = not_listed(asg, environment)
        plan.groups = [asg for asg in plan.groups if asg["AutoScalingGroupName"] in plan.listed]
        return bool(plan.groups)

    def admit_plans(self, ready, failures):
        """The plans that may go ahead (describe calls only): an all-at-once replacement
        the policy did not opt in to fails the environment's groups; an environment any
        of whose groups - all it lists, not only those matched - is exempt or calls
        IMDSv1 is held back, its matched groups skipped with the gate's reason.
        Returns (plans, skipped)."""
        allowed = self.data.get("allow-launch-changes") or ()
        gate = self.gate()
        admitted, held = [], []
        for plan in ready:
            refused_changes = refused(plan.launch_changes(), allowed)
            if refused_changes:
                reason = "%s; or %s" % (
                    refusal("Elastic Beanstalk environment %s" % plan.label, refused_changes),
                    all_at_once_remedy(plan.replacement),
                )
                log.warning("environment %s: %s", plan.label, reason)
                failures.update({name: reason for name in plan.names})
                continue
            if gate is not None:
                try:
                    verdict = gate.check_groups(plan.listed)
                except AWS_ERRORS as e:
                    failures.update(
                        {
                            name: "checking environment %s's groups for IMDSv1 "
                            "use: %s; nothing was changed" % (plan.label, describe_error(e))
                            for name in plan.names
                        }
                    )
                    continue
                if not verdict.passed:
                    reason = verdict.reason("environment %s" % plan.label)
                    log.info("environment %s: %s", plan.label, reason)
                    held += [
                        {"AutoScalingGroupName": name, "Skipped": reason} for name in plan.names
                    ]
                    continue
            admitted.append(plan)
        return admitted, held

    def preview(self, asgs):
        """What `process` would change: one option per environment, with the
        replacement Beanstalk makes (describe calls only; Beanstalk's validation of the
        change runs only in `process`)."""
        autoscaling, beanstalk = self.beanstalk_clients()
        ready, failures, done = self.read(asgs, autoscaling, beanstalk)
        ready, held = self.admit_plans(ready, failures)
        changes = [
            {
                "Owner": "Elastic Beanstalk environment %s" % plan.label,
                "Change": "option %s: %s -> true (%s)"
                % (OPTION, shown(plan.current), effect(plan.replacement)),
                "Groups": plan.names,
                "Notes": self.notes(plan),
            }
            for plan in ready
        ]
        skipped = (
            list(self.skipped)
            + held
            + [
                {
                    "AutoScalingGroupName": name,
                    "Skipped": "environment %s already sets %s=true" % (plan.label, OPTION),
                }
                for plan in done
                for name in plan.names
            ]
        )
        handed = {asg["AutoScalingGroupName"]: asg for asg in asgs}
        groups = [
            self.group_plan(plan, asg, handed).record() for plan in ready for asg in plan.groups
        ]
        return {
            "OwnerChanges": changes,
            "GroupChanges": groups,
            "Failures": failures,
            "Skipped": skipped,
        }

    def group_plan(self, plan, asg, handed):
        """The contract's block for one group (model/changes.GroupChange): Beanstalk,
        not c7n-imds, makes the template, so "after" names the environment's."""
        if asg.get("LaunchTemplate"):
            before = "launch template %s version %s" % (
                asg["LaunchTemplate"].get("LaunchTemplateName")
                or asg["LaunchTemplate"].get("LaunchTemplateId"),
                asg["LaunchTemplate"].get("Version") or "$Default",
            )
        elif asg.get("LaunchConfigurationName"):
            before = "launch configuration %s" % asg["LaunchConfigurationName"].strip()
        else:
            before = "a mixed instances policy"
        tokens = (handed.get(asg["AutoScalingGroupName"], {}).get(LAUNCH_ANNOTATION) or {}).get(
            "HttpTokens"
        )
        return GroupChange(
            asg["AutoScalingGroupName"],
            before,
            "the launch template Elastic Beanstalk makes for environment %s" % plan.label,
            {"HttpTokens": tokens} if tokens else {},
            {"HttpTokens": "required"},
            plan.launch_changes(),
            "replaced by Elastic Beanstalk - %s" % plan.replacement.line(),
        )

    def notes(self, plan):
        notes = [
            "each group is tagged %s=%s first, so revert-imds-remediation can put "
            "the option back"
            % (PREVIOUS_LAUNCH_TAG, encode_previous_beanstalk_option(previous_value(plan.current)))
        ]
        if plan.launch_changes():
            notes.append(
                "every instance is replaced at the same time: accepted by "
                "allow-launch-changes: [%s]" % ALL_AT_ONCE_KIND
            )
        if plan.draft_failed:
            notes.append(
                "an earlier update setting %s=true failed to deploy: read the "
                "environment's events (often the caller lacks launch template "
                "permissions) before running again" % BEANSTALK_OPTION
            )
        notes.append(
            "the environment is Updating for the deployment's duration; set the "
            "option in its source (saved configuration, .ebextensions, "
            "CloudFormation or Terraform) too"
        )
        return notes

    # -- execution ----------------------------------------------------------------------

    def remediate(self, asgs):
        autoscaling, beanstalk = self.beanstalk_clients()
        ready, failures, done = self.read(asgs, autoscaling, beanstalk)
        ready, held = self.admit_plans(ready, failures)
        results = list(self.skipped) + held
        for plan in done:
            log.info("environment %s: %s is already true; nothing to change", plan.label, OPTION)
            results += self.outcomes(
                plan, "already-applied", "%s was already true; nothing was changed" % OPTION
            )
        for plan in self.progress.each(ready, lambda plan: len(plan.groups)):
            problem = self.apply(autoscaling, beanstalk, plan)
            if problem:
                failures.update({name: problem for name in plan.names})
                continue
            detail = "%s: %s -> true; %s" % (OPTION, shown(plan.current), effect(plan.replacement))
            log.info("environment %s: %s", plan.label, detail)
            results += self.outcomes(plan, "applied", detail)
        return self.finish(results, failures)

    def apply(self, autoscaling, beanstalk, plan):
        """Validate, record the way back on every group, update, read back. None, or
        why the environment's groups failed."""
        environment = plan.environment
        name = environment["EnvironmentName"]
        try:
            messages = retry(
                beanstalk.validate_configuration_settings,
                ApplicationName=environment["ApplicationName"],
                EnvironmentName=name,
                OptionSettings=[OPTION_SETTING],
            )["Messages"]
        except AWS_ERRORS as e:
            return "validating %s=true for environment %s: %s; nothing was changed" % (
                BEANSTALK_OPTION,
                name,
                describe_error(e),
            )
        errors = [m for m in messages if m.get("Severity") == "error"]
        for message in messages:
            if message.get("Severity") != "error":
                log.warning(
                    "environment %s: %s=true: %s",
                    plan.label,
                    BEANSTALK_OPTION,
                    message.get("Message"),
                )
        if errors:
            return (
                "Elastic Beanstalk refused %s=true for environment %s: %s; nothing "
                "was changed"
                % (
                    BEANSTALK_OPTION,
                    name,
                    "; ".join(
                        "%s (%s %s)" % (m.get("Message"), m.get("Namespace"), m.get("OptionName"))
                        for m in errors
                    ),
                )
            )
        # An earlier run that stopped before the update recorded the value from before
        # it: keep that record, it is the one a revert needs.
        record = encode_previous_beanstalk_option(previous_value(plan.current))
        untagged = {}
        for asg in plan.groups:
            try:
                existing = decode_previous_launch(tags_of(asg).get(PREVIOUS_LAUNCH_TAG) or "")
            except ValueError:
                existing = {}
            if "BeanstalkOption" not in existing:
                untagged[asg["AutoScalingGroupName"]] = record
        failed = self.record_previous_launches(autoscaling, untagged)
        if failed:
            return (
                "recording the environment's previous %s on its groups failed (%s); "
                "environment %s was not changed"
                % (BEANSTALK_OPTION, "; ".join(problem for problem, _ in failed), name)
            )
        try:
            retry(
                beanstalk.update_environment,
                EnvironmentId=environment["EnvironmentId"],
                OptionSettings=[OPTION_SETTING],
            )
        except AWS_ERRORS as e:
            return (
                "UpdateEnvironment %s=true for environment %s: %s; run again (a re-run "
                "finds the option if the update was made)"
                % (BEANSTALK_OPTION, name, describe_error(e))
            )
        try:
            sets = configuration_sets(beanstalk, environment)
        except AWS_ERRORS as e:
            return (
                "environment %s was updated, but its configuration could not be read "
                "back (%s); run again to confirm" % (name, describe_error(e))
            )
        # While the update deploys, the new value is in the draft ("pending").
        stored = option_value(sets.get("pending") or sets.get("deployed"))
        if not is_true(stored):
            return (
                "environment %s accepted UpdateEnvironment, but its configuration "
                "shows %s=%s, not true; read the environment's events, then run again"
                % (name, BEANSTALK_OPTION, shown(stored))
            )
        return None

    def outcomes(self, plan, status, detail):
        """The OwnerFix record of each group; its Detail is what the owner's mail shows
        (mail/imds.html.j2), so it names the replacement Beanstalk makes."""
        environment = plan.environment
        fix = {
            "Action": BEANSTALK_ACTION,
            "Status": status,
            "EnvironmentName": environment["EnvironmentName"],
            "EnvironmentId": environment["EnvironmentId"],
            "Detail": detail,
        }
        if status == "applied":
            fix["Replacement"] = plan.replacement.mode
            changes = plan.launch_changes()
            if changes:
                fix["LaunchChanges"] = [c.record() for c in changes]
        return [
            {
                "AutoScalingGroupName": name,
                "Owner": "elasticbeanstalk:%s" % environment["EnvironmentName"],
                "OwnerFix": dict(fix),
            }
            for name in plan.names
        ]


register_owner_restore("BeanstalkOption", restore_environment)
