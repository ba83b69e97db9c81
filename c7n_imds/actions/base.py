"""What every remediation action shares: fresh group state, option schemas, the
pre-flight check, tagging, running instances and the end-of-run report."""

import datetime
import functools
import json
import logging

from botocore.exceptions import BotoCoreError, ClientError
from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.utils import chunks

from c7n_imds.actions import running_instances
from c7n_imds.actions.options import RUNNING_INSTANCES_PERMISSIONS, RemediationOptions
from c7n_imds.aws import AWS_ERRORS, THROTTLING_CODES, describe_error, imds_session, retry
from c7n_imds.consumers import GATE_PERMISSIONS, Gate, group_consumer
from c7n_imds.filters.usage import UsageFilter
from c7n_imds.model.changes import (
    GroupChange,
    LaunchChange,
    refusal,
    refused,
    replacement_of_instances,
)
from c7n_imds.model.containers import resolve_hop_limit, runs_containers
from c7n_imds.model.exemptions import parse_exemption
from c7n_imds.model.gate import GateSettings, judge
from c7n_imds.model.outcomes import CHANGED, FAILED, document
from c7n_imds.model.outcomes import outcome as typed_outcome
from c7n_imds.model.ownership import iac_guidance, iac_owner
from c7n_imds.model.preflight import instance_requirements, launch_choice, preflight_parameters
from c7n_imds.model.verify import differences, summary
from c7n_imds.names import (
    CHANGES_FILE,
    DRY_RUN_OK,
    EXEMPT_TAG,
    OWNER_ACTIONS,
    OWNER_FIX_ANNOTATION,
    PRESERVE,
    PREVIOUS_LAUNCH_TAG,
    USAGE_ANNOTATION,
)
from c7n_imds.pacing import PACER, Progress

log = logging.getLogger("custodian.c7n_imds.actions")


GROUP_NAMES_PER_CALL = 50
TAGS_PER_CALL = 25
SSM_IMAGE_PREFIX = "resolve:ssm:"


class RemediationError(PolicyExecutionError):
    """Some groups could not be remediated; the others were."""

    def __init__(self, action, failures):
        self.failures = dict(failures)
        super().__init__(
            "%s failed for %d group(s); the others were processed:\n%s"
            % (
                action,
                len(failures),
                "\n".join(
                    " - %s: %s" % (group, reason) for group, reason in sorted(failures.items())
                ),
            )
        )


def current_groups(autoscaling, asgs):
    """The groups as they are now. Custodian may hand an action a cached listing up to
    --cache-period minutes old; a change must start from the group's current launch
    settings. Groups deleted since are dropped."""
    names = [a["AutoScalingGroupName"] for a in asgs]
    current = {}
    paginator = autoscaling.get_paginator("describe_auto_scaling_groups")
    for batch in chunks(names, GROUP_NAMES_PER_CALL):
        pages = retry(
            lambda: list(
                paginator.paginate(AutoScalingGroupNames=batch, PaginationConfig={"PageSize": 100})
            )
        )
        current.update(
            {a["AutoScalingGroupName"]: a for page in pages for a in page["AutoScalingGroups"]}
        )
    for name in names:
        if name not in current:
            log.info("asg %s: no longer exists; skipped", name)
    return [current[n] for n in names if n in current]


def walk_filters(filters):
    """Every filter of a policy, inside or/and/not blocks too."""
    for f in filters or ():
        yield f
        yield from walk_filters(getattr(f, "filters", None))


def tag_group(autoscaling, group, key, value):
    retry(
        autoscaling.create_or_update_tags,
        Tags=[
            {
                "ResourceId": group,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": False,
            }
        ],
    )


class Remediation(BaseAction):
    """Base for our remediation actions. Each has one shape:

    - ``read(groups, ec2, autoscaling) -> Snapshot``: the groups as they are now and
      what they launch from (describe calls only);
    - ``plan(snapshot) -> Plan``: what will be made and changed, decided from the
      snapshot alone (c7n_imds.model.plans);
    - ``preview(groups)``: the plan, safe to print (what `c7n-imds plan` shows);
    - ``process(groups)``: the same plan carried out - every creation proven (read
      back, pre-flighted) before any group switches - then ``finish`` writes the
      outcome file and fails the policy naming each group that failed.
    """

    skipped = ()  # groups left to their stack, set by eligible()
    # process() sets one per run; this quiet one (no total, so it never reports) lets
    # the shared steps, e.g. VersionMaking.make_versions, be called without it
    progress = Progress("", 0)

    def process(self, resources, event=None):
        """``remediate`` the groups within this action's ``rate-budget`` (a share of
        each of AWS's API buckets, c7n_imds/pacing.py), with a progress line on long
        runs; the process's budget is what it was again afterwards."""
        previous = PACER.budget
        PACER.set_budget(self.options.rate_budget)
        self.progress = Progress(self.type, len(resources))
        self.handed = resources
        try:
            return self.remediate(resources)
        finally:
            PACER.set_budget(previous)

    # an action whose default differs from RemediationOptions' ({option name: value})
    option_defaults: dict = {}

    @functools.cached_property
    def options(self):
        """This action's options with their defaults (RemediationOptions), parsed once."""
        return RemediationOptions.parse(self.data, self.option_defaults)

    def remediate(self, groups):
        raise NotImplementedError

    def eligible(self, groups):
        """Groups this action leaves alone, reported in self.skipped: exempt ones (tag
        c7n-imds:exempt - also when a policy forgot the imds-exempt filter, as a
        Security Hub custom action may), and those owned by CloudFormation, Elastic
        Beanstalk or an EKS managed node group, with what to change there instead,
        unless `iac-managed: remediate`."""

        self.skipped = []
        eligible = []
        for asg in groups:
            if self.exempt(asg):
                continue
            if iac_owner(asg) is None or self.options.iac_managed == "remediate":
                eligible.append(asg)
                continue
            guidance = iac_guidance(asg)
            log.warning("asg %s: not changed: %s", asg["AutoScalingGroupName"], guidance)
            self.skipped.append(
                {"AutoScalingGroupName": asg["AutoScalingGroupName"], "Skipped": guidance}
            )
        return self.passing_gate(eligible)

    def passing_gate(self, groups):
        """The gate over the groups themselves, on their instances as they are now: a
        policy without an imdsv1-usage filter (a Security Hub custom action) is held
        back exactly like the schedule. Counts the policy's filter read already are
        reused, so a scheduled run reads no metric twice."""
        gate = self.gate()
        if gate is None or not groups:
            return groups
        for resource in getattr(self, "handed", ()):
            counted = resource.get(USAGE_ANNOTATION) or {}
            if counted.get("Days") == gate.settings.days:
                gate.calls.update(counted.get("Instances") or {})
        consumers = [group_consumer(asg) for asg in groups]
        gate.check(consumers)
        passing = []
        for asg, consumer in zip(groups, consumers):
            verdict = judge([consumer], gate.calls, gate.settings, gate.today)
            if verdict.passed:
                passing.append(asg)
                continue
            reason = "held back: %s" % "; ".join(verdict.blocked)
            log.info("asg %s: not changed: %s", asg["AutoScalingGroupName"], reason)
            self.skipped.append(
                {"AutoScalingGroupName": asg["AutoScalingGroupName"], "Skipped": reason}
            )
        return passing

    def exempt(self, asg):
        """Whether the group's c7n-imds:exempt tag leaves it alone (then in
        self.skipped, with the reason)."""
        tags = {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}
        today = datetime.datetime.now(datetime.timezone.utc).date()
        if not parse_exemption(tags.get(EXEMPT_TAG), today)["Exempt"]:
            return False
        self.skipped.append(
            {
                "AutoScalingGroupName": asg["AutoScalingGroupName"],
                "Skipped": "exempt: %s" % tags[EXEMPT_TAG],
            }
        )
        log.info("asg %s: exempt (%s); not changed", asg["AutoScalingGroupName"], tags[EXEMPT_TAG])
        return True

    def gate_settings(self):
        """The usage gate of the change contract (c7n_imds.model.gate), applied to every
        group, fleet and instance that will launch from what the action changes. Option
        ``imdsv1-gate`` ({days, missing}; ``enabled: false`` turns it off); by default the
        policy's own ``imdsv1-usage`` filter's days and missing - so a policy run by a
        Security Hub custom action is held back exactly like the schedule - else 14
        days, ``missing: zero``."""
        option = self.options.imdsv1_gate
        if option.get("enabled") is False:
            return None
        if "days" in option or "missing" in option:
            return GateSettings(option.get("days", 14), option.get("missing", "zero"))
        usage = next(
            (
                f
                for f in walk_filters(self.manager.filters if self.manager else ())
                if isinstance(f, UsageFilter)
            ),
            None,
        )
        if usage is None:
            return GateSettings()
        missing = usage.data.get("missing", "exclude")
        return GateSettings(
            usage.data.get("days", 14), "exclude" if missing == "exclude" else "zero"
        )

    def group_change(self, asg, before, after, metadata_before, metadata_after, launch_changes=()):
        """The contract's plan of one group (model/changes.GroupChange), with how its
        running instances are replaced (`running-instances`): an instance refresh that
        replaces them all at once is a launch change of its own."""
        replacement, at_once = replacement_of_instances(
            self.options.running_instances, self.options.refresh_preferences
        )
        changes = list(launch_changes)
        if at_once:
            changes.append(
                LaunchChange(
                    "replace-all-at-once", "refresh-preferences", "running", "all replaced at once"
                )
            )
        return GroupChange(
            asg["AutoScalingGroupName"],
            before,
            after,
            metadata_before or {},
            metadata_after or {},
            changes,
            replacement,
        )

    def refusal(self, change):
        """Why a group's plan is refused - launch changes beyond metadata options that
        the policy did not opt in to (allow-launch-changes) - or None."""
        beyond = refused(change.launch_changes, self.options.allow_launch_changes)
        return refusal("the change to group %s" % change.group, beyond) if beyond else None

    def gate(self):
        """A Gate for this policy's account and region, or None when turned off."""
        settings = self.gate_settings()
        return Gate(imds_session(self.manager), settings) if settings else None

    def owned(self, groups, owner_tag):
        """For the actions that fix a group at its owner: the groups whose owner is of
        ``owner_tag``'s kind (c7n_imds.model.ownership.iac_owner) and that are not exempt.
        The others are in self.skipped, with what does fix them."""
        self.skipped = []
        owned = []
        for asg in groups:
            if self.exempt(asg):
                continue
            owner = iac_owner(asg)
            if owner is not None and owner[0] == owner_tag:
                owned.append(asg)
                continue
            reason = (
                iac_guidance(asg)
                if owner
                else (
                    "not owned by a stack or service; the in-place actions "
                    "(convert-to-launch-template, set-metadata-access) fix it"
                )
            )
            log.info(
                "asg %s: not changed by %s: %s", asg["AutoScalingGroupName"], self.type, reason
            )
            self.skipped.append(
                {"AutoScalingGroupName": asg["AutoScalingGroupName"], "Skipped": reason}
            )
        return owned

    # What the usage gate reads (``imdsv1-gate``, on by default).
    gate_permissions = GATE_PERMISSIONS
    # What the pre-flight DryRun needs (``verify``, on by default).
    verify_permissions = ("ec2:RunInstances",)

    def get_permissions(self):
        """Only what the action's options use: ``running-instances: keep`` needs no
        permission on running instances, ``verify: false`` none for the pre-flight."""
        permissions = set(self.permissions)
        if self.options.imdsv1_gate.get("enabled", True):
            permissions.update(self.gate_permissions)
        if self.options.verify:
            permissions.update(self.verify_permissions)
        permissions.update(RUNNING_INSTANCES_PERMISSIONS.get(self.options.running_instances, ()))
        return sorted(permissions)

    def hop_limit(self, groups, existing_metadata_options, user_data=None):
        return resolve_hop_limit(
            self.options.hop_limit,
            existing_metadata_options,
            any(runs_containers(asg, user_data) for asg in groups),
        )

    def clients(self):
        session = imds_session(self.manager)
        return session.client("ec2"), session.client("autoscaling")

    def validate(self):
        """Refuse at validate time what AWS would refuse only after groups switched."""
        preferences = self.options.refresh_preferences
        problem = running_instances.refresh_preferences_problem(preferences)
        if problem:
            raise PolicyValidationError(
                "policy %s: action %s: refresh-preferences: %s"
                % (
                    (self.manager.data or {}).get("name", "?") if self.manager else "?",
                    self.type,
                    problem,
                )
            )
        return self

    def preflight(self, ec2, asg, spec, template_id, version, launch_template_data):
        """Ask EC2 whether it would launch the group from this template version,
        without launching. Launch template parameters are not validated when a
        template or version is created; a bad one would otherwise surface only at the
        group's next scale-out. Returns None when the launch would succeed, else the
        reason. ``spec`` is the group's template specification (None for a group
        about to be switched from a launch configuration): in a mixed instances
        policy it decides which override's instance type and image the check uses.
        Groups that would launch the same way share one check: RunInstances has the
        smallest of EC2's rate limits. Each verdict is logged."""
        if not self.options.verify:
            return None
        name = asg["AutoScalingGroupName"]
        choice = launch_choice(asg, spec)
        requirements = instance_requirements(choice, launch_template_data)
        instance_type = None
        if requirements:
            image_id = choice.get("ImageId") or launch_template_data.get("ImageId")
            instance_type, problem = self.concrete_instance_type(ec2, requirements, image_id)
            if problem:
                log.info(
                    "asg %s: pre-flight launch template %s version %s: %s",
                    name,
                    template_id,
                    version,
                    problem,
                )
                return problem
        params = preflight_parameters(
            asg, template_id, version, launch_template_data, choice, instance_type
        )
        key = json.dumps(params, sort_keys=True)
        checked = self.__dict__.setdefault("_preflight_checked", {})
        if key not in checked:
            checked[key] = self._dry_run(ec2, params, template_id, version)
        log.info(
            "asg %s: pre-flight launch template %s version %s, instance type %s%s: %s",
            name,
            template_id,
            version,
            params.get("InstanceType")
            or launch_template_data.get("InstanceType")
            or "the template's",
            ", image %s" % params["ImageId"] if params.get("ImageId") else "",
            "would launch" if checked[key] is None else checked[key],
        )
        return checked[key]

    def concrete_instance_type(self, ec2, requirements, image_id):
        """(instance type, None) for attribute-based selection - RunInstances cannot
        take InstanceRequirements - or (None, reason)."""
        cache = self.__dict__.setdefault("_requirement_types", {})
        key = json.dumps([requirements, image_id], sort_keys=True, default=str)
        if key in cache:
            return cache[key]
        try:
            image = self.image_platform(ec2, image_id)
            types = retry(
                ec2.get_instance_types_from_instance_requirements,
                ArchitectureTypes=[image["Architecture"]],
                VirtualizationTypes=[image["VirtualizationType"]],
                InstanceRequirements=requirements,
                MaxResults=10,
            )["InstanceTypes"]
        except AWS_ERRORS + (LookupError,) as e:
            cache[key] = (
                None,
                "could not find an instance type for the template's "
                "InstanceRequirements (%s); the group was left unchanged - run "
                "the policy again" % describe_error(e),
            )
            return cache[key]
        if not types:
            cache[key] = (
                None,
                "no instance type matches the template's "
                "InstanceRequirements for image %s; the group was left unchanged" % image_id,
            )
        else:
            cache[key] = (types[0]["InstanceType"], None)
        return cache[key]

    def image_platform(self, ec2, image_id):
        """{Architecture, VirtualizationType} of an image; an image named by an SSM
        parameter (``resolve:ssm:NAME``) is resolved first."""
        if image_id and image_id.startswith(SSM_IMAGE_PREFIX):
            ssm = imds_session(self.manager).client("ssm")
            parameter = retry(ssm.get_parameters, Names=[image_id[len(SSM_IMAGE_PREFIX) :]])
            image_id = parameter["Parameters"][0]["Value"] if parameter["Parameters"] else None
        images = retry(ec2.describe_images, ImageIds=[image_id])["Images"] if image_id else []
        if not images:
            raise LookupError("image %s not found" % image_id)
        return {
            "Architecture": images[0].get("Architecture") or "x86_64",
            "VirtualizationType": images[0].get("VirtualizationType") or "hvm",
        }

    def stored_problem(self, what, expected, stored, warnings, groups):
        """The read-back verdict: None when AWS stored what the groups should launch
        (the accepted normalisations aside), else the reason. Field-level differences
        go into the outcome file for each group, user data only as size and SHA-256."""
        if warnings:
            return (
                "%s: AWS accepted the create with a warning (%s); it is not used and "
                "the group was left unchanged - fix what AWS names in the source, then "
                "run again" % (what, "; ".join(warnings))
            )
        found = differences(expected, stored)
        if not found:
            return None
        recorded = self.__dict__.setdefault("read_back_differences", {})
        for group in groups:
            recorded[group] = found
        return (
            "%s as stored by AWS differs from what the group launched before: %s; "
            "it is not used and the group was left unchanged - every differing field "
            "is in %s (docs/readback.md says what is compared)"
            % (what, summary(found), CHANGES_FILE)
        )

    def _dry_run(self, ec2, params, template_id, version):
        try:
            retry(ec2.run_instances, **params)
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code == DRY_RUN_OK:
                return None
            if code not in THROTTLING_CODES:
                return (
                    "pre-flight RunInstances (DryRun) refused launch template %s "
                    "version %s: %s; the group was left unchanged"
                    % (template_id, version, describe_error(e))
                )
            error = e
        except BotoCoreError as e:
            error = e
        else:
            return None
        return (
            "could not verify launch template %s version %s (%s); the group was left "
            "unchanged - run the policy again" % (template_id, version, describe_error(error))
        )

    def record_previous_launch(self, autoscaling, group, value):
        # Recorded before the change, so a crash between the calls still leaves a way back.
        tag_group(autoscaling, group, PREVIOUS_LAUNCH_TAG, value)

    def record_previous_launches(self, autoscaling, values):
        """{group: tag value} in as few CreateOrUpdateTags calls as possible (25 per
        call, AWS's maximum: one call per group would make the tags the slowest part of
        a large run). Returns [(problem, groups)] for the batches that failed."""
        tags = [
            {
                "ResourceId": group,
                "ResourceType": "auto-scaling-group",
                "Key": PREVIOUS_LAUNCH_TAG,
                "Value": value,
                "PropagateAtLaunch": False,
            }
            for group, value in sorted(values.items())
        ]
        failed = []
        for batch in chunks(tags, TAGS_PER_CALL):
            try:
                retry(autoscaling.create_or_update_tags, Tags=batch)
            except AWS_ERRORS as e:
                failed.append((describe_error(e), [t["ResourceId"] for t in batch]))
        return failed

    def update_running_instances(
        self, ec2, autoscaling, switched, results, failures, uses_template, metadata=None
    ):
        """Apply the `running-instances` option to groups that were switched. Runs only
        after the switch, so instances never get options their group would not give."""
        mode = self.options.running_instances
        if mode == "keep" or not switched:
            return
        by_name = {r["AutoScalingGroupName"]: r for r in results}
        for asg in switched:
            name = asg["AutoScalingGroupName"]
            try:
                if mode == "modify":
                    # exactly the options the group's new launch source carries
                    options = (metadata or {}).get(name) or {}
                    outcome = running_instances.modify_in_service(
                        ec2,
                        asg,
                        options.get("HttpTokens", self.options.http_tokens),
                        options.get("HttpPutResponseHopLimit", PRESERVE),
                        options.get("HttpEndpoint", PRESERVE),
                    )
                else:
                    outcome = running_instances.start_refresh(
                        autoscaling,
                        asg,
                        self.options.refresh_preferences,
                        uses_template=uses_template,
                    )
            except AWS_ERRORS as e:
                failures[name] = "group switched, but %s of its running instances failed: %s" % (
                    mode,
                    describe_error(e),
                )
                continue
            by_name.setdefault(name, {"AutoScalingGroupName": name})["RunningInstances"] = outcome

    def finish(self, results, failures):
        """Write the per-group outcome file and fail the policy if any group failed. A
        group fixed at its owner gets its OwnerFix record as the c7n-imds:owner-fix
        annotation on the resource custodian handed us, so that a ``notify`` after this
        action can tell the owner (the change set to review, say)."""
        handed = {r.get("AutoScalingGroupName"): r for r in getattr(self, "handed", ())}
        for outcome in results:
            if "OwnerFix" in outcome and outcome["AutoScalingGroupName"] in handed:
                handed[outcome["AutoScalingGroupName"]][OWNER_FIX_ANNOTATION] = dict(
                    outcome["OwnerFix"]
                )
        differences_ = self.__dict__.get("read_back_differences", {})
        for group, reason in sorted(failures.items()):
            log.error("asg %s: not remediated: %s", group, reason)
            outcome = {"AutoScalingGroupName": group, "Error": reason}
            if group in differences_:
                outcome["Differences"] = differences_[group]
            results.append(outcome)
        # the contract's outcome: one typed record per group (model/outcomes.py)
        planned = self.__dict__.get("planned_changes", {})
        owner_action = self.type in OWNER_ACTIONS
        outcomes = []
        for entry in results:
            if not entry.get("AutoScalingGroupName"):
                continue
            recorded = typed_outcome(entry, self.type, owner_action)
            if recorded.status in (CHANGED, FAILED) and recorded.group_change is None:
                recorded.group_change = planned.get(recorded.group)
            outcomes.append(recorded)
        self.manager.ctx.output.write_file(
            CHANGES_FILE, json.dumps(document(outcomes), indent=2, default=str)
        )
        if failures:
            raise RemediationError(self.type, failures)
        return results

    def remember(self, plan):
        """Keep the plan's GroupChange of each group for its outcome record."""
        self.planned_changes = {
            change.group: change.record()
            for item in plan.items
            for change in getattr(item, "group_changes", ())
        }
        return plan
