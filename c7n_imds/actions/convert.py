"""`convert-to-launch-template`: launch configuration -> IMDSv2 launch template."""

import logging

from c7n.resources.asg import ASG, LaunchConfig
from c7n.utils import type_schema

from c7n_imds import sources
from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.launch_templates import TemplateMaking, TemplateRefused
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
from c7n_imds.actions.trust import TRUSTED_PRINCIPALS_SCHEMA
from c7n_imds.aws import AWS_ERRORS, all_groups, describe_error, retry
from c7n_imds.model.changes import configuration_view, data_changes, template_view
from c7n_imds.model.launch_source import launch_references
from c7n_imds.model.plans import Plan, Snapshot, TemplatePlan
from c7n_imds.model.provenance import (
    encode_previous_launch,
    source_identity,
    template_name,
)
from c7n_imds.model.translate import TranslationError, launch_template_data, security_group_names
from c7n_imds.names import (
    CONVERT_ACTION,
    LAUNCH_CONFIGURATION,
    PRESERVE,
)
from c7n_imds.sources import LaunchSources

log = logging.getLogger("custodian.c7n_imds.actions")


@ASG.action_registry.register(CONVERT_ACTION)
class ConvertToLaunchTemplate(TemplateMaking, Remediation):
    """Move launch-configuration groups to a new launch template that requires IMDSv2.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-lc-to-imdsv2-launch-template
            resource: asg
            filters:
            - {type: imds, key: LaunchType, value: launch-configuration}
            - {type: imds, key: HttpTokens, value: optional}
            actions:
            - {type: convert-to-launch-template, hop-limit: preserve, version: $Default}
    """

    schema = type_schema(
        CONVERT_ACTION,
        **{
            "http-tokens": {"enum": ["required", PRESERVE]},
            "hop-limit": HOP_LIMIT_SCHEMA,
            "http-endpoint": HTTP_ENDPOINT_SCHEMA,
            "version": {"enum": ["$Default", "$Latest"]},
            "verify": {"type": "boolean"},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 16},
            "iac-managed": IAC_MANAGED_SCHEMA,
            "running-instances": RUNNING_INSTANCES_SCHEMA,
            "rate-budget": RATE_BUDGET_SCHEMA,
            "refresh-preferences": REFRESH_PREFERENCES_SCHEMA,
            "trusted-principals": TRUSTED_PRINCIPALS_SCHEMA,
            "allow-launch-changes": ALLOW_LAUNCH_CHANGES_SCHEMA,
            "imdsv1-gate": IMDSV1_GATE_SCHEMA,
        },
    )
    permissions = LaunchSources.permissions + (
        "ec2:DescribeLaunchTemplates",
        "ec2:CreateLaunchTemplate",
        "ec2:CreateTags",
        "ec2:DeleteLaunchTemplate",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        "ec2:DescribeSecurityGroups",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:CreateOrUpdateTags",
        # AWS checks these when a group is switched to a template.
        "ec2:RunInstances",
        "iam:PassRole",
    )

    # -- planning: what each launch configuration becomes (no changes) -----------------

    def read(self, asgs, ec2, autoscaling):
        """Everything a plan is made from, read now (describe calls only): the groups
        as they are, the launch configurations they name, and the ids of the security
        groups those configurations name."""
        groups = []
        for asg in self.eligible(current_groups(autoscaling, asgs)):
            if launch_references(asg)[0] == LAUNCH_CONFIGURATION:
                groups.append(asg)
            else:
                log.info(
                    "asg %s: does not launch from a launch configuration (any more); skipped",
                    asg["AutoScalingGroupName"],
                )
        loaded = LaunchSources.for_manager(self.manager, ec2, autoscaling).load(groups)
        configurations = {
            asg["AutoScalingGroupName"]: loaded.launch_configuration(asg["LaunchConfigurationName"])
            for asg in groups
        }
        return Snapshot(
            groups=groups,
            launch_configurations=configurations,
            security_group_ids=self.resolve_security_groups(
                ec2, self.by_configuration(groups, configurations).values()
            ),
        )

    @staticmethod
    def by_configuration(groups, configurations):
        """{configuration identity: (configuration, [groups])}, groups whose
        configuration exists."""
        by_config = {}
        for asg in groups:
            config = configurations.get(asg["AutoScalingGroupName"])
            if config is not None:
                by_config.setdefault(source_identity(config), (config, []))[1].append(asg)
        return by_config

    def plan(self, snapshot):
        """The Plan, from a snapshot alone: a TemplatePlan per launch configuration, the
        groups that cannot be converted and why, and those left alone."""
        failures = {
            asg["AutoScalingGroupName"]: (
                "launch configuration %r no longer exists; point the group at a valid one "
                "first" % asg["LaunchConfigurationName"]
            )
            for asg in snapshot.groups
            if snapshot.launch_configurations.get(asg["AutoScalingGroupName"]) is None
        }
        plans = []
        for config, config_groups in self.by_configuration(
            snapshot.groups, snapshot.launch_configurations
        ).values():
            try:
                plans.append(self.plan_template(config, config_groups, snapshot.security_group_ids))
            except TranslationError as e:
                for asg in config_groups:
                    failures[asg["AutoScalingGroupName"]] = str(e)
        return Plan(items=plans, failures=failures, skipped=list(self.skipped))

    def resolve_security_groups(self, ec2, configs_and_groups):
        """{(group name, SG name): SG id} for configurations that name groups."""
        needing = [
            (config, groups)
            for config, groups in configs_and_groups
            if security_group_names(config)
        ]
        if not needing:
            return {}
        vpcs = sources.group_vpcs(ec2, [a for _, groups in needing for a in groups])
        wanted = {}
        for config, groups in needing:
            for asg in groups:
                vpc = vpcs[asg["AutoScalingGroupName"]]
                if vpc:
                    wanted.setdefault(vpc, set()).update(security_group_names(config))
        by_vpc = sources.security_group_ids_by_name(ec2, wanted)
        return {
            (asg["AutoScalingGroupName"], sg): by_vpc.get((vpcs[asg["AutoScalingGroupName"]], sg))
            for config, groups in needing
            for asg in groups
            for sg in security_group_names(config)
        }

    def plan_template(self, config, groups, resolved):
        config_name = config["LaunchConfigurationName"]
        security_group_ids = None
        if security_group_names(config):
            choices = set()
            for asg in groups:
                ids = []
                for sg in config["SecurityGroups"]:
                    if sg in security_group_names(config):
                        sg_id = resolved.get((asg["AutoScalingGroupName"], sg))
                        if sg_id is None:
                            raise TranslationError(
                                "security group %r of launch configuration %r does not "
                                "exist in the VPC of group %s; fix the configuration's "
                                "security groups first"
                                % (sg, config_name, asg["AutoScalingGroupName"])
                            )
                        ids.append(sg_id)
                    else:
                        ids.append(sg)
                choices.add(tuple(ids))
            if len(choices) > 1:
                raise TranslationError(
                    "launch configuration %r names security groups that resolve to "
                    "different ids in the VPCs of its groups; one template cannot serve "
                    "them all - give the configuration group ids instead" % config_name
                )
            security_group_ids = list(choices.pop())
        data, notes = launch_template_data(
            config,
            security_group_ids,
            http_tokens=self.options.http_tokens,
            hop_limit=self.hop_limit(groups, config.get("MetadataOptions"), config.get("UserData")),
            http_endpoint=self.options.http_endpoint,
        )
        for note in notes:
            log.warning("launch configuration %r: %s", config_name, note)
        # the contract: the template launches what the configuration did, metadata
        # options aside - judged on views that share no code with the translation
        launch_changes = data_changes(
            configuration_view(config, security_group_ids), template_view(data)
        )
        name = template_name(config)
        changes = [
            self.group_change(
                asg,
                "launch configuration %s" % config_name,
                "launch template %s version 1 (new)" % name,
                config.get("MetadataOptions"),
                data["MetadataOptions"],
                launch_changes,
            )
            for asg in groups
        ]
        for change in changes:
            problem = self.refusal(change)
            if problem:
                raise TranslationError(problem)
        return TemplatePlan(
            launch_configuration_name=config_name,
            source_created=source_identity(config)[1],
            launch_template_name=name,
            launch_template_data=data,
            notes=notes,
            groups=groups,
            group_changes=changes,
        )

    def preview(self, asgs):
        """The plan in a form safe to print: user data as size and hash only."""
        ec2, autoscaling = self.clients()
        return self.plan(self.read(asgs, ec2, autoscaling)).preview("Templates")

    # -- execution --------------------------------------------------------------------

    def remediate(self, asgs):
        ec2, autoscaling = self.clients()
        plan = self.remember(self.plan(self.read(asgs, ec2, autoscaling)))
        plans, failures = plan.items, plan.failures
        existing = self.existing_templates(ec2, [p.launch_template_name for p in plans])
        results, switched = list(self.skipped), []
        # Launch configurations are independent of each other; `concurrency` of them are
        # converted at a time (EC2's rate limits bound what more workers could gain).
        with self.executor_factory(max_workers=self.data.get("concurrency", 1)) as pool:
            outcomes = pool.map(lambda plan: self.convert(ec2, autoscaling, plan, existing), plans)
            for plan, (plan_results, plan_failures, plan_switched) in zip(plans, outcomes):
                results.extend(plan_results)
                failures.update(plan_failures)
                switched.extend(plan_switched)
                self.progress.advance(len(plan.groups))
        metadata = {
            asg["AutoScalingGroupName"]: plan.launch_template_data["MetadataOptions"]
            for plan in plans
            for asg in plan.groups
        }
        self.update_running_instances(
            ec2, autoscaling, switched, results, failures, uses_template=True, metadata=metadata
        )
        return self.finish(results, failures)

    def convert(self, ec2, autoscaling, plan, existing):
        """One launch configuration: its template, then its groups.
        Returns (results, failures, switched groups)."""
        results, failures, switched = [], {}, []
        names = [asg["AutoScalingGroupName"] for asg in plan.groups]
        try:
            template, stored, created, warnings = self.ensure_template(ec2, plan, existing)
        except AWS_ERRORS + (TemplateRefused,) as e:
            for name in names:
                failures[name] = "creating launch template %s: %s" % (
                    plan.launch_template_name,
                    describe_error(e),
                )
            return results, failures, switched
        # Nothing switches to the template before it is proven: what AWS stored must be
        # the configuration, translated, plus the requested metadata options ...
        problem = self.stored_problem(
            "launch template %s (%s) version %s"
            % (plan.launch_template_name, template["LaunchTemplateId"], stored["VersionNumber"]),
            plan.launch_template_data,
            stored.get("LaunchTemplateData"),
            warnings,
            names,
        )
        if problem and not created:
            problem = self.reuse_problem(plan, stored) or problem
        ready = []
        for asg in plan.groups if not problem else ():
            # ... and EC2 must launch it, as each group would.
            refused = self.preflight(
                ec2,
                asg,
                None,
                template["LaunchTemplateId"],
                stored["VersionNumber"],
                stored.get("LaunchTemplateData") or {},
            )
            if refused:
                failures[asg["AutoScalingGroupName"]] = refused
            else:
                ready.append(asg)
        if problem:
            failures.update({name: problem for name in names})
        if not ready:
            if created:
                self.withdraw_template(ec2, template)
            return results, failures, switched
        version = self.options.version
        # Where every ready group came from is recorded, in batches, before any switch;
        # a group whose tag could not be written is not switched.
        untagged = set()
        for problem, names in self.record_previous_launches(
            autoscaling,
            {
                asg["AutoScalingGroupName"]: encode_previous_launch(
                    {"LaunchConfigurationName": asg["LaunchConfigurationName"]}
                )
                for asg in ready
            },
        ):
            untagged.update(names)
            failures.update({name: "tagging the group: %s" % problem for name in names})
        ready = [asg for asg in ready if asg["AutoScalingGroupName"] not in untagged]
        if not ready:
            return results, failures, switched
        for asg in ready:
            group = asg["AutoScalingGroupName"]
            try:
                self.switch_group(autoscaling, asg, plan, template)
            except AWS_ERRORS as e:
                failures[group] = "switching to launch template %s: %s" % (
                    template["LaunchTemplateId"],
                    describe_error(e),
                )
                continue
            switched.append(asg)
            results.append(
                {
                    "AutoScalingGroupName": group,
                    "LaunchConfigurationName": plan.launch_configuration_name,
                    "LaunchTemplateId": template["LaunchTemplateId"],
                    "LaunchTemplateName": plan.launch_template_name,
                    "Version": version,
                    "TemplateCreated": created,
                }
            )
        return results, failures, switched

    def switch_group(self, autoscaling, asg, plan, template):
        group, version = asg["AutoScalingGroupName"], self.options.version
        retry(
            autoscaling.update_auto_scaling_group,
            AutoScalingGroupName=group,
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": version},
        )
        log.info(
            "asg %s: launch configuration %r -> launch template %s (%s) %s, HttpTokens %s",
            group,
            plan.launch_configuration_name,
            plan.launch_template_name,
            template["LaunchTemplateId"],
            version,
            plan.launch_template_data["MetadataOptions"].get("HttpTokens", "unset"),
        )


@LaunchConfig.action_registry.register(CONVERT_ACTION)
class ConvertLaunchConfigurationGroups(ConvertToLaunchTemplate):
    """Convert every Auto Scaling group that uses these launch configurations to an
    IMDSv2 launch template.

    :example:

    .. code-block:: yaml

        policies:
          - name: autoscaling-3-remediate-from-finding
            resource: launch-config
            mode:
              type: hub-action
              role: arn:aws:iam::{account_id}:role/c7n-imds-lambda
              packages:
              - c7n_imds
              handler: c7n_imds.handler.run
            filters:
            - {type: imds, key: HttpTokens, value: optional}
            actions:
            - convert-to-launch-template
    """

    def groups_using(self, configs):
        """The groups that launch from any of these configurations, read fresh."""
        _, autoscaling = self.clients()
        # Names compared stripped: recorded answers carry trailing spaces on either side.
        names = {c["LaunchConfigurationName"].strip() for c in configs}
        groups = [
            asg
            for asg in all_groups(autoscaling)
            if launch_references(asg)[0] == LAUNCH_CONFIGURATION
            and asg["LaunchConfigurationName"].strip() in names
        ]
        if not groups:
            log.info(
                "no Auto Scaling group uses launch configuration(s) %s", ", ".join(sorted(names))
            )
        return groups

    def preview(self, configs):
        return super().preview(self.groups_using(configs))

    def process(self, configs):
        groups = self.groups_using(configs)
        if not groups:
            return self.finish([], {})
        return super().process(groups)
