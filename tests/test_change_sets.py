"""`create-stack-change-set` where CloudFormation says no, or stores something else:
placebo flights in AWS's shape (tests/data/placebo/<test name>/). The path that works is
end to end on moto (tests/test_e2e_change_sets.py).

Calls per run: DescribeAutoScalingGroups (custodian's listing), DescribeAutoScalingGroups
(the action re-reads the groups), then per stack in name order DescribeStacks,
GetTemplate (Original), GetStackPolicy, ListChangeSets, [DeleteChangeSet of a FAILED or
spent one of the same name], CreateChangeSet, DescribeChangeSet (the waiter),
DescribeChangeSet (the change set read), GetTemplate of the change set (the read-back),
[DeleteChangeSet when it is refused]. A stack refused from what was read (transform,
group sizes, stack policy) stops before ListChangeSets. Flights of the newer tests were
written by a script from AWS's shapes; a stored change set's template is the body the
action sends (CloudFormation's echo of it)."""

import json

import pytest
from c7n.schema import generate, validate

import c7n_imds.owners.cloudformation  # noqa: F401  (registers the action)
from c7n_imds.actions.base import RemediationError
from c7n_imds.model.outcomes import entries
from tests.support.placebo import asg_policy, recording_factory

POLICY = asg_policy(
    "asg-stack-propose",
    {"type": "create-stack-change-set"},
    [{"tag:aws:cloudformation:stack-name": "present"}],
)


def run(placebo_factory, load_policy, tmp_path, name, policy=POLICY):
    factory = recording_factory(placebo_factory, name)
    with pytest.raises(RemediationError) as failed:
        load_policy(policy, session_factory=factory, output_dir=tmp_path).run()
    outcome = {
        c["AutoScalingGroupName"]: c
        for c in entries(json.loads((tmp_path / policy["name"] / "imds-changes.json").read_text()))
    }
    return factory, failed.value.failures, outcome


MUTATING = (
    "CreateChangeSet",
    "DeleteChangeSet",
    "ExecuteChangeSet",
    "UpdateStack",
    "CreateOrUpdateTags",
    "UpdateAutoScalingGroup",
)


def test_change_set_refused_where_the_stack_cannot_take_one(placebo_factory, load_policy, tmp_path):
    """A nested stack, a stack being updated and a group without its logical-id tag get
    one line each and no call beyond DescribeStacks; a Beanstalk group (its stack is
    Beanstalk's) and a group no stack owns are left alone with what fixes them."""
    everything = asg_policy("asg-stack-propose", {"type": "create-stack-change-set"}, [])
    factory, failures, outcome = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_refused_where_the_stack_cannot_take_one",
        everything,
    )
    assert "nested stack of app" in failures["inner-app"]
    assert "AWS::CloudFormation::Stack" in failures["inner-app"]
    assert failures["busy-app"] == (
        "stack busy is UPDATE_IN_PROGRESS; a change set can be "
        "proposed once it is stable - run again then"
    )
    assert "has no aws:cloudformation:logical-id tag" in failures["nolid-app"]
    assert "disable-beanstalk-imdsv1" in outcome["eb-app"]["Skipped"]
    assert "in-place actions" in outcome["plain-app"]["Skipped"]
    assert [p["StackName"] for p in factory.called("DescribeStacks")] == ["app-inner", "busy"]
    assert factory.called("GetTemplate") == []
    assert not any(factory.called(op) for op in MUTATING)


def test_change_set_unreadable_template_is_not_touched(placebo_factory, load_policy, tmp_path):
    factory, failures, _ = run(
        placebo_factory, load_policy, tmp_path, "test_change_set_unreadable_template_is_not_touched"
    )
    assert failures["app"].startswith(
        "the template of stack web could not be read (AccessDenied: "
    ), failures
    assert failures["app"].endswith("; not touched")
    assert not any(factory.called(op) for op in MUTATING)


def test_change_set_read_back_difference_deletes_it(placebo_factory, load_policy, tmp_path):
    """CloudFormation's copy of the change set's template is not the one sent (here: the
    stack's own): the change set is deleted again, so no owner executes it."""
    factory, failures, _ = run(
        placebo_factory, load_policy, tmp_path, "test_change_set_read_back_difference_deletes_it"
    )
    (create,) = factory.called("CreateChangeSet")
    sent = json.loads(create["TemplateBody"])
    assert sent["Resources"]["AppGroup"]["Properties"]["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": "AppConfigImdsv2Template"},
        "Version": {"Fn::GetAtt": ["AppConfigImdsv2Template", "LatestVersionNumber"]},
    }
    assert create["StackName"] == "web" and create["ChangeSetType"] == "UPDATE"
    assert create["Parameters"] == [{"ParameterKey": "InstanceType", "UsePreviousValue": True}]
    assert create["Capabilities"] == ["CAPABILITY_IAM"]
    # the stack's tags are not sent: on a change set they would become the stack's tags
    assert "Tags" not in create and "NotificationARNs" not in create
    assert create["ChangeSetName"].startswith("c7n-imds-imdsv2-")
    assert create["ClientToken"] == create["ChangeSetName"]
    read_back = factory.called("GetTemplate")[1]
    assert read_back["ChangeSetName"] == create["ChangeSetName"]
    assert factory.called("DeleteChangeSet") == [
        {
            "StackName": "arn:aws:cloudformation:us-east-1:123456789012:stack/web/"
            "0f0e0d0c-1111-2222-3333-444455556666",
            "ChangeSetName": create["ChangeSetName"],
        }
    ]
    assert "the template CloudFormation stored differs from the one sent" in failures["app"]
    assert factory.called("ExecuteChangeSet") == []


def test_change_set_cloudformation_refused_is_deleted_with_its_reason(
    placebo_factory, load_policy, tmp_path
):
    factory, failures, _ = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_cloudformation_refused_is_deleted_with_its_reason",
    )
    assert "(FAILED: Requires capabilities : [CAPABILITY_NAMED_IAM])" in failures["app"]
    assert "it was deleted - fix what it names, then run again" in failures["app"]
    assert len(factory.called("DeleteChangeSet")) == 1
    assert factory.called("ExecuteChangeSet") == []


@pytest.mark.parametrize(
    "options", [{"hop-limit": 0}, {"hop-limits": 2}, {"http-endpoint": "off"}, {"execute": True}]
)
def test_change_set_schema_rejects(options):
    policy = asg_policy("p", dict({"type": "create-stack-change-set"}, **options), [])
    assert validate({"policies": [policy]}, generate(["aws.asg"])), "accepted %r" % options


def test_change_set_schema_accepts():
    policy = asg_policy(
        "p",
        {
            "type": "create-stack-change-set",
            "hop-limit": "auto",
            "http-endpoint": "enabled",
            "rate-budget": 0.2,
        },
        [],
    )
    assert validate({"policies": [policy]}, generate(["aws.asg"])) == []


def propose(placebo_factory, load_policy, tmp_path, name, **options):
    """A run expected to succeed: (factory, {group: outcome})."""
    policy = asg_policy(
        "asg-stack-propose",
        dict({"type": "create-stack-change-set"}, **options),
        [{"tag:aws:cloudformation:stack-name": "present"}],
    )
    factory = recording_factory(placebo_factory, name)
    load_policy(policy, session_factory=factory, output_dir=tmp_path).run()
    outcome = {
        c["AutoScalingGroupName"]: c
        for c in entries(json.loads((tmp_path / policy["name"] / "imds-changes.json").read_text()))
    }
    return factory, outcome


AMI_BEFORE, AMI_AFTER = "ami-0aaaaaaaaaaaaaaa1", "ami-0bbbbbbbbbbbbbbb2"


def test_change_set_ssm_parameter_resolving_to_a_new_image_is_refused(
    placebo_factory, load_policy, tmp_path
):
    """The stack's ImageId is an SSM-typed parameter; UsePreviousValue re-resolves it, and
    the change set's ResolvedValue is another AMI than the stack's: executing it would
    also change the image. The change set is deleted and the group fails with why."""
    factory, failures, _ = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_ssm_parameter_resolving_to_a_new_image_is_refused",
    )
    (create,) = factory.called("CreateChangeSet")
    assert factory.called("DeleteChangeSet") == [
        {
            "StackName": "arn:aws:cloudformation:us-east-1:123456789012:stack/web/"
            "0f0e0d0c-1111-2222-3333-444455556660",
            "ChangeSetName": create["ChangeSetName"],
        }
    ]
    reason = failures["app"]
    assert reason.startswith(
        "change set %s of stack web would also change what instances "
        "launch with: image: parameter ImageId %s -> %s (UsePreviousValue "
        "re-resolves AWS::SSM::Parameter::Value<AWS::EC2::Image::Id> "
        % (create["ChangeSetName"], AMI_BEFORE, AMI_AFTER)
    ), reason
    assert reason.endswith("add image to the action's allow-launch-changes to accept exactly that")
    assert factory.called("ExecuteChangeSet") == []


def test_change_set_ssm_image_change_proposed_when_opted_in(placebo_factory, load_policy, tmp_path):
    """The same stack with `allow-launch-changes: [image]`: proposed, and the owner-fix
    record names the image change."""
    factory, outcome = propose(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_ssm_image_change_proposed_when_opted_in",
        **{"allow-launch-changes": ["image"]},
    )
    fix = outcome["app"]["OwnerFix"]
    assert fix["Status"] == "proposed" and fix["Action"] == "create-stack-change-set"
    [change] = fix["LaunchChanges"]
    assert change["Kind"] == "image" and change["Field"] == "parameter ImageId"
    assert "%s -> %s" % (AMI_BEFORE, AMI_AFTER) in change["Line"]
    assert factory.called("DeleteChangeSet") == []


def test_change_set_group_size_difference_is_refused(placebo_factory, load_policy, tmp_path):
    """The live group runs at MinSize 2 / DesiredCapacity 2 (scaled since), the template
    says MinSize "0": executing the update would set MinSize 0. Refused before any
    change set is made; DesiredCapacity is not in the template, so it is not touched."""
    factory, failures, _ = run(
        placebo_factory, load_policy, tmp_path, "test_change_set_group_size_difference_is_refused"
    )
    assert failures["app"].startswith(
        "the change set for stack web would also change what instances launch with: "
        "group-size: MinSize of AppGroup 2 -> 0 (the update sets the template's value); "
        "nothing was changed - add group-size to the action's allow-launch-changes"
    ), failures["app"]
    assert "IgnoreUnmodifiedGroupSizeProperties: true" in failures["app"]
    assert "DesiredCapacity of AppGroup" not in failures["app"]
    assert not any(factory.called(op) for op in MUTATING)
    assert factory.called("GetStackPolicy") == []


def test_change_set_foreach_stack_does_not_stop_the_next(placebo_factory, load_policy, tmp_path):
    """Stack alpha makes resources with Fn::ForEach (AWS::LanguageExtensions): refused,
    untouched, with why; stack beta after it still gets its change set."""
    factory, failures, outcome = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_foreach_stack_does_not_stop_the_next",
    )
    assert failures == {
        "alpha-app": (
            "stack alpha: not touched: its template makes resources with Fn::ForEach "
            "(Fn::ForEach::Topics, transform AWS::LanguageExtensions): what they become exists "
            "only in the processed template, so c7n-imds cannot change them faithfully - "
            "require IMDSv2 in the template's source"
        )
    }
    assert outcome["beta-app"]["OwnerFix"]["Status"] == "proposed"
    [create] = factory.called("CreateChangeSet")
    assert create["StackName"] == "beta"


def test_change_set_unexpected_error_in_one_stack_does_not_stop_the_next(
    placebo_factory, load_policy, tmp_path, monkeypatch
):
    """An error nobody foresaw in stack alpha (planted in the rewrite) fails alpha's
    groups with it; stack beta is still proposed."""
    from c7n_imds.owners import cloudformation

    rewrite = cloudformation.cfn.rewrite

    def planted(template, *args, **kwargs):
        if template.get("Description") == "alpha":
            raise KeyError("planted")
        return rewrite(template, *args, **kwargs)

    monkeypatch.setattr(cloudformation.cfn, "rewrite", planted)
    factory, failures, outcome = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_unexpected_error_in_one_stack_does_not_stop_the_next",
    )
    assert failures == {
        "alpha-app": (
            "stack alpha: unexpected error KeyError: 'planted'; its groups were not changed "
            "and the other stacks were processed - please report it"
        )
    }
    assert outcome["beta-app"]["OwnerFix"]["Status"] == "proposed"
    assert [c["StackName"] for c in factory.called("CreateChangeSet")] == ["beta"]


def test_change_set_cdk_stack_says_the_fix_belongs_in_the_app(
    placebo_factory, load_policy, tmp_path
):
    """A CDK stack (CDKMetadata, BootstrapVersion, aws:cdk:path): the change set is still
    proposed, and the record the mail shows says the fix must go into the CDK app, or
    the next cdk deploy reverts it."""
    _, outcome = propose(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_cdk_stack_says_the_fix_belongs_in_the_app",
    )
    fix = outcome["app"]["OwnerFix"]
    assert fix["Status"] == "proposed"
    assert (
        "This stack is deployed by the AWS CDK (resource CDKMetadata, parameter "
        "BootstrapVersion, aws:cdk:path WebStack/App/ASG)" in fix["Detail"]
    )
    assert "requireImdsv2: true" in fix["Detail"]
    assert "LaunchTemplate(require_imdsv2=True)" in fix["Detail"]
    assert "the next cdk deploy reverts this change" in fix["Detail"]
    assert [s["Kind"] for s in fix["Source"]] == ["cdk"]
    assert fix["LaunchChanges"] == []  # BootstrapVersion resolves as before


def test_change_set_stack_policy_that_denies_the_update_is_refused(
    placebo_factory, load_policy, tmp_path
):
    """The stack policy allows Update:* on * but denies Modify/Replace of AppGroup: a
    change set cannot override it, so none is made; the statement is named."""
    factory, failures, _ = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_stack_policy_that_denies_the_update_is_refused",
    )
    reason = failures["app"]
    assert reason.startswith(
        "stack web: no change set proposed: its stack policy denies "
        "Update:Modify on AppGroup (statement KeepTheFleet: "
    ), reason
    assert "a change set cannot override a stack policy" in reason
    assert factory.called("GetStackPolicy") == [
        {
            "StackName": "arn:aws:cloudformation:us-east-1:123456789012:stack/web/"
            "0f0e0d0c-1111-2222-3333-444455556660"
        }
    ]
    assert not any(factory.called(op) for op in MUTATING)


def test_change_set_replacement_is_reported_as_the_change_set_says(
    placebo_factory, load_policy, tmp_path
):
    """AppGroup has AutoScalingReplacingUpdate WillReplace: false and the change set says
    Replacement False: not reported as a replacement. BatchGroup's change says
    Replacement True: proposed only because the policy opts in to
    replace-all-at-once, and its record says so."""
    _, outcome = propose(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_replacement_is_reported_as_the_change_set_says",
        **{"allow-launch-changes": ["replace-all-at-once"]},
    )
    app, batch = outcome["app"]["OwnerFix"], outcome["batch"]["OwnerFix"]
    assert app["Replacement"] == (
        "not replaced: the change set updates the group in place (Replacement: False)"
    )
    assert app["LaunchChanges"] == []
    assert not any(
        "replace the whole group" in n for n in outcome["app"]["Notes"] if n.startswith("AppGroup")
    )
    assert batch["Replacement"] == (
        "replaces the whole group (the change set says "
        "Replacement: True): a new group is made, then this one "
        "is deleted"
    )
    assert [c["Kind"] for c in batch["LaunchChanges"]] == ["replace-all-at-once"]


def test_change_set_failed_or_obsolete_is_made_again_in_one_run(
    placebo_factory, load_policy, tmp_path
):
    """Stack alpha holds a FAILED change set of ours of the same name, beta an OBSOLETE
    one (the stack was updated since): each is deleted and made again in this run, with
    a ClientToken of its own (the old one's would make CloudFormation take the request
    for a retry of the deleted one)."""
    factory, outcome = propose(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_failed_or_obsolete_is_made_again_in_one_run",
    )
    creates = factory.called("CreateChangeSet")
    assert [c["StackName"] for c in creates] == ["alpha", "beta"]
    assert [d["ChangeSetName"] for d in factory.called("DeleteChangeSet")] == [
        c["ChangeSetName"] for c in creates
    ]
    for create in creates:
        assert create["ClientToken"].startswith(create["ChangeSetName"] + "-")
        assert create["ClientToken"] != create["ChangeSetName"]
    order = [
        name for _, name, _ in factory.api_calls if name in ("DeleteChangeSet", "CreateChangeSet")
    ]
    assert order == ["DeleteChangeSet", "CreateChangeSet"] * 2
    assert {g: o["OwnerFix"]["Status"] for g, o in outcome.items()} == {
        "alpha-app": "proposed",
        "beta-app": "proposed",
    }


def test_change_set_profile_parameter_of_unknown_value_is_refused(
    placebo_factory, load_policy, tmp_path
):
    """The launch configuration's IamInstanceProfile is a NoEcho parameter: whether it
    holds a name or an ARN cannot be read from the stack (DescribeStacks says "****"),
    so the stack is refused after GetTemplate, naming the parameter - never guessed
    from its description or default."""
    factory, failures, _ = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_profile_parameter_of_unknown_value_is_refused",
    )
    assert "parameter NodeInstanceProfile is NoEcho (hidden)" in failures["app"], failures
    assert failures["app"].startswith("stack web: launch configuration AppConfig: ")
    assert not any(factory.called(op) for op in MUTATING)
    assert factory.called("GetStackPolicy") == []


def test_change_set_stack_with_nothing_to_change_is_never_too_big(
    placebo_factory, load_policy, tmp_path
):
    """A stack over 51,200 bytes whose group already launches from a template that
    requires IMDSv2: the group is left with why, and nothing is said about size - only a
    stack that changes has a body to send."""
    factory, outcome = propose(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_change_set_stack_with_nothing_to_change_is_never_too_big",
    )
    assert "already require(s) IMDSv2" in outcome["app"]["Skipped"]
    assert "bytes" not in json.dumps(outcome)
    assert factory.called("GetStackPolicy") == [] and not any(factory.called(op) for op in MUTATING)


def test_change_set_schema_takes_a_template_bucket_and_declares_its_permissions():
    from c7n_imds.owners.cloudformation import CreateStackChangeSet

    data = {"type": "create-stack-change-set", "template-bucket": "cfn-templates"}
    assert validate({"policies": [asg_policy("p", data, [])]}, generate()) == []
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"} <= set(
        CreateStackChangeSet(data).get_permissions()
    )
    assert not {"s3:PutObject"} & set(
        CreateStackChangeSet({"type": "create-stack-change-set"}).get_permissions()
    )
