"""Backtests sharing work across dates: multi-date providers equal single-date ones; checks at each date; read-only."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamrules.backtest import open_read_only
from kamrules.backtest_run import run_dates
from kamrules.check import CheckRequest, run_check
from kamrules.facts import FactProvider, FactSource, collect_providers, drop_dates
from kamrules.plugins import default_plugin_manager

DAY0 = dt.date(2024, 6, 1)  # the generated book (as of 2026-10-31) holds about two years of records
dates_st = st.lists(
    st.integers(0, 900).map(lambda n: (DAY0 + dt.timedelta(days=n)).isoformat()), min_size=1, max_size=5, unique=True
)


@pytest.fixture(scope="module")
def ro(_book_template):
    s = open_read_only(_book_template)
    yield s
    s.close()


def multi_date_providers(pm):
    return [p for p in collect_providers(pm) if p.multi_date_sql]


def facts_at(store, providers, as_of, dates=None):
    """{account_id: facts} of ``providers`` at ``as_of``; with ``dates``, from their multi-date pass."""
    failures: list = []
    source = FactSource(store, as_of, providers, failures)
    if dates is not None:
        source.use_dates(dates)
    with source:
        out = {f["account_id"]: f for f in source.accounts()}
    assert failures == []
    return out


def test_some_providers_support_multi_date_evaluation():
    names = {p.name for p in multi_date_providers(default_plugin_manager())}
    assert "won_date" in names


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dates=dates_st)
def test_multi_date_facts_equal_single_date_facts_for_every_provider(ro, dates):
    providers = multi_date_providers(ro.pm)
    try:
        for p in providers:
            for d in dates:
                single = facts_at(ro, [p], d)
                multi = facts_at(ro, [p], d, dates)
                assert multi == single, (p.name, d)
                assert any(p.facts[0] in f for f in single.values()), (p.name, d)  # not vacuous: facts at that date
            # the multi-date pass really ran (no fallback to sql): its table holds every date
            source = FactSource(ro, dates[0], [p], [])
            source.use_dates(dates)
            table = source._multi[p.name]
            assert {r[0] for r in ro.conn.execute(f"SELECT DISTINCT as_of FROM temp.{table}")} <= set(dates)
            assert ro.conn.execute(f"SELECT COUNT(DISTINCT as_of) FROM temp.{table}").fetchone()[0] == len(dates)
    finally:
        drop_dates(ro)


def test_a_failing_multi_date_query_falls_back_to_the_per_date_sql(ro):
    p = FactProvider(
        name="probe",
        facts=("probe_day",),
        sql="SELECT id AS account_id, :as_of AS probe_day FROM accounts",
        multi_date_sql="SELECT no_such_column FROM as_of_dates",
    )
    try:
        got = facts_at(ro, [p], "2026-09-30", ["2026-08-31", "2026-09-30"])
        assert {f["probe_day"] for f in got.values()} == {"2026-09-30"} and len(got) == ro.count("accounts")
    finally:
        drop_dates(ro)
    with pytest.raises(ValueError, match="multi_date_sql"):
        FactProvider(name="x", scope="portfolio", sql="SELECT 1", multi_date_sql="SELECT 1")


def key(alerts):
    return [(a.fingerprint, a.severity, a.message, a.evidence, a.as_of) for a in alerts]


@pytest.mark.parametrize("jobs", [1, 2])
def test_shared_dates_in_worker_parts_equal_checks(ro, jobs):
    dates = ["2026-06-30", "2026-08-15", "2026-10-31"]
    request = CheckRequest(dates[0], jobs=jobs, part_size=50)  # 200 accounts: four parts
    got = list(run_dates(ro, dates, request))
    assert [r.as_of for r in got] == dates
    for d, r in zip(dates, got, strict=True):
        want = run_check(ro, as_of=d, jobs=1)
        assert r.summary.complete and want.summary.complete
        assert key(r.alerts) == key(want.alerts) and r.alerts
        assert r.summary.skipped == want.summary.skipped and r.summary.newest == want.summary.newest
    # the multi-date tables of the parent's connection are gone
    left = ro.conn.execute("SELECT name FROM temp.sqlite_master WHERE name LIKE 'kam%' OR name = 'as_of_dates'")
    assert left.fetchall() == []


def test_shared_dates_write_nothing(tmp_path, _book_template):
    import shutil

    db = tmp_path / "book.db"
    shutil.copyfile(_book_template, db)
    before = hashlib.sha256(Path(db).read_bytes()).hexdigest()
    s = open_read_only(db)
    try:
        results = list(run_dates(s, ["2026-09-30", "2026-10-31"], CheckRequest("2026-09-30", jobs=2, part_size=50)))
        assert all(r.alerts for r in results)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            s.conn.execute("CREATE TABLE main.x (a)")
    finally:
        s.close()
    assert hashlib.sha256(Path(db).read_bytes()).hexdigest() == before


# -- small items of issue 16's notes ------------------------------------------------------------------


def test_code_rulesets_reads_configured_folders_next_to_the_config_file(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from kamrules import runs
    from kamrules.config import load_settings

    root = Path(__file__).resolve().parent.parent
    cfg = tmp_path / "cfg"
    (cfg / "myrules").mkdir(parents=True)
    text = (root / "rulesets" / "churn_signals" / "rules.yaml").read_text(encoding="utf-8")
    text = text.replace("  - code: KAM501\n", "  - code: KAM501\n    enabled: false\n", 1)
    (cfg / "myrules" / "churn_signals.yaml").write_text(text, encoding="utf-8")
    (cfg / "kamrules.toml").write_text('rulesets = ["myrules"]\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the config's folder: "myrules" is not here
    settings = load_settings(cfg / "kamrules.toml", environ={})
    result = SimpleNamespace(summary=SimpleNamespace(skipped=(("X", "y"),), select=(), ignore=()))
    codes = runs.code_rulesets(result, default_plugin_manager(), settings)
    assert codes is not None and "KAM502" in codes
    assert "KAM501" not in codes  # the user's copy (KAM501 disabled) was read, not only the built-in file


def test_health_warns_of_stale_data_like_check(tmp_path, _book_template):
    import shutil

    from click.testing import CliRunner

    from kamrules.cli import cli

    db = tmp_path / "book.db"
    shutil.copyfile(_book_template, db)

    def health(as_of, **env):
        return CliRunner().invoke(
            cli,
            ["--db", str(db), "health", "--as-of", as_of, "--format", "json"],
            env={"KAMRULES_LOAD_PLUGINS": "", **env},
            catch_exceptions=False,
        )

    old = health("2027-01-31")  # three months past the book's newest records
    assert old.exit_code == 0, old.output
    assert "WARNING stale data: newest records as of 2027-01-31" in old.stderr and "orders 2026-10" in old.stderr
    quiet = tmp_path / "quiet.toml"
    quiet.write_text("[check]\nstale_after_days = 0\n", encoding="utf-8")
    silenced = health("2027-01-31", KAMRULES_CONFIG=str(quiet))  # 0 silences it, as for check
    assert silenced.exit_code == 0 and "stale" not in silenced.stderr
    check = CliRunner().invoke(
        cli,
        ["--db", str(db), "check", "--as-of", "2027-01-31", "--no-history", "--fail-on", "never"],
        env={"KAMRULES_LOAD_PLUGINS": ""},
        catch_exceptions=False,
    )
    first = [line for line in old.stderr.splitlines() if line.startswith("WARNING stale data")]
    assert first and first[0] in check.stderr  # the same words as check's
