"""The durable outbox: messages are committed before any send, claimed, sent, retried with backoff.

Delivery is at-least-once. A message is marked ``sending`` (committed) before
the send and ``sent`` (committed) after it. If the process dies in between,
the next run finds it ``sending`` by a process that no longer exists and sends
it again with the same Message-ID / idempotency key, so a duplicate is
detectable; a message is never lost. Outside that window a message is sent
exactly once: its key is unique and the alert states it covers are marked
queued in the same transaction that writes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Mapping, Sequence

from kamrules.lifecycle.notifiers import DueItem, Notifier
from kamrules.lifecycle.schema import parse_ts, rows, transaction, ts

PENDING = ("queued", "failed", "sending")
STALE_SENDING = dt.timedelta(minutes=15)
GIVE_UP_AFTER = 3  # failures in a row after which a run stops trying a notifier (the rest stay queued)  # a 'sending' claim older than this is retried even if its process lives


def idempotency_key(notifier: str, recipient: str, states: Sequence[tuple]) -> str:
    raw = json.dumps([notifier, recipient.lower(), sorted(states)], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def pending_fingerprints(conn, notifier: str) -> set[str]:
    found = rows(
        conn,
        "SELECT DISTINCT i.fingerprint FROM outbox_items i JOIN outbox o ON o.id = i.outbox_id "
        "WHERE o.notifier = ? AND o.status IN ('queued', 'failed', 'sending')",
        (notifier,),
    )
    return {r["fingerprint"] for r in found}


def last_recipients(conn, notifier: str) -> dict[str, str]:
    """{fingerprint: recipient of the last message delivered about it} for one notifier."""
    found = rows(
        conn,
        "SELECT i.fingerprint, o.recipient FROM outbox_items i JOIN outbox o ON o.id = i.outbox_id "
        "WHERE o.notifier = ? AND o.status = 'sent' ORDER BY o.id",
        (notifier,),
    )
    return {r["fingerprint"]: r["recipient"] for r in found}


def notify_states(conn, notifier: str) -> dict[str, dict]:
    return {r["fingerprint"]: r for r in rows(conn, "SELECT * FROM notify_state WHERE notifier = ?", (notifier,))}


def queue(conn, notifier: Notifier, items: Sequence[DueItem], settings, as_of: str, now: dt.datetime) -> tuple[int, list[DueItem], set[str]]:
    """Route, render and commit one message per recipient; returns (messages queued, unrouted items, routed fingerprints)."""
    groups, unrouted = notifier.route(items, settings)
    groups = {to: group for to, group in groups.items() if group}  # never an empty message
    routed = {it.alert.fingerprint for group in groups.values() for it in group}
    queued = 0
    at = ts(now)
    states = notify_states(conn, notifier.name)  # recipients' items are disjoint: one read is enough
    rendered_all = []
    for recipient, group in groups.items():
        entries = []
        for it in group:
            fp = it.alert.fingerprint
            seq = (states.get(fp) or {}).get("seq", 0) + 1
            entries.append((it, (fp, it.episode, it.alert.severity, it.status, seq)))
        key = idempotency_key(notifier.name, recipient, [s for _, s in entries])
        rendered_all.append((recipient, entries, key, notifier.render(recipient, list(group), key, as_of, settings)))
    with transaction(conn):  # all of this run's messages are committed before any send
        for recipient, entries, key, rendered in rendered_all:
            cur = conn.execute(
                "INSERT OR IGNORE INTO outbox (key, notifier, recipient, subject, payload, status, created_at, next_attempt) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                (key, notifier.name, recipient, rendered.subject, rendered.payload, at, at),
            )
            if cur.rowcount != 1:
                continue
            oid = cur.lastrowid
            for it, (fp, episode, severity, status, seq) in entries:
                conn.execute("INSERT INTO outbox_items (outbox_id, fingerprint, severity, status) VALUES (?, ?, ?, ?)", (oid, fp, severity, status))
                conn.execute(
                    "INSERT INTO notify_state (fingerprint, notifier, episode, severity, status, seq, last_queued) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (fingerprint, notifier) DO UPDATE SET episode = excluded.episode, severity = excluded.severity, "
                    "status = excluded.status, seq = excluded.seq, last_queued = excluded.last_queued",
                    (fp, notifier.name, episode, severity, status, seq, at),
                )
                conn.execute("INSERT INTO alert_events (fingerprint, at, event, detail) VALUES (?, ?, 'queued', ?)", (fp, at, f"{notifier.name} #{oid} to {recipient} ({it.reason})"))
            _supersede(conn, notifier.name, recipient, oid, {s[0] for _, s in entries})
            queued += 1
    return queued, list(unrouted), routed


def _supersede(conn, notifier: str, recipient: str, new_id: int, covered: set[str]) -> None:
    """Older unsent messages to the same recipient whose alerts the new one all covers are dropped."""
    old = rows(conn, "SELECT id FROM outbox WHERE notifier = ? AND recipient = ? AND status IN ('queued', 'failed') AND id != ?", (notifier, recipient, new_id))
    for r in old:
        fps = {x["fingerprint"] for x in rows(conn, "SELECT fingerprint FROM outbox_items WHERE outbox_id = ?", (r["id"],))}
        if fps <= covered:
            conn.execute("UPDATE outbox SET status = 'superseded', last_error = ? WHERE id = ?", (f"replaced by #{new_id}", r["id"]))


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim_is_dead(claimed_by: str | None, since: str | None, now: dt.datetime) -> bool:
    if since and now - parse_ts(since) > STALE_SENDING:
        return True
    host, _, pid = (claimed_by or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def due_messages(conn, names: Sequence[str], now: dt.datetime, ignore_backoff: bool = False) -> list[dict]:
    """Messages of these notifiers to send now: queued/failed past their next attempt, or orphaned 'sending'."""
    marks = ",".join("?" * len(names))
    if not names:
        return []
    found = rows(conn, f"SELECT * FROM outbox WHERE notifier IN ({marks}) AND status IN ('queued', 'failed', 'sending') ORDER BY id", tuple(names))
    out = []
    for r in found:
        if r["status"] == "sending":
            if _claim_is_dead(r["claimed_by"], r["sending_since"], now):
                out.append(r)
        elif ignore_backoff or parse_ts(r["next_attempt"]) <= now:
            out.append(r)
    return out


def _claim(conn, due: list[dict], now: dt.datetime) -> list[dict]:
    """Mark these messages 'sending' by this process, in one committed transaction; returns those won."""
    won = []
    with transaction(conn):
        for row in due:
            cur = conn.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, sending_since = ?, claimed_by = ? "
                "WHERE id = ? AND status = ? AND COALESCE(claimed_by, '') = COALESCE(?, '')",
                (ts(now), _me(), row["id"], row["status"], row["claimed_by"]),
            )
            if cur.rowcount == 1:  # else another process took it
                won.append(row)
    return won


def backoff(settings, attempts: int) -> dt.timedelta:
    seconds = settings.email.backoff_seconds * 2 ** max(attempts - 1, 0)
    return dt.timedelta(seconds=min(seconds, settings.email.backoff_max_seconds))


def scrub(text: str, settings) -> str:
    """An error text with any form of the SMTP password removed."""
    import base64

    pw = settings.email.smtp_password.get_secret_value() if settings.email.smtp_password else ""
    if pw:
        for form in (pw, base64.b64encode(pw.encode()).decode()):
            text = text.replace(form, "********")
    return text[:1000]


def deliver(conn, notifiers: Mapping[str, Notifier], settings, now: dt.datetime, ignore_backoff: bool = False, progress=None) -> tuple[int, int, list[str]]:
    """Send what is due; returns (sent, failed, error lines)."""
    sent = failed = 0
    errors = []
    streak: dict[str, tuple[int, str]] = {}  # notifier -> (consecutive failures, last error)
    for row in _claim(conn, due_messages(conn, list(notifiers), now, ignore_backoff), now):
        notifier = notifiers[row["notifier"]]
        n, last = streak.get(notifier.name, (0, ""))
        try:
            if n >= GIVE_UP_AFTER:  # e.g. the server is down: do not wait out a timeout per message
                raise RuntimeError(f"not attempted after {GIVE_UP_AFTER} failures in a row ({last})")
            notifier.send(row["recipient"], bytes(row["payload"]), settings)
        except Exception as e:  # any failure keeps the message queued
            failed += 1
            msg = scrub(f"{type(e).__name__}: {e}", settings) if n < GIVE_UP_AFTER else scrub(str(e), settings)
            streak[notifier.name] = (n + 1, last if n >= GIVE_UP_AFTER else msg)
            errors.append(f"#{row['id']} {row['notifier']} to {row['recipient']}: {msg}")
            attempts = row["attempts"] + 1
            with transaction(conn):
                conn.execute(
                    "UPDATE outbox SET status = 'failed', last_error = ?, next_attempt = ?, sending_since = NULL, claimed_by = NULL WHERE id = ?",
                    (msg, ts(now + backoff(settings, attempts)), row["id"]),
                )
        else:
            sent += 1
            streak[notifier.name] = (0, "")
            at = ts(now)
            with transaction(conn):
                conn.execute("UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?", (at, row["id"]))
                fps = [r["fingerprint"] for r in rows(conn, "SELECT fingerprint FROM outbox_items WHERE outbox_id = ?", (row["id"],))]
                for fp in fps:
                    conn.execute("UPDATE notify_state SET last_notified = ? WHERE fingerprint = ? AND notifier = ?", (at, fp, row["notifier"]))
                    conn.execute("UPDATE alert_history SET last_notified = ? WHERE fingerprint = ?", (at, fp))
                    conn.execute("INSERT INTO alert_events (fingerprint, at, event, detail) VALUES (?, ?, 'sent', ?)", (fp, at, f"{row['notifier']} #{row['id']} to {row['recipient']}"))
        if progress:
            progress(1)
    return sent, failed, errors


def undelivered(conn, names: Sequence[str]) -> int:
    if not names:
        return 0
    marks = ",".join("?" * len(names))
    return rows(conn, f"SELECT COUNT(*) AS n FROM outbox WHERE notifier IN ({marks}) AND status IN ('queued', 'failed', 'sending')", tuple(names))[0]["n"]


def list_outbox(conn, status: str | None = None) -> list[dict]:
    sql = "SELECT id, key, notifier, recipient, subject, status, attempts, last_error, created_at, next_attempt, sent_at FROM outbox"
    if status == "pending":
        return rows(conn, sql + " WHERE status IN ('queued', 'failed', 'sending') ORDER BY id")
    if status and status != "all":
        return rows(conn, sql + " WHERE status = ? ORDER BY id", (status,))
    return rows(conn, sql + " ORDER BY id")


def dry_run(conn, names: Sequence[str], folder: str | os.PathLike, now: dt.datetime) -> list[Path]:
    """Write every pending message (regardless of backoff) to ``folder`` instead of sending; changes nothing."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in due_messages(conn, names, now, ignore_backoff=True):
        ext = "eml" if row["notifier"] == "email" else "txt"
        payload = bytes(row["payload"])
        if payload[:1] in (b"{", b"["):
            ext = "json"
        safe = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in row["recipient"])[:80]
        p = out / f"{row['id']:05d}-{row['notifier']}-{safe}.{ext}"
        p.write_bytes(payload)
        paths.append(p)
    return paths
