"""record_and_notify: the one call a check makes to record history and notify (issue 4 contract)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from kamrules.alerts import SEVERITY_RANK
from kamrules.errors import KamrulesError, StoreBusy
from kamrules.lifecycle import history, outbox, silences
from kamrules.lifecycle.digest import digest_warnings
from kamrules.lifecycle.notifiers import DueItem, configured_notifiers, select_notifiers, unrouted_reason
from kamrules.lifecycle.schema import connection_of, ensure_schema, parse_ts, rows, transaction, utcnow


@dataclass
class NotifyReport:
    """What record_and_notify did. ``undelivered`` > 0 means the check exits 4."""

    sent: int = 0
    queued: int = 0
    failed: int = 0
    silenced: int = 0
    undelivered: int = 0
    unrouted: list[str] = field(default_factory=list)
    new: int = 0
    resolved: int = 0
    errors: list[str] = field(default_factory=list)
    notifiers: tuple[str, ...] = ()
    in_flight: int = 0  # messages another running process is sending now: not undelivered
    rejected: int = 0  # refused for good in this run (outbox status 'rejected'): undelivered, never retried
    unrouted_why: dict[str, list[str]] = field(default_factory=dict)  # reason (the notifiers' words) -> labels
    behind: str | None = None  # a back-dated check: the newest recorded check's as-of date; nothing recorded or sent
    as_of: str | None = None

    def summary_line(self) -> str:
        if self.behind:
            return (
                f"history: not recorded: as of {self.as_of} is before the newest recorded check (as of {self.behind}); "
                "a back-dated check changes neither the alert history nor the outbox"
                + (f", so nothing was queued or sent ({', '.join(self.notifiers)})" if self.notifiers else "")
            )
        parts = [f"{self.new} new", f"{self.resolved} resolved", f"{self.silenced} silenced"]
        if self.notifiers:
            parts += [f"{self.queued} queued", f"{self.sent} sent", f"{self.failed} failed"]
            parts += [f"{self.rejected} rejected"] if self.rejected else []
            parts += [f"{self.undelivered} undelivered"]
        line = f"alerts: {', '.join(parts)}"
        if self.notifiers:
            line = f"notify ({', '.join(self.notifiers)}): " + line.split(": ", 1)[1]
        if self.errors:
            line += f"; {self.errors[0]}" + (
                f" (and {len(self.errors) - 1} more errors)" if len(self.errors) > 1 else ""
            )
        if self.in_flight:
            line += f"; {self.in_flight_line()}"
        reasons = self.unrouted_why or ({"no recipient": self.unrouted} if self.unrouted else {})
        for why, labels in reasons.items():
            shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
            line += f"; unrouted ({why}): {shown}"
        return line

    def in_flight_line(self) -> str:
        return f"{self.in_flight} messages are being sent by another process"

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def scope_of(result) -> history.Scope:
    """The check's scope, from its summary (kamrules.check.Summary).

    ``summary.codes`` (the rule codes that ran: selected, not skipped) with no
    severity filter: an alert of one of those rules that no longer fires is
    resolved. With ``--min-severity`` above info, only a check with the same rule
    sets, filters and minimum severity resolves. An incomplete run (failures)
    resolves nothing: a failed batch must not look like healthy accounts.
    """
    s = getattr(result, "summary", None)
    get = lambda name, default=(): getattr(s, name, default) if s is not None else default  # noqa: E731
    min_sev = get("min_severity", "info") or "info"
    scope = history.Scope.of(
        rulesets=sorted(get("rulesets") or ()),
        select=sorted(get("select") or ()),
        ignore=sorted(get("ignore") or ()),
        codes=sorted(get("codes") or ()),
        min_severity=min_sev,
    )
    if get("failures"):
        return history.Scope(key=scope.key, codes=frozenset())
    codes = get("codes", None)
    if codes is None:
        codes = get("evaluated", None)
    if codes is not None and min_sev == "info":
        skipped = {str(c) for c, _ in (get("skipped") or ())}
        return history.Scope(key=scope.key, codes=frozenset(c for c in codes if c not in skipped))
    return scope


def _label(item: DueItem) -> str:
    a = item.alert
    return (
        f"{a.account_name} ({a.account_id})"
        if a.account_id
        else f"portfolio {a.code}" + (f" {a.scope_key}" if a.scope_key else "")
    )


def due_items(conn, notifier: str, settings, now: dt.datetime, route=None) -> list[DueItem]:
    """Alert states this notifier has not told yet (or whose renotify interval has passed).

    With ``route`` (the notifier's), an unchanged alert whose recipient changed
    (the account got a new owner) is due as ``new`` for the new recipient.
    """
    states = outbox.notify_states(conn, notifier)
    pending = outbox.pending_fingerprints(conn, notifier)
    rejected = outbox.rejected_fingerprints(conn, notifier)
    out, quiet = [], []
    sql = "SELECT * FROM alert_history WHERE silenced = 0" + (
        "" if settings.email.resolved_notices else " AND status = 'firing'"
    )
    for h in rows(conn, sql + " ORDER BY fingerprint"):
        fp = h["fingerprint"]
        st = states.get(fp)
        alert = history.alert_from_json(h["alert_json"])
        mk = lambda reason, prev=None, a=alert, h=h: DueItem(a, reason, h["episode"], h["first_seen"], prev)  # noqa: E731
        # a state different from the one last queued is due even while that message is pending
        # (the new message supersedes an unsent one it fully covers)
        if h["status"] == "resolved":
            if settings.email.resolved_notices and st and st["status"] == "firing" and st["episode"] == h["episode"]:
                out.append(mk("resolved"))
            continue
        if st is None or st["episode"] != h["episode"] or st["status"] != "firing":
            out.append(mk("new"))
        elif st["severity"] != h["severity"]:
            out.append(mk("changed", st["severity"]))
        elif fp in pending:
            continue  # this very state is already queued
        elif fp in rejected:
            quiet.append(mk("new"))  # refused for good: not again, unless its recipient changes (below)
        elif st["last_notified"] is None:
            out.append(mk("new"))
        else:
            interval = settings.email.renotify.interval(h["severity"])
            if interval is not None and (now - parse_ts(st["last_notified"])).total_seconds() >= interval:
                out.append(mk("reminder"))
            else:
                quiet.append(mk("new"))
    if route is not None and quiet:
        last = outbox.last_recipients(conn, notifier)
        groups, _ = route(quiet, settings)
        out += [it for to, group in groups.items() for it in group if last.get(it.alert.fingerprint, to) != to]
    return sorted(out, key=lambda i: (-SEVERITY_RANK[i.alert.severity], i.alert.sort_key()))


def known_as_of(result, alerts) -> str | None:
    """The date ``result`` was checked as of (its summary's, its own, or its alerts'), None if it does not say."""
    s = getattr(result, "summary", None)
    value = getattr(s, "as_of", None) or getattr(result, "as_of", None)
    if value:
        return str(value)
    return max((a.as_of for a in alerts if a.as_of), default=None)


def as_of_of(result, alerts) -> str:
    return known_as_of(result, alerts) or utcnow().date().isoformat()


def record_and_notify(
    store, result, notify: Sequence[str] = ("email",), settings=None, pm=None, now: dt.datetime | None = None
) -> NotifyReport:
    """Record every alert of ``result`` in the history, then queue and send what is due.

    ``notify=()`` only records. Silenced alerts are recorded and counted, never
    sent. Each message is committed to the outbox before any send; failures stay
    queued (``report.undelivered``) and are retried by later runs or ``kamrules notify``.
    """
    if settings is None:
        from kamrules.config import load_settings

        settings = load_settings()
    if pm is None and notify:
        from kamrules.plugins import default_plugin_manager

        pm = default_plugin_manager()
    now = now or utcnow()
    conn = connection_of(store)
    # every notifier is known and configured before anything is recorded: a usage error changes nothing
    notifiers = configured_notifiers(pm, list(notify), settings) if notify else {}
    ensure_schema(conn)
    alerts = list(result.alerts)
    silenced = silences.silenced_by(alerts, silences.list_silences(conn, now))
    from kamrules import runs  # each recorded check is a run; its events point at it

    run_id = None
    try:
        runs.ensure_schema(conn)
        code_ruleset = runs.code_rulesets(result, pm, settings)
        with transaction(conn):  # the history and its run commit together: a crash leaves neither
            first_event = runs.last_event_id(conn)
            recorded = history.record(
                conn, alerts, scope_of(result), now, silenced=silenced, as_of=known_as_of(result, alerts)
            )
            if not recorded.behind:
                run_id = runs.record_run(conn, result, now, first_event, code_ruleset)
    except sqlite3.OperationalError as e:
        from kamrules.partition import is_busy

        if not is_busy(e):
            raise
        raise StoreBusy(
            f"{getattr(store, 'path', 'the store')}: the store is busy: another kamrules process is writing; "
            "try again (the alerts were reported but not recorded in the history, nothing was sent)"
        ) from None
    as_of = as_of_of(result, alerts)
    if recorded.behind:  # back-dated: the history and the outbox stay as they are
        return NotifyReport(notifiers=tuple(notifiers), behind=recorded.behind, as_of=as_of)
    report = NotifyReport(
        silenced=len(silenced), new=len(recorded.new), resolved=len(recorded.resolved), notifiers=tuple(notifiers)
    )
    unrouted: dict[str, str] = {}
    why: dict[str, list[str]] = {}  # fingerprint -> "name: reason" of each notifier that left it unrouted
    routed: set[str] = set()
    broken = 0
    for name, notifier in notifiers.items():
        try:
            items = due_items(conn, name, settings, now, route=notifier.route)
            stale: list[str] = getattr(
                getattr(result, "summary", None), "warnings", lambda: []
            )()  # stale data: in the digests' header
            with runs.scores_for_digests(conn, run_id), digest_warnings(stale):  # and each account's score and trend
                queued, missing, went = outbox.queue(conn, notifier, items, settings, as_of, now)
        except KamrulesError:
            raise  # bad settings or templates: exit 2
        except Exception as e:  # a notifier plugin's bug: nothing of it was queued; its alerts stay due
            broken += 1
            report.errors.append(f"notifier {name}: could not route or render: {type(e).__name__}: {e}")
            continue
        report.queued += queued
        routed |= went
        if name == "email" and settings.email.managers:  # manager roll-ups (issue 17), same outbox
            from kamrules.lifecycle.managers import queue_rollups

            report.queued += queue_rollups(conn, settings, items, as_of, now, run_id)
        for it in missing:
            unrouted[it.alert.fingerprint] = _label(it)
            reason = unrouted_reason(notifier, it, settings)
            why.setdefault(it.alert.fingerprint, []).append(reason if len(notifiers) == 1 else f"{name}: {reason}")
    # an alert is unrouted only if none of the selected notifiers could take it
    report.unrouted = sorted(dict.fromkeys(label for fp, label in unrouted.items() if fp not in routed))
    for fp, label in sorted(unrouted.items(), key=lambda x: x[1]):
        if fp not in routed:
            labels = report.unrouted_why.setdefault("; ".join(dict.fromkeys(why[fp])), [])
            if label not in labels:
                labels.append(label)
    if notifiers:
        done = outbox.deliver(conn, notifiers, settings, now)
        report.sent, report.failed, report.rejected = done.sent, done.failed + broken, done.rejected
        report.errors += done.errors
        left, report.in_flight = outbox.undelivered(conn, list(notifiers), now)
        # nothing at all could be routed (no owner_email anywhere and no default_to, a notifier
        # without its URL): the alerts reach nobody, which is not "nothing to do"
        lost = {fp for fp in unrouted if fp not in routed}
        firing = rows(conn, "SELECT COUNT(*) AS n FROM alert_history WHERE status = 'firing' AND silenced = 0")[0]["n"]
        nobody = len(lost) if lost and not routed and len(lost) >= firing else 0
        report.undelivered = left + broken + nobody + done.rejected
    return report


def send_due(
    store,
    notify: Sequence[str],
    settings,
    pm,
    now: dt.datetime | None = None,
    ignore_backoff: bool = False,
    progress=None,
) -> NotifyReport:
    """``kamrules notify``: send what is due in the outbox (no new check)."""
    now = now or utcnow()
    conn = connection_of(store)
    ensure_schema(conn)
    notifiers = select_notifiers(pm, list(notify))
    report = NotifyReport(notifiers=tuple(notifiers))
    done = outbox.deliver(conn, notifiers, settings, now, ignore_backoff=ignore_backoff, progress=progress)
    report.sent, report.failed, report.rejected, report.errors = done.sent, done.failed, done.rejected, done.errors
    report.undelivered, report.in_flight = outbox.undelivered(conn, list(notifiers), now)
    report.undelivered += done.rejected  # refused in this run: not delivered (later runs leave them alone)
    return report
