"""Built-in plugin: the email notifier (one digest per recipient per run, via SMTP)."""

from __future__ import annotations

from kamrules import hookimpl

# kamrules.lifecycle.digest (Jinja2) and .smtp (ssl) are imported when a digest is routed or sent,
# not when the plugin loads: every command loads the plugins, few send mail.


class EmailNotifier:
    """Routes by owner_email (else settings.email.default_to), renders Jinja2 digests, sends with smtplib."""

    name = "email"

    def route(self, items, settings):
        from kamrules.lifecycle import digest

        return digest.route(items, settings)

    def render(self, recipient, items, key, as_of, settings):
        from kamrules.lifecycle import digest

        return digest.render_digest(recipient, items, key, as_of, settings)

    def check_settings(self, settings):
        """Refuse up front (before the check records anything) a From or default_to that is not an address."""
        from kamrules.errors import InputError
        from kamrules.lifecycle import digest

        digest.sender_address(settings.email.smtp_from)
        if settings.email.managers:
            from kamrules.lifecycle.managers import check_managers

            check_managers(settings)
        to = settings.email.default_to
        if to and digest.valid_address(to) is None:
            raise InputError(f"default_to {to!r}: not a valid address (expected e.g. 'ka-team@example.com')")

    def unrouted_reason(self, item, settings):
        """Why ``route`` found no address for ``item`` (shown in the run's summary)."""
        return (
            "owner_email not a valid address" if (item.alert.owner_email or "").strip() else "no owner_email"
        ) + ", no default_to"

    def send(self, recipient, payload, settings):
        from kamrules.lifecycle import smtp

        smtp.send_bytes(settings, [recipient], payload)


@hookimpl
def register_notifiers():
    return [EmailNotifier()]
