"""`c7n-imds`: Cloud Custodian and c7n-org with the c7n-imds plugin loaded.

Custodian does not load third-party plugins by itself, so every way of running must
import ``c7n_imds`` first. This command does that, then hands over:

    c7n-imds run|validate|schema|report|logs|version|...   -> custodian
    c7n-imds org run|report|...                           -> c7n-org
    c7n-imds plan [custodian run options] POLICY...       -> preview, changes nothing
    c7n-imds doctor [-r REGION] POLICY...                 -> prerequisites, checked read-only
    c7n-imds pack list|path|copy DIR                      -> the policy pack and examples
    c7n-imds demo                                         -> the embedded demo estate
    c7n-imds templates-dir                                -> c7n-mailer templates (-t)
    c7n-imds summary OUTPUT_DIR...                        -> org-wide compliance report
    c7n-imds iam-policy POLICY.yml...                     -> least-privilege IAM policy
"""

import contextlib
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile

import c7n_imds  # noqa: F401  (registers our filters and actions)
from c7n_imds.aws import (
    AWS_ERRORS,
    describe_error,
    note_custodian_unanswered_calls,
    patient_command_retries,
    stopped_policy_line,
)
from c7n_imds.log_records import escape_log_records
from c7n_imds.model import escape
from c7n_imds.names import PLAN_FILE
from c7n_imds.pack import MAIL_TEMPLATES_DIR

log = logging.getLogger("custodian.c7n_imds.cli")
# Custodian's resource cache holds every listed resource - a launch configuration's user
# data included; c7n-org keeps one such file per account and region in a folder.
CACHE_FILE = "~/.cache/cloud-custodian.cache"
CACHE_FOLDER = "~/.cache/c7n-org"


def main(argv=None):
    try:
        return dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # the reader went away (`| head`): nothing more to say, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def dispatch(argv):
    command = argv[0] if argv else None
    if command == "org":
        from c7n_imds.org import main as org_main

        if argv[1:2] == ["run"]:
            guard_command(cache_folder=option_value(argv[2:], None, "--cache-path"))
        return org_main(argv[1:])
    if command == "schema" and len(argv) == 2:
        # ours: the docstring and one screen of options (docs/options.md has them all)
        from c7n_imds import help

        element = help.find(argv[1])
        if element is not None:
            print(help.brief(element))
            return 0
    if command == "plan":
        guard_command(option_value(argv[1:], "-f", "--cache"))
        return plan_main(argv[1:])
    if command in ("doctor", "iam-policy"):
        # their policy files first, with the line `validate` would give
        problem = policy_file_problem(positional_files(argv[1:]), argv[1:])
        if problem:
            return say(command, problem)
    if command == "doctor":
        from c7n_imds.doctor import main as doctor_main

        return doctor_main(argv[1:])
    if command == "pack":
        from c7n_imds.pack import main as pack_main

        return pack_main(argv[1:])
    if command == "summary":
        try:  # the report is its own package (c7n_imds_report), never in the plugin
            from c7n_imds_report.cli import main as summary_main
        except ImportError:
            sys.exit("c7n-imds summary: not installed: pip install 'c7n-imds[report]'")
        return summary_main(argv[1:])
    if command == "iam-policy":
        from c7n_imds.iam import main as iam_main

        return iam_main(argv[1:])
    if command == "templates-dir":
        print(MAIL_TEMPLATES_DIR)
        return 0
    if command == "demo":
        # the demo is its own package, with moto from the demo extra; never in the plugin
        if not all(importlib.util.find_spec(m) for m in ("c7n_imds_demo", "moto")):
            sys.exit("c7n-imds demo: not installed: pip install 'c7n-imds[demo]'")
        from c7n_imds_demo.demo import main as demo_main

        return demo_main(argv[1:])
    if command in ("--version", "version"):
        print(versions())
        if command == "--version":
            return 0
    if command in (None, "-h", "--help"):
        # custodian's help follows; our own commands are listed first
        print(__doc__.split("\n\n", 1)[1], file=sys.stderr)
    if command == "validate":
        checked = validate_each(argv[1:])
        if checked is not None:
            return checked
    if command in ("validate", "run", "report"):
        problem = before_custodian(command, argv[1:])
        if problem:
            return say(command, problem)
    if command == "run":
        guard_command(option_value(argv[1:], "-f", "--cache"))
        patient_command_retries()
        note_custodian_unanswered_calls()
        for name in ("custodian.commands", "custodian.output"):
            logging.getLogger(name).addFilter(OneLineAwsErrors())
    from c7n.cli import main as custodian_main

    return custodian_main(argv)


def say(command, problem):
    """A user's mistake: one line on standard error (custodian's own report after it
    with -v), exit 2."""
    line, detail = problem if isinstance(problem, tuple) else (problem, "")
    print("c7n-imds %s: %s" % (command, escape.controls(line)), file=sys.stderr)
    if detail:
        print(detail, file=sys.stderr)
    return 2


def custodian_options(command, args):
    """custodian's parse of a run/validate/report command line, or None where argparse
    itself will answer (its usage line, exit 2)."""
    from c7n.cli import setup_parser

    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
            return setup_parser().parse_args([command] + list(args))
    except SystemExit:
        return None


def verbose(args):
    return any(a in ("-v", "--verbose") or re.fullmatch(r"-v+", a) for a in args)


def policy_file_problem(paths, args):
    """The policy files checked as `c7n-imds validate` checks them: None, or (line,
    custodian's report when -v asks for it)."""
    from c7n_imds.mistakes import Mistake, check_policy_files

    try:
        check_policy_files(paths)
    except Mistake as mistake:
        return str(mistake), mistake.detail if verbose(args) else ""
    return None


def validate_each(args):
    """`c7n-imds validate FILE...`: every file checked as a whole and on its own, one
    line per file ("valid", or its first problem; custodian's report with -v), and
    policy names unique across the files; exit 2 when any file is invalid. None where
    the command line is not one of files (custodian answers)."""
    from c7n_imds.mistakes import Mistake, check_policy_files

    options = custodian_options("validate", args)
    if options is None or not getattr(options, "configs", None):
        return None
    invalid, names = 0, {}
    for path in options.configs:
        try:
            [data] = check_policy_files([path])
            for policy in data["policies"]:
                if policy["name"] in names:
                    raise Mistake(
                        "%s: policy %s: the name is also used in %s; policy names must "
                        "be unique" % (path, policy["name"], names[policy["name"]])
                    )
                names[policy["name"]] = path
        except Mistake as mistake:
            invalid += 1
            say("validate", (str(mistake), mistake.detail if verbose(args) else ""))
            continue
        print("c7n-imds validate: %s: valid" % escape.controls(path), file=sys.stderr)
    return 2 if invalid else 0


def positional_files(args):
    """The POLICY.yml arguments of doctor and iam-policy (their options take values)."""
    files, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = "=" not in arg and arg not in ("--deploy", "--discover", "-h", "--help")
        else:
            files.append(arg)
    return files


def before_custodian(command, args, remediates=True):
    """Every check of a command line before custodian (or anything AWS) runs: policy
    files, regions, the output folder, the way to AWS, an endpoint without AWS's
    behaviour. None when all is well, else what `say` prints."""
    from c7n_imds.mistakes import Mistake, check_output_dir, check_regions

    options = custodian_options(command, args)
    if options is None or not getattr(options, "configs", None):
        return None
    problem = policy_file_problem(options.configs, args)
    if problem or command == "validate":
        return problem
    output_dir = getattr(options, "output_dir", None)
    try:
        check_regions(getattr(options, "regions", None) or ())
        if command == "run":
            check_output_dir(output_dir)
    except Mistake as mistake:
        return str(mistake)
    if command == "report":
        local_report(output_dir)
        return None
    problem = check_access(options)
    if problem or not remediates:
        return problem
    return stock_moto(options.configs)


def local_report(output_dir):
    """`report` on a local output folder reads files only, but custodian asks STS for the
    account id first - a minute of retries when the endpoint is down. The id names
    nothing in a local report, so it is not asked for (unless the path uses it)."""
    if not output_dir or "://" in output_dir or "{account_id}" in output_dir:
        return
    import c7n.resources.aws as aws_provider

    def no_account_id(options):
        options.account_id = getattr(options, "account_id", None)

    aws_provider._default_account_id = no_account_id


def guard_command(cache_file=None, cache_folder=None):
    """What a command that reads an account sets up before custodian runs (never at
    import: importing c7n_imds only registers): log records that account-made text
    cannot forge, and files no other user can read."""
    escape_log_records()
    private_files([CACHE_FILE, cache_file], [CACHE_FOLDER, cache_folder])


def private_files(files=(), folders=()):
    """Custodian's cache (a sqlite file of pickles: every resource listed, launch
    configurations' user data included) must not be readable by other users: the
    process creates files for its owner only (umask 077, which also covers the output
    folder and c7n-org's per-account caches), and a cache an earlier run left readable
    is made private, as are c7n-org's cache folders and the files in them."""
    os.umask(0o077)
    paths = [p for p in files if p and p != "memory"]
    for folder in (os.path.expanduser(f) for f in folders if f):
        if os.path.isdir(folder):
            paths += [folder] + [os.path.join(folder, n) for n in os.listdir(folder)]
    for path in {os.path.expanduser(p) for p in paths}:
        try:
            mode = os.stat(path).st_mode & 0o777
            if mode & 0o077:
                os.chmod(path, mode & 0o700)
        except OSError:
            pass  # missing, or not ours to change: custodian says so if it matters


def option_value(args, short, long):
    """The value of a command-line option (``-f X``, ``--cache X``, ``--cache=X``)."""
    for i, arg in enumerate(args):
        if arg in (short, long) and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
    return None


class OneLineAwsErrors(logging.Filter):
    """Custodian logs a policy stopped by an exception twice, each with the traceback
    (its output context, which also writes custodian-run.log, then the run command).
    When AWS itself failed after every retry, the traceback says nothing a user can act
    on: the run command's line becomes one that names the policy, the API, the error and
    what was not scanned, and the context's line keeps only the error. A remediation
    whose groups failed (RemediationError) ends with one block naming each failed group
    once: the context's line says only how many, the run command's line lists them."""

    def filter(self, record):
        from c7n_imds.actions.base import RemediationError

        error = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if not isinstance(error, AWS_ERRORS + (RemediationError,)) or not message.startswith(
            "Error while executing policy"
        ):
            return True
        name = message[len("Error while executing policy") :].strip().split(",")[0]
        if isinstance(error, RemediationError):
            # each line escaped on its own: a group name cannot start a forged line
            record.msg = "\n".join(escape.controls(line) for line in str(error).splitlines())
            if name:
                record.msg = "policy %s: %s" % (escape.controls(name), record.msg)
            else:
                record.msg = "policy failed for %d group(s), named when the run ends" % (
                    len(error.failures)
                )
        elif name:
            record.msg = escape.controls(stopped_policy_line(name, error))
        else:
            record.msg = "Error while executing policy: %s" % escape.controls(describe_error(error))
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


def check_access(options):
    """One line when the credentials cannot reach AWS at all, else None. Custodian would
    answer with a flood of tracebacks (no credentials) or minutes of retries (no route),
    once per policy and region."""
    from c7n_imds.access_check import Unreachable, caller_identity

    try:
        caller_identity(options.profile, (options.regions or [None])[0])
    except Unreachable as problem:
        return str(problem)
    return None


def stock_moto(configs):
    """One line when the endpoint URL is a moto server without the AWS behaviour
    c7n-imds relies on (c7n_imds_testing restores it, and answers SEMANTICS_PATH) and
    the policies remediate: a stock moto stores launch data AWS would refuse and lacks
    DeleteLaunchTemplateVersions, so every change would fail its read-back and its
    withdrawal would fail too. Real AWS is never asked (no endpoint URL set)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_EC2") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint or not remediating_actions(configs):
        return None
    import urllib.error
    import urllib.request

    from c7n_imds.names import SEMANTICS_PATH

    def answers(path):
        try:
            with urllib.request.urlopen(endpoint.rstrip("/") + path, timeout=3) as reply:
                return reply.status == 200, reply.read(4096)
        except (urllib.error.URLError, OSError, ValueError):
            return False, b""

    if answers(SEMANTICS_PATH)[0]:
        return None
    ok, body = answers("/moto-api/")
    if not ok or b"moto" not in body.lower():
        return None  # not moto: a proxy or a VPC endpoint, judged by AWS's answers
    return (
        "%s is a stock moto server, where remediation is refused: moto stores "
        "launch template data AWS would refuse and lacks DeleteLaunchTemplateVersions, "
        "so no change can be proven or withdrawn (actions: %s); run the pack against "
        "`c7n-imds demo --serve`, which restores AWS's behaviour"
        % (endpoint, ", ".join(remediating_actions(configs)))
    )


def remediating_actions(configs):
    """The c7n-imds actions (all of them change something) the files' policies use."""
    from c7n.provider import get_resource_class
    from c7n.utils import load_file

    found = []
    for path in configs:
        for policy in (load_file(path) or {}).get("policies") or ():
            try:
                registry = get_resource_class(policy["resource"]).action_registry
            except (KeyError, ValueError):
                continue
            for action in policy.get("actions") or ():
                name = action if isinstance(action, str) else action.get("type")
                cls = registry.get(name)
                if cls is not None and cls.__module__.startswith("c7n_imds.") and name not in found:
                    found.append(name)
    return found


def versions():
    """c7n-imds's version beside the Cloud Custodian family's it runs with."""
    from importlib.metadata import PackageNotFoundError, version

    from c7n.version import version as custodian

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return "c7n-imds %s (custodian %s, c7n-org %s, c7n-mailer %s)" % (
        c7n_imds.__version__,
        custodian,
        installed("c7n-org"),
        installed("c7n-mailer"),
    )


def plan_main(args):
    """Run the policies' filters (as ``custodian run --dryrun`` does) and print what our
    remediation actions would create for each matched group, without changing anything.
    Takes the same options as ``run``; without ``-s`` custodian's output (its run log
    included) goes to a temporary folder, removed afterwards."""
    if any(a in ("-s", "--output-dir") or a.startswith("--output-dir=") for a in args):
        return _plan(args)
    with tempfile.TemporaryDirectory(prefix="c7n-imds-plan-") as scratch:
        return _plan(["-s", scratch] + args)


def _plan(args):
    from c7n.cli import _setup_logger, setup_parser
    from c7n.config import Config

    problem = before_custodian("run", args)
    if problem:
        return say("plan", problem)
    options = setup_parser().parse_args(["run", "--dryrun"] + args)
    _setup_logger(options)
    _plan_command()(Config.empty(**vars(options)))
    return 0


def _plan_command():
    from c7n.commands import policy_command

    @policy_command
    def plan(options, policies):
        for policy in policies:
            resources = policy() or []
            for action in policy.resource_manager.actions:
                if not hasattr(action, "preview"):
                    print(no_preview(policy, action, resources))
                    continue
                preview = action.preview(resources) if resources else {"Failures": {}}
                preview.update(Policy=policy.name, Region=policy.options.region, Action=action.type)
                print(format_preview(preview))
                if policy.ctx.output and hasattr(policy.ctx.output, "write_file"):
                    policy.ctx.output.write_file(
                        PLAN_FILE, json.dumps(preview, indent=2, default=str)
                    )

    return plan


NO_PREVIEW = {}  # action type -> what it does, for actions without a preview


def no_preview(policy, action, resources):
    """An action without a preview of its own (custodian's) still says what
    it would act on, so an empty plan never reads as "no changes" by mistake."""
    id_key = policy.resource_manager.resource_type.id
    names = [str(r.get(id_key)) for r in resources]
    shown = ", ".join(names[:20]) + (" and %d more" % (len(names) - 20) if len(names) > 20 else "")
    return escape.controls(
        "policy %s (%s) action %s: no preview%s; it would act on %s"
        % (
            policy.name,
            policy.options.region or "default",
            action.type,
            " - " + NO_PREVIEW[action.type] if action.type in NO_PREVIEW else " of its own",
            "%d %s(s): %s" % (len(names), policy.resource_type, shown)
            if names
            else "no %s" % policy.resource_type,
        )
    )


NO_LAUNCH_CHANGE = (
    "none beyond metadata options (image, instance types, network, storage, "
    "instance profile, user data, key pair and group size unchanged)"
)


def format_preview(preview):
    """A plan as text a person reads top to bottom. User data is already redacted. Each
    line is one fact, its control characters written out: a group, template or stack
    name, a tag value or an AWS error in it cannot start a line (a forged plan entry)."""
    templates, versions = preview.get("Templates", []), preview.get("Versions", [])
    copies, owners = preview.get("Copies", []), preview.get("OwnerChanges", [])
    made = (
        ["%d template(s)" % len(templates), "%d version(s)" % len(versions)]
        + (["%d copy(ies)" % len(copies)] if copies else [])
        + (["%d owner change(s)" % len(owners)] if owners else [])
        + (["%d revert(s)" % len(preview["Reverts"])] if preview.get("Reverts") else [])
    )
    lines = [
        "policy %s (%s) action %s: %s, %d failure(s)"
        % (
            preview["Policy"],
            preview["Region"] or "default",
            preview["Action"],
            ", ".join(made),
            len(preview["Failures"]),
        )
    ]
    for copy in copies:
        lines.append(
            "  launch configuration %r -> copy %r"
            % (copy["LaunchConfigurationName"], copy["CopyLaunchConfigurationName"])
        )
        lines.append("    groups: %s" % ", ".join(copy["Groups"]))
        lines.append("    MetadataOptions: %s" % json.dumps(copy["MetadataOptions"]))
    for template in templates:
        lines.append(
            "  launch configuration %r -> launch template %s"
            % (template["LaunchConfigurationName"], template["LaunchTemplateName"])
        )
        lines.append("    groups: %s" % ", ".join(template["Groups"]))
        for key, value in sorted(template["LaunchTemplateData"].items()):
            lines.append("    %s: %s" % (key, json.dumps(value, default=str)))
        for note in template.get("Notes") or ():
            lines.append("    note: %s" % note)
    for version in versions:
        lines.append(
            "  launch template %s (%s) version %s -> new version%s"
            % (
                version["LaunchTemplateName"],
                version["LaunchTemplateId"],
                version["SourceVersion"],
                ", made default" if version["MakeDefault"] else "",
            )
        )
        lines.append("    groups: %s" % ", ".join(version["Groups"]))
        lines.append("    MetadataOptions: %s" % json.dumps(version["MetadataOptions"]))
    for change in owners:
        # {"Owner": what is changed, "Change": what happens to it, "Groups": [...],
        #  "Notes": [...]}: the owner actions' preview (Beanstalk, EKS, CloudFormation)
        lines.append("  %s -> %s" % (change["Owner"], change["Change"]))
        lines.append("    groups: %s" % ", ".join(change["Groups"]))
        for note in change.get("Notes") or ():
            lines.append("    note: %s" % note)
    for change in preview.get("GroupChanges") or ():
        # the contract's plan of each group: every launch-affecting difference
        lines.append(
            "  group %s: %s -> %s"
            % (change["AutoScalingGroupName"], change["Before"], change["After"])
        )
        lines.append("    metadata options: %s" % change["MetadataOptions"])
        lines.append(
            "    launch changes: %s"
            % ("; ".join(c["Line"] for c in change["LaunchChanges"]) or NO_LAUNCH_CHANGE)
        )
        lines.append("    running instances: %s" % change["Replacement"])
    for revert in preview.get("Reverts") or ():
        # revert-imds-remediation: where each group goes back to, and whether its
        # record is proven (user data only as size and the start of its SHA-256)
        lines.append(
            "  revert %s (record %s): %s"
            % (revert["AutoScalingGroupName"], revert["Record"], "; ".join(revert["Changes"]))
        )
        for launch in revert["Launches"]:
            user_data = launch["UserData"]
            lines.append(
                "    -> %s: image %s, instance profile %s, user data %s"
                % (
                    launch["Target"],
                    launch["ImageId"],
                    launch["IamInstanceProfile"] or "none",
                    "%d bytes, sha256 %s..." % (user_data["Bytes"], user_data["Sha256"])
                    if user_data
                    else "none",
                )
            )
        lines.append("    provenance: %s" % revert["Provenance"])
    for skipped in preview.get("Skipped") or ():
        lines.append("  left alone %s: %s" % (skipped["AutoScalingGroupName"], skipped["Skipped"]))
    for group, reason in sorted(preview["Failures"].items()):
        lines.append("  cannot remediate %s: %s" % (group, reason))
    return "\n".join(escape.controls(line) for line in lines)


if __name__ == "__main__":
    sys.exit(main())
