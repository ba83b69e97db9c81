"""`set-nodegroup-metadata-access`: the groups of EKS managed node groups get IMDSv2
where EKS defines them - a new version of the node group's launch template, then
UpdateNodegroupVersion - and `restore_nodegroup`, the way back for the revert."""

import logging

from botocore.exceptions import ClientError
from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import (
    ALLOW_LAUNCH_CHANGES_SCHEMA,
    HOP_LIMIT_SCHEMA,
    HTTP_ENDPOINT_SCHEMA,
    IMDSV1_GATE_SCHEMA,
    RATE_BUDGET_SCHEMA,
)
from c7n_imds.actions.revert import register_owner_restore
from c7n_imds.actions.set_access import SetMetadataAccess
from c7n_imds.actions.versions import VersionMaking
from c7n_imds.aws import (
    AWS_ERRORS,
    describe_error,
    imds_session,
    retry,
    tags_of,
    template_followers,
)
from c7n_imds.model.changes import refusal, refused
from c7n_imds.model.containers import resolve_hop_limit, runs_containers
from c7n_imds.model.launch_source import template_group_specs
from c7n_imds.model.nodegroups import (
    NodegroupChange,
    NodegroupPlan,
    NodegroupSnapshot,
    already_detail,
    eks_additions,
    is_custom_ami,
    listed_groups,
    nodegroup_key,
    not_listed,
    outcomes,
    owner_change,
    pins_text,
    replacement_steps,
    stack_owner,
    state_problem,
    template_spec,
    update_problem,
    version_pins,
)
from c7n_imds.model.plans import GroupSpec, VersionPlan
from c7n_imds.model.provenance import encode_previous_nodegroup_launch
from c7n_imds.model.translate import merge_metadata_options
from c7n_imds.names import EKS_NODEGROUP_TAG, NODEGROUP_ACTION, PRESERVE, PREVIOUS_LAUNCH_TAG
from c7n_imds.sources import LaunchSources

log = logging.getLogger("custodian.c7n_imds.actions")


@ASG.action_registry.register(NODEGROUP_ACTION)
class SetNodegroupMetadataAccess(VersionMaking, Remediation):
    """Require IMDSv2 on the nodes of EKS managed node groups, through EKS: a proven
    new version of the node group's own launch template (its default is not moved),
    then UpdateNodegroupVersion pinned to the node group's current Kubernetes version
    and AMI release. The node group is the owner only where DescribeNodegroup lists the
    group; all its groups must pass the IMDSv1 gate; node groups made by CloudFormation
    or eksctl are left to them. Steps and options: docs/aws-facts.md (EKS).

    :example:

    .. code-block:: yaml

        policies:
          - name: eks-nodegroup-require-imdsv2
            resource: asg
            filters:
            - tag:eks:nodegroup-name: present
            - {type: imds, key: HttpTokens, value: optional}
            actions:
            - type: set-nodegroup-metadata-access
              hop-limit: auto
              imdsv1-gate: {days: 14, missing: exclude}
    """

    option_defaults = {"hop-limit": "auto"}
    schema = type_schema(
        NODEGROUP_ACTION,
        **{
            "http-tokens": {"enum": ["required", "optional"]},
            "hop-limit": HOP_LIMIT_SCHEMA,
            "http-endpoint": HTTP_ENDPOINT_SCHEMA,
            "verify": {"type": "boolean"},
            "force": {"type": "boolean"},
            "rate-budget": RATE_BUDGET_SCHEMA,
            # Never needed while DescribeNodegroup names the versions to pin; it
            # accepts the move to the latest ones where it does not.
            "allow-launch-changes": ALLOW_LAUNCH_CHANGES_SCHEMA,
            "imdsv1-gate": IMDSV1_GATE_SCHEMA,
        },
    )
    permissions = (
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:CreateOrUpdateTags",
        "eks:DescribeNodegroup",
        "eks:UpdateNodegroupVersion",
        "eks:DescribeUpdate",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:CreateLaunchTemplateVersion",
        "ec2:DeleteLaunchTemplateVersions",
        # EKS launches the new version with the caller's rights checked
        "ec2:RunInstances",
        "iam:PassRole",
    )
    verify_permissions = SetMetadataAccess.verify_permissions

    # The same merge of the requested options as set-metadata-access.
    requested = SetMetadataAccess.requested

    def hop_limit(self, groups, existing_metadata_options, user_data=None):
        # `auto` by default: every node group runs pods.
        return resolve_hop_limit(
            self.options.hop_limit,
            existing_metadata_options,
            any(runs_containers(asg, user_data) for asg in groups),
        )

    def all_or_none(self, item):
        # Neither the default moves nor $Latest followers exist (refused): each node
        # group goes on by itself.
        return False

    def preflight(self, ec2, asg, spec, template_id, version, launch_template_data):
        """The DryRun with what EKS adds at launch (instance type, image)."""
        choice = self.__dict__.get("_eks_additions", {}).get(asg["AutoScalingGroupName"])
        if choice:
            asg = dict(
                asg,
                MixedInstancesPolicy={
                    "LaunchTemplate": {"LaunchTemplateSpecification": spec, "Overrides": [choice]}
                },
            )
        return super().preflight(ec2, asg, spec, template_id, version, launch_template_data)

    def eks(self):
        return imds_session(self.manager).client("eks")

    # -- planning -----------------------------------------------------------------------

    def read(self, asgs, ec2, autoscaling, eks):
        """The node groups of the groups, as EKS describes them now, and the template
        versions they use (with EKS's copies, for the image EKS launches)."""
        changes, failures = {}, {}
        for asg in self.owned(current_groups(autoscaling, asgs), EKS_NODEGROUP_TAG):
            key = nodegroup_key(asg)
            if key is None:
                failures[asg["AutoScalingGroupName"]] = (
                    "tagged eks:nodegroup-name but not eks:cluster-name, so its node group "
                    "cannot be found; nothing was changed"
                )
                continue
            changes.setdefault(key, NodegroupChange(*key)).groups.append(asg)
        specs = []
        for change in list(changes.values()):
            try:
                change.nodegroup = retry(
                    eks.describe_nodegroup, clusterName=change.cluster, nodegroupName=change.name
                )["nodegroup"]
            except AWS_ERRORS as e:
                change.problem = "reading EKS managed node group %s: %s; nothing was changed" % (
                    change.label,
                    describe_error(e),
                )
                continue
            # The tags only name a candidate (anyone may write eks:* tags): a group the
            # node group does not list must never move it.
            listed = set(change.listed_groups)
            for name in [n for n in change.group_names if n not in listed]:
                failures[name] = not_listed(change.cluster, change.name)
            change.groups = [a for a in change.groups if a["AutoScalingGroupName"] in listed]
            if not change.groups:
                del changes[(change.cluster, change.name)]
                continue
            lt = change.launch_template
            if lt:
                specs.append(template_spec(lt))
                specs += [s for asg in change.groups for s in template_group_specs(asg)]
        sources = LaunchSources.for_manager(self.manager, ec2, autoscaling)
        sources.load_template_versions(specs)
        for change in changes.values():
            if change.launch_template:
                change.source = sources.template_version(template_spec(change.launch_template))
                copies = [
                    sources.template_version(s)
                    for asg in change.groups
                    for s in template_group_specs(asg)
                ]
                copy_data = next((v.get("LaunchTemplateData") or {} for v in copies if v), {})
                change.launch_choice = eks_additions(
                    change.nodegroup,
                    (change.source or {}).get("LaunchTemplateData") or {},
                    copy_data,
                )
        return NodegroupSnapshot(
            changes=list(changes.values()), failures=failures, launch_sources=sources
        )

    def plan(self, snapshot):
        """Per node group: skipped (no launch template), already applied, failed, or a
        new version of its template (one VersionPlan per template version, shared by
        the node groups that use it) and an update."""
        plan = NodegroupPlan(failures=dict(snapshot.failures), skipped=list(self.skipped))
        allowed = self.data.get("allow-launch-changes") or ()
        for change in snapshot.changes:
            problem = change.problem
            stack = stack_owner(change.nodegroup, change.label) if change.nodegroup else None
            if problem is None and stack:
                plan.skipped += [
                    {"AutoScalingGroupName": name, "Skipped": stack} for name in change.group_names
                ]
                continue
            lt = change.launch_template
            if problem is None and change.nodegroup is not None and not lt:
                reason = replacement_steps(change.cluster, change.name, change.nodegroup)
                plan.skipped += [
                    {"AutoScalingGroupName": name, "Skipped": reason} for name in change.group_names
                ]
                continue
            if problem is None and change.source is None:
                problem = (
                    "launch template %s version %s of EKS managed node group %s no "
                    "longer exists; nothing was changed"
                    % (lt.get("id"), lt.get("version"), change.label)
                )
            if problem is None and self.compliant(change):
                plan.already.append(change)
                continue
            problem = problem or state_problem(change.nodegroup, change.label)
            if problem is None:
                _, changes = version_pins(change.nodegroup, change.source_data)
                if refused(changes, allowed):
                    problem = refusal(
                        "EKS managed node group %s" % change.label, refused(changes, allowed)
                    )
                change.launch_changes = changes
            if problem:
                plan.failures.update({name: problem for name in change.group_names})
                continue
            item = plan.work.setdefault(change.key, VersionPlan(source=change.source))
            spec = {"LaunchTemplateId": change.key[0], "Version": str(change.key[1])}
            item.groups += [GroupSpec(asg, spec) for asg in change.groups]
            plan.updates.append(change)
        for item in plan.work.values():
            data = item.source.get("LaunchTemplateData") or {}
            item.metadata_options = self.requested(
                data.get("MetadataOptions"), [g.asg for g in item.groups], data.get("UserData")
            )
        return plan

    def compliant(self, change):
        data = change.source.get("LaunchTemplateData") or {}
        existing = data.get("MetadataOptions")
        return self.requested(
            existing, change.groups, data.get("UserData")
        ) == merge_metadata_options(existing, http_tokens=PRESERVE)

    def refuse_latest_followers(self, plan, followers):
        """A new version becomes the $Latest of every group that follows it: refused
        where any group does (EKS's own groups follow EKS's copies)."""
        for key in sorted(plan.work):
            following = sorted(followers.get(key[0], {}).get("$Latest", ()))
            if not following:
                continue
            item = plan.work.pop(key)
            for group in item.group_names:
                plan.failures[group] = (
                    "launch template %s is followed as $Latest by %s; a new version would "
                    "change what they launch. Pin them to a version number first"
                    % (key[0], ", ".join(following))
                )

    def hold_back(self, plan):
        """The gate over every group the node group has, not only those the policy
        matched: the update replaces all its nodes. One exempt or still calling IMDSv1
        holds the node group back - its matched groups skipped with the gate's reason,
        as for a Beanstalk environment; a later run retries."""
        gate = self.gate()
        for change in list(plan.updates) if gate else ():
            if change.key not in plan.work:
                continue
            try:
                verdict = gate.check_groups(change.listed_groups)
            except AWS_ERRORS as e:
                reason = (
                    "checking EKS managed node group %s's groups for IMDSv1 use: %s; "
                    "nothing was changed" % (change.label, describe_error(e))
                )
                plan.failures.update({name: reason for name in change.group_names})
            else:
                if verdict.passed:
                    continue
                reason = verdict.reason("EKS managed node group %s" % change.label)
                log.info("EKS managed node group %s: %s", change.label, reason)
                plan.skipped += [
                    {"AutoScalingGroupName": name, "Skipped": reason} for name in change.group_names
                ]
            plan.updates.remove(change)
            # another node group on the same template version still goes ahead
            item = plan.work[change.key]
            item.groups = [g for g in item.groups if g.name not in change.group_names]
            if not item.groups:
                del plan.work[change.key]

    def preview(self, asgs):
        """What `process` would do, from describe calls only."""
        ec2, autoscaling = self.clients()
        plan = self.plan(self.read(asgs, ec2, autoscaling, self.eks()))
        self.refuse_latest_followers(plan, template_followers(autoscaling, plan.work))
        self.hold_back(plan)
        changes = []
        for change in plan.updates:
            if change.key not in plan.work:
                continue
            changes.append(
                owner_change(
                    change,
                    plan.work[change.key].metadata_options,
                    bool(self.data.get("force", False)),
                )
            )
        skipped = plan.skipped + [
            {
                "AutoScalingGroupName": name,
                "Skipped": "already applied: %s" % (already_detail(change)),
            }
            for change in plan.already
            for name in change.group_names
        ]
        return {"OwnerChanges": changes, "Failures": plan.failures, "Skipped": skipped}

    # -- execution ----------------------------------------------------------------------

    def remediate(self, asgs):
        ec2, autoscaling = self.clients()
        eks = self.eks()
        plan = self.plan(self.read(asgs, ec2, autoscaling, eks))
        failures = plan.failures
        followers = template_followers(autoscaling, plan.work)
        self.refuse_latest_followers(plan, followers)
        self.hold_back(plan)
        updates = [c for c in plan.updates if c.key in plan.work]
        # 1. the way back, before anything changes
        values = {}
        for change in updates:
            value = encode_previous_nodegroup_launch(*map(str, change.key))
            for asg in change.groups:
                recorded = tags_of(asg).get(PREVIOUS_LAUNCH_TAG) or ""
                if not recorded.startswith("eks:"):
                    values[asg["AutoScalingGroupName"]] = value
        for problem, names in self.record_previous_launches(autoscaling, values):
            for name in names:
                failures[name] = "tagging the group: %s" % problem
        for change in updates:
            self.fail_together(change, failures)
        # 2. the new versions, proven
        self._eks_additions = {
            asg["AutoScalingGroupName"]: change.launch_choice
            for change in updates
            for asg in change.groups
        }
        made = self.make_versions(ec2, plan.work, followers, failures)
        # 3. the node groups, updated to them
        results = list(plan.skipped)
        for change in updates:
            if self.fail_together(change, failures) or change.key not in made:
                continue
            new = made[change.key]
            try:
                update = self.update_nodegroup(eks, change, new["VersionNumber"])
            except AWS_ERRORS as e:
                self.fail_together(
                    change,
                    failures,
                    "updating EKS managed node group %s "
                    "to launch template %s version %s: %s"
                    % (change.label, change.key[0], new["VersionNumber"], describe_error(e)),
                )
                continue
            if isinstance(update, str):
                self.fail_together(change, failures, update)
                continue
            results += outcomes(
                change,
                "applied",
                new["VersionNumber"],
                update["id"],
                (
                    "launch template %s version %s -> %s (%s); EKS update %s is %s"
                    % (
                        change.key[0],
                        change.key[1],
                        new["VersionNumber"],
                        change.kept,
                        update["id"],
                        update["status"],
                    )
                ),
            )
        for change in plan.already:
            results += outcomes(
                change, "already-applied", change.key[1], None, already_detail(change)
            )
        return self.finish(results, failures)

    @staticmethod
    def fail_together(change, failures, reason=None):
        """A node group changes for all its groups or for none; True when it failed."""
        if reason:
            failures.update({name: reason for name in change.group_names})
        failed = [n for n in change.group_names if n in failures]
        for name in change.group_names if failed else ():
            failures.setdefault(
                name, "not changed: group %s of the same node group failed" % failed[0]
            )
        return bool(failed)

    def update_nodegroup(self, eks, change, number):
        """UpdateNodegroupVersion, then its read-back: the update as EKS describes it,
        or the reason it is not what was asked."""
        template_id = change.key[0]
        pins = change.pins
        update = retry(
            eks.update_nodegroup_version,
            clusterName=change.cluster,
            nodegroupName=change.name,
            launchTemplate={"id": template_id, "version": str(number)},
            force=bool(self.data.get("force", False)),
            **pins,
        )["update"]
        log.info(
            "EKS managed node group %s: launch template %s version %s -> %s (update %s)",
            change.label,
            template_id,
            change.key[1],
            number,
            update["id"],
        )
        try:
            described = retry(
                eks.describe_update,
                name=change.cluster,
                nodegroupName=change.name,
                updateId=update["id"],
            )["update"]
        except AWS_ERRORS as e:
            return (
                "EKS accepted update %s of node group %s, but it could not be read "
                "back (%s); see aws eks describe-update --name %s --nodegroup-name %s "
                "--update-id %s"
                % (
                    update["id"],
                    change.label,
                    describe_error(e),
                    change.cluster,
                    change.name,
                    update["id"],
                )
            )
        problem = update_problem(described, template_id, number, pins)
        return (
            (
                "updating EKS managed node group %s to launch template %s version %s: %s"
                % (change.label, template_id, number, problem)
            )
            if problem
            else described
        )


def restore_nodegroup(session, asg, record):
    """Put an EKS managed node group back on the template version recorded before
    c7n-imds updated it (``record``: {"NodegroupLaunchTemplate": {"id", "version"}}).
    Returns what was done, in one line; raises ValueError when it cannot be done."""
    name = asg["AutoScalingGroupName"]
    key = nodegroup_key(asg)
    if key is None:
        raise ValueError(
            "asg %s has no eks:cluster-name and eks:nodegroup-name tags, so "
            "its node group cannot be found; revert it by hand" % name
        )
    recorded = record["NodegroupLaunchTemplate"]
    label = "%s/%s" % key
    eks, ec2 = session.client("eks"), session.client("ec2")
    try:
        nodegroup = retry(eks.describe_nodegroup, clusterName=key[0], nodegroupName=key[1])[
            "nodegroup"
        ]
    except ClientError as e:
        raise ValueError(
            "EKS managed node group %s cannot be read (%s); revert it by "
            "hand" % (label, describe_error(e))
        )
    if name not in listed_groups(nodegroup):
        # a forged eks:* tag (and record) must not move a node group back
        raise ValueError("asg %s: %s; revert it by hand if it really is" % (name, not_listed(*key)))
    current = nodegroup.get("launchTemplate") or {}
    if current.get("id") != recorded["id"]:
        raise ValueError(
            "EKS managed node group %s launches from launch template %s, not "
            "the recorded %s; revert it by hand"
            % (label, current.get("id") or "of EKS's own", recorded["id"])
        )
    if str(current.get("version")) == recorded["version"]:
        return "EKS managed node group %s is already on launch template %s version %s" % (
            label,
            recorded["id"],
            recorded["version"],
        )
    problem = state_problem(nodegroup, label)
    if problem:
        raise ValueError(problem.replace("nothing was changed", "not reverted"))
    try:
        found = retry(
            ec2.describe_launch_template_versions,
            LaunchTemplateId=recorded["id"],
            Versions=[recorded["version"]],
        )["LaunchTemplateVersions"]
    except ClientError as e:
        found, problem = [], describe_error(e)
    if not found:
        raise ValueError(
            "launch template %s version %s no longer exists%s, so EKS managed "
            "node group %s cannot go back to it; revert it by hand"
            % (recorded["id"], recorded["version"], " (%s)" % problem if problem else "", label)
        )
    # The template version goes back; the Kubernetes version and AMI release stay what
    # they are now (EKS cannot roll those back, and must not move them forward either).
    data = found[0].get("LaunchTemplateData") or {}
    pins, unpinned = version_pins(nodegroup, data)
    if unpinned:
        raise ValueError(
            "EKS managed node group %s: %s; revert it by hand"
            % (label, "; ".join(c.line() for c in unpinned))
        )
    update = retry(
        eks.update_nodegroup_version,
        clusterName=key[0],
        nodegroupName=key[1],
        launchTemplate={"id": recorded["id"], "version": recorded["version"]},
        force=False,
        **pins,
    )["update"]
    return (
        "EKS managed node group %s: launch template %s version %s -> %s (%s; update "
        "%s, %s; EKS replaces the nodes by its update strategy)"
        % (
            label,
            recorded["id"],
            current.get("version"),
            recorded["version"],
            pins_text(pins, is_custom_ami(nodegroup, data)),
            update["id"],
            update.get("status"),
        )
    )


register_owner_restore("NodegroupLaunchTemplate", restore_nodegroup)
