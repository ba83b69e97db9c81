"""`c7n-imds summary OUT...`: load, aggregate, render."""
import argparse
import os
import sys

from c7n_imds.summary.aggregate import summarize
from c7n_imds.summary.load import load_folder


def main(argv=None):
    from c7n_imds.summary.render import RENDERERS

    parser = argparse.ArgumentParser(
        prog="c7n-imds summary", description="IMDSv2 compliance per account, region and "
        "control, from the output folders of `c7n-imds run -s` / `c7n-imds org run -s`. "
        "Several folders (or runs in one folder) give a trend.")
    parser.add_argument("folders", nargs="+", metavar="OUTPUT_DIR")
    parser.add_argument("--format", choices=sorted(RENDERERS), default="table")
    parser.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    options = parser.parse_args(argv)
    folder_of_output = os.path.dirname(os.path.abspath(options.output or "."))
    if options.output and not os.path.isdir(folder_of_output):
        print("c7n-imds summary: -o %s: folder %s does not exist; create it first" % (
            options.output, folder_of_output), file=sys.stderr)
        return 2
    outputs = []
    for folder in options.folders:
        loaded = load_folder(folder) if os.path.isdir(folder) else []
        if not loaded:
            print("c7n-imds summary: no custodian output (metadata.json) under %s" % folder,
                  file=sys.stderr)
            return 2
        outputs.append(loaded)
    text = RENDERERS[options.format](summarize(outputs))
    if options.output:
        with open(options.output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
