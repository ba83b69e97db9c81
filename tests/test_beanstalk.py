"""`disable-beanstalk-imdsv1` (c7n_imds/owners/beanstalk.py) against recorded AWS
responses: the option set at the environment, the way back recorded first, the
refusals, the read-back, re-runs after a kill; and restore_environment for a revert.

moto 5.2.5 implements neither UpdateEnvironment, DescribeConfigurationSettings nor
ValidateConfigurationSettings (docs/moto-gaps.md), so every flight here is written in
AWS's shape from botocore's output shapes and the API reference: a Beanstalk group
carries the tags elasticbeanstalk:environment-name and -id beside its stack's; a
configuration set lists the environment's options (the launch options with their
ResourceName); after UpdateEnvironment a draft set (DeploymentStatus "pending") holds
the new value while the environment is Updating. DescribeEnvironmentResources lists
the environment's groups (AutoScalingGroups[].Name) and its launch configuration or,
once DisableIMDSv1 is true, its launch template. How placebo flights answer a policy
run's calls: tests/support/placebo.py. DescribeAutoScalingGroups _1 is custodian's
listing, _2 the action's fresh read, _3 the gate's read of every group the environment
lists.
"""

import textwrap

import pytest
import yaml
from c7n.config import Config
from c7n.policy import PolicyCollection
from c7n.schema import generate, validate

import c7n_imds.owners.beanstalk as beanstalk
from c7n_imds.actions import RemediationError
from c7n_imds.cli import format_preview
from c7n_imds.owners import environments
from tests.support.placebo import asg_policy, changes, group_tag, recording_factory

PREVIOUS = "c7n-imds:previous-launch"
POLICY = "beanstalk-imdsv2"
WEB = "awseb-e-3kqm7xwbvp-stack-AWSEBAutoScalingGroup-1XK2J4P8QW3RT"
WEB2 = "awseb-e-3kqm7xwbvp-immutable-stack-AWSEBAutoScalingGroup-7HN5C2Z9LB4MV"
API = "awseb-e-9rtx2mzdqa-stack-AWSEBAutoScalingGroup-2GQ6W8N4XJ1TB"
WEB_ID = "e-3kqm7xwbvp"
SETTING = {
    "Namespace": "aws:autoscaling:launchconfiguration",
    "OptionName": "DisableIMDSv1",
    "Value": "true",
}
MUTATING = ("ValidateConfigurationSettings", "CreateOrUpdateTags", "UpdateEnvironment")


def policy():
    return asg_policy(POLICY, {"type": "disable-beanstalk-imdsv1"}, [])


def run(placebo_factory, load_policy, tmp_path, name):
    factory = recording_factory(placebo_factory, name)
    load_policy(policy(), session_factory=factory, output_dir=tmp_path).run()
    return factory


def run_failing(placebo_factory, load_policy, tmp_path, name):
    factory = recording_factory(placebo_factory, name)
    with pytest.raises(RemediationError) as raised:
        load_policy(policy(), session_factory=factory, output_dir=tmp_path).run()
    return factory, raised.value.failures


def order(factory, *operations):
    return [name for _, name, _ in factory.api_calls if name in operations]


MOVED = (
    "Beanstalk launches the environment's instances from a launch template with "
    "IMDSv2 required (replacing a launch configuration) and replaces every instance - "
)
# The flights' web-prod: RollingUpdateEnabled true, RollingUpdateType Health, no batch
# options, MinSize 1, MaxSize 4 - so Beanstalk's defaults: MaxBatchSize ceil(1/3) = 1,
# MinInstancesInService min(1, 4 - 1) = 1.
ROLLING_HEALTH = (
    "rolling: batches of at most 1 instance(s), at least 1 kept in service, "
    "each batch healthy before the next (RollingUpdateType Health; "
    "MaxBatchSize and MinInstancesInService not set: Beanstalk's default)"
)


def applied(group, detail_value="false", replacement=ROLLING_HEALTH, mode="rolling"):
    return {
        "AutoScalingGroupName": group,
        "Owner": "elasticbeanstalk:web-prod",
        "OwnerFix": {
            "Action": "disable-beanstalk-imdsv1",
            "Status": "applied",
            "EnvironmentName": "web-prod",
            "EnvironmentId": WEB_ID,
            "Detail": "aws:autoscaling:launchconfiguration DisableIMDSv1: %s "
            "-> true; %s%s" % (detail_value, MOVED, replacement),
            "Replacement": mode,
        },
    }


def test_beanstalk_sets_the_option_after_recording_the_previous_value(
    placebo_factory, load_policy, tmp_path
):
    """Group WEB belongs to environment web-prod (application shop), Ready, whose
    deployed configuration shows DisableIMDSv1 "false" - Beanstalk's default. The change
    is validated, the group is tagged eb:DisableIMDSv1 (the default is recorded as "not
    set", so a revert removes the setting), and only then the environment is updated by
    its id with exactly the one option. The read-back (DescribeConfigurationSettings _2)
    finds the pending draft with "true"."""
    factory = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_sets_the_option_after_recording_the_previous_value",
    )
    assert factory.called("DescribeEnvironments") == [
        {"EnvironmentIds": [WEB_ID], "IncludeDeleted": False}
    ]
    assert factory.called("DescribeEnvironmentResources") == [{"EnvironmentId": WEB_ID}]
    # the gate reads every group the environment lists (no instances: no metrics)
    assert factory.called("DescribeAutoScalingGroups")[2] == {"AutoScalingGroupNames": [WEB]}
    assert factory.called("GetMetricData") == []
    assert (
        factory.called("DescribeConfigurationSettings")
        == [{"ApplicationName": "shop", "EnvironmentName": "web-prod"}] * 2
    )
    assert factory.called("ValidateConfigurationSettings") == [
        {"ApplicationName": "shop", "EnvironmentName": "web-prod", "OptionSettings": [SETTING]}
    ]
    assert factory.called("CreateOrUpdateTags") == [group_tag(WEB, PREVIOUS, "eb:DisableIMDSv1")]
    assert factory.called("UpdateEnvironment") == [
        {"EnvironmentId": WEB_ID, "OptionSettings": [SETTING]}
    ]
    # owner proven, gate passed, validate, record the way back, change, read back
    assert order(
        factory,
        "DescribeEnvironmentResources",
        "DescribeConfigurationSettings",
        "DescribeAutoScalingGroups",
        *MUTATING,
    ) == [
        "DescribeAutoScalingGroups",
        "DescribeAutoScalingGroups",
        "DescribeEnvironmentResources",
        "DescribeConfigurationSettings",
        "DescribeAutoScalingGroups",
        "ValidateConfigurationSettings",
        "CreateOrUpdateTags",
        "UpdateEnvironment",
        "DescribeConfigurationSettings",
    ]
    assert changes(tmp_path, POLICY) == {WEB: applied(WEB)}


def test_beanstalk_option_already_true_changes_nothing(placebo_factory, load_policy, tmp_path):
    """web-prod's deployed configuration already shows DisableIMDSv1 "true" (with the
    ResourceName AWS gives launch options): nothing is validated, tagged or updated, and
    the group is reported as already fixed at its owner."""
    factory = run(
        placebo_factory, load_policy, tmp_path, "test_beanstalk_option_already_true_changes_nothing"
    )
    for operation in MUTATING:
        assert factory.called(operation) == [], operation
    outcome = changes(tmp_path, POLICY)[WEB]
    assert outcome["Owner"] == "elasticbeanstalk:web-prod"
    assert outcome["OwnerFix"]["Status"] == "already-applied"
    assert outcome["OwnerFix"]["EnvironmentId"] == WEB_ID


def test_beanstalk_environment_not_ready_fails_and_changes_nothing(
    placebo_factory, load_policy, tmp_path
):
    """web-prod is Updating (a deployment is running): its group fails with one line
    that says so and when to run again; its configuration is not even read."""
    factory, failures = run_failing(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_environment_not_ready_fails_and_changes_nothing",
    )
    assert failures == {WEB: "environment web-prod is Updating; run again when it is Ready"}
    assert factory.called("DescribeConfigurationSettings") == []
    for operation in MUTATING:
        assert factory.called(operation) == [], operation
    assert changes(tmp_path, POLICY)[WEB]["Error"] == failures[WEB]


def test_beanstalk_validation_error_refuses_and_changes_nothing(
    placebo_factory, load_policy, tmp_path
):
    """The environment's platform does not know the option: ValidateConfigurationSettings
    answers an error-severity message. The group fails naming it; no tag, no update."""
    factory, failures = run_failing(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_validation_error_refuses_and_changes_nothing",
    )
    reason = failures[WEB]
    assert reason.startswith(
        "Elastic Beanstalk refused DisableIMDSv1=true for environment "
        "web-prod: Invalid option specification"
    ), reason
    assert "Unknown configuration setting" in reason and "nothing was changed" in reason
    assert factory.called("CreateOrUpdateTags") == []
    assert factory.called("UpdateEnvironment") == []


def test_beanstalk_read_back_mismatch_fails(placebo_factory, load_policy, tmp_path):
    """UpdateEnvironment is accepted, but the configuration read back shows "false" and
    no draft: the group fails saying what the environment shows, not "applied"."""
    factory, failures = run_failing(
        placebo_factory, load_policy, tmp_path, "test_beanstalk_read_back_mismatch_fails"
    )
    assert len(factory.called("UpdateEnvironment")) == 1
    assert failures[WEB] == (
        "environment web-prod accepted UpdateEnvironment, but its configuration shows "
        "DisableIMDSv1=false, not true; read the environment's events, then run again"
    )
    assert "OwnerFix" not in changes(tmp_path, POLICY)[WEB]


def test_beanstalk_groups_of_one_environment_share_one_update(
    placebo_factory, load_policy, tmp_path
):
    """Two groups of web-prod: WEB carries the environment-id tag, WEB2 only the name
    (looked up by name: DescribeEnvironments _2). Both resolve to one environment:
    one validation, both groups tagged in one call, one UpdateEnvironment. A warning
    from the validation does not stop the change."""
    factory = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_groups_of_one_environment_share_one_update",
    )
    assert factory.called("DescribeEnvironments") == [
        {"EnvironmentIds": [WEB_ID], "IncludeDeleted": False},
        {"EnvironmentNames": ["web-prod"], "IncludeDeleted": False},
    ]
    assert len(factory.called("ValidateConfigurationSettings")) == 1
    assert factory.called("CreateOrUpdateTags") == [
        {
            "Tags": [
                group_tag(WEB2, PREVIOUS, "eb:DisableIMDSv1")["Tags"][0],
                group_tag(WEB, PREVIOUS, "eb:DisableIMDSv1")["Tags"][0],
            ]
        }
    ]
    assert factory.called("UpdateEnvironment") == [
        {"EnvironmentId": WEB_ID, "OptionSettings": [SETTING]}
    ]
    assert changes(tmp_path, POLICY) == {WEB: applied(WEB), WEB2: applied(WEB2)}


def test_beanstalk_leaves_exempt_and_other_groups_alone(placebo_factory, load_policy, tmp_path):
    """An exempt Beanstalk group, a group no stack owns and a CloudFormation group:
    none is this action's, so Beanstalk is never called; each is listed with why."""
    factory = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_leaves_exempt_and_other_groups_alone",
    )
    assert [s for s, _, _ in factory.api_calls] == ["autoscaling", "autoscaling"]
    skipped = {name: c["Skipped"] for name, c in changes(tmp_path, POLICY).items()}
    assert skipped["awseb-e-9rtx2mzdqa-stack-AWSEBAutoScalingGroup-5PZ8R3M1KC7WQ"] == (
        "exempt: vendor agent reads IMDSv1 until 2999-12-31"
    )
    assert "not owned by a stack or service" in skipped["batch"]
    assert "managed by CloudFormation stack orders" in skipped["orders"]


def test_beanstalk_killed_after_the_tag_finishes_without_retagging(
    placebo_factory, load_policy, tmp_path
):
    """A run was killed after tagging WEB (eb:DisableIMDSv1) and before updating the
    environment, which still shows "false". This run keeps the recorded value - no
    CreateOrUpdateTags at all - and makes the update."""
    factory = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_killed_after_the_tag_finishes_without_retagging",
    )
    assert factory.called("CreateOrUpdateTags") == []
    assert factory.called("UpdateEnvironment") == [
        {"EnvironmentId": WEB_ID, "OptionSettings": [SETTING]}
    ]
    assert changes(tmp_path, POLICY) == {WEB: applied(WEB)}


def test_beanstalk_killed_after_the_update_does_nothing_more(
    placebo_factory, load_policy, tmp_path
):
    """A run was killed after UpdateEnvironment; the deployment has finished since (the
    environment is Ready and shows "true"; this answer names no ResourceName). This
    run changes nothing and leaves the recorded tag as it is."""
    factory = run(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_killed_after_the_update_does_nothing_more",
    )
    for operation in MUTATING:
        assert factory.called(operation) == [], operation
    assert changes(tmp_path, POLICY)[WEB]["OwnerFix"]["Status"] == "already-applied"


def test_beanstalk_preview_names_each_environment_change(placebo_factory, load_policy, tmp_path):
    """`c7n-imds plan`: web-prod does not set the option (DescribeConfigurationSettings
    _1 has none), api-prod has it "true" (_2), batch belongs to no stack. One owner
    change, for web-prod; api-prod's group and batch are left alone; describe calls
    only."""
    factory = recording_factory(
        placebo_factory, "test_beanstalk_preview_names_each_environment_change"
    )
    loaded = load_policy(policy(), session_factory=factory, output_dir=tmp_path)
    resources = loaded.resource_manager.resources()
    preview = loaded.resource_manager.actions[0].preview(resources)

    assert {op for _, op, _ in factory.api_calls} == {
        "DescribeAutoScalingGroups",
        "DescribeEnvironments",
        "DescribeEnvironmentResources",
        "DescribeConfigurationSettings",
    }
    (change,) = preview["OwnerChanges"]
    assert change["Owner"] == "Elastic Beanstalk environment web-prod (e-3kqm7xwbvp)"
    assert change["Change"] == (
        "option aws:autoscaling:launchconfiguration DisableIMDSv1: "
        "unset -> true (%s%s)" % (MOVED, ROLLING_HEALTH)
    )
    assert change["Groups"] == [WEB]
    assert any("c7n-imds:previous-launch=eb:DisableIMDSv1 " in n for n in change["Notes"])
    assert preview["Failures"] == {}
    skipped = {s["AutoScalingGroupName"]: s["Skipped"] for s in preview["Skipped"]}
    assert set(skipped) == {"batch", API}
    assert skipped[API] == (
        "environment api-prod (e-9rtx2mzdqa) already sets "
        "aws:autoscaling:launchconfiguration DisableIMDSv1=true"
    )
    text = format_preview(
        dict(preview, Policy=POLICY, Region="us-east-1", Action="disable-beanstalk-imdsv1")
    )
    assert "1 owner change(s), 0 failure(s)" in text
    assert "  Elastic Beanstalk environment web-prod (e-3kqm7xwbvp) -> option " in text
    assert "    groups: %s" % WEB in text
    # the contract's block for the group names the replacement Beanstalk really makes
    (block,) = preview["GroupChanges"]
    assert block["Before"] == (
        "launch configuration awseb-e-3kqm7xwbvp-stack-"
        "AWSEBAutoScalingLaunchConfiguration-Qm3X7pLk2Vd9"
    )
    assert block["LaunchChanges"] == []
    assert block["Replacement"] == "replaced by Elastic Beanstalk - " + ROLLING_HEALTH
    assert "    running instances: replaced by Elastic Beanstalk - rolling: " in text


REFUSED_ALL_AT_ONCE = (
    "Elastic Beanstalk environment web-prod (e-3kqm7xwbvp) would also change what "
    "instances launch with: replace-all-at-once: instances running -> all terminated and "
    "replaced at the same time (EnvironmentType LoadBalanced, "
    "aws:autoscaling:updatepolicy:rollingupdate RollingUpdateEnabled false (not set: "
    "Beanstalk's default)); nothing was changed - add replace-all-at-once to the action's "
    "allow-launch-changes to accept exactly that; or enable rolling updates first: set "
    "aws:autoscaling:updatepolicy:rollingupdate RollingUpdateEnabled=true with "
    "RollingUpdateType Health or Immutable"
)


def test_beanstalk_all_at_once_is_refused_without_opt_in(placebo_factory, load_policy, tmp_path):
    """web-prod's configuration shows no aws:autoscaling:updatepolicy:rollingupdate
    option at all (an environment made through the API): RollingUpdateEnabled has its
    default, false, so Beanstalk would replace every instance at once. Refused, naming
    the environment, its type, the rolling setting and both ways forward; nothing is
    validated, tagged or updated, and the gate is not even asked."""
    factory, failures = run_failing(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_all_at_once_is_refused_without_opt_in",
    )
    assert failures == {WEB: REFUSED_ALL_AT_ONCE}
    for operation in MUTATING:
        assert factory.called(operation) == [], operation
    assert len(factory.called("DescribeAutoScalingGroups")) == 2  # no gate read


def test_beanstalk_single_instance_is_refused_without_opt_in(
    placebo_factory, load_policy, tmp_path
):
    """web-prod is a SingleInstance environment: whatever its rolling options say
    (RollingUpdateEnabled true here), its one instance is replaced with downtime.
    Refused; the way forward named is a load-balanced environment or the opt-in."""
    factory, failures = run_failing(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_single_instance_is_refused_without_opt_in",
    )
    reason = failures[WEB]
    assert reason.startswith(
        "Elastic Beanstalk environment web-prod (e-3kqm7xwbvp) would "
        "also change what instances launch with: replace-all-at-once"
    ), reason
    assert (
        "(EnvironmentType SingleInstance, aws:autoscaling:updatepolicy:rollingupdate "
        "RollingUpdateEnabled true)"
    ) in reason
    assert "add replace-all-at-once to the action's allow-launch-changes" in reason
    assert reason.endswith(
        "a single-instance environment has no rolling updates: make it "
        "load-balanced (aws:elasticbeanstalk:environment EnvironmentType "
        "LoadBalanced)"
    ), reason
    for operation in MUTATING:
        assert factory.called(operation) == [], operation


def test_beanstalk_all_at_once_with_opt_in_names_it_in_the_record(
    placebo_factory, load_policy, tmp_path
):
    """RollingUpdateEnabled "false", and the policy opts in with allow-launch-changes:
    [replace-all-at-once]. The environment is updated, and the record - whose Detail is
    what the owner's mail shows - says ALL AT ONCE, never rolling."""
    factory = recording_factory(
        placebo_factory, "test_beanstalk_all_at_once_with_opt_in_names_it_in_the_record"
    )
    opted_in = asg_policy(
        POLICY,
        {"type": "disable-beanstalk-imdsv1", "allow-launch-changes": ["replace-all-at-once"]},
        [],
    )
    load_policy(opted_in, session_factory=factory, output_dir=tmp_path).run()
    assert factory.called("UpdateEnvironment") == [
        {"EnvironmentId": WEB_ID, "OptionSettings": [SETTING]}
    ]
    all_at_once = (
        "ALL AT ONCE: every instance is terminated and replaced at the same "
        "time, with downtime (EnvironmentType LoadBalanced, "
        "aws:autoscaling:updatepolicy:rollingupdate RollingUpdateEnabled false)"
    )
    expected = applied(WEB, replacement=all_at_once, mode="all-at-once")
    expected["OwnerFix"]["LaunchChanges"] = [
        {
            "Kind": "replace-all-at-once",
            "Field": "instances",
            "Line": "replace-all-at-once: instances running -> all terminated and replaced at "
            "the same time (EnvironmentType LoadBalanced, "
            "aws:autoscaling:updatepolicy:rollingupdate RollingUpdateEnabled false)",
        }
    ]
    assert changes(tmp_path, POLICY) == {WEB: expected}
    assert "rolling:" not in changes(tmp_path, POLICY)[WEB]["OwnerFix"]["Detail"]


def test_beanstalk_forged_tag_is_refused(placebo_factory, load_policy, tmp_path):
    """Group batch-workers carries web-prod's elasticbeanstalk:environment-id and -name
    tags (anyone with tag rights can write them), but DescribeEnvironmentResources lists
    only WEB: web-prod is not touched - not even its configuration is read."""
    factory, failures = run_failing(
        placebo_factory, load_policy, tmp_path, "test_beanstalk_forged_tag_is_refused"
    )
    assert failures == {
        "batch-workers": (
            "tags name Elastic Beanstalk environment web-prod (e-3kqm7xwbvp), but Elastic "
            "Beanstalk does not list this group among its resources; nothing changed"
        )
    }
    assert factory.called("DescribeEnvironmentResources") == [{"EnvironmentId": WEB_ID}]
    assert factory.called("DescribeConfigurationSettings") == []
    for operation in MUTATING:
        assert factory.called(operation) == [], operation


def held_back(placebo_factory, load_policy, tmp_path, flight, why):
    """A run whose only matched group, WEB, is held back by its environment's other
    group WEB2, which the gate reads too (DescribeAutoScalingGroups _3): nothing
    validated, tagged or updated; WEB skipped with the gate's reason."""
    factory = run(placebo_factory, load_policy, tmp_path, flight)
    for operation in MUTATING:
        assert factory.called(operation) == [], operation
    assert sorted(
        factory.called("DescribeAutoScalingGroups")[2]["AutoScalingGroupNames"]
    ) == sorted([WEB, WEB2])
    assert changes(tmp_path, POLICY)[WEB] == {
        "AutoScalingGroupName": WEB,
        "Skipped": (
            "environment web-prod (e-3kqm7xwbvp) was not changed: auto-scaling-group %s %s - "
            "the change waits until nothing that launches from it calls IMDSv1 (or exempt it "
            "on purpose)" % (WEB2, why)
        ),
    }
    return factory


def test_beanstalk_sibling_calling_imdsv1_holds_the_environment_back(
    placebo_factory, load_policy, tmp_path
):
    """The policy matched WEB only, but web-prod also lists WEB2, whose instances its
    update replaces too; WEB2's instance made 2 + 1 IMDSv1 calls (GetMetricData)."""
    factory = held_back(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_sibling_calling_imdsv1_holds_the_environment_back",
        "made 3 IMDSv1 call(s) in 14 days",
    )
    (query,) = factory.called("GetMetricData")[0]["MetricDataQueries"]
    assert query["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "InstanceId", "Value": "i-0d4e5f6a7b8c9d0e1"}
    ]


def test_beanstalk_exempt_sibling_holds_the_environment_back(
    placebo_factory, load_policy, tmp_path
):
    """As above, but WEB2 is exempt (and has no instances: no metrics are read)."""
    factory = held_back(
        placebo_factory,
        load_policy,
        tmp_path,
        "test_beanstalk_exempt_sibling_holds_the_environment_back",
        "is exempt (vendor agent reads IMDSv1)",
    )
    assert factory.called("GetMetricData") == []


def test_replacement_reads_the_update_policy_and_its_defaults():
    """environments.replacement on configuration sets of each kind, expected values from
    Beanstalk's general options reference."""

    def configuration(**options):
        namespaces = {
            "RollingUpdateEnabled": "aws:autoscaling:updatepolicy:rollingupdate",
            "RollingUpdateType": "aws:autoscaling:updatepolicy:rollingupdate",
            "MaxBatchSize": "aws:autoscaling:updatepolicy:rollingupdate",
            "MinInstancesInService": "aws:autoscaling:updatepolicy:rollingupdate",
            "EnvironmentType": "aws:elasticbeanstalk:environment",
            "MinSize": "aws:autoscaling:asg",
            "MaxSize": "aws:autoscaling:asg",
            "DeploymentPolicy": "aws:elasticbeanstalk:command",
        }
        return {
            "OptionSettings": [
                {"Namespace": namespaces[k], "OptionName": k, "Value": v}
                for k, v in options.items()
            ]
        }

    assert environments.replacement(None).mode == "all-at-once"
    # an application deployment policy is not the configuration update policy
    assert environments.replacement(configuration(DeploymentPolicy="Rolling")).mode == "all-at-once"
    explicit = environments.replacement(
        configuration(RollingUpdateEnabled="false", RollingUpdateType="Health")
    )
    assert (explicit.mode, explicit.rolling_enabled) == ("all-at-once", "false")
    immutable = environments.replacement(
        configuration(RollingUpdateEnabled="true", RollingUpdateType="Immutable")
    )
    assert immutable.mode == "immutable"
    assert immutable.line().startswith("immutable: a temporary group launches a full set")
    timed = environments.replacement(
        configuration(
            RollingUpdateEnabled="true", MinSize="7", MaxSize="7", MinInstancesInService="5"
        )
    )
    # RollingUpdateType not shown: Time; MaxBatchSize: ceil(7 / 3) = 3
    assert timed.line() == (
        "rolling: batches of at most 3 instance(s), at least 5 kept in "
        "service, a pause (PauseTime) between batches (RollingUpdateType "
        "Time; MaxBatchSize not set: Beanstalk's default)"
    )
    small = environments.replacement(
        configuration(
            RollingUpdateEnabled="true", RollingUpdateType="Health", MinSize="1", MaxSize="1"
        )
    )
    # MinInstancesInService: min(MinSize 1, MaxSize - 1 = 0) = 0
    assert (small.max_batch_size, small.min_in_service) == (1, 0)


def environment_group(id_tag=True):
    tags = [{"Key": "elasticbeanstalk:environment-name", "Value": "web-prod"}]
    if id_tag:
        tags.append({"Key": "elasticbeanstalk:environment-id", "Value": WEB_ID})
    return {"AutoScalingGroupName": WEB, "Tags": tags}


def test_restore_environment_puts_a_recorded_value_back(placebo_factory):
    """A record eb:DisableIMDSv1=false: the environment (showing "true") is updated
    with the recorded value."""
    factory = recording_factory(
        placebo_factory, "test_restore_environment_puts_a_recorded_value_back"
    )
    line = environments.restore_environment(
        factory.session, environment_group(), {"BeanstalkOption": "false"}
    )
    assert factory.called("UpdateEnvironment") == [
        {"EnvironmentId": WEB_ID, "OptionSettings": [dict(SETTING, Value="false")]}
    ]
    assert line.startswith("environment web-prod: DisableIMDSv1 true -> false"), line


def test_restore_environment_removes_an_option_that_was_not_set(placebo_factory):
    """A record eb:DisableIMDSv1 (not set before): the setting is removed, so what
    governed it before governs it again. The group here has only the name tag."""
    factory = recording_factory(
        placebo_factory, "test_restore_environment_removes_an_option_that_was_not_set"
    )
    line = environments.restore_environment(
        factory.session, environment_group(id_tag=False), {"BeanstalkOption": None}
    )
    assert factory.called("DescribeEnvironments") == [
        {"EnvironmentNames": ["web-prod"], "IncludeDeleted": False}
    ]
    assert factory.called("UpdateEnvironment") == [
        {
            "EnvironmentId": WEB_ID,
            "OptionsToRemove": [
                {"Namespace": "aws:autoscaling:launchconfiguration", "OptionName": "DisableIMDSv1"}
            ],
        }
    ]
    assert "setting removed" in line


def test_restore_environment_refuses_while_the_environment_updates(placebo_factory):
    """The environment is Updating, and not to the recorded value (its draft shows
    "true"): refused with the reason, nothing changed."""
    factory = recording_factory(
        placebo_factory, "test_restore_environment_refuses_while_the_environment_updates"
    )
    with pytest.raises(ValueError) as raised:
        environments.restore_environment(
            factory.session, environment_group(), {"BeanstalkOption": None}
        )
    assert str(raised.value) == "environment web-prod is Updating; run again when it is Ready"
    assert factory.called("UpdateEnvironment") == []


def test_previous_value_records_the_default_as_not_set():
    assert beanstalk.previous_value(None) is None
    assert beanstalk.previous_value("false") is None
    assert beanstalk.previous_value("FALSE") is None
    assert beanstalk.previous_value("true") == "true"


def test_docstring_example_validates_and_uses_the_action():
    """As tests/test_doc_examples.py does for every registered element (which sees this
    one only once c7n_imds.actions imports the module)."""
    doc = beanstalk.DisableBeanstalkImdsv1.__doc__
    block = doc.split(".. code-block:: yaml")[1]
    data = yaml.safe_load(textwrap.dedent(block.split("\n", 1)[1]))
    assert validate(data, generate()) == []
    (loaded,) = PolicyCollection.from_data(
        data, Config.empty(region="us-east-1", account_id="123456789012")
    )
    loaded.validate()
    filters = [f.type for f in loaded.resource_manager.filters if hasattr(f, "type")]
    assert "imdsv1-usage" in filters
    assert [a.type for a in loaded.resource_manager.actions] == ["disable-beanstalk-imdsv1"]
    assert doc.strip().split("\n\n")[0].endswith(".")


def test_revert_puts_the_beanstalk_option_back(placebo_factory, load_policy, tmp_path):
    """revert-imds-remediation on a Beanstalk group recorded eb:DisableIMDSv1 (the option
    was not set): the option is removed from the environment (UpdateEnvironment
    OptionsToRemove), the group itself is not switched anywhere, it is tagged exempt
    and its record is removed - in that order."""
    factory = recording_factory(placebo_factory, "test_revert_puts_the_beanstalk_option_back")
    revert = asg_policy(
        "asg-revert",
        {"type": "revert-imds-remediation"},
        [{"tag:c7n-imds:previous-launch": "present"}],
    )
    load_policy(revert, session_factory=factory, output_dir=tmp_path).run()
    group = "awseb-e-3kqm7xwbvp-stack-AWSEBAutoScalingGroup-1XK2J4P8QW3RT"
    assert factory.called("UpdateEnvironment") == [
        {
            "EnvironmentId": "e-3kqm7xwbvp",
            "OptionsToRemove": [
                {"Namespace": "aws:autoscaling:launchconfiguration", "OptionName": "DisableIMDSv1"}
            ],
        }
    ]
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("DeleteTags") == [
        {
            "Tags": [
                {
                    "ResourceId": group,
                    "ResourceType": "auto-scaling-group",
                    "Key": "c7n-imds:previous-launch",
                }
            ]
        }
    ]
    (exempt,) = factory.called("CreateOrUpdateTags")
    assert exempt["Tags"][0]["Key"] == "c7n-imds:exempt"
    order = [
        name
        for _, name, _ in factory.api_calls
        if name in ("UpdateEnvironment", "DeleteTags", "CreateOrUpdateTags")
    ]
    assert order == ["UpdateEnvironment", "CreateOrUpdateTags", "DeleteTags"]
    assert changes(tmp_path, "asg-revert") == {
        group: {
            "AutoScalingGroupName": group,
            "RevertedTo": "eb:DisableIMDSv1",
            "Detail": "environment web-prod: DisableIMDSv1 setting removed (it was not set "
            "before); Beanstalk replaces every instance - %s; the environment keeps "
            "launching from a launch template (now allowing IMDSv1), it does not go "
            "back to a launch configuration" % ROLLING_HEALTH,
        }
    }
