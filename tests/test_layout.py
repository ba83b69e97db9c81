"""The package's layout keeps its promises: the model is pure, no import cycle, no
module uses another's private names, and `make lint` keeps upstream's settings."""

import ast
import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "c7n_imds"


def module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(path):
    """Modules imported when the module is imported (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {"%s.%s" % (node.module, alias.name) for alias in node.names}
    return found


def test_the_model_is_pure():
    """model/: no boto3, botocore or c7n - only the standard library, the vocabulary
    and other model modules."""
    for name, path in MODULES.items():
        if not name.startswith("c7n_imds.model"):
            continue
        for imported in top_level_imports(path):
            root = imported.split(".")[0]
            assert root not in ("boto3", "botocore", "c7n", "c7n_org", "c7n_mailer"), (
                name,
                imported,
            )
            if root == "c7n_imds":
                assert imported.startswith(("c7n_imds.model", "c7n_imds.names")), (name, imported)


def all_imports(path):
    """Every module the module imports, at its top or inside a function: a cycle made
    by a function-level import still ties two modules into one."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {"%s.%s" % (node.module, alias.name) for alias in node.names}
    return found


def test_no_import_cycle():
    graph = {
        name: {m for m in all_imports(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    done, stack = set(), []

    def visit(name):
        if name in stack:
            raise AssertionError(
                "import cycle: " + " -> ".join(stack[stack.index(name) :] + [name])
            )
        if name in done:
            return
        stack.append(name)
        for other in sorted(graph[name]):
            # a package's __init__ importing its own modules is how it registers them
            if not other.startswith(name + "."):
                visit(other)
        stack.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_cycle_check_sees_function_level_imports(tmp_path):
    """The check above would have missed cli <-> doctor, whose cli side was inside a
    function."""
    planted = tmp_path / "planted.py"
    planted.write_text("def main():\n    from c7n_imds.doctor import main\n")
    assert "c7n_imds.doctor" in all_imports(planted)
    assert "c7n_imds.doctor" not in top_level_imports(planted)


def private_uses(path):
    """(module, name) for every `_private` name the module takes from another module of
    the package: `from c7n_imds.x import _y`, or `x._y` on an imported module."""
    tree = ast.parse(path.read_text())
    modules = {}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("c7n_imds"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((node.module, alias.name))
                modules[alias.asname or alias.name] = "%s.%s" % (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("c7n_imds"):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.add((modules[node.value.id], node.attr))
    return found


def test_no_module_uses_another_modules_private_names():
    used = {name: sorted(uses) for name, path in MODULES.items() if (uses := private_uses(path))}
    assert used == {}


def test_the_private_name_check_can_fail(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from c7n_imds.aws import _hidden\nimport c7n_imds.pacing as p\np._state\n")
    assert private_uses(planted) == {("c7n_imds.aws", "_hidden"), ("c7n_imds.pacing", "_state")}


def test_lint_keeps_upstream_cloud_custodians_settings():
    """`make lint` is ruff as upstream Cloud Custodian configures it (line length 100,
    E/F/W with preview rules, E741 and E401 ignored, quotes preserved by the formatter)
    plus sorted imports, the formatter's check and mypy over the pure model; the
    pre-commit hooks run the same Makefile targets."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    ruff = config["tool"]["ruff"]
    assert ruff["line-length"] == 100 and ruff["format"]["quote-style"] == "preserve"
    assert ruff["lint"]["preview"] is True
    assert {"E", "F", "W"} <= set(ruff["lint"]["select"])
    assert set(ruff["lint"]["ignore"]) == {"E741", "E401"}
    assert "c7n_imds/model" in config["tool"]["mypy"]["files"]
    makefile = (REPO / "Makefile").read_text()
    lint = re.search(r"^lint: (.*)$", makefile, re.M).group(1).split()
    assert lint == ["lint-ruff", "lint-format", "lint-types"]
    for target, tool in (
        ("lint-ruff", "ruff check"),
        ("lint-format", "ruff format --check"),
        ("lint-types", "mypy"),
    ):
        recipe = re.search(r"^%s: .*\n\t(.*)$" % target, makefile, re.M).group(1)
        assert tool in recipe, (target, recipe)
    hooks = {
        h["id"]: h["entry"]
        for repo in yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"]
        for h in repo["hooks"]
    }
    assert {entry.split()[-1] for entry in hooks.values()} == {
        "lint-ruff",
        "lint-format",
        "lint-types",
        "validate-pack",
    }


def test_every_refusal_is_one_kind():
    """One refusal hierarchy (c7n_imds.model.refusals): every exception class of the
    package named as a refusal, and the model's can't-carry errors, is a Refused."""
    import importlib
    import inspect

    from c7n_imds.model.refusals import Refused

    refusals = []
    for name in MODULES:
        module = importlib.import_module(name)
        for _, klass in inspect.getmembers(module, inspect.isclass):
            if (
                klass.__module__ == name
                and issubclass(klass, Exception)
                and (
                    "Refused" in klass.__name__
                    or klass.__name__ in ("TranslationError", "CannotCarry")
                )
            ):
                refusals.append(klass)
    assert len(refusals) >= 7
    assert [k.__name__ for k in refusals if not issubclass(k, Refused)] == []


def test_the_plugin_imports_no_moto():
    """What a policy run needs, and so the Lambda archive, holds no moto and no test or
    demo harness: c7n_imds_testing and c7n_imds_demo live beside the plugin."""
    for name, path in MODULES.items():
        for imported in all_imports(path):
            root = imported.split(".")[0]
            assert root != "moto", (name, imported)
            assert root != "c7n_imds_testing", (name, imported)
            if name != "c7n_imds.cli":  # `c7n-imds demo` dispatches to it, lazily
                assert root != "c7n_imds_demo", (name, imported)
