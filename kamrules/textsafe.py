"""Text from the store made safe to show: terminal escapes, bidi controls, Markdown/HTML, CSV formulas.

Store values (names, messages, comments) are data typed by someone else. Shown raw
they could drive the reader's terminal (CSI ``ESC [``, OSC ``ESC ]`` e.g. hyperlinks or
title changes, BEL), reorder what is read (a right-to-left override U+202E makes
``exe.txt`` look like ``txt.exe``), inject HTML into a rendered Markdown report, or
become a formula in a spreadsheet. See docs/cli.md (Output safety).
"""

from __future__ import annotations

import html
import re

# C0 controls, DEL, C1 controls; the bidi controls (LRM, RLM, ALM, LRE..RLO, LRI..PDI);
# the Unicode line and paragraph separators (terminals and editors break lines on them).
_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSAFE_RE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_UNSAFE_KEEP_NL_RE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def term(text, keep_newlines: bool = False) -> str:
    """``text`` with every control character and bidi control shown as ``\\xNN`` / ``\\uNNNN``.

    ``keep_newlines``: a ``\\n`` stays a line break (multi-line messages); else it is escaped too.
    """
    if text is None:
        return ""
    text = text if type(text) is str else str(text)
    pattern = _UNSAFE_KEEP_NL_RE if keep_newlines else _UNSAFE_RE
    if pattern.search(text) is None:  # the usual case: no copy
        return text
    return pattern.sub(_escape, text)


def markdown(text) -> str:
    """A Markdown table cell / heading text: controls escaped, HTML escaped, pipes escaped, one line."""
    text = term("" if text is None else text, keep_newlines=True).replace("\r\n", "\n").replace("\n", " ")
    return html.escape(text, quote=False).replace("|", "\\|")


# OWASP "CSV injection": a cell starting with one of these may be read as a formula.
CSV_FORMULA_START = frozenset("=+-@\t\r")
_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value):
    """``value`` guarded for spreadsheets: a text starting with ``= + - @`` TAB or CR gets a leading ``'``.

    A cell that is just a number (``-1.5``, ``+3``, ``-2e3``) is left as it is: a spreadsheet
    reads it as that number, nothing more.
    """
    if type(value) is str and value and value[0] in CSV_FORMULA_START and not _NUMBER_RE.fullmatch(value):
        return "'" + value
    return value
