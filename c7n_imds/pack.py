"""`c7n-imds pack list|path|copy DIR`: the policy pack and its example files.

The repository's top-level ``policies/`` is the one source. A built wheel carries a copy
of it as ``c7n_imds/pack/`` (setup.py's build step puts it there), so a user who
installed the wheel finds the same files; a source checkout or an editable
install reads ``policies/`` itself.
"""

import argparse
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED = PACKAGE_DIR / "pack"
CHECKOUT = PACKAGE_DIR.parent / "policies"
SUFFIXES = (".yml", ".yaml")
# c7n-mailer's templates for our notices (`c7n-imds templates-dir`, doctor).
MAIL_TEMPLATES_DIR = str(PACKAGE_DIR / "mail")


class PackMissing(Exception):
    """Neither an installed nor a checked-out pack: a broken installation."""


def pack_dir():
    """The folder holding the policy pack this c7n-imds runs with."""
    for candidate in (INSTALLED, CHECKOUT):
        if (candidate / "remediate.yml").is_file():
            return candidate
    raise PackMissing(
        "the policy pack is missing (looked in %s and %s): reinstall c7n-imds"
        % (INSTALLED, CHECKOUT)
    )


def pack_files(root=None):
    """Every file of the pack, relative to its folder, in a stable order."""
    root = root or pack_dir()
    return sorted(
        p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.suffix in SUFFIXES
    )


ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.")


def summary_line(path):
    """A pack file's first sentence, from the comment it opens with (each file opens
    by saying what it does): whole, however many comment lines it spans, on one line -
    a description cut mid-sentence reads as a different one."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            if line.strip() or words:
                break
            continue
        text = line.lstrip("#").strip()
        if not text or (words and text.startswith("- ")):
            break  # the opening paragraph ends at a blank comment line or a list
        for word in text.split():
            words.append(word)
            if word.endswith((".", "!", "?")) and word.lower() not in ABBREVIATIONS:
                return " ".join(words)
    return " ".join(words).rstrip(":")


def copy_pack(target, force=False):
    """Copy the pack into ``target``; refuse before copying anything if a file there
    would be overwritten (a user's edited policies are theirs)."""
    root, target = pack_dir(), Path(target)
    files = pack_files(root)
    clashes = [str(target / f) for f in files if (target / f).exists()]
    if clashes and not force:
        raise FileExistsError(
            "%s already exists (and %d more): choose an empty folder or pass --force"
            % (clashes[0], len(clashes) - 1)
        )
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target / relative)
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(prog="c7n-imds pack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="each file of the pack and what it does")
    commands.add_parser("path", help="the folder holding the installed pack")
    copy = commands.add_parser("copy", help="copy the pack into DIR, to edit and run")
    copy.add_argument("dir", metavar="DIR")
    copy.add_argument("--force", action="store_true", help="overwrite existing files")
    options = parser.parse_args(argv)
    try:
        if options.command == "path":
            print(pack_dir())
        elif options.command == "list":
            root = pack_dir()
            files = pack_files(root)
            width = max(len(str(f)) for f in files)
            for relative in files:
                print("%-*s  %s" % (width, relative, summary_line(root / relative)))
        else:
            files = copy_pack(options.dir, options.force)
            print("copied %d files to %s" % (len(files), Path(options.dir).resolve()))
    except (PackMissing, OSError) as error:
        print("c7n-imds pack: %s" % error, file=sys.stderr)
        return 2
    return 0
