"""Remediation actions and the effective-metadata keys of the `imds` filter against
recorded AWS responses (placebo flight data).

Why placebo and not moto here (docs/moto-gaps.md): moto 5.2.5 does not implement
``StartInstanceRefresh`` or ``GetInstanceMetadataDefaults``, and its
``CreateLaunchTemplateVersion`` ignores ``SourceVersion`` - the very call that lets
``set-metadata-access`` send only the new ``MetadataOptions`` and have AWS carry every
other setting (block-device snapshots, user data, profile) from the source version.
The flight data (tests/data/placebo/<test name>/) is hand-written in the shape AWS
returns - botocore's parsed output - and `test_flight_data_matches_botocore_output_shapes`
below checks every file against botocore's own service model. AWS's real behaviour
these files follow where moto differs: ``CreateLaunchTemplateVersion`` answers with the
merged data of the source version and the new options; ``RunInstances`` with
``DryRun`` answers HTTP 412 ``DryRunOperation`` when the launch would succeed; a group
switched to a template carries only ``LaunchTemplate``.

Placebo answers each operation's calls in order, one file per call
(<service>.<Operation>_<n>.json), whatever the parameters, and starts over at _1 when it
runs out - so every test counts the calls it expects. A policy run makes:
DescribeAutoScalingGroups (custodian's listing), the `imds` filter's describes, the
action's own DescribeAutoScalingGroups (it re-reads the groups it changes), its own
describes, then its changes. Where one operation gets different answers, the test's
docstring says which call gets which.

Expected values (version descriptions, copy names, tag values) are written out here
from the documented rules, not computed by the code under test.
"""
import base64
import datetime
import hashlib
import json

import pytest

from c7n_imds.actions import RemediationError
from tests.support.placebo import assert_fields, recording_factory

PREVIOUS = "c7n-imds:previous-launch"
EXEMPT = "c7n-imds:exempt"
ANNOTATION = "c7n-imds:launch"
CREATED_TEXT = "2021-03-04T05:06:07Z"  # the flights' LC CreatedTime, 05:06:07.123 UTC


def asg_policy(name, action, filters):
    return {"name": name, "resource": "asg", "filters": filters, "actions": [action]}


def set_access_policy(**options):
    return asg_policy("asg-lt-imdsv2", dict({"type": "set-metadata-access"}, **options),
                      [{"type": "imds", "key": "HttpTokens", "value": "optional"}])


def group_tag(group, key, value):
    return {"Tags": [{"ResourceId": group, "ResourceType": "auto-scaling-group",
                      "Key": key, "Value": value, "PropagateAtLaunch": False}]}


def dry_run(template_id, version, **network):
    return dict({"DryRun": True, "MinCount": 1, "MaxCount": 1,
                 "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": version}},
                **network)


def call_order(factory, *operations):
    """[(operation, group or template)] of the given operations, in call order."""
    order = []
    for _, name, params in factory.api_calls:
        if name in operations:
            target = (params.get("AutoScalingGroupName") or params.get("LaunchTemplateId")
                      or params.get("InstanceId")
                      or (params.get("Tags") or [{}])[0].get("ResourceId"))
            order.append((name, target))
    return order


def changes(tmp_path, policy):
    return {c["AutoScalingGroupName"]: c for c in json.loads(
        (tmp_path / policy / "imds-changes.json").read_text())}


def derived_options(description, source_version):
    """The metadata options a c7n-imds version description names, after checking that it
    names the source version ("c7n-imds: from version N with {json}")."""
    prefix = "c7n-imds: from version %s with " % source_version
    assert description.startswith(prefix), description
    return json.loads(description[len(prefix):])


# -- set-metadata-access --------------------------------------------------------------

WEB = "lt-0123456789abcdef0"


def test_set_metadata_access_default_follower_gets_new_default_version(
        placebo_factory, load_policy, tmp_path):
    """Group web follows $Default of template web, whose default version 3 allows IMDSv1
    (HttpTokens optional, hop limit 1) and has a root volume from a snapshot, user data
    and an instance profile. The account's other template, reports (default version 1,
    also optional), is used by no group and must not be touched.

    Exactly one CreateLaunchTemplateVersion from SourceVersion 3 carrying the merged
    MetadataOptions and the source's block device mappings again: AWS copies
    everything else from the source, but drops the root volume's SnapshotId unless the
    mappings are sent (botocore's documentation of SourceVersion). The new version 4
    is described (read back: DescribeLaunchTemplateVersions _4, what AWS stores - the
    source's data with the new options) and dry-run *before* anything else happens; it
    becomes the default; web is tagged with where it was before the default moved, and
    is not updated (it follows $Default).

    DescribeLaunchTemplateVersions _1 (filter) and _2 (action) answer the $Default
    listing, _3 the action's look for a version an earlier run derived (none).
    """
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_default_follower_gets_new_default_version")
    resources = load_policy(set_access_policy(), session_factory=factory,
                            output_dir=tmp_path).run()
    assert [r["AutoScalingGroupName"] for r in resources] == ["web"]

    creates = factory.called("CreateLaunchTemplateVersion")
    assert len(creates) == 1, creates
    (create,) = creates
    assert create["LaunchTemplateId"] == WEB
    assert create["SourceVersion"] == "3"
    assert create["LaunchTemplateData"] == {
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
            "Encrypted": True, "DeleteOnTermination": True,
            "SnapshotId": "snap-0fedcba9876543210", "VolumeSize": 50, "VolumeType": "gp3",
            "Iops": 3000, "Throughput": 125}}]}
    assert derived_options(create["VersionDescription"], 3) == {
        "HttpTokens": "required", "HttpPutResponseHopLimit": 1}
    assert set(create) == {"LaunchTemplateId", "SourceVersion", "VersionDescription",
                           "LaunchTemplateData", "ClientToken"}
    # deterministic, so racing runs (or a retry after a lost answer) create one version
    assert create["ClientToken"].startswith("c7n-imds-") and len(create["ClientToken"]) <= 64

    # The look for an earlier run's version asks only for versions after the source.
    lookups = factory.called("DescribeLaunchTemplateVersions")
    assert len(lookups) == 4, lookups
    assert lookups[2] == {"LaunchTemplateId": WEB, "MinVersion": "4", "MaxResults": 200}
    # the read-back: exactly the version just created
    assert lookups[3] == {"LaunchTemplateId": WEB, "Versions": ["4"]}

    # the pre-flight launches the stored new version, not the source
    assert factory.called("RunInstances") == [
        dry_run(WEB, "4", SubnetId="subnet-0a1b2c3d4e5f60001")]
    assert factory.called("ModifyLaunchTemplate") == [
        {"LaunchTemplateId": WEB, "DefaultVersion": "4"}]
    assert factory.called("CreateOrUpdateTags") == [
        group_tag("web", PREVIOUS, "lt:%s:$Default" % WEB)]
    assert factory.called("UpdateAutoScalingGroup") == []

    # Create, read back, check, record the way back, and only then move the default.
    assert call_order(factory, "CreateLaunchTemplateVersion",
                      "DescribeLaunchTemplateVersions", "RunInstances",
                      "CreateOrUpdateTags", "ModifyLaunchTemplate")[-5:] == [
        ("CreateLaunchTemplateVersion", WEB), ("DescribeLaunchTemplateVersions", WEB),
        ("RunInstances", None), ("CreateOrUpdateTags", "web"),
        ("ModifyLaunchTemplate", WEB)]

    assert changes(tmp_path, "asg-lt-imdsv2") == {"web": {
        "AutoScalingGroupName": "web",
        "Versions": [{"LaunchTemplateId": WEB, "From": "$Default", "VersionNumber": 4}]}}


def test_set_metadata_access_set_default_false_keeps_default_version(
        placebo_factory, load_policy, tmp_path):
    """As above with `set-default: false`: the version is still derived from version 3,
    but the template's default is left alone - no ModifyLaunchTemplate - and the group,
    which follows $Default, is not updated either."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_set_default_false_keeps_default_version")
    load_policy(set_access_policy(**{"set-default": False}), session_factory=factory,
                output_dir=tmp_path).run()
    creates = factory.called("CreateLaunchTemplateVersion")
    assert [(c["LaunchTemplateId"], c["SourceVersion"]) for c in creates] == [(WEB, "3")]
    assert factory.called("ModifyLaunchTemplate") == []
    assert factory.called("UpdateAutoScalingGroup") == []


def test_set_metadata_access_set_default_false_leaves_running_instances_alone(
        placebo_factory, load_policy, tmp_path):
    """`set-default: false` with `running-instances: modify`: web follows $Default,
    which stays version 3 (HttpTokens optional), so web still launches IMDSv1-capable
    instances. Its running instances must not be given options the group does not give
    ("Runs only after the switch, so instances never get options their group would not
    give" - Remediation.update_running_instances), and the outcome file must not report
    them as modified. The flight answers ModifyInstanceMetadataOptions anyway, so a
    regression fails on the assertion, not on a missing file."""
    factory = recording_factory(
        placebo_factory,
        "test_set_metadata_access_set_default_false_leaves_running_instances_alone")
    load_policy(set_access_policy(**{"set-default": False, "running-instances": "modify"}),
                session_factory=factory, output_dir=tmp_path).run()
    assert factory.called("ModifyLaunchTemplate") == []
    assert factory.called("ModifyInstanceMetadataOptions") == []
    outcome = changes(tmp_path, "asg-lt-imdsv2").get("web", {})
    assert not (outcome.get("RunningInstances") or {}).get("Modified"), outcome


API = "lt-0a1b2c3d4e5f60789"


def test_set_metadata_access_pinned_groups_share_one_new_version(
        placebo_factory, load_policy, tmp_path):
    """api-blue and api-green are both pinned to version 2 of template api (not the
    default: that is version 1). One version is derived from 2 for both; each group is
    pointed at it; the default is not moved, because the source was not the default.

    DescribeLaunchTemplateVersions _3 (versions after 2) returns version 3, whose
    description says it was derived from *version 1* with the very options wanted: not a
    derivative of 2, so it must not be reused. CreateLaunchTemplateVersion answers 4.
    """
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_pinned_groups_share_one_new_version")
    resources = load_policy(set_access_policy(), session_factory=factory,
                            output_dir=tmp_path).run()
    assert sorted(r["AutoScalingGroupName"] for r in resources) == ["api-blue", "api-green"]

    creates = factory.called("CreateLaunchTemplateVersion")
    assert len(creates) == 1, creates
    assert creates[0]["LaunchTemplateId"] == API
    assert creates[0]["SourceVersion"] == "2"
    assert creates[0]["LaunchTemplateData"] == {
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"}}
    assert derived_options(creates[0]["VersionDescription"], 2) == {
        "HttpTokens": "required", "HttpEndpoint": "enabled"}
    lookups = [c for c in factory.called("DescribeLaunchTemplateVersions")
               if "MinVersion" in c]
    assert lookups == [{"LaunchTemplateId": API, "MinVersion": "3", "MaxResults": 200}]

    assert sorted(factory.called("UpdateAutoScalingGroup"),
                  key=lambda c: c["AutoScalingGroupName"]) == [
        {"AutoScalingGroupName": "api-blue",
         "LaunchTemplate": {"LaunchTemplateId": API, "Version": "4"}},
        {"AutoScalingGroupName": "api-green",
         "LaunchTemplate": {"LaunchTemplateId": API, "Version": "4"}}]
    assert factory.called("ModifyLaunchTemplate") == []
    assert sorted(factory.called("CreateOrUpdateTags"),
                  key=lambda c: c["Tags"][0]["ResourceId"]) == [
        group_tag("api-blue", PREVIOUS, "lt:%s:2" % API),
        group_tag("api-green", PREVIOUS, "lt:%s:2" % API)]
    # Each group is tried in its own first subnet.
    assert sorted(factory.called("RunInstances"), key=lambda c: c["SubnetId"]) == [
        dry_run(API, "4", SubnetId="subnet-0c1c1c1c1c1c1c1c1"),
        dry_run(API, "4", SubnetId="subnet-0c2c2c2c2c2c2c2c2")]
    order = call_order(factory, "CreateOrUpdateTags", "UpdateAutoScalingGroup")
    for group in ("api-blue", "api-green"):
        assert order.index(("CreateOrUpdateTags", group)) < order.index(
            ("UpdateAutoScalingGroup", group)), order


BATCH = "lt-0c0ffee0c0ffee0c1"


def test_set_metadata_access_reuses_version_an_interrupted_run_created(
        placebo_factory, load_policy, tmp_path):
    """A run was interrupted after creating version 4 of template batch from version 2
    (batch's default; group batch is pinned to 2). DescribeLaunchTemplateVersions _3
    (versions after 2) returns 3, someone's unrelated change, and 4, whose description
    is exactly what this run would write: no version is created, 4 is checked, becomes
    the default (2 was the default) and the group is pointed at it."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_reuses_version_an_interrupted_run_created")
    load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path).run()

    assert factory.called("CreateLaunchTemplateVersion") == []
    lookups = [c for c in factory.called("DescribeLaunchTemplateVersions")
               if "MinVersion" in c]
    assert lookups == [{"LaunchTemplateId": BATCH, "MinVersion": "3", "MaxResults": 200}]
    # the version found again is verified like a new one: its stored data (the
    # listing's) compared with version 2 plus the options, then dry-run
    assert [c["LaunchTemplate"] for c in factory.called("RunInstances")] == [
        {"LaunchTemplateId": BATCH, "Version": "4"}]
    assert "MetadataOptions" not in factory.called("RunInstances")[0]
    assert factory.called("ModifyLaunchTemplate") == [
        {"LaunchTemplateId": BATCH, "DefaultVersion": "4"}]
    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "batch",
         "LaunchTemplate": {"LaunchTemplateId": BATCH, "Version": "4"}}]
    assert changes(tmp_path, "asg-lt-imdsv2")["batch"]["Versions"] == [
        {"LaunchTemplateId": BATCH, "From": "2", "VersionNumber": 4}]


# -- convert-to-launch-template: the pre-flight check ---------------------------------

PUB_TEMPLATE, PRIV_TEMPLATE = "lt-0d1000000000000d1", "lt-0d2000000000000d2"


def convert_policy(**options):
    return asg_policy(
        "asg-lc-to-imdsv2", dict({"type": "convert-to-launch-template"}, **options),
        [{"type": "imds", "key": "LaunchType", "value": "launch-configuration"}])


def test_convert_preflight_refusal_leaves_group_unswitched(placebo_factory, load_policy,
                                                           tmp_path):
    """pub-app's configuration pub-lc (public IP, so the template has a network
    interface) names an arm64 AMI with an x86_64 instance type; priv-lc is fine. Both
    templates are created (CreateLaunchTemplate _1 pub, _2 priv). RunInstances _1 (DryRun
    for pub-app) fails with InvalidParameterValue - not DryRunOperation - so pub-app is
    neither tagged nor switched; _2 answers DryRunOperation (HTTP 412, what AWS sends
    when the launch would succeed) and priv-app is switched. The run then fails naming
    pub-app and the pre-flight."""
    factory = recording_factory(
        placebo_factory, "test_convert_preflight_refusal_leaves_group_unswitched")
    policy = load_policy(convert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert factory.called("RunInstances") == [
        dry_run(PUB_TEMPLATE, "1", NetworkInterfaces=[{
            "DeviceIndex": 0, "AssociatePublicIpAddress": True,
            "Groups": ["sg-0a0a0a0a0a0a0a0a1"], "DeleteOnTermination": True,
            "SubnetId": "subnet-0aa0000000000aa01"}]),
        dry_run(PRIV_TEMPLATE, "1", SubnetId="subnet-0bb0000000000bb01")]
    # pub's template failed its check and no group uses it: withdrawn
    assert factory.called("DeleteLaunchTemplate") == [{"LaunchTemplateId": PUB_TEMPLATE}]
    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "priv-app",
         "LaunchTemplate": {"LaunchTemplateId": PRIV_TEMPLATE, "Version": "$Default"}}]
    assert factory.called("CreateOrUpdateTags") == [
        group_tag("priv-app", PREVIOUS, "lc:priv-lc")]

    error = raised.value
    assert set(error.failures) == {"pub-app"}
    reason = error.failures["pub-app"]
    assert "pre-flight" in reason
    assert "InvalidParameterValue" in reason and "arm64" in reason
    assert PUB_TEMPLATE in reason
    assert " - pub-app: " in str(error) and "priv-app" not in str(error)

    done = changes(tmp_path, "asg-lc-to-imdsv2")
    assert done["pub-app"]["Error"] == reason
    assert done["priv-app"]["LaunchTemplateId"] == PRIV_TEMPLATE


def test_convert_without_verify_makes_no_preflight_call(placebo_factory, load_policy,
                                                        tmp_path):
    """The same estate with `verify: false`: no RunInstances call at all, and both
    groups are switched (the flight holds no RunInstances answer)."""
    factory = recording_factory(
        placebo_factory, "test_convert_without_verify_makes_no_preflight_call")
    load_policy(convert_policy(verify=False), session_factory=factory,
                output_dir=tmp_path).run()
    assert factory.called("RunInstances") == []
    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "pub-app",
         "LaunchTemplate": {"LaunchTemplateId": PUB_TEMPLATE, "Version": "$Default"}},
        {"AutoScalingGroupName": "priv-app",
         "LaunchTemplate": {"LaunchTemplateId": PRIV_TEMPLATE, "Version": "$Default"}}]


# -- running-instances ----------------------------------------------------------------

SVC = "lt-0e1000000000000e1"


def test_running_instances_refresh_reports_refresh_in_progress(placebo_factory,
                                                               load_policy, tmp_path):
    """svc-a and svc-b follow $Default of template svc (version 1, optional): version 2
    is derived and made the default, then an instance refresh is started for each group
    - Rolling, with the default SkipMatching true overlaid by `refresh-preferences`, and
    no MinHealthyPercentage or MaxHealthyPercentage, so that the group's instance
    maintenance policy applies. StartInstanceRefresh _1 (svc-a) starts one; _2 (svc-b) fails
    with InstanceRefreshInProgress: reported in imds-changes.json, not a policy error.
    moto does not implement StartInstanceRefresh."""
    factory = recording_factory(
        placebo_factory, "test_running_instances_refresh_reports_refresh_in_progress")
    load_policy(set_access_policy(**{
        "running-instances": "refresh",
        "refresh-preferences": {"InstanceWarmup": 120, "SkipMatching": False}}),
        session_factory=factory, output_dir=tmp_path).run()  # no RemediationError

    preferences = {"SkipMatching": False, "InstanceWarmup": 120}
    assert factory.called("StartInstanceRefresh") == [
        {"AutoScalingGroupName": "svc-a", "Strategy": "Rolling", "Preferences": preferences},
        {"AutoScalingGroupName": "svc-b", "Strategy": "Rolling", "Preferences": preferences}]
    # Instances are replaced only once the new version is what the groups launch.
    order = call_order(factory, "ModifyLaunchTemplate", "StartInstanceRefresh")
    assert order[0] == ("ModifyLaunchTemplate", SVC), order

    done = changes(tmp_path, "asg-lt-imdsv2")
    assert done["svc-a"]["RunningInstances"] == {
        "Mode": "refresh", "InstanceRefreshId": "08b91cf7-8fa6-48af-b6a6-d227f40f1b9b",
        "Preferences": preferences}
    assert done["svc-b"]["RunningInstances"]["Mode"] == "refresh"
    assert done["svc-b"]["RunningInstances"]["InProgress"] is True
    assert not any("Error" in c for c in done.values()), done


WORKER = "lt-0f1000000000000f1"


def test_running_instances_modify_touches_only_in_service_instances(
        placebo_factory, load_policy, tmp_path):
    """worker follows $Default of template worker (version 5, optional, hop limit 1);
    `hop-limit: 2` and `running-instances: modify`. Custodian's listing
    (DescribeAutoScalingGroups _1) is older than the action's re-read (_2): by then
    i-...02 is InService too, i-...03 is Terminating, i-...04 Pending and i-...05 in
    Standby. Exactly the InService instances of the fresh read get
    ModifyInstanceMetadataOptions, one call each, after the new default is set."""
    factory = recording_factory(
        placebo_factory, "test_running_instances_modify_touches_only_in_service_instances")
    load_policy(set_access_policy(**{"running-instances": "modify", "hop-limit": 2}),
                session_factory=factory, output_dir=tmp_path).run()

    (create,) = factory.called("CreateLaunchTemplateVersion")
    assert create["LaunchTemplateData"] == {
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}}
    assert factory.called("ModifyInstanceMetadataOptions") == [
        {"InstanceId": "i-0cc00000000000001", "HttpTokens": "required",
         "HttpPutResponseHopLimit": 2},
        {"InstanceId": "i-0cc00000000000002", "HttpTokens": "required",
         "HttpPutResponseHopLimit": 2}]
    order = call_order(factory, "ModifyLaunchTemplate", "ModifyInstanceMetadataOptions")
    assert order == [("ModifyLaunchTemplate", WORKER),
                     ("ModifyInstanceMetadataOptions", "i-0cc00000000000001"),
                     ("ModifyInstanceMetadataOptions", "i-0cc00000000000002")]
    assert changes(tmp_path, "asg-lt-imdsv2")["worker"]["RunningInstances"] == {
        "Mode": "modify", "Modified": ["i-0cc00000000000001", "i-0cc00000000000002"],
        "Failed": {}}


# -- copy-launch-configuration ----------------------------------------------------------

# What legacy-lc's DescribeLaunchConfigurations UserData decodes to (CRLF, UTF-8).
LEGACY_USER_DATA = (b"#!/bin/bash\r\nexport GREETING='gr\xc3\xbc\xc3\x9fe'\r\n"
                    b"/opt/legacy/bin/agent --start\r\n")


def copy_name(lc_name):
    digest = hashlib.sha256(("%s\0%s" % (lc_name, CREATED_TEXT)).encode()).hexdigest()
    return "%s-imdsv2-%s" % (lc_name, digest[:10])


def copy_policy():
    return asg_policy(
        "asg-lc-copy-imdsv2", {"type": "copy-launch-configuration"},
        [{"type": "imds", "key": "LaunchType", "value": "launch-configuration"}])


def test_copy_launch_configuration_copies_every_field(placebo_factory, load_policy,
                                                      tmp_path):
    """legacy-lc has every field a copy must carry: key, two security groups, user data
    (CRLF and UTF-8), an EBS volume from a snapshot, a suppressed device (NoDevice true)
    and an instance store, detailed monitoring off, spot price, instance profile, EBS
    optimisation, public IP explicitly off, tenancy, and AWS's "" for unset KernelId /
    RamdiskId. The copy's parameters are the original's with HttpTokens required; user
    data goes in as the *decoded* bytes, because botocore base64-encodes
    CreateLaunchConfiguration's UserData itself - checked on the serialized request too.

    DescribeLaunchConfigurations _1 (filter) returns legacy-lc, which the action reuses;
    _2 answers the look for an existing copy, _3 the read-back of the copy just made
    (what AWS stores: the copy's every field, KernelId and RamdiskId as empty strings).
    """
    factory = recording_factory(placebo_factory,
                                "test_copy_launch_configuration_copies_every_field")
    wire = []  # serialized request bodies; placebo answers at before-call, so go first

    def serialized(model, params, **kwargs):
        if model.name == "CreateLaunchConfiguration":
            wire.append(dict(params["body"]))

    factory.session.events.register_first("before-call.*.*", serialized)
    load_policy(copy_policy(), session_factory=factory, output_dir=tmp_path).run()

    name = copy_name("legacy-lc")
    assert name.startswith("legacy-lc-imdsv2-")
    assert factory.called("CreateLaunchConfiguration") == [{
        "LaunchConfigurationName": name,
        "ImageId": "ami-0123456789abcdef0",
        "KeyName": "ops",
        "InstanceType": "m5.large",
        "SpotPrice": "0.05",
        "IamInstanceProfile": "legacy-profile",
        "PlacementTenancy": "default",
        "EbsOptimized": True,
        "AssociatePublicIpAddress": False,
        "InstanceMonitoring": {"Enabled": False},
        "SecurityGroups": ["sg-0a0a0a0a0a0a0a0a1", "sg-0c0ffee0000000001"],
        "UserData": LEGACY_USER_DATA,
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {
                "SnapshotId": "snap-0123456789abcdef0", "VolumeSize": 30,
                "VolumeType": "gp3", "DeleteOnTermination": True, "Iops": 3000,
                "Encrypted": True, "Throughput": 125}},
            {"DeviceName": "/dev/sdb", "NoDevice": True},
            {"DeviceName": "/dev/sdc", "VirtualName": "ephemeral0"}],
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                            "HttpEndpoint": "enabled"},
    }]
    # What reaches AWS is the original base64 text, byte for byte.
    assert len(wire) == 1
    assert wire[0]["UserData"] == base64.b64encode(LEGACY_USER_DATA).decode()

    # the configuration read by the filter is reused; then one look for the copy, and
    # after the create the read-back of exactly the copy
    assert factory.called("DescribeLaunchConfigurations")[-2:] == [
        {"LaunchConfigurationNames": [name], "MaxRecords": 100},
        {"LaunchConfigurationNames": [name]}]
    assert factory.called("CreateOrUpdateTags") == [
        group_tag("legacy", PREVIOUS, "lc:legacy-lc")]
    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "legacy", "LaunchConfigurationName": name}]
    assert call_order(factory, "CreateLaunchConfiguration", "CreateOrUpdateTags",
                      "UpdateAutoScalingGroup") == [
        ("CreateLaunchConfiguration", None), ("CreateOrUpdateTags", "legacy"),
        ("UpdateAutoScalingGroup", "legacy")]
    assert changes(tmp_path, "asg-lc-copy-imdsv2")["legacy"] == {
        "AutoScalingGroupName": "legacy", "LaunchConfigurationName": "legacy-lc",
        "CopyLaunchConfigurationName": name}


def test_copy_launch_configuration_refused_where_unavailable(placebo_factory, load_policy,
                                                             tmp_path):
    """An account created after 2024-10-01: CreateLaunchConfiguration fails with
    UnsupportedOperation ("The Launch Configuration creation operation is not available
    in your account"). Both groups (two configurations) fail with a message pointing to
    convert-to-launch-template; the second copy is not even tried, and no group is
    tagged or switched."""
    factory = recording_factory(placebo_factory,
                                "test_copy_launch_configuration_refused_where_unavailable")
    policy = load_policy(copy_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    creates = factory.called("CreateLaunchConfiguration")
    assert [c["LaunchConfigurationName"] for c in creates] == [copy_name("app-lc")]
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("CreateOrUpdateTags") == []
    failures = raised.value.failures
    assert set(failures) == {"app-a", "app-b"}
    for group in ("app-a", "app-b"):
        assert "convert-to-launch-template" in failures[group], failures[group]
        assert "UnsupportedOperation" in failures[group], failures[group]
    assert set(changes(tmp_path, "asg-lc-copy-imdsv2")) == {"app-a", "app-b"}


# -- revert-imds-remediation -----------------------------------------------------------

def revert_policy():
    return asg_policy("asg-revert-imds", {"type": "revert-imds-remediation"},
                      [{"tag:%s" % PREVIOUS: "present"}])


def test_revert_refuses_when_launch_configuration_is_gone(placebo_factory, load_policy,
                                                          tmp_path):
    """Group app was converted from old-lc (tag c7n-imds:previous-launch = lc:old-lc),
    and old-lc has since been deleted: DescribeLaunchConfigurations returns nothing. The
    revert is refused with a message naming the configuration; nothing is changed -
    not the group, not its tags."""
    factory = recording_factory(placebo_factory,
                                "test_revert_refuses_when_launch_configuration_is_gone")
    policy = load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert factory.called("DescribeLaunchConfigurations") == [
        {"LaunchConfigurationNames": ["old-lc"]}]
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("DeleteTags") == []
    assert factory.called("CreateOrUpdateTags") == []
    assert set(raised.value.failures) == {"app"}
    reason = raised.value.failures["app"]
    assert "'old-lc'" in reason and "no longer exists" in reason


def test_revert_restores_launch_configuration(placebo_factory, load_policy, tmp_path):
    """The same group with old-lc still there: the group goes back to old-lc, the
    previous-launch tag is removed and the group is tagged c7n-imds:exempt so the next
    scheduled remediation leaves it alone - in that order."""
    factory = recording_factory(placebo_factory, "test_revert_restores_launch_configuration")
    before = datetime.date.today()
    load_policy(revert_policy(), session_factory=factory, output_dir=tmp_path).run()
    after = datetime.date.today()

    assert factory.called("UpdateAutoScalingGroup") == [
        {"AutoScalingGroupName": "app", "LaunchConfigurationName": "old-lc"}]
    assert factory.called("DeleteTags") == [{"Tags": [{
        "ResourceId": "app", "ResourceType": "auto-scaling-group", "Key": PREVIOUS}]}]
    (exempt,) = factory.called("CreateOrUpdateTags")
    assert exempt in (group_tag("app", EXEMPT, "reverted by c7n-imds on %s" % day.isoformat())
                      for day in {before, after}), exempt
    assert call_order(factory, "UpdateAutoScalingGroup", "DeleteTags",
                      "CreateOrUpdateTags") == [
        ("UpdateAutoScalingGroup", "app"), ("DeleteTags", "app"),
        ("CreateOrUpdateTags", "app")]
    assert changes(tmp_path, "asg-revert-imds") == {"app": {
        "AutoScalingGroupName": "app", "RevertedTo": "lc:old-lc"}}


# -- imds filter: EffectiveHttpTokens and ScaleOutBlocked --------------------------------

PLAIN_AMI, V2_AMI = "ami-0a1a1a1a1a1a1a1a1", "ami-0b2b2b2b2b2b2b2b2"
# The estate of the four tests below (same groups, only the account level differs):
# lc-unset (configuration without MetadataOptions) and lc-required (HttpTokens required),
# both on an AMI without ImdsSupport; lt-unset-v2-ami ($Default of template al2023,
# version 1: no MetadataOptions, AMI with ImdsSupport v2.0); lt-optional-v2-ami (al2023
# pinned to 2: HttpTokens optional, same v2.0 AMI); lt-unset-plain-ami ($Default of
# template old, version 4: MetadataOptions without HttpTokens, AMI without ImdsSupport).
# Calls: DescribeAutoScalingGroups, DescribeLaunchConfigurations,
# DescribeLaunchTemplateVersions _1 ($Default of every template) and _2 (al2023 version
# 2), then GetInstanceMetadataDefaults (not implemented by moto) and DescribeImages.


def effective(placebo_factory, load_policy, tmp_path, flight, key, value):
    factory = recording_factory(placebo_factory, flight)
    resources = load_policy({
        "name": "effective", "resource": "asg",
        "filters": [{"type": "imds", "key": key, "value": value}]},
        session_factory=factory, output_dir=tmp_path).run()
    return factory, {r["AutoScalingGroupName"]: r[ANNOTATION] for r in resources}


def assert_effective_calls(factory):
    assert factory.called("GetInstanceMetadataDefaults") == [{}]
    assert factory.called("DescribeImages") == [
        {"Filters": [{"Name": "image-id", "Values": [PLAIN_AMI, V2_AMI]}],
         "IncludeDeprecated": True, "IncludeDisabled": True}]


def test_effective_http_tokens_from_account_default(placebo_factory, load_policy,
                                                    tmp_path):
    """The account default for the region requires tokens (GetInstanceMetadataDefaults
    AccountLevel HttpTokens required): every group whose launch data leaves HttpTokens
    unset gets required, whatever its AMI; the explicit optional wins over both the
    account default and the v2.0 AMI. Nothing enforces IMDSv2, so nothing is blocked.
    (Estate: see the comment above.)
    """
    factory, launch = effective(placebo_factory, load_policy, tmp_path,
                                "test_effective_http_tokens_from_account_default",
                                "EffectiveHttpTokens", "present")
    assert {name: (view["HttpTokens"], view["EffectiveHttpTokens"], view["ScaleOutBlocked"])
            for name, view in launch.items()} == {
        "lc-unset": ("optional", "required", False),
        "lc-required": ("required", "required", False),
        "lt-unset-v2-ami": ("optional", "required", False),
        "lt-optional-v2-ami": ("optional", "optional", False),
        "lt-unset-plain-ami": ("optional", "required", False)}
    assert_fields(launch["lt-optional-v2-ami"], {
        "LaunchTemplateVersion": 2, "ImageId": V2_AMI}, "lt-optional-v2-ami")
    assert_effective_calls(factory)


def test_effective_http_tokens_from_ami_without_account_default(placebo_factory,
                                                                load_policy, tmp_path):
    """No account default (AccountLevel empty): unset HttpTokens falls to the AMI -
    ImdsSupport v2.0 means required, no ImdsSupport means optional; the explicit
    optional still wins over the v2.0 AMI.
    (Estate: see the comment above.)
    """
    factory, launch = effective(placebo_factory, load_policy, tmp_path,
                                "test_effective_http_tokens_from_ami_without_account_default",
                                "EffectiveHttpTokens", "present")
    assert {name: view["EffectiveHttpTokens"] for name, view in launch.items()} == {
        "lc-unset": "optional",
        "lc-required": "required",
        "lt-unset-v2-ami": "required",
        "lt-optional-v2-ami": "optional",
        "lt-unset-plain-ami": "optional"}
    assert not any(view["ScaleOutBlocked"] for view in launch.values())
    assert_effective_calls(factory)


def test_scale_out_blocked_when_account_enforces_imdsv2(placebo_factory, load_policy,
                                                        tmp_path):
    """The account enforces IMDSv2 (AccountLevel HttpTokensEnforced enabled) without a
    HttpTokens default: a launch that resolves to optional fails there, so `key:
    ScaleOutBlocked, value: true` matches exactly the groups that resolve to optional -
    unset on a plain AMI, or explicitly optional.
    (Estate: see the comment above.)
    """
    factory, launch = effective(placebo_factory, load_policy, tmp_path,
                                "test_scale_out_blocked_when_account_enforces_imdsv2",
                                "ScaleOutBlocked", True)
    assert sorted(launch) == ["lc-unset", "lt-optional-v2-ami", "lt-unset-plain-ami"]
    assert all(view["EffectiveHttpTokens"] == "optional" for view in launch.values())
    assert_effective_calls(factory)


def test_http_tokens_filter_makes_no_effective_calls(placebo_factory, load_policy,
                                                     tmp_path):
    """A policy that uses only `key: HttpTokens` needs neither the account default nor
    the AMIs: no GetInstanceMetadataDefaults, no DescribeImages (the flight has no
    answer for them either).
    (Estate: see the comment above.)
    """
    factory, launch = effective(placebo_factory, load_policy, tmp_path,
                                "test_http_tokens_filter_makes_no_effective_calls",
                                "HttpTokens", "optional")
    # Unset HttpTokens reads as optional here, whatever the account or AMI would make it.
    assert sorted(launch) == [
        "lc-unset", "lt-optional-v2-ami", "lt-unset-plain-ami", "lt-unset-v2-ami"]
    assert factory.called("GetInstanceMetadataDefaults") == []
    assert factory.called("DescribeImages") == []
    assert not any("EffectiveHttpTokens" in view for view in launch.values())


# -- the flight data itself --------------------------------------------------------------

# -- the read-back: nothing launches from what AWS stored differently ---------------------

def test_set_metadata_access_read_back_difference_leaves_group_and_default(
        placebo_factory, load_policy, tmp_path):
    """As test_set_metadata_access_default_follower_gets_new_default_version, but the
    read-back (DescribeLaunchTemplateVersions _4: version 4 as AWS stored it) shows the
    root volume without its SnapshotId - what AWS stores for a version made from a
    source without the mappings. The difference is caught before anything launches:
    no pre-flight, no tag, the default stays 3, the group is not touched, version 4 is
    deleted again (DeleteLaunchTemplateVersions _1), and the error and the outcome file
    name the field."""
    factory = recording_factory(
        placebo_factory,
        "test_set_metadata_access_read_back_difference_leaves_group_and_default")
    policy = load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()

    assert len(factory.called("CreateLaunchTemplateVersion")) == 1
    assert factory.called("DescribeLaunchTemplateVersions")[-1] == {
        "LaunchTemplateId": WEB, "Versions": ["4"]}
    assert factory.called("RunInstances") == []
    assert factory.called("CreateOrUpdateTags") == []
    assert factory.called("ModifyLaunchTemplate") == []
    assert factory.called("UpdateAutoScalingGroup") == []
    assert factory.called("DeleteLaunchTemplateVersions") == [
        {"LaunchTemplateId": WEB, "Versions": ["4"]}]

    reason = raised.value.failures["web"]
    assert "BlockDeviceMappings[/dev/xvda].Ebs.SnapshotId" in reason
    assert "snap-0fedcba9876543210" in reason and "left unchanged" in reason
    outcome = changes(tmp_path, "asg-lt-imdsv2")["web"]
    assert outcome["Error"] == reason
    assert outcome["Differences"] == [{
        "Field": "BlockDeviceMappings[/dev/xvda].Ebs.SnapshotId",
        "Expected": "snap-0fedcba9876543210", "Stored": None}]


def test_set_metadata_access_create_warning_withdraws_version(placebo_factory, load_policy,
                                                              tmp_path):
    """CreateLaunchTemplateVersion _1 succeeds but carries a Warning (invalid
    parameters AWS accepted without rejecting the request). The version is not used:
    deleted again, no pre-flight, the default and the group untouched, the warning
    named in the error."""
    factory = recording_factory(
        placebo_factory, "test_set_metadata_access_create_warning_withdraws_version")
    policy = load_policy(set_access_policy(), session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()
    assert factory.called("DeleteLaunchTemplateVersions") == [
        {"LaunchTemplateId": WEB, "Versions": ["4"]}]
    for operation in ("RunInstances", "CreateOrUpdateTags", "ModifyLaunchTemplate",
                      "UpdateAutoScalingGroup"):
        assert factory.called(operation) == [], operation
    reason = raised.value.failures["web"]
    assert "warning" in reason and "InvalidParameterCombination" in reason


def test_convert_create_warning_withdraws_template(placebo_factory, load_policy, tmp_path):
    """CreateLaunchTemplate _1 answers with a Warning: the new template is deleted
    (DeleteLaunchTemplate _1) - no group uses it yet - and the group stays on its
    launch configuration, untagged."""
    factory = recording_factory(placebo_factory,
                                "test_convert_create_warning_withdraws_template")
    policy = load_policy(convert_policy(**{"hop-limit": 2, "http-endpoint": "enabled",
                                           "version": "$Latest"}),
                         session_factory=factory, output_dir=tmp_path)
    with pytest.raises(RemediationError) as raised:
        policy.run()
    assert factory.called("DeleteLaunchTemplate") == [
        {"LaunchTemplateId": "lt-0c4000000000000c4"}]
    assert factory.called("RunInstances") == []
    assert factory.called("CreateOrUpdateTags") == []
    assert factory.called("UpdateAutoScalingGroup") == []
    reason = raised.value.failures["containers"]
    assert "warning" in reason and "HttpPutResponseHopLimit 2" in reason
