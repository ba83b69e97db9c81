"""Escaping of account-made text, per destination. Pure.

Every group, template, stack and tag name, every tag value and every error message AWS
returns was typed by someone in the account, not by whoever reads our output. A newline
in a tag value written as it is forges a line of its own: a log record in
custodian-run.log (which `c7n-imds summary` reads back for errors), a line of `c7n-imds
plan`, a row of a table. So each destination gets the text with its control characters
made visible, plus the escaping of its own format:

- ``controls``: ``\\n`` for a line feed, ``\\xNN`` for every other C0/C1 control (tab
  and carriage return included), ``\\uNNNN`` for the line and paragraph separators
  (U+2028/2029) and the marks that reorder text (U+202A-202E, U+2066-2069). Backslashes
  are left as they are: a literal ``\\n`` typed into a tag reads the same as an escaped
  line feed, which is ambiguous but forges nothing.
- ``html``: ``controls``, then ``&<>"'`` as entities (text and attributes alike).
- ``markdown``: ``controls``, HTML entities, and the characters that make a table cell,
  code, emphasis or a link.
- ``csv_cell``: ``controls``, and a leading ``'`` before what a spreadsheet would
  evaluate as a formula.
- ``slack``: ``controls``, and ``&``, ``<``, ``>`` as Slack's documentation asks, so
  that ``<!channel>``, ``<@U123>`` or ``<https://evil|a harmless name>`` are shown, not
  acted upon. (JSON encoding is the template's ``tojson``.)
"""

from __future__ import annotations

import html as _html
import re
from typing import Any

CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
FORMULA_START = ("=", "+", "-", "@")  # a tab or return has been written out before


def _visible(match: re.Match) -> str:
    char = match.group()
    if char == "\n":
        return "\\n"
    code = ord(char)
    return "\\x%02x" % code if code <= 0xFF else "\\u%04x" % code


def controls(value) -> str:
    """``value`` as one line of text: its control characters written out."""
    return CONTROLS.sub(_visible, str(value))


def html(value) -> str:
    """Text for HTML, in element content and quoted attributes alike."""
    return _html.escape(controls("" if value is None else value), quote=True)


def markdown(value) -> str:
    """Literal text in a Markdown table cell: no column break, code, emphasis, link or
    HTML (``<``, ``>``, ``&`` as entities, so ``<https://...>`` is no autolink either)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", _html.escape(controls(value), quote=False))


def csv_cell(value) -> str:
    """One line per row for whatever reads the file line by line, and no formula: a
    spreadsheet shows a cell starting with = + - @ as a formula's result; a leading '
    makes it text (OWASP's CSV injection advice)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)
    text = controls(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def slack(value) -> str:
    """Text in a Slack message: Slack reads ``<...>`` as a mention, a channel-wide
    notification (``<!channel>``, ``<!here>``) or a link with a text of its choosing;
    escaped as Slack documents (only these three)."""
    return (
        controls("" if value is None else value)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def traceback_text(exc_info) -> str:
    """A logged exception's traceback as ``logging`` writes it, with the message of each
    exception of the chain on one line (``controls``): an AWS error message or a group
    name inside it starts no line, and so no log record, of its own. An exception that
    lists its failures ({name: reason}, as RemediationError) keeps one line per failure."""
    import traceback

    error = exc_info[1]
    try:
        formatted = traceback.TracebackException(*exc_info)
        # (TracebackException, exception) pairs down the chain
        pending: list[tuple[Any, Any]] = [(formatted, error)]
        seen: set[int] = set()
        while pending:
            part, exception = pending.pop()
            if part is None or exception is None or id(part) in seen:
                continue
            seen.add(id(part))
            # TracebackException keeps the message it prints in _str (3.11 to 3.13); the
            # fallback below covers a Python that renames it
            part._str = _exception_message(exception, part._str)
            pending += [
                (part.__cause__, exception.__cause__),
                (part.__context__, exception.__context__),
            ]
        return "".join(formatted.format()).rstrip("\n")
    except (AttributeError, TypeError):
        return controls("".join(traceback.format_exception(*exc_info)).rstrip("\n"))


def _exception_message(exception, message) -> str:
    failures = getattr(exception, "failures", None)
    if isinstance(failures, dict) and isinstance(message, str):
        head = message.split("\n", 1)[0]
        return "\n".join(
            [controls(head)]
            + [
                " - %s: %s" % (controls(name), controls(reason))
                for name, reason in sorted(failures.items(), key=lambda f: str(f[0]))
            ]
        )
    return controls(message)
