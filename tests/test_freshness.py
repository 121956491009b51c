"""Honest about the data (issue 13): the newest record per table a check read, the stale-data warning
(summary, JSON summary, Markdown, digest header), rules flagged for stale tables, and rules skipped for a
required column with no values (requires_columns). Real generated books in real SQLite files."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kamrules.check import CheckRequest, run, run_check
from kamrules.cli import cli
from kamrules.config import load_settings
from kamrules.runs import newest_dates

AS_OF = "2026-10-31"  # the generated book's last day
LATE = "2026-12-15"  # 45 days after it: an export that lags


def test_fresh_book_reports_newest_dates_and_no_warning(book_store, pm):
    # the limit is per table: on this 200-account book the newest concession is 16 days old (a sparse
    # table trips the default 14 days, see the next test), so a limit of 30 days here
    r = run(book_store, CheckRequest(AS_OF, jobs=1, stale_after_days=30), pm)
    s = r.summary
    assert {"activities", "orders", "concessions"} <= set(s.newest)
    # the same figures the runs table records (one function: kamrules.runs.newest_dates)
    every = newest_dates(book_store.conn, AS_OF)
    assert s.newest == {t: every[t] for t in s.newest}
    assert all(d <= AS_OF for d in s.newest.values() if d)
    assert s.stale == () and s.stale_rules == () and s.warnings() == []
    d = s.to_dict()
    assert d["newest"] == dict(s.newest) and d["stale"] == [] and d["stale_after_days"] == 30


def test_default_limit_judges_each_table(book_store, pm):
    s = run_check(book_store, AS_OF, pm=pm, jobs=1).summary
    assert s.stale_after_days == 14
    stale = {t for t, _, _ in s.stale}
    assert stale == {t for t, d in s.newest.items() if d and d < "2026-10-17"}
    assert "activities" not in stale and "orders" not in stale


def test_late_as_of_warns_naming_dates_and_how_to_silence(book_store, pm):
    s = run_check(book_store, LATE, pm=pm, jobs=1).summary
    stale = {t: (day, n) for t, day, n in s.stale}
    newest_order = newest_dates(book_store.conn, LATE)["orders"]
    assert stale["orders"] == (
        newest_order,
        (__import__("datetime").date(2026, 12, 15) - __import__("datetime").date.fromisoformat(newest_order)).days,
    )
    warning = "\n".join(s.warnings())
    assert newest_order in warning and "stale_after_days" in warning and "0 silences" in warning
    assert warning in "\n".join(s.details())  # on stderr with the summary
    # rules reading a stale table are flagged; a rule on account columns only (no_ka_manager) is not
    assert "KAM201" in s.stale_rules and "KAM101" in s.stale_rules
    assert "KAM301" not in s.stale_rules
    d = json.loads(json.dumps(s.to_dict()))
    assert {"table": "orders", "newest": newest_order, "days": stale["orders"][1]} in d["stale"]
    assert d["stale_rules"] == list(s.stale_rules)


@pytest.mark.parametrize("days, warns", [(0, False), (90, False), (30, True)])
def test_stale_after_days_is_tunable(book_store, pm, days, warns):
    s = run(book_store, CheckRequest(LATE, jobs=1, stale_after_days=days), pm).summary
    assert bool(s.warnings()) is warns
    assert s.newest  # reported whatever the limit


def test_setting_in_config_file(tmp_path):
    cfg = tmp_path / "kamrules.toml"
    cfg.write_text("[check]\nstale_after_days = 45\n", encoding="utf-8")
    settings = load_settings(cfg, environ={})
    assert CheckRequest.from_settings(settings, LATE).stale_after_days == 45
    assert CheckRequest.from_settings(load_settings(None, environ={}), LATE).stale_after_days == 14
    cfg.write_text("[check]\nstale_after_days = -1\n", encoding="utf-8")
    from kamrules.errors import InputError

    with pytest.raises(InputError) as e:
        load_settings(cfg, environ={})
    assert "stale_after_days" in str(e.value) + " ".join(map(str, getattr(e.value, "problems", ()) or ()))


def test_cli_stderr_and_markdown_carry_the_warning(book_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB"):
        monkeypatch.delenv(var, raising=False)
    path = str(book_store.path)
    book_store.close()
    r = CliRunner().invoke(
        cli,
        ["check", "--db", path, "--as-of", LATE, "--no-history", "--format", "markdown", "-j", "1"],
        catch_exceptions=False,
    )
    assert "WARNING stale data" in r.stderr and "stale_after_days" in r.stderr
    assert "**WARNING stale data" in r.stdout
    # the setting silences it (a sparse table of this small book, concessions, is 16 days old on AS_OF)
    (tmp_path / "kamrules.toml").write_text("[check]\nstale_after_days = 30\n", encoding="utf-8")
    monkeypatch.setenv("KAMRULES_CONFIG", str(tmp_path / "kamrules.toml"))
    fresh = CliRunner().invoke(
        cli, ["check", "--db", path, "--as-of", AS_OF, "--no-history", "-j", "1"], catch_exceptions=False
    )
    assert "concessions" not in fresh.stderr and "stale" not in fresh.stderr


def test_digest_header_carries_the_warning(book_store, pm):
    from kamrules.lifecycle.digest import context, digest_warnings, render_parts
    from kamrules.lifecycle.notifiers import DueItem

    r = run_check(book_store, LATE, pm=pm, jobs=1)
    items = [DueItem(a, "new", 1, LATE + "T00:00:00Z") for a in r.alerts[:5]]
    with digest_warnings(r.summary.warnings()):
        ctx = context("ka@example.com", items, LATE, "k1")
    assert ctx["warnings"] == r.summary.warnings()
    _, text, html = render_parts(ctx, None)
    head = text.split("==", 1)[0]
    assert "WARNING stale data" in head
    assert "WARNING stale data" in html
    assert context("ka@example.com", items, LATE, "k1")["warnings"] == []  # outside a check: none


def test_cost_to_serve_skipped_when_no_activity_has_a_cost(book_store, pm):
    before = run_check(book_store, AS_OF, pm=pm, jobs=1)
    assert any(a.code == "KAM105" for a in before.alerts)  # the generated book has costs: it fires
    assert "KAM105" in before.summary.codes
    book_store.conn.execute("UPDATE activities SET cost = NULL")
    book_store.conn.commit()
    after = run_check(book_store, AS_OF, pm=pm, jobs=1)
    skipped = dict(after.summary.skipped)
    assert "activities.cost" in skipped["KAM105"] and "NULL in every row" in skipped["KAM105"]
    assert not any(a.code == "KAM105" for a in after.alerts)
    assert "skipped KAM105: no values in column activities.cost" in "\n".join(after.summary.details())
    # rules that read other facts of the same provider still run; net margin counts no cost as 0
    assert {"KAM106", "KAM201"} <= set(after.summary.codes)


def test_explain_says_why_cost_to_serve_is_skipped(book_store, pm):
    from kamrules.explain import explain_account

    book_store.conn.execute("UPDATE activities SET cost = NULL")
    book_store.conn.commit()
    acc = book_store.conn.execute("SELECT id FROM accounts LIMIT 1").fetchone()[0]
    ex = explain_account(book_store, acc, AS_OF, pm=pm)
    v = next(v for v in ex.verdicts if v.code == "KAM105")
    assert v.status == "skipped" and "activities.cost" in v.reason
    assert not ex.failures
