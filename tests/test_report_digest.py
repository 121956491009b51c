"""Digests that show the book (issue 17): the opening summary with an inline PNG chart, manager roll-ups; real SMTP."""

from __future__ import annotations

import dataclasses
import re

from smtp_server import settings_for

from kamrules.check import run_check
from kamrules.lifecycle import record_and_notify

AS_OF = "2026-10-31"


def _owners_with_mail(store):
    return store.conn.execute(
        "SELECT owner, MIN(owner_email) FROM accounts WHERE owner_email IS NOT NULL GROUP BY owner ORDER BY owner"
    ).fetchall()


def test_owner_digest_opens_with_summary_and_inline_chart(book_store, server):
    s = settings_for(server.port)
    s = dataclasses.replace(s, email=dataclasses.replace(s.email, resolved_notices=True))
    report = record_and_notify(book_store, run_check(book_store, as_of=AS_OF), notify=("email",), settings=s)
    assert report.sent >= 2 and report.undelivered == 0
    owner, addr = _owners_with_mail(book_store)[0]
    msg = next(r.message for r in server.received if addr in r.rcpt_tos)
    assert msg.get_content_type() == "multipart/alternative"
    related = [p for p in msg.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1
    parts = list(related[0].iter_parts())
    html = next(p for p in parts if p.get_content_type() == "text/html").get_content()
    png = next(p for p in parts if p.get_content_type() == "image/png")
    cid = png["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html
    assert png.get_content()[:8] == b"\x89PNG\r\n\x1a\n" and len(png.get_content()) > 1000
    text = msg.get_body(("plain",)).get_content()  # complete without the picture
    n = book_store.conn.execute("SELECT COUNT(*) FROM accounts WHERE owner = ?", (owner,)).fetchone()[0]
    assert re.search(r"\d+ new since your last digest, 0 resolved; \d+ still firing", text)
    assert "Your book's health: average" in text and f"over {n} accounts" in text
    assert "still firing" in html and "Your book's health" in html


def test_manager_rollup_one_digest_of_the_team(book_store, server, tmp_path):
    owners = [o for o, _ in _owners_with_mail(book_store)][:2]
    toml = tmp_path / "kamrules.toml"
    toml.write_text(
        f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {server.port}\nsmtp_tls = "none"\nsmtp_from = "kamrules@example.com"\n'
        f'[email.managers]\n"lead@example.com" = ["{owners[0]}", "{owners[1]}"]\n',
        encoding="utf-8",
    )
    from kamrules.config import load_settings

    s = load_settings(toml, environ={})
    assert s.email.managers == {"lead@example.com": (owners[0], owners[1])}
    report = record_and_notify(book_store, run_check(book_store, as_of=AS_OF), notify=("email",), settings=s)
    assert report.undelivered == 0
    to_lead = [r.message for r in server.received if "lead@example.com" in r.rcpt_tos]
    assert len(to_lead) == 1
    m = to_lead[0]
    text = m.get_body(("plain",)).get_content()
    crit = book_store.conn.execute(
        "SELECT COUNT(*) FROM alert_history WHERE status = 'firing' AND json_extract(alert_json, '$.severity') = 'critical' "
        "AND json_extract(alert_json, '$.owner') IN (?, ?)",
        owners,
    ).fetchone()[0]
    assert m["Subject"].startswith(f"[kamrules] team digest: {crit} critical")
    for o in owners:
        assert f"== {o}: " in text
    assert text.count("[CRITICAL]") == crit
    other = [o for o, _ in _owners_with_mail(book_store)][2:]
    assert all(f"== {o}:" not in text for o in other)
    # an unchanged second run: nothing due, no second roll-up
    n = len(server.received)
    record_and_notify(book_store, run_check(book_store, as_of=AS_OF), notify=("email",), settings=s)
    assert len(server.received) == n


def test_manager_key_not_an_address_is_refused(book_store, tmp_path):
    import pytest

    from kamrules.errors import InputError

    toml = tmp_path / "kamrules.toml"
    toml.write_text('[email.managers]\n"not an address" = ["王磊"]\n', encoding="utf-8")
    from kamrules.config import load_settings

    with pytest.raises(InputError, match="not a valid address"):
        record_and_notify(
            book_store, run_check(book_store, as_of=AS_OF), notify=("email",), settings=load_settings(toml, environ={})
        )


def test_manager_rollup_in_the_managers_language(book_store, server, tmp_path):
    """[email.lang_by_recipient] reaches the managers' roll-up too: Chinese subject, headings and counts."""
    owners = [o for o, _ in _owners_with_mail(book_store)][:2]
    toml = tmp_path / "kamrules.toml"
    toml.write_text(
        f'[email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {server.port}\nsmtp_tls = "none"\nsmtp_from = "kamrules@example.com"\n'
        f'[email.lang_by_recipient]\n"lead@example.com" = "zh"\n'
        f'[email.managers]\n"lead@example.com" = ["{owners[0]}", "{owners[1]}"]\n',
        encoding="utf-8",
    )
    from kamrules.config import load_settings

    s = load_settings(toml, environ={})
    report = record_and_notify(book_store, run_check(book_store, as_of=AS_OF), notify=("email",), settings=s)
    assert report.undelivered == 0
    (m,) = [r.message for r in server.received if "lead@example.com" in r.rcpt_tos]
    assert m["Subject"].startswith("[kamrules] 团队汇总：") and "截至" in m["Subject"]
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    assert "团队汇总" in text and "条严重" in text and "[CRITICAL]" not in text
    assert "由 kamrules 发送" in text and "Sent by" not in text
    assert "严重告警" in html or "条严重" in html
    for english in ("team digest", "critical, ", "firing across", "owners"):
        assert english not in text, english
