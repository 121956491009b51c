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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kamrules.lifecycle.notifiers import DueItem, Notifier
from kamrules.lifecycle.schema import parse_ts, rows, transaction, ts

PENDING = ("queued", "failed", "sending")
STALE_SENDING = dt.timedelta(minutes=15)  # a 'sending' claim older than this is retried even if its process lives
GIVE_UP_AFTER = 3  # server-wide failures in a row after which a run stops trying a notifier (the rest stay queued)


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
    """{fingerprint: recipient of the last message delivered (or rejected) about it} for one notifier."""
    found = rows(
        conn,
        "SELECT i.fingerprint, o.recipient FROM outbox_items i JOIN outbox o ON o.id = i.outbox_id "
        "WHERE o.notifier = ? AND o.status IN ('sent', 'rejected') ORDER BY o.id",
        (notifier,),
    )
    return {r["fingerprint"]: r["recipient"] for r in found}


def rejected_fingerprints(conn, notifier: str) -> set[str]:
    """Alerts whose last message (not superseded) from this notifier was refused for good (``rejected``)."""
    found = rows(
        conn,
        "SELECT i.fingerprint FROM outbox_items i JOIN outbox o ON o.id = i.outbox_id WHERE o.notifier = ? AND o.status = 'rejected' "
        "AND o.id = (SELECT MAX(o2.id) FROM outbox_items i2 JOIN outbox o2 ON o2.id = i2.outbox_id "
        "WHERE i2.fingerprint = i.fingerprint AND o2.notifier = o.notifier AND o2.status != 'superseded')",
        (notifier,),
    )
    return {r["fingerprint"] for r in found}


def notify_states(conn, notifier: str) -> dict[str, dict]:
    return {r["fingerprint"]: r for r in rows(conn, "SELECT * FROM notify_state WHERE notifier = ?", (notifier,))}


def queue(
    conn, notifier: Notifier, items: Sequence[DueItem], settings, as_of: str, now: dt.datetime
) -> tuple[int, list[DueItem], set[str]]:
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
                conn.execute(
                    "INSERT INTO outbox_items (outbox_id, fingerprint, severity, status) VALUES (?, ?, ?, ?)",
                    (oid, fp, severity, status),
                )
                conn.execute(
                    "INSERT INTO notify_state (fingerprint, notifier, episode, severity, status, seq, last_queued) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (fingerprint, notifier) DO UPDATE SET episode = excluded.episode, severity = excluded.severity, "
                    "status = excluded.status, seq = excluded.seq, last_queued = excluded.last_queued",
                    (fp, notifier.name, episode, severity, status, seq, at),
                )
                conn.execute(
                    "INSERT INTO alert_events (fingerprint, at, event, detail) VALUES (?, ?, 'queued', ?)",
                    (fp, at, f"{notifier.name} #{oid} to {recipient} ({it.reason})"),
                )
            _supersede(conn, notifier.name, recipient, oid, {s[0] for _, s in entries})
            queued += 1
    return queued, list(unrouted), routed


def _supersede(conn, notifier: str, recipient: str, new_id: int, covered: set[str]) -> None:
    """Older unsent messages to the same recipient whose alerts the new one all covers are dropped."""
    old = rows(
        conn,
        "SELECT id FROM outbox WHERE notifier = ? AND recipient = ? AND status IN ('queued', 'failed') AND id != ?",
        (notifier, recipient, new_id),
    )
    for r in old:
        fps = {
            x["fingerprint"] for x in rows(conn, "SELECT fingerprint FROM outbox_items WHERE outbox_id = ?", (r["id"],))
        }
        if fps <= covered:
            conn.execute(
                "UPDATE outbox SET status = 'superseded', last_error = ? WHERE id = ?",
                (f"replaced by #{new_id}", r["id"]),
            )


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
    found = rows(
        conn,
        f"SELECT * FROM outbox WHERE notifier IN ({marks}) AND status IN ('queued', 'failed', 'sending') ORDER BY id",
        tuple(names),
    )
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
    """An error text with the SMTP password removed in every form AUTH sends it (see smtp.secret_forms)."""
    from kamrules.lifecycle.smtp import scrub_secret

    e = settings.email
    pw = e.smtp_password.get_secret_value() if e.smtp_password else ""
    return scrub_secret(text, e.smtp_user, pw)[:1000]


def is_permanent(exc: BaseException) -> bool:
    """A refusal of this one message for good, not of the server: it must not hold back the
    others, and retrying it cannot succeed (the message becomes ``rejected``).

    SMTP: every recipient refused with 5xx (``550 mailbox unavailable``) or the message
    refused after DATA with 5xx. Any notifier may raise an exception with ``permanent = True``
    (the webhook does for HTTP 4xx other than 408, 425 and 429).
    """
    import smtplib

    if getattr(exc, "permanent", False) is True:
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [v[0] for v in exc.recipients.values() if isinstance(v, tuple) and v]
        return bool(codes) and all(500 <= int(c) < 600 for c in codes)
    if isinstance(exc, smtplib.SMTPDataError):
        return 500 <= exc.smtp_code < 600
    return False


def is_per_message(exc: BaseException) -> bool:
    """A refusal of this message only (permanent, or a 4xx on RCPT such as greylisting)."""
    import smtplib

    return is_permanent(exc) or isinstance(exc, smtplib.SMTPRecipientsRefused)


@dataclass
class Delivery:
    """What one ``deliver`` did: sent, failed (``rejected`` of them refused for good, never retried), left queued."""

    sent: int = 0
    failed: int = 0
    rejected: int = 0
    left: int = 0  # claimed but not tried: the run's deadline passed
    errors: list[str] = field(default_factory=list)


def _release(conn, row: dict) -> None:
    """Give back a claimed message that was not tried: as it was, the attempt not counted."""
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET status = ?, attempts = MAX(attempts - 1, 0), sending_since = NULL, claimed_by = NULL "
            "WHERE id = ? AND status = 'sending' AND claimed_by = ?",
            ("failed" if row["status"] == "failed" else "queued", row["id"], _me()),
        )


def deliver(
    conn, notifiers: Mapping[str, Notifier], settings, now: dt.datetime, ignore_backoff: bool = False, progress=None
) -> Delivery:
    """Send what is due within ``settings.email.notify_deadline`` seconds.

    A refusal of one message (``is_per_message``: 5xx or 4xx on RCPT, 5xx after DATA) does not
    count towards GIVE_UP_AFTER: it never holds back the other messages. A permanent one
    (``is_permanent``: 5xx, HTTP 4xx) marks the message ``rejected``, a terminal state: retrying
    a "550 mailbox unavailable" cannot succeed. A transient one marks it ``failed`` (retried
    with backoff). Other
    failures (server down, AUTH, timeouts, a dropped connection) do: after GIVE_UP_AFTER in a
    row the notifier's remaining messages are not attempted. When the deadline passes, what
    is left goes back to the queue untried.
    """
    from kamrules.lifecycle.notifiers import send_within

    out = Delivery()
    deadline = time.monotonic() + settings.email.notify_deadline
    streak: dict[str, tuple[int, str]] = {}  # notifier -> (consecutive server-wide failures, last error)
    claimed = _claim(conn, due_messages(conn, list(notifiers), now, ignore_backoff), now)
    for i, row in enumerate(claimed):
        if time.monotonic() >= deadline:
            for rest in claimed[i:]:
                _release(conn, rest)
            out.left = len(claimed) - i
            out.errors.append(
                f"notify_deadline of {settings.email.notify_deadline:g} s reached: {out.left} messages left queued for the next run"
            )
            break
        notifier = notifiers[row["notifier"]]
        n, last = streak.get(notifier.name, (0, ""))
        try:
            if n >= GIVE_UP_AFTER:  # e.g. the server is down: do not wait out a timeout per message
                raise RuntimeError(f"not attempted after {GIVE_UP_AFTER} failures in a row ({last})")
            send_within(notifier, row["recipient"], bytes(row["payload"]), settings, deadline)
        except Exception as e:  # any failure keeps the message (queued, or rejected when permanent)
            msg = scrub(f"{type(e).__name__}: {e}", settings) if n < GIVE_UP_AFTER else scrub(str(e), settings)
            permanent = n < GIVE_UP_AFTER and is_permanent(e)
            out.failed += 1
            delay = backoff(settings, row["attempts"] + 1)
            if permanent:  # this message's own failure (550 user unknown): the others go on
                out.rejected += 1
                msg = f"refused by the receiver, not retried: {msg}"
            elif n >= GIVE_UP_AFTER or not is_per_message(e):
                streak[notifier.name] = (n + 1, last if n >= GIVE_UP_AFTER else msg)
            out.errors.append(f"#{row['id']} {row['notifier']} to {row['recipient']}: {msg}")
            with transaction(conn):
                conn.execute(
                    "UPDATE outbox SET status = ?, last_error = ?, next_attempt = ?, sending_since = NULL, claimed_by = NULL WHERE id = ?",
                    ("rejected" if permanent else "failed", msg[:1000], ts(now + delay), row["id"]),
                )
                if permanent:  # `kamrules alerts show` tells why the alert never reached anyone
                    at = ts(now)
                    for r in rows(conn, "SELECT fingerprint FROM outbox_items WHERE outbox_id = ?", (row["id"],)):
                        conn.execute(
                            "INSERT INTO alert_events (fingerprint, at, event, detail) VALUES (?, ?, 'rejected', ?)",
                            (
                                r["fingerprint"],
                                at,
                                f"{row['notifier']} #{row['id']} to {row['recipient']}: {msg[:300]}",
                            ),
                        )
        else:
            out.sent += 1
            streak[notifier.name] = (0, "")
            at = ts(now)
            with transaction(conn):
                conn.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?", (at, row["id"])
                )
                fps = [
                    r["fingerprint"]
                    for r in rows(conn, "SELECT fingerprint FROM outbox_items WHERE outbox_id = ?", (row["id"],))
                ]
                for fp in fps:
                    conn.execute(
                        "UPDATE notify_state SET last_notified = ? WHERE fingerprint = ? AND notifier = ?",
                        (at, fp, row["notifier"]),
                    )
                    conn.execute("UPDATE alert_history SET last_notified = ? WHERE fingerprint = ?", (at, fp))
                    conn.execute(
                        "INSERT INTO alert_events (fingerprint, at, event, detail) VALUES (?, ?, 'sent', ?)",
                        (fp, at, f"{row['notifier']} #{row['id']} to {row['recipient']}"),
                    )
        if progress:
            progress(1)
    return out


def undelivered(conn, names: Sequence[str], now: dt.datetime | None = None) -> tuple[int, int]:
    """(messages still to deliver, messages another live process is sending right now).

    A message claimed by another running process (``sending``, fresh claim) is not
    undelivered: that process delivers it (two ``kamrules notify`` at once).
    """
    if not names:
        return 0, 0
    now = now or dt.datetime.now(dt.UTC)
    marks = ",".join("?" * len(names))
    found = rows(
        conn,
        f"SELECT status, claimed_by, sending_since FROM outbox WHERE notifier IN ({marks}) AND status IN ('queued', 'failed', 'sending')",
        tuple(names),
    )
    busy = sum(
        1
        for r in found
        if r["status"] == "sending"
        and r["claimed_by"] != _me()
        and not _claim_is_dead(r["claimed_by"], r["sending_since"], now)
    )
    return len(found) - busy, busy


def list_outbox(conn, status: str | None = None) -> list[dict]:
    sql = "SELECT id, key, notifier, recipient, subject, status, attempts, last_error, created_at, next_attempt, sent_at FROM outbox"
    if status == "pending":
        return rows(conn, sql + " WHERE status IN ('queued', 'failed', 'sending') ORDER BY id")
    if status and status != "all":
        return rows(conn, sql + " WHERE status = ? ORDER BY id", (status,))
    return rows(conn, sql + " ORDER BY id")


def dry_run(conn, names: Sequence[str], folder: str | os.PathLike, now: dt.datetime) -> list[Path]:
    """Write every pending message (regardless of backoff) to ``folder`` instead of sending; changes nothing.

    Each file goes through kamrules.outputs (OutputRefused, exit 2, for a name in ``folder`` that is the
    store, e.g. a symlink to it, or not a plain file; written whole or not at all)."""
    from kamrules.outputs import atomic_output, check_output_path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    store_path = next((r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"), None) or None
    paths = []
    for row in due_messages(conn, names, now, ignore_backoff=True):
        ext = "eml" if row["notifier"] == "email" else "txt"
        payload = bytes(row["payload"])
        if payload[:1] in (b"{", b"["):
            ext = "json"
        safe = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in row["recipient"])[:80]
        p = out / f"{row['id']:05d}-{row['notifier']}-{safe}.{ext}"
        check_output_path(p, store_path, what="--dry-run file")
        with atomic_output(p, binary=True) as f:
            f.write(payload)
        paths.append(p)
    return paths
