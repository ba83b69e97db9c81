"""`create-stack-change-set` where CloudFormation says no, or stores something else:
placebo flights in AWS's shape (tests/data/placebo/<test name>/). The path that works is
end to end on moto (tests/test_e2e_change_sets.py).

Calls per run: DescribeAutoScalingGroups (custodian's listing), DescribeAutoScalingGroups
(the action re-reads the groups), then per stack in name order DescribeStacks,
GetTemplate (Original), ListChangeSets, CreateChangeSet, DescribeChangeSet (the waiter),
DescribeChangeSet (the change set read), GetTemplate of the change set (the read-back)."""
import json

import pytest
from c7n.schema import generate, validate

import c7n_imds.owners.cloudformation  # noqa: F401  (registers the action)
from c7n_imds.actions.base import RemediationError
from tests.support.placebo import asg_policy, recording_factory

POLICY = asg_policy("asg-stack-propose", {"type": "create-stack-change-set"},
                    [{"tag:aws:cloudformation:stack-name": "present"}])


def run(placebo_factory, load_policy, tmp_path, name, policy=POLICY):
    factory = recording_factory(placebo_factory, name)
    with pytest.raises(RemediationError) as failed:
        load_policy(policy, session_factory=factory, output_dir=tmp_path).run()
    outcome = {c["AutoScalingGroupName"]: c for c in json.loads(
        (tmp_path / policy["name"] / "imds-changes.json").read_text())}
    return factory, failed.value.failures, outcome


MUTATING = ("CreateChangeSet", "DeleteChangeSet", "ExecuteChangeSet", "UpdateStack",
            "CreateOrUpdateTags", "UpdateAutoScalingGroup")


def test_change_set_refused_where_the_stack_cannot_take_one(placebo_factory, load_policy,
                                                            tmp_path):
    """A nested stack, a stack being updated and a group without its logical-id tag get
    one line each and no call beyond DescribeStacks; a Beanstalk group (its stack is
    Beanstalk's) and a group no stack owns are left alone with what fixes them."""
    everything = asg_policy("asg-stack-propose", {"type": "create-stack-change-set"}, [])
    factory, failures, outcome = run(placebo_factory, load_policy, tmp_path,
                                     "test_change_set_refused_where_the_stack_cannot_take_one",
                                     everything)
    assert "nested stack of app" in failures["inner-app"]
    assert "AWS::CloudFormation::Stack" in failures["inner-app"]
    assert failures["busy-app"] == ("stack busy is UPDATE_IN_PROGRESS; a change set can be "
                                    "proposed once it is stable - run again then")
    assert "has no aws:cloudformation:logical-id tag" in failures["nolid-app"]
    assert "disable-beanstalk-imdsv1" in outcome["eb-app"]["Skipped"]
    assert "in-place actions" in outcome["plain-app"]["Skipped"]
    assert [p["StackName"] for p in factory.called("DescribeStacks")] == ["app-inner", "busy"]
    assert factory.called("GetTemplate") == []
    assert not any(factory.called(op) for op in MUTATING)


def test_change_set_unreadable_template_is_not_touched(placebo_factory, load_policy,
                                                       tmp_path):
    factory, failures, _ = run(placebo_factory, load_policy, tmp_path,
                               "test_change_set_unreadable_template_is_not_touched")
    assert failures["app"].startswith("the template of stack web could not be read "
                                      "(AccessDenied: "), failures
    assert failures["app"].endswith("; not touched")
    assert not any(factory.called(op) for op in MUTATING)


def test_change_set_read_back_difference_deletes_it(placebo_factory, load_policy, tmp_path):
    """CloudFormation's copy of the change set's template is not the one sent (here: the
    stack's own): the change set is deleted again, so no owner executes it."""
    factory, failures, _ = run(placebo_factory, load_policy, tmp_path,
                               "test_change_set_read_back_difference_deletes_it")
    (create,) = factory.called("CreateChangeSet")
    sent = json.loads(create["TemplateBody"])
    assert sent["Resources"]["AppGroup"]["Properties"]["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": "AppConfigImdsv2Template"},
        "Version": {"Fn::GetAtt": ["AppConfigImdsv2Template", "LatestVersionNumber"]}}
    assert create["StackName"] == "web" and create["ChangeSetType"] == "UPDATE"
    assert create["Parameters"] == [{"ParameterKey": "InstanceType", "UsePreviousValue": True}]
    assert create["Capabilities"] == ["CAPABILITY_IAM"]
    # the stack's tags are not sent: on a change set they would become the stack's tags
    assert "Tags" not in create and "NotificationARNs" not in create
    assert create["ChangeSetName"].startswith("c7n-imds-imdsv2-")
    assert create["ClientToken"] == create["ChangeSetName"]
    read_back = factory.called("GetTemplate")[1]
    assert read_back["ChangeSetName"] == create["ChangeSetName"]
    assert factory.called("DeleteChangeSet") == [{
        "StackName": "arn:aws:cloudformation:us-east-1:123456789012:stack/web/"
                     "0f0e0d0c-1111-2222-3333-444455556666",
        "ChangeSetName": create["ChangeSetName"]}]
    assert "the template CloudFormation stored differs from the one sent" in failures["app"]
    assert factory.called("ExecuteChangeSet") == []


def test_change_set_cloudformation_refused_is_deleted_with_its_reason(
        placebo_factory, load_policy, tmp_path):
    factory, failures, _ = run(
        placebo_factory, load_policy, tmp_path,
        "test_change_set_cloudformation_refused_is_deleted_with_its_reason")
    assert "(FAILED: Requires capabilities : [CAPABILITY_NAMED_IAM])" in failures["app"]
    assert "it was deleted - fix what it names, then run again" in failures["app"]
    assert len(factory.called("DeleteChangeSet")) == 1
    assert factory.called("ExecuteChangeSet") == []


@pytest.mark.parametrize("options", [{"hop-limit": 0}, {"hop-limits": 2},
                                     {"http-endpoint": "off"}, {"execute": True}])
def test_change_set_schema_rejects(options):
    policy = asg_policy("p", dict({"type": "create-stack-change-set"}, **options), [])
    assert validate({"policies": [policy]}, generate(["aws.asg"])), "accepted %r" % options


def test_change_set_schema_accepts():
    policy = asg_policy("p", {"type": "create-stack-change-set", "hop-limit": "auto",
                              "http-endpoint": "enabled", "rate-budget": 0.2}, [])
    assert validate({"policies": [policy]}, generate(["aws.asg"])) == []
