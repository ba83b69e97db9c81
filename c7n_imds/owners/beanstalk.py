"""`disable-beanstalk-imdsv1`: groups an Elastic Beanstalk environment owns are fixed at
the environment, by its option aws:autoscaling:launchconfiguration DisableIMDSv1."""
import dataclasses
import logging

from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import RATE_BUDGET_SCHEMA
from c7n_imds.actions.revert import register_owner_restore
from c7n_imds.aws import AWS_ERRORS, describe_error, imds_session, retry, tags_of
from c7n_imds.model.provenance import decode_previous_launch, encode_previous_beanstalk_option
from c7n_imds.names import (
    BEANSTALK_ACTION,
    BEANSTALK_OPTION,
    BEANSTALK_TAG,
    PREVIOUS_LAUNCH_TAG,
)
from c7n_imds.owners.environments import (
    OPTION,
    OPTION_SETTING,
    configuration_sets,
    describe_environments,
    environment_reference,
    is_true,
    not_ready,
    option_value,
    previous_value,
    restore_environment,
    shown,
)

log = logging.getLogger("custodian.c7n_imds.actions")

# What UpdateEnvironment does to the instances, from Beanstalk's documentation: the
# launch settings change (DisableIMDSv1 needs a launch template, so an environment still
# on a launch configuration is moved to one), which replaces every instance through a
# rolling or immutable update, as the environment's update policy says.
EFFECT = ("Beanstalk launches the environment's instances from a launch template with "
          "IMDSv2 required (replacing a launch configuration) and replaces its instances "
          "as its rolling or immutable update policy says")
# UpdateEnvironment runs with the caller's credentials: Beanstalk updates the
# environment's CloudFormation stack, and moving it to a launch template makes and
# deletes launch templates and versions and launches instances from them. Beanstalk's
# managed policy AdministratorAccess-AWSElasticBeanstalk includes all of it; these are
# the launch template part, which custom policies most often lack (Beanstalk's "Migrating
# your Elastic Beanstalk environment to launch templates").
UPDATE_ENVIRONMENT_PERMISSIONS = (
    "cloudformation:UpdateStack", "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackResource", "cloudformation:DescribeStackResources",
    "cloudformation:GetTemplate", "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion", "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions", "ec2:DeleteLaunchTemplate",
    "ec2:DeleteLaunchTemplateVersions", "ec2:RunInstances", "ec2:CreateTags",
    "autoscaling:UpdateAutoScalingGroup", "iam:PassRole")


@dataclasses.dataclass
class EnvironmentPlan:
    """One environment to change, and the groups it owns in this run."""
    environment: dict
    groups: list = dataclasses.field(default_factory=list)
    current: str | None = None  # DisableIMDSv1 as the deployed configuration shows it
    draft_failed: bool = False  # the last update setting it to true failed to deploy

    @property
    def names(self):
        return [asg["AutoScalingGroupName"] for asg in self.groups]

    @property
    def label(self):
        return "%s (%s)" % (self.environment["EnvironmentName"],
                            self.environment["EnvironmentId"])


@ASG.action_registry.register(BEANSTALK_ACTION)
class DisableBeanstalkImdsv1(Remediation):
    """Require IMDSv2 on an Elastic Beanstalk environment's instances by setting its
    option ``aws:autoscaling:launchconfiguration`` ``DisableIMDSv1`` to ``true``.

    A group Beanstalk owns (tag ``elasticbeanstalk:environment-name``) must be fixed at
    its environment: a change made to the group behind Beanstalk's back is undone by the
    environment's next update. This action acts only on such groups that are not exempt
    (tag ``c7n-imds:exempt``); every other group is left alone and listed, with what
    fixes it. The environment is found by the group's ``elasticbeanstalk:environment-id``
    tag (else its name); the groups of one environment are handled once, together.

    An environment that is not ``Ready`` (launching, updating, terminating, or with an
    update in progress) is not changed: its groups fail with one line saying so, and a
    later run finishes. An environment whose configuration already sets the option to
    ``true`` is left as it is. Otherwise the change is first checked with
    ``ValidateConfigurationSettings`` (an error, e.g. a platform that cannot disable
    IMDSv1, fails the groups and changes nothing); each group is then tagged
    ``c7n-imds:previous-launch`` with the environment's previous value (``eb:DisableIMDSv1``
    when it was Beanstalk's default, so that ``revert-imds-remediation`` removes the
    setting again), and only then the environment is updated. The configuration
    Beanstalk stored is read back and must show ``true``.

    What Beanstalk then does is its own, and takes minutes: it moves the environment to
    a launch template with IMDSv2 required (from a launch configuration, if it still has
    one) and replaces its instances by its rolling or immutable update policy. The
    environment's status is ``Updating`` meanwhile, so plan the run like a deployment.
    A value set through the API takes precedence over saved configurations and
    ``.ebextensions``; an environment defined in CloudFormation or Terraform should get
    the option in its template too, or the next stack update may set it back.

    UpdateEnvironment runs with the caller's permissions: besides those declared here,
    the role needs what Beanstalk uses on its behalf - CloudFormation, launch templates,
    Auto Scaling, ``iam:PassRole`` for the instance profile - as in the managed policy
    ``AdministratorAccess-AWSElasticBeanstalk``.

    Gate it, like the other actions, on the ``imdsv1-usage`` filter, so that no
    environment whose instances still call IMDSv1 is changed.

    ``rate-budget`` (0-1, default 0.5): the share of each of AWS's API rate limits
    (token buckets, c7n_imds/model/rates.py) the run may use for its Auto Scaling
    requests; the few Elastic Beanstalk requests (some per environment) are not paced.

    :example:

    .. code-block:: yaml

        policies:
          - name: beanstalk-disable-imdsv1
            resource: asg
            filters:
              - "tag:elasticbeanstalk:environment-name": present
              - type: imds
                key: HttpTokens
                value: optional
              - type: imds-exempt
                key: Exempt
                value: false
              - type: imdsv1-usage
                days: 14
                value: 0
                missing: zero
            actions:
              - type: disable-beanstalk-imdsv1
    """

    schema = type_schema(BEANSTALK_ACTION, **{"rate-budget": RATE_BUDGET_SCHEMA})
    permissions = (
        "autoscaling:DescribeAutoScalingGroups", "autoscaling:CreateOrUpdateTags",
        "elasticbeanstalk:DescribeEnvironments",
        "elasticbeanstalk:DescribeConfigurationSettings",
        "elasticbeanstalk:ValidateConfigurationSettings",
        "elasticbeanstalk:UpdateEnvironment")
    verify_permissions = ()  # the check is ValidateConfigurationSettings, declared above

    def beanstalk_clients(self):
        session = imds_session(self.manager)
        return session.client("autoscaling"), session.client("elasticbeanstalk")

    # -- planning -----------------------------------------------------------------------

    def read(self, asgs, autoscaling, beanstalk):
        """The plan, read now (describe calls only): ([EnvironmentPlan], failures,
        already fixed {group: EnvironmentPlan})."""
        groups = self.owned(current_groups(autoscaling, asgs), BEANSTALK_TAG)
        failures, plans = {}, {}
        try:
            environments = describe_environments(
                beanstalk, {environment_reference(asg) for asg in groups})
        except AWS_ERRORS as e:
            for asg in groups:
                failures[asg["AutoScalingGroupName"]] = (
                    "reading its Elastic Beanstalk environment: %s; nothing was changed"
                    % describe_error(e))
            return [], failures, []
        for asg in groups:
            reference = environment_reference(asg)
            environment = environments.get(reference)
            if environment is None:
                failures[asg["AutoScalingGroupName"]] = (
                    "Elastic Beanstalk environment %s was not found (terminated, or not "
                    "visible to this role); nothing was changed" % reference[1])
                continue
            plans.setdefault(environment["EnvironmentId"], EnvironmentPlan(
                environment)).groups.append(asg)
        ready, done = [], []
        for environment_id in sorted(plans):
            plan = plans[environment_id]
            problem = not_ready(plan.environment)
            if problem is None:
                try:
                    sets = configuration_sets(beanstalk, plan.environment)
                except AWS_ERRORS as e:
                    problem = "reading environment %s's configuration: %s" % (
                        plan.environment["EnvironmentName"], describe_error(e))
            if problem:
                failures.update({name: problem for name in plan.names})
                continue
            plan.current = option_value(sets.get("deployed"))
            plan.draft_failed = is_true(option_value(sets.get("failed")))
            (done if is_true(plan.current) else ready).append(plan)
        return ready, failures, done

    def preview(self, asgs):
        """What `process` would change: one option per environment (describe calls
        only; Beanstalk's validation of the change runs only in `process`)."""
        autoscaling, beanstalk = self.beanstalk_clients()
        ready, failures, done = self.read(asgs, autoscaling, beanstalk)
        changes = [{
            "Owner": "Elastic Beanstalk environment %s" % plan.label,
            "Change": "option %s: %s -> true (%s)" % (OPTION, shown(plan.current), EFFECT),
            "Groups": plan.names,
            "Notes": self.notes(plan)} for plan in ready]
        skipped = list(self.skipped) + [
            {"AutoScalingGroupName": name, "Skipped": "environment %s already sets %s=true"
             % (plan.label, OPTION)} for plan in done for name in plan.names]
        return {"OwnerChanges": changes, "Failures": failures, "Skipped": skipped}

    def notes(self, plan):
        notes = ["each group is tagged %s=%s first, so revert-imds-remediation can put "
                 "the option back" % (PREVIOUS_LAUNCH_TAG, encode_previous_beanstalk_option(
                     previous_value(plan.current)))]
        if plan.draft_failed:
            notes.append("an earlier update setting %s=true failed to deploy: read the "
                         "environment's events (often the caller lacks launch template "
                         "permissions) before running again" % BEANSTALK_OPTION)
        notes.append("the environment is Updating for the deployment's duration; set the "
                     "option in its source (saved configuration, .ebextensions, "
                     "CloudFormation or Terraform) too")
        return notes

    # -- execution ----------------------------------------------------------------------

    def remediate(self, asgs):
        autoscaling, beanstalk = self.beanstalk_clients()
        ready, failures, done = self.read(asgs, autoscaling, beanstalk)
        results = list(self.skipped)
        for plan in done:
            log.info("environment %s: %s is already true; nothing to change", plan.label,
                     OPTION)
            results += self.outcomes(plan, "already-applied",
                                     "%s was already true; nothing was changed" % OPTION)
        for plan in self.progress.each(ready, lambda plan: len(plan.groups)):
            problem = self.apply(autoscaling, beanstalk, plan)
            if problem:
                failures.update({name: problem for name in plan.names})
                continue
            detail = "%s: %s -> true; %s" % (OPTION, shown(plan.current), EFFECT)
            log.info("environment %s: %s", plan.label, detail)
            results += self.outcomes(plan, "applied", detail)
        return self.finish(results, failures)

    def apply(self, autoscaling, beanstalk, plan):
        """Validate, record the way back on every group, update, read back. None, or
        why the environment's groups failed."""
        environment = plan.environment
        name = environment["EnvironmentName"]
        try:
            messages = retry(beanstalk.validate_configuration_settings,
                             ApplicationName=environment["ApplicationName"],
                             EnvironmentName=name, OptionSettings=[OPTION_SETTING])["Messages"]
        except AWS_ERRORS as e:
            return "validating %s=true for environment %s: %s; nothing was changed" % (
                BEANSTALK_OPTION, name, describe_error(e))
        errors = [m for m in messages if m.get("Severity") == "error"]
        for message in messages:
            if message.get("Severity") != "error":
                log.warning("environment %s: %s=true: %s", plan.label, BEANSTALK_OPTION,
                            message.get("Message"))
        if errors:
            return ("Elastic Beanstalk refused %s=true for environment %s: %s; nothing "
                    "was changed" % (BEANSTALK_OPTION, name, "; ".join(
                        "%s (%s %s)" % (m.get("Message"), m.get("Namespace"),
                                        m.get("OptionName")) for m in errors)))
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
            return ("recording the environment's previous %s on its groups failed (%s); "
                    "environment %s was not changed" % (
                        BEANSTALK_OPTION, "; ".join(problem for problem, _ in failed), name))
        try:
            retry(beanstalk.update_environment, EnvironmentId=environment["EnvironmentId"],
                  OptionSettings=[OPTION_SETTING])
        except AWS_ERRORS as e:
            return ("UpdateEnvironment %s=true for environment %s: %s; run again (a re-run "
                    "finds the option if the update was made)" % (
                        BEANSTALK_OPTION, name, describe_error(e)))
        try:
            sets = configuration_sets(beanstalk, environment)
        except AWS_ERRORS as e:
            return ("environment %s was updated, but its configuration could not be read "
                    "back (%s); run again to confirm" % (name, describe_error(e)))
        # While the update deploys, the new value is in the draft ("pending").
        stored = option_value(sets.get("pending") or sets.get("deployed"))
        if not is_true(stored):
            return ("environment %s accepted UpdateEnvironment, but its configuration "
                    "shows %s=%s, not true; read the environment's events, then run again"
                    % (name, BEANSTALK_OPTION, shown(stored)))
        return None

    def outcomes(self, plan, status, detail):
        environment = plan.environment
        return [{"AutoScalingGroupName": name,
                 "Owner": "elasticbeanstalk:%s" % environment["EnvironmentName"],
                 "OwnerFix": {"Action": BEANSTALK_ACTION, "Status": status,
                              "EnvironmentName": environment["EnvironmentName"],
                              "EnvironmentId": environment["EnvironmentId"],
                              "Detail": detail}} for name in plan.names]


register_owner_restore("BeanstalkOption", restore_environment)
