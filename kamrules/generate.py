"""Synthetic books of accounts in the contract format, streamed to a folder or a store.

A book is deterministic for ``(accounts, seed, as_of, defects, traps)``: account ``i``
uses its own ``random.Random`` derived from the seed and ``i``, never the global
generator or the clock. Memory stays bounded: each account's rows are built,
written and dropped before the next one.

Defects: the loaded rule sets contribute recipes (hook ``register_defect_recipes``,
:func:`defect_recipes`), each named after the rule it should make fire. A share
``defects`` of the accounts (default 0.12) carries one defect, drawn among the
kinds its tier and status fit; the first ``len(recipes)`` accounts carry one kind
each, so that even a small book has every defect. ``defects=0``: no defects.

Traps (:class:`kamrules.bookgen.Trap`, same hook, :func:`trap_recipes`): healthy
accounts in a shape that naive rules mistake for trouble (seasonal buyers, newly
won accounts, long key tenders ...). A share ``traps`` of the healthy accounts
(default 0.1) carries one, and the accounts after the forced defects one kind
each. ``defects=0, traps=0`` gives a plain healthy book.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from kamrules.bookgen import Account, Defect, Trap, make_owners, pick_profile
from kamrules.contract import CORE_TABLES, load_order
from kamrules.vocab import STATUSES as STATUSES_
from kamrules.vocab import TIERS as TIERS_

DEFAULT_DEFECTS = 0.12  # of the accounts: the demo book shows alerts on about 15 % of its accounts
DEFAULT_TRAPS = 0.1  # of the healthy accounts that fit a trap
TABLES = {t.name: t for t in CORE_TABLES}
ORDER = load_order(TABLES)
COLUMNS = {t.name: [c.name for c in t.columns] for t in CORE_TABLES}
BOOL_POSITIONS = {t.name: [i for i, c in enumerate(t.columns) if c.kind == "bool"] for t in CORE_TABLES}


def _as_of(as_of) -> int:
    if as_of is None:
        return dt.date.today().toordinal()
    if isinstance(as_of, dt.date):
        return as_of.toordinal()
    return dt.date.fromisoformat(str(as_of)).toordinal()


def _recipes(pm=None) -> tuple[tuple[Defect, ...], tuple[Trap, ...]]:
    """(defects, traps) of every loaded rule set (hook ``register_defect_recipes``)."""
    from kamrules.check import builtin_ruleset_files
    from kamrules.errors import PluginError
    from kamrules.plugins import call_hook, default_plugin_manager
    from kamrules.ruleset import resolve

    pm = default_plugin_manager() if pm is None else pm
    failures: list = []
    codes: dict[str, str] = {}
    for rs in resolve(builtin_ruleset_files(pm, failures)):
        for rule in rs.rules:
            codes[rule.name] = min(codes.get(rule.name, rule.code), rule.code)
    groups, seen, traps = [], set(), {}
    for plugin, got in call_hook(pm, "register_defect_recipes"):  # a plugin that raises: PluginFailed (exit 3)
        defects = []
        for r in got:
            if isinstance(r, Trap):  # named after no rule; its quiet list may name rules of rule sets not loaded
                if not r.kind or r.kind in traps or r.kind in codes:
                    what = "a trap needs a kind" if not r.kind else f"a second trap or a rule named {r.kind!r}"
                    raise PluginError(f"plugin {plugin}: register_defect_recipes returned {r!r} ({what})")
                traps[r.kind] = r
                continue
            if not isinstance(r, Defect) or r.kind not in codes or r.kind in seen:
                what = (
                    "expected kamrules.bookgen.Defect or Trap objects"
                    if not isinstance(r, Defect)
                    else (f"a second recipe {r.kind!r}" if r.kind in seen else f"no loaded rule is named {r.kind!r}")
                )
                raise PluginError(f"plugin {plugin}: register_defect_recipes returned {r!r} ({what})")
            seen.add(r.kind)
            defects.append(r)
        if defects:
            groups.append((min(codes[r.kind] for r in defects), defects))
    ordered = tuple(r for _, got in sorted(groups, key=lambda g: g[0]) for r in got)
    return ordered, tuple(traps[k] for k in sorted(traps))  # traps by name: the book does not depend on load order


def defect_recipes(pm=None) -> tuple[Defect, ...]:
    """The defect recipes of every loaded rule set (hook ``register_defect_recipes``).

    Ordered by the codes of the rules they are named after (each plugin's recipes
    together, in its order), so the book does not depend on the order plugins load.
    A recipe named after no loaded rule, or two with one name, is a PluginError.
    """
    return _recipes(pm)[0]


def trap_recipes(pm=None) -> tuple[Trap, ...]:
    """The healthy traps of every loaded rule set (:class:`kamrules.bookgen.Trap`, same hook), by name."""
    return _recipes(pm)[1]


def defect_kinds(pm=None) -> tuple[str, ...]:
    """The names of the defect kinds (= rule names) a generated book carries, in recipe order."""
    return tuple(r.kind for r in defect_recipes(pm))


def trap_kinds(pm=None) -> tuple[str, ...]:
    """The names of the healthy traps a generated book carries."""
    return tuple(r.kind for r in trap_recipes(pm))


def _eligible(recipes) -> dict[tuple[str, str], list]:
    """{(tier, status): the recipes such an account can carry}, drawn from (the ``once`` ones are never drawn)."""
    return {
        (t, s): [r for r in recipes if t in r.tiers and s in r.statuses and not r.once]
        for t in TIERS_
        for s in STATUSES_
    }


def _iter(accounts, seed, as_of, defects, recipes, pm, traps):
    """Yield ``(account_id, defect or None, trap or None, rows)``."""
    if recipes is None:
        recipes, trapped = _recipes(pm)
    else:
        trapped = tuple(r for r in recipes if isinstance(r, Trap))
        recipes = tuple(r for r in recipes if not isinstance(r, Trap))
    day = _as_of(as_of)
    meta = random.Random(f"kamrules-book:{seed}")
    n_owners = max(3, min(accounts // 40, 5000))
    owners = make_owners(n_owners + 1, meta)
    starved_owner = owners.pop()  # for recipes with reserved_owner: one owner whose book gets no support
    n_key = max(1, (n_owners + 1) // 3)
    claim = next((r for r in recipes if r.claims_lost), None) if defects > 0 else None
    width = max(6, len(str(accounts)))
    eligible, eligible_traps = _eligible(recipes), _eligible(trapped)
    n = len(recipes)
    for i in range(accounts):
        rng = random.Random(seed * 1_000_003 + i)
        forced = recipes[i] if defects > 0 and i < n else None
        trap = trapped[i - n] if forced is None and traps > 0 and 0 <= i - n < len(trapped) else None
        tier, status = pick_profile(rng, forced or trap)
        defect = forced
        if defect is None and trap is None:
            kinds = eligible[tier, status] if defects > 0 else ()
            if kinds and rng.random() < defects:  # the share of accounts that carry a defect
                defect = rng.choice(kinds)
            elif traps > 0:
                kinds = eligible_traps[tier, status]
                if kinds and rng.random() < traps:
                    trap = rng.choice(kinds)
        if defect is None and trap is None and claim is not None and status == "lost" and i % 2 == 0:
            defect = claim  # a pattern over many accounts (e.g. one owner's losses): nothing drawn
        # key accounts have KA managers of their own, the first third of the owners (seed 000: one person
        # cannot manage key accounts and small and mid clients at once); the draw is the one it always was
        if defect is not None and defect.reserved_owner:
            owner = starved_owner
        elif tier == "key" and not (defect is not None and defect.mixed_owner):
            owner = owners[rng.randrange(len(owners)) % n_key]
        else:
            owner = owners[n_key + rng.randrange(len(owners)) % (len(owners) - n_key)]
        acc_id = f"A{i + 1:0{width}d}"
        yield acc_id, defect, trap, Account(acc_id, rng, day, tier, status, defect or trap, owner).build()


def iter_book(
    accounts: int,
    seed: int = 0,
    as_of=None,
    defects: float = DEFAULT_DEFECTS,
    recipes=None,
    pm=None,
    traps: float = DEFAULT_TRAPS,
):
    """Yield ``(account_id, defect_kind_or_None, {table: [row tuples]})`` for each account in turn.

    ``recipes``: the defect recipes and traps (default: those of ``pm``'s rule sets). A trap account's
    kind is None (it is healthy): :func:`trap_accounts` says which accounts carry which trap."""
    for acc_id, defect, _, rows in _iter(accounts, seed, as_of, defects, recipes, pm, traps):
        yield acc_id, defect.kind if defect else None, rows


class _DirSink:
    """One file per table (CSV UTF-8 or JSON Lines), header = the contract's columns."""

    def __init__(self, path, fmt: str):
        from kamrules.outputs import PendingOutput

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.fmt = fmt
        self.files = {}
        self.writers = {}
        self.outputs = []  # each file renamed into place only when the whole book is written
        for name in ORDER:
            out = PendingOutput(self.path / f"{name}.{fmt}", encoding="utf-8")
            self.outputs.append(out)
            f = self.files[name] = out.file
            if fmt == "csv":
                w = csv.writer(f)
                w.writerow(COLUMNS[name])
                self.writers[name] = w

    def write(self, rows: dict[str, list]) -> None:
        for name, items in rows.items():
            if not items:
                continue
            if self.fmt == "csv":
                bools = BOOL_POSITIONS[name]
                if bools:  # csv writes None as "" itself; only booleans need spelling out
                    items = [list(row) for row in items]
                    for row in items:
                        for i in bools:
                            v = row[i]
                            if v is not None:
                                row[i] = "true" if v else "false"
                self.writers[name].writerows(items)
            else:
                cols = COLUMNS[name]
                self.files[name].writelines(
                    json.dumps(dict(zip(cols, row, strict=True)), ensure_ascii=False) + "\n" for row in items
                )

    def close(self, ok: bool = True) -> None:
        """Put every file in place (``ok``), or drop them all: an error or Ctrl-C leaves the folder as it was."""
        for out in self.outputs:
            out.commit() if ok else out.discard()


class _StoreSink:
    """Rows into the store's tables inside one transaction, flushed in dependency order."""

    FLUSH = 200  # accounts

    def __init__(self, store):
        self.conn = store.conn
        from kamrules.migrations import quote

        self.sql = {
            n: f"INSERT INTO {quote(n)} ({', '.join(quote(c) for c in COLUMNS[n])}) VALUES ({', '.join('?' * len(COLUMNS[n]))})"
            for n in ORDER
        }
        self.pending: dict[str, list[tuple[Any, ...]]] = {n: [] for n in ORDER}
        self.accounts = 0

    def write(self, rows) -> None:
        for name, items in rows.items():
            self.pending[name].extend(items)
        self.accounts += 1
        if self.accounts % self.FLUSH == 0:
            self.flush()

    def flush(self) -> None:
        for name in ORDER:
            if self.pending[name]:
                self.conn.executemany(self.sql[name], self.pending[name])
                self.pending[name] = []


def _run(sink, accounts, seed, as_of, defects, progress, pm=None, traps=DEFAULT_TRAPS) -> dict[str, int]:
    counts = {n: 0 for n in ORDER}
    step = max(1, accounts // 200)
    for i, (_, _, rows) in enumerate(iter_book(accounts, seed, as_of, defects, pm=pm, traps=traps), 1):
        sink.write(rows)
        for name, items in rows.items():
            counts[name] += len(items)
        if progress is not None and (i % step == 0 or i == accounts):
            progress(i, accounts)
    return counts


def generate_to_dir(
    path,
    accounts: int,
    seed: int = 0,
    as_of=None,
    fmt: str = "csv",
    progress=None,
    defects: float = DEFAULT_DEFECTS,
    pm=None,
    traps: float = DEFAULT_TRAPS,
) -> dict[str, int]:
    """Write a book as ``accounts.csv``, ``orders.csv``, ... (or ``.jsonl``) into ``path``; returns rows per table.

    ``pm``: the plugin manager whose rule sets give the defect recipes and traps (default: the process-wide one)."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r} (expected csv or jsonl)")
    sink = _DirSink(path, fmt)
    try:
        stats = _run(sink, accounts, seed, as_of, defects, progress, pm, traps)
    except BaseException:
        sink.close(ok=False)
        raise
    sink.close()
    return stats


def generate_to_store(
    store,
    accounts: int,
    seed: int = 0,
    as_of=None,
    progress=None,
    defects: float = DEFAULT_DEFECTS,
    pm=None,
    traps: float = DEFAULT_TRAPS,
) -> dict[str, int]:
    """Load a book straight into ``store`` (one transaction; defect recipes of ``pm``, default ``store.pm``); returns rows per table.

    The store must not already hold accounts with the same ids (A000001, ...):
    generate into a fresh store, or import a generated folder to upsert.
    """
    from kamrules.errors import InputError

    if (
        store.has_rows("accounts")
        and store.conn.execute(
            "SELECT 1 FROM accounts WHERE id = ?", (f"A{1:0{max(6, len(str(accounts)))}d}",)
        ).fetchone()
    ):
        raise InputError(
            f"{store.path}: already holds a generated book (account A000001 exists); generate into a new store or use --out DIR and import"
        )
    sink = _StoreSink(store)
    conn = store.conn
    conn.execute("PRAGMA foreign_keys = OFF")  # consistent by construction (the import tests prove it)
    conn.execute("BEGIN IMMEDIATE")
    try:
        counts = _run(sink, accounts, seed, as_of, defects, progress, pm or store.pm, traps)
        sink.flush()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return counts


def defect_accounts(
    accounts: int, seed: int = 0, as_of=None, defects: float = DEFAULT_DEFECTS, pm=None, traps: float = DEFAULT_TRAPS
) -> dict[str, list[str]]:
    """{defect kind: [account ids]} of the book these arguments generate (for tests and demos)."""
    return _carriers(accounts, seed, as_of, defects, pm, traps)[0]


def trap_accounts(
    accounts: int, seed: int = 0, as_of=None, defects: float = DEFAULT_DEFECTS, pm=None, traps: float = DEFAULT_TRAPS
) -> dict[str, list[str]]:
    """{trap kind: [account ids]} of the book these arguments generate (healthy accounts; for tests and demos)."""
    return _carriers(accounts, seed, as_of, defects, pm, traps)[1]


def _carriers(accounts, seed, as_of, defects, pm, traps):
    recipes, trapped = _recipes(pm)
    out: dict[str, list[str]] = {r.kind: [] for r in recipes}
    got: dict[str, list[str]] = {r.kind: [] for r in trapped}
    for acc_id, defect, trap, _ in _iter(accounts, seed, as_of, defects, recipes + trapped, None, traps):
        if defect:
            out[defect.kind].append(acc_id)
        elif trap:
            got[trap.kind].append(acc_id)
    return out, got


__all__ = [
    "generate_to_dir",
    "generate_to_store",
    "defect_accounts",
    "defect_recipes",
    "defect_kinds",
    "trap_accounts",
    "trap_kinds",
    "trap_recipes",
    "iter_book",
    "DEFAULT_DEFECTS",
    "DEFAULT_TRAPS",
]
