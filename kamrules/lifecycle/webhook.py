"""The webhook notifier: one JSON POST per run to settings.email.webhook_url, retried via the outbox."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

from kamrules import __version__
from kamrules.errors import InputError
from kamrules.lifecycle.notifiers import DueItem, Rendered


def check_url(url: str | None) -> str:
    if not url:
        raise InputError(
            "the webhook notifier needs a URL: set KAMRULES_WEBHOOK_URL or webhook_url in [email] of kamrules.toml"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in "\r\n \t"):
        raise InputError(f"webhook_url {url!r}: expected an http:// or https:// URL")
    return url


def payload(items: Sequence[DueItem], key: str, as_of: str) -> dict:
    """The JSON body (documented in docs/email.md, "Webhook")."""
    alerts = []
    for it in items:
        a = it.alert
        alerts.append(
            {
                "fingerprint": a.fingerprint,
                "status": it.status,
                "reason": it.reason,
                "severity": a.severity,
                "previous_severity": it.previous_severity,
                "code": a.code,
                "rule": a.rule,
                "ruleset": a.ruleset,
                "account_id": a.account_id,
                "account_name": a.account_name,
                "owner": a.owner,
                "owner_email": a.owner_email,
                "message": a.message,
                "action": a.action,
                "evidence": dict(a.evidence),
                "first_seen": it.first_seen,
            }
        )
    counts = {
        s: sum(1 for x in alerts if x["severity"] == s and x["status"] == "firing")
        for s in ("critical", "warning", "info")
    }
    return {
        "source": "kamrules",
        "version": __version__,
        "key": key,
        "as_of": as_of,
        "counts": counts,
        "resolved": sum(1 for x in alerts if x["status"] == "resolved"),
        "alerts": alerts,
    }


TRANSIENT_4XX = (408, 425, 429)  # Request Timeout, Too Early, Too Many Requests: worth retrying


class WebhookError(Exception):
    """A non-2xx answer worth retrying: 5xx, 408, 425, 429 (the message stays queued)."""


class WebhookRefused(WebhookError):
    """An HTTP 4xx answer other than TRANSIENT_4XX: the receiver refuses this request for good."""

    permanent = True  # the outbox marks the message 'rejected' and does not retry it


def _answer(e) -> str:
    """``HTTP 404 Not Found`` and the start of the receiver's body (one line, short)."""
    try:
        body = e.read(300).decode("utf-8", "replace")
    except Exception:  # the body is a courtesy: never let reading it hide the status
        body = ""
    body = " ".join("".join(c if c.isprintable() else " " for c in body).split())[:200]
    return f"HTTP {e.code} {e.reason}" + (f": {body}" if body else "")


class WebhookNotifier:
    """POSTs ``application/json`` (UTF-8) with an ``Idempotency-Key`` header; any non-2xx answer is a failure.

    A 4xx answer (except 408, 425, 429) is permanent: the message is ``rejected``, not retried.
    5xx, 408, 425, 429 and network errors are transient: the message stays queued.
    """

    name = "webhook"

    def check_settings(self, settings):
        check_url(settings.email.webhook_url)

    def route(self, items, settings):
        # no URL is a settings error (exit 2, named below), never "unrouted": the webhook takes every alert
        url = check_url(settings.email.webhook_url)
        return ({url: list(items)} if items else {}), []

    def unrouted_reason(self, item, settings):
        return "webhook_url not set" if not settings.email.webhook_url else "not taken by the webhook"

    def render(self, recipient, items, key, as_of, settings) -> Rendered:
        body = payload(items, key, as_of)
        c = body["counts"]
        subject = f"{c['critical']} critical, {c['warning']} warning, {c['info']} info, {body['resolved']} resolved — as of {as_of}"
        return Rendered(
            subject=subject, payload=json.dumps(body, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")
        )

    def send(self, recipient, payload_bytes, settings) -> None:
        key = json.loads(payload_bytes).get("key", "")
        import urllib.error
        import urllib.request  # on use: http.client, ssl and email cost ~25 ms of every start-up

        req = urllib.request.Request(
            check_url(recipient),
            data=payload_bytes,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Idempotency-Key": key,
                "User-Agent": f"kamrules/{__version__}",
            },
        )
        from kamrules.lifecycle.notifiers import time_left

        left = time_left()  # never wait past the run's deadline
        timeout = (
            settings.email.webhook_timeout if left is None else max(min(settings.email.webhook_timeout, left), 0.001)
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            if 400 <= e.code < 500 and e.code not in TRANSIENT_4XX:
                raise WebhookRefused(_answer(e)) from None
            raise WebhookError(_answer(e)) from None  # 5xx, 408, 425, 429: retried with backoff
