"""Rule texts per language (issue 15): every built-in rule in Chinese, the fallback to English and its listing,
the loader's errors for {en: ..., zh: ...} texts, and a zh markdown golden of the built-in rules on a fixed book."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from kamrules.check import builtin_ruleset_files
from kamrules.cli import cli
from kamrules.errors import InputError
from kamrules.generate import generate_to_store
from kamrules.messages import format_message
from kamrules.ruleset import parse_ruleset, resolve
from kamrules.ruletext import FACT_KINDS, localized
from kamrules.store import Store

AS_OF = "2026-10-31"
CJK = re.compile(r"[\u4e00-\u9fff]")
WORD = re.compile(r"[A-Za-z]{2,}")


def _builtin(pm):
    return [r for rs in resolve(builtin_ruleset_files(pm, [])) for r in rs.rules]


def _value(name: str, n: int):
    """A value for a message field: enumeration values, ISO dates, Chinese names, else the number n."""
    if name in FACT_KINDS:
        return {"tier": "key", "status": "active", "buyer_type": "strategic", "purchasing": "distributed"}.get(
            name, "visit"
        )
    if re.search(r"(_on|_since|_start|_end|^last_.*|_month|_meeting)$", name):
        return "2026-09-30"
    if name in ("account_name", "owner", "incomplete_visit_by"):
        return "华东机电"
    if name in ("signed_commitment", "commitment_ref"):
        return "C-17"
    return n


def test_every_builtin_rule_has_all_its_texts_in_chinese(pm):
    rules = _builtin(pm)
    assert len(rules) >= 36
    missing = [r.code for r in rules if "zh" not in r.langs]
    assert missing == []


@pytest.mark.parametrize("n", [1, 2, 1_234_567])
def test_every_builtin_rule_renders_chinese_message_and_actions(pm, n):
    for rule in _builtin(pm):
        facts = {f: _value(f, n) for f in rule.message_fields + rule.facts}
        thresholds = {
            k: (v.get("warning", next(iter(v.values()))) if isinstance(v, dict) else v)
            for k, v in rule.thresholds.items()
        }
        text = format_message(rule, localized(facts, "zh"), thresholds, AS_OF, "zh")
        tr = rule.translations["zh"]
        for shown in [text, tr.action, *tr.actions]:
            assert CJK.search(shown), (rule.code, shown)
            # no English outside the values put in (codes, numbers, dates and names are not words here)
            left = WORD.findall(re.sub(r"\b[A-Z]{2,5}\d{3}\b|C-17|n/a", "", shown))
            assert left == [], (rule.code, shown, left)
        assert "{" not in text and "day" not in text
        if n == 1_234_567 and ":,.0f}" in tr.message:  # amounts ({x:,.0f}) in 万 in Chinese
            assert "123.5万" in text, (rule.code, text)


def test_enumeration_values_and_phrases_print_in_chinese(pm):
    rule = next(r for r in _builtin(pm) if r.code == "KAM403")
    facts = {"regressed_from": "proposal", "regressed_to": "visit", "regressed_on": "2026-10-01"}
    facts |= {"days_since_regression": 30}
    text = format_message(rule, localized(facts, "zh"), {"days": 90}, AS_OF, "zh")
    assert text == "2026-10-01从「建议书」退回到「拜访」（距2026-10-31已30天）；观察期90天"
    en = format_message(rule, facts, {"days": 90}, AS_OF)
    assert en.startswith("moved back from proposal to visit on 2026-10-01 (30 days before")


def _write(tmp_path, body: str, name="r.yaml"):
    f = tmp_path / name
    f.write_text(
        "ruleset: mine\nrules:\n  - code: ABC101\n    name: x\n    when: ['n > $t']\n    thresholds: {t: 1}\n" + body,
        encoding="utf-8",
    )
    return f


ONE = "    message: '{n|day} to {as_of}'\n    action: do it\n"


def test_rule_without_chinese_falls_back_to_english_and_is_listed(tmp_path, pm):
    f = _write(tmp_path, ONE)
    rule = parse_ruleset(f).rules[0]
    assert rule.langs == ("en",)
    assert format_message(rule, {"n": 2}, {}, AS_OF, "zh") == "2 days to 2026-10-31"  # English, English plurals
    assert rule.action_for({"n": 2}, {}, "zh") == "do it"
    partial = _write(tmp_path, "    message: {en: '{n|day}', zh: '{n|天}'}\n    action: do it\n", "p.yaml")
    assert parse_ruleset(partial).rules[0].langs == ("en",)  # the action has no zh: not complete
    runner = CliRunner()
    r = runner.invoke(cli, ["rules", "--rulesets", str(f), "--ruleset", "mine", "--missing-lang", "zh"])
    assert r.exit_code == 0 and "ABC101" in r.output and "(English only)" in r.output
    r = runner.invoke(cli, ["rules", "--ruleset", "stalled_stages", "--missing-lang", "zh"])
    assert r.exit_code == 0 and "every rule has its texts in zh" in r.output
    r = runner.invoke(cli, ["rules", "--rulesets", str(f), "--ruleset", "mine", "--format", "json"])
    got = json.loads(r.output)[0]["rules"][0]
    assert got["langs"] == ["en"] and got["translations"] == {}


def test_both_languages_load_and_render(tmp_path):
    f = _write(
        tmp_path,
        "    description:\n      en: Long text\n      zh: 说明\n"
        "    message:\n      en: '{n|day} to {as_of}'\n      zh: '截至{as_of}已{n|天}'\n"
        "    action:\n      - when: 'n > 5'\n        text: {en: hurry, zh: 赶快}\n      - text: {en: do it, zh: 去做}\n",
    )
    rule = parse_ruleset(f).rules[0]
    assert rule.langs == ("en", "zh") and rule.description_in("zh") == "说明" and rule.description == "Long text"
    assert format_message(rule, {"n": 1}, {}, AS_OF, "zh") == "截至2026-10-31已1天"
    assert format_message(rule, {"n": 1}, {}, AS_OF) == "1 day to 2026-10-31"
    assert rule.action_for({"n": 9}, {}, "zh") == "赶快" and rule.action_for({"n": 2}, {}, "zh") == "去做"
    assert rule.action_for({"n": 9}, {}) == "hurry"


@pytest.mark.parametrize(
    "body, where, problem",
    [
        (
            "    message: {en: 'a {n}', fr: 'b {n}'}\n    action: x\n",
            ":7:",
            "unknown language 'fr' (expected one of: en, zh)",
        ),
        ("    message: {zh: '{n}天'}\n    action: x\n", ":7:", "message: no 'en' text"),
        ("    message: {en: 'a {n}', zh: 5}\n    action: x\n", ":7:", "message.zh: a number (expected non-empty text)"),
        (
            "    message: {en: 'a {n}', zh: '{n}和{m}'}\n    action: x\n",
            ":7:",
            "message.zh uses fields the en message does not: {m}",
        ),
        ("    message: {en: '{n|day}', zh: '{n|天|天}'}\n    action: x\n", ":7:", "zh has no plural"),
        ("    message: {en: '{n}', zh: '{n.x}'}\n    action: x\n", ":7:", "message.zh: field {n.x}: attribute"),
        ("    message: 'a {n}'\n    action: {en: x, zh: \"a\\nb\"}\n", ":8:", "action.zh: a line break"),
        ("    message: 'a {n}'\n    action: {en: x, de: y}\n", ":8:", "action: unknown language 'de'"),
        ("    message: 'a {n}'\n    action:\n      - text: {zh: y}\n", ":9:", "text: no 'en' text"),
        ("    message: 'a {n}'\n    action: x\n    description: {en: a, zh: [1]}\n", ":9:", "description.zh: a list"),
        ("    message: 'a {n'\n    action: {en: x, zh: y}\n", ":7:", "message: not a valid format string"),
    ],
)
def test_loader_errors_for_texts_per_language(tmp_path, body, where, problem):
    f = _write(tmp_path, body)
    with pytest.raises(InputError) as e:
        parse_ruleset(f)
    shown = "\n".join(map(str, e.value.problems))
    assert problem in shown and f"r.yaml{where}" in shown, shown
    assert re.search(r"r\.yaml:\d+:\d+: ", shown), shown  # FILE:LINE:COL


def test_ruleset_description_per_language(tmp_path):
    f = tmp_path / "d.yaml"
    f.write_text(
        "ruleset: d\ndescription: {en: Things, zh: 事项}\nrules:\n  - code: ABC101\n    name: x\n"
        "    when: ['n > 1']\n    message: 'a {n}'\n    action: x\n",
        encoding="utf-8",
    )
    rs = parse_ruleset(f)
    assert rs.description == "Things" and rs.description_in("zh") == "事项" and rs.description_in("en") == "Things"


@pytest.fixture
def small_book(tmp_path, pm):
    path = tmp_path / "book.db"
    with Store.open(path, pm=pm) as s:
        generate_to_store(s, 12, seed=5, as_of=AS_OF)
    return path


def test_check_markdown_in_chinese_golden(small_book, monkeypatch):
    from test_cli_check import golden

    monkeypatch.delenv("KAMRULES_LANG", raising=False)
    monkeypatch.setenv("KAMRULES_LOAD_PLUGINS", "")
    r = CliRunner().invoke(
        cli,
        ["check", "--db", str(small_book), "--as-of", AS_OF, "--no-history", "--lang", "zh", "--format", "markdown"],
    )
    assert r.exit_code in (0, 1), r.output
    text = re.sub(r"; \d+\.\ds$", "; (seconds)", r.stdout, flags=re.M)
    golden("check_builtin_zh.md", text)
    assert "| 建议 |" in text and CJK.search(text)


def test_history_keeps_both_languages_and_shows_the_readers(small_book, monkeypatch, tmp_path):
    monkeypatch.setenv("KAMRULES_LOAD_PLUGINS", "")
    runner = CliRunner()
    r = runner.invoke(cli, ["check", "--db", str(small_book), "--as-of", AS_OF, "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    alerts = json.loads(r.stdout)
    assert alerts and all("texts" not in a for a in alerts)  # machine formats: English, unchanged
    fp = alerts[0]["fingerprint"]
    en = runner.invoke(cli, ["alerts", "show", fp, "--db", str(small_book)])
    zh = runner.invoke(cli, ["alerts", "show", fp, "--db", str(small_book), "--lang", "zh"])
    assert alerts[0]["message"] in en.output
    assert alerts[0]["message"] not in zh.output and CJK.search(zh.output.split("message:")[1].split("\n")[0])
