"""End to end with the real engine: run_check -> record_and_notify -> aiosmtpd; resolution by scope."""

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from rulebook import Book
from smtp_server import free_port, settings_for

from kamrules.cli import cli
from kamrules.lifecycle import history, record_and_notify

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture()
def book(tmp_path):
    b = Book(tmp_path / "t.db")
    b.account("K1", name="华东机电集团", tier="key", owner="王磊", owner_email="wanglei@example.com")
    b.account("K2", name="无主大客户", tier="key", owner=None, owner_email=None)
    b.add("channels", account_id="K1", kind="technical")
    yield b
    b.store.close()


def codes(rows):
    return sorted((r["account_id"], r["code"]) for r in rows)


def test_check_notify_and_resolve(book, server):
    s = settings_for(server.port, KAMRULES_EMAIL_DEFAULT_TO="ka-team@example.com")
    pm = book.store.pm
    result = book.check(select=("KAM3",))
    kam3 = {(a.account_id, a.code) for a in result.alerts}
    assert ("K1", "KAM302") in kam3 and ("K2", "KAM301") in kam3
    r = record_and_notify(book.store, result, notify=("email",), settings=s, pm=pm, now=NOW)
    assert (r.new, r.failed, r.undelivered) == (len(result.alerts), 0, 0) and r.sent == 2
    got = {to: m.message for m in server.received for to in m.rcpt_tos}
    assert sorted(got) == ["ka-team@example.com", "wanglei@example.com"]
    body = got["wanglei@example.com"].get_body(("plain",)).get_content()
    assert "华东机电集团 (K1)" in body and "KAM302" in body and "无主大客户" not in body
    assert (
        got["wanglei@example.com"]["Subject"].startswith("[kamrules] 王磊: ")
        and "as of 2026-10-31" in got["wanglei@example.com"]["Subject"]
    )
    assert "无主大客户 (K2)" in got["ka-team@example.com"].get_body(("plain",)).get_content()

    # a narrower check (only KAM1xx rules) resolves none of the KAM3xx alerts
    narrow = book.check(select=("KAM1",))
    r = record_and_notify(book.store, narrow, notify=("email",), settings=s, pm=pm, now=NOW + H)
    assert r.resolved == 0 and codes(history.list_history(book.store.conn, "firing")) == sorted(kam3)

    # the data is fixed for K1: the same check resolves KAM302 on K1 only, and sends nothing
    book.add("channels", account_id="K1", kind="management")
    again = book.check(select=("KAM3",))
    r = record_and_notify(book.store, again, notify=("email",), settings=s, pm=pm, now=NOW + 2 * H)
    assert (r.resolved, r.new, r.sent) == (1, 0, 0)
    resolved = history.list_history(book.store.conn, "resolved")
    assert codes(resolved) == [("K1", "KAM302")]
    assert len(server.received) == 2


def test_cli_check_notify_email(book, server, tmp_path, monkeypatch):
    """`kamrules check --notify email`: exit 4 while the server is down, then once-only delivery."""
    monkeypatch.chdir(tmp_path)
    book.save()
    db = book.store.path
    env = {
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_FROM": "kamrules@example.com",
        "KAMRULES_LOAD_PLUGINS": "",
        "KAMRULES_CONFIG": "",
        "KAMRULES_SMTP_PASSWORD": "",
    }
    args = ["--db", db, "check", "--as-of", "2026-10-31", "--select", "KAM3", "--notify", "email", "--fail-on", "never"]
    down = CliRunner().invoke(cli, args, env={**env, "KAMRULES_SMTP_PORT": str(free_port())})
    assert down.exit_code == 4, down.output
    assert "1 queued, 0 sent, 1 failed, 1 undelivered" in down.output and "Connection refused" in down.output
    assert "unrouted (no owner_email, no default_to): 无主大客户 (K2)" in down.output
    up = {**env, "KAMRULES_SMTP_PORT": str(server.port), "KAMRULES_EMAIL_DEFAULT_TO": "ka-team@example.com"}
    r = CliRunner().invoke(cli, ["--db", db, "notify", "--ignore-backoff"], env=up)
    assert r.exit_code == 0 and r.output.startswith("1 sent"), r.output
    r = CliRunner().invoke(cli, args, env=up)  # the owner's digest is not sent again; K2 now reaches the team
    assert r.exit_code == 0, r.output
    assert "1 queued, 1 sent, 0 failed, 0 undelivered" in r.output
    assert sorted(to for m in server.received for to in m.rcpt_tos) == ["ka-team@example.com", "wanglei@example.com"]
    again = CliRunner().invoke(cli, args, env=up)
    assert again.exit_code == 0 and "0 queued, 0 sent" in again.output and len(server.received) == 2
    listed = CliRunner().invoke(cli, ["--db", db, "alerts", "list", "--format", "json"], env=up)
    assert {d["account_id"] for d in json.loads(listed.output)} == {"K1", "K2"}
