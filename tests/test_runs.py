"""The runs table: one row per recorded check, events pointing at their run, and the migration of older stores."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from click.testing import CliRunner
from smtp_server import Result, alert

from kamrules.cli import cli
from kamrules.lifecycle import history, record_and_notify
from kamrules.lifecycle.history import Scope
from kamrules.migrations import MIGRATIONS, latest_version
from kamrules.store import Store

NOW = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def run(args, db):
    return CliRunner().invoke(cli, ["--db", str(db)] + args, env={"KAMRULES_LOAD_PLUGINS": ""}, catch_exceptions=False)


def q(db, sql, params=()):
    c = sqlite3.connect(str(db))
    try:
        return c.execute(sql, params).fetchall()
    finally:
        c.close()


def test_a_recorded_check_is_a_run_with_counts_dates_and_scores(book_store):
    db = book_store.path
    book_store.close()
    r = run(["check", "--as-of", "2026-10-31", "--format", "json", "--fail-on", "never"], db)
    assert r.exit_code == 0
    alerts = json.loads(r.stdout)
    (row,) = q(
        db,
        "SELECT id, as_of, started, finished, rulesets, ran, accounts_checked, alerts, info, warning, critical, "
        "skipped, newest, complete, selection FROM runs",
    )
    (
        rid,
        as_of,
        started,
        finished,
        rulesets,
        ran,
        checked,
        n,
        info,
        warning,
        critical,
        skipped,
        newest,
        complete,
        sel,
    ) = row
    assert as_of == "2026-10-31" and complete == 1 and checked == 200 and started <= finished
    assert n == len(alerts) and (info, warning, critical) == tuple(
        sum(a["severity"] == s for a in alerts) for s in ("info", "warning", "critical")
    )
    assert set(json.loads(rulesets)) == set(json.loads(ran)) == {a["ruleset"] for a in alerts} | set(json.loads(ran))
    assert json.loads(sel) == {"select": [], "ignore": [], "min_severity": "info"}
    newest = json.loads(newest)
    # the newest record of each dated table on or before the as-of date, as a MAX over the table says
    for table, col in (("activities", "date"), ("orders", "date"), ("complaints", "opened_on")):
        assert newest[table] == q(db, f'SELECT MAX("{col}") FROM {table} WHERE "{col}" <= ?', ("2026-10-31",))[0][0]
    assert json.loads(skipped) == []
    # every fired event of this check points at the run
    assert q(db, "SELECT COUNT(*) FROM alert_events WHERE run_id = ? AND event = 'fired'", (rid,))[0][0] == len(alerts)
    assert q(db, "SELECT COUNT(*) FROM alert_events WHERE run_id IS NULL")[0][0] == 0
    # one score per account; those without alerts score 100
    assert q(db, "SELECT COUNT(*) FROM health_scores WHERE run_id = ?", (rid,))[0][0] == 200
    alerting = {a["account_id"] for a in alerts if a["account_id"]}
    scored = {
        a: (sc, json.loads(d))
        for a, sc, d in q(db, "SELECT account_id, score, drivers FROM health_scores WHERE run_id = ?", (rid,))
    }
    assert all(sc == 100 and d == [] for a, (sc, d) in scored.items() if a not in alerting)
    assert all(
        d and {x["code"] for x in d} == {x["code"] for x in alerts if x["account_id"] == a}
        for a, (sc, d) in scored.items()
        if a in alerting
    )


def test_a_run_that_skipped_rules_shares_their_weight(book_store):
    db = book_store.path
    book_store.conn.execute("DELETE FROM activities")  # no activities: neglected_small_clients' contact rules skip
    book_store.close()
    assert run(["check", "--as-of", "2026-10-31", "--fail-on", "never"], db).exit_code == 0
    ((skipped, ran, newest),) = q(db, "SELECT skipped, ran, newest FROM runs")
    assert json.loads(skipped) and json.loads(newest)["activities"] is None
    codes = {c for c, _ in json.loads(skipped)}
    assert any(c.startswith("KAM2") for c in codes)


def test_no_history_records_no_run_and_a_select_is_noted(book_store):
    db = book_store.path
    book_store.close()
    assert run(["check", "--as-of", "2026-10-31", "--no-history", "--fail-on", "never"], db).exit_code == 0
    assert q(db, "SELECT COUNT(*) FROM runs")[0][0] == 0
    assert run(["check", "--as-of", "2026-10-31", "--select", "KAM1", "--fail-on", "never"], db).exit_code == 0
    ((sel, ran),) = q(db, "SELECT selection, ran FROM runs")
    assert json.loads(sel)["select"] == ["KAM1"] and json.loads(ran) == ["over_subsidising"]


def test_a_store_of_schema_version_2_migrates_and_keeps_its_history(tmp_path, pm):
    path = tmp_path / "old.db"
    # the store as main's code made it before this change: migrations 1 and 2 only
    old = Store.open(path, pm=pm, migrations=[m for m in MIGRATIONS if m[0] <= 2])
    assert old.schema_version == 2
    a, b = alert("KAM101", "warning"), alert("KAM201", "critical", account_id="A002")
    history.record(old.conn, [a, b], Scope("x", frozenset({"KAM101", "KAM201"})), NOW)
    history.record(old.conn, [a], Scope("x", frozenset({"KAM101", "KAM201"})), NOW + dt.timedelta(hours=1))
    assert "runs" not in {r[0] for r in old.conn.execute("SELECT name FROM sqlite_master")}
    before_hist = old.conn.execute("SELECT * FROM alert_history ORDER BY fingerprint").fetchall()
    before_events = old.conn.execute(
        "SELECT id, fingerprint, at, event, detail FROM alert_events ORDER BY id"
    ).fetchall()
    old.close()

    s = Store.open(path, pm=pm)
    assert s.schema_version == latest_version() >= 3
    assert s.conn.execute("SELECT * FROM alert_history ORDER BY fingerprint").fetchall() == before_hist
    after = s.conn.execute("SELECT id, fingerprint, at, event, detail, run_id FROM alert_events ORDER BY id").fetchall()
    assert [r[:5] for r in after] == before_events and all(r[5] is None for r in after)
    assert s.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    # the next recorded check is run 1 and its events point at it; the old ones stay unattributed
    record_and_notify(
        s, Result((a, alert("KAM301", "warning", account_id="A003"))), notify=(), now=NOW + dt.timedelta(hours=2)
    )
    ((rid, n),) = s.conn.execute("SELECT id, alerts FROM runs").fetchall()
    assert n == 2
    new_events = s.conn.execute(
        "SELECT event, run_id FROM alert_events WHERE id > ?", (before_events[-1][0],)
    ).fetchall()
    assert new_events and all(r == rid for _, r in new_events)
    assert s.conn.execute("SELECT COUNT(*) FROM alert_events WHERE run_id IS NULL").fetchone()[0] == len(before_events)
    s.close()
    # opening again applies nothing more
    s = Store.open(path, pm=pm)
    assert s.init() == [] and s.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    s.close()


def test_runs_library_finds_runs_by_date(tmp_path, pm):
    from kamrules import runs

    s = Store.open(tmp_path / "r.db", pm=pm)
    for day in ("2026-09-01", "2026-10-01", "2026-10-25", "2026-10-31"):
        record_and_notify(s, Result((alert(as_of=day),), as_of=day), notify=(), now=NOW)
    assert [r["as_of"] for r in runs.list_runs(s.conn)] == ["2026-10-31", "2026-10-25", "2026-10-01", "2026-09-01"]
    assert runs.run_at(s.conn, "2026-10-31")["id"] == 4
    assert runs.run_before(s.conn, "2026-10-31")["as_of"] == "2026-10-25"
    assert runs.run_before(s.conn, "2026-10-31", oldest="2026-09-24", target="2026-10-01")["as_of"] == "2026-10-01"
    assert runs.run_at(s.conn, "2026-10-30") is None
    s.close()


# -- the history and its run are one transaction (issue 16, reliability) -----------------------------

KILLER = r"""
import datetime as dt, os, signal, sys
sys.path.insert(0, sys.argv[2])
from smtp_server import Result, alert
from kamrules import runs
from kamrules.lifecycle import record_and_notify
from kamrules.plugins import make_plugin_manager
from kamrules.store import Store

def die(*a, **k):  # the history of this check is written (not yet committed): the process dies here
    os.kill(os.getpid(), signal.SIGKILL)

runs.record_run = die
s = Store.open(sys.argv[1], pm=make_plugin_manager(load_entry_points=False))
record_and_notify(s, Result((alert("KAM101", "warning"), alert("KAM301", "critical", account_id="A003"))), notify=(),
                  now=dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.timezone.utc))
print("not killed")
"""


def _tables_dump(db):
    c = sqlite3.connect(str(db))
    try:
        names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: c.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    finally:
        c.close()


def test_a_process_killed_between_history_and_run_leaves_neither(tmp_path, pm):
    import os
    import signal
    import subprocess
    import sys

    db = tmp_path / "k.db"
    s = Store.open(db, pm=pm)
    record_and_notify(s, Result((alert("KAM101", "info"),)), notify=(), now=NOW - dt.timedelta(days=1))  # run 1
    s.close()
    before = _tables_dump(db)
    here = os.path.dirname(__file__)
    p = subprocess.run([sys.executable, "-c", KILLER, str(db), here], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    after = _tables_dump(db)
    assert after == before  # no history without its run: neither the events nor the history rows of the killed check
    assert q(db, "SELECT COUNT(*) FROM runs")[0][0] == 1
    # the next check records history and run together, every event pointing at its run
    s = Store.open(db, pm=pm)
    record_and_notify(s, Result((alert("KAM101", "warning"),)), notify=(), now=NOW)
    s.close()
    assert q(db, "SELECT COUNT(*) FROM runs")[0][0] == 2
    assert q(db, "SELECT COUNT(*) FROM alert_events WHERE run_id IS NULL")[0][0] == 0


def test_an_error_inside_the_recording_writes_nothing(book_store, monkeypatch):
    from kamrules import health
    from kamrules.check import run_check

    result = run_check(book_store, as_of="2026-10-31", jobs=1)
    assert result.alerts
    record_and_notify(book_store, result, notify=(), now=NOW - dt.timedelta(days=7))
    db = book_store.path
    before = _tables_dump(db)

    def broken(*a, **k):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr(health, "score_alerts", broken)  # fails after the run row and the history are written
    result2 = run_check(book_store, as_of="2026-10-31", select=["KAM1"], jobs=1)
    try:
        record_and_notify(book_store, result2, notify=(), now=NOW)
    except RuntimeError as e:
        assert "scoring broke" in str(e)
    else:
        raise AssertionError("the recording did not fail")
    assert _tables_dump(db) == before
    assert not book_store.conn.in_transaction


def test_a_nested_transaction_is_a_savepoint_of_the_outer_one(tmp_path):
    from kamrules.lifecycle.schema import transaction

    c = sqlite3.connect(str(tmp_path / "t.db"), isolation_level=None)
    c.execute("CREATE TABLE t (x)")
    with transaction(c):
        c.execute("INSERT INTO t VALUES (1)")
        try:
            with transaction(c):
                c.execute("INSERT INTO t VALUES (2)")
                raise ValueError
        except ValueError:
            pass  # the inner unit rolled back alone; the outer goes on
        with transaction(c):
            c.execute("INSERT INTO t VALUES (3)")
        assert c.in_transaction  # the inner ones did not commit the outer
    assert c.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]
    try:
        with transaction(c):
            with transaction(c):
                c.execute("INSERT INTO t VALUES (4)")
            raise ValueError
    except ValueError:
        pass
    assert c.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]  # committed with the outer, or not at all
    c.close()
