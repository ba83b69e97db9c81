"""`c7n-imds iam-policy [--deploy] POLICY.yml...`: a least-privilege IAM policy for
running them, or - with --deploy - for deploying their Lambda modes.

Built from the permissions each resource, filter and action declares (custodian's own
`Policy.get_permissions`), plus what custodian itself calls, and what AWS checks
implicitly when a group is switched to a launch template: the caller must be allowed to
launch with it (ec2:RunInstances, ec2:CreateTags for its tag specifications, and
ssm:GetParameters where its image is an SSM parameter) and to pass the role of its
instance profile (iam:PassRole, only to EC2).

Every permission is granted on the narrowest resource and condition AWS lets a policy
name (docs/iam.md): statements are grouped by that scope, and only calls that support
no resource-level permission stay on `*`. iam:PassRole names the instance roles the
groups launch with: found read-only with --discover, or given with --instance-role;
without either the statement carries a placeholder and a line on standard error says so.

Deploying a Lambda mode is another principal's work (a person or a pipeline, not the
function's role): custodian (c7n.mu) creates or updates the function, its alias and
permissions, and the rule, config rule or Security Hub custom action that invokes it,
and passes the mode's role to Lambda. Those calls are listed below by mode, read from
c7n.mu; the function's own role needs only the run policy.
"""

import argparse
import json
import logging
import os
import sys
import urllib.parse

import c7n_imds  # noqa: F401  (registers our filters and actions)
from c7n_imds.names import (
    BEANSTALK_ACTION,
    CHANGE_SET_PREFIX,
    CONVERT_ACTION,
    COPY_ACTION,
    EXEMPT_TAG,
    NODEGROUP_ACTION,
    PREVIOUS_LAUNCH_TAG,
    PULL_MODE,
    REVERT_ACTION,
    SET_ACCESS_ACTION,
    SOURCE_CREATED_TAG,
    SOURCE_TAG,
)
from c7n_imds.owners.beanstalk import UPDATE_ENVIRONMENT_PERMISSIONS

# Custodian resolves the account id at start-up when not told it.
RUNNER_PERMISSIONS = {"sts:GetCallerIdentity"}
# AWS checks these when UpdateAutoScalingGroup points a group at a launch template:
# launching with it (ec2:RunInstances, ec2:CreateTags for its tag specifications),
# passing its instance profile's role, and - for templates c7n-imds did not make, whose
# image may be an SSM parameter (resolve:ssm:) - reading that parameter.
IMPLICIT_ON_SWITCH = {
    CONVERT_ACTION: {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"},
    SET_ACCESS_ACTION: {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "ssm:GetParameters"},
    REVERT_ACTION: {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "ssm:GetParameters"},
}
# Elastic Beanstalk's UpdateEnvironment runs with the caller's credentials: Beanstalk
# updates the environment's CloudFormation stack, which - moving it to a launch
# template - makes a template, launches from it and deletes the replaced launch
# configuration (c7n_imds/owners/beanstalk.py). CloudFormation makes those calls on the
# caller's behalf, so they carry aws:CalledVia cloudformation.amazonaws.com.
BEANSTALK_STACK_UPDATE = set(UPDATE_ENVIRONMENT_PERMISSIONS) | {
    "autoscaling:DeleteLaunchConfiguration"
}
UPDATES_BEANSTALK = (BEANSTALK_ACTION, REVERT_ACTION)
# Calls custodian's own actions make without declaring them.
UNDECLARED = {"notify": {"iam:ListAccountAliases"}}
# Calls custodian's Lambda modes make without declaring them (c7n.policy).
MODE_PERMISSIONS = {
    "config-rule": {"config:PutEvaluations"},
    "config-poll-rule": {"config:PutEvaluations"},
}
# Tag keys each action writes on groups (CreateOrUpdateTags) or removes (DeleteTags);
# an action not listed here may write any c7n-imds key.
GROUP_TAG_KEYS = {REVERT_ACTION: {PREVIOUS_LAUNCH_TAG, EXEMPT_TAG}}
GROUP_TAG_KEYS.update(
    {
        action: {PREVIOUS_LAUNCH_TAG}
        for action in (
            CONVERT_ACTION,
            SET_ACCESS_ACTION,
            COPY_ACTION,
            BEANSTALK_ACTION,
            NODEGROUP_ACTION,
        )
    }
)
OUR_TAG_KEYS = "c7n-imds:*"
# Tags convert-to-launch-template gives a template it makes (c7n_imds/actions/launch_templates.py).
TEMPLATE_TAG_KEYS = [SOURCE_TAG, SOURCE_CREATED_TAG]
# Actions that make a new version of a template c7n-imds did not make, and delete that
# version again when it fails its read-back or pre-flight (c7n_imds/actions/versions.py).
WITHDRAWS_FOREIGN_VERSIONS = (SET_ACCESS_ACTION, NODEGROUP_ACTION)
# The service EC2 instance roles are passed to: ec2.amazonaws.com, or
# ec2.amazonaws.com.cn in the aws-cn partition.
PASSED_TO_EC2 = "ec2.amazonaws.com*"
CLOUDFORMATION = "cloudformation.amazonaws.com"
PLACEHOLDER_ROLE = "arn:{p}:iam::ACCOUNT:role/REPLACE-WITH-INSTANCE-ROLES"
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")

# What c7n.mu calls to deploy a Lambda mode.
LAMBDA_DEPLOY = {
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:CreateFunction",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    "lambda:GetAlias",
    "lambda:CreateAlias",
    "lambda:UpdateAlias",
    "lambda:TagResource",
    "lambda:UntagResource",
    "lambda:ListTags",
    "lambda:GetPolicy",
    "lambda:AddPermission",
    "lambda:RemovePermission",
    "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency",
}
EVENTS_DEPLOY = {
    "events:DescribeRule",
    "events:PutRule",
    "events:PutTargets",
    "events:ListTargetsByRule",
    "events:RemoveTargets",
    "events:EnableRule",
    "events:DisableRule",
}
CONFIG_DEPLOY = {"config:DescribeConfigRules", "config:PutConfigRule"}
HUB_DEPLOY = {
    "securityhub:DescribeActionTargets",
    "securityhub:CreateActionTarget",
    "securityhub:UpdateActionTarget",
}
DEPLOY_BY_MODE = {
    "config-rule": CONFIG_DEPLOY,
    "config-poll-rule": CONFIG_DEPLOY,
    "hub-action": EVENTS_DEPLOY | HUB_DEPLOY,
}


def deploy_permissions(policies):
    """(permissions, roles) for deploying the policies' Lambda modes; roles as the modes
    name them, ``{account_id}`` left for IAM to match any account."""
    permissions, roles = set(), set()
    for policy in policies:
        mode = policy.data.get("mode") or {}
        if mode.get("type", PULL_MODE) == PULL_MODE:
            continue
        permissions |= LAMBDA_DEPLOY | DEPLOY_BY_MODE.get(mode["type"], EVENTS_DEPLOY)
        if mode.get("role"):
            roles.add(mode["role"].replace("{account_id}", "*"))
    if roles:
        permissions.add("iam:PassRole")
    return permissions, roles


def deploy_document(permissions, roles):
    """The deployer's policy: its calls on any resource, and iam:PassRole of exactly
    the modes' roles, only to Lambda."""
    actions = sorted(p for p in permissions if p != "iam:PassRole")
    statements = [{"Sid": "C7nImdsDeploy", "Effect": "Allow", "Action": actions, "Resource": "*"}]
    if roles:
        statements.append(
            {
                "Sid": "C7nImdsPassFunctionRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": sorted(
                    r if r.startswith("arn:") else "arn:aws:iam::*:role/" + r for r in roles
                ),
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _arns(partition, *patterns):
    return ["arn:%s:%s" % (partition, p) for p in patterns]


GROUP = "autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*"
CONFIGURATION = "autoscaling:*:*:launchConfiguration:*:launchConfigurationName/*"
BEANSTALK_CONFIGURATION = "autoscaling:*:*:launchConfiguration:*:launchConfigurationName/awseb-e-*"
TEMPLATE = "ec2:*:*:launch-template/*"
INSTANCE = "ec2:*:*:instance/*"
# what RunInstances tags from a template's tag specifications
LAUNCHED = (
    INSTANCE,
    "ec2:*:*:volume/*",
    "ec2:*:*:network-interface/*",
    "ec2:*:*:spot-instances-request/*",
)
STACK = "cloudformation:*:*:stack/*/*"
BEANSTALK_STACK = "cloudformation:*:*:stack/awseb-e-*/*"

# Sid -> (resource patterns, condition) of each scope; {keys}, {roles} and {queues} are
# filled in per policy set. Order is the order of the printed statements.
SCOPES = {
    "C7nImdsNoResourceLevel": (None, None),
    "C7nImdsGroups": ((GROUP,), None),
    "C7nImdsGroupTags": ((GROUP,), "group-tags"),
    "C7nImdsLaunchConfigurations": ((CONFIGURATION,), None),
    "C7nImdsLaunchTemplates": ((TEMPLATE,), None),
    "C7nImdsOwnLaunchTemplates": (
        (TEMPLATE,),
        {"Null": {"aws:ResourceTag/%s" % SOURCE_TAG: "false"}},
    ),
    "C7nImdsWithdrawFailedVersions": ((TEMPLATE,), None),
    "C7nImdsTagNewTemplates": (
        (TEMPLATE,),
        {
            "StringEquals": {"ec2:CreateAction": "CreateLaunchTemplate"},
            "ForAllValues:StringLike": {"aws:TagKeys": TEMPLATE_TAG_KEYS},
        },
    ),
    "C7nImdsTagAtLaunch": (LAUNCHED, {"StringEquals": {"ec2:CreateAction": "RunInstances"}}),
    "C7nImdsGroupInstances": (
        (INSTANCE,),
        {"Null": {"aws:ResourceTag/aws:autoscaling:groupName": "false"}},
    ),
    "C7nImdsFleets": (("ec2:*:*:fleet/*", "ec2:*:*:spot-fleet-request/*"), None),
    "C7nImdsStacks": ((STACK,), None),
    "C7nImdsChangeSets": (
        (STACK,),
        {"StringLike": {"cloudformation:ChangeSetName": CHANGE_SET_PREFIX + "*"}},
    ),
    "C7nImdsBeanstalkStacks": ((BEANSTALK_STACK,), None),
    # create-stack-change-set's template-bucket: only its own keys (owners/stacks.py)
    "C7nImdsChangeSetTemplates": (("s3:::*/c7n-imds/change-sets/*",), None),
    "C7nImdsBeanstalkStackTemplates": (
        (TEMPLATE,),
        {"ForAnyValue:StringEquals": {"aws:CalledVia": CLOUDFORMATION}},
    ),
    "C7nImdsBeanstalkStackTemplateTags": (
        (TEMPLATE,),
        {
            "StringEquals": {"ec2:CreateAction": "CreateLaunchTemplate"},
            "ForAnyValue:StringEquals": {"aws:CalledVia": CLOUDFORMATION},
        },
    ),
    "C7nImdsBeanstalkStackConfigurations": (
        (BEANSTALK_CONFIGURATION,),
        {"ForAnyValue:StringEquals": {"aws:CalledVia": CLOUDFORMATION}},
    ),
    "C7nImdsBeanstalkEnvironments": (("elasticbeanstalk:*:*:environment/*/*",), None),
    "C7nImdsNodegroups": (("eks:*:*:nodegroup/*/*/*",), None),
    "C7nImdsNodegroupUpdates": (("eks:*:*:cluster/*", "eks:*:*:nodegroup/*/*/*"), None),
    "C7nImdsSsmParameters": (("ssm:*:*:parameter/*",), None),
    "C7nImdsQueues": ("queues", None),
    "C7nImdsFindings": (("securityhub:*:*:product/*/*",), None),
    "C7nImdsHub": (("securityhub:*:*:hub/default",), None),
    "C7nImdsPassInstanceRole": ("roles", {"StringLike": {"iam:PassedToService": PASSED_TO_EC2}}),
}
# What c7n-imds and custodian call, by scope; any other permission is on `*` and must
# be one AWS grants on no resource (tests/test_iam.py checks against the reference).
SCOPE_OF = {
    "autoscaling:UpdateAutoScalingGroup": "C7nImdsGroups",
    "autoscaling:StartInstanceRefresh": "C7nImdsGroups",
    "autoscaling:CreateOrUpdateTags": "C7nImdsGroupTags",
    "autoscaling:DeleteTags": "C7nImdsGroupTags",
    "autoscaling:CreateLaunchConfiguration": "C7nImdsLaunchConfigurations",
    "autoscaling:DeleteLaunchConfiguration": "C7nImdsLaunchConfigurations",
    "ec2:CreateLaunchTemplate": "C7nImdsLaunchTemplates",
    "ec2:CreateLaunchTemplateVersion": "C7nImdsLaunchTemplates",
    "ec2:ModifyLaunchTemplate": "C7nImdsLaunchTemplates",
    "ec2:DeleteLaunchTemplate": "C7nImdsOwnLaunchTemplates",
    "ec2:DeleteLaunchTemplateVersions": "C7nImdsOwnLaunchTemplates",
    "ec2:ModifyInstanceMetadataOptions": "C7nImdsGroupInstances",
    "ec2:DescribeFleetInstances": "C7nImdsFleets",
    "ec2:DescribeSpotFleetInstances": "C7nImdsFleets",
    "cloudformation:DescribeStacks": "C7nImdsStacks",
    "cloudformation:GetStackPolicy": "C7nImdsStacks",
    "cloudformation:DescribeStackResource": "C7nImdsStacks",
    "cloudformation:DescribeStackResources": "C7nImdsStacks",
    "cloudformation:GetTemplate": "C7nImdsStacks",
    "cloudformation:ListChangeSets": "C7nImdsStacks",
    "cloudformation:CreateChangeSet": "C7nImdsChangeSets",
    "cloudformation:DeleteChangeSet": "C7nImdsChangeSets",
    "cloudformation:DescribeChangeSet": "C7nImdsChangeSets",
    "cloudformation:UpdateStack": "C7nImdsBeanstalkStacks",
    "s3:PutObject": "C7nImdsChangeSetTemplates",
    "s3:GetObject": "C7nImdsChangeSetTemplates",
    "s3:DeleteObject": "C7nImdsChangeSetTemplates",
    "elasticbeanstalk:UpdateEnvironment": "C7nImdsBeanstalkEnvironments",
    "elasticbeanstalk:DescribeConfigurationSettings": "C7nImdsBeanstalkEnvironments",
    "elasticbeanstalk:DescribeEnvironmentResources": "C7nImdsBeanstalkEnvironments",
    "elasticbeanstalk:ValidateConfigurationSettings": "C7nImdsBeanstalkEnvironments",
    "eks:DescribeNodegroup": "C7nImdsNodegroups",
    "eks:UpdateNodegroupVersion": "C7nImdsNodegroups",
    "eks:DescribeUpdate": "C7nImdsNodegroupUpdates",
    "ssm:GetParameters": "C7nImdsSsmParameters",
    "sqs:SendMessage": "C7nImdsQueues",
    "securityhub:BatchImportFindings": "C7nImdsFindings",
    "securityhub:GetFindings": "C7nImdsHub",
    "iam:PassRole": "C7nImdsPassInstanceRole",
}
# ec2:CreateTags has a scope per create it is part of (never an existing resource).
CREATE_TAGS = "ec2:CreateTags"
# What the Beanstalk stack update needs beyond c7n-imds's own scopes, only via
# CloudFormation.
BEANSTALK_SCOPE_OF = {
    "ec2:DeleteLaunchTemplate": "C7nImdsBeanstalkStackTemplates",
    "ec2:DeleteLaunchTemplateVersions": "C7nImdsBeanstalkStackTemplates",
    CREATE_TAGS: "C7nImdsBeanstalkStackTemplateTags",
    "autoscaling:DeleteLaunchConfiguration": "C7nImdsBeanstalkStackConfigurations",
}


class Needs:
    """What a set of policies calls: the actions (permissions), and what scopes them."""

    def __init__(self):
        self.actions = set(RUNNER_PERMISSIONS)
        self.action_types = set()
        self.group_tag_keys = set()
        self.queues = set()
        self.beanstalk = set()  # what the Beanstalk stack update calls, via CloudFormation
        self.makes_templates = False


def policy_needs(policies):
    needs = Needs()
    for policy in policies:
        needs.actions.update(policy.get_permissions())
        needs.actions.update(MODE_PERMISSIONS.get((policy.data.get("mode") or {}).get("type"), ()))
        for action in policy.resource_manager.actions:
            needs.action_types.add(action.type)
            declared = set(action.get_permissions())
            needs.actions.update(IMPLICIT_ON_SWITCH.get(action.type, ()))
            needs.actions.update(UNDECLARED.get(action.type, ()))
            if declared & {"autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"}:
                needs.group_tag_keys |= GROUP_TAG_KEYS.get(action.type, {OUR_TAG_KEYS})
            if "ec2:CreateLaunchTemplate" in declared:
                needs.makes_templates = True
            if action.type in UPDATES_BEANSTALK:
                needs.beanstalk |= BEANSTALK_STACK_UPDATE
            if action.type == "notify":
                transport = action.data.get("transport") or {}
                if transport.get("type") == "sqs" and transport.get("queue"):
                    needs.queues.add(transport["queue"])
    return needs


def policy_permissions(policies):
    """Every action the policies need (the Beanstalk stack update's included)."""
    needs = policy_needs(policies)
    return needs.actions | needs.beanstalk


def queue_arn(queue, partition="aws"):
    """A notify queue (name, URL or ARN) as an ARN; what custodian fills in at run time
    (its account and region) matches any."""
    queue = queue.replace("{account_id}", "*").replace("{region}", "*")
    if queue.startswith("arn:"):
        return queue
    if "://" not in queue:
        return "arn:%s:sqs:*:*:%s" % (partition, queue)
    url = urllib.parse.urlparse(queue)
    host, path = url.hostname or "", url.path.strip("/").split("/")
    region = host.split(".")[1] if host.startswith("sqs.") else "*"
    account, name = (path[0], path[-1]) if len(path) >= 2 else ("*", path[-1])
    return "arn:%s:sqs:%s:%s:%s" % (partition, region, account, name)


def policy_document(needs, roles=None, partition="aws"):
    """The run policy: each permission in the statement of its scope (SCOPES), `*`
    only for calls AWS authorizes on no resource. ``roles``: the instance role ARNs
    iam:PassRole may pass (None: a placeholder)."""
    if not isinstance(needs, Needs):  # a plain set of permissions
        needs, actions = Needs(), needs
        needs.actions = set(actions)
    by_scope = {sid: set() for sid in SCOPES}
    for action in needs.actions:
        if action == CREATE_TAGS:
            if needs.makes_templates:
                by_scope["C7nImdsTagNewTemplates"].add(action)
            continue
        by_scope[SCOPE_OF.get(action, "C7nImdsNoResourceLevel")].add(action)
    if "ec2:RunInstances" in needs.actions:
        # a launch (the pre-flight's DryRun, AWS's check on a switch) is allowed to
        # tag what it creates as the template's tag specifications say
        by_scope["C7nImdsTagAtLaunch"].add(CREATE_TAGS)
    if needs.action_types & set(WITHDRAWS_FOREIGN_VERSIONS):
        by_scope["C7nImdsWithdrawFailedVersions"].add("ec2:DeleteLaunchTemplateVersions")
        by_scope["C7nImdsOwnLaunchTemplates"].discard("ec2:DeleteLaunchTemplateVersions")
    for action in needs.beanstalk:
        if action in BEANSTALK_SCOPE_OF:
            by_scope[BEANSTALK_SCOPE_OF[action]].add(action)
        else:
            by_scope[SCOPE_OF.get(action, "C7nImdsNoResourceLevel")].add(action)
    statements = []
    for sid, (resources, condition) in SCOPES.items():
        actions = sorted(by_scope[sid])
        if not actions:
            continue
        if resources is None:
            resource = "*"
        elif resources == "roles":
            resource = sorted(roles) if roles else [PLACEHOLDER_ROLE.format(p=partition)]
        elif resources == "queues":
            resource = sorted({queue_arn(q, partition) for q in needs.queues}) or _arns(
                partition, "sqs:*:*:*"
            )
        else:
            resource = _arns(partition, *resources)
        if condition == "group-tags":
            condition = {
                "ForAllValues:StringLike": {
                    "aws:TagKeys": sorted(needs.group_tag_keys or {OUR_TAG_KEYS})
                }
            }
        statement = {
            "Sid": sid,
            "Effect": "Allow",
            "Action": actions[0] if len(actions) == 1 else actions,
            "Resource": resource[0]
            if len(resource) == 1 and isinstance(resource, list)
            else resource,
        }
        if condition:
            statement["Condition"] = condition
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


# -- instance roles ------------------------------------------------------------------


def instance_profiles(session, region):
    """The instance profiles (name or ARN, as the launch data names them) that the
    groups of a region launch with, read-only: the groups, their launch
    configurations and template versions (mixed instances policies' too)."""
    from c7n_imds.sources import LaunchSources

    autoscaling = session.client("autoscaling", region_name=region)
    groups = [
        g
        for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate()
        for g in page["AutoScalingGroups"]
    ]
    sources = LaunchSources(session.client("ec2", region_name=region), autoscaling)
    sources.load(groups)
    found = set()
    for config in sources.configs.values():
        if config.get("IamInstanceProfile"):
            found.add(config["IamInstanceProfile"])
    for version in sources.versions.values():
        profile = (version.get("LaunchTemplateData") or {}).get("IamInstanceProfile") or {}
        if profile.get("Arn") or profile.get("Name"):
            found.add(profile.get("Arn") or profile["Name"])
    return found


def profile_roles(iam, profiles):
    """Instance profile (name or ARN) -> the ARNs of its roles (iam:GetInstanceProfile)."""
    roles = set()
    for profile in sorted(profiles):
        name = profile.rsplit("/", 1)[-1] if profile.startswith("arn:") else profile
        answer = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        roles.update(role["Arn"] for role in answer.get("Roles") or ())
    return roles


def discover_instance_roles(session, regions):
    profiles = set()
    for region in regions:
        profiles |= instance_profiles(session, region)
    return profile_roles(session.client("iam"), profiles)


class PolicyFileError(ValueError):
    """A policy file that cannot be read as policies; the message names the file."""


def validate_files(paths):
    """Validate the files exactly as `c7n-imds validate` does (custodian's own
    validate command: duplicate YAML keys, structure, schema, unique names across the
    files, each policy's own validation); a PolicyFileError for the first problem."""
    from c7n.commands import validate
    from c7n.config import Config
    from yaml import YAMLError, safe_load

    for path in paths:
        if not os.path.isfile(path):
            raise PolicyFileError("%s: no such file; give the path of a policy file" % path)
        try:
            with open(path, encoding="utf-8") as f:
                data = safe_load(f)
        except YAMLError as e:
            raise PolicyFileError(
                "%s: not valid YAML (%s); fix the file" % (path, " ".join(str(e).split()))
            )
        if not isinstance(data, dict) or not data.get("policies"):
            raise PolicyFileError(
                "%s holds no policies (a policy file has a top-level `policies:` list)" % path
            )
    errors = _CapturedErrors()
    logger = logging.getLogger("custodian.commands")
    logger.addHandler(errors)
    propagate, logger.propagate = logger.propagate, False
    try:
        validate(Config.empty(configs=list(paths), check_deprecations="yes"))
    except SystemExit:
        pass
    except (ValueError, YAMLError) as e:
        errors.lines.append(str(e))
    finally:
        logger.removeHandler(errors)
        logger.propagate = propagate
    if errors.lines:
        where = errors.path or ", ".join(paths)
        raise PolicyFileError(
            "%s: invalid policy (%s); check it with `c7n-imds validate "
            "%s`" % (where, " ".join(" ".join(errors.lines).split())[:300], where)
        )


class _CapturedErrors(logging.Handler):
    """Custodian's validate command logs what is wrong; kept here instead."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines, self.path = [], None

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Configuration invalid: "):
            self.path = self.path or message.split(": ", 1)[1]
        else:
            self.lines.append(message)


def load_policies(paths):
    """The files' policies, after validating them as `c7n-imds validate` does."""
    from c7n.config import Config
    from c7n.loader import PolicyLoader

    validate_files(paths)
    loader = PolicyLoader(Config.empty(region="us-east-1", account_id="123456789012"))
    policies = []
    for path in paths:
        policies.extend(loader.load_file(path) or ())
    return policies


def main(argv=None, session=None):
    parser = argparse.ArgumentParser(
        prog="c7n-imds iam-policy",
        description="Print a least-privilege IAM policy for running the given policies "
        "(attach it to the role that runs them, the Lambda mode's role included), or with "
        "--deploy for deploying their Lambda modes.",
    )
    parser.add_argument("policy_files", nargs="+", metavar="POLICY.yml")
    parser.add_argument(
        "--deploy", action="store_true", help="the deployer's policy for the files' Lambda modes"
    )
    parser.add_argument(
        "--instance-role",
        action="append",
        default=[],
        metavar="ARN",
        help="an instance role the groups launch with, which iam:PassRole "
        "may pass to EC2 (repeatable)",
    )
    parser.add_argument(
        "--discover",
        action="store_true",
        help="find the instance roles the groups launch with, read-only "
        "(their launch configurations' and templates' instance profiles)",
    )
    parser.add_argument("--profile", help="with --discover: the AWS profile")
    parser.add_argument(
        "-r",
        "--region",
        action="append",
        default=[],
        help="with --discover: a region to look in (repeatable; default: the profile's)",
    )
    parser.add_argument("--partition", choices=PARTITIONS, default="aws")
    options = parser.parse_args(argv)
    try:
        policies = load_policies(options.policy_files)
    except PolicyFileError as e:
        print("c7n-imds iam-policy: %s" % e, file=sys.stderr)
        return 2
    bad = [r for r in options.instance_role if not r.startswith("arn:") or ":role/" not in r]
    if bad:
        print(
            "c7n-imds iam-policy: --instance-role %s is not a role ARN "
            "(arn:aws:iam::ACCOUNT:role/NAME)" % bad[0],
            file=sys.stderr,
        )
        return 2
    if options.deploy:
        permissions, roles = deploy_permissions(policies)
        if not permissions:
            print(
                "c7n-imds iam-policy: --deploy: no policy in %s has a Lambda mode; "
                "nothing is deployed" % ", ".join(options.policy_files),
                file=sys.stderr,
            )
            return 2
        document = deploy_document(permissions, roles)
    else:
        needs = policy_needs(policies)
        roles = set(options.instance_role)
        if options.discover and "iam:PassRole" in needs.actions | needs.beanstalk:
            try:
                roles |= discover(options, session)
            except Exception as e:  # noqa: BLE001  one line, whatever stopped it
                from c7n_imds.aws import describe_error

                print("c7n-imds iam-policy: --discover: %s" % describe_error(e), file=sys.stderr)
                return 2
        if "iam:PassRole" in needs.actions | needs.beanstalk and not roles:
            print(
                "c7n-imds iam-policy: iam:PassRole names the placeholder %s: replace it "
                "with the groups' instance roles, or give --discover or --instance-role "
                "ARN" % PLACEHOLDER_ROLE.format(p=options.partition),
                file=sys.stderr,
            )
        document = policy_document(needs, roles, options.partition)
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def discover(options, session=None):
    import boto3

    session = session or boto3.Session(profile_name=options.profile or None)
    regions = options.region or [session.region_name or "us-east-1"]
    return discover_instance_roles(session, regions)
