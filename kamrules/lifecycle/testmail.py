"""`kamrules notify test`: one message sent straight to an address, to check SMTP settings."""

from __future__ import annotations

import hashlib

from kamrules.errors import DeliveryError, InputError
from kamrules.lifecycle import digest, smtp
from kamrules.lifecycle.outbox import scrub
from kamrules.lifecycle.schema import ts, utcnow


def send_test(settings, to: str) -> str:
    """Send a short UTF-8 test message; returns its Message-ID. Raises DeliveryError (exit 4) on failure."""
    addr = digest.valid_address(to)
    if addr is None:
        raise InputError(f"--to {to!r}: not a single valid email address")
    now = utcnow()
    key = hashlib.sha256(f"test {addr} {ts(now)}".encode()).hexdigest()[:32]
    e = settings.email
    text = (
        "This is a test message from kamrules (测试邮件).\n\n"
        f"SMTP: {e.smtp_host}:{e.port}, TLS: {e.smtp_tls}, user: {e.smtp_user or '(none)'}\n"
        f"From: {e.smtp_from}\nSent at: {ts(now)}\n"
    )
    msg = digest.build_message(
        sender=e.smtp_from,
        recipient=addr,
        to_name=None,
        subject="[kamrules] test message 测试邮件",
        text=text,
        html=None,
        key=key,
        now=now,
    )
    try:
        smtp.send_bytes(settings, [addr], msg.as_bytes())
    except Exception as exc:
        raise DeliveryError(
            f"test message to {addr} not sent via {e.smtp_host}:{e.port} ({e.smtp_tls}): {scrub(f'{type(exc).__name__}: {exc}', settings)}"
        ) from exc
    return msg["Message-ID"]
