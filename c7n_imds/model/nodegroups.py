"""EKS managed node groups, for `set-nodegroup-metadata-access`: which node group owns
an Auto Scaling group, whether its node group can be updated now, the way to replace
one c7n-imds cannot update, and the read-back of an update. Pure.

EKS tags a managed node group's Auto Scaling group with ``eks:cluster-name`` and
``eks:nodegroup-name``. With a launch template of the user's, EKS launches from its own
copy (the group's ``eks-...`` template); the node group's ``launchTemplate`` names the
user's template, so that is where a new version goes. A node group created without a
launch template cannot be moved to one (UpdateNodegroupVersion: "You can update a node
group using a launch template only if the node group was originally deployed with a
launch template"); it has to be replaced.

The tags only name a candidate: anyone with tag rights can write ``eks:*`` tags, so a
node group owns a group only when DescribeNodegroup's ``resources.autoScalingGroups``
lists it. UpdateNodegroupVersion without ``version`` / ``releaseVersion`` moves the node
group to the cluster's Kubernetes version and the latest AMI release, which cannot be
rolled back: every update is pinned to the node group's current values
(:func:`version_pins`).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from c7n_imds.model.changes import LaunchChange
from c7n_imds.names import (
    CLOUDFORMATION_TAG,
    EKS_CLUSTER_TAG,
    EKS_NODEGROUP_TAG,
    NODEGROUP_ACTION,
)

ACTIVE = "ACTIVE"
UPDATE_ACCEPTED = ("InProgress", "Successful")
# The options a replacement template gets: tokens required, and the hop limit of 2 that
# pods need to get an IMDSv2 token through the node's network namespace.
REPLACEMENT_METADATA_OPTIONS = {
    "HttpTokens": "required",
    "HttpPutResponseHopLimit": 2,
    "HttpEndpoint": "enabled",
}
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
CUSTOM_AMI = "CUSTOM"
# eksctl tags what it makes with these (and makes it through a CloudFormation stack).
EKSCTL_TAG_PREFIXES = ("alpha.eksctl.io/", "eksctl.cluster.k8s.io/")


def nodegroup_key(asg: dict) -> tuple[str, str] | None:
    """(cluster, node group) from the tags EKS puts on the group, or None."""
    tags = {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}
    cluster, nodegroup = tags.get(EKS_CLUSTER_TAG), tags.get(EKS_NODEGROUP_TAG)
    return (cluster, nodegroup) if cluster and nodegroup else None


def listed_groups(nodegroup: dict) -> list[str]:
    """The Auto Scaling groups EKS lists as the node group's own."""
    return [
        g["name"]
        for g in (nodegroup.get("resources") or {}).get("autoScalingGroups") or ()
        if g.get("name")
    ]


def not_listed(cluster: str, name: str) -> str:
    """Why a group whose tags name a node group that does not list it is refused."""
    return (
        "tags name node group %s of cluster %s, but EKS does not list this group as "
        "its own; nothing changed" % (name, cluster)
    )


def stack_owner(nodegroup: dict, label: str) -> str | None:
    """Why a node group that a CloudFormation stack or eksctl made is left to it, with
    where the fix goes; None when neither made it. ``aws:`` tags cannot be written by
    users; an eksctl tag can, but only ever makes c7n-imds leave a node group alone."""
    tags = nodegroup.get("tags") or {}
    stack = tags.get(CLOUDFORMATION_TAG)
    where = " (CloudFormation stack %s)" % stack if stack else ""
    if any(k.startswith(EKSCTL_TAG_PREFIXES) for k in tags):
        return (
            "EKS managed node group %s was made by eksctl%s: a change made behind it "
            "is undone by its next update, so c7n-imds leaves it to eksctl. Set "
            "disableIMDSv1: true on this node group in the eksctl config; eksctl "
            "applies it when it creates a node group, so create one from the config "
            "and delete this one" % (label, where)
        )
    if stack:
        return (
            "EKS managed node group %s belongs to CloudFormation stack %s: a change "
            "made behind it drifts or is reverted, so c7n-imds leaves it to the stack. "
            "In the stack's template, set MetadataOptions HttpTokens: required (hop "
            "limit 2 for pods) in the node group's AWS::EC2::LaunchTemplate and point "
            "the AWS::EKS::Nodegroup's LaunchTemplate Version at it, then update the "
            "stack" % (label, stack)
        )
    return None


def is_custom_ami(nodegroup: dict, launch_template_data: dict | None = None) -> bool:
    """A node group whose AMI comes from its launch template: amiType CUSTOM (a
    template that names an ImageId is one too, whatever amiType says)."""
    return nodegroup.get("amiType") == CUSTOM_AMI or bool(
        (launch_template_data or {}).get("ImageId")
    )


def version_pins(
    nodegroup: dict, launch_template_data: dict | None = None
) -> tuple[dict, list[LaunchChange]]:
    """({version, releaseVersion} to send with UpdateNodegroupVersion, the launch
    changes the update would still make). Without them EKS moves the node group to the
    cluster's Kubernetes version and the latest AMI release, for good; so both are the
    node group's current values. A custom AMI comes from the template (copied
    unchanged): EKS then fails an update that gives either, so neither is sent."""
    if is_custom_ami(nodegroup, launch_template_data):
        return {}, []
    pins, changes = {}, []
    for key, kind, after in (
        ("version", "kubernetes-version", "the cluster's Kubernetes version"),
        ("releaseVersion", "image", "the latest AMI release of its Kubernetes version"),
    ):
        if nodegroup.get(key):
            pins[key] = nodegroup[key]
        else:
            changes.append(
                LaunchChange(
                    kind, key, None, after, why=("DescribeNodegroup gave no %s to keep" % key)
                )
            )
    return pins, changes


def pins_text(pins: dict, custom: bool) -> str:
    """How the update keeps the node group's Kubernetes and AMI versions, in words."""
    if custom:
        return "custom AMI: the image is the template's, copied unchanged"
    return (
        ", ".join(
            "%s %s kept" % (label, pins[key])
            for key, label in (("version", "Kubernetes"), ("releaseVersion", "AMI release"))
            if key in pins
        )
        or "Kubernetes and AMI versions not pinned"
    )


def owner_id(cluster: str, nodegroup: str) -> str:
    """The ``Owner`` of an outcome record."""
    return "eks-nodegroup:%s/%s" % (cluster, nodegroup)


@dataclass
class NodegroupChange:
    """One node group of the run: its groups, what EKS says of it, and the template
    version it launches from (the user's template, not EKS's copy)."""

    cluster: str
    name: str
    groups: list[dict] = field(default_factory=list)
    nodegroup: dict | None = None  # DescribeNodegroup's nodegroup
    problem: str | None = None  # why it could not be read
    source: dict | None = None  # the template version it uses, as described
    # InstanceType / ImageId that EKS adds to the template at launch, for the DryRun
    launch_choice: dict = field(default_factory=dict)
    # the launch changes the policy accepted (allow-launch-changes)
    launch_changes: list[LaunchChange] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "%s/%s" % (self.cluster, self.name)

    @property
    def group_names(self) -> list[str]:
        return [asg["AutoScalingGroupName"] for asg in self.groups]

    @property
    def listed_groups(self) -> list[str]:
        return listed_groups(self.nodegroup or {})

    @property
    def source_data(self) -> dict:
        return (self.source or {}).get("LaunchTemplateData") or {}

    @property
    def pins(self) -> dict:
        """What UpdateNodegroupVersion keeps (version_pins)."""
        return version_pins(self.nodegroup or {}, self.source_data)[0]

    @property
    def kept(self) -> str:
        return pins_text(self.pins, is_custom_ami(self.nodegroup or {}, self.source_data))

    @property
    def launch_template(self) -> dict | None:
        return (self.nodegroup or {}).get("launchTemplate") or None

    @property
    def key(self) -> tuple[str, int] | None:
        """(template id, version number) of the version the new one is made from."""
        if self.source is None:
            return None
        return self.source["LaunchTemplateId"], self.source["VersionNumber"]

    @property
    def read_key(self) -> tuple[str, int]:
        """``key`` of a change whose template version was read (what the plan, the
        outcome and the already-done detail are about)."""
        if self.key is None:
            raise ValueError("node group %s: its launch template version was not read" % self.label)
        return self.key


@dataclass
class NodegroupSnapshot:
    changes: list[NodegroupChange]
    failures: dict[str, str]
    launch_sources: Any  # c7n_imds.sources.LaunchSources


@dataclass
class NodegroupPlan:
    work: dict = field(default_factory=dict)  # key -> VersionPlan (c7n_imds.model.plans)
    updates: list[NodegroupChange] = field(default_factory=list)
    already: list[NodegroupChange] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)


def state_problem(nodegroup: dict, label: str) -> str | None:
    """Why the node group cannot be updated now, or None when it is ACTIVE."""
    status = nodegroup.get("status")
    if status == ACTIVE:
        return None
    if status == "UPDATING":
        return (
            "EKS managed node group %s is UPDATING (an update is in progress); "
            "nothing was changed - run again once it is ACTIVE" % label
        )
    return (
        "EKS managed node group %s is %s, not ACTIVE; nothing was changed - run "
        "again once it is ACTIVE" % (label, status)
    )


def eks_additions(nodegroup: dict, launch_template_data: dict, eks_copy_data: dict) -> dict:
    """What EKS adds to the user's template when it launches a node: the node group's
    instance type where the template names none, and - for a template without a custom
    AMI - the image EKS put in its copy. The pre-flight DryRun needs both to launch as
    EKS would."""
    choice = {}
    if (
        not launch_template_data.get("InstanceType")
        and not launch_template_data.get("InstanceRequirements")
        and nodegroup.get("instanceTypes")
    ):
        choice["InstanceType"] = nodegroup["instanceTypes"][0]
    if not launch_template_data.get("ImageId") and eks_copy_data.get("ImageId"):
        choice["ImageId"] = eks_copy_data["ImageId"]
    return choice


def replacement_steps(cluster: str, name: str, nodegroup: dict) -> str:
    """Why a node group without a launch template is left alone, and the exact steps
    that replace it with one whose nodes require IMDSv2."""
    new = name[:56] + "-imdsv2"
    q = shlex.quote
    create_nodegroup = [
        "aws eks create-nodegroup",
        "--cluster-name",
        q(cluster),
        "--nodegroup-name",
        q(new),
        "--launch-template",
        "name=%s,version=1" % q(new),
    ]
    if nodegroup.get("nodeRole"):
        create_nodegroup += ["--node-role", q(nodegroup["nodeRole"])]
    if nodegroup.get("subnets"):
        create_nodegroup += ["--subnets"] + [q(s) for s in nodegroup["subnets"]]
    scaling = nodegroup.get("scalingConfig") or {}
    if scaling:
        create_nodegroup += [
            "--scaling-config",
            ",".join(
                "%s=%s" % (k, scaling[k])
                for k in ("minSize", "maxSize", "desiredSize")
                if k in scaling
            ),
        ]
    if nodegroup.get("instanceTypes"):
        create_nodegroup += ["--instance-types"] + [q(t) for t in nodegroup["instanceTypes"]]
    for option, key in (
        ("--ami-type", "amiType"),
        ("--capacity-type", "capacityType"),
        ("--kubernetes-version", "version"),
    ):
        if nodegroup.get(key):
            create_nodegroup += [option, q(nodegroup[key])]
    if nodegroup.get("labels"):
        create_nodegroup += [
            "--labels",
            q(",".join("%s=%s" % item for item in sorted(nodegroup["labels"].items()))),
        ]
    if nodegroup.get("taints"):
        create_nodegroup += ["--taints"] + [
            q("key=%s,value=%s,effect=%s" % (t["key"], t.get("value", ""), t["effect"]))
            for t in nodegroup["taints"]
        ]
    disk = (
        " EKS refuses --disk-size with a launch template: give the root volume "
        "(%s GiB) in the template's BlockDeviceMappings." % nodegroup["diskSize"]
        if nodegroup.get("diskSize")
        else ""
    )
    return (
        "EKS managed node group %s/%s was created without a launch template, and "
        "UpdateNodegroupVersion cannot move a node group to one (a node group can be "
        "updated with a launch template only if it was created with one), so c7n-imds "
        "does not change it. Replace it: "
        "(1) aws ec2 create-launch-template --launch-template-name %s "
        "--launch-template-data %s;%s "
        "(2) %s; "
        "(3) aws eks wait nodegroup-active --cluster-name %s --nodegroup-name %s, then move "
        "the workloads: kubectl drain -l %s=%s --ignore-daemonsets "
        "--delete-emptydir-data; "
        "(4) aws eks delete-nodegroup --cluster-name %s --nodegroup-name %s"
        % (
            cluster,
            name,
            q(new),
            q(json.dumps({"MetadataOptions": REPLACEMENT_METADATA_OPTIONS}, separators=(",", ":"))),
            disk,
            " ".join(create_nodegroup),
            q(cluster),
            q(new),
            NODEGROUP_LABEL,
            q(name),
            q(cluster),
            q(name),
        )
    )


def update_problem(
    update: dict, template_id: str, version: int | str, pins: dict | None = None
) -> str | None:
    """The read-back of UpdateNodegroupVersion: None when EKS reports the update in
    progress or done and (where it lists its parameters) to this version and the pinned
    Kubernetes and AMI versions, else why not."""
    pins = pins or {}
    status = update.get("status")
    if status not in UPDATE_ACCEPTED:
        errors = "; ".join(
            "%s: %s" % (e.get("errorCode"), e.get("errorMessage"))
            for e in update.get("errors") or ()
        )
        return "EKS reports update %s as %s%s" % (
            update.get("id"),
            status,
            " (%s)" % errors if errors else "",
        )
    params = {p.get("type"): p.get("value") for p in update.get("params") or ()}
    if params.get("LaunchTemplateVersion") not in (None, str(version)):
        return "EKS reports update %s to launch template version %s, not %s of %s" % (
            update.get("id"),
            params["LaunchTemplateVersion"],
            version,
            template_id,
        )
    for key, param in (("version", "Version"), ("releaseVersion", "ReleaseVersion")):
        if pins.get(key) and params.get(param) not in (None, pins[key]):
            return "EKS reports update %s to %s %s, not the node group's %s" % (
                update.get("id"),
                param,
                params[param],
                pins[key],
            )
    return None


def template_spec(launch_template: dict) -> dict:
    """A DescribeNodegroup ``launchTemplate`` as a template spec."""
    return {
        "LaunchTemplateId": launch_template["id"],
        "Version": str(launch_template.get("version") or "$Default"),
    }


def already_detail(change: NodegroupChange) -> str:
    return "launch template %s version %s already has %s; EKS managed node group %s is %s" % (
        change.read_key[0],
        change.read_key[1],
        json.dumps(change.source_data.get("MetadataOptions") or {}, sort_keys=True),
        change.label,
        (change.nodegroup or {}).get("status"),
    )


def outcomes(
    change: NodegroupChange, status: str, version: int | str, update_id: str | None, detail: str
) -> list[dict]:
    """The imds-changes.json records of a node group, one per group."""
    fix: dict[str, Any] = {
        "Action": NODEGROUP_ACTION,
        "Status": status,
        "ClusterName": change.cluster,
        "NodegroupName": change.name,
        "LaunchTemplate": {"id": change.read_key[0], "version": str(version)},
        "UpdateId": update_id,
        "Detail": detail,
    }
    if change.launch_changes:
        fix["LaunchChanges"] = [c.record() for c in change.launch_changes]
    return [
        {
            "AutoScalingGroupName": name,
            "Owner": owner_id(change.cluster, change.name),
            "OwnerFix": dict(fix),
        }
        for name in change.group_names
    ]


def owner_change(change: NodegroupChange, metadata_options: dict, force: bool) -> dict:
    """The plan line of a node group (`c7n-imds plan`'s OwnerChanges)."""
    strategy = (change.nodegroup or {}).get("updateConfig") or {}
    return {
        "Owner": "EKS managed node group %s" % change.label,
        "Change": "launch template %s version %s -> new version with %s, then "
        "UpdateNodegroupVersion (EKS replaces the nodes by its update strategy)"
        % (change.read_key[0], change.read_key[1], json.dumps(metadata_options, sort_keys=True)),
        "Groups": change.group_names,
        "Notes": [
            "update strategy: %s"
            % (json.dumps(strategy, sort_keys=True) if strategy else "EKS's default"),
            "force: %s" % str(force).lower(),
            "the template's default version is not moved",
            change.kept,
        ]
        + ["also changes %s (allowed)" % c.line() for c in change.launch_changes],
    }
