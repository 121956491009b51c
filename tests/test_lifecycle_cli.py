"""The CLI of the lifecycle: alerts, silence, notify (dry run, test, exit 4), and a killed sender."""

import datetime as dt
import email
import email.policy
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from smtp_server import Result, SmtpServer, alert, free_port, settings_for

from kamrules.cli import cli
from kamrules.lifecycle import outbox, record_and_notify
from kamrules.store import Store

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def env_for(port, **extra):
    env = {
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_PORT": str(port),
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_FROM": "kamrules@example.com",
        "KAMRULES_LOAD_PLUGINS": "",
    }
    env.update(extra)
    return env


@pytest.fixture()
def db(tmp_path, pm, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "k.db"
    Store.open(path, pm=pm).close()
    return str(path)


def run(args, env=None):
    r = CliRunner().invoke(cli, args, env=env or env_for(1), catch_exceptions=False)
    return r


def book():
    return Result(
        (
            alert("KAM101", "critical", "A001", "华东机电", "王磊", "wanglei@example.com"),
            alert("KAM201", "warning", "A002", "苏州精工", "王磊", "wanglei@example.com"),
            alert("KAM401", "info", "B001", "Acme Ltd", "李娜", "lina@example.com"),
        )
    )


def record(db, pm, result=None, notify=(), port=1, now=NOW, **kw):
    store = Store.open(db, pm=pm)
    try:
        return record_and_notify(
            store, result or book(), notify=notify, settings=settings_for(port, **kw), pm=pm, now=now
        )
    finally:
        store.close()


def test_alerts_list_and_show(db, pm):
    record(db, pm)
    r = run(["--db", db, "alerts"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:4] == ["id", "status", "severity", "code"]
    # double-width aware: the 'owner' column starts at the same display column on every row
    from kamrules_plugins.alert_commands import width

    starts = {width(line[: line.index(o)]) for line in lines[2:] for o in ("王磊", "李娜") if o in line}
    assert len(starts) == 1
    data = json.loads(run(["--db", db, "alerts", "list", "--owner", "王磊", "--format", "json"]).output)
    assert [d["code"] for d in data] == ["KAM101", "KAM201"] and all(d["status"] == "firing" for d in data)
    assert json.loads(run(["--db", db, "alerts", "--owner", "王磊", "--format", "json"]).output) == data
    fp = data[0]["fingerprint"]
    shown = run(["--db", db, "alerts", "show", fp[:6]])
    assert shown.exit_code == 0 and "华东机电" in shown.output and "fired" in shown.output
    record(db, pm, Result((book().alerts[0],)), now=NOW + dt.timedelta(hours=1))
    resolved = json.loads(run(["--db", db, "alerts", "list", "--status", "resolved", "--format", "json"]).output)
    assert sorted(d["code"] for d in resolved) == ["KAM201", "KAM401"]
    missing = run(["--db", db, "alerts", "show", "ffffffffff"])
    assert (
        missing.exit_code == 2 and "no alert with fingerprint" in missing.output and "Traceback" not in missing.output
    )


def test_silences_are_counted_not_sent_and_expire(db, pm):
    srv = SmtpServer()
    try:
        r = run(
            [
                "--db",
                db,
                "silence",
                "add",
                "--rule",
                "KAM1",
                "--owner",
                "王磊",
                "--until",
                "2099-01-01",
                "--comment",
                "返利政策调整中",
                "--author",
                "张三",
                "--format",
                "json",
            ]
        )
        assert r.exit_code == 0, r.output
        sid = json.loads(r.stdout)["id"]  # stderr warns: no owner 王磊 in this store yet
        r = run(
            [
                "--db",
                db,
                "silence",
                "add",
                "--account",
                "B001",
                "--until",
                "2099-01-01",
                "--comment",
                "client on holiday",
            ]
        )
        assert r.exit_code == 0 and "silence 2 added: account=B001" in r.output
        listed = run(["--db", db, "silence", "list"]).output
        assert "rule=KAM1 owner=王磊" in listed and "张三" in listed
        rep = record(db, pm, notify=("email",), port=srv.port)
        assert (rep.silenced, rep.sent) == (2, 1)  # KAM101 for 王磊 and B001 silenced; KAM201 sent
        assert len(srv.received) == 1 and "KAM101" not in srv.received[0].message.get_body(("plain",)).get_content()
        shown = json.loads(run(["--db", db, "alerts", "list", "--format", "json"]).output)
        assert sorted(d["code"] for d in shown if d["silenced"]) == ["KAM101", "KAM401"]
        assert run(["--db", db, "silence", "expire", str(sid)]).exit_code == 0
        assert "rule=KAM1" not in run(["--db", db, "silence", "list"]).output
        assert "rule=KAM1" in run(["--db", db, "silence", "list", "--all"]).output
        rep = record(db, pm, notify=("email",), port=srv.port, now=NOW + dt.timedelta(minutes=1))
        assert (rep.silenced, rep.sent) == (1, 1)
        assert "KAM101" in srv.received[-1].message.get_body(("plain",)).get_content()
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--until", "2099-01-01", "--comment", "x"], "at least one of --rule"),
        (["--rule", "KAM1", "--until", "2001-01-01", "--comment", "x"], "already past"),
        (["--rule", "KAM1", "--until", "someday", "--comment", "x"], "not a date"),
        (["--rule", "KAM1", "--until", "2099-01-01", "--comment", "  "], "needs a --comment"),
    ],
)
def test_bad_silences_are_refused(db, args, message):
    r = run(["--db", db, "silence", "add", *args])
    assert r.exit_code == 2 and message in r.output


def test_notify_dry_run_writes_eml_and_sends_nothing(db, pm, tmp_path):
    port = free_port()
    rep = record(db, pm, notify=("email",), port=port)
    assert rep.undelivered == 2
    out = tmp_path / "out"
    r = run(["--db", db, "notify", "--dry-run", str(out)], env=env_for(port))
    assert r.exit_code == 0, r.output
    files = sorted(out.glob("*.eml"))
    assert len(files) == 2
    msgs = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert sorted(m["Subject"] for m in msgs) == sorted(
        ["[kamrules] 王磊: 1 critical, 1 warning — as of 2026-10-31", "[kamrules] 李娜: 1 info — as of 2026-10-31"]
    )
    assert [r["status"] for r in json.loads(run(["--db", db, "notify", "list", "--format", "json"]).output)] == [
        "failed",
        "failed",
    ]


def test_notify_exits_4_while_undelivered_then_0(db, pm):
    port = free_port()
    record(db, pm, notify=("email",), port=port, KAMRULES_SMTP_PASSWORD="hunter2-secret")
    r = run(["--db", db, "notify", "--ignore-backoff"], env=env_for(port, KAMRULES_SMTP_PASSWORD="hunter2-secret"))
    assert r.exit_code == 4 and "2 messages still queued" in r.output and "Connection refused" in r.output
    assert "hunter2" not in r.output
    srv = SmtpServer(port=port)
    try:
        r = run(["--db", db, "notify", "--ignore-backoff", "--format", "json"], env=env_for(port))
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["sent"] == 2
        assert run(["--db", db, "notify"], env=env_for(port)).output.startswith("0 sent")
        assert len(srv.received) == 2
    finally:
        srv.stop()


def test_notify_test_command(db):
    srv = SmtpServer()
    try:
        r = run(["--db", db, "notify", "test", "--to", "me@example.com"], env=env_for(srv.port))
        assert r.exit_code == 0 and "test message sent to me@example.com" in r.output
        assert srv.received[0].rcpt_tos == ["me@example.com"]
    finally:
        srv.stop()
    r = run(["--db", db, "notify", "test", "--to", "me@example.com"], env=env_for(free_port()))
    assert r.exit_code == 4 and "not sent" in r.output and "Traceback" not in r.output
    r = run(["--db", db, "notify", "test", "--to", "me@example.com\r\nBcc: x@example.com"])
    assert r.exit_code == 2 and "not a single valid email address" in r.output


@pytest.mark.parametrize("accepted", [False, True], ids=["killed-before-accept", "killed-after-accept"])
def test_sender_killed_mid_send_loses_nothing(db, pm, accepted):
    """kill -9 while the SMTP server holds DATA: the message stays 'sending', the next run sends it."""
    port = free_port()
    record(db, pm, notify=("email",), port=port)  # server down: 2 messages queued
    keys = {r["key"] for r in outbox.list_outbox(Store.open(db, pm=pm).conn, "all")}
    srv = SmtpServer(port=port)
    srv.sink.gate = threading.Event()
    srv.sink.accept_before_block = accepted
    try:
        env = {**os.environ, **env_for(port)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "kamrules", "--db", db, "notify", "--ignore-backoff"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert srv.sink.entered.wait(30), proc.communicate(timeout=5)
        proc.kill()
        proc.wait(10)
        store = Store.open(db, pm=pm)
        rows = outbox.list_outbox(store.conn, "all")
        assert [r["status"] for r in rows] == ["sending", "sending"]  # claimed together, then sent one by one
        srv.sink.gate.set()
        time.sleep(0.1)
        again = CliRunner().invoke(cli, ["--db", db, "notify", "--ignore-backoff"], env=env_for(port))
        assert again.exit_code == 0, again.output
        assert [r["status"] for r in outbox.list_outbox(store.conn, "all")] == ["sent", "sent"]
        ids = [r.message["Message-ID"] for r in srv.received]
        assert {i.split(".")[0].strip("<") for i in ids} == keys  # every message arrived
        # before the server accepted: exactly once; after: at most one duplicate, same Message-ID
        assert len(ids) == (3 if accepted else 2)
        assert len(set(ids)) == 2
        store.close()
    finally:
        srv.sink.gate.set()
        srv.stop()
