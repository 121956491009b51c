"""`kamrules report`: a self-contained HTML page (no network reference), its sections, errors, --mail-to."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from kamrules.cli import cli

AS_OF = "2026-10-31"


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture
def db(book_store):
    return str(book_store.path)


def _owners(db):
    import sqlite3

    with sqlite3.connect(db) as c:
        return sorted({r[0] for r in c.execute("SELECT DISTINCT owner FROM accounts WHERE owner IS NOT NULL")})


def test_report_is_self_contained(db, tmp_path):
    out = tmp_path / "report.html"
    r = run("report", "--db", db, "--as-of", AS_OF, "--top", "7", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "KiB" in r.output
    html = out.read_text(encoding="utf-8")
    # no request of any kind: no src/href to a network address, no <script>, no <link>, no @import, no url()
    assert not re.search(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', html, re.I)
    assert not re.search(r"<script|<link\b|@import|url\(", html, re.I)
    assert re.findall(r"https?://[^\"' ]+", html) and set(re.findall(r"https?://[^\"' ]+", html)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }  # SVG namespaces only (not requests)
    for n in range(1, 9):
        assert f">{n} · " in html
    assert html.count("<svg") >= 5
    assert "The 7 accounts with the lowest health scores of 200" in html  # the top N is said on the page
    for owner in _owners(db):
        assert f'data-owner="{owner}"' in html
    assert "<function" not in html and "{'" not in html  # no Python object leaked into the page
    assert "Only one run is recorded" not in html and "No run is recorded yet" in html  # no runs: said, not drawn


def test_report_zh_amounts_in_wan_yi(db, tmp_path):
    out = tmp_path / "zh.html"
    assert run("report", "--db", db, "--as-of", AS_OF, "--lang", "zh", "-o", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert 'lang="zh-CN"' in html and "客户总览" in html and "风险最高的客户" in html
    assert re.search(r"\d(\.\d)?[万亿]<", html)
    assert "严重" in html and "资料收集" in html


def test_owner_filter_and_did_you_mean(db, tmp_path):
    owners = _owners(db)
    out = tmp_path / "one.html"
    r = run("report", "--db", db, "--as-of", AS_OF, "--owner", owners[0], "-o", str(out))
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    assert html.count('<section class="owner"') == 1 and f'data-owner="{owners[0]}"' in html
    assert "Sections for 1 of" in html
    bad = owners[0][:-1] + "X"
    r = run("report", "--db", db, "--as-of", AS_OF, "--owner", bad, "-o", str(tmp_path / "x.html"))
    assert r.exit_code == 2 and "did you mean" in r.output and owners[0] in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.html").exists()


def test_empty_store_exit_2(store, tmp_path):
    r = run("report", "--db", str(store.path), "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 2 and "no accounts" in r.output
    assert not (tmp_path / "r.html").exists()


def test_refuses_to_write_over_the_store(db):
    r = run("report", "--db", db, "--as-of", AS_OF, "-o", db)
    assert r.exit_code == 2 and "refusing" in r.output


def test_store_text_is_escaped(book_store, tmp_path):
    """An owner or account name holding HTML stays text, in the tables and in the SVG charts."""
    with book_store.conn:
        book_store.conn.execute(
            "UPDATE accounts SET owner = '<script>alert(1)</script>' WHERE owner = (SELECT MIN(owner) FROM accounts)"
        )
        book_store.conn.execute(
            "UPDATE accounts SET name = '<img src=http://evil.example/x>' WHERE id = (SELECT MIN(id) FROM accounts)"
        )
    out = tmp_path / "r.html"
    assert run("report", "--db", str(book_store.path), "--as-of", AS_OF, "-o", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_trend_with_two_runs_and_single_run_note(db, tmp_path):
    assert run("check", "--db", db, "--as-of", "2026-09-30").exit_code in (0, 1)
    out = tmp_path / "one.html"
    assert run("report", "--db", db, "--as-of", "2026-09-30", "-o", str(out)).exit_code == 0
    assert "Only one run is recorded (2026-09-30)" in out.read_text(encoding="utf-8")
    assert run("check", "--db", db, "--as-of", AS_OF).exit_code in (0, 1)
    assert run("report", "--db", db, "--as-of", AS_OF, "-o", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert 'data-chart="trend"' in html and "Scores of recorded run 2." in html


def test_templates_override(db, tmp_path):
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "report.css.j2").write_text("body { color: #123456; }\n", encoding="utf-8")
    out = tmp_path / "r.html"
    assert run("report", "--db", db, "--as-of", AS_OF, "--templates", str(folder), "-o", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert "#123456" in html and "@media print" not in html  # the user's stylesheet replaced the built-in one


def test_mail_to_sends_the_report_as_an_attachment(db, server, tmp_path):
    env = {
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_PORT": str(server.port),
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_FROM": "kamrules <kamrules@example.com>",
    }
    r = run("report", "--db", db, "--as-of", AS_OF, "--mail-to", "director@example.com", env=env)
    assert r.exit_code == 0, r.output
    assert [x.rcpt_tos for x in server.received] == [["director@example.com"]]
    msg = server.received[0].message
    assert msg.get_content_type() == "multipart/mixed" and "Portfolio report" in msg["Subject"]
    att = [p for p in msg.iter_attachments()]
    assert len(att) == 1 and att[0].get_filename() == f"kamrules-report-{AS_OF}.html"
    assert "The book at a glance" in att[0].get_content()
    assert "200 accounts" in msg.get_body(("plain",)).get_content()
    import sqlite3

    with sqlite3.connect(db) as c:
        assert c.execute("SELECT status FROM outbox WHERE recipient = 'director@example.com'").fetchall() == [("sent",)]


def test_mail_to_server_down_exit_4_kept_in_outbox(db):
    from smtp_server import free_port

    env = {
        "KAMRULES_SMTP_HOST": "127.0.0.1",
        "KAMRULES_SMTP_PORT": str(free_port()),
        "KAMRULES_SMTP_TLS": "none",
        "KAMRULES_SMTP_FROM": "kamrules@example.com",
    }
    r = run("report", "--db", db, "--as-of", AS_OF, "--mail-to", "director@example.com", env=env)
    assert r.exit_code == 4 and "kept in the outbox" in r.output
    r = run("report", "--db", db, "--mail-to", "not an address", env=env)
    assert r.exit_code == 2 and "not a valid address" in r.output
