"""The account store: a SQLite file holding the data contract's tables (open, init, migrate, import, query)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kamrules.contract import Table
from kamrules.errors import InputError, PluginError

if TYPE_CHECKING:
    import sqlite_utils
from kamrules.migrations import create_table, migrate, quote


def collect_tables(pm) -> dict[str, Table]:
    """Tables from every plugin's ``register_tables`` (a name declared twice is a PluginError)."""
    from kamrules.plugins import call_hook

    tables: dict[str, Table] = {}
    for _, result in call_hook(pm, "register_tables"):  # a plugin that fails: PluginFailed (exit 3)
        for table in result:
            if not isinstance(table, Table):
                raise PluginError(f"register_tables returned {table!r} (expected kamrules.contract.Table)")
            if table.name in tables:
                raise PluginError(f"table {table.name!r} is declared by more than one plugin")
            tables[table.name] = table
    return tables


class Store:
    """An open account store. Use :meth:`Store.open`; close it (or use ``with``)."""

    def __init__(self, path: str | os.PathLike, conn: sqlite3.Connection, pm):
        self.path = str(path)
        self.conn = conn
        self.pm = pm
        self._db: sqlite_utils.Database | None = None
        self._tables: dict[str, Table] | None = None

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, pm=None, migrations=None, adopt: bool = False) -> Store:
        """Open (creating if missing) the store at ``path`` and bring its schema up to date.

        A SQLite file that is not a kamrules store (see :func:`foreign_reason`) is refused
        (InputError, exit 2) and left untouched, unless ``adopt`` (``kamrules init --force``):
        then the kamrules tables are added to it.
        """
        if pm is None:
            from kamrules.plugins import default_plugin_manager

            pm = default_plugin_manager()
        path = Path(path)
        if path.exists():
            _check_sqlite_file(path)
        elif path.parent and not path.parent.exists():
            raise InputError(f"{path}: folder {path.parent} does not exist")
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise InputError(f"{path}: cannot open the store: {e}") from e
        try:
            reason = foreign_reason(conn)
            if reason and not adopt:
                raise InputError(
                    f"{path}: not a kamrules store ({reason}); refusing to change it. Pass your store with --db PATH, "
                    f"or run `kamrules init --force --db {path}` to add the kamrules tables to this database"
                )
            mark_as_store(conn)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise InputError(f"{path}: not a usable kamrules store: {e}") from e
        except BaseException:
            conn.close()
            raise
        conn.execute("PRAGMA foreign_keys = ON")
        store = cls(path, conn, pm)
        try:
            store.init(migrations=migrations)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise InputError(f"{path}: not a usable kamrules store: {e}") from e
        except BaseException:
            conn.close()
            raise
        return store

    def init(self, migrations=None) -> list[int]:
        """Idempotent: apply pending migrations and create any registered table still missing."""
        applied = migrate(self, migrations)
        self.ensure_tables()
        return applied

    def ensure_tables(self) -> list[str]:
        """Create registered tables (e.g. from a newly installed plugin) and columns the store lacks."""
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        todo = []
        for name, table in self.tables.items():
            if name not in have:
                todo.append(name)
                continue
            cols = {r[1] for r in self.conn.execute(f"PRAGMA table_info({quote(name)})")}
            if any(c.name not in cols for c in table.columns):
                todo.append(name)
        if todo:
            from kamrules.contract import load_order

            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for name in load_order({n: self.tables[n] for n in todo}):
                    create_table(self.conn, self.tables[name], self.tables)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        return todo

    # -- properties --------------------------------------------------------
    @property
    def tables(self) -> dict[str, Table]:
        """{name: contract.Table} merged from the ``register_tables`` hook of all plugins."""
        if self._tables is None:
            self._tables = collect_tables(self.pm)
        return self._tables

    @property
    def db(self):
        """A :class:`sqlite_utils.Database` on the same connection."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    # -- queries -----------------------------------------------------------
    def table_exists(self, table: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
            is not None
        )

    def count(self, table: str) -> int:
        """Rows in ``table`` (0 if the table does not exist)."""
        if not self.table_exists(table):
            return 0
        return self.conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]

    def has_rows(self, table: str) -> bool:
        if not self.table_exists(table):
            return False
        return self.conn.execute(f"SELECT 1 FROM {quote(table)} LIMIT 1").fetchone() is not None

    def query(self, sql: str, params: dict | Iterable | None = None) -> Iterator[dict[str, Any]]:
        """Rows of ``sql`` as dicts (named ``:params`` from a dict, or ``?`` from a sequence)."""
        cursor = self.conn.execute(sql, params if params is not None else ())
        names = [d[0] for d in cursor.description or ()]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def columns(self, table: str) -> list[str]:
        """Column names of ``table`` as stored (contract columns plus any kept extra columns)."""
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({quote(table)})")]

    # -- import ------------------------------------------------------------
    def import_paths(
        self,
        paths,
        table: str | None = None,
        encoding: str | None = None,
        skip_invalid=None,
        progress=None,
        mapping=None,
    ):
        """Validate and load data files / folders in one transaction; see :mod:`kamrules.importer`
        (``mapping``: a mapping file for CRM exports, :mod:`kamrules.mapping`)."""
        from kamrules.importer import import_paths

        return import_paths(
            self, paths, table=table, encoding=encoding, skip_invalid=skip_invalid, progress=progress, mapping=mapping
        )

    # -- closing -----------------------------------------------------------
    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.path}>"


# ``PRAGMA application_id`` of a kamrules store ("KAMR"): set when a store is created (or
# adopted, or an older store opened), so that other applications' databases are told apart.
APPLICATION_ID = 0x4B414D52


def foreign_reason(conn) -> str | None:
    """Why the database on ``conn`` is not a kamrules store, or None when it is one (or is new and empty).

    A store is marked by its application id; a store from before the id is recognised by its
    schema version (``PRAGMA user_version`` above 0, see :mod:`kamrules.migrations`) and an
    ``accounts`` table. A database with no tables and no version is new: fine to create in.
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return None
    if app_id:
        return f"it belongs to another application (application id {app_id:#x})"
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite^_%' ESCAPE '^' ORDER BY name"
        )
    ]
    if not names and not version:
        return None
    if version and "accounts" in names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if not names:
        return f"a SQLite database with schema version {version} but none of the kamrules tables"
    return f"a SQLite database with other tables: {shown}; no kamrules schema version"


def mark_as_store(conn) -> None:
    """Record the kamrules application id (best effort: a read-only or busy store stays as it is)."""
    if conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
        return
    try:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    except sqlite3.OperationalError:
        pass


def _check_sqlite_file(path: Path) -> None:
    import stat

    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a store file (expected a SQLite file, e.g. kamrules.db)")
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or be destroyed
        raise InputError(f"{path}: is not a plain file (expected a SQLite file, e.g. kamrules.db)")
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        raise InputError(f"{path}: not a SQLite database (expected a kamrules store created by `kamrules init`)")
