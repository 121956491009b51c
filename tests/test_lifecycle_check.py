"""End to end with the real engine: run_check -> record_and_notify -> aiosmtpd; resolution by scope."""

import datetime as dt

import pytest
from rulebook import Book
from smtp_server import SmtpServer, settings_for

from kamrules.lifecycle import history, record_and_notify

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.timezone.utc)
H = dt.timedelta(hours=1)


@pytest.fixture()
def server():
    srv = SmtpServer()
    yield srv
    srv.stop()


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
    assert got["wanglei@example.com"]["Subject"].startswith("[kamrules] 王磊: ") and "as of 2026-10-31" in got["wanglei@example.com"]["Subject"]
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
