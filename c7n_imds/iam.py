"""`c7n-imds iam-policy [--deploy] POLICY.yml...`: a least-privilege IAM policy for
running them, or - with --deploy - for deploying their Lambda modes.

Built from the permissions each resource, filter and action declares (custodian's own
`Policy.get_permissions`), plus what custodian itself calls, and what AWS checks
implicitly when a group is switched to a launch template: the caller must be allowed to
launch with it (ec2:RunInstances, ec2:CreateTags for its tag specifications, and
ssm:GetParameters where its image is an SSM parameter) and to pass the role of its
instance profile (iam:PassRole, only to EC2).

Deploying a Lambda mode is another principal's work (a person or a pipeline, not the
function's role): custodian (c7n.mu) creates or updates the function, its alias and
permissions, and the rule, config rule or Security Hub custom action that invokes it,
and passes the mode's role to Lambda. Those calls are listed below by mode, read from
c7n.mu; the function's own role needs only the run policy.
"""
import argparse
import json
import os
import sys

import c7n_imds  # noqa: F401  (registers our filters and actions)
from c7n_imds.owners.beanstalk import UPDATE_ENVIRONMENT_PERMISSIONS

# Custodian resolves the account id at start-up when not told it.
RUNNER_PERMISSIONS = {"sts:GetCallerIdentity"}
# AWS checks these when UpdateAutoScalingGroup points a group at a launch template:
# launching with it (ec2:RunInstances, ec2:CreateTags for its tag specifications),
# passing its instance profile's role, and - for templates c7n-imds did not make, whose
# image may be an SSM parameter (resolve:ssm:) - reading that parameter.
IMPLICIT_ON_SWITCH = {
    "convert-to-launch-template": {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"},
    "set-metadata-access": {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole",
                            "ssm:GetParameters"},
    "revert-imds-remediation": {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole",
                                "ssm:GetParameters"},
}
# Elastic Beanstalk's UpdateEnvironment runs with the caller's credentials: Beanstalk
# updates the environment's CloudFormation stack and, moving it to a launch template,
# makes templates and launches from them (c7n_imds/owners/beanstalk.py).
IMPLICIT_ON_SWITCH["disable-beanstalk-imdsv1"] = set(UPDATE_ENVIRONMENT_PERMISSIONS)
IMPLICIT_ON_SWITCH["revert-imds-remediation"] |= set(UPDATE_ENVIRONMENT_PERMISSIONS)
# Calls custodian's own actions make without declaring them.
UNDECLARED = {"notify": {"iam:ListAccountAliases"}}
# ec2:CreateTags is needed only as part of these creates (tags given in the request),
# never to tag an existing resource.
CREATE_ACTIONS = ["CreateLaunchTemplate", "RunInstances"]
# The service EC2 instance roles are passed to: ec2.amazonaws.com, or
# ec2.amazonaws.com.cn in the aws-cn partition.
PASSED_TO_EC2 = "ec2.amazonaws.com*"

# What c7n.mu calls to deploy a Lambda mode.
LAMBDA_DEPLOY = {
    "lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:CreateFunction",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration", "lambda:PublishVersion", "lambda:GetAlias",
    "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:TagResource",
    "lambda:UntagResource", "lambda:ListTags", "lambda:GetPolicy", "lambda:AddPermission",
    "lambda:RemovePermission", "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency"}
EVENTS_DEPLOY = {"events:DescribeRule", "events:PutRule", "events:PutTargets",
                 "events:ListTargetsByRule", "events:RemoveTargets", "events:EnableRule",
                 "events:DisableRule"}
CONFIG_DEPLOY = {"config:DescribeConfigRules", "config:PutConfigRule"}
HUB_DEPLOY = {"securityhub:DescribeActionTargets", "securityhub:CreateActionTarget",
              "securityhub:UpdateActionTarget"}
DEPLOY_BY_MODE = {"config-rule": CONFIG_DEPLOY, "config-poll-rule": CONFIG_DEPLOY,
                  "hub-action": EVENTS_DEPLOY | HUB_DEPLOY}
PULL = "pull"


def deploy_permissions(policies):
    """(permissions, roles) for deploying the policies' Lambda modes; roles as the modes
    name them, ``{account_id}`` left for IAM to match any account."""
    permissions, roles = set(), set()
    for policy in policies:
        mode = policy.data.get("mode") or {}
        if mode.get("type", PULL) == PULL:
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
    statements = [{"Sid": "C7nImdsDeploy", "Effect": "Allow", "Action": actions,
                   "Resource": "*"}]
    if roles:
        statements.append({
            "Sid": "C7nImdsPassFunctionRole", "Effect": "Allow", "Action": "iam:PassRole",
            "Resource": sorted(r if r.startswith("arn:") else "arn:aws:iam::*:role/" + r
                               for r in roles),
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}})
    return {"Version": "2012-10-17", "Statement": statements}


def policy_permissions(policies):
    permissions = set(RUNNER_PERMISSIONS)
    for policy in policies:
        permissions.update(policy.get_permissions())
        for action in policy.resource_manager.actions:
            permissions.update(IMPLICIT_ON_SWITCH.get(action.type, ()))
            permissions.update(UNDECLARED.get(action.type, ()))
    return permissions


def policy_document(permissions):
    """An IAM policy document: the describe and change calls on any resource (these
    calls do not support resource scoping here), ec2:CreateTags only within the creates
    that tag, and iam:PassRole only towards EC2."""
    scoped = {"iam:PassRole", "ec2:CreateTags"}
    actions = sorted(p for p in permissions if p not in scoped)
    statements = [{"Sid": "C7nImds", "Effect": "Allow", "Action": actions, "Resource": "*"}]
    if "ec2:CreateTags" in permissions:
        statements.append({
            "Sid": "C7nImdsTagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:CreateAction": CREATE_ACTIONS}}})
    if "iam:PassRole" in permissions:
        statements.append({
            "Sid": "C7nImdsPassInstanceRole", "Effect": "Allow", "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringLike": {"iam:PassedToService": PASSED_TO_EC2}}})
    return {"Version": "2012-10-17", "Statement": statements}


class PolicyFileError(ValueError):
    """A policy file that cannot be read as policies; the message names the file."""


def load_policies(paths):
    from c7n.config import Config
    from c7n.exceptions import PolicyValidationError
    from c7n.loader import PolicyLoader
    from yaml import YAMLError, safe_load
    loader = PolicyLoader(Config.empty(region="us-east-1", account_id="123456789012"))
    policies = []
    for path in paths:
        if not os.path.isfile(path):
            raise PolicyFileError("%s: no such file; give the path of a policy file" % path)
        try:
            with open(path, encoding="utf-8") as f:
                data = safe_load(f)
        except YAMLError as e:
            raise PolicyFileError("%s: not valid YAML (%s); fix the file" % (
                path, " ".join(str(e).split())))
        if not isinstance(data, dict) or not data.get("policies"):
            raise PolicyFileError("%s holds no policies (a policy file has a top-level "
                                  "`policies:` list)" % path)
        try:
            collection = loader.load_file(path)
        except PolicyValidationError as e:
            raise PolicyFileError("%s: invalid policy (%s); check it with `c7n-imds "
                                  "validate %s`" % (path, " ".join(str(e).split())[:300],
                                                    path))
        if collection is None:
            raise PolicyFileError("%s holds no policies" % path)
        policies.extend(collection)
    return policies


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="c7n-imds iam-policy",
        description="Print a least-privilege IAM policy for running the given policies "
        "(attach it to the role that runs them, the Lambda mode's role included), or with "
        "--deploy for deploying their Lambda modes.")
    parser.add_argument("policy_files", nargs="+", metavar="POLICY.yml")
    parser.add_argument("--deploy", action="store_true",
                        help="the deployer's policy for the files' Lambda modes")
    options = parser.parse_args(argv)
    try:
        policies = load_policies(options.policy_files)
    except PolicyFileError as e:
        print("c7n-imds iam-policy: %s" % e, file=sys.stderr)
        return 2
    if options.deploy:
        permissions, roles = deploy_permissions(policies)
        if not permissions:
            print("c7n-imds iam-policy: --deploy: no policy in %s has a Lambda mode; "
                  "nothing is deployed" % ", ".join(options.policy_files), file=sys.stderr)
            return 2
        document = deploy_document(permissions, roles)
    else:
        document = policy_document(policy_permissions(policies))
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
