"""`set-nodegroup-metadata-access`: the groups of EKS managed node groups get IMDSv2
where EKS defines them - a new version of the node group's launch template, then
UpdateNodegroupVersion - and `restore_nodegroup`, the way back for the revert."""
import logging

from botocore.exceptions import ClientError
from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import HOP_LIMIT_SCHEMA, HTTP_ENDPOINT_SCHEMA, RATE_BUDGET_SCHEMA
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
from c7n_imds.model.launch_source import template_group_specs
from c7n_imds.model.nodegroups import (
    NodegroupChange,
    NodegroupPlan,
    NodegroupSnapshot,
    already_detail,
    eks_additions,
    nodegroup_key,
    outcomes,
    owner_change,
    replacement_steps,
    state_problem,
    template_spec,
    update_problem,
)
from c7n_imds.model.plans import GroupSpec, VersionPlan
from c7n_imds.model.provenance import encode_previous_nodegroup_launch
from c7n_imds.model.safety import resolve_hop_limit, runs_containers
from c7n_imds.model.translate import merge_metadata_options
from c7n_imds.names import EKS_NODEGROUP_TAG, NODEGROUP_ACTION, PRESERVE, PREVIOUS_LAUNCH_TAG
from c7n_imds.sources import LaunchSources

log = logging.getLogger("custodian.c7n_imds.actions")


@ASG.action_registry.register(NODEGROUP_ACTION)
class SetNodegroupMetadataAccess(VersionMaking, Remediation):
    """Require IMDSv2 on the nodes of EKS managed node groups, through EKS.

    EKS owns a managed node group's Auto Scaling group (tags ``eks:cluster-name`` and
    ``eks:nodegroup-name``) and launches it from its own copy of the node group's
    launch template; a change made to the group or to that copy is reverted by EKS.
    This action acts on the node group instead, once per node group however many of
    its groups the policy matched:

    1. ``DescribeNodegroup``: a node group that is not ``ACTIVE`` (an update in
       progress, degraded, ...) fails with the reason and nothing is changed. One
       created without a launch template cannot be moved to one
       (UpdateNodegroupVersion: only node groups created with a launch template can
       be updated with one); its groups are skipped with the exact commands that
       replace it (a template with HttpTokens required and hop limit 2, a node group
       from it, moving the workloads, deleting the old node group). One whose template
       version already has the requested options is left alone (``already-applied``).
    2. Each group is tagged ``c7n-imds:previous-launch`` with the template version the
       node group used (``eks:TEMPLATE:VERSION``; an existing ``eks:`` record is kept),
       so that ``revert-imds-remediation`` can put it back.
    3. A new version of the node group's template (the user's, named by the node
       group - not EKS's ``eks-...`` copy) is made from the version it uses, exactly as
       ``set-metadata-access`` makes one: a faithful copy (block device mappings sent
       again), read back and compared, and a ``RunInstances`` DryRun that launches it
       as EKS would - with the node group's instance type and, for a template without
       a custom AMI, the image of EKS's copy (``verify``, on by default). The
       template's default version is never moved; a template that another group
       follows as ``$Latest`` is refused. A re-run finds a version an interrupted run
       made by its description.
    4. ``UpdateNodegroupVersion`` to the new version number, then ``DescribeUpdate``
       to see that EKS took it (``InProgress`` or ``Successful``); the update id is in
       ``imds-changes.json``. EKS replaces the nodes by the node group's update
       strategy (``updateConfig``): each node is cordoned and its pods drained before
       it is terminated. ``force: true`` terminates nodes whose pods cannot be drained
       because of a Pod disruption budget instead of failing the update (default
       ``false``: the update fails and the old nodes stay).

    Options: ``http-tokens`` (default ``required``), ``hop-limit`` (default ``auto``:
    at least 2, which pods need to get an IMDSv2 token; ``preserve`` or 1-64),
    ``http-endpoint`` (``preserve``, ``enabled``, ``disabled``), ``verify``,
    ``force`` and ``rate-budget`` (0-1, default 0.5: the share of each of AWS's API rate
    limits the run may use).

    Groups that are exempt (``c7n-imds:exempt``) or not part of a managed node group
    are skipped and say what fixes them.

    :example:

    Node groups whose nodes made no IMDSv1 call in two weeks:

    .. code-block:: yaml

        policies:
          - name: eks-nodegroup-require-imdsv2
            resource: asg
            filters:
              - "tag:eks:nodegroup-name": present
              - type: imds
                key: HttpTokens
                value: optional
              - type: imdsv1-usage
                days: 14
                value: 0
                missing: exclude
            actions:
              - type: set-nodegroup-metadata-access
                http-tokens: required
                hop-limit: auto
                force: false
    """

    schema = type_schema(
        NODEGROUP_ACTION,
        **{"http-tokens": {"enum": ["required", "optional"]},
           "hop-limit": HOP_LIMIT_SCHEMA,
           "http-endpoint": HTTP_ENDPOINT_SCHEMA,
           "verify": {"type": "boolean"},
           "force": {"type": "boolean"},
           "rate-budget": RATE_BUDGET_SCHEMA})
    permissions = (
        "autoscaling:DescribeAutoScalingGroups", "autoscaling:CreateOrUpdateTags",
        "eks:DescribeNodegroup", "eks:UpdateNodegroupVersion", "eks:DescribeUpdate",
        "ec2:DescribeLaunchTemplateVersions", "ec2:CreateLaunchTemplateVersion",
        "ec2:DeleteLaunchTemplateVersions",
        # EKS launches the new version with the caller's rights checked
        "ec2:RunInstances", "iam:PassRole")
    verify_permissions = SetMetadataAccess.verify_permissions

    # The same merge of the requested options as set-metadata-access.
    requested = SetMetadataAccess.requested

    def hop_limit(self, groups, existing_metadata_options, user_data=None):
        # `auto` by default: every node group runs pods.
        return resolve_hop_limit(
            self.data.get("hop-limit", "auto"), existing_metadata_options,
            any(runs_containers(asg, user_data) for asg in groups))

    def all_or_none(self, item):
        # Neither the default moves nor $Latest followers exist (refused): each node
        # group goes on by itself.
        return False

    def preflight(self, ec2, asg, spec, template_id, version, launch_template_data):
        """The DryRun with what EKS adds at launch (instance type, image)."""
        choice = self.__dict__.get("_eks_additions", {}).get(asg["AutoScalingGroupName"])
        if choice:
            asg = dict(asg, MixedInstancesPolicy={"LaunchTemplate": {
                "LaunchTemplateSpecification": spec, "Overrides": [choice]}})
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
                    "cannot be found; nothing was changed")
                continue
            changes.setdefault(key, NodegroupChange(*key)).groups.append(asg)
        specs = []
        for change in changes.values():
            try:
                change.nodegroup = retry(eks.describe_nodegroup, clusterName=change.cluster,
                                         nodegroupName=change.name)["nodegroup"]
            except AWS_ERRORS as e:
                change.problem = "reading EKS managed node group %s: %s; nothing was " \
                    "changed" % (change.label, describe_error(e))
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
                copies = [sources.template_version(s) for asg in change.groups
                          for s in template_group_specs(asg)]
                copy_data = next((v.get("LaunchTemplateData") or {} for v in copies if v), {})
                change.launch_choice = eks_additions(
                    change.nodegroup, (change.source or {}).get("LaunchTemplateData") or {},
                    copy_data)
        return NodegroupSnapshot(changes=list(changes.values()), failures=failures,
                                 launch_sources=sources)

    def plan(self, snapshot):
        """Per node group: skipped (no launch template), already applied, failed, or a
        new version of its template (one VersionPlan per template version, shared by
        the node groups that use it) and an update."""
        plan = NodegroupPlan(failures=dict(snapshot.failures), skipped=list(self.skipped))
        for change in snapshot.changes:
            problem = change.problem
            lt = change.launch_template
            if problem is None and change.nodegroup is not None and not lt:
                reason = replacement_steps(change.cluster, change.name, change.nodegroup)
                plan.skipped += [{"AutoScalingGroupName": name, "Skipped": reason}
                                 for name in change.group_names]
                continue
            if problem is None and change.source is None:
                problem = ("launch template %s version %s of EKS managed node group %s no "
                           "longer exists; nothing was changed" % (
                               lt.get("id"), lt.get("version"), change.label))
            if problem is None and self.compliant(change):
                plan.already.append(change)
                continue
            problem = problem or state_problem(change.nodegroup, change.label)
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
                data.get("MetadataOptions"), [g.asg for g in item.groups], data.get("UserData"))
        return plan

    def compliant(self, change):
        data = change.source.get("LaunchTemplateData") or {}
        existing = data.get("MetadataOptions")
        return self.requested(existing, change.groups, data.get("UserData")) == \
            merge_metadata_options(existing, http_tokens=PRESERVE)

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
                    "change what they launch. Pin them to a version number first" % (
                        key[0], ", ".join(following)))

    def preview(self, asgs):
        """What `process` would do, from describe calls only."""
        ec2, autoscaling = self.clients()
        plan = self.plan(self.read(asgs, ec2, autoscaling, self.eks()))
        self.refuse_latest_followers(plan, template_followers(autoscaling, plan.work))
        changes = []
        for change in plan.updates:
            if change.key not in plan.work:
                continue
            changes.append(owner_change(change, plan.work[change.key].metadata_options,
                                        bool(self.data.get("force", False))))
        skipped = plan.skipped + [
            {"AutoScalingGroupName": name, "Skipped": "already applied: %s" % (
                already_detail(change))}
            for change in plan.already for name in change.group_names]
        return {"OwnerChanges": changes, "Failures": plan.failures, "Skipped": skipped}

    # -- execution ----------------------------------------------------------------------

    def remediate(self, asgs):
        ec2, autoscaling = self.clients()
        eks = self.eks()
        plan = self.plan(self.read(asgs, ec2, autoscaling, eks))
        failures = plan.failures
        followers = template_followers(autoscaling, plan.work)
        self.refuse_latest_followers(plan, followers)
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
        self._eks_additions = {asg["AutoScalingGroupName"]: change.launch_choice
                               for change in updates for asg in change.groups}
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
                self.fail_together(change, failures, "updating EKS managed node group %s "
                                   "to launch template %s version %s: %s" % (
                                       change.label, change.key[0], new["VersionNumber"],
                                       describe_error(e)))
                continue
            if isinstance(update, str):
                self.fail_together(change, failures, update)
                continue
            results += outcomes(change, "applied", new["VersionNumber"], update["id"], (
                "launch template %s version %s -> %s; EKS update %s is %s" % (
                    change.key[0], change.key[1], new["VersionNumber"], update["id"],
                    update["status"])))
        for change in plan.already:
            results += outcomes(change, "already-applied", change.key[1], None,
                                     already_detail(change))
        return self.finish(results, failures)

    @staticmethod
    def fail_together(change, failures, reason=None):
        """A node group changes for all its groups or for none; True when it failed."""
        if reason:
            failures.update({name: reason for name in change.group_names})
        failed = [n for n in change.group_names if n in failures]
        for name in change.group_names if failed else ():
            failures.setdefault(name, "not changed: group %s of the same node group "
                                "failed" % failed[0])
        return bool(failed)

    def update_nodegroup(self, eks, change, number):
        """UpdateNodegroupVersion, then its read-back: the update as EKS describes it,
        or the reason it is not what was asked."""
        template_id = change.key[0]
        update = retry(eks.update_nodegroup_version, clusterName=change.cluster,
                       nodegroupName=change.name,
                       launchTemplate={"id": template_id, "version": str(number)},
                       force=bool(self.data.get("force", False)))["update"]
        log.info("EKS managed node group %s: launch template %s version %s -> %s (update "
                 "%s)", change.label, template_id, change.key[1], number, update["id"])
        try:
            described = retry(eks.describe_update, name=change.cluster,
                              nodegroupName=change.name, updateId=update["id"])["update"]
        except AWS_ERRORS as e:
            return ("EKS accepted update %s of node group %s, but it could not be read "
                    "back (%s); see aws eks describe-update --name %s --nodegroup-name %s "
                    "--update-id %s" % (update["id"], change.label, describe_error(e),
                                        change.cluster, change.name, update["id"]))
        problem = update_problem(described, template_id, number)
        return ("updating EKS managed node group %s to launch template %s version %s: %s"
                % (change.label, template_id, number, problem)) if problem else described


def restore_nodegroup(session, asg, record):
    """Put an EKS managed node group back on the template version recorded before
    c7n-imds updated it (``record``: {"NodegroupLaunchTemplate": {"id", "version"}}).
    Returns what was done, in one line; raises ValueError when it cannot be done."""
    name = asg["AutoScalingGroupName"]
    key = nodegroup_key(asg)
    if key is None:
        raise ValueError("asg %s has no eks:cluster-name and eks:nodegroup-name tags, so "
                         "its node group cannot be found; revert it by hand" % name)
    recorded = record["NodegroupLaunchTemplate"]
    label = "%s/%s" % key
    eks, ec2 = session.client("eks"), session.client("ec2")
    try:
        nodegroup = retry(eks.describe_nodegroup, clusterName=key[0],
                          nodegroupName=key[1])["nodegroup"]
    except ClientError as e:
        raise ValueError("EKS managed node group %s cannot be read (%s); revert it by "
                         "hand" % (label, describe_error(e)))
    current = nodegroup.get("launchTemplate") or {}
    if current.get("id") != recorded["id"]:
        raise ValueError("EKS managed node group %s launches from launch template %s, not "
                         "the recorded %s; revert it by hand" % (
                             label, current.get("id") or "of EKS's own", recorded["id"]))
    if str(current.get("version")) == recorded["version"]:
        return "EKS managed node group %s is already on launch template %s version %s" % (
            label, recorded["id"], recorded["version"])
    problem = state_problem(nodegroup, label)
    if problem:
        raise ValueError(problem.replace("nothing was changed", "not reverted"))
    try:
        found = retry(ec2.describe_launch_template_versions, LaunchTemplateId=recorded["id"],
                      Versions=[recorded["version"]])["LaunchTemplateVersions"]
    except ClientError as e:
        found, problem = [], describe_error(e)
    if not found:
        raise ValueError("launch template %s version %s no longer exists%s, so EKS managed "
                         "node group %s cannot go back to it; revert it by hand" % (
                             recorded["id"], recorded["version"],
                             " (%s)" % problem if problem else "", label))
    update = retry(eks.update_nodegroup_version, clusterName=key[0], nodegroupName=key[1],
                   launchTemplate={"id": recorded["id"], "version": recorded["version"]},
                   force=False)["update"]
    return ("EKS managed node group %s: launch template %s version %s -> %s (update %s, "
            "%s; EKS replaces the nodes by its update strategy)" % (
                label, recorded["id"], current.get("version"), recorded["version"],
                update["id"], update.get("status")))


register_owner_restore("NodegroupLaunchTemplate", restore_nodegroup)
