"""Output in Chinese end to end: the check's table and markdown (golden files), a digest through a real SMTP server."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from smtp_server import Result, alert, settings_for
from test_cli_check import check, env, golden  # noqa: F401 (env is a fixture)

from kamrules.lifecycle import record_and_notify

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)


def test_golden_table_zh(env):
    r = check(env, "--lang", "zh")
    assert r.exit_code == 1
    golden("check_examples_table_zh.txt", r.stdout)
    assert "严重  TST102" in r.stdout and "（无负责人）：3条告警" in r.stdout
    assert "截至2026-10-31共检查4个客户：5条告警（1条严重, 2条警告, 2条提示）" in r.stderr
    assert "已跳过 TST201" in r.stderr


def test_golden_markdown_zh(env):
    r = check(env, "--format", "markdown", "--lang", "zh")
    golden("check_examples_zh.md", re.sub(r"; \d+\.\ds$", "; (seconds)", r.stdout, flags=re.M))  # the run's time varies
    assert "| 客户 | 级别 | 编号 | 问题 | 建议 |" in r.stdout and "| 严重 |" in r.stdout


def test_english_is_the_default_and_unchanged(env):
    r = check(env)
    assert "CRIT  TST102" in r.stdout and "(no owner): 3 alerts" in r.stdout
    assert "严重" not in r.stdout + r.stderr


def test_lang_from_the_settings_file(env):
    (env / "kamrules.toml").write_text('lang = "zh"\n', encoding="utf-8")
    r = check(env)
    assert "（无负责人）：3条告警" in r.stdout


def test_zh_table_wraps_without_a_line_starting_with_a_mark(env):
    from kamrules.termtable import NO_START

    r = check(env, "--lang", "zh")
    for line in r.stdout.splitlines():
        assert not line.strip() or line.strip()[0] not in NO_START, line


def _book():
    return Result(
        (
            alert(
                "KAM101",
                "critical",
                "A001",
                "华东机电",
                "王磊",
                "wanglei@example.com",
                evidence={"concessions_12m": 14_485_000.0, "revenue_12m": 285_000_000.0, "days": 92},
            ),
            alert("KAM103", "warning", "A001", "华东机电", "王磊", "wanglei@example.com"),
            alert("KAM201", "warning", "A002", "苏州精工", "王磊", "wanglei@example.com"),
            alert("KAM401", "info", "B001", "Acme Ltd", "Lina Li", "director@example.com"),
        )
    )


def _received(server):
    return {to: r.message for r in server.received for to in r.rcpt_tos}


def test_digest_in_chinese_through_a_real_smtp_server(store, server, pm):
    from kamrules import i18n

    s = settings_for(server.port, lang="zh", lang_by_recipient={"director@example.com": "en"})
    with i18n.using("en"):  # the run is English; [email] lang = "zh" decides the mails
        report = record_and_notify(store, _book(), notify=("email",), settings=s, pm=pm, now=NOW)
    assert (report.sent, report.failed) == (2, 0)
    got = _received(server)
    m = got["wanglei@example.com"]
    assert m["Subject"] == "[kamrules] 王磊: 1条严重, 2条警告 — 截至2026-10-31"
    text = m.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = m.get_body(("html",)).get_content()
    assert text.startswith("kamrules 告警汇总：王磊 — 截至2026-10-31\n1条严重, 2条警告\n")
    assert "[严重] KAM101" in text and "[警告] KAM103" in text
    assert "concessions_12m=1,448.5万" in text and "revenue_12m=2.85亿" in text and "days=92" in text
    assert "建议：" in text and "由 kamrules 发送" in text
    assert not re.search(r"\b(CRITICAL|WARNING|action:|numbers:|as of)\b", text)
    assert "<title>kamrules 告警汇总：王磊</title>" in html and ">严重</td>" in html and 'lang="zh-CN"' in html
    assert "截至2026-10-31" in html and "1条严重, 2条警告" in html
    # a per-recipient override: the director reads English
    d = got["director@example.com"]
    assert d["Subject"] == "[kamrules] Lina Li: 1 info — as of 2026-10-31"
    assert "[INFO] KAM401" in d.get_body(("plain",)).get_content()


def test_digest_follows_the_run_language_without_email_settings(store, server, pm):
    from kamrules import i18n

    s = settings_for(server.port)
    with i18n.using("zh"):
        record_and_notify(store, _book(), notify=("email",), settings=s, pm=pm, now=NOW)
    assert _received(server)["director@example.com"]["Subject"] == "[kamrules] Lina Li: 1条提示 — 截至2026-10-31"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_notify_command_takes_lang(lang):
    from click.testing import CliRunner

    from kamrules.cli import cli

    r = CliRunner().invoke(cli, ["notify", "--lang", lang, "--help"])
    assert r.exit_code == 0
