"""`set-nodegroup-metadata-access` (c7n_imds/owners/eks.py) and
`restore_nodegroup`, against a real moto server on 127.0.0.1.

moto 5.2.5 has EKS clusters and node groups (DescribeNodegroup names the node group's
launch template) and launch templates, but not UpdateNodegroupVersion or DescribeUpdate,
and it does not create a node group's Auto Scaling group (docs/moto-gaps.md). So the
estate is seeded as AWS has it - the user's template, EKS's own copy of it (eks-...)
and the group EKS makes from the copy, tagged eks:cluster-name / eks:nodegroup-name as
EKS tags it - and those two EKS operations are answered from placebo flights in AWS's
shape (tests/data/placebo/<test name>/eks.<Operation>_<n>.json, one file per call),
every other call going to moto. Where a test needs a node group state that only an
update reaches (UPDATING, on a new version), it sets it in moto's EKS backend.
"""

import base64
import copy
import json
import urllib.request

import boto3
import pytest
from moto.eks.models import eks_backends

import c7n_imds.owners.eks  # noqa: F401  (registers the action)
from c7n_imds.actions import RemediationError
from c7n_imds.cli import format_preview
from c7n_imds.model.nodegroups import update_problem
from c7n_imds.model.outcomes import entries
from c7n_imds.owners.eks import restore_nodegroup
from tests.support.placebo import changes

ACCOUNT = "123456789012"
REGION = "us-east-1"
CLUSTER, NODEGROUP = "prod", "workers"
PREVIOUS = "c7n-imds:previous-launch"
SNAPSHOT = "snap-0fedcba9876543210"
EKS_AMI = "ami-0c2b8ca1dad447f8a"
NODE_ROLE = "arn:aws:iam::123456789012:role/eks-node"
# The node group runs Kubernetes 1.30 on AMI release 1.30.4-20241024 in a 1.31 cluster:
# an update without them would move it to 1.31 and the latest AMI, for good.
CLUSTER_VERSION = "1.31"
PINS = {"version": "1.30", "releaseVersion": "1.30.4-20241024"}
KEPT = "Kubernetes 1.30 kept, AMI release 1.30.4-20241024 kept"
USER_DATA = base64.b64encode(b"#!/bin/bash\n/etc/eks/bootstrap.sh prod\n").decode()
MUTATING = (
    "CreateOrUpdateTags",
    "CreateLaunchTemplateVersion",
    "ModifyLaunchTemplate",
    "DeleteLaunchTemplateVersions",
    "UpdateAutoScalingGroup",
    "UpdateNodegroupVersion",
)
# The user's template version the node group uses (2; the default is 1): no image (EKS
# puts the EKS optimized AMI in its copy), no instance type (the node group's), a data
# volume from a snapshot, user data, IMDSv1 allowed at hop limit 1.
VERSION_2 = {
    "KeyName": "ops-2025",
    "UserData": USER_DATA,
    "SecurityGroupIds": [],
    "BlockDeviceMappings": [
        {
            "DeviceName": "/dev/xvdb",
            "Ebs": {
                "SnapshotId": SNAPSHOT,
                "VolumeSize": 100,
                "VolumeType": "gp3",
                "DeleteOnTermination": True,
            },
        }
    ],
    "TagSpecifications": [
        {"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "platform"}]}
    ],
    "MetadataOptions": {
        "HttpTokens": "optional",
        "HttpPutResponseHopLimit": 1,
        "HttpEndpoint": "enabled",
    },
}


class Killed(BaseException):
    """The process killed between two calls (nothing catches it)."""


def recorder(session):
    calls = []
    session.events.register_first(
        "before-parameter-build",
        lambda params, model, **kw: calls.append((model.name, copy.deepcopy(params))),
    )
    return calls


def called(calls, operation):
    return [params for name, params in calls if name == operation]


def aws_session(moto, monkeypatch, factory=None):
    """A boto3 session whose every client talks to moto; UpdateNodegroupVersion and
    DescribeUpdate answered from the factory's flight when one is given."""
    endpoint, _ = moto
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    session = boto3.Session(
        region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    if factory is not None:
        for operation in ("UpdateNodegroupVersion", "DescribeUpdate"):
            session.events.register("before-call.eks.%s" % operation, factory.pill._mock_request)
    return session


def seed(session, launch_template=True, metadata_options=None):
    """Cluster prod, node group workers (from template workers-nodes version 2 unless
    ``launch_template`` is false), EKS's copy and the group EKS made; and web, a group of
    no node group. Returns {"template": id, "copy": id, "group": name}."""
    ec2, eks, autoscaling = (session.client(s) for s in ("ec2", "eks", "autoscaling"))
    subnet = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])[0]
    version_2 = dict(
        VERSION_2,
        SecurityGroupIds=[
            ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
        ],
    )
    if metadata_options:
        version_2["MetadataOptions"] = metadata_options
    template = ec2.create_launch_template(
        LaunchTemplateName="workers-nodes", LaunchTemplateData=dict(version_2, KeyName="old")
    )
    template_id = template["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=template_id, LaunchTemplateData=version_2)
    eks.create_cluster(
        name=CLUSTER,
        roleArn="arn:aws:iam::123456789012:role/eks",
        resourcesVpcConfig={"subnetIds": [subnet["SubnetId"]]},
        version=CLUSTER_VERSION,
    )
    options = dict(
        clusterName=CLUSTER,
        nodegroupName=NODEGROUP,
        nodeRole=NODE_ROLE,
        subnets=[subnet["SubnetId"]],
        instanceTypes=["m5.large"],
        scalingConfig={"minSize": 2, "maxSize": 4, "desiredSize": 2},
        labels={"role": "workers"},
        amiType="AL2_x86_64",
        **PINS,
    )
    if launch_template:
        options["launchTemplate"] = {"id": template_id, "version": "2"}
    nodegroup = eks.create_nodegroup(**options)["nodegroup"]
    group = nodegroup["resources"]["autoScalingGroups"][0]["name"]
    eks_copy = ec2.create_launch_template(
        LaunchTemplateName=group,
        LaunchTemplateData=dict(version_2, ImageId=EKS_AMI, IamInstanceProfile={"Name": group}),
    )
    copy_id = eks_copy["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        MinSize=2,
        MaxSize=4,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnet["SubnetId"],
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": copy_id, "Version": "1"},
                "Overrides": [{"InstanceType": "m5.large"}],
            }
        },
        Tags=[
            {"Key": k, "Value": v, "PropagateAtLaunch": True}
            for k, v in (
                ("eks:cluster-name", CLUSTER),
                ("eks:nodegroup-name", NODEGROUP),
                ("kubernetes.io/cluster/%s" % CLUSTER, "owned"),
                ("k8s.io/cluster-autoscaler/enabled", "true"),
            )
        ],
    )
    web = ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web",
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=subnet["SubnetId"],
        LaunchTemplate={
            "LaunchTemplateId": web["LaunchTemplate"]["LaunchTemplateId"],
            "Version": "$Default",
        },
    )
    return {
        "template": template_id,
        "copy": copy_id,
        "group": group,
        "subnet": subnet["SubnetId"],
        "data": version_2,
    }


def nodegroup_policy(**options):
    return {
        "name": "eks-imdsv2",
        "resource": "asg",
        "actions": [dict({"type": "set-nodegroup-metadata-access"}, **options)],
    }


def outcome(tmp_path):
    return changes(tmp_path, "eks-imdsv2")


def versions(session, template_id):
    return {
        v["VersionNumber"]: v
        for v in session.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=template_id
        )["LaunchTemplateVersions"]
    }


def moto_nodegroup():
    return eks_backends[ACCOUNT][REGION].clusters[CLUSTER].nodegroups[NODEGROUP]


def group_tags(session, group):
    found = session.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[group]
    )["AutoScalingGroups"][0]
    return {t["Key"]: t["Value"] for t in found.get("Tags") or ()}


NOT_OWNED = (
    "not owned by a stack or service; the in-place actions "
    "(convert-to-launch-template, set-metadata-access) fix it"
)


def test_nodegroup_update_makes_a_faithful_version_and_updates_the_node_group(
    moto, monkeypatch, placebo_factory, load_policy, tmp_path
):
    """Node group workers uses version 2 of its template (not the default, 1). The tag
    goes on first (eks:TEMPLATE:2); version 3 is made from 2 with SourceVersion, the
    data volume's mappings sent again and the options merged (hop limit 2: pods); it is
    read back - every field of version 2, IMDSv2, hop limit 2 - and dry-run as EKS
    launches it (the node group's instance type, the image of EKS's copy); then
    UpdateNodegroupVersion to "3" and DescribeUpdate of the update it returned. The
    default stays 1; EKS's copy and group web are not touched."""
    factory = placebo_factory(
        "test_nodegroup_update_makes_a_faithful_version_and_updates_the_node_group"
    )
    session = aws_session(moto, monkeypatch, factory)
    estate = seed(session)
    template, group = estate["template"], estate["group"]
    calls = recorder(session)
    load_policy(
        nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
    ).run()

    (create,) = called(calls, "CreateLaunchTemplateVersion")
    assert create["LaunchTemplateId"] == template and create["SourceVersion"] == "2"
    assert create["LaunchTemplateData"] == {
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
        "BlockDeviceMappings": VERSION_2["BlockDeviceMappings"],
    }
    stored = versions(session, template)
    assert sorted(stored) == [1, 2, 3]
    expected = dict(
        estate["data"],
        MetadataOptions={
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
    )
    assert stored[3]["LaunchTemplateData"] == expected
    assert stored[1]["DefaultVersion"] and not stored[3]["DefaultVersion"]
    assert called(calls, "ModifyLaunchTemplate") == []
    assert called(calls, "RunInstances") == [
        {
            "DryRun": True,
            "MinCount": 1,
            "MaxCount": 1,
            "LaunchTemplate": {"LaunchTemplateId": template, "Version": "3"},
            "SubnetId": estate["subnet"],
            "InstanceType": "m5.large",
            "ImageId": EKS_AMI,
        }
    ]
    assert called(calls, "UpdateNodegroupVersion") == [
        {
            "clusterName": CLUSTER,
            "nodegroupName": NODEGROUP,
            "launchTemplate": {"id": template, "version": "3"},
            "force": False,
            **PINS,
        }
    ]
    assert called(calls, "DescribeUpdate") == [
        {
            "name": CLUSTER,
            "nodegroupName": NODEGROUP,
            "updateId": "5b9f6a2e-3c1d-4e8a-9f27-0d6c1b2a3e41",
        }
    ]
    assert called(calls, "CreateOrUpdateTags") == [
        {
            "Tags": [
                {
                    "ResourceId": group,
                    "ResourceType": "auto-scaling-group",
                    "Key": PREVIOUS,
                    "Value": "eks:%s:2" % template,
                    "PropagateAtLaunch": False,
                }
            ]
        }
    ]
    order = [name for name, _ in calls if name in MUTATING + ("RunInstances",)]
    assert order == [
        "CreateOrUpdateTags",
        "CreateLaunchTemplateVersion",
        "RunInstances",
        "UpdateNodegroupVersion",
    ]
    assert called(calls, "UpdateAutoScalingGroup") == []
    assert sorted(versions(session, estate["copy"])) == [1]

    assert outcome(tmp_path) == {
        "web": {"AutoScalingGroupName": "web", "Skipped": NOT_OWNED},
        group: {
            "AutoScalingGroupName": group,
            "Owner": "eks-nodegroup:prod/workers",
            "OwnerFix": {
                "Action": "set-nodegroup-metadata-access",
                "Status": "applied",
                "ClusterName": CLUSTER,
                "NodegroupName": NODEGROUP,
                "LaunchTemplate": {"id": template, "version": "3"},
                "UpdateId": "5b9f6a2e-3c1d-4e8a-9f27-0d6c1b2a3e41",
                "Detail": "launch template %s version 2 -> 3 (%s); EKS update "
                "5b9f6a2e-3c1d-4e8a-9f27-0d6c1b2a3e41 is InProgress" % (template, KEPT),
            },
        },
    }


def test_nodegroup_already_compliant_does_nothing(moto, monkeypatch, load_policy, tmp_path):
    """Version 2 already requires tokens at hop limit 2: nothing is tagged, made or
    updated, and the node group is reported as already applied."""
    session = aws_session(moto, monkeypatch)
    estate = seed(
        session, metadata_options={"HttpTokens": "required", "HttpPutResponseHopLimit": 2}
    )
    calls = recorder(session)
    load_policy(
        nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
    ).run()
    assert [name for name, _ in calls if name in MUTATING + ("RunInstances",)] == []
    assert sorted(versions(session, estate["template"])) == [1, 2]
    fix = outcome(tmp_path)[estate["group"]]["OwnerFix"]
    assert (fix["Status"], fix["LaunchTemplate"], fix["UpdateId"]) == (
        "already-applied",
        {"id": estate["template"], "version": "2"},
        None,
    )
    assert fix["Detail"] == (
        'launch template %s version 2 already has {"HttpPutResponseHopLimit": 2, '
        '"HttpTokens": "required"}; EKS managed node group prod/workers is ACTIVE'
        % estate["template"]
    )


def test_nodegroup_without_launch_template_is_skipped_with_the_steps(
    moto, monkeypatch, load_policy, tmp_path
):
    """A node group created without a launch template cannot be moved to one: its group
    is skipped - not a failure - with the commands that replace it."""
    session = aws_session(moto, monkeypatch)
    estate = seed(session, launch_template=False)
    calls = recorder(session)
    load_policy(
        nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
    ).run()  # no RemediationError
    assert [name for name, _ in calls if name in MUTATING] == []
    reason = outcome(tmp_path)[estate["group"]]["Skipped"]
    assert reason.startswith(
        "EKS managed node group prod/workers was created without a launch template, and "
        "UpdateNodegroupVersion cannot move a node group to one"
    )
    for step in (
        "(1) aws ec2 create-launch-template --launch-template-name workers-imdsv2 "
        "--launch-template-data '{\"MetadataOptions\":{\"HttpTokens\":\"required\","
        "\"HttpPutResponseHopLimit\":2,\"HttpEndpoint\":\"enabled\"}}';",
        "(2) aws eks create-nodegroup --cluster-name prod --nodegroup-name "
        "workers-imdsv2 --launch-template name=workers-imdsv2,version=1 --node-role "
        "%s --subnets %s --scaling-config minSize=2,maxSize=4,desiredSize=2 "
        "--instance-types m5.large" % (NODE_ROLE, estate["subnet"]),
        "--labels role=workers;",
        "(3) aws eks wait nodegroup-active --cluster-name prod --nodegroup-name "
        "workers-imdsv2, then move the workloads: kubectl drain -l "
        "eks.amazonaws.com/nodegroup=workers --ignore-daemonsets --delete-emptydir-data;",
        "(4) aws eks delete-nodegroup --cluster-name prod --nodegroup-name workers",
    ):
        assert step in reason, (step, reason)
    # moto reports diskSize 20 for every node group: the step says where it goes
    assert "give the root volume (20 GiB) in the template's BlockDeviceMappings" in reason


@pytest.mark.parametrize("status", ["UPDATING", "DEGRADED"])
def test_nodegroup_not_active_fails_cleanly(moto, monkeypatch, load_policy, tmp_path, status):
    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    moto_nodegroup().status = status
    calls = recorder(session)
    with pytest.raises(RemediationError) as failed:
        load_policy(
            nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
        ).run()
    reason = failed.value.failures[estate["group"]]
    assert reason.startswith("EKS managed node group prod/workers is %s" % status)
    assert reason.endswith("nothing was changed - run again once it is ACTIVE")
    assert "\n" not in reason
    assert [name for name, _ in calls if name in MUTATING] == []
    assert PREVIOUS not in group_tags(session, estate["group"])


def test_nodegroup_every_kill_point_converges(
    moto, monkeypatch, placebo_factory, load_policy, tmp_path
):
    """Killed right after each change - the tag, the version, the update - a second run
    finishes the work without repeating it: one tag, one version (found again by its
    description), one update. After the update, EKS shows the node group UPDATING: on
    the old version (the re-run fails cleanly, changing nothing) or already on the new
    one (the re-run reports it already applied)."""
    endpoint, _ = moto
    for kill_after in (1, 2, 3, 4):
        urllib.request.urlopen(
            urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
        ).close()
        factory = placebo_factory("test_nodegroup_every_kill_point_converges")
        session = aws_session(moto, monkeypatch, factory)
        estate = seed(session)
        template, group = estate["template"], estate["group"]
        calls = recorder(session)
        mutations = []

        def kill(model, **kwargs):
            if model.name in MUTATING:
                mutations.append(model.name)
                if len(mutations) == min(kill_after, 3):
                    raise Killed(model.name)

        session.events.register("after-call", kill, unique_id="kill")
        with pytest.raises(Killed):
            load_policy(
                nodegroup_policy(),
                session_factory=lambda *a, **k: session,
                output_dir=tmp_path / str(kill_after) / "1",
            ).run()
        session.events.unregister("after-call", unique_id="kill")
        if kill_after >= 3:
            # EKS accepted the update: the node group is UPDATING
            moto_nodegroup().status = "UPDATING"
        if kill_after == 3:
            with pytest.raises(RemediationError) as failed:
                load_policy(
                    nodegroup_policy(),
                    session_factory=lambda *a, **k: session,
                    output_dir=tmp_path / "3" / "2",
                ).run()
            assert "is UPDATING" in failed.value.failures[group]
            assert len(called(calls, "UpdateNodegroupVersion")) == 1
        if kill_after >= 3:
            moto_nodegroup().launch_template["version"] = "3"
        out = tmp_path / str(kill_after) / "last"
        load_policy(
            nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=out
        ).run()
        assert len(called(calls, "CreateOrUpdateTags")) == 1, kill_after
        assert len(called(calls, "CreateLaunchTemplateVersion")) == 1, kill_after
        assert called(calls, "UpdateNodegroupVersion") == [
            {
                "clusterName": CLUSTER,
                "nodegroupName": NODEGROUP,
                "launchTemplate": {"id": template, "version": "3"},
                "force": False,
                **PINS,
            }
        ], kill_after
        assert sorted(versions(session, template)) == [1, 2, 3], kill_after
        assert group_tags(session, group)[PREVIOUS] == "eks:%s:2" % template
        fix = outcome(out)[group]["OwnerFix"]
        assert (fix["Status"], fix["LaunchTemplate"]["version"]) == (
            "applied" if kill_after < 3 else "already-applied",
            "3",
        ), kill_after


def test_nodegroup_preview_describes_only(moto, monkeypatch, load_policy, tmp_path):
    """`c7n-imds plan`: the node group's change, what is left alone, and no change."""
    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    calls = recorder(session)
    policy = load_policy(
        nodegroup_policy(force=True), session_factory=lambda *a, **k: session, output_dir=tmp_path
    )
    resources = policy.resource_manager.resources()
    preview = policy.resource_manager.actions[0].preview(resources)
    assert [name for name, _ in calls if not name.startswith(("Describe", "List", "Get"))] == []
    assert preview == {
        "OwnerChanges": [
            {
                "Owner": "EKS managed node group prod/workers",
                "Change": "launch template %s version 2 -> new version with "
                '{"HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2, '
                '"HttpTokens": "required"}, then UpdateNodegroupVersion (EKS replaces '
                "the nodes by its update strategy)" % estate["template"],
                "Groups": [estate["group"]],
                "Notes": [
                    "update strategy: EKS's default",
                    "force: true",
                    "the template's default version is not moved",
                    KEPT,
                ],
            }
        ],
        "Failures": {},
        "Skipped": [{"AutoScalingGroupName": "web", "Skipped": NOT_OWNED}],
    }
    text = format_preview(
        dict(preview, Policy="eks-imdsv2", Region=REGION, Action="set-nodegroup-metadata-access")
    )
    assert (
        "  EKS managed node group prod/workers -> launch template %s version 2"
        % (estate["template"])
        in text
    )


def test_restore_nodegroup_puts_back_the_recorded_version(moto, monkeypatch, placebo_factory):
    factory = placebo_factory("test_restore_nodegroup_puts_back_the_recorded_version")
    session = aws_session(moto, monkeypatch, factory)
    estate = seed(session)
    moto_nodegroup().launch_template["version"] = "1"  # where an update left it
    calls = recorder(session)
    asg = {
        "AutoScalingGroupName": estate["group"],
        "Tags": [
            {"Key": "eks:cluster-name", "Value": CLUSTER},
            {"Key": "eks:nodegroup-name", "Value": NODEGROUP},
        ],
    }
    done = restore_nodegroup(
        session, asg, {"NodegroupLaunchTemplate": {"id": estate["template"], "version": "2"}}
    )
    assert called(calls, "UpdateNodegroupVersion") == [
        {
            "clusterName": CLUSTER,
            "nodegroupName": NODEGROUP,
            "launchTemplate": {"id": estate["template"], "version": "2"},
            "force": False,
            **PINS,
        }
    ]
    assert done == (
        "EKS managed node group prod/workers: launch template %s version 1 -> 2 (%s; update "
        "8e2d4c6b-1a3f-4b5d-8c7e-9f0a1b2c3d4e, InProgress; EKS replaces the nodes by its "
        "update strategy)" % (estate["template"], KEPT)
    )


def test_restore_nodegroup_refuses_what_it_cannot_put_back(moto, monkeypatch):
    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    asg = {
        "AutoScalingGroupName": estate["group"],
        "Tags": [
            {"Key": "eks:cluster-name", "Value": CLUSTER},
            {"Key": "eks:nodegroup-name", "Value": NODEGROUP},
        ],
    }
    calls = recorder(session)
    moto_nodegroup().launch_template["version"] = "3"
    with pytest.raises(
        ValueError, match="launch template %s version 7 no longer exists" % (estate["template"])
    ):
        restore_nodegroup(
            session, asg, {"NodegroupLaunchTemplate": {"id": estate["template"], "version": "7"}}
        )
    with pytest.raises(
        ValueError,
        match="launches from launch template %s, not the "
        "recorded lt-0123456789abcdef0" % estate["template"],
    ):
        restore_nodegroup(
            session,
            asg,
            {"NodegroupLaunchTemplate": {"id": "lt-0123456789abcdef0", "version": "2"}},
        )
    assert called(calls, "UpdateNodegroupVersion") == []
    moto_nodegroup().launch_template["version"] = "2"
    assert restore_nodegroup(
        session, asg, {"NodegroupLaunchTemplate": {"id": estate["template"], "version": "2"}}
    ).endswith("is already on launch template %s version 2" % (estate["template"]))


def test_update_problem_reads_a_failed_update():
    failed = {
        "id": "u-1",
        "status": "Failed",
        "errors": [{"errorCode": "PodEvictionFailure", "errorMessage": "Reached max retries"}],
    }
    assert update_problem(failed, "lt-1", 3) == (
        "EKS reports update u-1 as Failed (PodEvictionFailure: Reached max retries)"
    )
    other = {
        "id": "u-2",
        "status": "InProgress",
        "params": [{"type": "LaunchTemplateVersion", "value": "4"}],
    }
    assert update_problem(other, "lt-1", 3) == (
        "EKS reports update u-2 to launch template version 4, not 3 of lt-1"
    )
    assert update_problem(dict(other, params=[]), "lt-1", 3) is None


def test_nodegroup_template_followed_as_latest_is_refused(moto, monkeypatch, load_policy, tmp_path):
    """Group batch launches from the node group's template as $Latest: a new version
    would change what batch launches, so the node group is not changed at all."""
    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    session.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="batch",
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=estate["subnet"],
        LaunchTemplate={"LaunchTemplateId": estate["template"], "Version": "$Latest"},
    )
    calls = recorder(session)
    with pytest.raises(RemediationError) as failed:
        load_policy(
            nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
        ).run()
    assert failed.value.failures == {
        estate["group"]: (
            "launch template %s is followed as $Latest by batch; a new version would change "
            "what they launch. Pin them to a version number first" % estate["template"]
        )
    }
    assert [name for name, _ in calls if name in MUTATING] == []
    assert sorted(versions(session, estate["template"])) == [1, 2]


def test_nodegroup_round_trip_through_revert(
    moto, monkeypatch, placebo_factory, load_policy, tmp_path
):
    """Remediated, then reverted with the pack's revert action: the node group is
    updated back to the version the tag recorded (2), the tag is removed and the group
    tagged exempt so the next scheduled run leaves it; the version made is kept."""
    factory = placebo_factory("test_nodegroup_round_trip_through_revert")
    session = aws_session(moto, monkeypatch, factory)
    estate = seed(session)
    template, group = estate["template"], estate["group"]
    calls = recorder(session)
    load_policy(
        nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
    ).run()
    assert group_tags(session, group)[PREVIOUS] == "eks:%s:2" % template
    moto_nodegroup().launch_template["version"] = "3"  # where the update leaves it
    revert = {
        "name": "eks-revert",
        "resource": "asg",
        "filters": [{"tag:c7n-imds:previous-launch": "present"}],
        "actions": [{"type": "revert-imds-remediation"}],
    }
    load_policy(revert, session_factory=lambda *a, **k: session, output_dir=tmp_path).run()
    assert called(calls, "UpdateNodegroupVersion")[-1] == {
        "clusterName": CLUSTER,
        "nodegroupName": NODEGROUP,
        "launchTemplate": {"id": template, "version": "2"},
        "force": False,
        **PINS,
    }
    tags = group_tags(session, group)
    assert PREVIOUS not in tags and tags["c7n-imds:exempt"].startswith("reverted by c7n-imds on ")
    assert called(calls, "UpdateAutoScalingGroup") == []
    assert sorted(versions(session, template)) == [1, 2, 3]
    [reverted] = entries(json.loads((tmp_path / "eks-revert" / "imds-changes.json").read_text()))
    assert reverted["RevertedTo"] == "eks:%s:2" % template
    assert reverted["Detail"].startswith(
        "EKS managed node group prod/workers: launch template %s version 3 -> 2" % template
    )


def test_version_pins_keep_the_node_group_s_own_versions():
    """Pure: both current values are pinned; a custom AMI (amiType CUSTOM, or a template
    that names an ImageId) gets neither; a value EKS did not give is a launch change."""
    from c7n_imds.model.changes import refusal, refused
    from c7n_imds.model.nodegroups import version_pins

    nodegroup = {"amiType": "AL2_x86_64", **PINS}
    assert version_pins(nodegroup, {}) == (PINS, [])
    assert version_pins(dict(nodegroup, amiType="CUSTOM"), {}) == ({}, [])
    assert version_pins(nodegroup, {"ImageId": "ami-1"}) == ({}, [])
    pins, changes = version_pins({"amiType": "AL2_x86_64", "version": "1.30"}, {})
    assert pins == {"version": "1.30"}
    assert [(c.kind, c.field) for c in changes] == [("image", "releaseVersion")]
    assert refused(changes, ["image"]) == []
    assert refusal("EKS managed node group prod/workers", refused(changes, [])) == (
        "EKS managed node group prod/workers would also change what instances launch "
        "with: image: releaseVersion (unset) -> the latest AMI release of its Kubernetes "
        "version (DescribeNodegroup gave no releaseVersion to keep); nothing was changed "
        "- add image to the action's allow-launch-changes to accept exactly that"
    )


def test_nodegroup_without_a_release_to_pin_is_refused(moto, monkeypatch, load_policy, tmp_path):
    """Where EKS names no AMI release to keep, the update would take the latest: refused
    (nothing tagged, made or updated) unless the policy allows image changes."""
    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    moto_nodegroup().release_version = ""
    calls = recorder(session)
    with pytest.raises(RemediationError) as failed:
        load_policy(
            nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
        ).run()
    assert failed.value.failures[estate["group"]].startswith(
        "EKS managed node group prod/workers would also change what instances launch "
        "with: image: releaseVersion"
    )
    assert [name for name, _ in calls if name in MUTATING + ("RunInstances",)] == []
    plan = load_policy(
        nodegroup_policy(**{"allow-launch-changes": ["image"]}),
        session_factory=lambda *a, **k: session,
        output_dir=tmp_path,
    )
    preview = plan.resource_manager.actions[0].preview(plan.resource_manager.resources())
    assert preview["Failures"] == {}
    assert preview["OwnerChanges"][0]["Notes"][-2:] == [
        "Kubernetes 1.30 kept",
        "also changes image: releaseVersion (unset) -> the latest AMI release of its "
        "Kubernetes version (DescribeNodegroup gave no releaseVersion to keep) (allowed)",
    ]


def test_nodegroup_custom_ami_sends_no_versions(
    moto, monkeypatch, placebo_factory, load_policy, tmp_path
):
    """amiType CUSTOM: the image is the template's (copied unchanged), and EKS fails an
    update that gives version or releaseVersion - neither is sent, nor on revert."""
    factory = placebo_factory("test_nodegroup_custom_ami_sends_no_versions")
    session = aws_session(moto, monkeypatch, factory)
    estate = seed(session)
    moto_nodegroup().ami_type = "CUSTOM"
    calls = recorder(session)
    load_policy(
        nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
    ).run()
    fix = outcome(tmp_path)[estate["group"]]["OwnerFix"]
    assert "(custom AMI: the image is the template's, copied unchanged)" in fix["Detail"]
    moto_nodegroup().launch_template["version"] = "3"
    done = restore_nodegroup(
        session,
        {
            "AutoScalingGroupName": estate["group"],
            "Tags": [
                {"Key": "eks:cluster-name", "Value": CLUSTER},
                {"Key": "eks:nodegroup-name", "Value": NODEGROUP},
            ],
        },
        {"NodegroupLaunchTemplate": {"id": estate["template"], "version": "2"}},
    )
    assert "version 3 -> 2 (custom AMI" in done
    assert called(calls, "UpdateNodegroupVersion") == [
        {
            "clusterName": CLUSTER,
            "nodegroupName": NODEGROUP,
            "force": False,
            "launchTemplate": {"id": estate["template"], "version": version},
        }
        for version in ("3", "2")
    ]


def forged(session, estate):
    """Group web-forged carries node group workers' tags; EKS does not list it."""
    session.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="web-forged",
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=estate["subnet"],
        LaunchTemplate={"LaunchTemplateId": estate["copy"], "Version": "1"},
        Tags=[
            {"Key": k, "Value": v, "PropagateAtLaunch": False}
            for k, v in (("eks:cluster-name", CLUSTER), ("eks:nodegroup-name", NODEGROUP))
        ],
    )
    return {
        "AutoScalingGroupName": "web-forged",
        "Tags": [
            {"Key": "eks:cluster-name", "Value": CLUSTER},
            {"Key": "eks:nodegroup-name", "Value": NODEGROUP},
        ],
    }


def only(*names):
    return {"type": "value", "key": "AutoScalingGroupName", "op": "in", "value": list(names)}


def test_a_forged_tag_never_moves_the_node_group(moto, monkeypatch, load_policy, tmp_path):
    """The tags only name a candidate: a group node group workers does not list is
    refused, the node group is neither updated nor its template given a version - by
    the action or by the revert."""
    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    asg = forged(session, estate)
    calls = recorder(session)
    policy = dict(nodegroup_policy(), filters=[only("web-forged")])
    with pytest.raises(RemediationError) as failed:
        load_policy(policy, session_factory=lambda *a, **k: session, output_dir=tmp_path).run()
    assert failed.value.failures == {
        "web-forged": (
            "tags name node group workers of cluster prod, but EKS does not list this group "
            "as its own; nothing changed"
        )
    }
    with pytest.raises(ValueError, match="EKS does not list this group as its own"):
        restore_nodegroup(
            session, asg, {"NodegroupLaunchTemplate": {"id": estate["template"], "version": "1"}}
        )
    assert [name for name, _ in calls if name in MUTATING + ("RunInstances",)] == []
    assert sorted(versions(session, estate["template"])) == [1, 2]


def sibling(session, estate, exempt=None):
    """Group eks-sibling, a second group EKS lists for node group workers (one per
    subnet or zone, as EKS makes them), with one instance; the policy matches only the
    first group."""
    autoscaling = session.client("autoscaling")
    web = session.client("ec2").describe_launch_templates(LaunchTemplateNames=["web"])[
        "LaunchTemplates"
    ][0]["LaunchTemplateId"]
    tags = [("eks:cluster-name", CLUSTER), ("eks:nodegroup-name", NODEGROUP)]
    if exempt:
        tags.append(("c7n-imds:exempt", exempt))
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="eks-sibling",
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=estate["subnet"],
        LaunchTemplate={"LaunchTemplateId": web, "Version": "$Default"},
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in tags],
    )
    moto_nodegroup().resources["autoScalingGroups"].append({"name": "eks-sibling"})
    return [
        i["InstanceId"]
        for i in autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["eks-sibling"])[
            "AutoScalingGroups"
        ][0]["Instances"]
    ]


@pytest.mark.parametrize("case", ["exempt", "calls-imdsv1"])
def test_every_group_of_the_node_group_passes_the_gate(
    moto, monkeypatch, load_policy, tmp_path, case
):
    """The policy matched only the first group, but the node group's other group is
    exempt, or its instance made IMDSv1 calls: the node group is held back before
    anything changes, its matched group skipped with the reason."""
    import datetime

    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    instances = sibling(
        session, estate, "vendor agent until 2099-01-01" if case == "exempt" else None
    )
    if case == "calls-imdsv1":
        now = datetime.datetime.now(datetime.timezone.utc)
        session.client("cloudwatch").put_metric_data(
            Namespace="AWS/EC2",
            MetricData=[
                {
                    "MetricName": "MetadataNoToken",
                    "Value": 7,
                    "Unit": "Count",
                    "Timestamp": now - datetime.timedelta(hours=2),
                    "Dimensions": [{"Name": "InstanceId", "Value": instances[0]}],
                }
            ],
        )
    calls = recorder(session)
    policy = dict(nodegroup_policy(), filters=[only(estate["group"])])
    load_policy(
        policy, session_factory=lambda *a, **k: session, output_dir=tmp_path
    ).run()  # held back, not failed: a later run retries
    blocked = (
        "auto-scaling-group eks-sibling is exempt (vendor agent until 2099-01-01)"
        if case == "exempt"
        else "auto-scaling-group eks-sibling made 7 IMDSv1 call(s) in 14 days"
    )
    assert outcome(tmp_path) == {
        estate["group"]: {
            "AutoScalingGroupName": estate["group"],
            "Skipped": (
                "EKS managed node group prod/workers was not changed: %s - the change waits "
                "until nothing that launches from it calls IMDSv1 (or exempt it on purpose)"
                % blocked
            ),
        }
    }
    assert called(calls, "DescribeAutoScalingGroups")[-1] == {
        "AutoScalingGroupNames": sorted([estate["group"], "eks-sibling"])
    }
    assert [name for name, _ in calls if name in MUTATING + ("RunInstances",)] == []
    assert sorted(versions(session, estate["template"])) == [1, 2]


@pytest.mark.parametrize(
    "tags, owner",
    [
        (
            {
                "aws:cloudformation:stack-name": "platform-nodes",
                "aws:cloudformation:logical-id": "Workers",
            },
            "belongs to CloudFormation stack platform-nodes",
        ),
        (
            {
                "aws:cloudformation:stack-name": "eksctl-prod-nodegroup-workers",
                "alpha.eksctl.io/cluster-name": "prod",
                "alpha.eksctl.io/nodegroup-name": "workers",
                "alpha.eksctl.io/nodegroup-type": "managed",
            },
            "was made by eksctl (CloudFormation stack eksctl-prod-nodegroup-workers)",
        ),
    ],
)
def test_a_stack_owned_node_group_is_left_to_its_stack(
    moto, monkeypatch, load_policy, tmp_path, tags, owner
):
    """A node group a stack (or eksctl, through one) made: a change behind it drifts or
    is undone. Its groups are left with the reason and where the fix goes."""
    session = aws_session(moto, monkeypatch)
    estate = seed(session)
    moto_nodegroup().tags = tags
    calls = recorder(session)
    load_policy(
        nodegroup_policy(), session_factory=lambda *a, **k: session, output_dir=tmp_path
    ).run()  # no RemediationError: left, not failed
    reason = outcome(tmp_path)[estate["group"]]["Skipped"]
    assert reason.startswith("EKS managed node group prod/workers %s" % owner), reason
    fix = "disableIMDSv1: true" if "eksctl" in owner else "MetadataOptions HttpTokens: required"
    assert fix in reason
    assert [name for name, _ in calls if name in MUTATING + ("RunInstances",)] == []


def test_the_action_declares_what_the_gate_reads():
    from c7n_imds.owners.eks import SetNodegroupMetadataAccess

    def permissions(**data):
        return SetNodegroupMetadataAccess(
            dict(type="set-nodegroup-metadata-access", **data)
        ).get_permissions()

    assert {
        "cloudwatch:GetMetricData",
        "autoscaling:DescribeAutoScalingGroups",
        "eks:UpdateNodegroupVersion",
    } <= set(permissions())
    assert "cloudwatch:GetMetricData" not in permissions(**{"imdsv1-gate": {"enabled": False}})
