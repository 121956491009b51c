"""Terminal text: display width of Chinese text, padding, wrapping, the alert table layout."""

from __future__ import annotations

from kamrules.alerts import Alert
from kamrules.termtable import pad, table, truncate, width, wrap
from kamrules_plugins.formats import render_table


def test_width_counts_cjk_double():
    assert width("abc") == 3 and width("华东机电") == 8 and width("华东 A1") == 7 and width("ｘ") == 2


def test_pad_and_truncate_by_display_width():
    assert pad("华东", 6) == "华东  " and width(pad("华东机电有限公司", 9)) == 9
    assert truncate("华东机电有限公司", 9) == "华东机电…" and pad("7", 3, ">") == "  7"


def test_wrap_breaks_cjk_runs_and_words():
    lines = wrap("销售额下降 " + "很" * 30, 20)
    assert all(width(line) <= 20 for line in lines) and "".join(lines).replace(" ", "") == "销售额下降" + "很" * 30
    assert wrap("one two three four", 9) == ["one two", "three", "four"]


def test_table_aligns_columns():
    text = table(["名称", "n"], [["华东机电", "1"], ["Acme", "22"]], aligns=["<", ">"])
    lines = text.splitlines()
    assert [width(line) for line in lines[:1] + lines[2:]] == [width(lines[2])] * 3


def test_alert_table_fits_80_columns():
    long = Alert(
        ruleset="x",
        code="TST101",
        rule="r",
        severity="warning",
        message="很长的消息" * 20,
        action="做点什么 " * 10,
        as_of="2026-10-31",
        account_id="A1",
        account_name="北京" * 50,
        owner="王" * 60,
        owner_email="w@example.com",
    )
    out = render_table([long], None)
    assert all(width(line) <= 80 for line in out.splitlines())
