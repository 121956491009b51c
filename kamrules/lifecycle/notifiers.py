"""The notifier protocol (plugins via register_notifiers) and the items it is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

from kamrules.alerts import Alert
from kamrules.errors import InputError


@dataclass(frozen=True)
class DueItem:
    """One alert state that is due to be told: why, and since when.

    ``reason``: ``new`` (first time, or firing again after resolving), ``changed``
    (severity went up or down; ``previous_severity`` says from what),
    ``reminder`` (unchanged, its renotify interval has passed), ``resolved``.
    """

    alert: Alert
    reason: str
    episode: int
    first_seen: str
    previous_severity: str | None = None

    @property
    def status(self) -> str:
        return "resolved" if self.reason == "resolved" else "firing"


@dataclass(frozen=True)
class Rendered:
    """A message ready for the outbox: ``payload`` is exactly what ``send`` transmits."""

    subject: str
    payload: bytes


@runtime_checkable
class Notifier(Protocol):
    """A way alerts reach people. Contributed by plugins through ``register_notifiers``.

    - ``name``: selects it (``kamrules check --notify NAME``); stable, it keys the outbox.
    - ``route(items, settings)`` -> ``(groups, unrouted)``: ``groups`` maps a recipient
      (an address, a URL, ...) to its items, one message per recipient and run;
      ``unrouted`` lists the items nobody can receive.
    - ``render(recipient, items, key, as_of, settings)`` -> :class:`Rendered`. ``key`` is the
      outbox idempotency key: put it in the message (Message-ID, a header) so a receiver
      can drop a duplicate. Rendering happens once, before anything is sent.
    - ``send(recipient, payload, settings)``: deliver, or raise any exception on failure
      (the message stays queued and is retried with backoff). Never log secrets.
    """

    name: str

    def route(self, items: Sequence[DueItem], settings) -> tuple[Mapping[str, Sequence[DueItem]], Sequence[DueItem]]: ...

    def render(self, recipient: str, items: Sequence[DueItem], key: str, as_of: str, settings) -> Rendered: ...

    def send(self, recipient: str, payload: bytes, settings) -> None: ...


def get_notifiers(pm, failures: list | None = None) -> dict[str, Notifier]:
    """All notifiers the plugins contribute, by name (a name given twice is an error). A plugin whose hook
    fails is named in ``failures`` (None: PluginFailed, exit 3)."""
    from kamrules.errors import PluginError
    from kamrules.plugins import call_hook

    out: dict[str, Notifier] = {}
    for _, batch in call_hook(pm, "register_notifiers", failures):
        for n in batch:
            if not isinstance(n, Notifier):
                raise PluginError(f"register_notifiers returned {n!r}: not a notifier (needs name, route, render, send)")
            if n.name in out:
                raise PluginError(f"two plugins register a notifier named {n.name!r}")
            out[n.name] = n
    return out


def select_notifiers(pm, names: Sequence[str]) -> dict[str, Notifier]:
    from kamrules.plugins import PluginFailed

    failures: list = []
    available = get_notifiers(pm, failures)
    unknown = [n for n in names if n not in available]
    if unknown and failures:  # the notifier asked for may be the failed plugin's
        raise PluginFailed(f"unknown notifier {', '.join(unknown)}: " + "; ".join(f"{w} failed: {m}" for w, m in failures))
    if unknown:
        raise InputError(f"unknown notifier {', '.join(unknown)} (available: {', '.join(sorted(available)) or 'none'})")
    return {n: available[n] for n in names}
