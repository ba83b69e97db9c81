"""`copy-launch-configuration`: AWS's deprecated fix - an IMDSv2 copy of the launch
configuration."""

import base64
import logging

from botocore.exceptions import BotoCoreError, ClientError
from c7n.resources.asg import ASG
from c7n.utils import chunks, type_schema

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
from c7n_imds.aws import AWS_ERRORS, describe_error, retry
from c7n_imds.model.changes import configuration_view, data_changes
from c7n_imds.model.launch_source import launch_references
from c7n_imds.model.plans import CopyPlan, Plan, Snapshot
from c7n_imds.model.provenance import copy_name, encode_previous_launch, source_identity
from c7n_imds.model.translate import (
    CLASSIC_LINK_FIELDS,
    TranslationError,
    launch_configuration_copy,
)
from c7n_imds.model.verify import expected_configuration_copy, stored_configuration
from c7n_imds.names import CONFIGURATION_EXISTS, COPY_ACTION, LAUNCH_CONFIGURATION
from c7n_imds.sources import LC_NAMES_PER_CALL, LaunchSources

log = logging.getLogger("custodian.c7n_imds.actions")


def launch_configurations_unavailable(error):
    """Accounts created on or after 2024-10-01 cannot create launch configurations."""
    message = error.response["Error"].get("Message", "")
    return (
        error.response["Error"]["Code"] == "UnsupportedOperation"
        or "not available in your account" in message
    )


def sent_as_described(parameters):
    """CreateLaunchConfiguration parameters (user data as raw bytes, which botocore
    encodes) as DescribeLaunchConfigurations would show them."""
    if isinstance(parameters.get("UserData"), bytes):
        return dict(parameters, UserData=base64.b64encode(parameters["UserData"]).decode())
    return parameters


@ASG.action_registry.register(COPY_ACTION)
class CopyLaunchConfiguration(Remediation):
    """Switch launch-configuration groups to a copy of their configuration that
    requires IMDSv2 (AWS's second, deprecated procedure for AutoScaling.3).

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-lc-copy-imdsv2
            resource: asg
            filters:
            - {type: imds, key: LaunchType, value: launch-configuration}
            - {type: imds, key: HttpTokens, value: optional}
            actions:
            - type: copy-launch-configuration
    """

    schema = type_schema(
        COPY_ACTION,
        **{
            "hop-limit": HOP_LIMIT_SCHEMA,
            "iac-managed": IAC_MANAGED_SCHEMA,
            "http-endpoint": HTTP_ENDPOINT_SCHEMA,
            "running-instances": RUNNING_INSTANCES_SCHEMA,
            "rate-budget": RATE_BUDGET_SCHEMA,
            "refresh-preferences": REFRESH_PREFERENCES_SCHEMA,
            "allow-launch-changes": ALLOW_LAUNCH_CHANGES_SCHEMA,
            "imdsv1-gate": IMDSV1_GATE_SCHEMA,
        },
    )
    permissions = LaunchSources.permissions + (
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:CreateLaunchConfiguration",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:CreateOrUpdateTags",
        "iam:PassRole",
    )
    verify_permissions = ()  # no pre-flight: RunInstances cannot dry-run a configuration

    def read(self, asgs, ec2, autoscaling):
        """Everything a plan is made from, read now (describe calls only): the groups
        as they are and the launch configurations they name."""
        groups = [
            a
            for a in self.eligible(current_groups(autoscaling, asgs))
            if launch_references(a)[0] == LAUNCH_CONFIGURATION
        ]
        loaded = LaunchSources.for_manager(self.manager, ec2, autoscaling).load(groups)
        return Snapshot(
            groups=groups,
            launch_configurations={
                asg["AutoScalingGroupName"]: loaded.launch_configuration(
                    asg["LaunchConfigurationName"]
                )
                for asg in groups
            },
        )

    def plan(self, snapshot):
        """The Plan, from a snapshot alone: a CopyPlan per launch configuration, the
        groups that cannot be copied for and why, those left alone."""
        groups = snapshot.groups
        plans, failures = {}, {}
        for asg in groups:
            config = snapshot.launch_configurations.get(asg["AutoScalingGroupName"])
            if config is None:
                failures[asg["AutoScalingGroupName"]] = (
                    "launch configuration %r no longer exists" % asg["LaunchConfigurationName"]
                )
                continue
            identity = source_identity(config)
            if identity not in plans:
                try:
                    params, notes = launch_configuration_copy(
                        config,
                        copy_name(config),
                        hop_limit=self.hop_limit(
                            [
                                a
                                for a in groups
                                if a["LaunchConfigurationName"] == asg["LaunchConfigurationName"]
                            ],
                            config.get("MetadataOptions"),
                            config.get("UserData"),
                        ),
                        http_endpoint=self.options.http_endpoint,
                    )
                except TranslationError as e:
                    failures[asg["AutoScalingGroupName"]] = str(e)
                    continue
                for note in notes:
                    log.warning("launch configuration %r: %s", identity[0], note)
                plans[identity] = CopyPlan(source=identity[0], config=config, parameters=params)
            plan = plans[identity]
            # the contract: the copy launches what the configuration did, metadata aside
            change = self.group_change(
                asg,
                "launch configuration %s" % identity[0],
                "launch configuration %s (new copy)" % plan.copy_name,
                config.get("MetadataOptions"),
                plan.parameters.get("MetadataOptions"),
                data_changes(
                    configuration_view(config),
                    configuration_view(sent_as_described(plan.parameters)),
                ),
            )
            problem = self.refusal(change)
            if problem:
                failures[asg["AutoScalingGroupName"]] = problem
                continue
            plan.groups.append(asg)
            plan.group_changes.append(change)
        return Plan(items=list(plans.values()), failures=failures, skipped=list(self.skipped))

    def preview(self, asgs):
        """What `process` would create: one copy per launch configuration (user data
        is not shown)."""
        ec2, autoscaling = self.clients()
        return self.plan(self.read(asgs, ec2, autoscaling)).preview("Copies")

    def remediate(self, asgs):
        ec2, autoscaling = self.clients()
        plan = self.remember(self.plan(self.read(asgs, ec2, autoscaling)))
        plans, failures = plan.items, plan.failures
        existing = self.existing(
            autoscaling, [p.parameters["LaunchConfigurationName"] for p in plans]
        )
        results, switched, unavailable = list(self.skipped), [], None
        for plan in self.progress.each(plans, lambda plan: len(plan.groups)):
            name = plan.parameters["LaunchConfigurationName"]
            if unavailable is None and name not in existing:
                try:
                    retry(autoscaling.create_launch_configuration, **plan.parameters)
                    log.info(
                        "launch configuration %r created from %r with HttpTokens required",
                        name,
                        plan.source,
                    )
                except BotoCoreError as e:
                    for asg in plan.groups:
                        failures[asg["AutoScalingGroupName"]] = (
                            "copying launch configuration %r: %s" % (plan.source, describe_error(e))
                        )
                    continue
                except ClientError as e:
                    if launch_configurations_unavailable(e):
                        unavailable = describe_error(e)
                    elif e.response["Error"]["Code"] != CONFIGURATION_EXISTS:
                        for asg in plan.groups:
                            failures[asg["AutoScalingGroupName"]] = (
                                "copying launch configuration %r: %s"
                                % (plan.source, describe_error(e))
                            )
                        continue
            if unavailable is not None:
                for asg in plan.groups:
                    failures[asg["AutoScalingGroupName"]] = (
                        "this account cannot create launch configurations (%s); nothing "
                        "was changed - use convert-to-launch-template instead" % unavailable
                    )
                continue
            try:
                problem = self.check_copy(autoscaling, plan)
            except AWS_ERRORS as e:
                problem = "reading back launch configuration %r: %s" % (name, describe_error(e))
            if problem:
                for asg in plan.groups:
                    failures[asg["AutoScalingGroupName"]] = problem
                continue
            for asg in plan.groups:
                group = asg["AutoScalingGroupName"]
                try:
                    self.record_previous_launch(
                        autoscaling,
                        group,
                        encode_previous_launch(
                            {"LaunchConfigurationName": asg["LaunchConfigurationName"]}
                        ),
                    )
                    retry(
                        autoscaling.update_auto_scaling_group,
                        AutoScalingGroupName=group,
                        LaunchConfigurationName=name,
                    )
                except AWS_ERRORS as e:
                    failures[group] = "switching to %r: %s" % (name, describe_error(e))
                    continue
                log.info(
                    "asg %s: launch configuration %r -> %r, HttpTokens required",
                    group,
                    plan.source,
                    name,
                )
                switched.append(asg)
                results.append(
                    {
                        "AutoScalingGroupName": group,
                        "LaunchConfigurationName": plan.source,
                        "CopyLaunchConfigurationName": name,
                    }
                )
        metadata = {
            asg["AutoScalingGroupName"]: plan.parameters["MetadataOptions"]
            for plan in plans
            for asg in plan.groups
        }
        self.update_running_instances(
            ec2, autoscaling, switched, results, failures, uses_template=False, metadata=metadata
        )
        return self.finish(results, failures)

    def check_copy(self, autoscaling, plan):
        """The read-back: the copy as AWS stored it must be the source configuration in
        every field but its name and metadata options. None, or the reason."""
        name = plan.parameters["LaunchConfigurationName"]
        stored = retry(autoscaling.describe_launch_configurations, LaunchConfigurationNames=[name])[
            "LaunchConfigurations"
        ]
        if not stored:
            return (
                "launch configuration %r was created but is not visible yet; run the "
                "policy again to finish" % name
            )
        return self.stored_problem(
            "launch configuration %r (copy of %r)" % (name, plan.source),
            expected_configuration_copy(
                plan.config, name, plan.parameters["MetadataOptions"], dropped=CLASSIC_LINK_FIELDS
            ),
            stored_configuration(stored[0], dropped=CLASSIC_LINK_FIELDS),
            [],
            [asg["AutoScalingGroupName"] for asg in plan.groups],
        )

    def existing(self, autoscaling, names):
        found = set()
        for batch in chunks(sorted(set(names)), LC_NAMES_PER_CALL):
            found.update(
                c["LaunchConfigurationName"]
                for c in retry(
                    autoscaling.describe_launch_configurations,
                    LaunchConfigurationNames=batch,
                    MaxRecords=100,
                )["LaunchConfigurations"]
            )
        return found
