"""Built-in plugin: the email notifier (one digest per recipient per run, via SMTP)."""

from __future__ import annotations

from kamrules import hookimpl
from kamrules.lifecycle import digest, smtp


class EmailNotifier:
    """Routes by owner_email (else settings.email.default_to), renders Jinja2 digests, sends with smtplib."""

    name = "email"

    def route(self, items, settings):
        return digest.route(items, settings)

    def render(self, recipient, items, key, as_of, settings):
        return digest.render_digest(recipient, items, key, as_of, settings)

    def send(self, recipient, payload, settings):
        smtp.send_bytes(settings, [recipient], payload)


@hookimpl
def register_notifiers():
    return [EmailNotifier()]
