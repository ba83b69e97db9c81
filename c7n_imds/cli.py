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
import json
import logging
import os
import sys
import tempfile

import c7n_imds  # noqa: F401  (registers our filters and actions)
from c7n_imds.aws import (
    AWS_ERRORS,
    describe_error,
    patient_command_retries,
    stopped_policy_line,
)
from c7n_imds.log_records import escape_log_records
from c7n_imds.model import escape
from c7n_imds.pack import TEMPLATES_DIR

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
    if command == "plan":
        guard_command(option_value(argv[1:], "-f", "--cache"))
        return plan_main(argv[1:])
    if command == "doctor":
        from c7n_imds.doctor import main as doctor_main
        return doctor_main(argv[1:])
    if command == "pack":
        from c7n_imds.pack import main as pack_main
        return pack_main(argv[1:])
    if command == "summary":
        from c7n_imds.summary.cli import main as summary_main
        return summary_main(argv[1:])
    if command == "iam-policy":
        from c7n_imds.iam import main as iam_main
        return iam_main(argv[1:])
    if command == "templates-dir":
        print(TEMPLATES_DIR)
        return 0
    if command == "demo":
        from c7n_imds.demo import main as demo_main
        return demo_main(argv[1:])
    if command in ("--version", "version"):
        print(versions())
        if command == "--version":
            return 0
    if command in (None, "-h", "--help"):
        # custodian's help follows; our own commands are listed first
        print(__doc__.split("\n\n", 1)[1], file=sys.stderr)
    if command == "run":
        problem = unreachable(argv[1:])
        if problem:
            print("c7n-imds run: %s" % problem, file=sys.stderr)
            return 2
        guard_command(option_value(argv[1:], "-f", "--cache"))
        patient_command_retries()
        for name in ("custodian.commands", "custodian.output"):
            logging.getLogger(name).addFilter(OneLineAwsErrors())
    from c7n.cli import main as custodian_main
    return custodian_main(argv)


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
    what was not scanned, and the context's line keeps only the error."""

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if not isinstance(error, AWS_ERRORS) or not message.startswith(
                "Error while executing policy"):
            return True
        name = message[len("Error while executing policy"):].strip()
        if name:
            record.msg = escape.controls(stopped_policy_line(name.split(",")[0], error))
        else:
            record.msg = "Error while executing policy: %s" % escape.controls(
                describe_error(error))
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


def unreachable(run_args):
    """One line when the credentials cannot reach AWS at all, else None. Custodian would
    answer with a flood of tracebacks (no credentials) or minutes of retries (no route),
    once per policy and region."""
    from c7n.cli import setup_parser

    from c7n_imds.reach import Unreachable, caller_identity
    options = setup_parser().parse_args(["run"] + list(run_args))
    if not all(os.path.isfile(path) for path in options.configs):
        return None  # custodian names the missing file better than any reach check
    try:
        caller_identity(options.profile, (options.regions or [None])[0])
    except Unreachable as problem:
        return str(problem)
    return None


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
        c7n_imds.__version__, custodian, installed("c7n-org"), installed("c7n-mailer"))


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

    options = setup_parser().parse_args(["run", "--dryrun"] + args)
    problem = unreachable(args)
    if problem:
        print("c7n-imds plan: %s" % problem, file=sys.stderr)
        return 2
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
                preview.update(Policy=policy.name, Region=policy.options.region,
                               Action=action.type)
                print(format_preview(preview))
                if policy.ctx.output and hasattr(policy.ctx.output, "write_file"):
                    policy.ctx.output.write_file(
                        "imds-plan.json", json.dumps(preview, indent=2, default=str))
    return plan


NO_PREVIEW = {}  # action type -> what it does, for actions without a preview


def no_preview(policy, action, resources):
    """An action without a preview of its own (custodian's) still says what
    it would act on, so an empty plan never reads as "no changes" by mistake."""
    id_key = policy.resource_manager.resource_type.id
    names = [str(r.get(id_key)) for r in resources]
    shown = ", ".join(names[:20]) + (" and %d more" % (len(names) - 20)
                                     if len(names) > 20 else "")
    return escape.controls("policy %s (%s) action %s: no preview%s; it would act on %s" % (
        policy.name, policy.options.region or "default", action.type,
        " - " + NO_PREVIEW[action.type] if action.type in NO_PREVIEW else " of its own",
        "%d %s(s): %s" % (len(names), policy.resource_type, shown) if names
        else "no %s" % policy.resource_type))


NO_LAUNCH_CHANGE = ("none beyond metadata options (image, instance types, network, storage, "
                    "instance profile, user data, key pair and group size unchanged)")


def format_preview(preview):
    """A plan as text a person reads top to bottom. User data is already redacted. Each
    line is one fact, its control characters written out: a group, template or stack
    name, a tag value or an AWS error in it cannot start a line (a forged plan entry)."""
    templates, versions = preview.get("Templates", []), preview.get("Versions", [])
    copies, owners = preview.get("Copies", []), preview.get("OwnerChanges", [])
    made = ["%d template(s)" % len(templates), "%d version(s)" % len(versions)] + (
        ["%d copy(ies)" % len(copies)] if copies else []) + (
        ["%d owner change(s)" % len(owners)] if owners else []) + (
        ["%d revert(s)" % len(preview["Reverts"])] if preview.get("Reverts") else [])
    lines = ["policy %s (%s) action %s: %s, %d failure(s)" % (
        preview["Policy"], preview["Region"] or "default", preview["Action"],
        ", ".join(made), len(preview["Failures"]))]
    for copy in copies:
        lines.append("  launch configuration %r -> copy %r" % (
            copy["LaunchConfigurationName"], copy["CopyLaunchConfigurationName"]))
        lines.append("    groups: %s" % ", ".join(copy["Groups"]))
        lines.append("    MetadataOptions: %s" % json.dumps(copy["MetadataOptions"]))
    for template in templates:
        lines.append("  launch configuration %r -> launch template %s" % (
            template["LaunchConfigurationName"], template["LaunchTemplateName"]))
        lines.append("    groups: %s" % ", ".join(template["Groups"]))
        for key, value in sorted(template["LaunchTemplateData"].items()):
            lines.append("    %s: %s" % (key, json.dumps(value, default=str)))
        for note in template.get("Notes") or ():
            lines.append("    note: %s" % note)
    for version in versions:
        lines.append("  launch template %s (%s) version %s -> new version%s" % (
            version["LaunchTemplateName"], version["LaunchTemplateId"],
            version["SourceVersion"], ", made default" if version["MakeDefault"] else ""))
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
        lines.append("  group %s: %s -> %s" % (
            change["AutoScalingGroupName"], change["Before"], change["After"]))
        lines.append("    metadata options: %s" % change["MetadataOptions"])
        lines.append("    launch changes: %s" % (
            "; ".join(c["Line"] for c in change["LaunchChanges"]) or NO_LAUNCH_CHANGE))
        lines.append("    running instances: %s" % change["Replacement"])
    for revert in preview.get("Reverts") or ():
        # revert-imds-remediation: where each group goes back to, and whether its
        # record is proven (user data only as size and the start of its SHA-256)
        lines.append("  revert %s (record %s): %s" % (
            revert["AutoScalingGroupName"], revert["Record"], "; ".join(revert["Changes"])))
        for launch in revert["Launches"]:
            user_data = launch["UserData"]
            lines.append("    -> %s: image %s, instance profile %s, user data %s" % (
                launch["Target"], launch["ImageId"], launch["IamInstanceProfile"] or "none",
                "%d bytes, sha256 %s..." % (user_data["Bytes"], user_data["Sha256"])
                if user_data else "none"))
        lines.append("    provenance: %s" % revert["Provenance"])
    for skipped in preview.get("Skipped") or ():
        lines.append("  left alone %s: %s" % (
            skipped["AutoScalingGroupName"], skipped["Skipped"]))
    for group, reason in sorted(preview["Failures"].items()):
        lines.append("  cannot remediate %s: %s" % (group, reason))
    return "\n".join(escape.controls(line) for line in lines)


if __name__ == "__main__":
    sys.exit(main())
