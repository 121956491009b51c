"""Schema migrations: ordered steps that bring a store up to the current version.

The store records its version in ``PRAGMA user_version``. ``Store.open`` applies
every step whose number is above that version, in order, each in its own
transaction, and records the new version after each step.

Adding a step (e.g. a module that needs its own tables) is ONE line appended
to ``MIGRATIONS``::

    (2, "kamrules.lifecycle.schema:migrate"),   # "module:function" or a callable

A step is called as ``step(store)`` with an open :class:`kamrules.store.Store`
(use ``store.conn`` for SQL, ``store.db`` for sqlite-utils). It must not commit
or roll back: it runs inside the migration's transaction. Never edit or
renumber a released step; append a new one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from kamrules.contract import Table


def quote(name: str) -> str:
    """A SQL identifier, always quoted (contract names include ``end``, ``by``, ``date``)."""
    return '"' + name.replace('"', '""') + '"'


def _sql_default(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def table_sql(table: Table, tables: dict[str, Table]) -> str:
    """CREATE TABLE for one contract table: types, primary key, enforced foreign keys."""
    parts = []
    for c in table.columns:
        col = f"{quote(c.name)} {c.sql_type}"
        if c.name in table.primary_key or c.required:
            col += " NOT NULL"
        if c.default is not None:
            col += f" DEFAULT {_sql_default(c.default)}"
        parts.append(col)
    parts.append("PRIMARY KEY (" + ", ".join(quote(k) for k in table.primary_key) + ")")
    for c in table.columns:
        target = foreign_key_target(c.references, tables)
        if target:
            parts.append(f"FOREIGN KEY ({quote(c.name)}) REFERENCES {quote(target[0])}({quote(target[1])})")
    return f"CREATE TABLE IF NOT EXISTS {quote(table.name)} (\n  " + ",\n  ".join(parts) + "\n)"


def foreign_key_target(reference: str | None, tables: dict[str, Table]) -> tuple[str, str] | None:
    """(table, column) when ``reference`` can be a SQLite foreign key (target = sole primary key)."""
    if not reference:
        return None
    name, _, col = reference.partition(".")
    target = tables.get(name)
    if target is None or target.primary_key != (col,):
        return None
    return name, col


def index_columns(table: Table) -> list[tuple[str, ...]]:
    """The contract's indexes plus one per reference column (lookups by account etc.)."""
    wanted = list(table.indexes)
    for c in table.columns:
        if c.references and not any(ix[0] == c.name for ix in wanted) and table.primary_key[0] != c.name:
            wanted.append((c.name,))
    return wanted


def create_table(conn, table: Table, tables: dict[str, Table]) -> None:
    """Create ``table`` and its indexes if missing; add contract columns an older store lacks."""
    conn.execute(table_sql(table, tables))
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({quote(table.name)})")}
    for c in table.columns:
        if c.name not in have:
            default = f" DEFAULT {_sql_default(c.default)}" if c.default is not None else ""
            conn.execute(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(c.name)} {c.sql_type}{default}")
    for cols in index_columns(table):
        name = "idx_" + table.name + "_" + "_".join(cols)
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table.name)} ("
            + ", ".join(quote(c) for c in cols)
            + ")"
        )


def create_core_schema(store) -> None:
    """Step 1: one table per registered contract table (core + plugin tables)."""
    from kamrules.contract import load_order

    for name in load_order(store.tables):
        create_table(store.conn, store.tables[name], store.tables)


Step = Callable | str

# (version, step). Append only; see the module docstring.
MIGRATIONS: list[tuple[int, Step]] = [
    (1, create_core_schema),
    (2, "kamrules.lifecycle.schema:migrate"),  # alert history, silences, outbox (issue 4)
    (3, "kamrules.runs:migrate"),  # runs, health_scores, alert_events.run_id (issue 16)
    (4, "kamrules.lifecycle.schema:migrate_rejected"),  # outbox status 'rejected' (issue 11)
]


def resolve(step: Step) -> Callable:
    """A step given as ``"module:function"`` is imported only when it runs (no import cycles)."""
    if callable(step):
        return step
    module, _, func = step.partition(":")
    return getattr(importlib.import_module(module), func)


def latest_version(migrations=None) -> int:
    migrations = MIGRATIONS if migrations is None else migrations
    return max((v for v, _ in migrations), default=0)


def migrate(store, migrations=None) -> list[int]:
    """Apply pending steps in order; returns the versions applied. Raises InputError on a newer store."""
    from kamrules.errors import InputError

    migrations = MIGRATIONS if migrations is None else migrations
    current = store.schema_version
    newest = latest_version(migrations)
    if current > newest:
        raise InputError(
            f"{store.path}: store schema version {current} is newer than this kamrules supports ({newest}); upgrade kamrules"
        )
    applied = []
    for version, step in sorted(migrations, key=lambda m: m[0]):
        if version <= current:
            continue
        conn = store.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            resolve(step)(store)
            conn.execute(f"PRAGMA user_version = {int(version)}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(version)
        current = version
    return applied
