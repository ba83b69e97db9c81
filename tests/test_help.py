"""What users read of our filters and actions: `c7n-imds schema` prints each in about a
screen (c7n's own docstrings are 17-18 lines), and docs/options.md, the one option
reference, is what the schemas generate."""

import statistics
from pathlib import Path

import c7n_imds  # noqa: F401  (registers)
from c7n_imds import help
from c7n_imds.cli import main

REPO = Path(__file__).resolve().parent.parent


def printed_lines(capsys, path):
    capsys.readouterr()
    assert main(["schema", path]) == 0
    return capsys.readouterr().out.count("\n")


def test_the_median_action_help_is_at_most_30_lines(capsys):
    actions = ["%s.actions.%s" % (r, n) for r, k, n, _ in help.elements() if k == "actions"]
    assert len(actions) >= 8
    lines = {path: printed_lines(capsys, path) for path in actions}
    assert statistics.median(lines.values()) <= 30, lines


def test_schema_prints_the_docstring_and_every_option(capsys):
    capsys.readouterr()
    main(["schema", "asg.actions.set-metadata-access"])
    out = capsys.readouterr().out
    assert "Give launch-template groups" in out and ":example:" in out
    assert "http-tokens (required)" in out and "rate-budget (0.5)" in out


def test_the_option_reference_is_not_stale():
    """Regenerate with: python -m c7n_imds.help > docs/options.md"""
    assert (REPO / "docs" / "options.md").read_text() == help.markdown()


def test_an_action_defaults_its_own_options():
    rows = {(n, o): d for r, k, n, e in help.elements() for o, _, d in help.options(e)}
    assert rows[("set-nodegroup-metadata-access", "hop-limit")] == "auto"
    assert rows[("set-metadata-access", "hop-limit")] == "preserve"
