"""The package's layout keeps its promises: the model is pure, no import cycle, no
module grows past what one reader can hold, and `make lint` fails on a finding."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "c7n_imds"
MAX_LINES = 400
RUFF = Path(sys.executable).with_name("ruff")


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
                name, imported)
            if root == "c7n_imds":
                assert imported.startswith(("c7n_imds.model", "c7n_imds.names")), (
                    name, imported)


def test_no_import_cycle():
    graph = {name: {m for m in top_level_imports(path) if m in MODULES and m != name}
             for name, path in MODULES.items()}
    done, stack = set(), []

    def visit(name):
        if name in stack:
            raise AssertionError("import cycle: " + " -> ".join(
                stack[stack.index(name):] + [name]))
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


def test_no_module_over_the_limit():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_lint_fails_on_a_planted_unused_import(tmp_path):
    """`make lint` runs ruff with pyproject.toml's configuration: a finding fails it."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "planted.py"
    planted.write_text('"""A module with an unused import."""\nimport os\n')
    result = subprocess.run([str(RUFF), "check", str(planted)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1 and "F401" in result.stdout, result.stdout
    planted.write_text('"""A clean module."""\n')
    assert subprocess.run([str(RUFF), "check", str(planted)], cwd=tmp_path).returncode == 0
