"""Fact providers: SQL that derives named per-account or portfolio facts for an as-of date."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Iterator, Mapping


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

    ``inputs`` names further columns of ``sql`` (account scope) that ``derive``
    reads but that are not facts: they are in the dict ``derive`` gets and are
    removed after every provider's ``derive`` has run (e.g. a list of dates that
    Python turns into gaps more cheaply than a window function).
    """

    name: str
    facts: tuple[str, ...]
    sql: str
    requires: tuple[str, ...] = ()
    scope: str = "account"
    derive: Callable[[Mapping], Mapping] | None = None
    derived: tuple[str, ...] = ()  # names of the facts ``derive`` returns
    description: str = ""
    inputs: tuple[str, ...] = ()  # SQL columns only ``derive`` sees (not facts)

    def __post_init__(self) -> None:
        if self.scope not in ("account", "portfolio"):
            raise ValueError(f"fact provider {self.name}: scope must be 'account' or 'portfolio'")


# -- composition: all providers, one pass over the accounts --------------------------------------

ACCOUNT_FACT_RENAMES = {"id": "account_id"}
_INPUT = "kaminput_"  # prefix of provider ``inputs`` columns in the composed query


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def collect_providers(pm, failures: list | None = None) -> tuple[FactProvider, ...]:
    """Every plugin's providers (hook ``register_facts``), each plugin called on its own.

    A plugin whose hook raises is recorded in ``failures`` as ``(where, message)``
    (the run goes on without it). A fact name produced twice is a PluginError naming both.
    """
    from kamrules.errors import PluginError

    providers: list[FactProvider] = []
    owner: dict[str, str] = {}
    for impl in reversed(pm.hook.register_facts.get_hookimpls()):
        try:
            got = impl.function() or []
        except Exception as e:
            if failures is None:
                raise
            failures.append((f"plugin {impl.plugin_name}: register_facts", f"{type(e).__name__}: {e}"))
            continue
        for p in got:
            if not isinstance(p, FactProvider):
                raise PluginError(f"plugin {impl.plugin_name}: register_facts returned {p!r} (expected FactProvider objects)")
            for name in tuple(p.facts) + tuple(p.derived):
                if name in owner:
                    raise PluginError(f"fact {name!r} is produced by two providers: {owner[name]} and {p.name} ({impl.plugin_name})")
                owner[name] = p.name
            providers.append(p)
    return tuple(providers)


def account_columns(store) -> list[str]:
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

    def __init__(self, store, as_of: str, providers, failures: list):
        self.store, self.as_of, self.failures = store, as_of, failures
        self.account_providers = [p for p in providers if p.scope == "account"]
        self.portfolio_providers = [p for p in providers if p.scope == "portfolio"]
        self.status: dict[str, ProviderStatus] = {}
        self.columns = account_columns(store)
        self._tables: dict[str, str] = {}
        self._derive_errors: dict[str, int] = {}
        for p in providers:
            st = ProviderStatus(p.name, facts=tuple(p.facts) + tuple(p.derived))
            for t in p.requires:
                if not store.has_rows(t):
                    st.state, st.reason = "unavailable", (f"no rows in table {t}" if store.table_exists(t) else f"no table {t}")
                    break
            self.status[p.name] = st
        produced = {f for p in providers for f in tuple(p.facts) + tuple(p.derived)}
        clash = set(self.columns) & produced
        bad_inputs = sorted((set(self.columns) | produced) & {f for p in providers for f in p.inputs})
        if bad_inputs:
            from kamrules.errors import PluginError

            raise PluginError(f"provider inputs {bad_inputs} have the names of facts or account columns (expected other names)")
        if clash:
            from kamrules.errors import PluginError

            raise PluginError(f"facts {sorted(clash)} have the names of account columns (expected other names)")

    def bound_to(self, store, failures: list) -> "FactSource":
        """A copy computing the same facts through another store connection (a worker's, restricted to
        a range of accounts): same provider status, its own temp tables, failures and derive counts."""
        other = copy.copy(self)
        other.store, other.failures = store, failures
        other._tables, other._derive_errors = {}, {}
        other.status = {k: dataclasses.replace(v) for k, v in self.status.items()}
        return other

    def failed_providers(self) -> set[str]:
        return {name for name, st in self.status.items() if st.state == "failed"}

    def fact_status(self) -> dict[str, ProviderStatus]:
        """{fact name: status of the provider producing it}."""
        return {f: self.status[p.name] for p in self.account_providers + self.portfolio_providers for f in self.status[p.name].facts}

    def _fail(self, p: FactProvider, e: BaseException) -> None:
        st = self.status[p.name]
        st.state, st.reason = "failed", f"{type(e).__name__}: {e}"
        self.failures.append((f"fact provider {p.name}", st.reason))

    def prepare(self) -> "FactSource":
        conn = self.store.conn
        for p in self.account_providers:
            if self.status[p.name].state != "ok":
                continue
            FactSource._counter += 1
            table = f"kamfacts_{FactSource._counter}"
            cols = ", ".join(["account_id"] + [_q(f) for f in tuple(p.facts) + tuple(p.inputs)])
            try:
                conn.execute(f"CREATE TEMP TABLE {table} AS SELECT {cols} FROM (\n{p.sql.strip().rstrip(';')}\n)", {"as_of": self.as_of})
                self._tables[p.name] = table
                conn.execute(f"CREATE UNIQUE INDEX temp.{table}_ix ON {table}(account_id)")
            except Exception as e:  # sqlite3.Error, or a Python function used in the SQL
                if "UNIQUE" in str(e):
                    e = RuntimeError(f"returns more than one row for an account ({e})")
                self._fail(p, e)
        return self

    def accounts(self, account_id: str | None = None, limit: int | None = None) -> Iterator[dict]:
        """Fact dicts (NULLs left out, ``derive`` applied), ordered by account id."""
        select = ["a.*"]
        joins = []
        live = [p for p in self.account_providers if p.name in self._tables and self.status[p.name].state == "ok"]
        for i, p in enumerate(live):
            t = self._tables[p.name]
            select += [f"k{i}.{_q(f)} AS {_q(f)}" for f in p.facts]
            select += [f"k{i}.{_q(f)} AS {_q(_INPUT + f)}" for f in p.inputs]
            joins.append(f"LEFT JOIN {t} k{i} ON k{i}.account_id = a.id")
        sql = f"SELECT {', '.join(select)} FROM accounts a {' '.join(joins)}"
        params: dict = {}
        if account_id is not None:
            sql += " WHERE a.id = :account_id"
            params["account_id"] = account_id
        sql += " ORDER BY a.id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        cur = self.store.conn.execute(sql, params)
        names = [ACCOUNT_FACT_RENAMES.get(d[0], d[0]) for d in cur.description]
        derivers = [p for p in self.account_providers if p.derive and self.status[p.name].state == "ok"]
        inputs = [n for n in names if n.startswith(_INPUT)]
        renamed = {_INPUT + f: f for p in live for f in p.inputs}
        names = [renamed.get(n, n) for n in names]
        dropped = [renamed[n] for n in inputs]
        for row in cur:
            facts = {n: v for n, v in zip(names, row) if v is not None}
            for p in derivers:
                self._derive(p, facts)
            for n in dropped:
                facts.pop(n, None)
            yield facts

    def _derive(self, p: FactProvider, facts: dict) -> None:
        try:
            extra = p.derive(MappingProxyType(facts)) or {}
        except Exception as e:
            n = self._derive_errors.get(p.name, 0)
            self._derive_errors[p.name] = n + 1
            if n == 0:
                self.failures.append((f"fact provider {p.name} (derive)", f"{type(e).__name__}: {e} (account {facts.get('account_id', '-')})"))
            return
        for k in p.derived:
            v = extra.get(k)
            if v is not None:
                facts[k] = v

    def derive_error_counts(self) -> dict[str, int]:
        return dict(self._derive_errors)

    def portfolio(self) -> list[dict]:
        """Portfolio fact sets, merged across providers by ``scope_key`` (default "")."""
        merged: dict[str, dict] = {}
        for p in self.portfolio_providers:
            if self.status[p.name].state != "ok":
                continue
            try:
                rows = list(self.store.query(p.sql, {"as_of": self.as_of}))
            except Exception as e:
                self._fail(p, e)
                continue
            for row in rows:
                key = str(row.get("scope_key") or "")
                facts = merged.setdefault(key, {"scope_key": key} if key else {})
                for k in tuple(p.facts) + ("owner", "owner_email"):
                    if row.get(k) is not None:
                        facts[k] = row[k]
                if p.derive:
                    self._derive(p, facts)
        return [merged[k] for k in sorted(merged)]

    def close(self) -> None:
        for t in self._tables.values():
            try:
                self.store.conn.execute(f"DROP TABLE IF EXISTS temp.{t}")
            except Exception:
                pass
        self._tables.clear()

    def __enter__(self) -> "FactSource":
        return self.prepare()

    def __exit__(self, *exc) -> None:
        self.close()
