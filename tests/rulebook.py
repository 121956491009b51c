"""A tiny helper for rule tests: build a small book in a real store, check it, read alerts and facts."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict

from kamrules.contract import load_order
from kamrules.store import Store

AS_OF = "2026-10-31"


def ago(days: int, as_of: str = AS_OF) -> str:
    """The ISO date ``days`` days before ``as_of`` (negative: after it)."""
    return (dt.date.fromisoformat(as_of) - dt.timedelta(days=days)).isoformat()


class Book:
    """Rows to insert into a fresh store at ``path``; ``check()`` runs the real engine on them."""

    def __init__(self, path, as_of: str = AS_OF):
        self.store = Store.open(path)
        self.store.init()
        self.as_of = as_of
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._saved = False

    def ago(self, days: int) -> str:
        return ago(days, self.as_of)

    # -- rows ----------------------------------------------------------------
    def account(self, id: str, **cols) -> str:
        """An account, by default an active mid account with an owner, created five years ago."""
        row = {
            "id": id,
            "name": f"客户{id}",
            "tier": "mid",
            "owner": "张伟",
            "owner_email": "zhang.wei@example.com",
            "status": "active",
            "created_on": self.ago(5 * 365),
        }
        row.update(cols)
        self.rows["accounts"].append(row)
        return id

    def add(self, table: str, **cols) -> dict:
        """A row of ``table``; an ``id`` is made up for tables that have one."""
        if "id" in self.store.tables[table].primary_key and "id" not in cols:
            cols = {"id": f"{table[:3]}{next(self._ids)}", **cols}
        self.rows[table].append(cols)
        return cols

    def save(self) -> Book:
        """Insert every row (referenced tables first); idempotent per row list."""
        for name in load_order(self.store.tables):
            rows = self.rows.pop(name, None)
            if rows:
                self.store.db[name].insert_all(rows)
        return self

    # -- running -------------------------------------------------------------
    def check(self, as_of: str | None = None, **kw):
        """``kamrules.check.run_check`` on the store (rows saved first)."""
        from kamrules.check import run_check

        self.save()
        return run_check(self.store, as_of=as_of or self.as_of, **kw)

    def alerts(self, code: str, as_of: str | None = None, **kw) -> dict:
        """{account_id: alert} of the rule ``code`` (portfolio alerts under None)."""
        result = self.check(as_of=as_of, select=(code,), **kw)
        return {a.account_id: a for a in result.alerts if a.code == code}

    def facts(self, provider, as_of: str | None = None) -> dict:
        """Run one FactProvider's SQL directly (no derive): {account_id: {fact: value}} (portfolio: {None: row})."""
        self.save()
        out = {}
        for row in self.store.query(provider.sql, {"as_of": as_of or self.as_of, **provider.params}):
            key = row.pop("account_id", None)
            out[key] = {k: v for k, v in row.items() if v is not None}
        return out


def skipped_codes(result) -> set[str]:
    return {code for code, _ in result.summary.skipped}


def act(book, account, days, kind="call", **kw):
    book.add("activities", account_id=account, date=book.ago(days), kind=kind, **kw)
