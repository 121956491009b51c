"""History, scope-based resolution, outbox keys/backoff/supersede, on a real SQLite store."""

import datetime as dt

import pytest
from smtp_server import Result, alert, free_port, settings_for

from kamrules.lifecycle import history, outbox, record_and_notify, silences
from kamrules.lifecycle.history import Scope
from kamrules.lifecycle.schema import ensure_schema

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def row(store, a):
    return history.find(store.conn, a.fingerprint)[0]


def test_migration_creates_tables_and_ensure_schema_is_idempotent(store):
    names = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alert_history", "alert_events", "notify_state", "silences", "outbox", "outbox_items"} <= names
    ensure_schema(store.conn)
    ensure_schema(store.conn)


def test_first_last_seen_and_resolution_in_the_same_scope(store):
    a, b = alert("KAM101"), alert("KAM201", account_id="A2")
    rec = history.record(store.conn, [a, b], Scope("s1"), NOW)
    assert set(rec.new) == {a.fingerprint, b.fingerprint}
    rec = history.record(store.conn, [a], Scope("other"), NOW + H)  # another scope (e.g. --select KAM1)
    assert rec.resolved == () and row(store, b)["status"] == "firing"
    rec = history.record(store.conn, [a], Scope("s1"), NOW + 2 * H)
    assert rec.resolved == (b.fingerprint,)
    ra, rb = row(store, a), row(store, b)
    assert (ra["first_seen"], ra["last_seen"], ra["status"]) == (
        "2026-10-31T08:00:00Z",
        "2026-10-31T10:00:00Z",
        "firing",
    )
    assert (rb["status"], rb["resolved_at"], rb["last_seen"]) == (
        "resolved",
        "2026-10-31T10:00:00Z",
        "2026-10-31T08:00:00Z",
    )
    rec = history.record(store.conn, [a, b], Scope("s1"), NOW + 3 * H)
    assert rec.new == (b.fingerprint,) and row(store, b)["episode"] == 2 and row(store, b)["resolved_at"] is None
    assert [e["event"] for e in history.events(store.conn, b.fingerprint)] == ["fired", "resolved", "fired"]


def test_scope_by_evaluated_codes(store):
    a, b = alert("KAM101"), alert("KAM401", account_id="A2")
    history.record(store.conn, [a, b], Scope("x", frozenset({"KAM101", "KAM401"})), NOW)
    # a run that evaluated only KAM1xx rules resolves nothing of KAM401
    rec = history.record(store.conn, [], Scope("y", frozenset({"KAM101"})), NOW + H)
    assert rec.resolved == (a.fingerprint,) and row(store, b)["status"] == "firing"


def test_scope_of_reads_the_summary():
    from types import SimpleNamespace as NS

    from kamrules.lifecycle.run import scope_of

    s1 = scope_of(Result((), NS(rulesets=("a", "b"), select=("KAM1",), ignore=(), min_severity="info")))
    s2 = scope_of(Result((), NS(rulesets=("b", "a"), select=("KAM1",), ignore=(), min_severity="info")))
    s3 = scope_of(Result((), NS(rulesets=("a", "b"), select=(), ignore=(), min_severity="info")))
    assert s1.key == s2.key != s3.key and s1.codes is None
    s4 = scope_of(
        Result((), NS(codes=("KAM101", "KAM102"), skipped=[("KAM102", "no orders")], failures=(), min_severity="info"))
    )
    assert s4.codes == frozenset({"KAM101"})
    incomplete = scope_of(
        Result((), NS(codes=("KAM101",), failures=[("rules engine (accounts A1..A9)", "boom")], min_severity="info"))
    )
    assert incomplete.codes == frozenset()  # resolves nothing
    s5 = scope_of(Result((), NS(evaluated=("KAM101",), min_severity="warning")))
    assert s5.codes is None  # a severity filter hides alerts: resolve only within the same filters


def test_severity_change_while_pending_supersedes_the_unsent_message(store, pm):
    s = settings_for(free_port())  # nothing listens: every send fails
    record_and_notify(store, Result((alert(severity="warning"),)), settings=s, pm=pm, now=NOW)
    r = record_and_notify(store, Result((alert(severity="critical"),)), settings=s, pm=pm, now=NOW + H)
    assert r.queued == 1 and r.undelivered == 1
    rows = outbox.list_outbox(store.conn, "all")
    assert [x["status"] for x in rows] == ["superseded", "failed"]
    assert "1 critical" in rows[1]["subject"]
    r = record_and_notify(store, Result((alert(severity="critical"),)), settings=s, pm=pm, now=NOW + 2 * H)
    assert r.queued == 0  # the same state is already queued


def test_idempotency_key_and_backoff():
    k = outbox.idempotency_key("email", "a@example.com", [("fp1", 1, "warning", "firing", 1)])
    assert k == outbox.idempotency_key("email", "A@example.com", [("fp1", 1, "warning", "firing", 1)])
    assert k != outbox.idempotency_key("email", "b@example.com", [("fp1", 1, "warning", "firing", 1)])
    assert k != outbox.idempotency_key("email", "a@example.com", [("fp1", 1, "critical", "firing", 1)])
    assert k != outbox.idempotency_key("email", "a@example.com", [("fp1", 1, "warning", "firing", 2)])
    s = settings_for(1)
    assert [outbox.backoff(s, n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert outbox.backoff(s, 30).total_seconds() == 6 * 3600


def test_silence_matching():
    now = NOW
    sil = silences.Silence(1, ("KAM1",), (), (), ("王磊",), "2026-11-01T00:00:00Z", "c", None, "x")
    assert (
        sil.matches(alert("KAM101"))
        and not sil.matches(alert("KAM201"))
        and not sil.matches(alert("KAM101", owner="李娜"))
    )
    assert sil.active(now) and not sil.active(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    assert silences.parse_until("2026-10-31", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_record_only_counts_silenced(store, pm):
    silences.add(store.conn, accounts=("A001",), until="2026-11-30", comment="审计中", author="me", now=NOW)
    r = record_and_notify(
        store, Result((alert(), alert("KAM201", account_id="A9"))), notify=(), settings=settings_for(1), pm=pm, now=NOW
    )
    assert (r.silenced, r.new) == (1, 2)
    assert r.summary_line() == "alerts: 2 new, 0 resolved, 1 silenced"


def test_renotify_settings_from_toml(tmp_path):
    from kamrules.config import load_settings
    from kamrules.errors import InputError

    cfg = tmp_path / "kamrules.toml"
    cfg.write_text(
        '[email]\nresolved_notices = true\n[email.renotify]\ncritical = "12h"\nwarning = "never"\ninfo = "2w"\n',
        encoding="utf-8",
    )
    e = load_settings(cfg, environ={}).email
    assert (e.renotify.critical, e.renotify.warning, e.renotify.info, e.resolved_notices) == (
        43200.0,
        None,
        1209600.0,
        True,
    )
    cfg.write_text('[email]\n\n[email.renotify]\ncritical = "soon"\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_settings(cfg, environ={})
    assert (
        f"{cfg}:4: email.renotify.critical" in err.value.render()
        and "expected e.g. 12h, 1d, 7d or never" in err.value.render()
    )
