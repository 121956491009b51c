"""Mail under attack and faults (issue 11): forged headers, leaked AUTH, starvation, slow and hanging servers,
concurrent senders, unrouted alerts. Real aiosmtpd servers on loopback, real processes, real SQLite stores."""

import base64
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from smtp_server import HostileServer, Result, SmtpServer, alert, free_port, settings_for

from kamrules import hookimpl
from kamrules.lifecycle import outbox, record_and_notify, send_due
from kamrules.lifecycle.digest import DIGEST_HEADERS  # noqa: E402
from kamrules.lifecycle.notifiers import Rendered

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
EXPECTED = set(DIGEST_HEADERS)


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line and line[0] not in " \t"]


def cli(db, *args, env=None, timeout=60):
    full = {
        **os.environ,
        "KAMRULES_LOAD_PLUGINS": "",
        "KAMRULES_CONFIG": "",
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_FROM": "kamrules <kamrules@example.com>",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "kamrules", "--db", str(db), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def queue_failed(store, pm, alerts, **kw):
    """Queue messages for ``alerts`` while no server listens: they wait in the outbox as 'failed'."""
    r = record_and_notify(store, Result(tuple(alerts)), settings=settings_for(free_port(), **kw), pm=pm, now=NOW)
    assert r.sent == 0 and r.undelivered == r.queued > 0
    return r


# 1. header injection -------------------------------------------------------------------------


def _b(text):
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


EVIL_NAMES = {
    "q-crlf": "=?utf-8?q?Boss=0D=0AReply-To=3A_evil=40x.example?=",
    "q-blank-line": "=?utf-8?q?Boss=0D=0AReply-To=3A_evil=40x.example=0D=0A=0D=0AFake_body?=",
    "b-crlf": _b("Boss\r\nReply-To: evil@x.example\r\n\r\n"),
    "b-lf-chinese": "王磊 " + _b("王磊\nBcc: evil@x.example"),
    "cr": "王磊\rReply-To: evil@x.example",
    "lf": "王磊\nReply-To: evil@x.example",
    "nel": "王磊\x85Reply-To: evil@x.example",
    "u2028": "王磊\u2028Reply-To: evil@x.example",
    "u2029-vt-ff": "王磊\u2029Reply-To:\x0b evil@x.example\x0c",
}


@pytest.mark.parametrize("name", list(EVIL_NAMES.values()), ids=list(EVIL_NAMES))
def test_owner_name_never_adds_a_header_on_the_wire(store, server, pm, name):
    r = record_and_notify(
        store, Result((alert(owner=name, account_name=name),)), settings=settings_for(server.port), pm=pm, now=NOW
    )
    assert (r.sent, r.failed) == (1, 0), r.errors
    raw = server.received[0].data
    names = header_names(raw)
    assert sorted(names) == sorted(EXPECTED), names
    assert m_has_no(raw, "reply-to", "bcc", "cc")
    m = server.received[0].message
    assert m["To"].addresses[0].addr_spec == "wanglei@example.com" and len(m["To"].addresses) == 1
    assert m["Subject"].startswith("[kamrules] ") and "1 warning" in m["Subject"]
    assert "\n" not in m["Subject"] and "\r" not in m["Subject"]
    if "王磊" in name:
        assert "王磊" in m["Subject"] and "王磊" in m["To"].addresses[0].display_name
    assert "concessions 412,000" in m.get_body(("plain",)).get_content()  # the body is still the body


def m_has_no(raw: bytes, *headers) -> bool:
    import email
    import email.policy

    m = email.message_from_bytes(raw, policy=email.policy.default)
    return all(m[h] is None for h in headers) and not m.defects


# 2. credentials --------------------------------------------------------------------------------


def forms(user, pw):
    u, p = user.encode(), pw.encode()
    b = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return [pw, b(b"\0" + u + b"\0" + p), b(u + b"\0" + p), b(p), b(u), str(p)[2:-1]]


@pytest.mark.parametrize("pw", ["s3cret-Pa55word", "pä55-秘密-word"], ids=["ascii-plain-then-login", "utf8-plain"])
def test_an_auth_echoing_server_never_sees_the_password_printed_or_stored(store, pm, pw):
    srv = HostileServer(echo_auth=True)
    try:
        user = "bot-user@example.com"
        queue_failed(store, pm, [alert()])
        env = {"KAMRULES_SMTP_PORT": str(srv.port), "KAMRULES_SMTP_USER": user, "KAMRULES_SMTP_PASSWORD": pw}
        res = cli(store.path, "notify", "--ignore-backoff", env=env)
        assert res.returncode == 4, res.stderr
        assert "535" in res.stderr and "authentication failed" in res.stderr
        row = outbox.list_outbox(store.conn, "pending")[0]
        for text in (res.stdout, res.stderr, row["last_error"]):
            for form in forms(user, pw):
                assert form not in text, (form, text)
        assert "********" in row["last_error"]
        res = cli(store.path, "notify", "test", "--to", "me@example.com", env=env)
        assert res.returncode == 4 and "535" in res.stderr
        assert not any(f in res.stderr + res.stdout for f in forms(user, pw))
    finally:
        srv.stop()


# 3. starvation ---------------------------------------------------------------------------------


def test_refused_recipients_do_not_starve_the_others(store, server, pm):
    bad = [alert("KAM101", "critical", f"B{i}", owner_email=f"gone{i}@example.com") for i in range(3)]
    good = [alert("KAM201", "warning", f"G{i}", owner_email=f"ok{i}@example.com") for i in range(3)]
    server.sink.refuse = {f"gone{i}@example.com" for i in range(3)}
    r = record_and_notify(store, Result(tuple(bad + good)), settings=settings_for(server.port), pm=pm, now=NOW)
    assert (r.queued, r.sent, r.failed, r.undelivered) == (6, 3, 3, 3), r.errors
    assert sorted(to for m in server.received for to in m.rcpt_tos) == [f"ok{i}@example.com" for i in range(3)]
    assert not any("not attempted" in e for e in r.errors)
    pending = outbox.list_outbox(store.conn, "pending")
    assert pending == []  # a 550 is refused for good: rejected, not retried (see test_a_5xx_refusal_is_rejected_...)
    rejected = outbox.list_outbox(store.conn, "rejected")
    assert {p["recipient"] for p in rejected} == {f"gone{i}@example.com" for i in range(3)}
    assert all("550" in p["last_error"] and "refused by the receiver" in p["last_error"] for p in rejected)


def test_a_dropped_connection_is_a_clean_failure_and_stays_queued(store, pm):
    srv = HostileServer(drop_on="RCPT")
    try:
        r = record_and_notify(store, Result((alert(),)), settings=settings_for(srv.port), pm=pm, now=NOW)
        assert (r.sent, r.failed, r.undelivered) == (0, 1, 1)
        assert "SMTPServerDisconnected" in r.errors[0]
    finally:
        srv.stop()


# 4. a slow server and the run's deadline ---------------------------------------------------------


def test_a_slow_server_is_cut_off_by_the_run_deadline(store, pm):
    queue_failed(store, pm, [alert("KAM101", "critical", f"A{i}", owner_email=f"o{i}@example.com") for i in range(4)])
    srv = HostileServer(delay=0.4)  # each reply well under the 3 s socket timeout; a message takes ~3 s
    try:
        t0 = time.monotonic()
        res = cli(
            store.path,
            "notify",
            "--ignore-backoff",
            env={"KAMRULES_SMTP_PORT": str(srv.port), "KAMRULES_NOTIFY_DEADLINE": "1.5"},
        )
        took = time.monotonic() - t0
        assert res.returncode == 4, res.stderr
        assert took < 8, took  # without a deadline: 4 messages x ~3 s
        assert "notify_deadline of 1.5 s reached" in res.stderr
        pending = outbox.list_outbox(store.conn, "pending")
        assert len(pending) == 4 - len(srv.received)
        untried = [p for p in pending if "deadline" not in (p["last_error"] or "") and p["attempts"] == 1]
        assert untried, pending  # the rest went back to the queue without counting an attempt
    finally:
        srv.stop()


# 5. two notify runs at once --------------------------------------------------------------------


def test_two_notify_processes_deliver_once_and_both_exit_0(store, pm):
    port = free_port()
    queue_failed(
        store,
        pm,
        [alert("KAM101", "critical", f"A{i}", owner_email=f"o{i}@example.com") for i in range(3)],
        KAMRULES_SMTP_PORT=str(port),
    )
    srv = SmtpServer(port=port)
    srv.sink.gate, srv.sink.accept_before_block = threading.Event(), True
    env = {"KAMRULES_SMTP_PORT": str(port)}
    full = {
        **os.environ,
        "KAMRULES_LOAD_PLUGINS": "",
        "KAMRULES_CONFIG": "",
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_FROM": "kamrules@example.com",
        **env,
    }
    first = subprocess.Popen(
        [sys.executable, "-m", "kamrules", "--db", str(store.path), "notify", "--ignore-backoff"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert srv.sink.entered.wait(30), "the first sender never reached DATA"
        second = cli(store.path, "notify", "--ignore-backoff", env=env)  # while the first holds all three
        assert second.returncode == 0, second.stderr
        assert "3 messages are being sent by another process" in second.stderr
        srv.sink.gate.set()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert sorted(to for m in srv.received for to in m.rcpt_tos) == [f"o{i}@example.com" for i in range(3)]
        assert len(set(srv.sink.message_ids())) == 3
        assert outbox.list_outbox(store.conn, "pending") == []
    finally:
        srv.sink.gate.set()
        if first.poll() is None:
            first.kill()
        srv.stop()


# 6. unrouted alerts say why, in the notifier's own words ----------------------------------------

PLUGIN = """
import os
from kamrules import hookimpl

class Pager:
    name = "pager"
    def route(self, items, settings):
        url = os.environ.get("PAGER_URL")
        return ({url: list(items)} if url and items else {}), ([] if url else list(items))
    def unrouted_reason(self, item, settings):
        return "PAGER_URL is not set"
    def render(self, recipient, items, key, as_of, settings):
        raise AssertionError("never routed")
    def send(self, recipient, payload, settings):
        raise AssertionError("never routed")

class Mute(Pager):
    name = "mute"
    unrouted_reason = None

@hookimpl
def register_notifiers():
    return [Pager(), Mute()]
"""


@pytest.fixture()
def book_db(book, tmp_path):
    book.account("K1", name="华东机电", tier="key", owner="王磊", owner_email=None)
    book.account("K2", name="苏州精工", tier="key", owner="李娜", owner_email=None)
    book.add("channels", account_id="K1", kind="technical")
    book.save()
    return book.store.path


def test_a_notifier_that_routes_nothing_says_why_and_exits_4(book_db, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "pager_plugin.py").write_text(PLUGIN, encoding="utf-8")
    args = ["check", "--as-of", "2026-10-31", "--select", "KAM3", "--fail-on", "never"]

    def notify_with(name):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "kamrules",
                "--plugins-dir",
                str(plugins),
                "--db",
                str(book_db),
                *args,
                "--notify",
                name,
            ],
            env={**os.environ, "KAMRULES_LOAD_PLUGINS": "", "KAMRULES_CONFIG": ""},
            capture_output=True,
            text=True,
            timeout=60,
        )

    res = notify_with("pager")
    assert res.returncode == 4, res.stderr
    assert "unrouted (PAGER_URL is not set): " in res.stderr and "owner_email" not in res.stderr
    res = notify_with("mute")
    assert res.returncode == 4 and "unrouted (mute named no recipient)" in res.stderr, res.stderr


def test_email_with_no_address_anywhere_exits_4_with_its_reason(book_db):
    res = cli(
        book_db,
        "check",
        "--as-of",
        "2026-10-31",
        "--select",
        "KAM3",
        "--fail-on",
        "never",
        "--notify",
        "email",
        env={"KAMRULES_SMTP_PORT": str(free_port())},
    )
    assert res.returncode == 4, res.stderr
    assert "0 queued" in res.stderr and "unrouted (no owner_email, no default_to): " in res.stderr


# 7. a send that hangs ------------------------------------------------------------------------------


class Hang:
    name = "hang"

    def route(self, items, settings):
        return ({"somewhere": list(items)} if items else {}), []

    def render(self, recipient, items, key, as_of, settings):
        return Rendered(subject="x", payload=key.encode())

    def send(self, recipient, payload, settings):
        time.sleep(8)  # a plugin waiting on a socket without a timeout


class HangPlugin:
    @hookimpl
    def register_notifiers(self):
        return [Hang()]


def test_a_hanging_plugin_send_is_stopped_by_the_run_deadline(store, pm):
    pm.register(HangPlugin(), name="hang")
    s = settings_for(1, notify_deadline=1.0)
    t0 = time.monotonic()
    r = record_and_notify(store, Result((alert(),)), notify=("hang",), settings=s, pm=pm, now=NOW)
    assert time.monotonic() - t0 < 4
    assert (r.sent, r.failed, r.undelivered) == (0, 1, 1)
    assert "TimeoutError: send did not finish before the notify run's deadline (notify_deadline 1 s)" in r.errors[0]


def test_an_smtp_server_that_never_answers_data_times_out(store, server, pm):
    server.sink.gate = threading.Event()  # DATA waits forever (until the test ends)
    try:
        t0 = time.monotonic()
        r = record_and_notify(
            store, Result((alert(),)), settings=settings_for(server.port, smtp_timeout=1.0), pm=pm, now=NOW
        )
        assert time.monotonic() - t0 < 5
        assert (r.sent, r.failed, r.undelivered) == (0, 1, 1) and "timed out" in r.errors[0]
    finally:
        server.sink.gate.set()


def test_a_webhook_that_never_answers_times_out(store, pm):
    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(5)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        s = settings_for(1, KAMRULES_WEBHOOK_URL=f"http://127.0.0.1:{httpd.server_address[1]}/", webhook_timeout=0.5)
        t0 = time.monotonic()
        r = record_and_notify(store, Result((alert(),)), notify=("webhook",), settings=s, pm=pm, now=NOW)
        assert time.monotonic() - t0 < 4
        assert (r.sent, r.failed, r.undelivered) == (0, 1, 1) and "timed out" in r.errors[0]
    finally:
        httpd.shutdown()
        httpd.server_close()


# 8. refused for good: the terminal state 'rejected' (5xx on RCPT or after DATA, HTTP 4xx) ------------


def test_a_5xx_refusal_is_rejected_once_exits_4_then_is_left_alone(store, pm):
    port = free_port()
    alerts = [
        alert("KAM101", "critical", "B1", owner_email="gone@example.com"),
        alert("KAM201", "warning", "G1", owner_email="ok@example.com"),
    ]
    queue_failed(store, pm, alerts, KAMRULES_SMTP_PORT=str(port))  # no server yet: both wait as 'failed'
    srv = SmtpServer(port=port)
    srv.sink.refuse = {"gone@example.com"}
    env = {"KAMRULES_SMTP_PORT": str(port)}
    try:
        first = cli(store.path, "notify", "--ignore-backoff", env=env)
        assert first.returncode == 4, first.stderr  # the refused one was not delivered
        assert "1 sent, 1 failed (1 rejected), 1 undelivered" in first.stdout
        assert "1 refused for good by the receiver, not retried" in first.stderr and "still queued" not in first.stderr
        row = outbox.list_outbox(store.conn, "rejected")
        assert [r["recipient"] for r in row] == ["gone@example.com"] and row[0]["attempts"] == 2
        assert (
            "refused by the receiver, not retried: SMTPRecipientsRefused" in row[0]["last_error"]
            and "550" in row[0]["last_error"]
        )
        events = [r[0] for r in store.conn.execute("SELECT detail FROM alert_events WHERE event = 'rejected'")]
        assert len(events) == 1 and "gone@example.com" in events[0] and "550" in events[0]

        again = cli(store.path, "notify", "--ignore-backoff", env=env)  # nothing is retried, nothing is undelivered
        assert again.returncode == 0, again.stderr
        assert "0 sent, 0 failed, 0 undelivered" in again.stdout
        assert outbox.list_outbox(store.conn, "rejected")[0]["attempts"] == 2
        assert len(srv.received) == 1

        listed = cli(store.path, "notify", "list")
        assert listed.returncode == 0 and "outbox: nothing pending" in listed.stdout
        assert (
            "1 messages were refused for good by the receiver: kamrules notify list --status rejected" in listed.stderr
        )
        shown = cli(store.path, "notify", "list", "--status", "rejected")
        assert shown.returncode == 0 and "gone@example.com" in shown.stdout and "rejected" in shown.stdout

        # a later check does not queue the rejected alert again (nor exit 4 for it) ...
        s = settings_for(port)
        later = record_and_notify(store, Result(tuple(alerts)), settings=s, pm=pm, now=NOW + dt.timedelta(hours=1))
        assert (later.queued, later.sent, later.rejected, later.undelivered) == (0, 0, 0, 0), later
        # ... until its recipient changes (the account got a new owner): then it is due for them
        moved = [dataclasses.replace(alerts[0], owner_email="new@example.com"), alerts[1]]
        later = record_and_notify(store, Result(tuple(moved)), settings=s, pm=pm, now=NOW + dt.timedelta(hours=2))
        assert (later.queued, later.sent, later.undelivered) == (1, 1, 0), later
        assert srv.received[-1].rcpt_tos == ["new@example.com"]
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "reply,status", [("554 5.7.1 message refused as spam", "rejected"), ("451 4.3.0 try again later", "failed")]
)
def test_a_refusal_after_data_is_rejected_when_5xx_and_retried_when_4xx(store, server, pm, reply, status):
    server.sink.data_reply = reply
    r = record_and_notify(store, Result((alert(),)), settings=settings_for(server.port), pm=pm, now=NOW)
    assert (r.sent, r.failed, r.rejected, r.undelivered) == (0, 1, int(status == "rejected"), 1), r.errors
    (row,) = outbox.list_outbox(store.conn, "all")
    assert row["status"] == status and reply[:3] in row["last_error"]
    server.sink.data_reply = None
    later = send_due(
        store, ["email"], settings_for(server.port), pm, now=NOW + dt.timedelta(minutes=5), ignore_backoff=True
    )
    assert (later.sent, later.undelivered) == ((0, 0) if status == "rejected" else (1, 0))


def _previous_version_store(path, pm):
    """A store as kamrules before the 'rejected' step left it: queued, failed, sent and superseded messages."""
    from kamrules import migrations
    from kamrules.store import Store

    before = [m for m in migrations.MIGRATIONS if m[1] != "kamrules.lifecycle.schema:migrate_rejected"]
    with Store.open(path, pm=pm, migrations=before) as old:
        assert old.schema_version == migrations.latest_version(before)
        c = old.conn
        for i, status in enumerate(["queued", "failed", "sent", "superseded"], 1):
            c.execute(
                "INSERT INTO outbox (key, notifier, recipient, subject, payload, status, attempts, last_error, created_at, next_attempt) "
                "VALUES (?, 'email', ?, '主题', ?, ?, ?, ?, '2026-10-31T08:00:00Z', '2026-10-31T08:01:00Z')",
                (
                    f"k{i}",
                    f"r{i}@example.com",
                    f"payload {i}".encode(),
                    status,
                    i,
                    "550 old" if status == "failed" else None,
                ),
            )
            c.execute(
                "INSERT INTO outbox_items (outbox_id, fingerprint, severity, status) VALUES (?, ?, 'critical', 'firing')",
                (i, f"fp{i}"),
            )
        with pytest.raises(Exception, match="CHECK constraint failed"):
            c.execute("UPDATE outbox SET status = 'rejected' WHERE id = 1")
        return [tuple(r) for r in c.execute("SELECT * FROM outbox ORDER BY id")], [
            tuple(r) for r in c.execute("SELECT * FROM outbox_items ORDER BY outbox_id")
        ]


def test_the_migration_to_rejected_keeps_every_outbox_row(tmp_path, pm):
    import sqlite3

    from kamrules import migrations
    from kamrules.store import Store

    path = tmp_path / "old.db"
    box, items = _previous_version_store(path, pm)
    with Store.open(path, pm=pm) as new:
        c = new.conn
        assert new.schema_version == migrations.latest_version()
        assert [tuple(r) for r in c.execute("SELECT * FROM outbox ORDER BY id")] == box
        assert [tuple(r) for r in c.execute("SELECT * FROM outbox_items ORDER BY outbox_id")] == items
        assert {
            r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%old%'")
        } == set()
        indexes = {
            r[0]: r[1]
            for r in c.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND name LIKE 'outbox%'")
        }
        assert indexes["outbox_status"] == "outbox" and indexes["outbox_items_fp"] == "outbox_items"
        assert (
            "outbox_status"
            in c.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM outbox WHERE status = 'queued' AND next_attempt < 'z'"
            ).fetchall()[0][-1]
        )
        c.execute("UPDATE outbox SET status = 'rejected' WHERE id = 2")  # the new terminal state
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            c.execute("UPDATE outbox SET status = 'lost' WHERE id = 1")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):  # outbox_items still points at the new outbox
            c.execute(
                "INSERT INTO outbox_items (outbox_id, fingerprint, severity, status) VALUES (99, 'x', 'info', 'firing')"
            )
        assert (
            c.execute("PRAGMA foreign_key_check").fetchall() == []
            and c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        )
        due = outbox.due_messages(c, ["email"], NOW + dt.timedelta(days=1))
        assert [r["id"] for r in due] == [1]  # queued still due; failed-then-rejected is not
        # a new message gets a fresh id after the rebuilt table's rows
        c.execute(
            "INSERT INTO outbox (key, notifier, recipient, subject, payload, status, created_at, next_attempt) VALUES ('k9', 'email', 'x', 's', x'00', 'queued', 'a', 'b')"
        )
        assert c.execute("SELECT MAX(id) FROM outbox").fetchone()[0] == 5


# 9. the webhook: HTTP 4xx is refused for good, except 408/425/429; 5xx is transient ---------------


class _Hook(BaseHTTPRequestHandler):
    code = 200
    hits: list = []

    def do_POST(self):  # noqa: N802
        type(self).hits.append(self.rfile.read(int(self.headers["Content-Length"])))
        body = b'{"error": "no such channel"}'
        self.send_response(type(self).code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize(
    "code,permanent",
    [
        (400, True),
        (401, True),
        (404, True),
        (410, True),
        (422, True),
        (408, False),
        (425, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_webhook_4xx_is_rejected_and_5xx_408_425_429_retried(store, pm, code, permanent):
    _Hook.code, _Hook.hits = code, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        s = settings_for(1, KAMRULES_WEBHOOK_URL=f"http://127.0.0.1:{httpd.server_address[1]}/hook")
        r = record_and_notify(store, Result((alert(),)), notify=("webhook",), settings=s, pm=pm, now=NOW)
        assert (r.sent, r.failed, r.rejected, r.undelivered) == (0, 1, int(permanent), 1), r.errors
        (row,) = outbox.list_outbox(store.conn, "all")
        assert row["status"] == ("rejected" if permanent else "failed") and f"HTTP {code}" in row["last_error"]
        if permanent:
            assert "no such channel" in row["last_error"]  # the receiver's own words, one line
        later = send_due(store, ["webhook"], s, pm, now=NOW + dt.timedelta(minutes=5), ignore_backoff=True)
        assert len(_Hook.hits) == (1 if permanent else 2)  # a rejected message is never posted again
        assert later.undelivered == (0 if permanent else 1)
    finally:
        httpd.shutdown()
        httpd.server_close()


# 10. the example WeCom notifier: its own words for unrouted alerts; waits bounded by time_left() -----


def test_wecom_names_why_in_its_own_words(monkeypatch):
    from kamrules.lifecycle.notifiers import DueItem, unrouted_reason
    from kamrules_receivables.wecom import WeComNotifier

    n = WeComNotifier()
    rcv = DueItem(alert("RCV101", "critical", ruleset="receivables"), "new", 1, "2026-10-31T08:00:00Z")
    kam = DueItem(alert("KAM101"), "new", 1, "2026-10-31T08:00:00Z")
    s = settings_for(1)
    monkeypatch.delenv("KAMRULES_WECOM_WEBHOOK", raising=False)
    assert unrouted_reason(n, rcv, s) == "$KAMRULES_WECOM_WEBHOOK not set: no 企业微信 group robot to post to"
    monkeypatch.setenv("KAMRULES_WECOM_WEBHOOK", "ftp://robot")
    assert unrouted_reason(n, rcv, s) == "$KAMRULES_WECOM_WEBHOOK is not an http(s) robot URL"
    monkeypatch.setenv("KAMRULES_WECOM_WEBHOOK", "http://127.0.0.1:9/robot")
    groups, left = n.route([rcv, kam], s)
    assert (
        left == [kam]
        and unrouted_reason(n, kam, s) == "not a receivables alert (the 企业微信 group takes RCV* codes only)"
    )


def test_wecom_send_waits_no_longer_than_the_run_has_left():
    import contextvars

    from kamrules.lifecycle.notifiers import _DEADLINE
    from kamrules_receivables.wecom import WeComNotifier

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            time.sleep(4)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/robot"
    try:

        def send():
            _DEADLINE.set(time.monotonic() + 0.6)  # what send_within sets: 0.6 s left of the run
            WeComNotifier().send(url, b"{}", settings_for(1))

        t0 = time.monotonic()
        with pytest.raises(OSError, match="timed out"):  # its own socket timeout, not an abandoned thread
            contextvars.copy_context().run(send)
        assert time.monotonic() - t0 < 2
    finally:
        httpd.shutdown()
        httpd.server_close()


# 11. a misconfigured notifier refuses the whole command before anything is recorded ---------------


def _dump(path) -> list[str]:
    import sqlite3

    with sqlite3.connect(path) as c:
        return list(c.iterdump())


@pytest.mark.parametrize(
    "notify,env,words",
    [
        (["webhook"], {}, "--notify webhook: the webhook notifier needs a URL: set KAMRULES_WEBHOOK_URL"),
        (["email", "webhook"], {}, "--notify webhook: the webhook notifier needs a URL"),
        (
            ["email", "webhook"],
            {"KAMRULES_WEBHOOK_URL": "file:///etc/passwd"},
            "--notify webhook: webhook_url 'file:///etc/passwd': expected an http://",
        ),
        (
            ["email"],
            {"KAMRULES_EMAIL_DEFAULT_TO": "ka team"},
            "--notify email: default_to 'ka team': not a valid address",
        ),
        (["email"], {"KAMRULES_SMTP_FROM": "kamrules"}, "--notify email: smtp_from 'kamrules': not a valid address"),
        (["email", "sms"], {}, "unknown notifier sms (available: email, webhook)"),
    ],
    ids=[
        "webhook-no-url",
        "email+webhook-no-url",
        "email+webhook-bad-url",
        "email-bad-default-to",
        "email-bad-from",
        "unknown",
    ],
)
def test_a_misconfigured_notifier_changes_nothing_and_exits_2(book_db, tmp_path, notify, env, words):
    before = _dump(book_db)
    report = tmp_path / "report.csv"
    args = ["check", "--as-of", "2026-10-31", "--fail-on", "never", "--format", "csv", "-o", str(report)]
    res = cli(
        book_db,
        *args,
        *[a for n in notify for a in ("--notify", n)],
        env={"KAMRULES_SMTP_PORT": str(free_port()), **env},
    )
    assert res.returncode == 2, res.stderr
    assert words in res.stderr and "Traceback" not in res.stderr
    assert _dump(book_db) == before  # no history, no run, no outbox row
    assert not report.exists()  # refused up front: the check did not run either
    ok = cli(book_db, *args, "--notify", "email", env={"KAMRULES_SMTP_PORT": str(free_port())})
    assert ok.returncode == 4 and _dump(book_db) != before  # the same check with a usable notifier records


def test_record_and_notify_refuses_before_recording(store, pm):
    from kamrules.errors import InputError

    before = _dump(store.path)
    with pytest.raises(InputError, match=r"--notify webhook: .*needs a URL.*\(nothing was recorded or sent\)"):
        record_and_notify(
            store, Result((alert(),)), notify=("email", "webhook"), settings=settings_for(free_port()), pm=pm, now=NOW
        )
    assert _dump(store.path) == before


class Broken:
    name = "broken"

    def check_settings(self, settings):
        raise KeyError("oops")

    route = Hang.route
    render = Hang.render
    send = Hang.send


def test_a_notifier_whose_check_settings_crashes_is_named_and_records_nothing(store, pm):
    from kamrules.errors import EXIT_INCOMPLETE, KamrulesError

    class P:
        @hookimpl
        def register_notifiers(self):
            return [Broken()]

    pm.register(P(), name="broken")
    before = _dump(store.path)
    with pytest.raises(KamrulesError, match=r"notifier broken: check_settings failed: KeyError") as e:
        record_and_notify(store, Result((alert(),)), notify=("broken",), settings=settings_for(1), pm=pm, now=NOW)
    assert e.value.exit_code == EXIT_INCOMPLETE and _dump(store.path) == before
