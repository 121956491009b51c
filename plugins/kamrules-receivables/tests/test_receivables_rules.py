"""The RCV rules on real books (through `kamrules test` files), and the WeCom notifier on a loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

try:
    import kamrules_receivables  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kamrules.check import run_check
from kamrules.config import Settings
from kamrules.lifecycle import record_and_notify
from kamrules.plugins import make_plugin_manager
from kamrules.store import Store, collect_tables
from kamrules.testing import load_test_file
from kamrules_receivables import plugin

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent


@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager(load_entry_points=False, extra=[plugin])


def test_rule_test_file_has_its_seven_cases(pm):
    """Its cases run as pytest items (kamrules.testing.pytest_plugin, with this folder's conftest.py)."""
    assert len(load_test_file(HERE / "receivables.test.yaml", collect_tables(pm)).cases) == 7


def test_rule_test_file_passes_from_the_cli(tmp_path):
    """`kamrules test` loading the plugin from its folder (as a team would before packaging it)."""
    env = dict(
        os.environ,
        KAMRULES_LOAD_PLUGINS="",
        PYTHONPATH=os.pathsep.join([str(PACKAGE), os.environ.get("PYTHONPATH", "")]),
    )
    junit = tmp_path / "rcv.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kamrules",
            "--plugins-dir",
            str(PACKAGE / "kamrules_receivables"),
            "test",
            str(HERE),
            "--junit",
            str(junit),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 passed, 0 failed" in proc.stdout
    assert 'tests="7" failures="0"' in junit.read_text(encoding="utf-8")


def make_book(store: Store, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounts.csv").write_text(
        "id,name,tier,owner,owner_email\n"
        "C001,华东电气集团,key,王磊,wanglei@example.cn\n"
        "C002,小五金商行,small,李娜,lina@example.cn\n",
        encoding="utf-8",
    )
    (folder / "invoices.csv").write_text(
        "id,account_id,issued_on,due_on,amount,paid_on\n"
        "I1,C001,2026-07-01,2026-08-22,120000,\n"
        "I2,C002,2026-09-01,2026-11-30,8000,\n",
        encoding="utf-8",
    )
    store.import_paths([folder])


def test_rules_are_skipped_not_silent_without_invoices(pm, tmp_path):
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "accounts.csv").write_text("id,name,tier\nC001,华东电气集团,key\n", encoding="utf-8")
        store.import_paths([tmp_path / "d"])
        result = run_check(store, "2026-10-31", select=("RCV",), pm=pm)
    assert result.alerts == []
    skipped = {code for code, _ in result.summary.skipped}
    assert {"RCV101", "RCV102", "RCV103", "RCV110"} <= skipped


class _Robot(BaseHTTPRequestHandler):
    """A WeCom group robot stand-in on loopback: records each POST, answers errcode 0 (or the set one)."""

    received: list = []
    errcode = 0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body.decode("utf-8"))))
        answer = json.dumps({"errcode": type(self).errcode, "errmsg": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def robot(monkeypatch):
    _Robot.received, _Robot.errcode = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Robot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/cgi-bin/webhook/send?key=test"
    monkeypatch.setenv("KAMRULES_WECOM_WEBHOOK", url)
    yield _Robot
    server.shutdown()
    server.server_close()


def test_wecom_notifier_posts_one_chinese_markdown_message(pm, tmp_path, robot):
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        make_book(store, tmp_path / "d")
        result = run_check(store, "2026-10-31", pm=pm)
        codes = {a.code for a in result.alerts}
        assert "RCV101" in codes
        report = record_and_notify(store, result, notify=("wecom",), settings=Settings(), pm=pm)
        assert report.sent == 1 and report.undelivered == 0, report
        (path, ctype, body) = robot.received[0]
        assert path == "/cgi-bin/webhook/send?key=test" and ctype == "application/json; charset=utf-8"
        assert body["msgtype"] == "markdown"
        text = body["markdown"]["content"]
        assert text.startswith("**回款提醒 2026-10-31")
        assert "华东电气集团（C001） RCV101 严重" in text and "120,000" in text
        assert "建议：" in text and "负责人 王磊" in text
        assert all(line.startswith(("**", ">", "<font")) for line in text.splitlines())
        # only receivables alerts go to the finance group
        rcv = [a for a in result.alerts if a.code.startswith("RCV")]
        assert all(f" {a.code} " in text for a in rcv)
        assert not any(f" {a.code} " in text for a in result.alerts if not a.code.startswith("RCV"))
        # nothing new on the next run: nothing sent again
        again = record_and_notify(
            store, run_check(store, "2026-10-31", pm=pm), notify=("wecom",), settings=Settings(), pm=pm
        )
        assert again.sent == 0 and len(robot.received) == 1


def test_wecom_refusal_keeps_the_message_queued(pm, tmp_path, robot):
    robot.errcode = 93000  # e.g. an invalid robot key
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        make_book(store, tmp_path / "d")
        report = record_and_notify(
            store, run_check(store, "2026-10-31", select=("RCV",), pm=pm), notify=("wecom",), settings=Settings(), pm=pm
        )
    assert report.sent == 0 and report.failed == 1 and report.undelivered == 1
    assert any("93000" in e for e in report.errors)


def test_wecom_without_a_url_routes_nothing(pm, tmp_path, monkeypatch):
    monkeypatch.delenv("KAMRULES_WECOM_WEBHOOK", raising=False)
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        make_book(store, tmp_path / "d")
        report = record_and_notify(
            store, run_check(store, "2026-10-31", select=("RCV",), pm=pm), notify=("wecom",), settings=Settings(), pm=pm
        )
    assert report.queued == 0 and report.sent == 0
    assert any("C001" in u for u in report.unrouted)
