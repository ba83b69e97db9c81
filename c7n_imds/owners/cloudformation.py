"""`create-stack-change-set`: a group that a CloudFormation stack owns is fixed in the
stack's template - a change set for the stack's owner to review and execute. c7n-imds
never executes it: the owner's deploy stays the only way the stack changes.

The change set changes only what IMDSv2 needs, proven: before it is made, the template
must be one c7n-imds can carry (no transform that rewrites it), the stack policy must
allow the update, and the update must not set other group sizes; after, its template
is read back, its changes must be the expected ones, its SSM parameters must resolve as
the stack's do, and a group it replaces is named. What it would change beyond metadata
options is refused unless the policy opts in (``allow-launch-changes``)."""

import hashlib
import logging
from dataclasses import dataclass, field

from botocore.exceptions import ClientError, WaiterError
from c7n.resources.asg import ASG
from c7n.utils import type_schema

from c7n_imds.actions.base import Remediation, current_groups
from c7n_imds.actions.options import (
    ALLOW_LAUNCH_CHANGES_SCHEMA,
    HOP_LIMIT_SCHEMA,
    HTTP_ENDPOINT_SCHEMA,
    RATE_BUDGET_SCHEMA,
)
from c7n_imds.actions.revert import register_owner_withdraw
from c7n_imds.aws import AWS_ERRORS, describe_error, imds_session, retry, tags_of
from c7n_imds.model import cfn
from c7n_imds.model.changes import LaunchChange, refusal, refused
from c7n_imds.model.containers import runs_containers
from c7n_imds.names import (
    CHANGE_SET_ACTION,
    CHANGE_SET_PREFIX,
    CLOUDFORMATION_LOGICAL_ID_TAG,
    CLOUDFORMATION_TAG,
    PRESERVE,
)
from c7n_imds.owners.stacks import (
    TEMPLATE_KEY,
    StackRefused,
    arn_name,
    delete_change_set,
    delete_template,
    describe_change_set,
    own_change_sets,
    put_template,
    stack_policy,
    template_body,
    template_of,
    withdraw_change_sets,
)

log = logging.getLogger("custodian.c7n_imds.actions")

DESCRIPTION_MAX = 1024
DIGEST_LENGTH = 12
# Stack states a change set cannot be made in, or should not be: an operation is running,
# or the stack never finished being created.
NOT_UPDATABLE = (
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "CREATE_FAILED",
    "IMPORT_ROLLBACK_FAILED",
)
# A change set of ours that can no longer be executed: made again in the same run.
# OBSOLETE: "the stack was already updated" since; EXECUTE_FAILED: executed and rolled back.
SPENT = ("OBSOLETE", "EXECUTE_FAILED")
# The waiter for a change set: AWS makes one in seconds to a minute or two.
WAIT = {"Delay": 5, "MaxAttempts": 60}


@dataclass
class Proposal:
    """The change set one stack gets, decided from what was read (no change made)."""

    stack: dict
    groups: list  # the groups (describe records) it fixes
    template: dict  # the new template, as sent
    body: str
    rewrite: cfn.Rewrite = None  # what the template rewrite did (typed)
    original: dict = field(default_factory=dict)  # the stack's template, as read
    logical: dict = field(default_factory=dict)  # logical id -> group (describe record)
    sources: list = field(default_factory=list)  # cfn.Source: where it is deployed from
    changes: dict = field(default_factory=dict)  # group name -> accepted LaunchChanges
    notes: list = field(default_factory=list)
    left: dict = field(default_factory=dict)  # group -> why this template leaves it
    via_bucket: bool = False  # the body is too big for TemplateBody: through S3
    url: str = None  # its TemplateURL, once uploaded

    @property
    def key(self):
        """The template bucket's key for this change set's template."""
        return TEMPLATE_KEY % (self.stack_name, self.name)

    @property
    def stack_name(self):
        return self.stack["StackName"]

    @property
    def modified(self):
        return self.rewrite.modified if self.rewrite else ()

    @property
    def name(self):
        """Deterministic: the same stack and template give the same change set, so a re-run
        finds the one it made; a changed template gets a new one."""
        digest = hashlib.sha256(
            ("%s\0%s" % (self.stack["StackId"], self.body)).encode("utf-8")
        ).hexdigest()
        return CHANGE_SET_PREFIX + digest[:DIGEST_LENGTH]

    @property
    def group_names(self):
        return sorted(g["AutoScalingGroupName"] for g in self.groups)

    def request(self, replacing=None):
        """CreateChangeSet's parameters. Parameters keep their values (UsePreviousValue,
        so NoEcho values are never read), capabilities are the stack's. Not sent: Tags -
        CreateChangeSet's Tags are the *stack's* tags, "propagated to resources in the
        stack", so a tag of ours would modify every resource on execution and one missing
        would drop the stack's; NotificationARNs and RoleARN, which default to the stack's
        own. ``replacing``: the id of a spent change set of the same name just deleted -
        its ClientToken must not be reused, or CloudFormation would take the new request
        for a retry of the old one."""
        description = (
            "c7n-imds (AutoScaling.3, EC2.170): IMDSv2 required (launch configurations -> "
            "launch templates, the stack's launch templates HttpTokens required) for %s. "
            "Review and execute it yourself; c7n-imds never executes it."
            % (", ".join(self.group_names))
        )
        if len(description) > DESCRIPTION_MAX:
            description = description[: DESCRIPTION_MAX - 3] + "..."
        token = (
            self.name
            if replacing is None
            else "%s-%s"
            % (self.name, hashlib.sha256(replacing.encode("utf-8")).hexdigest()[:DIGEST_LENGTH])
        )
        return {
            "StackName": self.stack_name,
            "ChangeSetName": self.name,
            "ChangeSetType": "UPDATE",
            **({"TemplateURL": self.url} if self.url else {"TemplateBody": self.body}),
            "Parameters": [
                {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
                for p in self.stack.get("Parameters") or ()
            ],
            "Capabilities": list(self.stack.get("Capabilities") or ()),
            "Description": description,
            "ClientToken": token,
        }

    def execute_command(self):
        return "aws cloudformation execute-change-set --stack-name %s --change-set-name %s" % (
            self.stack_name,
            self.name,
        )

    def source_advice(self):
        """What the owner must also do where the stack is deployed from elsewhere."""
        return " ".join("This stack is %s." % s.line() for s in self.sources)


@ASG.action_registry.register(CHANGE_SET_ACTION)
class CreateStackChangeSet(Remediation):
    """Propose the fix of a CloudFormation-owned group to its stack: a change set, never
    executed, for the stack's owner to review and execute.

    :example:

    .. code-block:: yaml

        policies:
          - name: asg-stack-propose-imdsv2
            resource: asg
            filters:
            - tag:aws:cloudformation:stack-name: present
            - {type: imds, key: HttpTokens, value: optional}
            - {type: imdsv1-usage, days: 14, value: 0}
            actions:
            - {type: create-stack-change-set, hop-limit: auto, allow-launch-changes: [group-size],
              template-bucket: my-cfn-templates-us-east-1}
    """

    schema = type_schema(
        CHANGE_SET_ACTION,
        **{
            "hop-limit": HOP_LIMIT_SCHEMA,
            "http-endpoint": HTTP_ENDPOINT_SCHEMA,
            "rate-budget": RATE_BUDGET_SCHEMA,
            "allow-launch-changes": ALLOW_LAUNCH_CHANGES_SCHEMA,
            "template-bucket": {"type": "string", "minLength": 3, "maxLength": 63},
        },
    )
    permissions = (
        "autoscaling:DescribeAutoScalingGroups",
        "cloudformation:DescribeStacks",
        "cloudformation:GetTemplate",
        "cloudformation:GetStackPolicy",
        "cloudformation:ListChangeSets",
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:DeleteChangeSet",
    )
    verify_permissions = ()  # the change set is read back; nothing launches from it
    # With template-bucket: the object is put, read by CloudFormation with the caller's
    # credentials, and deleted.
    bucket_permissions = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")

    def get_permissions(self):
        return sorted(
            set(super().get_permissions())
            | set(self.bucket_permissions if self.data.get("template-bucket") else ())
        )

    def cloudformation(self):
        return imds_session(self.manager).client("cloudformation")

    @property
    def allowed(self):
        return tuple(self.data.get("allow-launch-changes") or ())

    # -- planning -----------------------------------------------------------------------

    def read(self, asgs, autoscaling):
        """{stack name: [groups]} of the CloudFormation-owned, non-exempt groups."""
        stacks = {}
        for asg in self.owned(current_groups(autoscaling, asgs), CLOUDFORMATION_TAG):
            stacks.setdefault(tags_of(asg)[CLOUDFORMATION_TAG], []).append(asg)
        return stacks

    def propose(self, cloudformation, stack_name, groups):
        """The Proposal for one stack (DescribeStacks, GetTemplate and GetStackPolicy
        only); raises StackRefused when it gets none."""
        logical = {}
        for asg in groups:
            tags = tags_of(asg)
            if not tags.get(CLOUDFORMATION_LOGICAL_ID_TAG):
                raise StackRefused(
                    "group %s has no %s tag, so its resource in stack %s is "
                    "not known; not touched"
                    % (asg["AutoScalingGroupName"], CLOUDFORMATION_LOGICAL_ID_TAG, stack_name)
                )
            logical[tags[CLOUDFORMATION_LOGICAL_ID_TAG]] = asg
        stack = self.stack(cloudformation, stack_name)
        try:
            body = retry(
                cloudformation.get_template, StackName=stack["StackId"], TemplateStage="Original"
            )["TemplateBody"]
        except AWS_ERRORS as e:
            raise StackRefused(
                "the template of stack %s could not be read (%s); not "
                "touched" % (stack_name, describe_error(e))
            )
        template, fmt = template_of(body, stack_name)
        if problem := cfn.refusal_of_template(template):
            raise StackRefused("stack %s: not touched: %s" % (stack_name, problem))
        try:
            done = cfn.rewrite(
                template,
                logical,
                metadata_options=self.metadata_options(groups, template),
                parameters=parameter_values(stack),
            )
        except ValueError as e:
            raise StackRefused("stack %s: %s" % (stack_name, e))
        proposal = Proposal(
            stack=stack,
            groups=[logical[g] for g in done.fixed],
            template=done.template,
            body="",
            rewrite=done,
            original=template,
            logical=logical,
            notes=done.lines(),
            sources=cfn.deployed_from(stack, template),
            left={logical[g]["AutoScalingGroupName"]: why for g, why in done.left.items()},
        )
        if proposal.groups:
            # only a stack that changes has a template whose size matters
            proposal.body, proposal.via_bucket = template_body(
                done.template, fmt, stack_name, self.data.get("template-bucket")
            )
            if proposal.via_bucket:
                proposal.notes.append(
                    "%s: the new template is %d bytes, too big for "
                    "TemplateBody: sent through s3://%s/%s"
                    % (
                        stack_name,
                        len(proposal.body.encode("utf-8")),
                        self.data["template-bucket"],
                        proposal.key,
                    )
                )
            self.gate_sizes(proposal)
            self.gate_stack_policy(cloudformation, proposal)
            proposal.notes += ["%s: %s" % (stack_name, s.line()) for s in proposal.sources]
        return proposal

    def stack(self, cloudformation, stack_name):
        """The stack's DescribeStacks record, when a change set can be proposed to it."""
        try:
            stack = retry(cloudformation.describe_stacks, StackName=stack_name)["Stacks"][0]
        except ClientError as e:
            if "does not exist" in e.response["Error"].get("Message", ""):
                raise StackRefused(
                    "stack %s no longer exists; the group's %s tag is stale"
                    % (stack_name, CLOUDFORMATION_TAG)
                )
            raise
        if stack.get("ParentId") or stack.get("RootId"):
            raise StackRefused(
                "stack %s is a nested stack of %s: its template is the TemplateURL of an "
                "AWS::CloudFormation::Stack resource there; change the launch "
                "configuration in that template and update the root stack (not touched)"
                % (stack_name, arn_name(stack.get("RootId") or stack["ParentId"]))
            )
        status = stack.get("StackStatus", "")
        if status.endswith("_IN_PROGRESS") or status in NOT_UPDATABLE:
            raise StackRefused(
                "stack %s is %s; a change set can be proposed once it is "
                "stable - run again then" % (stack_name, status)
            )
        return stack

    def gate_sizes(self, proposal):
        """Executing the update sets each group's sizes to the template's: a difference
        from the live group is a launch change the policy must have opted in to."""
        parameters = {
            p["ParameterKey"]: p.get("ParameterValue")
            for p in proposal.stack.get("Parameters") or ()
        }
        self.accept(
            proposal,
            "the change set for stack %s" % proposal.stack_name,
            {
                asg["AutoScalingGroupName"]: of_group(
                    group_id, cfn.size_changes(proposal.original, group_id, asg, parameters)
                )
                for group_id, asg in sorted(proposal.logical.items())
                if group_id in proposal.rewrite.fixed
            },
        )

    def accept(self, proposal, what, changes):
        """Record the opted-in launch changes per group; refuse the stack on any other."""
        refusing = refused([c for cs in changes.values() for c in cs], self.allowed)
        if refusing:
            reason = refusal(what, refusing)
            if any(c.kind == "group-size" for c in refusing):
                reason += " (%s)" % cfn.SIZE_ADVICE
            raise StackRefused(reason)
        for group, accepted in changes.items():
            proposal.changes.setdefault(group, []).extend(accepted)
            proposal.notes += [
                "%s: accepted (allow-launch-changes): %s" % (group, c.line()) for c in accepted
            ]

    def gate_stack_policy(self, cloudformation, proposal):
        """A stack policy applies to every update and a change set cannot override it:
        a change set it forbids would fail when executed, so none is proposed."""
        done, original = proposal.rewrite, proposal.original["Resources"]
        wanted = {t: (cfn.LAUNCH_TEMPLATE, {"Update:Modify"}) for t in done.required}
        wanted.update({lc: (cfn.LAUNCH_CONFIGURATION, {"Update:Delete"}) for lc in done.removed})
        for group_id in done.fixed:
            replaces = cfn.replaces_group(original[group_id])
            wanted[group_id] = (
                cfn.AUTO_SCALING_GROUP,
                {"Update:Modify"} | ({"Update:Replace"} if replaces is not False else set()),
            )
        problems = cfn.stack_policy_denials(
            stack_policy(cloudformation, proposal.stack["StackId"]), wanted
        )
        if problems:
            raise StackRefused(
                "stack %s: no change set proposed: %s; a change set cannot override a stack "
                "policy, so executing it would fail - allow the update in the stack policy "
                "(aws cloudformation set-stack-policy), or update the stack yourself with "
                "--stack-policy-during-update-body" % (proposal.stack_name, "; ".join(problems))
            )

    def metadata_options(self, groups, template=None):
        """The template's MetadataOptions beyond HttpTokens: required, from the options."""
        options = {"HttpEndpoint": self.data.get("http-endpoint", PRESERVE)}
        hop_limit = self.data.get("hop-limit", PRESERVE)
        if hop_limit == "auto":
            # at least 2 where containers run (the group's tags, or its user data and
            # cfn-init Metadata in the template): a higher literal stays, and so does a
            # value the template computes (a parameter, a condition), which is its
            # owner's to choose
            hop_limit = (
                at_least_two
                if any(
                    runs_containers(asg)
                    or (
                        template is not None
                        and cfn.runs_containers_in(
                            template, tags_of(asg).get(CLOUDFORMATION_LOGICAL_ID_TAG)
                        )
                    )
                    for asg in groups
                )
                else PRESERVE
            )
        options["HttpPutResponseHopLimit"] = hop_limit
        return options

    def preview(self, asgs):
        """The change set each stack would get (describe, GetTemplate and GetStackPolicy
        calls only)."""
        _, autoscaling = self.clients()
        cloudformation = self.cloudformation()
        stacks = self.read(asgs, autoscaling)
        changes, failures, skipped = [], {}, list(self.skipped)
        for stack_name, groups in sorted(stacks.items()):
            try:
                proposal = self.propose(cloudformation, stack_name, groups)
            except Exception as e:  # one stack's failure never stops the others
                failures.update(self.failed(stack_name, groups, e, "reading"))
                continue
            skipped += [
                {"AutoScalingGroupName": g, "Skipped": reason}
                for g, reason in sorted(proposal.left.items())
            ]
            if proposal.groups:
                changes.append(
                    {
                        "Owner": "CloudFormation stack %s" % stack_name,
                        "Change": "change set %s, created for review and never executed "
                        "(%s)" % (proposal.name, proposal.execute_command()),
                        "Groups": proposal.group_names,
                        "Notes": proposal.notes,
                    }
                )
        return {"OwnerChanges": changes, "Failures": failures, "Skipped": skipped}

    def failed(self, stack_name, groups, error, doing):
        """{group: reason} for a stack that got no change set: a refusal as it is, an AWS
        error named, anything else as an error of c7n-imds's own (logged in full)."""
        if isinstance(error, StackRefused):
            reason = str(error)
        elif isinstance(error, AWS_ERRORS):
            reason = "%s stack %s: %s" % (doing, stack_name, describe_error(error))
        else:
            log.error(
                "stack %s: unexpected error, its groups are left unchanged",
                stack_name,
                exc_info=True,
            )
            reason = (
                "stack %s: unexpected error %s: %s; its groups were not changed and "
                "the other stacks were processed - please report it"
                % (stack_name, type(error).__name__, error)
            )
        return {g["AutoScalingGroupName"]: reason for g in groups}

    # -- execution ----------------------------------------------------------------------

    def remediate(self, asgs):
        _, autoscaling = self.clients()
        cloudformation = self.cloudformation()
        stacks = self.read(asgs, autoscaling)
        results, failures = list(self.skipped), {}
        for stack_name, groups in self.progress.each(
            sorted(stacks.items()), lambda item: len(item[1])
        ):
            try:
                proposal = self.propose(cloudformation, stack_name, groups)
                results += [
                    {"AutoScalingGroupName": g, "Skipped": reason}
                    for g, reason in sorted(proposal.left.items())
                ]
                if not proposal.groups:
                    continue
                change_set, replacement = self.propose_change_set(cloudformation, proposal)
            except Exception as e:  # one stack's failure never stops the others
                failures.update(self.failed(stack_name, groups, e, "proposing a change set to"))
                continue
            detail = "change set %s on stack %s is ready for review: %s" % (
                proposal.name,
                stack_name,
                proposal.execute_command(),
            )
            if proposal.sources:
                detail += ". " + proposal.source_advice()
            record = {
                "StackName": stack_name,
                "ChangeSetName": proposal.name,
                "ChangeSetId": change_set["ChangeSetId"],
                "Status": "proposed",
                "Detail": detail,
            }
            log.info(
                "stack %s: change set %s proposed for %s; review and execute it: %s",
                stack_name,
                proposal.name,
                ", ".join(proposal.group_names),
                proposal.execute_command(),
            )
            for asg in proposal.groups:
                name = asg["AutoScalingGroupName"]
                fix = dict(
                    record,
                    Action=CHANGE_SET_ACTION,
                    Replacement=replacement[name],
                    LaunchChanges=[c.record() for c in proposal.changes.get(name, ())],
                )
                if proposal.sources:
                    fix["Source"] = [
                        {"Kind": s.kind, "Evidence": s.evidence, "Advice": s.advice}
                        for s in proposal.sources
                    ]
                results.append(
                    {
                        "AutoScalingGroupName": name,
                        "Owner": "cloudformation:%s" % stack_name,
                        "OwnerFix": fix,
                        "Notes": proposal.notes,
                    }
                )
        return self.finish(results, failures)

    def propose_change_set(self, cloudformation, proposal):
        """The proposal's change set, created (or found again) and proven: its stored
        template is what was sent, its changes are the expected ones, and what it does
        beyond that was opted in to. A change set that fails the proof is deleted; one
        of ours of the same name that failed or is spent is deleted and made again;
        those of ours from an older template are deleted once the new one stands.
        Returns (DescribeChangeSet, {group name: what it does to the group})."""
        stack_id = proposal.stack["StackId"]
        ours = own_change_sets(cloudformation, stack_id)
        found = next((c for c in ours if c["ChangeSetName"] == proposal.name), None)
        replacing = None
        if found is not None and (
            found.get("Status") == "FAILED" or found.get("ExecutionStatus") in SPENT
        ):
            delete_change_set(cloudformation, stack_id, proposal.name)
            log.info(
                "stack %s: change set %s was %s; deleted, made again",
                proposal.stack_name,
                proposal.name,
                found.get("Status")
                if found.get("Status") == "FAILED"
                else found.get("ExecutionStatus"),
            )
            replacing, found = found.get("ChangeSetId") or proposal.name, None
        s3 = None
        if found is None:
            if proposal.via_bucket:
                s3 = imds_session(self.manager).client("s3")
                proposal.url = put_template(
                    s3, self.data["template-bucket"], proposal.key, proposal.body
                )
            try:
                retry(cloudformation.create_change_set, **proposal.request(replacing))
            except Exception:
                self.remove_template(s3, proposal)
                raise
            log.info("stack %s: change set %s created", proposal.stack_name, proposal.name)
        try:
            change_set = self.wait_for_change_set(cloudformation, proposal)
            # CloudFormation keeps its own copy of a change set's template (GetTemplate
            # with ChangeSetName): the uploaded object is not needed once it is made
            self.remove_template(s3, proposal)
            s3 = None
            problem = self.stored_problem_of(cloudformation, proposal, change_set)
            if problem:
                raise StackRefused(problem)
            replacement = self.gate_change_set(proposal, change_set)
        except StackRefused:
            self.remove_template(s3, proposal)
            delete_change_set(cloudformation, stack_id, proposal.name)
            raise
        except Exception:
            self.remove_template(s3, proposal)
            # not proven: no owner may execute it
            try:
                delete_change_set(cloudformation, stack_id, proposal.name)
            except AWS_ERRORS:
                log.warning(
                    "stack %s: change set %s could not be deleted; delete it: aws "
                    "cloudformation delete-change-set --stack-name %s "
                    "--change-set-name %s",
                    proposal.stack_name,
                    proposal.name,
                    proposal.stack_name,
                    proposal.name,
                )
            raise
        for stale in ours:
            if (
                stale["ChangeSetName"] != proposal.name
                and stale.get("ExecutionStatus") != "EXECUTE_COMPLETE"
            ):
                delete_change_set(cloudformation, stack_id, stale["ChangeSetName"])
                log.info(
                    "stack %s: change set %s of an older template deleted",
                    proposal.stack_name,
                    stale["ChangeSetName"],
                )
        return change_set, replacement

    def remove_template(self, s3, proposal):
        """Delete the template uploaded for a change set; a failure is logged with the
        command that deletes it, never raised over the change set's own outcome."""
        if s3 is None:
            return
        try:
            delete_template(s3, self.data["template-bucket"], proposal.key)
        except AWS_ERRORS as e:
            log.warning(
                "stack %s: s3://%s/%s could not be deleted (%s); delete it: aws s3 rm s3://%s/%s",
                proposal.stack_name,
                self.data["template-bucket"],
                proposal.key,
                describe_error(e),
                self.data["template-bucket"],
                proposal.key,
            )

    def gate_change_set(self, proposal, change_set):
        """What only the made change set tells: SSM parameters that resolve anew, and
        which groups it replaces. Refuses (StackRefused) what was not opted in to;
        returns {group name: what the change set does to the group}."""
        stack_wide = cfn.parameter_changes(
            proposal.original, proposal.stack.get("Parameters"), change_set.get("Parameters")
        )
        changes, replacement = {}, {}
        for asg in proposal.groups:
            group_id = tags_of(asg)[CLOUDFORMATION_LOGICAL_ID_TAG]
            text, replaced = cfn.replacement(change_set, group_id, proposal.template)
            name = asg["AutoScalingGroupName"]
            replacement[name] = text
            changes[name] = list(stack_wide) + of_group(group_id, replaced)
        self.accept(
            proposal, "change set %s of stack %s" % (proposal.name, proposal.stack_name), changes
        )
        return replacement

    def wait_for_change_set(self, cloudformation, proposal):
        """DescribeChangeSet once CloudFormation has finished making it."""
        try:
            cloudformation.get_waiter("change_set_create_complete").wait(
                StackName=proposal.stack["StackId"], ChangeSetName=proposal.name, WaiterConfig=WAIT
            )
        except WaiterError:
            pass  # a FAILED change set is described below with its reason
        change_set = describe_change_set(cloudformation, proposal.stack["StackId"], proposal.name)
        if change_set["Status"] != "CREATE_COMPLETE":
            raise StackRefused(
                "CloudFormation could not make change set %s for stack %s "
                "(%s: %s); it was deleted - fix what it names, then run again"
                % (
                    proposal.name,
                    proposal.stack_name,
                    change_set["Status"],
                    change_set.get("StatusReason") or "no reason given",
                )
            )
        return change_set

    def stored_problem_of(self, cloudformation, proposal, change_set):
        """None when CloudFormation stored the change set as proposed, else why not."""
        stored = retry(
            cloudformation.get_template,
            StackName=proposal.stack["StackId"],
            ChangeSetName=proposal.name,
            TemplateStage="Original",
        )["TemplateBody"]
        what = "change set %s of stack %s" % (proposal.name, proposal.stack_name)
        try:
            stored_template, _ = template_of(stored, proposal.stack_name)
        except StackRefused as e:
            return "%s: its stored template could not be read back (%s)" % (what, e)
        if stored_template != cfn.parse_template(proposal.body)[0]:
            return (
                "%s: the template CloudFormation stored differs from the one sent; it "
                "was deleted - run again" % what
            )
        sent = {p["ParameterKey"] for p in proposal.stack.get("Parameters") or ()}
        kept = {p["ParameterKey"] for p in change_set.get("Parameters") or ()}
        if sent != kept:
            return "%s: its parameters %s are not the stack's %s" % (
                what,
                sorted(kept),
                sorted(sent),
            )
        if change_set.get("ExecutionStatus") != "AVAILABLE":
            return "%s: it is %s, not ready to execute" % (what, change_set.get("ExecutionStatus"))
        changes = {
            (c["ResourceChange"].get("Action"), c["ResourceChange"].get("LogicalResourceId"))
            for c in change_set.get("Changes") or ()
            if c.get("Type") == "Resource"
        }
        # a group on one of the stack's launch templates need not change itself: the
        # template does (its new version); a group moved off a configuration does
        expected = {("Modify", logical) for logical in proposal.modified}
        if not expected <= changes:
            return "%s: it does not modify %s" % (
                what,
                ", ".join(sorted(logical for _, logical in expected - changes)),
            )
        return None


def parameter_values(stack):
    """{key: value} of a DescribeStacks record's Parameters: the ResolvedValue of an
    SSM-typed parameter, else its ParameterValue (NoEcho ones read "****")."""
    return {
        p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue"))
        for p in stack.get("Parameters") or ()
    }


def of_group(group_id, changes):
    """Launch changes of one group's resource, named after it."""
    return [
        LaunchChange(c.kind, "%s of %s" % (c.field, group_id), c.before, c.after, c.why)
        for c in changes
    ]


def at_least_two(existing):
    """`hop-limit: auto` where containers run, for a template's existing hop limit: at
    least 2; a value the template computes (a parameter, a condition) is kept."""
    if existing is None:
        return 2
    return max(existing, 2) if isinstance(existing, int) else existing


register_owner_withdraw(CLOUDFORMATION_TAG, withdraw_change_sets)
