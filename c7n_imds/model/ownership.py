"""Which stack or service owns a group (by the tags AWS puts on it), and what fixes a
group there instead of behind its owner's back. Pure."""

from __future__ import annotations

from c7n_imds.names import (
    BEANSTALK_ACTION,
    CHANGE_SET_ACTION,
    CLOUDFORMATION_TAG,
    EKS_NODEGROUP_TAG,
    NODEGROUP_ACTION,
    OWNER_TAGS,
)


def iac_owner(asg: dict) -> tuple[str, str] | None:
    """(tag, owner name) of the stack or environment that manages a group, or None."""
    tags = {t["Key"]: t["Value"] for t in asg.get("Tags") or ()}
    for key in OWNER_TAGS:
        if tags.get(key):
            return key, tags[key]
    return None


def iac_guidance(asg: dict) -> str:
    """What fixes a stack-owned group where it is defined, and the action that does it."""
    found = iac_owner(asg)
    if found is None:
        raise ValueError(
            "group %s is not owned by a stack or service" % asg.get("AutoScalingGroupName")
        )
    key, owner = found
    if key == CLOUDFORMATION_TAG:
        return (
            "managed by CloudFormation stack %s: a change made behind the stack "
            "drifts or is reverted. The %s action proposes a change set that requires "
            "IMDSv2 in the stack's template (its AWS::AutoScaling::LaunchConfiguration "
            "replaced by an AWS::EC2::LaunchTemplate, or HttpTokens required in the "
            "stack's own launch template), for the stack's owner to review and "
            "execute; "
            "stacks defined in Terraform are caught before deploy by c7n-left "
            "(policies/left/)" % (owner, CHANGE_SET_ACTION)
        )
    if key == EKS_NODEGROUP_TAG:
        return (
            "managed by EKS managed node group %s: EKS owns its launch template and "
            "reverts changes made behind it. The %s action gives the node group's "
            "launch template a version with HttpTokens required and updates the node "
            "group to it (UpdateNodegroupVersion)" % (owner, NODEGROUP_ACTION)
        )
    return (
        "managed by Elastic Beanstalk environment %s: the %s action sets the option "
        "aws:autoscaling:launchconfiguration DisableIMDSv1=true on the environment "
        "(Beanstalk then launches from a launch template with IMDSv2 required)"
        % (owner, BEANSTALK_ACTION)
    )
