"""`c7n-imds summary OUT...`: load, aggregate, render.

Exit codes: 0 when every scan of the latest run was read; 3 when any scan failed,
could not be read, or - with an accounts file - did not happen (each is named on
standard error and in the output); 2 for bad input.
"""
import argparse
import os
import shutil
import sys

import yaml

from c7n_imds.model import escape
from c7n_imds_report.aggregate import summarize
from c7n_imds_report.load import fetch_s3, load_folder

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
            isinstance(a, dict) and a.get("account_id") for a in accounts):
        raise InputError("-c %s: not a c7n-org accounts file (a list `accounts` of "
                         "entries with account_id, name, regions)" % path)
    places = {}
    for account in accounts:
        for region in regions or account.get("regions") or ():
            places[(str(account["account_id"]), region)] = account.get("name")
    if not places:
        raise InputError("-c %s: no regions: give them in the file or with -r" % path)
    return places


def load_tree(location, scratch):
    if location.startswith("s3://"):
        try:
            folder = fetch_s3(location)
        except Exception as e:  # botocore's errors: the bucket, the credentials
            raise InputError("%s: cannot read (%s)" % (location, e)) from None
        scratch.append(folder)
        # the tree is named as the user named it, not by its temporary copy
        return [dict(o, Folder=o["Folder"].replace(str(folder), location.split("?")[0], 1))
                for o in load_folder(folder)]
    return load_folder(location) if os.path.isdir(location) else []


def main(argv=None):
    from c7n_imds_report.render import RENDERERS

    parser = argparse.ArgumentParser(
        prog="c7n-imds summary", description="IMDSv2 compliance per account, region and "
        "control, from the output trees of `c7n-imds run -s` / `c7n-imds org run -s` "
        "(folders or s3://bucket/prefix). Several trees, or dated runs in one, give a "
        "trend. Exit 3 when a scan failed, could not be read or did not happen.")
    parser.add_argument("folders", nargs="+", metavar="OUTPUT_DIR|s3://BUCKET/PREFIX")
    parser.add_argument("--format", choices=sorted(RENDERERS) + sorted(FORMAT_ALIASES),
                        default="table", metavar="{%s}" % ",".join(sorted(RENDERERS)),
                        help="md is markdown")
    parser.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    parser.add_argument("-c", "--config", metavar="ACCOUNTS.yml",
                        help="c7n-org's accounts file: the account-regions expected")
    parser.add_argument("-r", "--region", action="append", default=[],
                        help="expected regions (with -c; default: each account's)")
    options = parser.parse_args(argv)
    options.format = FORMAT_ALIASES.get(options.format, options.format)
    folder_of_output = os.path.dirname(os.path.abspath(options.output or "."))
    scratch = []
    try:
        if options.output and not os.path.isdir(folder_of_output):
            raise InputError("-o %s: folder %s does not exist; create it first" % (
                options.output, folder_of_output))
        expected = expected_places(options.config, options.region) if options.config \
            else None
        outputs = []
        for folder in options.folders:
            loaded = load_tree(folder, scratch)
            if not loaded:
                raise InputError("no custodian output (metadata.json) under %s" % folder)
            outputs.append(loaded)
    except InputError as e:
        print("c7n-imds summary: %s" % escape.controls(e), file=sys.stderr)
        return 2
    finally:
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
    summary = summarize(outputs, expected)
    text = RENDERERS[options.format](summary)
    if options.output:
        try:
            with open(options.output, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as e:
            print("c7n-imds summary: -o %s: cannot write (%s); choose a file you can "
                  "write" % (escape.controls(options.output), e.strerror or e),
                  file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    for problem in summary["Problems"]:
        # one line per problem: names, folder names and reasons came from the accounts
        print("c7n-imds summary: %s" % escape.controls("%s %s%s %s%s" % (
            problem["State"], problem["Account"], " (%s)" % problem["AccountName"]
            if problem["AccountName"] else "", problem["Region"],
            " policy %s" % problem["Policy"] if problem["Policy"] else "") + (
            ": %s" % problem["Reason"] if problem["Reason"] else "")), file=sys.stderr)
    return SCAN_PROBLEMS if summary["Problems"] else 0
