"""Alert lifecycle: history, silences, a durable outbox and notifiers (email, webhook)."""

from kamrules.lifecycle.notifiers import DueItem, Notifier, Rendered, get_notifiers  # noqa: F401
from kamrules.lifecycle.run import NotifyReport, record_and_notify, send_due  # noqa: F401
