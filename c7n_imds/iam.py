"""`c7n-imds iam-policy POLICY.yml...`: a least-privilege IAM policy for running them.

Built from the permissions each resource, filter and action declares (custodian's own
`Policy.get_permissions`), plus what custodian itself calls, and what AWS checks
implicitly when a group is switched to a launch template: the caller must be allowed to
launch with it (ec2:RunInstances, ec2:CreateTags for its tag specifications) and to
pass the role of its instance profile (iam:PassRole, only to EC2).
"""
import argparse
import json
import sys

import c7n_imds  # noqa: F401  (registers our filters and actions)

# Custodian resolves the account id at start-up when not told it.
RUNNER_PERMISSIONS = {"sts:GetCallerIdentity"}
# AWS checks these when UpdateAutoScalingGroup points a group at a launch template.
IMPLICIT_ON_SWITCH = {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"}
SWITCHING_ACTIONS = {"convert-to-launch-template", "set-metadata-access",
                     "revert-imds-remediation"}
# Calls custodian's own actions make without declaring them.
UNDECLARED = {"notify": {"iam:ListAccountAliases"}}


def policy_permissions(policies):
    permissions = set(RUNNER_PERMISSIONS)
    for policy in policies:
        permissions.update(policy.get_permissions())
        for action in policy.resource_manager.actions:
            if action.type in SWITCHING_ACTIONS:
                permissions.update(IMPLICIT_ON_SWITCH)
            permissions.update(UNDECLARED.get(action.type, ()))
    return permissions


def policy_document(permissions):
    """An IAM policy document: everything but iam:PassRole on any resource (describe
    and tag APIs do not support resource scoping for these calls), and iam:PassRole
    only towards EC2."""
    actions = sorted(p for p in permissions if p != "iam:PassRole")
    statements = [{"Sid": "C7nImds", "Effect": "Allow", "Action": actions, "Resource": "*"}]
    if "iam:PassRole" in permissions:
        statements.append({
            "Sid": "C7nImdsPassInstanceRole", "Effect": "Allow", "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}})
    return {"Version": "2012-10-17", "Statement": statements}


def load_policies(paths):
    from c7n.config import Config
    from c7n.loader import PolicyLoader
    loader = PolicyLoader(Config.empty(region="us-east-1", account_id="123456789012"))
    policies = []
    for path in paths:
        collection = loader.load_file(path)
        if collection is None:
            raise SystemExit("%s holds no policies" % path)
        policies.extend(collection)
    return policies


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="c7n-imds iam-policy",
        description="Print a least-privilege IAM policy for running the given policies.")
    parser.add_argument("policy_files", nargs="+", metavar="POLICY.yml")
    options = parser.parse_args(argv)
    document = policy_document(policy_permissions(load_policies(options.policy_files)))
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
