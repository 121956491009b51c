"""The webhook notifier against a real http.server on loopback: JSON body, retries, idempotency key."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from smtp_server import Result, SmtpServer, alert, settings_for

from kamrules.errors import InputError
from kamrules.lifecycle import outbox, record_and_notify, send_due

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)


class Hook:
    def __init__(self):
        self.requests = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.status == 200:
                    hook.requests.append((dict(self.headers), json.loads(body.decode("utf-8"))))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kam"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hook():
    h = Hook()
    yield h
    h.stop()


def test_webhook_posts_json_once_and_retries_on_5xx(store, hook, pm):
    s = settings_for(1, KAMRULES_WEBHOOK_URL=hook.url)
    res = Result(
        (alert("KAM101", "critical", "A1", "华东机电"), alert("KAM301", "warning", "B1", "无主客户", None, None))
    )
    hook.status = 503
    r = record_and_notify(store, res, notify=("webhook",), settings=s, pm=pm, now=NOW)
    assert (r.queued, r.sent, r.failed, r.undelivered) == (1, 0, 1, 1)
    assert "503" in outbox.list_outbox(store.conn, "pending")[0]["last_error"]
    hook.status = 200
    r = send_due(store, ["webhook"], s, pm, now=NOW + dt.timedelta(minutes=1))
    assert (r.sent, r.undelivered) == (1, 0)
    assert (
        record_and_notify(store, res, notify=("webhook",), settings=s, pm=pm, now=NOW + dt.timedelta(hours=1)).sent == 0
    )
    assert len(hook.requests) == 1
    headers, body = hook.requests[0]
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Idempotency-Key"] == body["key"] == outbox.list_outbox(store.conn, "sent")[0]["key"]
    assert body["counts"] == {"critical": 1, "warning": 1, "info": 0} and body["as_of"] == "2026-10-31"
    names = {a["account_name"] for a in body["alerts"]}
    assert names == {"华东机电", "无主客户"}  # the webhook takes alerts without an owner_email too
    assert body["alerts"][0]["evidence"]["revenue_12m"] == 1790000.0


def test_email_and_webhook_keep_separate_state(store, hook, pm):
    srv = SmtpServer()
    try:
        s = settings_for(srv.port, KAMRULES_WEBHOOK_URL=hook.url)
        r = record_and_notify(store, Result((alert(),)), notify=("email", "webhook"), settings=s, pm=pm, now=NOW)
        assert (r.queued, r.sent) == (2, 2)
        assert len(srv.received) == 1 and len(hook.requests) == 1
    finally:
        srv.stop()


def test_webhook_without_url_is_a_usage_error(store, pm):
    with pytest.raises(InputError, match="KAMRULES_WEBHOOK_URL"):
        record_and_notify(store, Result((alert(),)), notify=("webhook",), settings=settings_for(1), pm=pm, now=NOW)
    with pytest.raises(InputError, match="http:// or https://"):
        record_and_notify(
            store,
            Result((alert(),)),
            notify=("webhook",),
            settings=settings_for(1, KAMRULES_WEBHOOK_URL="file:///etc/passwd"),
            pm=pm,
            now=NOW,
        )


def test_unknown_notifier_is_named(store, pm):
    with pytest.raises(InputError, match=r"unknown notifier sms \(available: email, webhook\)"):
        record_and_notify(store, Result(()), notify=("sms",), settings=settings_for(1), pm=pm, now=NOW)


def test_webhook_dry_run_writes_json(store, pm, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from kamrules.cli import cli

    monkeypatch.chdir(tmp_path)
    s = settings_for(1, KAMRULES_WEBHOOK_URL="http://127.0.0.1:9/hook")
    r = record_and_notify(store, Result((alert(),)), notify=("webhook",), settings=s, pm=pm, now=NOW)
    assert r.undelivered == 1
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        ["--db", store.path, "notify", "--notifier", "webhook", "--dry-run", str(out)],
        env={"KAMRULES_LOAD_PLUGINS": ""},
    )
    assert res.exit_code == 0, res.output
    [f] = list(out.glob("*.json"))
    assert json.loads(f.read_text(encoding="utf-8"))["alerts"][0]["account_name"] == "华东机电"
