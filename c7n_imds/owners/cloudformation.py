"""`create-stack-change-set`: a group that a CloudFormation stack owns is fixed in the
stack's template - a change set for the stack's owner to review and execute. c7n-imds
never executes it: the owner's deploy stays the only way the stack changes."""
import hashlib
import logging
from dataclasses import dataclass, field

from botocore.exceptions import ClientError, WaiterError
from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import (
    HOP_LIMIT_SCHEMA,
    HTTP_ENDPOINT_SCHEMA,
    RATE_BUDGET_SCHEMA,
)
from c7n_imds.actions.revert import register_owner_withdraw
from c7n_imds.aws import AWS_ERRORS, describe_error, imds_session, retry, tags_of
from c7n_imds.model import cfn, cfn_templates
from c7n_imds.model.safety import runs_containers
from c7n_imds.names import (
    CHANGE_SET_ACTION,
    CHANGE_SET_PREFIX,
    CLOUDFORMATION_LOGICAL_ID_TAG,
    CLOUDFORMATION_TAG,
    PRESERVE,
)
from c7n_imds.owners.stacks import (
    StackRefused,
    arn_name,
    delete_change_set,
    describe_change_set,
    own_change_sets,
    template_body,
    template_of,
    withdraw_change_sets,
)

log = logging.getLogger("custodian.c7n_imds.actions")

DESCRIPTION_MAX = 1024
DIGEST_LENGTH = 12
# A change set being made; DescribeChangeSet is polled while it is in one of these.
CREATING = ("CREATE_PENDING", "CREATE_IN_PROGRESS")
# Stack states a change set cannot be made in, or should not be: an operation is running,
# or the stack never finished being created.
NOT_UPDATABLE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "CREATE_FAILED",
                 "IMPORT_ROLLBACK_FAILED")
# The waiter for a change set: AWS makes one in seconds to a minute or two.
WAIT = {"Delay": 5, "MaxAttempts": 60}


@dataclass
class Proposal:
    """The change set one stack gets, decided from what was read (no change made)."""
    stack: dict
    groups: list  # the groups (describe records) it fixes
    template: dict  # the new template, as sent
    body: str
    notes: list = field(default_factory=list)
    left: dict = field(default_factory=dict)  # group -> why this template leaves it
    modified: tuple = ()  # logical ids the change set must modify (groups, templates)

    @property
    def stack_name(self):
        return self.stack["StackName"]

    @property
    def name(self):
        """Deterministic: the same stack and template give the same change set, so a re-run
        finds the one it made; a changed template gets a new one."""
        digest = hashlib.sha256(("%s\0%s" % (self.stack["StackId"], self.body)).encode(
            "utf-8")).hexdigest()
        return CHANGE_SET_PREFIX + digest[:DIGEST_LENGTH]

    @property
    def group_names(self):
        return sorted(g["AutoScalingGroupName"] for g in self.groups)

    def request(self):
        """CreateChangeSet's parameters. Parameters keep their values (UsePreviousValue,
        so NoEcho values are never read), capabilities are the stack's. Not sent: Tags -
        CreateChangeSet's Tags are the *stack's* tags, "propagated to resources in the
        stack", so a tag of ours would modify every resource on execution and one missing
        would drop the stack's; NotificationARNs and RoleARN, which default to the stack's
        own."""
        description = (
            "c7n-imds (AutoScaling.3, EC2.170): IMDSv2 required (launch configurations -> "
            "launch templates, the stack's launch templates HttpTokens required) for %s. "
            "Review and execute it yourself; c7n-imds never executes it." % (
                ", ".join(self.group_names)))
        if len(description) > DESCRIPTION_MAX:
            description = description[:DESCRIPTION_MAX - 3] + "..."
        return {"StackName": self.stack_name, "ChangeSetName": self.name,
                "ChangeSetType": "UPDATE", "TemplateBody": self.body,
                "Parameters": [{"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
                               for p in self.stack.get("Parameters") or ()],
                "Capabilities": list(self.stack.get("Capabilities") or ()),
                "Description": description, "ClientToken": self.name}

    def execute_command(self):
        return ("aws cloudformation execute-change-set --stack-name %s --change-set-name "
                "%s" % (self.stack_name, self.name))


@ASG.action_registry.register(CHANGE_SET_ACTION)
class CreateStackChangeSet(Remediation):
    """Propose the fix of a CloudFormation-owned group to its stack: a change set, never
    executed, for the stack's owner to review and execute.

    A group a stack owns (tag ``aws:cloudformation:stack-name``) must be fixed in the
    stack's template: a change made behind the stack drifts, and its next update undoes
    it. c7n-imds reads the stack's template (``GetTemplate``, JSON or YAML with
    short-form intrinsics) and finds the group's resource (tag
    ``aws:cloudformation:logical-id``). A group on a launch configuration: its
    ``AWS::AutoScaling::LaunchConfiguration`` is replaced by an
    ``AWS::EC2::LaunchTemplate`` mapped per AWS's "Migrate AWS CloudFormation stacks
    from launch configurations to launch templates" (every property, intrinsic
    functions carried unchanged; what cannot be carried is refused, docs/mapping.md),
    with ``HttpTokens: required``, and the group points at it with ``Version: !GetAtt
    <Template>.LatestVersionNumber``. A group on a launch template of the same stack
    (``LaunchTemplate``, or a ``MixedInstancesPolicy`` and its per-override templates)
    whose Version is ``!GetAtt <Template>.LatestVersionNumber``: ``HttpTokens:
    required`` is set in that template's ``MetadataOptions`` (under ``Fn::If``, in each
    branch); CloudFormation makes it a new version, which reaches every group of the
    stack on the template's latest version (the notes name them). Left, with the
    reason: a group on ``DefaultVersionNumber`` (CloudFormation does not move a
    template's default version) or a version number, which the new version would not
    reach; a template defined outside the stack; a ``MetadataOptions`` that is itself
    computed. The change set keeps the parameters (``UsePreviousValue``) and the
    stack's capabilities, and is named ``c7n-imds-imdsv2-<digest>``.

    Nothing is assumed: the change set is read back - its template (``GetTemplate`` of
    the change set) must be what was sent, and its changes must modify the moved groups
    and the changed templates - or it is deleted again and the groups fail. The
    stack is not changed: the owner reviews the change set in the console or with
    ``aws cloudformation describe-change-set`` and executes it. A re-run finds the same
    change set (the name is a digest of the stack and the new template) instead of
    making another, and replaces change sets of its own left from an older template.

    Reported, not touched: nested stacks (the change belongs in the template of the root
    stack's ``AWS::CloudFormation::Stack`` resource), stacks being updated, and stacks
    whose template cannot be read or carried faithfully. ``revert-imds-remediation``
    deletes the change sets c7n-imds proposed and the owner did not execute.

    Options: ``hop-limit`` (``preserve``, 1-64, or ``auto``: at least 2 for groups that
    evidently run containers) and ``http-endpoint``, as for
    ``convert-to-launch-template``; ``rate-budget`` (0-1, default 0.5), as for the other
    actions. Each group's resource record gets a ``c7n-imds:owner-fix`` annotation, so
    a ``notify`` action after this one can name the change set to the stack's owner.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-stack-propose-imdsv2
            resource: asg
            filters:
              - "tag:aws:cloudformation:stack-name": present
              - type: imds
                key: HttpTokens
                value: optional
              - type: imdsv1-usage
                days: 14
                value: 0
            actions:
              - type: create-stack-change-set
                hop-limit: auto
    """

    schema = type_schema(CHANGE_SET_ACTION, **{
        "hop-limit": HOP_LIMIT_SCHEMA, "http-endpoint": HTTP_ENDPOINT_SCHEMA,
        "rate-budget": RATE_BUDGET_SCHEMA})
    permissions = (
        "autoscaling:DescribeAutoScalingGroups", "cloudformation:DescribeStacks",
        "cloudformation:GetTemplate", "cloudformation:ListChangeSets",
        "cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
        "cloudformation:DeleteChangeSet")
    verify_permissions = ()  # the change set is read back; nothing launches from it

    def cloudformation(self):
        return imds_session(self.manager).client("cloudformation")

    # -- planning -----------------------------------------------------------------------

    def read(self, asgs, autoscaling):
        """{stack name: [groups]} of the CloudFormation-owned, non-exempt groups."""
        stacks = {}
        for asg in self.owned(current_groups(autoscaling, asgs), CLOUDFORMATION_TAG):
            stacks.setdefault(tags_of(asg)[CLOUDFORMATION_TAG], []).append(asg)
        return stacks

    def propose(self, cloudformation, stack_name, groups):
        """The Proposal for one stack (describe and GetTemplate calls only); raises
        StackRefused when it gets none."""
        logical = {}
        for asg in groups:
            tags = tags_of(asg)
            if not tags.get(CLOUDFORMATION_LOGICAL_ID_TAG):
                raise StackRefused("group %s has no %s tag, so its resource in stack %s is "
                                   "not known; not touched" % (
                                       asg["AutoScalingGroupName"],
                                       CLOUDFORMATION_LOGICAL_ID_TAG, stack_name))
            logical[tags[CLOUDFORMATION_LOGICAL_ID_TAG]] = asg
        try:
            stack = retry(cloudformation.describe_stacks, StackName=stack_name)["Stacks"][0]
        except ClientError as e:
            if "does not exist" in e.response["Error"].get("Message", ""):
                raise StackRefused("stack %s no longer exists; the group's %s tag is stale"
                                   % (stack_name, CLOUDFORMATION_TAG))
            raise
        if stack.get("ParentId") or stack.get("RootId"):
            raise StackRefused(
                "stack %s is a nested stack of %s: its template is the TemplateURL of an "
                "AWS::CloudFormation::Stack resource there; change the launch "
                "configuration in that template and update the root stack (not touched)"
                % (stack_name, arn_name(stack.get("RootId") or stack["ParentId"])))
        status = stack.get("StackStatus", "")
        if status.endswith("_IN_PROGRESS") or status in NOT_UPDATABLE:
            raise StackRefused("stack %s is %s; a change set can be proposed once it is "
                               "stable - run again then" % (stack_name, status))
        try:
            body = retry(cloudformation.get_template, StackName=stack["StackId"],
                         TemplateStage="Original")["TemplateBody"]
        except AWS_ERRORS as e:
            raise StackRefused("the template of stack %s could not be read (%s); not "
                               "touched" % (stack_name, describe_error(e)))
        template, fmt = template_of(body, stack_name)
        try:
            done = cfn_templates.rewrite(template, logical,
                                         metadata_options=self.metadata_options(groups))
        except ValueError as e:
            raise StackRefused("stack %s: %s" % (stack_name, e))
        return Proposal(
            stack=stack, groups=[logical[g] for g in done.fixed], template=done.template,
            body=template_body(done.template, fmt, stack_name), notes=done.notes,
            left={logical[g]["AutoScalingGroupName"]: why for g, why in done.left.items()},
            modified=done.modified)

    def metadata_options(self, groups):
        """The template's MetadataOptions beyond HttpTokens: required, from the options."""
        options = {"HttpEndpoint": self.data.get("http-endpoint", PRESERVE)}
        hop_limit = self.data.get("hop-limit", PRESERVE)
        if hop_limit == "auto":
            # at least 2 where containers run: a higher literal stays, and so does a
            # value the template computes (a parameter, a condition), which is its
            # owner's to choose
            hop_limit = at_least_two if any(runs_containers(asg) for asg in groups) \
                else PRESERVE
        options["HttpPutResponseHopLimit"] = hop_limit
        return options

    def preview(self, asgs):
        """The change set each stack would get (describe and GetTemplate calls only)."""
        _, autoscaling = self.clients()
        cloudformation = self.cloudformation()
        stacks = self.read(asgs, autoscaling)
        changes, failures, skipped = [], {}, list(self.skipped)
        for stack_name, groups in sorted(stacks.items()):
            try:
                proposal = self.propose(cloudformation, stack_name, groups)
            except StackRefused as e:
                failures.update({g["AutoScalingGroupName"]: str(e) for g in groups})
                continue
            except AWS_ERRORS as e:
                failures.update({g["AutoScalingGroupName"]: "reading stack %s: %s" % (
                    stack_name, describe_error(e)) for g in groups})
                continue
            skipped += [{"AutoScalingGroupName": g, "Skipped": reason}
                        for g, reason in sorted(proposal.left.items())]
            if proposal.groups:
                changes.append({
                    "Owner": "CloudFormation stack %s" % stack_name,
                    "Change": "change set %s, created for review and never executed "
                              "(%s)" % (proposal.name, proposal.execute_command()),
                    "Groups": proposal.group_names, "Notes": proposal.notes})
        return {"OwnerChanges": changes, "Failures": failures, "Skipped": skipped}

    # -- execution ----------------------------------------------------------------------

    def remediate(self, asgs):
        _, autoscaling = self.clients()
        cloudformation = self.cloudformation()
        stacks = self.read(asgs, autoscaling)
        results, failures = list(self.skipped), {}
        for stack_name, groups in self.progress.each(sorted(stacks.items()),
                                                     lambda item: len(item[1])):
            try:
                proposal = self.propose(cloudformation, stack_name, groups)
                results += [{"AutoScalingGroupName": g, "Skipped": reason}
                            for g, reason in sorted(proposal.left.items())]
                if not proposal.groups:
                    continue
                change_set = self.proposed(cloudformation, proposal)
            except StackRefused as e:
                failures.update({g["AutoScalingGroupName"]: str(e) for g in groups})
                continue
            except AWS_ERRORS as e:
                failures.update({g["AutoScalingGroupName"]: "proposing a change set to "
                                 "stack %s: %s" % (stack_name, describe_error(e))
                                 for g in groups})
                continue
            record = {"StackName": stack_name, "ChangeSetName": proposal.name,
                      "ChangeSetId": change_set["ChangeSetId"], "Status": "proposed",
                      "Detail": "change set %s on stack %s is ready for review: %s" % (
                          proposal.name, stack_name, proposal.execute_command())}
            log.info("stack %s: change set %s proposed for %s; review and execute it: %s",
                     stack_name, proposal.name, ", ".join(proposal.group_names),
                     proposal.execute_command())
            for asg in proposal.groups:
                results.append({"AutoScalingGroupName": asg["AutoScalingGroupName"],
                                "Owner": "cloudformation:%s" % stack_name,
                                "OwnerFix": dict(record, Action=CHANGE_SET_ACTION),
                                "Notes": proposal.notes})
        return self.finish(results, failures)

    def proposed(self, cloudformation, proposal):
        """The proposal's change set, created (or found again) and proven: its stored
        template is what was sent and its changes are the expected ones. A change set
        that fails the proof is deleted. Change sets of ours from an older template are
        deleted once the new one stands."""
        ours = own_change_sets(cloudformation, proposal.stack["StackId"])
        found = next((c for c in ours if c["ChangeSetName"] == proposal.name), None)
        if found is None or found.get("Status") == "FAILED":
            if found is not None:  # a failed one is made again: its reason may be gone
                delete_change_set(cloudformation, proposal.stack["StackId"], proposal.name)
            retry(cloudformation.create_change_set, **proposal.request())
            log.info("stack %s: change set %s created", proposal.stack_name, proposal.name)
        change_set = self.settled(cloudformation, proposal)
        problem = self.stored_problem_of(cloudformation, proposal, change_set)
        if problem:
            delete_change_set(cloudformation, proposal.stack["StackId"], proposal.name)
            raise StackRefused(problem)
        for stale in ours:
            if stale["ChangeSetName"] != proposal.name and stale.get(
                    "ExecutionStatus") != "EXECUTE_COMPLETE":
                delete_change_set(cloudformation, proposal.stack["StackId"],
                                  stale["ChangeSetName"])
                log.info("stack %s: change set %s of an older template deleted",
                         proposal.stack_name, stale["ChangeSetName"])
        return change_set

    def settled(self, cloudformation, proposal):
        """DescribeChangeSet once CloudFormation has finished making it."""
        try:
            cloudformation.get_waiter("change_set_create_complete").wait(
                StackName=proposal.stack["StackId"], ChangeSetName=proposal.name,
                WaiterConfig=WAIT)
        except WaiterError:
            pass  # a FAILED change set is described below with its reason
        change_set = describe_change_set(cloudformation, proposal.stack["StackId"],
                                         proposal.name)
        if change_set["Status"] != "CREATE_COMPLETE":
            delete_change_set(cloudformation, proposal.stack["StackId"], proposal.name)
            raise StackRefused("CloudFormation could not make change set %s for stack %s "
                               "(%s: %s); it was deleted - fix what it names, then run again"
                               % (proposal.name, proposal.stack_name, change_set["Status"],
                                  change_set.get("StatusReason") or "no reason given"))
        return change_set

    def stored_problem_of(self, cloudformation, proposal, change_set):
        """None when CloudFormation stored the change set as proposed, else why not."""
        stored = retry(cloudformation.get_template, StackName=proposal.stack["StackId"],
                       ChangeSetName=proposal.name, TemplateStage="Original")["TemplateBody"]
        what = "change set %s of stack %s" % (proposal.name, proposal.stack_name)
        try:
            stored_template, _ = template_of(stored, proposal.stack_name)
        except StackRefused as e:
            return "%s: its stored template could not be read back (%s)" % (what, e)
        if stored_template != cfn.parse_template(proposal.body)[0]:
            return ("%s: the template CloudFormation stored differs from the one sent; it "
                    "was deleted - run again" % what)
        sent = {p["ParameterKey"] for p in proposal.stack.get("Parameters") or ()}
        kept = {p["ParameterKey"] for p in change_set.get("Parameters") or ()}
        if sent != kept:
            return "%s: its parameters %s are not the stack's %s" % (
                what, sorted(kept), sorted(sent))
        if change_set.get("ExecutionStatus") != "AVAILABLE":
            return "%s: it is %s, not ready to execute" % (
                what, change_set.get("ExecutionStatus"))
        changes = {(c["ResourceChange"].get("Action"), c["ResourceChange"].get(
            "LogicalResourceId")) for c in change_set.get("Changes") or ()
            if c.get("Type") == "Resource"}
        # a group on one of the stack's launch templates need not change itself: the
        # template does (its new version); a group moved off a configuration does
        expected = {("Modify", logical) for logical in proposal.modified}
        if not expected <= changes:
            return "%s: it does not modify %s" % (what, ", ".join(sorted(
                logical for _, logical in expected - changes)))
        return None


def at_least_two(existing):
    """`hop-limit: auto` where containers run, for a template's existing hop limit: at
    least 2; a value the template computes (a parameter, a condition) is kept."""
    if existing is None:
        return 2
    return max(existing, 2) if isinstance(existing, int) else existing


register_owner_withdraw(CLOUDFORMATION_TAG, withdraw_change_sets)
