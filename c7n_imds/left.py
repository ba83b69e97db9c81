"""The Terraform gate: c7n-left (0.3.39) run over a Terraform tree or a plan, with what
c7n-left alone gets wrong made explicit (docs/terraform.md):

- a resource whose ``count`` / ``for_each`` c7n-left cannot evaluate (``count =
  module.this.enabled ? 1 : 0``, a required variable, a data source) is dropped from its
  graph, so no policy sees it and the run exits 0. Here every ``aws_launch_configuration``,
  ``aws_launch_template``, ``aws_autoscaling_group`` and ``aws_instance`` block of the
  tree (and of its local and downloaded modules) that is missing from the graph is
  reported as not evaluated, and fails the gate unless ``--accept-unevaluated``; so is a
  module call whose source is not on disk (run ``terraform init`` first);
- a ``dynamic`` block followed by another block in the same resource is dropped by
  tfparse (``dynamic "metadata_options"`` then ``lifecycle``: the template reads as
  having no metadata options). The tree is evaluated from a copy in which each resource's
  ``dynamic`` blocks come after its other blocks - the same configuration, the same line
  span per resource;
- c7n-left reads no plan: ``--plan`` takes ``terraform show -json`` output and evaluates
  its planned values (counts, conditionals and dynamic blocks resolved by Terraform).

Usage: python -m c7n_imds.left -p POLICY_DIR (-d TERRAFORM_DIR | --plan PLAN.json)
[--accept-unevaluated] [--output-file FILE]. Exit 1 on a finding or on a resource not
evaluated (unless accepted), 2 when c7n-left itself fails, else 0.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

JUDGED = (
    "aws_launch_configuration",
    "aws_launch_template",
    "aws_autoscaling_group",
    "aws_instance",
)
C7N_LEFT = str(Path(sys.executable).with_name("c7n-left"))
HEADER = re.compile(
    r'^\s*(resource|module|locals|variable)\b\s*'
    r'(?:"([^"]*)"\s*)?(?:"([^"]*)"\s*)?\{'
)
BLOCK = re.compile(r'^\s*(?:dynamic\s+"[^"]+"|[A-Za-z_][\w-]*(?:\s+"[^"]*")*)\s*\{')
ARGUMENT = re.compile(r'^\s*(count|for_each|source|default)\s*=\s*(.*?)\s*$')
# count / for_each that evaluate to no instance as written
NONE_LITERAL = re.compile(r"^(0|false|\[\]|\{\}|toset\(\[\]\))$")
UNRESOLVABLE = re.compile(r"\b(?:module|data)\.[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)?")


def depths(text: str) -> list[int]:
    """Bracket depth at the start of each line of HCL text, strings, comments and
    heredocs skipped (their brackets do not count)."""
    result, depth, i, n = [0], 0, 0, len(text)
    heredoc = None
    while i < n:
        c = text[i]
        if heredoc is not None:
            end = text.find("\n", i)
            line = text[i : n if end < 0 else end]
            if line.strip() == heredoc:
                heredoc = None
            if end < 0:
                break
            result.append(depth)
            i = end + 1
            continue
        if c == "\n":
            result.append(depth)
        elif c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            result.extend([depth] * text.count("\n", i, n if end < 0 else end))
            i = n if end < 0 else end + 2
            continue
        elif text.startswith("<<", i) and (m := re.match(r"<<-?([A-Za-z_]\w*)", text[i:])):
            heredoc = m.group(1)
            end = text.find("\n", i)
            if end < 0:
                break
            result.append(depth)
            i = end + 1
            continue
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
        i += 1
    return result


def blocks(text: str) -> list[dict]:
    """The top-level blocks of HCL text: kind, labels, first and last line (0-based) and
    their direct children (line groups: an argument or a nested block)."""
    lines, at = text.split("\n"), depths(text)
    found, i = [], 0
    while i < len(lines):
        m = HEADER.match(lines[i]) if at[i] == 0 else None
        if not m:
            i += 1
            continue
        end = i  # the line after which the depth is back at 0
        while end + 1 < len(lines) and at[end + 1] != 0:
            end += 1
        children, j = [], i + 1
        while j < end:
            k = j
            while k + 1 < end and at[k + 1] > 1:
                k += 1
            children.append((j, k))
            j = k + 1
        found.append(
            {
                "kind": m.group(1),
                "labels": (m.group(2), m.group(3)),
                "start": i,
                "end": end,
                "children": children,
            }
        )
        i = end + 1
    return found


def argument(lines: list[str], block: dict, name: str) -> str | None:
    """A direct argument's expression (its first line), or None."""
    for first, last in block["children"]:
        m = ARGUMENT.match(lines[first])
        if m and m.group(1) == name:
            return " ".join(x.strip() for x in [m.group(2)] + lines[first + 1 : last + 1])
    return None


def dynamic_last(text: str) -> str:
    """The text with each resource's ``dynamic`` blocks moved after its other nested
    blocks (tfparse drops a dynamic block that another block follows); every resource
    keeps its first and last line."""
    lines = text.split("\n")
    for block in blocks(text):
        if block["kind"] != "resource":
            continue
        groups = [lines[a : b + 1] for a, b in block["children"]]
        dynamic = [g for g in groups if re.match(r'^\s*dynamic\s+"', g[0])]
        if not dynamic:
            continue
        later = groups[groups.index(dynamic[-1]) + 1 :]
        if not any(BLOCK.match(g[0]) for g in later):
            continue
        order = [g for g in groups if g not in dynamic] + dynamic
        body = [line for g in order for line in g]
        first, _ = block["children"][0]
        lines[first : first + len(body)] = body
    return "\n".join(lines)


def locals_of(texts: list[str]) -> dict:
    values = {}
    for text in texts:
        lines = text.split("\n")
        for block in blocks(text):
            if block["kind"] == "locals":
                for first, last in block["children"]:
                    m = re.match(r"^\s*([A-Za-z_][\w-]*)\s*=\s*(.*)$", lines[first])
                    if m:
                        values[m.group(1)] = " ".join(
                            [m.group(2)] + [x.strip() for x in lines[first + 1 : last + 1]]
                        )
    return values


def unresolvable(expression: str, local_values: dict, required: set, seen=()) -> str | None:
    """Why c7n-left cannot evaluate the expression, or None when it can."""
    if m := UNRESOLVABLE.search(expression):
        return "it depends on %s" % m.group(0)
    for name in re.findall(r"\bvar\.([A-Za-z_][\w-]*)", expression):
        if name in required:
            return "it depends on var.%s, which has no value here" % name
    for name in re.findall(r"\blocal\.([A-Za-z_][\w-]*)", expression):
        if name not in seen and name in local_values:
            if why := unresolvable(local_values[name], local_values, required, seen + (name,)):
                return "local.%s: %s" % (name, why)
    return None


def declared(directory: Path, prefix: str = "", seen=None) -> tuple[list, list]:
    """(judged resources, module calls not on disk) declared in a Terraform directory
    and in its modules (local paths, and those ``terraform init`` downloaded)."""
    seen = seen if seen is not None else set()
    if directory.resolve() in seen:
        return [], []
    seen.add(directory.resolve())
    texts = {p: p.read_text() for p in sorted(directory.glob("*.tf"))}
    local_values = locals_of(list(texts.values()))
    required = required_variables(texts)
    resources, missing = [], []
    downloaded = downloaded_modules(directory)
    for path, text in texts.items():
        lines = text.split("\n")
        for block in blocks(text):
            kind, (first_label, second_label) = block["kind"], block["labels"]
            if kind == "resource" and first_label in JUDGED:
                expression = argument(lines, block, "count") or argument(lines, block, "for_each")
                resources.append(
                    {
                        "address": "%s%s.%s" % (prefix, first_label, second_label),
                        "file": str(path),
                        "line": block["start"] + 1,
                        "count": expression,
                        "why": None
                        if expression is None
                        else (unresolvable(expression, local_values, required)),
                    }
                )
            elif kind == "module":
                source = (argument(lines, block, "source") or "").strip('"')
                where = "%smodule.%s" % (prefix, first_label)
                if source.startswith(("./", "../")):
                    found = declared(directory / source, where + ".", seen)
                elif first_label in downloaded:
                    found = declared(downloaded[first_label], where + ".", seen)
                else:
                    missing.append(
                        {
                            "address": where,
                            "file": str(path),
                            "line": block["start"] + 1,
                            "why": (
                                "module source %s is not on disk (run terraform "
                                "init, or evaluate the plan)" % source
                            ),
                        }
                    )
                    continue
                resources += found[0]
                missing += found[1]
    return resources, missing


def required_variables(texts: dict) -> set:
    """Variables declared without a default: c7n-left has no value for them."""
    required = set()
    for text in texts.values():
        lines = text.split("\n")
        required |= {
            b["labels"][0]
            for b in blocks(text)
            if b["kind"] == "variable" and argument(lines, b, "default") is None
        }
    return required


def downloaded_modules(directory: Path) -> dict:
    manifest = directory / ".terraform" / "modules" / "modules.json"
    try:
        modules = json.loads(manifest.read_text()).get("Modules") or []
    except (OSError, ValueError):
        return {}
    return {
        m["Key"]: directory / m["Dir"]
        for m in modules
        if m.get("Key") and "." not in m["Key"] and m.get("Dir")
    }


def evaluated(graph: dict) -> set:
    """Addresses (without instance keys) of the resources in c7n-left's graph."""
    return {
        re.sub(r"\[[^\]]*\]", "", r["__tfmeta"]["path"])
        for rs in graph.values()
        for r in rs
        if isinstance(r, dict) and r.get("__tfmeta", {}).get("type") == "resource"
    }


def not_evaluated(directory: Path, graph: dict) -> list[dict]:
    """What the tree declares that c7n-left's graph lacks, and why (when it can tell)."""
    resources, missing = declared(directory)
    seen = evaluated(graph)
    for resource in resources:
        if resource["address"] in seen:
            continue
        if resource["count"] is not None and NONE_LITERAL.match(resource["count"].strip()):
            continue  # written to make no instance
        missing.append(
            {
                "address": resource["address"],
                "file": resource["file"],
                "line": resource["line"],
                "why": "not in c7n-left's graph: %s"
                % (
                    "its count/for_each (%s) cannot be evaluated: %s"
                    % (resource["count"], resource["why"])
                    if resource["why"]
                    else "its count/for_each (%s) evaluated to no instance" % resource["count"]
                    if resource["count"]
                    else "c7n-left did not read it"
                ),
            }
        )
    return missing


# -- plans ------------------------------------------------------------------------------


def plan_resources(plan: dict) -> list[dict]:
    """The planned resources of ``terraform show -json`` output, every module's."""
    found, modules = [], [(plan.get("planned_values") or {}).get("root_module") or {}]
    while modules:
        module = modules.pop()
        found += [r for r in module.get("resources") or () if r.get("mode") == "managed"]
        modules += module.get("child_modules") or []
    return found


def _blocks_as_objects(value):
    """Plan JSON writes each nested block as a list of objects; c7n-left's HCL reader
    gives a block that occurs once as an object, which the policies read."""
    if isinstance(value, list):
        value = [_blocks_as_objects(v) for v in value]
        return value[0] if len(value) == 1 and isinstance(value[0], dict) else value
    if isinstance(value, dict):
        return {k: _blocks_as_objects(v) for k, v in value.items()}
    return value


def plan_as_tree(plan: dict, directory: Path) -> dict:
    """Write the plan's resources as a Terraform JSON tree c7n-left reads; returns
    {name in the tree: Terraform address}."""
    names, tree = {}, {}
    for resource in plan_resources(plan):
        name = re.sub(r"[^A-Za-z0-9_-]", "_", resource["address"])
        names["%s.%s" % (resource["type"], name)] = resource["address"]
        tree.setdefault(resource["type"], {})[name] = _blocks_as_objects(
            resource.get("values") or {}
        )
    (directory / "plan.tf.json").write_text(json.dumps({"resource": tree}, indent=1))
    return names


# -- the gate ---------------------------------------------------------------------------


def c7n_left(*args) -> subprocess.CompletedProcess:
    return subprocess.run([C7N_LEFT, *args], capture_output=True, text=True)


def gate(
    policy_dir: str,
    directory: str | None = None,
    plan: str | None = None,
    accept_unevaluated: bool = False,
) -> tuple[int, dict]:
    """(exit code, {"results": c7n-left's findings, "unevaluated": [...]})."""
    with tempfile.TemporaryDirectory(prefix="c7n-imds-left-") as scratch:
        tree = Path(scratch) / "tree"
        names = {}
        if plan is not None:
            tree.mkdir()
            names = plan_as_tree(json.loads(Path(plan).read_text()), tree)
        else:
            shutil.copytree(directory, tree, symlinks=True)
            for path in tree.rglob("*.tf"):
                text = path.read_text()
                if (fixed := dynamic_last(text)) != text:
                    path.write_text(fixed)
        out, graph_file = Path(scratch) / "results.json", Path(scratch) / "graph.json"
        ran = c7n_left(
            "run", "-p", policy_dir, "-d", str(tree), "--output", "json", "--output-file", str(out)
        )
        dumped = c7n_left("dump", "-d", str(tree), "--output-file", str(graph_file))
        if ran.returncode not in (0, 1) or not out.exists() or dumped.returncode != 0:
            return 2, {"error": (ran.stderr or dumped.stderr)[-2000:]}
        results = json.loads(out.read_text()).get("results") or []
        for result in results:
            meta = result["resource"]["__tfmeta"]
            if names:
                meta["address"] = names.get(re.sub(r"\[[^\]]*\]", "", meta["path"]), meta["path"])
        unevaluated = (
            []
            if plan is not None
            else not_evaluated(tree, json.loads(graph_file.read_text()).get("graph") or {})
        )
        for item in unevaluated:
            item["file"] = str(Path(directory) / Path(item["file"]).relative_to(tree))
    failed = bool(results) or (bool(unevaluated) and not accept_unevaluated)
    return int(failed), {"results": results, "unevaluated": unevaluated}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m c7n_imds.left",
        description=(
            "c7n-left's gate, with resources it cannot evaluate reported (docs/terraform.md)"
        ),
    )
    parser.add_argument("-p", "--policy-dir", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-d", "--directory")
    source.add_argument("--plan", help="terraform show -json output")
    parser.add_argument(
        "--accept-unevaluated",
        action="store_true",
        help=("exit 0 when the only problems are resources c7n-left cannot evaluate"),
    )
    parser.add_argument("--output-file")
    args = parser.parse_args(argv)
    code, outcome = gate(args.policy_dir, args.directory, args.plan, args.accept_unevaluated)
    if code == 2:
        print("c7n-left failed:\n%s" % outcome["error"], file=sys.stderr)
        return 2
    for result in outcome["results"]:
        meta = result["resource"]["__tfmeta"]
        print(
            "FINDING %s %s (%s:%s)"
            % (
                result["policy"]["name"],
                meta.get("address", meta["path"]),
                meta.get("filename"),
                meta.get("line_start"),
            )
        )
    for item in outcome["unevaluated"]:
        print(
            "NOT EVALUATED %s (%s:%s): %s%s"
            % (
                item["address"],
                item["file"],
                item["line"],
                item["why"],
                " [accepted]" if args.accept_unevaluated else "",
            )
        )
    print(
        "%d finding(s), %d resource(s) not evaluated"
        % (len(outcome["results"]), len(outcome["unevaluated"]))
    )
    if args.output_file:
        Path(args.output_file).write_text(json.dumps(outcome, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
