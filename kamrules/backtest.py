"""backtest(): the rule sets evaluated at every date of a range, on a store opened read-only (issue 16).

Each date gives exactly the alerts of ``run_check(store, as_of=date, ...)`` (``kamrules check --as-of``
that date); nothing is recorded: the store is opened with SQLite's ``mode=ro``, so the history, the
outbox and the runs cannot change. Per date come the alerts new and resolved against the previous
date, the grade distribution of the health scores (kamrules.health) and, with ``compare``, what a
tuned copy of the rule sets would have fired instead (per rule: alerts added, removed, changed).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kamrules.alerts import SEVERITIES, Alert
from kamrules.errors import InputError

MAX_DATES = 1000  # a range of more dates is almost surely a typo (--every 1d over years)
_EVERY = re.compile(r"^(?:(week|month)|([1-9][0-9]{0,3})d)$")


def parse_every(every: str) -> tuple[str, int]:
    """``week`` -> ("days", 7); ``month`` -> ("months", 1); ``Nd`` -> ("days", N)."""
    m = _EVERY.match(str(every).strip())
    if not m:
        raise InputError(f"--every {every!r}: expected week, month or a number of days like 14d")
    if m.group(1) == "week":
        return "days", 7
    if m.group(1) == "month":
        return "months", 1
    return "days", int(m.group(2))


def _add_months(day: dt.date, n: int, anchor: int) -> dt.date:
    y, m = divmod(day.month - 1 + n, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(anchor, calendar.monthrange(year, month)[1]))


def date_range(start: str, end: str, every: str) -> list[str]:
    """The dates from ``start`` to ``end`` (both ISO dates, inclusive) every ``every``, oldest first.
    ``month`` keeps the start's day of month (the 31st becomes the month's last day); a start on the
    last day of its month stays on month ends (09-30, 10-31, 11-30)."""
    try:
        a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad date: {e} (expected YYYY-MM-DD)") from e
    if a > b:
        raise InputError(f"--from {start} is after --to {end} (expected from <= to)")
    unit, n = parse_every(every)
    anchor = 31 if a.day == calendar.monthrange(a.year, a.month)[1] else a.day
    out, day, i = [], a, 0
    while day <= b:
        out.append(day.isoformat())
        if len(out) > MAX_DATES:
            raise InputError(
                f"{start} to {end} every {every} is more than {MAX_DATES} dates (expected a longer --every or a shorter range)"
            )
        i += 1
        day = a + dt.timedelta(days=n * i) if unit == "days" else _add_months(a, i, anchor)
    if not out:  # not reachable with from <= to (the start is a date), kept for the library's callers
        raise InputError(f"{start} to {end} every {every} has no dates")
    return out


def open_read_only(path, pm=None):
    """A Store on ``path`` through a read-only SQLite connection (``mode=ro``): nothing can be written
    (TEMP tables, which the fact providers use, live apart). The store must exist and be migrated."""
    from kamrules.migrations import latest_version
    from kamrules.store import Store, _check_sqlite_file

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no store here (create one with `kamrules init --db {p}` or pass --db PATH)")
    _check_sqlite_file(p)
    if pm is None:
        from kamrules.plugins import default_plugin_manager

        pm = default_plugin_manager()
    uri = "file:" + str(p.resolve()).replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        raise InputError(f"{p}: cannot open the store read-only: {e}") from e
    if version < latest_version():
        conn.close()
        raise InputError(
            f"{p}: the store is at schema version {version}, this kamrules needs {latest_version()} "
            f"(a backtest writes nothing: run `kamrules init --db {p}` once to migrate it)"
        )
    # the store's path, not the URI: a check's workers open their own (read) connections by path and
    # only ever create TEMP views and tables
    return Store(str(p), conn, pm)


@dataclass
class RuleDiff:
    """What the tuned rule sets fire differently for one rule at one date."""

    code: str
    ruleset: str
    rule: str
    added: list[Alert] = field(default_factory=list)  # fired only with the tuned rules
    removed: list[Alert] = field(default_factory=list)  # fired only with the current rules
    changed: list[tuple[Alert, Alert]] = field(default_factory=list)  # (current, tuned): same alert, other severity

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "ruleset": self.ruleset,
            "rule": self.rule,
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "added_fingerprints": [a.fingerprint for a in self.added],
            "removed_fingerprints": [a.fingerprint for a in self.removed],
            "changed_fingerprints": [a.fingerprint for a, _ in self.changed],
        }


@dataclass
class DateResult:
    """One date of a backtest."""

    index: int  # 1-based
    count: int  # dates in all
    as_of: str
    result: Any  # the CheckResult of that date
    new: list[Alert] | None  # not firing at the previous date (None: the first date)
    resolved: list[Alert] | None  # firing at the previous date, not at this one
    grades: dict[str, int]  # grade -> accounts (every account of the store)
    tuned: Any = None  # the CheckResult of the tuned rule sets (with compare)
    diffs: list[RuleDiff] | None = None  # per rule that differs (with compare)

    @property
    def alerts(self) -> list[Alert]:
        return self.result.alerts

    @property
    def complete(self) -> bool:
        return self.result.summary.complete and (self.tuned is None or self.tuned.summary.complete)

    def by_ruleset(self, alerts: Iterable[Alert] | None = None) -> dict[str, dict[str, int]]:
        """{rule set: {severity: alerts}} (every chosen rule set, zeros included)."""
        out = {rs: {s: 0 for s in SEVERITIES} for rs in self.result.summary.rulesets}
        for a in self.alerts if alerts is None else alerts:
            out.setdefault(a.ruleset, {s: 0 for s in SEVERITIES})[a.severity] += 1
        return out

    def to_dict(self, alerts: bool = True) -> dict[str, Any]:
        d = {
            "as_of": self.as_of,
            "summary": self.result.summary.to_dict(),
            "by_ruleset": self.by_ruleset(),
            "new": None if self.new is None else len(self.new),
            "resolved": None if self.resolved is None else len(self.resolved),
            "new_by_ruleset": None if self.new is None else dict(Counter(a.ruleset for a in self.new)),
            "resolved_by_ruleset": None if self.resolved is None else dict(Counter(a.ruleset for a in self.resolved)),
            "health": self.grades,
        }
        if self.diffs is not None:
            d["compare"] = {"summary": self.tuned.summary.to_dict(), "rules": [x.to_dict() for x in self.diffs]}
        if alerts:
            d["alerts"] = [a.to_dict() for a in self.alerts]
        return d


def diff(current: Sequence[Alert], tuned: Sequence[Alert]) -> list[RuleDiff]:
    """Per rule code (sorted), the alerts only one side fired and those whose severity differs."""
    cur = {a.fingerprint: a for a in current}
    new = {a.fingerprint: a for a in tuned}
    out: dict[str, RuleDiff] = {}

    def of(a: Alert) -> RuleDiff:
        return out.setdefault(a.code, RuleDiff(a.code, a.ruleset, a.rule))

    for fp, a in new.items():
        if fp not in cur:
            of(a).added.append(a)
        elif cur[fp].severity != a.severity:
            of(a).changed.append((cur[fp], a))
    for fp, a in cur.items():
        if fp not in new:
            of(a).removed.append(a)
    return [out[c] for c in sorted(out)]


def _grades(alerts: Sequence[Alert], accounts: dict[str, tuple[Any, Any]], sets, summary, scorecard) -> dict[str, int]:
    """Accounts per grade (kamrules.health): an account without alerts scores 100."""
    from kamrules.health import ran_from, score_account

    ran = ran_from(sets, summary.skipped, summary.rulesets)
    by_account: dict[str, list] = {}
    for a in alerts:
        if a.account_id:
            by_account.setdefault(a.account_id, []).append(a)
    counts = {g.grade: 0 for g in scorecard.grades}
    counts[scorecard.grade_of(100).grade] += len(accounts) - sum(1 for a in by_account if a in accounts)
    for acc, hits in by_account.items():
        if acc in accounts:
            counts[score_account(acc, hits, scorecard, *accounts[acc], ran=ran).grade] += 1
    return counts


def backtest(
    store,
    dates: Sequence[str],
    rulesets_dirs: Iterable = (),
    rulesets: Iterable[str] = (),
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    min_severity: str = "info",
    pm=None,
    jobs: int | None = None,
    compare: Iterable | None = None,
    scorecard=None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Iterator[DateResult]:
    """Yield a :class:`DateResult` per date of ``dates`` (in that order), each from ``run_check`` with the
    same options as ``kamrules check``. ``compare``: rule-set folders (or files) of a tuned copy, laid
    over ``rulesets_dirs`` (a file with a rule set's name replaces it), checked at the same dates.
    ``progress(i, n, date)`` is called before each date. Open the store with :func:`open_read_only` to be
    sure nothing is written (run_check itself writes nothing to the store's tables).

    Raises InputError (before the first date is evaluated) for no dates, a bad date, bad rule files."""
    from kamrules.check import CheckRequest, load_rulesets
    from kamrules.health import default_scorecard

    dates = list(dates)
    if not dates:
        raise InputError("a backtest needs at least one date")
    for d in dates:
        try:
            dt.date.fromisoformat(d)
        except (TypeError, ValueError):
            raise InputError(f"{d!r} is not a date (expected YYYY-MM-DD)") from None
    pm = pm or getattr(store, "pm", None)
    if pm is None:
        from kamrules.plugins import default_plugin_manager

        pm = default_plugin_manager()
    sc = scorecard or default_scorecard()
    rulesets_dirs, rulesets = tuple(rulesets_dirs), tuple(rulesets)
    tuned_dirs = None if compare is None else rulesets_dirs + tuple(compare)
    if tuned_dirs is not None and not tuple(compare):
        raise InputError("--compare needs a folder of tuned rule files")
    # bad rule files (either side) are exit 2 before any date is evaluated
    if not store.table_exists("accounts") or not store.has_rows("accounts"):
        raise InputError(
            f"{getattr(store, 'path', 'store')}: no accounts (run `kamrules init` and `kamrules import` first)"
        )
    sets = load_rulesets(store, pm, rulesets_dirs)
    if tuned_dirs is not None:
        load_rulesets(store, pm, tuned_dirs)
    accounts = {r[0]: (r[1], r[2]) for r in store.conn.execute("SELECT id, tier, segment FROM accounts")}
    opts: dict[str, Any] = dict(
        rulesets=rulesets, select=tuple(select), ignore=tuple(ignore), min_severity=min_severity, jobs=jobs
    )
    from kamrules.backtest_run import run_dates
    from kamrules.check import on_disk
    from kamrules.partition import BUSY_WAIT, one_snapshot

    request = CheckRequest(dates[0], rulesets_dirs=rulesets_dirs, **opts)
    with one_snapshot(store.path, BUSY_WAIT) if on_disk(store) else nullcontext():  # one state for every date
        current = run_dates(store, dates, request, pm, snapshot=False)
        tuned_runs = (
            None
            if tuned_dirs is None
            else run_dates(store, dates, dataclasses.replace(request, rulesets_dirs=tuned_dirs), pm, snapshot=False)
        )
        yield from _each(dates, current, tuned_runs, accounts, sets, sc, progress)


def _each(dates, current, tuned_runs, accounts, sets, sc, progress) -> Iterator[DateResult]:
    previous: dict[str, Alert] | None = None
    for i, as_of in enumerate(dates, 1):
        if progress:
            progress(i, len(dates), as_of)
        result = next(current)
        now = {a.fingerprint: a for a in result.alerts}
        new = resolved = None
        if previous is not None:
            new = [a for fp, a in now.items() if fp not in previous]
            resolved = [a for fp, a in previous.items() if fp not in now]
        tuned = diffs = None
        if tuned_runs is not None:
            tuned = next(tuned_runs)
            diffs = diff(result.alerts, tuned.alerts)
        yield DateResult(
            i,
            len(dates),
            as_of,
            result,
            new,
            resolved,
            _grades(result.alerts, accounts, sets, result.summary, sc),
            tuned,
            diffs,
        )
        previous = now


__all__ = ["backtest", "date_range", "parse_every", "open_read_only", "diff", "DateResult", "RuleDiff", "MAX_DATES"]
