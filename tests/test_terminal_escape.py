"""Output can't attack the reader: terminal escapes, bidi controls, HTML in Markdown, CSV formulas (issue 11)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from kamrules.cli import cli
from kamrules.termtable import table, width
from kamrules.textsafe import csv_cell, markdown, term

AS_OF = "2026-10-31"
# CSI (colour, clear screen), OSC (window title / hyperlink) ended by BEL, a C1 CSI, a right-to-left override.
NAME = "Evil\x1b[31mRED\x1b]0;pwned\x07 \u202eexe.txt\x9b2J 华东"
OWNER = '=HYPERLINK("http://evil")<script>alert(1)</script>|x\u2066'
RAW = ("\x1b", "\x07", "\u202e", "\x9b", "\u2066")


@pytest.fixture
def db(tmp_path, monkeypatch, _book_template):
    """The generated book with every account's name and owner replaced by hostile text."""
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB", "KAMRULES_PLUGINS_DIR", "KAMRULES_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "book.db"
    shutil.copyfile(_book_template, path)
    with sqlite3.connect(path) as c:
        c.execute("UPDATE accounts SET name = ?, owner = ?", (NAME, OWNER))
    return path


def run(db, *args) -> str:
    r = CliRunner().invoke(cli, ["--db", str(db)] + [str(a) for a in args])
    assert r.exit_code in (0, 1), r.output
    return r.output


def assert_escaped(text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"raw {ch!r} reached the output"
    assert "\\x1b[31m" in text and "\\u202e" in text


def test_check_table_escapes_controls_and_bidi(db):
    out = run(db, "check", "--as-of", AS_OF, "--no-history")
    assert_escaped(out)
    assert "华东" in out  # CJK kept as is


def test_check_markdown_escapes_html_pipes_and_controls(db):
    out = run(db, "check", "--as-of", AS_OF, "--format", "markdown", "--no-history")
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;\\|x" in out
    assert_escaped(out)


def test_check_csv_guards_formulas_and_csv_raw_turns_it_off(db, tmp_path):
    run(db, "check", "--as-of", AS_OF, "--format", "csv", "-o", tmp_path / "a.csv", "--no-history")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "a.csv").read_text(encoding="utf-8-sig"))))
    assert rows and all(r["owner"] == "'" + OWNER for r in rows if r["account_id"])
    run(db, "check", "--as-of", AS_OF, "--format", "csv", "--csv-raw", "-o", tmp_path / "raw.csv", "--no-history")
    raw = list(csv.DictReader(io.StringIO((tmp_path / "raw.csv").read_text(encoding="utf-8-sig"))))
    assert all(r["owner"] == OWNER for r in raw if r["account_id"])
    assert len(raw) == len(rows)


def test_check_json_keeps_the_data(db):
    out = run(db, "check", "--as-of", AS_OF, "--format", "json", "--no-history")
    alerts = json.JSONDecoder().raw_decode(out)[0]  # the array; the summary follows on stderr
    assert any(a["account_name"] == NAME for a in alerts)  # data formats carry the value exactly (escaped by JSON)
    assert "\x1b" not in out


def test_explain_escapes(db):
    with sqlite3.connect(db) as c:
        acct = c.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()[0]
    out = run(db, "explain", acct, "--as-of", AS_OF)
    assert_escaped(out)


def test_alerts_list_show_and_silences_escape(db):
    run(db, "check", "--as-of", AS_OF)
    listed = run(db, "alerts", "list")
    assert_escaped(listed)
    fp = json.loads(run(db, "alerts", "list", "--format", "json"))[0]["fingerprint"]
    shown = run(db, "alerts", "show", fp[:12])
    assert_escaped(shown)
    added = run(db, "silence", "add", "--owner", OWNER, "--until", "2099-01-01", "--comment", NAME)
    silences = run(db, "silence", "list")
    for text in (added, silences):
        for ch in RAW:
            assert ch not in text
    assert "\\u202e" in silences and "\\x1b[31m" in silences


def test_error_messages_escape_file_names(tmp_path):
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "x\x1b[2J\u202e.db"), "check"])
    assert r.exit_code == 2 and "\x1b" not in r.output and "\u202e" not in r.output and "\\x1b[2J" in r.output


def test_textsafe_rules():
    assert term("a\tb\nc\x7f") == "a\\x09b\\x0ac\\x7f"
    assert term("a\nb", keep_newlines=True) == "a\nb"
    assert term("\u200f\u2028") == "\\u200f\\u2028"
    assert markdown("a|b <i>\n") == "a\\|b &lt;i&gt; "
    for cell in ("=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "-1+cmd|' /C calc'!A0"):
        assert csv_cell(cell) == "'" + cell
    for cell in ("-1.5", "+3", "-2e3", "plain", "", "1-2"):  # numbers stay numbers
        assert csv_cell(cell) == cell


def test_termtable_alignment_with_cjk_and_escapes():
    text = table(["名称", "x"], [["华东\u202e电气", "1"], ["abc\x1b[0m", "2"]], wrap_last=False)
    lines = text.splitlines()
    assert "\u202e" not in text and "\x1b" not in text
    col = [width(ln[: ln.rindex(" ") + 1]) for ln in (lines[0], lines[2], lines[3])]
    assert len(set(col)) == 1  # the last column starts at the same display column on every line
