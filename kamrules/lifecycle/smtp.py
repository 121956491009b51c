"""Sending bytes over SMTP with smtplib: STARTTLS (default), SSL or plain; AUTH when a user is set."""

from __future__ import annotations

import base64
import email.utils
import re
import smtplib
import ssl
from collections.abc import Sequence

from kamrules.lifecycle.notifiers import time_left


def _context(settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.email.smtp_ca_file)


def envelope_sender(settings) -> str:
    return email.utils.parseaddr(settings.email.smtp_from)[1] or settings.email.smtp_from


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def secret_forms(user: str | None, password: str | None) -> list[str]:
    """Every form in which AUTH sends the password (and LOGIN the user), longest first.

    The password itself, its UTF-8 bytes as Python shows them (``b'p\\xc3\\xa4...'``), and the
    base64 of the password, of ``\\0user\\0password`` and ``user\\0password`` (AUTH PLAIN) and
    of the user (AUTH LOGIN sends it alone).
    """
    if not password:
        return []
    u, p = (user or "").encode("utf-8"), password.encode("utf-8")
    forms = {
        password,
        str(p)[2:-1],
        _b64(p),
        _b64(b"\0" + u + b"\0" + p),
        _b64(u + b"\0" + p),
        _b64(u + b"\0" + u + b"\0" + p),
    }
    if u:
        forms.add(_b64(u))
    forms |= {f.rstrip("=") for f in list(forms) if f.endswith("=")}  # a server may echo it unpadded
    return sorted((f for f in forms if len(f) >= 3), key=len, reverse=True)


_BASE64ISH = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def scrub_secret(text: str, user: str | None, password: str | None) -> str:
    """``text`` without the password in any form AUTH sent it (see :func:`secret_forms`).

    Also any base64 run that decodes to bytes holding the password (another authzid, another
    alignment) is hidden.
    """
    if not password:
        return text
    for form in secret_forms(user, password):
        text = text.replace(form, "********")
    p = password.encode("utf-8")

    def hide(m):
        blob = m.group(0)
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4))
        except ValueError:
            return blob
        return "********" if p in raw else blob

    return _BASE64ISH.sub(hide, text)


def login(client: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib's login, or AUTH PLAIN in UTF-8 (RFC 4616) when the user or password is not ASCII.

    A refusal is re-raised with the server's answer scrubbed: some servers echo the AUTH line
    (the password in base64) in their error.
    """
    try:
        if (user + password).isascii():
            client.login(user, password)
            return
        client.ehlo_or_helo_if_needed()
        if not client.has_extn("auth"):
            raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
        blob = _b64(b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8"))
        code, resp = client.docmd("AUTH", "PLAIN " + blob)
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, resp)
    except smtplib.SMTPResponseException as e:
        answer = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        raise smtplib.SMTPAuthenticationError(e.smtp_code, scrub_secret(answer, user, password)) from None


class _Timed:
    """Every command's socket timeout is the smaller of smtp_timeout and what is left of the run."""

    cap: float = 30.0

    def putcmd(self, cmd, args=""):
        # QUIT comes after the message was accepted: never fail a delivered message on it
        timeout = min(self.cap, 1.0) if cmd.lower() == "quit" else _timeout(self.cap)
        if self.sock is not None:
            try:
                self.sock.settimeout(timeout)
            except OSError:  # a socket already closed (a failed STARTTLS): send() reports it
                pass
        super().putcmd(cmd, args)


class _TimedSMTP(_Timed, smtplib.SMTP):
    pass


class _TimedSMTP_SSL(_Timed, smtplib.SMTP_SSL):
    pass


def _timeout(cap: float) -> float:
    left = time_left()
    if left is None:
        return cap
    if left <= 0:
        raise TimeoutError("the notify run's deadline passed during the SMTP conversation")
    return min(cap, left)


def send_bytes(settings, to_addrs: Sequence[str], payload: bytes) -> None:
    """Deliver ``payload`` to every address or raise (connection, TLS, AUTH or refusal errors).

    The password is only handed to ``SMTP.login``; it is never logged or put in an error.
    Each reply is awaited at most ``smtp_timeout`` seconds and never past the run's deadline.
    """
    e = settings.email
    cap = e.smtp_timeout
    if e.smtp_tls == "ssl":
        client = _TimedSMTP_SSL(e.smtp_host, e.port, timeout=_timeout(cap), context=_context(settings))
    else:
        client = _TimedSMTP(e.smtp_host, e.port, timeout=_timeout(cap))
    client.cap = cap
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
