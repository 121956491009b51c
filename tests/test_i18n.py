"""kamrules.i18n: the catalogue is current, every label is there, amounts/percent/dates, --lang precedence, kinsoku."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules import i18n
from kamrules.cli import cli
from kamrules.termtable import NO_START, width, wrap
from kamrules.vocab import ENUMS, LABELS

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "kamrules" / "locale" / "zh" / "LC_MESSAGES" / "kamrules.po"
MO = PO.with_suffix(".mo")


@pytest.fixture
def zh():
    with i18n.using("zh"):
        yield


def _po():
    from babel.messages.pofile import read_po

    with open(PO, "rb") as f:
        return read_po(f)


def test_committed_mo_is_the_compiled_po():
    from babel.messages.mofile import write_mo

    buf = io.BytesIO()
    write_mo(buf, _po(), use_fuzzy=False)
    assert buf.getvalue() == MO.read_bytes(), "kamrules.mo is stale: pybabel compile -d kamrules/locale -D kamrules"


def test_every_msgid_in_the_code_is_translated_in_the_po():
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found = set()
    for _file, _line, msg, _comments, _ctx in extract_from_dir(str(ROOT), method_map, options_map):
        found.add(msg[0] if isinstance(msg, tuple) else msg)
    catalog = _po()
    po_ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog if m.id}
    assert found - po_ids == set(), "new strings: pybabel extract + update (docs/chinese.md)"
    assert po_ids - found == set(), "strings no longer in the code: remove them from the .po"
    assert (
        "No alerts." in found and "%(n)d critical" in found and "RESOLVED" in found
    )  # Python and Jinja2 sources both read
    untranslated = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    assert untranslated == []
    assert not any(m.fuzzy for m in catalog if m.id)


def test_every_enumeration_value_has_a_chinese_label(zh):
    assert set(ENUMS) == set(LABELS)
    for kind, values in ENUMS.items():
        assert set(LABELS[kind]) >= set(values), kind
        for v in values:
            text = i18n.label(kind, v)
            assert text != v and all(ord(c) > 0x2E80 for c in text), (kind, v, text)
    assert [i18n.label("severity", s) for s in ("critical", "warning", "info")] == ["严重", "警告", "提示"]
    assert [i18n.label("tier", t) for t in ("key", "mid", "small")] == ["大客户", "中型客户", "小客户"]


def test_labels_in_english_are_the_values():
    assert i18n.get_lang() == "en"
    assert i18n.label("tier", "key") == "key" and i18n.label("severity", "nonsense") == "nonsense"


@pytest.mark.parametrize(
    "x, text",
    [
        (14_485_000, "1,448.5万"),
        (285_000_000, "2.85亿"),
        (1_285_484_660, "12.85亿"),
        (90_438.25, "9.04万"),
        (-14_485_000, "-1,448.5万"),
        (123_456_789_012, "1,234.6亿"),
        (999_999_999, "10亿"),
        (5_000, "5,000"),
        (0, "0"),
    ],
)
def test_amounts_in_wan_and_yi(zh, x, text):
    assert i18n.amount(x) == text


def test_amounts_percent_dates_in_english_keep_todays_formats():
    assert (
        i18n.amount(14_485_000) == "14,485,000"
        and i18n.percent(0.2302) == "23%"
        and i18n.date("2026-10-31") == "2026-10-31"
    )
    assert i18n.amount(None) == "n/a"


def test_percent_and_dates_in_chinese(zh):
    assert i18n.percent(0.2302) == "23%" and i18n.percent(0.2302, 1) == "23.0%"
    assert i18n.date("2026-10-31") == "2026-10-31" and i18n.date("2026-10-31", long=True) == "2026年10月31日"
    assert i18n.count(2, "warning") == "2条警告" and i18n.count(1, "resolved") == "1条已解除"


def test_using_restores_the_language():
    with i18n.using("zh"):
        assert i18n._("No alerts.") == "没有告警。"
        with i18n.using(None):
            assert i18n.get_lang() == "zh"
    assert i18n.get_lang() == "en" and i18n._("No alerts.") == "No alerts."
    with pytest.raises(Exception, match="not a language"):
        i18n.set_lang("fr")


TEXT = "未登记决策人（在档高层联系人2位，最近高层会面2026-07-31，92天前）。大客户须明确决策人，且至少每180天面谈一次。"


@pytest.mark.parametrize("cols", range(6, 40))
def test_kinsoku_no_line_starts_with_a_closing_mark(cols):
    lines = wrap(TEXT, cols)
    assert "".join(lines) == TEXT
    assert all(width(ln) <= cols for ln in lines)
    assert not any(ln and ln[0] in NO_START for ln in lines[1:]), lines
    assert not any(ln and ln[-1] in "（「《" for ln in lines[:-1]), lines


def test_kinsoku_moves_the_character_before_the_mark():
    assert wrap("一二三四，五六", 8) == ["一二三", "四，五六"]  # not ["一二三四", "，五六"]
    assert wrap("一二三「四五」", 8) == ["一二三", "「四五」"]
    assert wrap("说明 一二三四五六七八九十", 12) == ["说明 一二三", "四五六七八九", "十"]  # CJK fills the line
    assert wrap("the quick brown fox jumps", 10) == ["the quick", "brown fox", "jumps"]  # English as before


@pytest.mark.parametrize("cols", range(20, 40))
def test_cjk_lines_do_not_break_inside_a_latin_run(cols):
    text = "未触发：`days_since_survey > 365` 不成立（days_since_survey = 120，截至2026-10-31）"
    lines = wrap(text, cols)
    assert all(width(ln) <= cols for ln in lines)
    assert sum(ln.count("days_since_survey") for ln in lines) == 2, lines  # both whole, on some line
    assert any("2026-10-31" in ln for ln in lines), lines
    assert wrap("一二三四abcdefghijklmnop", 8)[0] == "一二三四"  # a run wider than the line still breaks


# --- precedence: --lang > $KAMRULES_LANG > kamrules.toml lang > en ---------------------------------


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB", "KAMRULES_LANG", "KAMRULES_PLUGINS_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _missing_store(*args, env=None):
    return CliRunner().invoke(cli, [*args, "check", "--db", "nope.db"], env=env)


ZH_MISSING = "这里没有数据库"
EN_MISSING = "no store here"


def test_lang_precedence(cwd):
    assert EN_MISSING in _missing_store().output  # default en
    (cwd / "kamrules.toml").write_text('lang = "zh"\n', encoding="utf-8")
    r = _missing_store()
    assert r.exit_code == 2 and ZH_MISSING in r.output  # file
    assert EN_MISSING in _missing_store(env={"KAMRULES_LANG": "en"}).output  # env over file
    assert ZH_MISSING in _missing_store("--lang", "zh", env={"KAMRULES_LANG": "en"}).output  # option over env
    r = CliRunner().invoke(cli, ["check", "--db", "nope.db", "--lang", "en"], env={"KAMRULES_LANG": "zh"})
    assert EN_MISSING in r.output  # the command's own --lang too
    assert i18n.get_lang() == "en"  # an invocation's language does not outlive it


def test_bad_language_values_are_refused_cleanly(cwd):
    r = CliRunner().invoke(cli, ["check", "--lang", "fr"])
    assert r.exit_code == 2 and "'fr' is not one of 'en', 'zh'" in r.output
    r = _missing_store(env={"KAMRULES_LANG": "fr"})
    assert r.exit_code == 2 and "KAMRULES_LANG: 'fr' is not a language (expected one of: en, zh)" in r.output
    assert "Traceback" not in r.output
    (cwd / "kamrules.toml").write_text('db = "x.db"\nlang = "fr"\n', encoding="utf-8")
    r = _missing_store()
    assert r.exit_code == 2 and "kamrules.toml:2: lang:" in r.output and "'en' or 'zh'" in r.output


def test_email_language_settings_are_validated(cwd):
    from kamrules.config import load_settings
    from kamrules.errors import InputError

    (cwd / "kamrules.toml").write_text(
        '[email]\nlang = "en"\n[email.lang_by_recipient]\n"boss@example.com" = "zh"\n', encoding="utf-8"
    )
    s = load_settings()
    assert s.lang == "en" and s.email.lang == "en" and s.email.lang_by_recipient == {"boss@example.com": "zh"}
    (cwd / "kamrules.toml").write_text('[email]\nlang = "de"\n', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_settings()
    assert "email.lang" in e.value.render()


@pytest.mark.parametrize(
    "command", ["check", "explain", "rules", "alerts", "silence", "notify", "demo", "health", "backtest"]
)
def test_every_command_for_people_takes_lang(command):
    r = CliRunner().invoke(cli, [command, "--help"] if command != "silence" else [command, "add", "--help"])
    assert r.exit_code == 0 and "--lang [en|zh]" in r.output
