"""A check as of a date before the newest recorded one changes neither the history nor the outbox (issue 11)."""

import sqlite3

import pytest
from click.testing import CliRunner

from kamrules.check import run_check
from kamrules.cli import cli
from kamrules.lifecycle import record_and_notify
from kamrules.lifecycle.history import newest_as_of

TABLES = (
    "alert_history",
    "alert_events",
    "notify_state",
    "outbox",
    "outbox_items",
    "silences",
    "runs",
    "health_scores",
)


def dump(path) -> dict:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}
    finally:
        conn.close()


def states(tables) -> list:
    """alert_history rows without last_seen (the one column a repeated check updates)."""
    return [r[:13] + r[14:] for r in tables["alert_history"]]


@pytest.fixture
def env(server):
    return {
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_PORT": str(server.port),
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_FROM": "kamrules@example.com",
        "KAMRULES_EMAIL_DEFAULT_TO": "ka-team@example.com",
        "KAMRULES_LOAD_PLUGINS": "",
        "KAMRULES_CONFIG": "",
        "KAMRULES_SMTP_PASSWORD": "",
    }


def check(db, env, as_of, *extra):
    return CliRunner().invoke(cli, ["--db", db, "check", "--as-of", as_of, "--fail-on", "never", *extra], env=env)


def test_backdated_check_records_nothing_and_resends_nothing(book_store, server, env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = book_store.path
    book_store.close()
    today = check(db, env, "2026-10-31", "--notify", "email")
    assert today.exit_code == 0, today.output
    sent = len(server.received)
    assert sent > 0 and "0 undelivered" in today.output
    before = dump(db)
    assert before["alert_history"] and before["runs"]

    # the book as of 2025-01-01 fires other alerts: recorded, they would resolve today's
    past = check(db, env, "2025-01-01", "--notify", "email")
    assert past.exit_code == 0, past.output
    assert (
        "history: not recorded: as of 2025-01-01 is before the newest recorded check (as of 2026-10-31)" in past.output
    )
    assert "nothing was queued or sent (email)" in past.output
    assert dump(db) == before
    assert len(server.received) == sent

    plain = check(db, env, "2025-01-01")  # without --notify: the same
    assert plain.exit_code == 0 and "history: not recorded" in plain.output
    assert dump(db) == before

    # the next current check finds nothing new, resolved or due: no mail is sent again
    again = check(db, env, "2026-10-31", "--notify", "email")
    assert again.exit_code == 0, again.output
    assert "0 new, 0 resolved" in again.output and "0 queued, 0 sent" in again.output
    assert len(server.received) == sent
    after = dump(db)
    same = ("alert_events", "notify_state", "outbox", "outbox_items", "silences")
    assert {t: after[t] for t in same} == {t: before[t] for t in same}
    assert states(after) == states(before)  # only last_seen moved on
    assert [r[1] for r in after["runs"]] == ["2026-10-31", "2026-10-31"]  # the same date is not back-dated


def test_later_check_is_recorded(book_store):
    """A check as of a later date resolves and fires as usual; only one older than the newest is refused."""
    first = record_and_notify(book_store, run_check(book_store, "2026-10-31"), notify=())
    assert first.new > 0 and first.behind is None
    later = record_and_notify(book_store, run_check(book_store, "2026-11-30"), notify=())
    assert later.behind is None and (later.new or later.resolved)
    assert newest_as_of(book_store.conn) == "2026-11-30"
    older = record_and_notify(book_store, run_check(book_store, "2026-10-31"), notify=())
    assert older.behind == "2026-11-30" and (older.new, older.resolved) == (0, 0)
    assert "not recorded: as of 2026-10-31" in older.summary_line()


def test_store_recorded_before_runs(book_store):
    """A history recorded before the runs table existed still dates the newest check (alert_history.last_as_of)."""
    record_and_notify(book_store, run_check(book_store, "2026-10-31"), notify=())
    for table in ("health_scores", "runs"):
        book_store.conn.execute(f"DROP TABLE {table}")
    assert newest_as_of(book_store.conn) == "2026-10-31"
    report = record_and_notify(book_store, run_check(book_store, "2025-06-30"), notify=())
    assert report.behind == "2026-10-31"
    assert book_store.count("runs") == 0
