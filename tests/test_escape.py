"""c7n_imds.model.escape: account-made text, escaped per destination."""

import pytest

from c7n_imds.model import escape

FORGED = "web\n2026-12-01 10:00:00,000 - custodian.commands - ERROR - forged"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("web-1", "web-1"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\x0d\\nb"),
        ("tab\there", "tab\\x09here"),
        ("bell\x07 esc\x1b[31m del\x7f", "bell\\x07 esc\\x1b[31m del\\x7f"),
        ("c1 \x85 \x9b", "c1 \\x85 \\x9b"),
        ("line\u2028sep\u2029para", "line\\u2028sep\\u2029para"),
        ("bidi \u202e\u2066", "bidi \\u202e\\u2066"),
        ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),  # printable text is left alone
        ("back\\slash", "back\\slash"),
        (42, "42"),
    ],
)
def test_controls_are_written_out(value, expected):
    assert escape.controls(value) == expected


def test_every_destination_keeps_a_forged_line_on_one_line():
    for name in ("controls", "html", "markdown", "csv_cell", "slack"):
        out = getattr(escape, name)(FORGED)
        assert "\n" not in out and "\r" not in out, name
        # Markdown shows the backslash itself (escaped as \\)
        assert ("web\\\\n" if name == "markdown" else "web\\n") + "2026-12-01" in out, name


def test_slack_mentions_and_links_arrive_as_text():
    assert (
        escape.slack("<!channel> & <https://evil.example|your bank>")
        == "&lt;!channel&gt; &amp; &lt;https://evil.example|your bank&gt;"
    )
    assert escape.slack(None) == ""


def test_html_markdown_csv():
    assert escape.html('<b a="1">\n') == "&lt;b a=&quot;1&quot;&gt;\\n"
    assert escape.html(None) == ""
    assert escape.markdown("a|b\n*c*") == "a\\|b\\\\n\\*c\\*"
    assert escape.csv_cell("=SUM(A1)\n") == "'=SUM(A1)\\n"
    assert escape.csv_cell("\t=1") == "\\x09=1"  # no longer a formula, nor a tab
    assert escape.csv_cell(None) == "" and escape.csv_cell(3) == "3"


# ---- where escaping happens: log records, the plan --------------------------------------

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"  # custodian-run.log's


@pytest.fixture
def run_log():
    """custodian-run.log as custodian writes it (its format, a handler on `custodian`),
    with the record factory put back afterwards."""
    import io
    import logging

    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    parent = logging.getLogger("custodian")
    parent.addHandler(handler)
    level, parent_level = parent.level, logging.getLogger("custodian.c7n_imds").level
    parent.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        parent.removeHandler(handler)
        parent.setLevel(level)
        logging.getLogger("custodian.c7n_imds").setLevel(parent_level)
        logging.setLogRecordFactory(factory)


def log_forged_values():
    import logging

    from c7n_imds.actions.base import RemediationError

    logging.getLogger("custodian.c7n_imds.filters").debug(
        "asg %s left out: exempt: %s", "web", "vendor" + FORGED[3:]
    )
    try:
        raise RemediationError(
            "convert-to-launch-template", {"web\u2028x": "ValidationError: bad" + FORGED[3:]}
        )
    except RemediationError:
        logging.getLogger("custodian.output").exception("Error while executing policy")


def test_a_newline_in_a_tag_forges_no_log_record(run_log):
    """What summary reads back from custodian-run.log: without escaping, a tag value
    writes an ERROR record of its choosing (the first half shows the test can fail)."""
    from c7n_imds.log_records import escape_log_records
    from c7n_imds_report.load import run_log_errors

    log_forged_values()
    assert run_log_errors(run_log.getvalue()) == ["forged", "forged"]

    run_log.seek(0)
    run_log.truncate()
    escape_log_records()
    escape_log_records()  # idempotent: one escaping, not two
    log_forged_values()
    text = run_log.getvalue()
    assert run_log_errors(text) == []
    lines = text.splitlines()
    assert len([line for line in lines if line[:4].isdigit()]) == 2  # two records
    assert (
        "exempt: vendor\\n2026-12-01 10:00:00,000 - custodian.commands - ERROR - forged" in lines[0]
    )
    # the traceback keeps its frames and one line per failed group
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-2:] == [
        "c7n_imds.actions.base.RemediationError: convert-to-launch-template failed for 1 "
        "group(s); the others were processed:",
        " - web\\u2028x: ValidationError: bad\\n2026-12-01 10:00:00,000 - "
        "custodian.commands - ERROR - forged",
    ]


def test_importing_the_plugin_changes_no_logging_and_no_umask():
    """Only our commands escape records and narrow the umask; importing registers."""
    import subprocess
    import sys

    code = (
        "import logging, os; factory = logging.getLogRecordFactory(); "
        "mask = os.umask(0o022); import c7n_imds, c7n_imds.cli; "
        "assert logging.getLogRecordFactory() is factory; "
        "assert os.umask(0o022) == 0o022"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_private_files_narrow_the_umask_and_a_readable_cache(tmp_path):
    import os

    from c7n_imds.cli import private_files

    cache = tmp_path / "cloud-custodian.cache"
    cache.write_bytes(b"SQLite format 3\0")
    cache.chmod(0o644)
    folder = tmp_path / "c7n-org"
    folder.mkdir(mode=0o755)
    (folder / "a-us-east-1.cache").write_bytes(b"x")
    (folder / "a-us-east-1.cache").chmod(0o664)
    mask = os.umask(0o022)
    try:
        private_files([str(cache), None, str(tmp_path / "missing")], [str(folder)])
        assert os.umask(0o022) == 0o077
    finally:
        os.umask(mask)
    assert cache.stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "a-us-east-1.cache").stat().st_mode & 0o777 == 0o600


def test_a_plan_line_cannot_be_forged():
    from c7n_imds.cli import format_preview

    text = format_preview(
        {
            "Policy": "p",
            "Region": "us-east-1",
            "Action": "convert-to-launch-template",
            "Templates": [
                {
                    "LaunchConfigurationName": "lc\n",
                    "LaunchTemplateName": "t\u2028",
                    "Groups": ["web\n  cannot remediate db: forged"],
                    "LaunchTemplateData": {},
                    "Notes": ["note\rx"],
                }
            ],
            "Skipped": [{"AutoScalingGroupName": "a\nb", "Skipped": "exempt: x\n  y"}],
            "Failures": {
                "db\x1b[2K": "ValidationError: x\npolicy q (us-east-1) action a: 0 template(s)"
            },
        }
    )
    lines = text.splitlines()
    assert lines == [
        "policy p (us-east-1) action convert-to-launch-template: 1 template(s), 0 "
        "version(s), 1 failure(s)",
        "  launch configuration 'lc\\n' -> launch template t\\u2028",
        "    groups: web\\n  cannot remediate db: forged",
        "    note: note\\x0dx",
        "  left alone a\\nb: exempt: x\\n  y",
        "  cannot remediate db\\x1b[2K: ValidationError: x\\npolicy q (us-east-1) action "
        "a: 0 template(s)",
    ]
