"""`c7n-imds summary OUT...`: load, aggregate, render.

Exit codes: 0 when every scan of the latest run was read; 3 when any scan failed,
could not be read, or - with an accounts file - did not happen (each is named on
standard error and in the output); 2 for bad input.
"""

import argparse
import itertools
import os
import shutil
import sys

import yaml

from c7n_imds.model import escape
from c7n_imds_report.load import fetch_s3
from c7n_imds_report.stream import summarize_units, tasks

SCAN_PROBLEMS = 3
FORMAT_ALIASES = {"md": "markdown"}  # what people type for Markdown


class InputError(Exception):
    """Bad input, named with what to do; nothing is written."""


def expected_places(path, regions):
    """{(account id, region): name} from a c7n-org accounts file: each account's
    ``regions``, or those given with -r (as c7n-org chooses)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise InputError("-c %s: %s" % (path, e.strerror or e)) from None
    except yaml.YAMLError as e:
        raise InputError("-c %s: not YAML (%s)" % (path, str(e).splitlines()[0])) from None
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(accounts, list) or not all(
        isinstance(a, dict) and a.get("account_id") for a in accounts
    ):
        raise InputError(
            "-c %s: not a c7n-org accounts file (a list `accounts` of "
            "entries with account_id, name, regions)" % path
        )
    places = {}
    for account in accounts:
        for region in regions or account.get("regions") or ():
            places[(str(account["account_id"]), region)] = account.get("name")
    if not places:
        raise InputError("-c %s: no regions: give them in the file or with -r" % path)
    return places


def tree_units(index, location, scratch):
    """The units (one account-region's outputs each, c7n_imds_report.stream) of a tree,
    read as the summary goes; InputError at once when the tree holds no output."""
    root = location
    if location.startswith("s3://"):
        try:
            root = str(fetch_s3(location))
        except Exception as e:  # botocore's errors: the bucket, the credentials
            raise InputError("%s: cannot read (%s)" % (location, e)) from None
        scratch.append(root)
    elif not os.path.isdir(location):
        raise InputError("no custodian output (metadata.json) under %s" % location)
    units = tasks(root)
    first = next(units, None)
    if first is None:
        raise InputError("no custodian output (metadata.json) under %s" % location)
    # the tree is named as the user named it, not by a temporary copy
    name = location.split("?")[0] if location.startswith("s3://") else location

    def read():  # read by c7n_imds_report.stream's workers
        for task in itertools.chain([first], units):
            yield index, name, task, root

    return read()


def main(argv=None):
    from c7n_imds_report.render import RENDERERS, write

    parser = argparse.ArgumentParser(
        prog="c7n-imds summary",
        description="IMDSv2 compliance per account, region and "
        "control, from the output trees of `c7n-imds run -s` / `c7n-imds org run -s` "
        "(folders or s3://bucket/prefix). Several trees, or dated runs in one, give a "
        "trend. Exit 3 when a scan failed, could not be read or did not happen.",
    )
    parser.add_argument("folders", nargs="+", metavar="OUTPUT_DIR|s3://BUCKET/PREFIX")
    parser.add_argument(
        "--format",
        choices=sorted(RENDERERS) + sorted(FORMAT_ALIASES),
        default="table",
        metavar="{%s}" % ",".join(sorted(RENDERERS)),
        help="md is markdown",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    parser.add_argument(
        "-c",
        "--config",
        metavar="ACCOUNTS.yml",
        help="c7n-org's accounts file: the account-regions expected",
    )
    parser.add_argument(
        "-r",
        "--region",
        action="append",
        default=[],
        help="expected regions (with -c; default: each account's)",
    )
    options = parser.parse_args(argv)
    options.format = FORMAT_ALIASES.get(options.format, options.format)
    folder_of_output = os.path.dirname(os.path.abspath(options.output or "."))
    scratch = []
    try:
        if options.output and not os.path.isdir(folder_of_output):
            raise InputError(
                "-o %s: folder %s does not exist; create it first"
                % (options.output, folder_of_output)
            )
        expected = expected_places(options.config, options.region) if options.config else None
        trees = [tree_units(i, folder, scratch) for i, folder in enumerate(options.folders)]
        if options.output:
            try:
                stream = open(options.output, "w", encoding="utf-8", newline="")
            except OSError as e:
                raise InputError(
                    "-o %s: cannot write (%s); choose a file you can write"
                    % (options.output, e.strerror or e)
                ) from None
        else:
            stream = sys.stdout
        try:
            summary = summarize_units(itertools.chain(*trees), expected)
            write(summary, options.format, stream)
        finally:
            if stream is not sys.stdout:
                stream.close()
    except InputError as e:
        print("c7n-imds summary: %s" % escape.controls(e), file=sys.stderr)
        return 2
    finally:
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
    for problem in summary["Problems"]:
        # one line per problem: names, folder names and reasons came from the accounts
        print(
            "c7n-imds summary: %s"
            % escape.controls(
                "%s %s%s %s%s"
                % (
                    problem["State"],
                    problem["Account"],
                    " (%s)" % problem["AccountName"] if problem["AccountName"] else "",
                    problem["Region"],
                    " policy %s" % problem["Policy"] if problem["Policy"] else "",
                )
                + (": %s" % problem["Reason"] if problem["Reason"] else "")
            ),
            file=sys.stderr,
        )
    return SCAN_PROBLEMS if summary["Problems"] else 0
