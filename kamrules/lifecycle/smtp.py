"""Sending bytes over SMTP with smtplib: STARTTLS (default), SSL or plain; AUTH when a user is set."""

from __future__ import annotations

import base64
import email.utils
import smtplib
import ssl
from typing import Sequence


def _context(settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.email.smtp_ca_file)


def envelope_sender(settings) -> str:
    return email.utils.parseaddr(settings.email.smtp_from)[1] or settings.email.smtp_from


def login(client: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib's login, or AUTH PLAIN in UTF-8 (RFC 4616) when the user or password is not ASCII."""
    if (user + password).isascii():
        client.login(user, password)
        return
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    blob = base64.b64encode(b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")).decode("ascii")
    code, resp = client.docmd("AUTH", "PLAIN " + blob)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


def send_bytes(settings, to_addrs: Sequence[str], payload: bytes) -> None:
    """Deliver ``payload`` to every address or raise (connection, TLS, AUTH or refusal errors).

    The password is only handed to ``SMTP.login``; it is never logged or put in an error.
    """
    e = settings.email
    if e.smtp_tls == "ssl":
        client = smtplib.SMTP_SSL(e.smtp_host, e.port, timeout=e.smtp_timeout, context=_context(settings))
    else:
        client = smtplib.SMTP(e.smtp_host, e.port, timeout=e.smtp_timeout)
    with client:
        if e.smtp_tls == "starttls":
            client.starttls(context=_context(settings))
        if e.smtp_user:
            password = e.smtp_password.get_secret_value() if e.smtp_password else ""
            login(client, e.smtp_user, password)
        options = ["SMTPUTF8"] if any(not a.isascii() for a in to_addrs) else []
        refused = client.sendmail(envelope_sender(settings), list(to_addrs), payload, mail_options=options)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
