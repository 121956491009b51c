"""The notifier protocol (plugins via register_notifiers) and the items it is given."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kamrules.alerts import Alert
from kamrules.errors import EXIT_INCOMPLETE, InputError, KamrulesError


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
      (the message stays queued and is retried with backoff). Never log secrets. Bound your
      own waits by :func:`time_left` (seconds left of the run, or None); a send still running
      when the run's deadline passes is abandoned and counted as failed.
    - optional ``unrouted_reason(item, settings)`` -> ``str``: why ``route`` left ``item``
      unrouted, in a few words (shown in the run's summary). Without it the summary says
      "NAME named no recipient".
    - optional ``check_settings(settings)``: raise :class:`kamrules.errors.InputError` when the
      notifier cannot work as configured (no URL, a bad sender address). Called for every
      notifier named by ``--notify`` before the check runs: a refusal records nothing.
    """

    name: str

    def route(
        self, items: Sequence[DueItem], settings
    ) -> tuple[Mapping[str, Sequence[DueItem]], Sequence[DueItem]]: ...

    def render(self, recipient: str, items: Sequence[DueItem], key: str, as_of: str, settings) -> Rendered: ...

    def send(self, recipient: str, payload: bytes, settings) -> None: ...


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("kamrules_notify_deadline", default=None)


def time_left() -> float | None:
    """Seconds left before the current notify run's deadline (None outside a run)."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


def unrouted_reason(notifier, item: DueItem, settings) -> str:
    """The notifier's own words for why ``item`` has no recipient."""
    why = getattr(notifier, "unrouted_reason", None)
    if callable(why):
        try:
            text = str(why(item, settings) or "").strip()
        except Exception as e:  # a plugin's bug must not hide the unrouted alert
            text = f"{getattr(notifier, 'name', '?')}.unrouted_reason failed: {type(e).__name__}"
        if text:
            return " ".join(text.split())[:200]
    return f"{getattr(notifier, 'name', '?')} named no recipient"


def send_within(notifier, recipient: str, payload: bytes, settings, deadline: float) -> None:
    """``notifier.send`` with :func:`time_left` set; raises TimeoutError if it outlasts ``deadline``.

    The send runs in a daemon thread so a send that hangs (a plugin waiting on a socket
    without a timeout) cannot hold the run: it is abandoned and the process can still exit.
    If it delivers after all, the next run resends it with the same key (at-least-once).
    """
    outcome: list = []

    def run():
        _DEADLINE.set(deadline)
        try:
            notifier.send(recipient, payload, settings)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            outcome.append(e)

    t = threading.Thread(
        target=contextvars.copy_context().run, args=(run,), name=f"kamrules-send-{notifier.name}", daemon=True
    )
    t.start()
    t.join(max(deadline - time.monotonic(), 0.0))
    if not outcome:
        raise TimeoutError(
            f"send did not finish before the notify run's deadline (notify_deadline {settings.email.notify_deadline:g} s)"
        )
    err = outcome[0]
    if isinstance(err, Exception):
        raise err
    if err is not None:  # SystemExit, KeyboardInterrupt from a plugin's send: a failure, not an exit
        raise RuntimeError(f"send raised {type(err).__name__}({err})")


def get_notifiers(pm, failures: list | None = None) -> dict[str, Notifier]:
    """All notifiers the plugins contribute, by name (a name given twice is an error). A plugin whose hook
    fails is named in ``failures`` (None: PluginFailed, exit 3)."""
    from kamrules.errors import PluginError
    from kamrules.plugins import call_hook

    out: dict[str, Notifier] = {}
    for _, batch in call_hook(pm, "register_notifiers", failures):
        for n in batch:
            if not isinstance(n, Notifier):
                raise PluginError(
                    f"register_notifiers returned {n!r}: not a notifier (needs name, route, render, send)"
                )
            if n.name in out:
                raise PluginError(f"two plugins register a notifier named {n.name!r}")
            out[n.name] = n
    return out


class NotifierBroken(KamrulesError):
    """A notifier plugin's ``check_settings`` raised something other than a KamrulesError (exit 3)."""

    exit_code = EXIT_INCOMPLETE


def configured_notifiers(pm, names: Sequence[str], settings) -> dict[str, Notifier]:
    """:func:`select_notifiers`, then each one's ``check_settings``: all known and configured, or an error."""
    notifiers = select_notifiers(pm, names)
    problems = []
    for name, notifier in notifiers.items():
        check = getattr(notifier, "check_settings", None)
        if not callable(check):
            continue
        try:
            check(settings)
        except KamrulesError as e:
            problems.append(f"--notify {name}: {e}")
        except Exception as e:  # a plugin's bug: named, and still nothing is recorded
            raise NotifierBroken(f"notifier {name}: check_settings failed: {type(e).__name__}: {e}") from e
    if problems:
        raise InputError("; ".join(problems) + " (nothing was recorded or sent)")
    return notifiers


def select_notifiers(pm, names: Sequence[str]) -> dict[str, Notifier]:
    from kamrules.plugins import PluginFailed

    failures: list = []
    available = get_notifiers(pm, failures)
    unknown = [n for n in names if n not in available]
    if unknown and failures:  # the notifier asked for may be the failed plugin's
        raise PluginFailed(
            f"unknown notifier {', '.join(unknown)}: " + "; ".join(f"{w} failed: {m}" for w, m in failures)
        )
    if unknown:
        raise InputError(f"unknown notifier {', '.join(unknown)} (available: {', '.join(sorted(available)) or 'none'})")
    return {n: available[n] for n in names}
