"""Email digests against a real SMTP server on loopback (aiosmtpd): contents, once-only, retries."""

import datetime as dt

from smtp_server import Result, SmtpServer, alert, free_port, settings_for

from kamrules.lifecycle import outbox, record_and_notify, send_due
from kamrules.plugins import make_plugin_manager

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)


def book():
    """Two owners with addresses, one account without an owner_email, one Chinese subject."""
    return Result(
        (
            alert("KAM101", "critical", "A001", "华东机电", "王磊", "wanglei@example.com"),
            alert(
                "KAM103",
                "warning",
                "A001",
                "华东机电",
                "王磊",
                "wanglei@example.com",
                message="commitment 2026 behind by 35%",
            ),
            alert(
                "KAM201",
                "warning",
                "A002",
                "苏州精工",
                "王磊",
                "wanglei@example.com",
                message="no contact for 131 days",
                evidence={"days_since_contact": 131},
            ),
            alert("KAM401", "info", "B001", "Acme Ltd", "李娜", "lina@example.com", message="in proposal for 45 days"),
            alert("KAM301", "critical", "C001", "无主客户", None, None, message="key account without a KA manager"),
        )
    )


def by_rcpt(server):
    out = {}
    for r in server.received:
        for to in r.rcpt_tos:
            out.setdefault(to, []).append(r.message)
    return out


def test_one_digest_per_owner_with_contents(store, server, pm):
    s = settings_for(server.port, KAMRULES_EMAIL_DEFAULT_TO="ka-team@example.com")
    report = record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW)
    assert (report.queued, report.sent, report.failed, report.undelivered) == (3, 3, 0, 0)
    assert report.unrouted == []
    got = by_rcpt(server)
    assert sorted(got) == ["ka-team@example.com", "lina@example.com", "wanglei@example.com"]
    assert all(len(v) == 1 for v in got.values())
    m = got["wanglei@example.com"][0]
    # the subject is RFC 2047 encoded on the wire and decodes to Chinese
    raw = server.received[[i for i, r in enumerate(server.received) if "wanglei@example.com" in r.rcpt_tos][0]].data
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0]
    assert m["Subject"] == "[kamrules] 王磊: 1 critical, 2 warning — as of 2026-10-31"
    assert m["To"].addresses[0].display_name == "王磊"
    assert m.get_content_type() == "multipart/alternative"
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert text.index("华东机电 (A001)") < text.index("苏州精工 (A002)")  # grouped by account
    assert "[CRITICAL] KAM101" in text and "commitment 2026 behind by 35%" in text
    assert "revenue_12m=1,790,000" in text and "Tie further rebates" in text
    assert "days_since_contact=131" in text
    assert "Acme" not in text  # another owner's account
    assert "华东机电 (A001)" in html and "CRITICAL" in html
    key = outbox.list_outbox(store.conn, "sent")[0]["key"]
    assert m["Message-ID"].startswith("<") and ".kamrules@example.com>" in m["Message-ID"]
    assert {msg["Message-ID"] for v in got.values() for msg in v} == {
        f"<{r['key']}.kamrules@example.com>" for r in outbox.list_outbox(store.conn, "sent")
    }
    assert key
    lina = got["lina@example.com"][0]
    assert lina["Subject"] == "[kamrules] 李娜: 1 info — as of 2026-10-31"
    team = got["ka-team@example.com"][0]
    assert "无主客户 (C001)" in team.get_body(("plain",)).get_content()


def test_unrouted_without_default(store, server, pm):
    s = settings_for(server.port)
    report = record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW)
    assert report.unrouted == ["无主客户 (C001)"]
    assert report.sent == 2 and report.undelivered == 0
    assert "unrouted" in report.summary_line() and "无主客户 (C001)" in report.summary_line()


def test_unchanged_second_run_sends_nothing(store, server, pm):
    s = settings_for(server.port)
    record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW)
    n = len(server.received)
    again = record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW + dt.timedelta(hours=2))
    assert (again.queued, again.sent, again.new) == (0, 0, 0)
    assert len(server.received) == n


def test_server_down_then_up_delivers_exactly_once(store, pm):
    port = free_port()  # nothing listens here yet
    s = settings_for(port)
    first = record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW)
    assert (first.queued, first.sent, first.failed, first.undelivered) == (2, 0, 2, 2)
    assert "Connection refused" in first.errors[0]
    rows = outbox.list_outbox(store.conn, "pending")
    assert [r["status"] for r in rows] == ["failed", "failed"] and rows[0]["attempts"] == 1
    assert rows[0]["next_attempt"] == "2026-10-31T08:01:00Z"  # backoff 60 s
    # an unchanged check while the server is down queues nothing new; the retry is not due yet
    second = record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW + dt.timedelta(seconds=30))
    assert (second.queued, second.sent, second.failed, second.undelivered) == (0, 0, 0, 2)
    third = send_due(store, ["email"], s, pm, now=NOW + dt.timedelta(minutes=1))
    assert (third.failed, third.undelivered) == (2, 2)
    assert outbox.list_outbox(store.conn, "pending")[0]["next_attempt"] == "2026-10-31T08:03:00Z"  # doubled
    srv = SmtpServer(port=port)
    try:
        up = send_due(store, ["email"], s, pm, now=NOW + dt.timedelta(minutes=3))
        assert (up.sent, up.failed, up.undelivered) == (2, 0, 0)
        again = send_due(store, ["email"], s, pm, now=NOW + dt.timedelta(minutes=10), ignore_backoff=True)
        check = record_and_notify(
            store, book(), notify=("email",), settings=s, pm=pm, now=NOW + dt.timedelta(minutes=11)
        )
        assert (again.sent, check.sent, check.queued) == (0, 0, 0)
        ids = [r.message["Message-ID"] for r in srv.received]
        assert len(ids) == 2 and len(set(ids)) == 2
        assert sorted(to for r in srv.received for to in r.rcpt_tos) == ["lina@example.com", "wanglei@example.com"]
    finally:
        srv.stop()


def test_recipient_refused_stays_queued(store, server, pm):
    server.sink.refuse.add("lina@example.com")
    server.sink.refuse_reply = "450 4.2.1 mailbox busy, try later"  # a 5xx is rejected for good: test_mail_hostile
    s = settings_for(server.port)
    report = record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW)
    assert (report.sent, report.failed, report.undelivered) == (1, 1, 1)
    pending = outbox.list_outbox(store.conn, "pending")
    assert pending[0]["recipient"] == "lina@example.com" and "450" in pending[0]["last_error"]
    server.sink.refuse.clear()
    later = send_due(store, ["email"], s, pm, now=NOW + dt.timedelta(hours=1))
    assert (later.sent, later.undelivered) == (1, 0)


def test_renotify_intervals_per_severity(store, server, pm):
    s = settings_for(server.port)
    res = Result(
        (
            alert("KAM101", "critical", "A1", owner_email="c@example.com"),
            alert("KAM201", "warning", "A2", owner_email="w@example.com"),
            alert("KAM401", "info", "A3", owner_email="i@example.com"),
        )
    )
    record_and_notify(store, res, settings=s, pm=pm, now=NOW)
    assert len(server.received) == 3

    def sent_to(when):
        before = len(server.received)
        record_and_notify(store, res, settings=s, pm=pm, now=NOW + when)
        return sorted(to for r in server.received[before:] for to in r.rcpt_tos)

    assert sent_to(dt.timedelta(hours=23)) == []
    assert sent_to(dt.timedelta(days=1)) == ["c@example.com"]  # critical: daily reminder
    assert sent_to(dt.timedelta(days=1, hours=1)) == []
    assert sent_to(dt.timedelta(days=7)) == ["c@example.com", "w@example.com"]  # warning: weekly
    assert sent_to(dt.timedelta(days=400)) == ["c@example.com", "w@example.com"]  # info: never again
    reminder = server.received[-1].message.get_body(("plain",)).get_content()
    assert "still firing since 2026-10-31" in reminder


def test_severity_change_is_sent_and_resolved_notice_is_opt_in(store, server, pm):
    s = settings_for(server.port)
    record_and_notify(
        store, Result((alert("KAM101", "warning"), alert("KAM201", "warning"))), settings=s, pm=pm, now=NOW
    )
    r = record_and_notify(
        store,
        Result((alert("KAM101", "critical"), alert("KAM201", "warning"))),
        settings=s,
        pm=pm,
        now=NOW + dt.timedelta(hours=1),
    )
    assert r.sent == 1
    m = server.received[-1].message
    assert m["Subject"] == "[kamrules] 王磊: 1 critical — as of 2026-10-31"
    assert "(was warning)" in m.get_body(("plain",)).get_content()
    # KAM201 resolves: no notice by default
    r = record_and_notify(
        store, Result((alert("KAM101", "critical"),)), settings=s, pm=pm, now=NOW + dt.timedelta(hours=2)
    )
    assert (r.resolved, r.sent) == (1, 0)
    # with resolved notices on, KAM101 resolving is told once
    on = settings_for(server.port, KAMRULES_EMAIL_RESOLVED_NOTICES="true")
    r = record_and_notify(store, Result(()), settings=on, pm=pm, now=NOW + dt.timedelta(hours=3))
    assert (r.resolved, r.sent) == (1, 1)  # one digest: KAM201 (resolved earlier, told while firing) and KAM101
    m = server.received[-1].message
    assert m["Subject"] == "[kamrules] 王磊: 2 resolved — as of 2026-10-31"
    assert m.get_body(("plain",)).get_content().count("[RESOLVED]") == 2
    assert record_and_notify(store, Result(()), settings=on, pm=pm, now=NOW + dt.timedelta(hours=4)).sent == 0


def test_firing_again_after_resolving_is_new(store, server, pm):
    s = settings_for(server.port)
    a = alert("KAM101", "critical")
    record_and_notify(store, Result((a,)), settings=s, pm=pm, now=NOW)
    record_and_notify(store, Result(()), settings=s, pm=pm, now=NOW + dt.timedelta(hours=1))
    r = record_and_notify(store, Result((a,)), settings=s, pm=pm, now=NOW + dt.timedelta(hours=2))
    assert (r.new, r.sent) == (1, 1)
    assert len(server.received) == 2


def test_notify_none_only_records(store, server, pm):
    s = settings_for(server.port)
    r = record_and_notify(store, book(), notify=(), settings=s, pm=pm, now=NOW)
    assert (r.new, r.queued, r.sent, r.undelivered) == (5, 0, 0, 0)
    assert server.received == [] and outbox.list_outbox(store.conn, "all") == []
    # a later run with email sends the still-firing alerts (nothing was told yet)
    r = record_and_notify(store, book(), notify=("email",), settings=s, pm=pm, now=NOW + dt.timedelta(hours=1))
    assert r.sent == 2


def test_a_dead_server_is_not_tried_for_every_message(store, pm):
    port = free_port()
    s = settings_for(port)
    many = Result(tuple(alert("KAM101", "critical", f"A{i}", owner_email=f"o{i}@example.com") for i in range(6)))
    r = record_and_notify(store, many, settings=s, pm=pm, now=NOW)
    assert (r.queued, r.failed, r.undelivered) == (6, 6, 6)
    assert sum("ConnectionRefusedError" in e and "not attempted" not in e for e in r.errors) == 3
    assert sum("not attempted after 3 failures in a row (ConnectionRefusedError" in e for e in r.errors) == 3
    srv = SmtpServer(port=port)
    try:
        assert send_due(store, ["email"], s, pm, now=NOW + dt.timedelta(minutes=2)).sent == 6
    finally:
        srv.stop()


def test_a_new_owner_hears_of_unchanged_alerts(store, server, pm):
    s = settings_for(server.port)
    record_and_notify(
        store, Result((alert(owner="王磊", owner_email="wanglei@example.com"),)), settings=s, pm=pm, now=NOW
    )
    moved = Result((alert(owner="李娜", owner_email="lina@example.com"),))  # same fingerprint and severity
    r = record_and_notify(store, moved, settings=s, pm=pm, now=NOW + dt.timedelta(hours=1))
    assert (r.new, r.sent) == (0, 1)
    assert server.received[-1].rcpt_tos == ["lina@example.com"]
    assert record_and_notify(store, moved, settings=s, pm=pm, now=NOW + dt.timedelta(hours=2)).sent == 0


class BrokenNotifier:
    name = "broken"

    def route(self, items, settings):
        return {"x": list(items)}, []

    def render(self, recipient, items, key, as_of, settings):
        raise ZeroDivisionError("plugin bug")

    def send(self, recipient, payload, settings):
        pass


def test_a_broken_notifier_plugin_does_not_stop_email(store, server):
    from kamrules import hookimpl

    class Plugin:
        @hookimpl
        def register_notifiers(self):
            return [BrokenNotifier()]

    pm = make_plugin_manager(load_entry_points=False, extra=[Plugin()])
    r = record_and_notify(store, book(), notify=("broken", "email"), settings=settings_for(server.port), pm=pm, now=NOW)
    assert (r.sent, r.failed, r.undelivered) == (2, 1, 1)
    assert "notifier broken: could not route or render: ZeroDivisionError: plugin bug" in r.summary_line()
