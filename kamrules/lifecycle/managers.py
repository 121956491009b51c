"""Manager roll-ups ([email.managers]): one digest per manager of their team's book, queued in the outbox."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from kamrules import i18n
from kamrules.i18n import get_lang
from kamrules.lifecycle.notifiers import DueItem
from kamrules.lifecycle.schema import transaction, ts


def team_context(conn, manager: str, owners: Sequence[str], run_id: int | None, as_of: str) -> dict:
    """Per owner: firing alerts by severity, average health at the run, the critical alerts (most recent rule order)."""
    from kamrules.lifecycle.digest_summary import book_health

    rows = []
    for o in owners:
        alerts = [
            json.loads(a)
            for (a,) in conn.execute(
                "SELECT alert_json FROM alert_history WHERE status = 'firing' AND silenced = 0 AND json_extract(alert_json, '$.owner') = ? "
                "ORDER BY fingerprint",
                (o,),
            )
        ]
        counts = {s: sum(1 for a in alerts if a["severity"] == s) for s in ("critical", "warning", "info")}
        critical = sorted(
            (a for a in alerts if a["severity"] == "critical"), key=lambda a: (a.get("account_name") or "", a["code"])
        )
        for a in critical:  # the stored message in the reader's language (English if the rule has none in it)
            a["message"] = ((a.get("texts") or {}).get(get_lang()) or {}).get("message") or a["message"]
        health = book_health(conn, run_id, [o]) if run_id is not None else None
        rows.append({"owner": o, "counts": counts, "critical": critical, "health": health})
    total = {s: sum(r["counts"][s] for r in rows) for s in ("critical", "warning", "info")}
    return {"manager": manager, "owners": rows, "total": total, "as_of": as_of}


def queue_rollups(conn, settings, items: Sequence[DueItem], as_of: str, now, run_id: int | None) -> int:
    """Queue one roll-up per manager whose team had something due in this run; returns how many were queued."""
    from kamrules.lifecycle import digest

    due_owners = {i.alert.owner for i in items if i.alert.owner}
    queued = 0
    rendered = []
    for manager, owners in sorted(settings.email.managers.items()):
        addr = digest.valid_address(manager)
        if addr is None or not due_owners & set(owners):
            continue
        key = f"managers-{run_id}-{hashlib.sha256(addr.encode()).hexdigest()[:12]}"
        with i18n.using(digest.mail_lang(addr, settings)):  # the manager's language, as an owner's digest
            ctx = dict(team_context(conn, addr, list(owners), run_id, as_of), key=key)
            env = digest.environment(settings.email.templates_dir, html=False)
            subject = digest.one_line(env.get_template("manager_subject.txt.j2").render(ctx))
            text = env.get_template("manager.txt.j2").render(ctx)
            html = (
                digest.environment(settings.email.templates_dir, html=True).get_template("manager.html.j2").render(ctx)
            )
        msg = digest.build_message(
            sender=settings.email.smtp_from,
            recipient=addr,
            to_name=None,
            subject=subject,
            text=text,
            html=html,
            key=key,
            now=now,
        )
        rendered.append((key, addr, subject, msg.as_bytes()))
    with transaction(conn):
        for key, addr, subject, payload in rendered:
            cur = conn.execute(
                "INSERT OR IGNORE INTO outbox (key, notifier, recipient, subject, payload, status, created_at, next_attempt) "
                "VALUES (?, 'email', ?, ?, ?, 'queued', ?, ?)",
                (key, addr, subject, payload, ts(now), ts(now)),
            )
            queued += cur.rowcount == 1
    return queued


def check_managers(settings) -> None:
    """Refuse ([email.managers]) a manager key that is not one address (InputError, exit 2)."""
    from kamrules.errors import InputError
    from kamrules.lifecycle import digest

    bad = [m for m in settings.email.managers if digest.valid_address(m) is None]
    if bad:
        raise InputError(
            f"[email.managers]: {', '.join(map(repr, bad))}: not a valid address (expected e.g. "
            f'"ka-lead@example.com" = ["王磊", "李娜"])'
        )
