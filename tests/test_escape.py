"""c7n_imds.model.escape: account-made text, escaped per destination."""
import pytest

from c7n_imds.model import escape

FORGED = "web\n2026-12-01 10:00:00,000 - custodian.commands - ERROR - forged"


@pytest.mark.parametrize("value, expected", [
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
])
def test_controls_are_written_out(value, expected):
    assert escape.controls(value) == expected


def test_every_destination_keeps_a_forged_line_on_one_line():
    for name in ("controls", "html", "markdown", "csv_cell", "slack"):
        out = getattr(escape, name)(FORGED)
        assert "\n" not in out and "\r" not in out, name
        # Markdown shows the backslash itself (escaped as \\)
        assert ("web\\\\n" if name == "markdown" else "web\\n") + "2026-12-01" in out, name


def test_slack_mentions_and_links_arrive_as_text():
    assert escape.slack("<!channel> & <https://evil.example|your bank>") == \
        "&lt;!channel&gt; &amp; &lt;https://evil.example|your bank&gt;"
    assert escape.slack(None) == ""


def test_html_markdown_csv():
    assert escape.html('<b a="1">\n') == "&lt;b a=&quot;1&quot;&gt;\\n"
    assert escape.html(None) == ""
    assert escape.markdown("a|b\n*c*") == "a\\|b\\\\n\\*c\\*"
    assert escape.csv_cell("=SUM(A1)\n") == "'=SUM(A1)\\n"
    assert escape.csv_cell("\t=1") == "\\x09=1"  # no longer a formula, nor a tab
    assert escape.csv_cell(None) == "" and escape.csv_cell(3) == "3"
