"""`c7n-imds doctor POLICY.yml...`: what a first run of these policies needs from the
account and region of the current credentials, checked read-only before anything runs.

Otherwise a first run fails late, far from the cause: a Lambda whose role Lambda may not
assume, a queue missing once there is news, a template c7n-mailer lacks, IAM denials.
"""

import argparse
import json
import os
import sys
import urllib.parse

import boto3
import c7n_mailer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from c7n_imds.access_check import Unreachable, caller_identity, plain
from c7n_imds.aws import describe_error as aws_error_text
from c7n_imds.aws import error_code
from c7n_imds.iam import PolicyFileError, load_policies, policy_permissions
from c7n_imds.names import PULL_MODE
from c7n_imds.pack import MAIL_TEMPLATES_DIR

DEFAULT_REGION = "us-east-1"
# A few reads, each asked once: a broken route is a miss within seconds, not a minute.
CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3}
)
ERRORS = (ClientError, BotoCoreError, ResponseParserError)  # the last is no BotoCoreError
HUB_MODES = ("hub-action", "hub-finding")
MAILER_TEMPLATE_KEYS = ("template", "slack_template")  # the keys c7n-mailer renders
LAMBDA_PRINCIPAL = "lambda.amazonaws.com"
LAMBDA_TRUST = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
    '{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)
QUEUE_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
HUB_NOT_ENABLED = ("InvalidAccessException", "ResourceNotFoundException")
DENIED = ("AccessDenied", "AccessDeniedException")
# SimulatePrincipalPolicy documents no ActionNames maximum; it pages 100 results (MaxItems).
SIMULATION_CHUNK = 100
# `c7n-imds iam-policy` grants ec2:CreateTags and iam:PassRole under these conditions;
# without their values the simulator judges them false and reports both as lacking.
SIMULATION_CONTEXT = [
    {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
    for key, value in (
        ("ec2:CreateAction", "CreateLaunchTemplate"),
        ("iam:PassedToService", "ec2.amazonaws.com"),
    )
]
# c7n-imds's mail templates (the pack's docs give them to c7n-mailer with -t), then the
# msg-templates folders c7n-mailer always searches (c7n_mailer/cli.py).
MAIL_TEMPLATE_FOLDERS = [MAIL_TEMPLATES_DIR] + [
    os.path.abspath(os.path.join(os.path.dirname(c7n_mailer.__file__), up, "msg-templates"))
    for up in (".", "..")
]


def implied_checks(policies, account, region):
    """What the policy dicts need, each {what: [policy names]} in file order: "queues",
    "roles" (of Lambda modes), "hub" (Security Hub's region), "mail_templates" (c7n-mailer's)."""
    checks = {"queues": {}, "roles": {}, "hub": {}, "mail_templates": {}}

    def substitute(text):  # as custodian does with roles and queues at run time
        return text.replace("{account_id}", account).replace("{region}", region)

    def need(kind, key, name):
        names = checks[kind].setdefault(key, [])
        names.extend([name] if name not in names else [])

    for policy in policies:
        name, mode = policy["name"], policy.get("mode") or {}
        if mode.get("type", PULL_MODE) != PULL_MODE:
            need("roles", substitute(mode.get("role") or ""), name)
        if mode.get("type") in HUB_MODES:
            need("hub", region, name)
        for action in policy.get("actions") or ():
            action = action if isinstance(action, dict) else {"type": action}
            if action["type"] == "post-finding":
                need("hub", region, name)
            if action["type"] != "notify":
                continue
            transport = action.get("transport") or {}
            if transport.get("type") == "sqs" and transport.get("queue"):
                need("queues", substitute(transport["queue"]), name)
            for template in filter(None, map(action.get, MAILER_TEMPLATE_KEYS)):
                need("mail_templates", template, name)
    return checks


def simulation_principal(caller_arn):
    """Whose policies the simulator reads for this caller: ("user", ARN), ("role", role
    name; its ARN, with any path, comes from GetRole), ("root", None), or (None, why)."""
    parts = caller_arn.split(":", 5)
    service, resource = (parts[2], parts[5]) if len(parts) == 6 else (None, "")
    if service == "iam" and resource == "root":
        return "root", None
    if service == "iam" and resource.startswith("user/"):
        return "user", caller_arn
    if service == "sts" and resource.startswith("assumed-role/"):
        return "role", resource.split("/")[1]
    return None, (
        "the caller %s is neither an IAM user nor an assumed role, whose "
        "policies the simulator reads" % caller_arn
    )


def _listed(value):
    return [value] if isinstance(value, (str, dict)) else list(value or ())


def trusts_lambda(document):
    """Whether a trust policy lets Lambda assume the role: an Allow of sts:AssumeRole to
    lambda.amazonaws.com and no Deny of it. AssumeRolePolicyDocument comes as
    URL-encoded JSON, which boto3 decodes (recorded answers may hold either)."""
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    effects = set()
    for statement in _listed((document or {}).get("Statement")):
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        if (
            isinstance(principal, dict)
            and LAMBDA_PRINCIPAL in _listed(principal.get("Service"))
            and {"sts:AssumeRole", "sts:*", "*"} & set(_listed(statement.get("Action")))
        ):
            effects.add(statement.get("Effect"))
    return "Allow" in effects and "Deny" not in effects


def queue_location(queue, region):
    """(region, name, owner account or None, URL or None) of a notify queue, read as
    custodian's notify action reads a queue name, URL or ARN."""
    if queue.startswith("arn:"):
        _, _, _, queue_region, owner, name = queue.split(":", 5)
        return queue_region, name, owner, None
    if "://" not in queue:
        return region, queue, None, None
    host = urllib.parse.urlparse(queue).hostname or ""
    if host.startswith("sqs."):
        region = host.split(".")[1]
    elif host.endswith("queue.amazonaws.com"):  # R.queue..., or us-east-1's queue...
        region = host.split(".")[0] if host.count(".") > 2 else DEFAULT_REGION
    return region, queue.rstrip("/").rsplit("/", 1)[-1], None, queue


def describe_error(error):
    """An AWS error for a checklist line, never a pasted HTML page (access_check.plain)."""
    return plain(aws_error_text(error))


def chunks(items, size=SIMULATION_CHUNK):
    return [items[i : i + size] for i in range(0, len(items), size)]


def labelled(what, names):
    return "%s (polic%s %s)" % (what, "ies" if len(names) > 1 else "y", ", ".join(names))


def failed(label, error, missing, fix):
    """The miss for a read that failed: `fix` where AWS says the thing is not there."""
    if error_code(error) in missing:
        return False, "%s: %s" % (label, fix)
    return False, "%s: could not check (%s)" % (label, describe_error(error))


class Simulator:
    """The IAM policy simulator, for the principal whose policies the caller has."""

    def __init__(self, iam, caller_arn):
        self.iam, (self.kind, found) = iam, simulation_principal(caller_arn)
        self.arn, self.why = (found, None) if self.kind == "user" else (None, found)
        if self.kind == "role":
            try:
                self.arn = iam.get_role(RoleName=found)["Role"]["Arn"]
            except ERRORS as error:
                self.why = "iam:GetRole %s failed (%s)" % (found, describe_error(error))

    def find_denied(self, actions, resources=("*",)):
        """(action, decision) of each action the principal may not call."""
        found, paginator = [], self.iam.get_paginator("simulate_principal_policy")
        for chunk in chunks(sorted(actions)):
            for result in paginator.paginate(
                PolicySourceArn=self.arn,
                ActionNames=chunk,
                ResourceArns=list(resources),
                ContextEntries=SIMULATION_CONTEXT,
            ).search("EvaluationResults"):
                decision = (result["EvalActionName"], result["EvalDecision"])
                if decision[1] != "allowed" and decision not in found:
                    found.append(decision)
        return found

    def send_check(self, label, queue_arn):
        """May the caller send to it? If the simulator cannot say, the permissions line does."""
        if self.arn is None:
            return True, "%s: exists; sending not checked (see iam permissions)" % label
        try:
            denied = self.find_denied(["sqs:SendMessage"], [queue_arn])
        except ERRORS as error:
            return True, "%s: exists; sending not checked (%s)" % (label, describe_error(error))
        if denied:
            return False, (
                "%s: exists, but the caller may not send to it (%s) - grant "
                "sqs:SendMessage on %s" % (label, denied[0][1], queue_arn)
            )
        return True, "%s: exists and the caller may send to it" % label


def queue_check(session, queue, names, region, simulator):
    queue_region, name, owner, url = queue_location(queue, region)
    label = labelled("sqs queue %s" % queue, names)
    sqs = session.client("sqs", region_name=queue_region, config=CLIENT_CONFIG)
    try:
        owned = {"QueueOwnerAWSAccountId": owner} if owner else {}
        url = url or sqs.get_queue_url(QueueName=name, **owned)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    except ERRORS as error:
        return failed(
            label,
            error,
            QUEUE_MISSING,
            "does not exist - create it: aws sqs "
            "create-queue --queue-name %s --region %s; c7n-mailer reads it (its "
            "queue_url, see policies/mailer/)" % (name, queue_region),
        )
    return simulator.send_check(label, arn)


def role_check(iam, role, names):
    label = labelled("lambda role %s" % (role or "(none)"), names)
    if not role:
        return False, "%s: the mode names no role - give it `role:`" % label
    name = role.rsplit("/", 1)[-1]
    try:
        found = iam.get_role(RoleName=name)["Role"]
    except ERRORS as error:
        return failed(
            label,
            error,
            ("NoSuchEntity",),
            "does not exist - create it: aws iam "
            "create-role --role-name %s --assume-role-policy-document '%s', then "
            "attach AWSLambdaBasicExecutionRole and the policy `c7n-imds iam-policy` "
            "prints" % (name, LAMBDA_TRUST),
        )
    if not trusts_lambda(found.get("AssumeRolePolicyDocument")):
        return False, (
            "%s: exists, but does not trust %s - trust it: aws iam update-assume-"
            "role-policy --role-name %s --policy-document '%s'"
            % (label, LAMBDA_PRINCIPAL, name, LAMBDA_TRUST)
        )
    return True, "%s: exists and trusts %s" % (label, LAMBDA_PRINCIPAL)


def hub_check(session, region, names):
    label = labelled("security hub", names)
    try:
        session.client("securityhub", region_name=region, config=CLIENT_CONFIG).describe_hub()
    except ERRORS as error:
        return failed(
            label,
            error,
            HUB_NOT_ENABLED,
            "not enabled in %s - enable it: aws "
            "securityhub enable-security-hub --region %s" % (region, region),
        )
    return True, "%s: enabled in %s" % (label, region)


def mail_template_check(template, names, folders=MAIL_TEMPLATE_FOLDERS):
    label = labelled("template %s" % template, names)
    # c7n-mailer loads NAME.j2 for a relative name (c7n_mailer.utils.get_rendered_jinja)
    wanted = template if os.path.isabs(template) else template + ".j2"
    found = [f for f in folders if os.path.isfile(os.path.join(f, wanted))]
    if not found:
        return False, (
            "%s: no %s in %s - put it in one of them, or in a folder given to "
            "c7n-mailer with -t" % (label, wanted, ", ".join(folders))
        )
    return True, "%s: %s in %s%s" % (
        label,
        wanted,
        found[0],
        (' (c7n-mailer -t "$(c7n-imds templates-dir)")' if found[0] == folders[0] else ""),
    )


def permission_check(simulator, permissions, paths):
    label = "iam permissions (%d the policies need)" % len(permissions)
    command = "c7n-imds iam-policy %s" % " ".join(paths)
    if simulator.kind == "root":
        return True, (
            "%s: the caller is the account root, which IAM policies do not "
            "limit; the policy simulator does not apply to root" % label
        )
    if simulator.arn is None:
        return False, "%s: could not check - %s; see `%s`" % (label, simulator.why, command)
    try:
        denied = simulator.find_denied(permissions)
    except ERRORS as error:
        return failed(
            label,
            error,
            DENIED,
            "could not check - the caller may not call "
            "iam:SimulatePrincipalPolicy; grant it, or compare the caller's "
            "policies with `%s`" % command,
        )
    if denied:
        return False, "%s: the caller lacks %s - grant what `%s` prints" % (
            label,
            ", ".join("%s (%s)" % d for d in denied),
            command,
        )
    return True, "%s: all allowed for %s" % (label, simulator.arn)


def main(argv=None, session=None):
    """Print the checklist; exit 0 when all is ok, 1 on a miss, 2 for bad input or no way
    to AWS. ``session``, a boto3 session, replaces the one --profile would make (tests)."""
    parser = argparse.ArgumentParser("c7n-imds doctor", description="Check what a first run needs.")
    parser.add_argument("policy_files", nargs="+", metavar="POLICY.yml")
    parser.add_argument("-r", "--region", help="default: the session's, else us-east-1")
    parser.add_argument("--profile")
    options = parser.parse_args(argv)
    try:
        policies = load_policies(options.policy_files)
    except PolicyFileError as error:
        print("c7n-imds doctor: %s" % error, file=sys.stderr)
        return 2
    try:
        identity = caller_identity(options.profile, options.region, session=session)
    except Unreachable as error:
        print("c7n-imds doctor:\n  MISS  identity: %s\n1 miss" % error)
        return 2
    session = session or boto3.Session(profile_name=options.profile or None)
    account, region = identity["Account"], options.region or session.region_name or DEFAULT_REGION
    checks = implied_checks([p.data for p in policies], account, region)
    iam = session.client("iam", config=CLIENT_CONFIG)
    simulator = Simulator(iam, identity["Arn"])
    permissions = policy_permissions(policies)
    permissions -= {"sqs:SendMessage"} if checks["queues"] else set()  # on each queue's ARN
    results = [(True, "identity")]
    results += [queue_check(session, q, n, region, simulator) for q, n in checks["queues"].items()]
    results += [role_check(iam, role, names) for role, names in checks["roles"].items()]
    results += [hub_check(session, r, names) for r, names in checks["hub"].items()]
    results += [mail_template_check(t, names) for t, names in checks["mail_templates"].items()]
    results.append(permission_check(simulator, permissions, options.policy_files))
    print("c7n-imds doctor: account %s (%s), region %s" % (account, identity["Arn"], region))
    for ok, text in results:
        print("  %-6s%s" % ("ok" if ok else "MISS", text))
    misses = sum(1 for ok, _ in results if not ok)
    print("%d miss%s" % (misses, "" if misses == 1 else "es"))
    return 1 if misses else 0
