"""Fact providers: SQL that derives named per-account or portfolio facts for an as-of date."""

from __future__ import annotations

import copy
import dataclasses
import math
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

    from kamrules.ruleset import Rule
    from kamrules.store import Store

Facts = dict[str, Any]  # one fact set: fact name -> value
Failures = list[tuple[str, str]]  # (where, message) of each provider or plugin that failed
Totals = dict[str, dict[str, list[Any]]]  # provider -> {fact: its non-NULL values} (account_totals)

DEFAULT_PLUGIN_TIMEOUT = 600.0  # seconds; setting [check] plugin_timeout


class PluginTimeout(BaseException):
    """Raised inside a provider's ``derive`` that ran past the timeout. A BaseException, so that the
    plugin's own ``except Exception`` does not swallow it."""


@dataclass(frozen=True)
class FactProvider:
    """One SQL query computing named facts.

    ``sql`` is a SELECT run with the named parameter ``:as_of`` (ISO date text;
    records dated after it must be ignored). For ``scope="account"`` it returns
    one row per account with an ``account_id`` column plus one column per name in
    ``facts``; accounts it returns no row for get no value for those facts.
    For ``scope="portfolio"`` it returns rows of portfolio facts; each row
    becomes one portfolio fact set (an optional ``scope_key`` column tells them
    apart, e.g. one row per owner).

    ``requires`` names the tables the facts are derived from: when any of them
    has no rows, rules using these facts are skipped (listed in the summary),
    never fired on missing data.

    ``derive``, if given, is called with the merged facts of one account (or
    portfolio row; a read-only mapping, not a copy) and returns extra facts
    computed in Python.

    ``requires_columns`` maps ``"table.column"`` to the facts that need that column to hold a value in
    some row: when the column is missing or NULL in every row, rules using those facts are skipped (the
    summary says which column), e.g. ``{"activities.cost": ("service_cost_12m",)}``: a book exported
    without activity costs has a service cost of 0 everywhere, which is no evidence of low cost.

    ``inputs`` names further columns of ``sql`` (account scope) that ``derive``
    reads but that are not facts: they are in the dict ``derive`` gets and are
    removed after every provider's ``derive`` has run (e.g. a list of dates that
    Python turns into gaps more cheaply than a window function).

    ``sql`` may be left out (``""``) by a provider that only derives (account
    scope): it has a ``derive`` and ``derived`` facts, and no ``facts`` or ``inputs``.

    ``after`` names the providers whose facts ``derive`` reads: the core orders
    providers so that each runs after those (a cycle or an unknown name is a
    PluginError); otherwise they keep the order the plugins registered them in.

    ``over="account_facts"`` (portfolio scope only): ``sql`` reads the view
    ``account_facts`` (one row per account: its columns, ``id`` included, and
    every SQL fact of the account providers; NULL where a provider had no data)
    instead of rescanning the store, and each of its rows adds to book-wide
    totals: every column named in ``facts`` is summed over all rows (NULLs
    skipped; none at all gives 0). It runs beside the account facts, in each
    worker over its part of the book, and the sums are exact (``math.fsum``),
    so they do not depend on how the book was split. ``derive`` then computes
    ratios from the totals. Use it for totals of facts other providers already
    compute per account (e.g. the share of the book's margin from small accounts).

    ``scope="book"``: facts of the whole book that every account sees (e.g. the
    revenue line of the book's top decile, the date the activities table starts).
    ``sql`` returns at most one row (no row: no values); it runs once per check,
    in the parent process over the whole store, before the accounts are checked
    (forked workers inherit the values: each sees only its part of the book), and
    only when a selected rule uses its facts. ``derive`` is called once on that row.
    Its facts are added to every account's facts before the account ``derive``
    calls (an account provider reading them names it in ``after``).

    ``params`` names further SQL parameters (``:visit_window_months``) with their
    default values (whole numbers): a rule threshold of the same name, in a rule
    the check runs, sets the value (e.g. a look-back window), see
    :func:`provider_params`. A text default (``""``) makes it a list of words
    separated by commas (``"free_service, other"``); ``param_choices`` names the
    words it may hold.

    ``multi_date_sql`` (account scope, optional): a provider that supports multi-date evaluation computes
    its facts for every date of a backtest in one pass. It reads the temp table ``as_of_dates`` (one
    column ``as_of``, the backtest's dates) instead of the ``:as_of`` parameter and returns one row per
    date and account: ``as_of``, ``account_id`` and the same columns as ``sql``, with the same values
    ``sql`` gives at that date (tests/test_backtest_multidate.py checks this for every provider that has
    one). Providers without it, or whose multi-date SQL fails, run ``sql`` once per date.
    """

    name: str
    facts: tuple[str, ...] = ()
    sql: str = ""  # empty: a provider that only derives (needs ``derive``)
    requires: tuple[str, ...] = ()
    scope: str = "account"
    derive: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] | None = None
    derived: tuple[str, ...] = ()  # names of the facts ``derive`` returns
    description: str = ""
    inputs: tuple[str, ...] = ()  # SQL columns only ``derive`` sees (not facts)
    over: str = "store"  # or "account_facts": totals over the account facts (portfolio scope)
    after: tuple[str, ...] = ()  # providers whose facts ``derive`` reads (ordering)
    requires_columns: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, hash=False)
    params: Mapping[str, int | str] = dataclasses.field(
        default_factory=dict, hash=False
    )  # extra SQL parameters and their defaults
    multi_date_sql: str = ""  # the facts at every date of temp table as_of_dates(as_of) in one pass (backtests)
    param_choices: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.scope not in ("account", "portfolio", "book"):
            raise ValueError(f"fact provider {self.name}: scope must be 'account', 'portfolio' or 'book'")
        if self.scope == "book" and (not self.sql.strip() or self.inputs):
            raise ValueError(f"fact provider {self.name}: scope='book' needs sql and takes no inputs")
        if self.over not in ("store", "account_facts"):
            raise ValueError(f"fact provider {self.name}: over must be 'store' or 'account_facts'")
        if self.over == "account_facts" and self.scope != "portfolio":
            raise ValueError(f"fact provider {self.name}: over='account_facts' needs scope='portfolio'")
        if self.multi_date_sql.strip() and (self.scope != "account" or not self.sql.strip()):
            raise ValueError(f"fact provider {self.name}: multi_date_sql needs scope='account' and sql")
        if not self.sql.strip() and (self.derive is None or self.facts or self.inputs or self.scope != "account"):
            raise ValueError(
                f"fact provider {self.name}: without sql it needs derive, scope='account' and no facts or inputs"
            )


def _word_list(v: str) -> str:
    """A text parameter as SQL reads it: its comma-separated words without blanks, e.g. ``"a,b"``."""
    return ",".join(w.strip() for w in v.split(",") if w.strip())


def provider_params(providers: Sequence[FactProvider], rules: Iterable[Rule]) -> dict[str, int | str]:
    """The providers' SQL parameters set by thresholds of ``rules`` of the same name (a window in months or
    days; a text parameter: a list of words). Such a threshold is one value (not per severity, tier or
    `limits:` row), and rules that both set it must agree: else an InputError naming both."""
    from kamrules.errors import InputError, Problem

    names = {k for p in providers for k in p.params}
    texts = {k for p in providers for k, d in p.params.items() if isinstance(d, str)}
    choices = {k: c for p in providers for k, c in p.param_choices.items()}
    out: dict[str, int | str] = {}
    first: dict[str, Rule] = {}
    problems = []
    for rule in rules:
        for name in names & set(rule.thresholds):
            v = rule.thresholds[name]
            per_row = any(name in row.thresholds for row in rule.limits)
            if name in texts:
                words = _word_list(v).split(",") if type(v) is str else []
                if type(v) is not str or per_row or any(w and w not in choices.get(name, (w,)) for w in words):
                    problems.append(
                        Problem(
                            rule.file,
                            rule.line,
                            f"rule {rule.code}: threshold {name} = {v!r} is a list of words separated by commas "
                            f"(expected one text, the same for every tier and severity"
                            + (f", each one of {', '.join(choices[name])}" if name in choices else "")
                            + ")",
                        )
                    )
                    continue
                v = _word_list(v)
            elif type(v) is not int or v <= 0 or per_row:
                problems.append(
                    Problem(
                        rule.file,
                        rule.line,
                        f"rule {rule.code}: threshold {name} sets a look-back window of "
                        f"its facts (expected one whole number > 0, the same for every tier and severity)",
                    )
                )
                continue
            if name in out and out[name] != v:
                o = first[name]
                problems.append(
                    Problem(
                        rule.file,
                        rule.line,
                        f"rule {rule.code}: {name} = {v} but rule {o.code} ({o.file}:{o.line}) "
                        f"sets {out[name]}; both read the same facts (expected the same value)",
                    )
                )
            else:
                out[name], first[name] = v, rule
    if problems:
        raise InputError("rule thresholds that set fact windows disagree", problems)
    return out


# Columns of a portfolio row that address its alert: to an owner, or to one account (a row with
# account_id gives an alert on that account: e.g. the account holding too much of the book).
PORTFOLIO_ADDRESS = ("owner", "owner_email", "account_id", "account_name")


def sum_totals(parts: Sequence[Mapping[str, list[Any]]], facts: Sequence[str]) -> Facts:
    """{fact: sum of its values over all parts}: exact (``math.fsum``) when any value is a float, so
    the sum does not depend on how the book was split; 0 when there are no values."""
    out: Facts = {}
    for f in facts:
        values = [v for part in parts for v in part.get(f, ())]
        if all(type(v) is int for v in values):
            out[f] = sum(values)
        else:
            out[f] = math.fsum(float(v) for v in values)
    return out


# -- composition: all providers, one pass over the accounts --------------------------------------

ACCOUNT_FACT_RENAMES = {"id": "account_id"}
_INPUT = "kaminput_"  # prefix of provider ``inputs`` columns in the composed query


from kamrules.migrations import quote as _q  # noqa: E402


def collect_providers(pm: pluggy.PluginManager, failures: Failures | None = None) -> tuple[FactProvider, ...]:
    """Every plugin's providers (hook ``register_facts``), each plugin called on its own.

    A plugin whose hook raises is recorded in ``failures`` as ``(where, message)``
    (the run goes on without it). A fact name produced twice is a PluginError naming both.
    """
    from kamrules.errors import PluginError
    from kamrules.plugins import call_hook

    providers: list[FactProvider] = []
    owner: dict[str, str] = {}
    for plugin, got in call_hook(pm, "register_facts", failures):
        for p in got:
            if not isinstance(p, FactProvider):
                raise PluginError(f"plugin {plugin}: register_facts returned {p!r} (expected FactProvider objects)")
            for name in tuple(p.facts) + tuple(p.derived):
                if name in owner:
                    raise PluginError(
                        f"fact {name!r} is produced by two providers: {owner[name]} and {p.name} ({plugin})"
                    )
                owner[name] = p.name
            providers.append(p)
    return ordered(providers)


def ordered(providers: Sequence[FactProvider]) -> tuple[FactProvider, ...]:
    """``providers`` with each one after those its ``after`` names (stable: otherwise in the given order).

    A name no provider has, or a cycle, is a PluginError naming the providers."""
    from kamrules.errors import PluginError

    names = {p.name for p in providers}
    for p in providers:
        unknown = [n for n in p.after if n not in names]
        if unknown:
            raise PluginError(
                f"fact provider {p.name}: after={tuple(p.after)!r} names no loaded provider {', '.join(map(repr, unknown))}"
            )
    out: list[FactProvider] = []
    done: set[str] = set()
    todo = list(providers)
    while todo:
        ready = next((p for p in todo if all(n in done for n in p.after)), None)
        if ready is None:
            raise PluginError(
                f"fact providers {', '.join(p.name for p in todo)}: their after= declarations form a cycle"
            )
        todo.remove(ready)
        out.append(ready)
        done.add(ready.name)
    return tuple(out)


def column_gaps(store: Store, providers: Sequence[FactProvider]) -> dict[str, str]:
    """{fact: why it has no data} for the facts of ``requires_columns`` whose column is absent or NULL in every
    row (one probe per column: an index-free scan only when the column really is empty)."""
    out: dict[str, str] = {}
    seen: dict[str, str | None] = {}
    for p in providers:
        for spec, facts in dict(p.requires_columns).items():
            if spec not in seen:
                table, _, col = spec.partition(".")
                if not store.table_exists(table) or not store.has_rows(table):
                    seen[spec] = None  # the table's own absence is reported by ``requires``
                elif col not in store.columns(table):
                    seen[spec] = f"no column {spec}"
                else:
                    found = store.conn.execute(
                        f"SELECT EXISTS (SELECT 1 FROM {_q(table)} WHERE {_q(col)} IS NOT NULL)"
                    ).fetchone()[0]
                    seen[spec] = None if found else f"no values in column {spec} (NULL in every row)"
            why = seen[spec]
            if why:
                for f in facts:
                    out.setdefault(f, why)
    return out


def account_columns(store: Store) -> list[str]:
    """Fact names of the account's own columns (``id`` is ``account_id``)."""
    return [ACCOUNT_FACT_RENAMES.get(c, c) for c in store.columns("accounts")]


@dataclass
class ProviderStatus:
    name: str
    state: str = "ok"  # ok | unavailable (no data) | failed (raised)
    reason: str = ""
    facts: tuple[str, ...] = ()


class FactSource:
    """Facts of every account for one as-of date: each provider runs once into a temp table
    (so one failing provider cannot stop the others), then one LEFT JOIN streams the accounts
    ordered by id. ``failures`` collects ``(where, message)``; use as a context manager."""

    _counter = 0

    def __init__(
        self,
        store: Store,
        as_of: str,
        providers: Sequence[FactProvider],
        failures: Failures,
        timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
        params: Mapping[str, int | str] | None = None,
    ):
        self.store, self.as_of, self.failures = store, as_of, failures
        defaults = {k: _word_list(v) if isinstance(v, str) else v for p in providers for k, v in p.params.items()}
        self.params = defaults | dict(params or {})
        self.timeout = timeout  # seconds a provider's SQL or one derive call may run (None: no limit)
        self._timeouts: dict[str, str] = {}  # provider -> reason; shared by bound_to copies in one process
        self.account_providers = [p for p in providers if p.scope == "account"]
        self.portfolio_providers = [p for p in providers if p.scope == "portfolio"]
        self.book_providers = [p for p in providers if p.scope == "book"]
        self.book: Facts = {}  # book facts (book_facts()), added to every account's facts
        self.status: dict[str, ProviderStatus] = {}
        self.columns = account_columns(store)
        # the accounts table's own columns, named in the composed query (a worker's view of the
        # table adds rowid, which is no fact)
        self._account_select = [f"a.{_q(c)}" for c in store.columns("accounts")]
        self._tables: dict[str, str] = {}
        self._multi: dict[str, str] = {}  # provider -> temp table of its facts at every date (use_dates)
        self._derive_errors: dict[str, int] = {}
        for p in providers:
            st = ProviderStatus(p.name, facts=tuple(p.facts) + tuple(p.derived))
            for t in p.requires:
                if not store.has_rows(t):
                    st.state, st.reason = (
                        "unavailable",
                        (f"no rows in table {t}" if store.table_exists(t) else f"no table {t}"),
                    )
                    break
            self.status[p.name] = st
        self.column_gaps = column_gaps(store, providers)
        produced = {f for p in providers for f in tuple(p.facts) + tuple(p.derived)}
        clash = set(self.columns) & produced
        bad_inputs = sorted((set(self.columns) | produced) & {f for p in providers for f in p.inputs})
        if bad_inputs:
            from kamrules.errors import PluginError

            raise PluginError(
                f"provider inputs {bad_inputs} have the names of facts or account columns (expected other names)"
            )
        if clash:
            from kamrules.errors import PluginError

            raise PluginError(f"facts {sorted(clash)} have the names of account columns (expected other names)")

    def sql_params(self) -> dict[str, Any]:
        return {"as_of": self.as_of, **self.params}

    def bound_to(self, store: Store, failures: Failures) -> FactSource:
        """A copy computing the same facts through another store connection (a worker's, restricted to
        a range of accounts): same provider status and book facts, its own temp tables, failures and derive counts."""
        other = copy.copy(self)
        other.store, other.failures = store, failures
        other._tables, other._derive_errors = {}, {}
        other.status = {k: dataclasses.replace(v) for k, v in self.status.items()}
        return other

    def at(self, as_of: str, failures: Failures) -> FactSource:
        """A copy for another as-of date (a backtest's): same providers, parameters and status so far; no book
        facts (call :meth:`book_facts`), its own temp tables, failures and derive counts."""
        other = self.bound_to(self.store, failures)
        other.as_of, other.book = as_of, {}
        return other

    def use_dates(self, dates: Sequence[str]) -> None:
        """Take the facts of the multi-date providers (``multi_date_sql``) from one pass over all ``dates``
        (made once per connection and kept in TEMP tables until :func:`drop_dates`); :meth:`prepare` then
        copies this date's rows instead of running ``sql``. A multi-date query that fails is dropped: that
        provider runs ``sql`` per date (and fails there, if it does, as in a check)."""
        conn = self.store.conn
        got = _MULTI.get(id(conn))
        if got is None or got[0] is not conn or got[1] != tuple(dates):
            drop_dates(self.store)
            got = _MULTI[id(conn)] = (conn, tuple(dates), self._multi_tables(dates))
        self._multi = got[2]

    def _multi_tables(self, dates: Sequence[str]) -> dict[str, str]:
        conn = self.store.conn
        conn.execute("DROP TABLE IF EXISTS temp.as_of_dates")
        conn.execute("CREATE TEMP TABLE as_of_dates (as_of TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.executemany("INSERT OR IGNORE INTO temp.as_of_dates VALUES (?)", [(d,) for d in dates])
        params = dict(self.params)
        out: dict[str, str] = {}
        for p in self.account_providers:
            if not p.multi_date_sql.strip() or self.status[p.name].state != "ok":
                continue
            FactSource._counter += 1
            table = f"kamdates_{FactSource._counter}"
            cols = ", ".join(["as_of", "account_id"] + [_q(f) for f in tuple(p.facts) + tuple(p.inputs)])
            try:
                conn.execute(f"CREATE TEMP TABLE {table} ({cols}, PRIMARY KEY (as_of, account_id)) WITHOUT ROWID")
                with self._sql_deadline(p):
                    conn.execute(
                        f"INSERT INTO {table} SELECT {cols} FROM (\n{p.multi_date_sql.strip().rstrip(';')}\n) "
                        "WHERE account_id IS NOT NULL",
                        params,
                    )
                out[p.name] = table
            except (Exception, PluginTimeout):  # its per-date sql runs instead
                conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        return out

    def failed_providers(self) -> set[str]:
        return {name for name, st in self.status.items() if st.state == "failed"}

    def fact_status(self) -> dict[str, ProviderStatus]:
        """{fact name: status of the provider producing it}."""
        return {
            f: self.status[p.name]
            for p in self.account_providers + self.portfolio_providers + self.book_providers
            for f in self.status[p.name].facts
        }

    def book_facts(self, needed: set[str] | None = None) -> Facts:
        """Compute the facts of the ``scope="book"`` providers (those producing a fact in ``needed``, and those
        the providers producing one name in ``after``; None: all) once, over this connection's whole store:
        call it in the parent, before the parts. A provider whose SQL returns more than one row, or raises,
        fails (its rules are skipped)."""
        if needed is not None:
            producing = [
                p
                for p in self.account_providers + self.book_providers
                if needed & set(tuple(p.facts) + tuple(p.derived))
            ]
            names = {p.name for p in producing} | {n for p in producing for n in p.after}
        for p in self.book_providers:
            if (needed is not None and p.name not in names) or self.status[p.name].state != "ok" or self._timed_out(p):
                continue
            try:
                with self._sql_deadline(p):
                    rows = list(self.store.query(p.sql, self.sql_params()))
                if len(rows) > 1:
                    raise RuntimeError(f"its SQL returns {len(rows)} rows (a book provider returns at most one)")
            except (Exception, PluginTimeout) as e:
                self._fail(p, e)
                continue
            facts = {k: rows[0][k] for k in p.facts if rows and rows[0].get(k) is not None}
            if p.derive:
                with _DeriveWatch(self.timeout):
                    self._derive(p, facts)
            self.book.update(facts)
        failed = {p.name for p in self.book_providers if self.status[p.name].state == "failed"}
        for p in self.account_providers:  # its derive would silently miss the book facts
            bad = sorted(failed & set(p.after))
            if bad and self.status[p.name].state == "ok":
                self._fail(p, RuntimeError(f"book fact provider {bad[0]} failed"))
        return self.book

    def _fail(self, p: FactProvider, e: BaseException) -> None:
        st = self.status[p.name]
        st.state, st.reason = "failed", f"{type(e).__name__}: {e}"
        if isinstance(e, PluginTimeout):
            self._timeouts[p.name] = str(e)
        self.failures.append((f"fact provider {p.name}", st.reason))

    def _timed_out(self, p: FactProvider) -> bool:
        """True (and ``p`` failed) if ``p`` already ran out of time in this process (an earlier part): each
        part would otherwise wait out the timeout again."""
        if p.name not in self._timeouts or self.status[p.name].state != "ok":
            return False
        self._fail(p, PluginTimeout(self._timeouts[p.name]))
        return True

    @contextmanager
    def _sql_deadline(self, p: FactProvider) -> Iterator[None]:
        """Interrupt ``p``'s SQL after ``timeout`` seconds (SQLite's progress handler, every 100,000 steps:
        no measurable cost); the interruption is raised as :class:`PluginTimeout`."""
        if not self.timeout:
            yield
            return
        conn = self.store.conn
        deadline = time.monotonic() + self.timeout
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 100_000)
        try:
            yield
        except sqlite3.OperationalError as e:
            if time.monotonic() > deadline and "interrupt" in str(e):
                raise PluginTimeout(
                    f"its SQL ran longer than {self.timeout:g} s and was stopped (setting [check] plugin_timeout)"
                ) from None
            raise
        finally:
            conn.set_progress_handler(None, 0)

    def prepare(self) -> FactSource:
        conn = self.store.conn
        for p in self.account_providers:
            if self.status[p.name].state != "ok" or not p.sql or self._timed_out(p):  # derive-only: nothing to run
                continue
            FactSource._counter += 1
            table = f"kamfacts_{FactSource._counter}"
            cols = ", ".join(["account_id"] + [_q(f) for f in tuple(p.facts) + tuple(p.inputs)])
            try:
                conn.execute(f"CREATE TEMP TABLE {table} ({cols}, PRIMARY KEY (account_id)) WITHOUT ROWID")
                self._tables[p.name] = table
                if p.name in self._multi:  # a backtest: this date's rows of the multi-date pass
                    conn.execute(
                        f"INSERT INTO {table} SELECT {cols} FROM temp.{self._multi[p.name]} WHERE as_of = :as_of",
                        {"as_of": self.as_of},
                    )
                    continue
                # keyed by account (no rowid): one B-tree seek per account in the composed join
                with self._sql_deadline(p):
                    conn.execute(
                        f"INSERT INTO {table} SELECT {cols} FROM (\n{p.sql.strip().rstrip(';')}\n) WHERE account_id IS NOT NULL",
                        self.sql_params(),
                    )
            except (Exception, PluginTimeout) as e:  # sqlite3.Error, or a Python function used in the SQL
                if "UNIQUE" in str(e):
                    e = RuntimeError(f"returns more than one row for an account ({e})")
                self._fail(p, e)
        return self

    def _live(self) -> list[FactProvider]:
        return [p for p in self.account_providers if p.name in self._tables and self.status[p.name].state == "ok"]

    def _composed(self, inputs: bool = True) -> str:
        """SELECT of every account (``a``) LEFT JOINed with each prepared provider's temp table."""
        select = list(self._account_select)
        joins = []
        for i, p in enumerate(self._live()):
            t = self._tables[p.name]
            select += [f"k{i}.{_q(f)} AS {_q(f)}" for f in p.facts]
            if inputs:
                select += [f"k{i}.{_q(f)} AS {_q(_INPUT + f)}" for f in p.inputs]
            joins.append(f"LEFT JOIN {t} k{i} ON k{i}.account_id = a.id")
        return f"SELECT {', '.join(select)} FROM accounts a {' '.join(joins)}"

    def account_totals(self) -> Totals:
        """For each ``over="account_facts"`` provider: {fact: its non-NULL values} over the accounts
        of this connection (after :meth:`prepare`). Combine parts with :func:`sum_totals`."""
        todo = [p for p in self.portfolio_providers if p.over == "account_facts" and self.status[p.name].state == "ok"]
        if not todo:
            return {}
        bad = [p.name for p in self.account_providers if self.status[p.name].state == "failed"]
        if bad:  # the totals would be silently short: fail rather than report wrong shares
            for p in todo:
                self._fail(p, RuntimeError(f"account fact provider {bad[0]} failed"))
            return {}
        conn = self.store.conn
        live = self._live()
        missing = [f for p in self.account_providers if p not in live for f in p.facts]
        nulls = "".join(f", NULL AS {_q(f)}" for f in missing)
        conn.execute("DROP VIEW IF EXISTS temp.account_facts")
        conn.execute(f"CREATE TEMP VIEW account_facts AS SELECT * {nulls} FROM ({self._composed(inputs=False)})")
        out: Totals = {}
        try:
            for p in todo:
                if self._timed_out(p):
                    continue
                try:
                    with self._sql_deadline(p):
                        cur = conn.execute(p.sql, self.sql_params())
                        cols = [d[0] for d in cur.description]
                        absent = [f for f in p.facts if f not in cols]
                        if absent:
                            raise RuntimeError(f"its SQL returns no column {', '.join(absent)}")
                        idx = [(f, cols.index(f)) for f in p.facts]
                        values: dict[str, list[Any]] = {f: [] for f in p.facts}
                        for row in cur:
                            for f, i in idx:
                                if row[i] is not None:
                                    values[f].append(row[i])
                    out[p.name] = values
                except (Exception, PluginTimeout) as e:
                    self._fail(p, e)
        finally:
            conn.execute("DROP VIEW IF EXISTS temp.account_facts")
        return out

    def accounts(self, account_id: str | None = None, limit: int | None = None) -> Iterator[Facts]:
        """Fact dicts (NULLs left out, ``derive`` applied), ordered by account id."""
        live = self._live()
        sql = self._composed()
        params: dict[str, Any] = {}
        if account_id is not None:
            sql += " WHERE a.id = :account_id"
            params["account_id"] = account_id
        sql += " ORDER BY a.id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        cur = self.store.conn.execute(sql, params)
        names = [ACCOUNT_FACT_RENAMES.get(d[0], d[0]) for d in cur.description]
        derivers = [
            p
            for p in self.account_providers
            if p.derive and self.status[p.name].state == "ok" and not self._timed_out(p)
        ]
        inputs = [n for n in names if n.startswith(_INPUT)]
        renamed = {_INPUT + f: f for p in live for f in p.inputs}
        names = [renamed.get(n, n) for n in names]
        dropped = [renamed[n] for n in inputs]
        steps = [(p, p.derive, p.derived) for p in derivers if p.derive is not None]
        book = self.book
        with _DeriveWatch(self.timeout if steps else None):
            for row in cur:
                facts = {n: v for n, v in zip(names, row, strict=True) if v is not None}
                if book:
                    facts.update(book)
                view = MappingProxyType(facts)  # live: later derivers see earlier ones' facts
                for p, derive, derived in steps:
                    try:
                        extra = derive(view)
                    except PluginTimeout as e:  # no more calls of it: every account would wait it out again
                        self._fail(p, PluginTimeout(f"{e} (account {facts.get('account_id', '-')})"))
                        steps = [s for s in steps if s[0] is not p]
                        continue
                    except KeyboardInterrupt:
                        raise
                    except BaseException as e:  # noqa: B036 - also sys.exit() in a plugin's derive
                        self._derive_failed(p, facts, e)
                        continue
                    if extra:
                        for k in derived:
                            v = extra.get(k)
                            if v is not None:
                                facts[k] = v
                for n in dropped:
                    facts.pop(n, None)
                yield facts

    def _derive_failed(self, p: FactProvider, facts: Mapping[str, Any], e: BaseException) -> None:
        n = self._derive_errors.get(p.name, 0)
        self._derive_errors[p.name] = n + 1
        if n == 0:
            self.failures.append(
                (
                    f"fact provider {p.name} (derive)",
                    f"{type(e).__name__}: {e} (account {facts.get('account_id', '-')})",
                )
            )

    def _derive(self, p: FactProvider, facts: Facts) -> None:
        if self.status[p.name].state != "ok" or p.derive is None:  # it ran out of time on an earlier row
            return
        try:
            extra = p.derive(MappingProxyType(facts)) or {}
        except PluginTimeout as e:
            self._fail(p, e)
            return
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B036 - also sys.exit() in a plugin's derive
            self._derive_failed(p, facts, e)
            return
        for k in p.derived:
            v = extra.get(k)
            if v is not None:
                facts[k] = v

    def derive_error_counts(self) -> dict[str, int]:
        return dict(self._derive_errors)

    def portfolio_queries(self) -> dict[str, list[Facts]]:
        """Rows of every ``over="store"`` portfolio provider's SQL (whole book; failures recorded)."""
        out: dict[str, list[Facts]] = {}
        for p in self.portfolio_providers:
            if p.over != "store" or self.status[p.name].state != "ok" or self._timed_out(p):
                continue
            try:
                with self._sql_deadline(p):
                    out[p.name] = list(self.store.query(p.sql, self.sql_params()))
            except (Exception, PluginTimeout) as e:
                self._fail(p, e)
        return out

    def portfolio(
        self,
        rows: Mapping[str, list[Facts]] | None = None,
        totals: Sequence[Totals] | None = None,
        failed: Set[str] = frozenset(),
    ) -> list[Facts]:
        """Portfolio fact sets, merged across providers by ``scope_key`` (default "").

        ``rows``: from :meth:`portfolio_queries` (run now if None); ``totals``: the
        :meth:`account_totals` of every part (this connection's if None, after prepare);
        ``failed``: providers that failed elsewhere (a worker), left out."""
        rows = self.portfolio_queries() if rows is None else rows
        totals = [self.account_totals()] if totals is None else totals
        merged: dict[str, Facts] = {}
        with _DeriveWatch(self.timeout if any(p.derive for p in self.portfolio_providers) else None):
            self._merge_portfolio(rows, totals, failed, merged)
        return [merged[k] for k in sorted(merged)]

    def _merge_portfolio(
        self, rows: Mapping[str, list[Facts]], totals: Sequence[Totals], failed: Set[str], merged: dict[str, Facts]
    ) -> None:
        for p in self.portfolio_providers:
            if self.status[p.name].state != "ok" or p.name in failed:
                continue
            if p.over == "account_facts":
                try:
                    got = [sum_totals([t[p.name] for t in totals if p.name in t], p.facts)]
                except (TypeError, ValueError) as e:  # a column that is not a number
                    self._fail(p, e)
                    continue
            else:
                got = rows.get(p.name, [])
            for row in got:
                key = str(row.get("scope_key") or "")
                facts = merged.setdefault(key, {"scope_key": key} if key else {})
                for k in tuple(p.facts) + PORTFOLIO_ADDRESS:
                    if row.get(k) is not None:
                        facts[k] = row[k]
                if p.derive:
                    self._derive(p, facts)

    def close(self) -> None:
        for t in self._tables.values():
            try:
                self.store.conn.execute(f"DROP TABLE IF EXISTS temp.{t}")
            except Exception:
                pass
        self._tables.clear()

    def __enter__(self) -> FactSource:
        return self.prepare()

    def __exit__(self, *exc: object) -> None:
        self.close()


_MULTI: dict[int, tuple[sqlite3.Connection, tuple[str, ...], dict[str, str]]] = {}  # id(conn) -> its multi-date tables


def drop_dates(store: Store) -> None:
    """Drop the TEMP tables :meth:`FactSource.use_dates` made on ``store``'s connection."""
    conn = store.conn
    got = _MULTI.pop(id(conn), None)
    if got is None or got[0] is not conn:
        return
    for t in list(got[2].values()) + ["as_of_dates"]:
        try:
            conn.execute(f"DROP TABLE IF EXISTS temp.{t}")
        except sqlite3.Error:
            pass


class _DeriveWatch:
    """Stops a ``derive`` call that runs longer than ``seconds``: SIGALRM every ``seconds / 4`` while
    the accounts (or portfolio rows) are derived; the handler looks at the stack and raises
    :class:`PluginTimeout` in the call when it sees the same call of a derive function (the frame directly
    called by FactSource.accounts or FactSource._derive) for ``seconds``. Nothing is done per call, so
    the per-account loop costs the same. Only in a main thread (the check's workers run their part in
    theirs) and where SIGALRM exists; elsewhere derive calls are not limited."""

    TICKS = 4

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.active = False
        self.seen: FrameType | None = None  # the derive call seen at the last tick
        self.count = 0

    def __enter__(self) -> _DeriveWatch:
        if (
            not self.seconds
            or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()
        ):
            return self
        self.seen, self.count = None, 0
        self.old_handler = signal.signal(signal.SIGALRM, self._tick)
        tick = self.seconds / self.TICKS
        self.old_timer = signal.setitimer(signal.ITIMER_REAL, tick, tick)
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        self.active, self.seen = False, None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old_handler if self.old_handler is not None else signal.SIG_DFL)
        if self.old_timer[0]:  # someone else's alarm (e.g. a test timeout): give it back
            signal.setitimer(signal.ITIMER_REAL, *self.old_timer)

    def _tick(self, signum: int, frame: FrameType | None) -> None:
        child = None
        while frame is not None and frame.f_code not in _WATCHED:
            child, frame = frame, frame.f_back
        if frame is None or child is None:  # not inside a derive call now
            self.seen, self.count = None, 0
            return
        if child is not self.seen:  # a new call (the frame object is kept, so its identity is its own)
            self.seen, self.count = child, 0
            return
        self.count += 1
        if self.count >= self.TICKS:
            self.seen, self.count = None, 0
            raise PluginTimeout(
                f"derive ran longer than {self.seconds:g} s and was stopped (setting [check] plugin_timeout)"
            )


_WATCHED = {FactSource.accounts.__code__, FactSource._derive.__code__}
