"""`c7n-imds org ...`: c7n-org with the plugin present in every worker process.

c7n-org runs each account and region in a ProcessPoolExecutor. With the `spawn` start
method (macOS, Windows, Python 3.14's default on Linux) a worker starts from a fresh
interpreter that never imported c7n_imds, so our filters and actions would be unknown
there. The pool c7n-org creates is swapped for one whose workers import the plugin
first. C7N_IMDS_START_METHOD (fork | spawn | forkserver) picks the start method.
"""

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import c7n_imds
from c7n_imds.mistakes import Mistake, check_output_dir, check_policy_files, check_regions

# c7n-org's own default regions for an account that names none (c7n_org.cli.resolve_regions)
ORG_DEFAULT_REGIONS = ("us-east-1", "us-west-2")
PRECHECK_WORKERS = 16  # STS calls are light; an organization has hundreds of accounts


class PluginProcessPool(ProcessPoolExecutor):
    """A process pool whose workers register c7n_imds before running anything."""

    def __init__(self, max_workers=None, **kwargs):
        method = os.environ.get("C7N_IMDS_START_METHOD")
        if method:
            kwargs.setdefault("mp_context", multiprocessing.get_context(method))
        kwargs.setdefault("initializer", start_worker)
        super().__init__(max_workers=max_workers, **kwargs)


def start_worker():
    """A worker registers the plugin and, as the parent did, escapes its log records
    (a spawned worker inherits the umask, not the logging set-up)."""
    from c7n_imds.log_records import escape_log_records

    c7n_imds.register()
    escape_log_records()


def main(args):
    import c7n_org.cli as org_cli

    from c7n_imds.aws import patient_command_retries

    if args[:1] == ["run"]:
        problems = before_run(org_cli, args[1:])
        if problems:
            from c7n_imds.model import escape

            for line in problems:
                print("c7n-imds org run: %s" % escape.controls(line), file=sys.stderr)
            return 2
        patient_command_retries()
    # c7n-org picks its executor by this module-level name when a command runs.
    org_cli.ProcessPoolExecutor = PluginProcessPool
    return org_cli.cli.main(args=list(args), prog_name="c7n-imds org")


def before_run(org_cli, args):
    """What `c7n-imds org run` checks before any account is touched: the policy file as
    `c7n-imds validate` checks it (an option typo would otherwise run everywhere), the
    accounts file, the regions, the output folder, then one STS call per account-region
    (short timeouts) - a down endpoint or a role that cannot be assumed is a line each
    within seconds, not minutes of retries per account. [] when all is well."""
    import click

    try:
        ctx = org_cli.run.make_context("run", list(args))
    except (click.exceptions.ClickException, click.exceptions.Exit):
        return []  # c7n-org answers its own usage errors (and --help) itself
    params = ctx.params
    try:
        check_policy_files([params["use"]])
        accounts = accounts_of(org_cli, params)
        check_output_dir(params["output_dir"])
        regions = list(params["region"] or ())
        check_regions(regions + [r for a in accounts for r in a.get("regions") or ()])
    except Mistake as mistake:
        detail = mistake.detail if params.get("verbose") else ""
        return [str(mistake)] + ([detail] if detail else [])
    return reach_accounts(org_cli, accounts, regions)


def accounts_of(org_cli, params):
    """The AWS accounts c7n-org will run in, as it reads and filters the file."""
    import jsonschema
    import yaml

    path = params["config"]
    try:
        with open(path, "rb") as f:
            config = yaml.safe_load(f.read())
    except OSError as e:
        raise Mistake(
            "-c %s: cannot read the accounts file (%s); `c7n-imds org "
            "aws-accounts -f %s` writes one from AWS Organizations" % (path, e.strerror or e, path)
        ) from None
    except yaml.YAMLError as e:
        from c7n_imds.mistakes import yaml_line

        raise Mistake("-c " + yaml_line(path, e)) from None
    try:
        jsonschema.validate(config, org_cli.CONFIG_SCHEMA)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "the top level"
        what = "no form c7n-org accepts matches" if e.validator in ("anyOf", "oneOf") else e.message
        raise Mistake(
            "-c %s: not a c7n-org accounts file (%s at %s); each entry of "
            "`accounts:` has account_id, name, role or profile, regions (see "
            "org/accounts.example.yml of `c7n-imds pack copy DIR`)" % (path, what, where)
        ) from None
    config["accounts"] = list(org_cli.accounts_iterator(config))
    org_cli.filter_accounts(config, params["tags"], params["accounts"], params["not_accounts"])
    return [a for a in config["accounts"] if a.get("provider") == "aws"]


def reach_accounts(org_cli, accounts, regions):
    """One line per account-region the run could not reach; [] when all answer. The
    caller's own credentials are tried first: when they cannot reach STS at all, that
    is the one line, not one per account."""
    from c7n_imds.access_check import Unreachable, caller_identity

    places = [
        (a, r)
        for a in accounts
        for r in (
            [
                x
                for x in org_cli.comma_expand(regions or a.get("regions") or ORG_DEFAULT_REGIONS)
                if x != "all"
            ]
            or ["us-east-1"]
        )
    ]
    if not places:
        return []
    if any(a.get("role") for a in accounts):
        try:
            caller_identity(None, places[0][1])
        except Unreachable as problem:
            return [str(problem)]

    def check(place):
        account, region = place
        try:
            caller_identity(
                account.get("profile"),
                region,
                accounts_file=True,
                session=account_session(account, region),
            )
        except Unreachable as problem:
            return (
                "account %s (%s) %s: %s; fix it, or leave the account out with "
                "--not-accounts %s"
                % (account["name"], account.get("account_id"), region, problem, account["name"])
            )
        return None

    with ThreadPoolExecutor(max_workers=PRECHECK_WORKERS) as pool:
        return [line for line in pool.map(check, places) if line]


def account_session(account, region):
    """A boto3 session as c7n-org gets one for the account (its role chain assumed with
    short timeouts), or None for a profile account (caller_identity opens it)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from c7n_imds.access_check import PROBE_CONFIG, Unreachable

    roles = account.get("role")
    if not roles:
        return None
    session = boto3.Session()
    for role in [roles] if isinstance(roles, str) else roles:
        extra = {"ExternalId": account["external_id"]} if account.get("external_id") else {}
        try:
            credentials = session.client(
                "sts", region_name=region, config=PROBE_CONFIG
            ).assume_role(RoleArn=role, RoleSessionName="c7n-imds-check", **extra)["Credentials"]
        except ClientError as error:
            raise Unreachable(
                "cannot assume %s (%s: %s)"
                % (
                    role,
                    error.response["Error"].get("Code"),
                    error.response["Error"].get("Message"),
                )
            ) from None
        except BotoCoreError as error:
            raise Unreachable("cannot assume %s (%s)" % (role, error)) from None
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
    return session
