"""Chinese bodies: explain, health and backtest tables, the health trend and the digest's summary hold no English
words apart from codes, names and values; English output is unchanged (the other tests' literals and goldens)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules.cli import cli

AS_OF = "2026-10-31"
WORD = re.compile(r"[A-Za-z]{3,}")


def run(db, *args, plugins=False):
    """The CLI; ``plugins``: with the installed plugins (the receivables rule set), as the library's default."""
    env = {} if plugins else {"KAMRULES_LOAD_PLUGINS": ""}
    return CliRunner().invoke(cli, ["--db", str(db), *args], env=env, catch_exceptions=False)


def english_words(text: str, known) -> list[str]:
    """Latin words of 3+ letters left in ``text`` once code spans (`...`), quoted values ('...') and each
    ``known`` string (codes, names, values, given exactly) are taken out."""
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"'[^'\n]*'", " ", text)
    for k in sorted({str(k) for k in known if k}, key=len, reverse=True):
        text = text.replace(k, " ")
    return sorted(set(WORD.findall(text)))


def test_the_helper_finds_english_and_lets_known_names_through():
    assert english_words("健康分 67 关注 KAM304 no_executive_meeting", {"KAM304", "no_executive_meeting"}) == []
    assert english_words("健康分 67 watch", {"KAM304"}) == ["watch"]
    assert english_words("未触发：`tier in [mid, small]` 不成立（tier = 'key'）", {"tier"}) == []
    assert english_words("skipped: 表 invoices", {"invoices"}) == ["skipped"]


@pytest.fixture
def book(book_store):
    """The names a zh body may show as they are: accounts, owners, tables, rule sets, rules, facts."""
    from kamrules.check import load_rulesets

    c = book_store.conn
    names = {x for row in c.execute("SELECT id, name, owner FROM accounts") for x in row if x}
    names |= {t for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for rs in load_rulesets(book_store, book_store.pm, ()):
        names.add(rs.name)
        for rule in rs.rules:
            names |= {rule.code, rule.name, *rule.facts}
    names.add("kamrules")  # the program's name
    return names


@pytest.fixture
def db(book_store, book):
    """The book's path, its store closed (the CLI opens it)."""
    path = book_store.path
    book_store.close()
    return path


def _worst(db):
    rows = json.loads(run(db, "health", "--as-of", AS_OF, "--format", "json").stdout)
    return rows[0]


def test_explain_in_chinese(db, book):
    from kamrules.explain import explain_account
    from kamrules.i18n import using
    from kamrules.store import Store

    acc = _worst(db)["account_id"]
    r = run(db, "explain", acc, "--as-of", AS_OF, "--lang", "zh", plugins=True)
    assert r.exit_code == 0, r.output
    head, rest = r.stdout.split("\n规则：\n", 1)
    rules, health = rest.split("\n\n健康分：", 1)
    lines = head.splitlines()
    assert lines[0] == f"客户 {acc}，截至{AS_OF}" and lines[2] == "指标："
    facts = json.loads(run(db, "explain", acc, "--as-of", AS_OF, "--format", "json", plugins=True).stdout)["facts"]
    for line in lines[3:]:  # name and value: data, as stored
        assert line.split()[0] in facts, line
    s = Store.open(db)
    try:
        with using("zh"):
            ex = explain_account(s, acc, AS_OF)
    finally:
        s.close()
    statuses = {"fired": "触发", "not_fired": "-", "skipped": "跳过", "portfolio": "整体", "disabled": "停用"}
    shown = rules.splitlines()
    for v in ex.verdicts:
        assert v.reason and v.text != v.reason  # English for JSON, Chinese for people
        assert english_words(v.text, book | set(facts)) == [], (v.code, v.text)
        i = next((i for i, ln in enumerate(shown) if ln.startswith(f"  {v.code} ")), None)
        assert i is not None, (v.code, rules)
        assert shown[i].split()[1] == statuses[v.status]
        assert shown[i].split(None, 2)[2].startswith(v.text[:8])  # the table shows the Chinese reason
    assert {v.status for v in ex.verdicts} >= {"fired", "not_fired", "skipped"}
    assert any(v.text.startswith("触发：警告") or v.text.startswith("触发：严重") for v in ex.verdicts)
    assert any("不成立（" in v.text for v in ex.verdicts)
    assert any(v.text == "已跳过：表 invoices 没有数据" for v in ex.verdicts)
    # the score explanation
    assert english_words("健康分：" + health, book | {"default", "key_accounts", "small_accounts"}) == []
    assert "扣分比例 提示 0.1，警告 0.4，严重 1" in health and "分值" in health


def test_explain_json_stays_english(db):
    acc = _worst(db)["account_id"]
    en = json.loads(run(db, "explain", acc, "--as-of", AS_OF, "--format", "json", plugins=True).stdout)
    zh = json.loads(run(db, "explain", acc, "--as-of", AS_OF, "--format", "json", "--lang", "zh", plugins=True).stdout)
    assert en == zh
    reasons = [v["reason"] for v in en["rules"]]
    assert any(x.startswith("fired: ") for x in reasons) and any(x.startswith("not fired: `") for x in reasons)
    assert "skipped: no rows in table invoices" in reasons


def test_health_table_in_chinese(db, book):
    assert run(db, "check", "--as-of", "2026-09-30", "--fail-on", "never").exit_code == 0
    assert run(db, "check", "--as-of", AS_OF, "--fail-on", "never").exit_code == 0
    r = run(db, "health", "--as-of", AS_OF, "--lang", "zh")
    assert r.exit_code == 0, r.output
    assert english_words(r.stdout, book) == [], r.stdout
    assert english_words(r.stderr, book) == [], r.stderr
    head = r.stdout.splitlines()[0].split()
    assert head == ["客户", "负责人", "级别", "健康分", "等级", "趋势", "30天", "主要驱动因素"]
    assert "全部客户" in r.stdout and "近12个月收入（按等级）：健康：" in r.stdout and "亿" in r.stdout
    assert "健康分来自运行 2" in r.stderr and "趋势对比：运行 1（截至2026-09-30）" in r.stderr
    assert re.search(r"[↑↓→]", r.stdout)
    # computed on the fly: its note in Chinese too
    fly = run(db, "health", "--as-of", "2026-10-15", "--lang", "zh")
    assert fly.exit_code == 0 and "没有已记录的运行：健康分为临时计算" in fly.stderr
    assert english_words(fly.stderr, book) == [], fly.stderr
    # machine formats stay English
    assert run(db, "health", "--as-of", AS_OF, "--format", "csv", "--lang", "zh").stdout == (
        run(db, "health", "--as-of", AS_OF, "--format", "csv").stdout
    )


def test_backtest_table_in_chinese(db, book, tmp_path):
    from kamrules.check import load_rulesets
    from kamrules.store import Store

    s = Store.open(db)
    try:
        src = Path(next(rs for rs in load_rulesets(s, s.pm, ()) if rs.name == "over_subsidising").path)
    finally:
        s.close()
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / src.name).write_text(src.read_text(encoding="utf-8").replace("0.1", "0.05"), encoding="utf-8")
    args = ("backtest", "--from", "2026-10-01", "--to", AS_OF, "--every", "10d")
    r = run(db, *args, "--compare", str(tuned), "--lang", "zh")
    assert r.exit_code == 0, r.output
    assert english_words(r.stdout, book | {str(tuned), "--compare"}) == [], r.stdout
    assert english_words(r.stderr, book | {str(tuned), "--compare"}) == [], r.stderr
    assert "回测 2026-10-01 至 2026-10-31，每10天一次：4个日期，200个客户" in r.stdout
    assert "日期        告警  严重  警告  提示  新增  已解除  健康  关注  有风险  危险" in r.stdout
    assert "整个区间合计：" in r.stdout or "没有差异" in r.stdout
    week = run(db, "backtest", "--from", "2026-10-01", "--to", AS_OF, "--lang", "zh")
    assert "每周一次" in week.stdout
    timing = re.compile(r'"(seconds|duration[a-z_]*)": [0-9.]+')  # the run's time varies
    for fmt in ("json", "csv"):
        zh, en = (run(db, *args, "--format", fmt, *lang).stdout for lang in (("--lang", "zh"), ()))
        assert timing.sub("", zh) == timing.sub("", en)


def test_trend_text():
    from kamrules.i18n import using
    from kamrules.runs import trend_text

    h = {"score": 62, "grade_en": "watch", "grade_zh": "关注", "trend": "down", "change": -12}
    assert trend_text(h) == "62 watch ↓-12"
    with using("zh"):
        assert trend_text(h) == "62 关注 ↓-12"
        assert trend_text(dict(h, trend=None, change=None)) == "62 关注"


def test_digest_with_health_trends_in_chinese(book_store, server, book):
    from smtp_server import settings_for

    from kamrules.check import run_check
    from kamrules.lifecycle import record_and_notify

    s = settings_for(server.port, lang="zh", KAMRULES_EMAIL_DEFAULT_TO="ka-team@example.com")
    now = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
    first = run_check(book_store, as_of="2026-09-30", jobs=1)
    record_and_notify(book_store, first, notify=(), now=now - dt.timedelta(days=31))
    r = record_and_notify(
        book_store, run_check(book_store, as_of=AS_OF, jobs=1), notify=("email",), settings=s, now=now
    )
    assert r.sent > 0 and r.undelivered == 0
    arrows = books = 0
    for m in server.received:
        text = m.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = m.message.get_body(("html",)).get_content()
        opening = text.split("\n== ", 1)[0]
        heads = [ln for ln in text.splitlines() if ln.startswith("== ")]
        assert "（较上次汇总）" in opening
        books += "你名下客户的健康度：" in opening  # a digest for owners with scored accounts
        assert heads and all("健康度 " in h for h in heads if "(" in h)
        arrows += sum(bool(re.search(r"健康度 \d+ \S+ [↑↓→]", h)) for h in heads)
        names = book | set(m.rcpt_tos)  # the recipient stands for "who" when an alert has no owner
        assert english_words(opening + "\n".join(heads), names) == [], opening + "\n".join(heads)
        summary = re.search(r'<p style="margin: 8px 0;[^>]*>(.*?)</p>', html, re.S).group(1)
        h3 = " ".join(re.findall(r"<h3[^>]*>(.*?)</h3>", html))
        words = english_words(re.sub(r"<[^>]+>", " ", summary + h3), names)
        assert words == [], words
        assert "<b>" in summary and "。" in summary
        assert ("各等级客户数：" in html) == ("你名下客户的健康度：" in html)  # the chart's alt text
    assert arrows > 0 and books > 0
