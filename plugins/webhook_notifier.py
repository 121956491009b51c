"""Built-in plugin: the webhook notifier (JSON POST per run; retries through the outbox)."""

from kamrules import hookimpl
from kamrules.lifecycle.webhook import WebhookNotifier


@hookimpl
def register_notifiers():
    return [WebhookNotifier()]
