"""The import's writing side: events from the reader (kamrules.import_read) into the store's tables."""

from __future__ import annotations

import operator
import sqlite3
from itertools import chain

from kamrules.errors import Problem
from kamrules.import_read import (
    Batch,
    Columns,
    FileDone,
    Finished,
    ProblemFound,
    Progress,
    Reject,
    TableStart,
    Undecodable,
    reject_record,
    remember_ids,
)
from kamrules.import_report import ImportRefused, ImportReport, Problems, TableCounts
from kamrules.migrations import quote
from kamrules.validate import show

MANY_ROWS = 64  # rows per INSERT statement: a third less time than one statement per row
MAX_PARAMS = 32766  # SQLite's limit on ? per statement (3.32+)
DUPLICATE = "kamrules: duplicate key in this import"
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1  # SQLite's INTEGER


class Writer:
    """Writes what the reader found into the store (inside the caller's transaction): tables started,
    columns added, batches flushed, deferred indexes rebuilt, rows counted, refused rows kept.

    ``rejects``: the --skip-invalid file (a :class:`~kamrules.import_report.Rejects`) or None.
    """

    def __init__(self, store, rejects, problems: Problems, progress, total_bytes):
        self.store = store
        self.conn = store.conn
        self.tables = store.tables
        self.rejects = rejects
        self.problems = problems
        self.report = ImportReport()
        self.thresholds: dict[str, int] = {}
        self.written: dict[str, int] = {}
        self.progress = progress
        self.total_bytes = total_bytes
        self.done_bytes = 0
        self._sets: dict[tuple[str, str], set] = {}
        self._cols: dict[str, set] = {}  # table -> its column names, lower case (with those added so far)
        self.deferred: dict[str, list[str]] = {}  # table -> CREATE INDEX statements to run after its load
        self.handlers = {
            Batch: self.write_batch,
            Progress: self.on_progress,
            Reject: self.on_reject,
            ProblemFound: self.on_problem,
            TableStart: lambda e: self.start_table(e.table),
            Columns: lambda e: self.add_columns(e.table, e.names),
            FileDone: self.file_done,
            Finished: lambda e: None,
            Undecodable: self.on_undecodable,
        }

    def handle(self, event) -> None:
        """Apply one event from the reader."""
        self.handlers[type(event)](event)

    def write_batch(self, e: Batch) -> None:
        self.flush(e.plan, e.rows, e.lines, e.file, e.flat)

    def on_progress(self, e: Progress) -> None:
        if self.progress is not None:
            self.progress(min(self.done_bytes + e.position, self.total_bytes), self.total_bytes)

    def on_reject(self, e: Reject) -> None:
        self.rejected(e.table, e.file, e.line, e.problems, e.record)

    def on_problem(self, e: ProblemFound) -> None:
        self.problems.add(e.problem, e.fatal)

    def on_undecodable(self, e: Undecodable) -> None:
        """As when the encodings are checked before the import: refused with these problems alone."""
        refused = Problems()
        for problem in e.problems:
            refused.add(problem, True)
        raise ImportRefused(
            f"import refused: {refused.total} problem(s); the store was not changed", refused.kept, refused.total
        )

    def file_done(self, e: FileDone) -> None:
        self.report.files.append(e.entry)
        self.done_bytes += e.size
        if self.progress is not None:
            self.progress(min(self.done_bytes, self.total_bytes), self.total_bytes)

    def defer_indexes(self, name: str) -> None:
        """Drop the plain (non-unique) indexes of a table that is empty before the import, to
        rebuild them once after the load: one sort instead of a B-tree insert per row and index.
        Inside the import transaction, so a refused import gets them back with the ROLLBACK."""
        conn = self.conn
        for _, index, unique, origin, _ in conn.execute(f"PRAGMA index_list({quote(name)})").fetchall():
            if unique or origin != "c":
                continue
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)).fetchone()[
                0
            ]
            if sql:
                conn.execute(f"DROP INDEX {quote(index)}")
                self.deferred.setdefault(name, []).append(sql)

    def build_indexes(self) -> None:
        """Rebuild the deferred indexes (of the tables loaded so far: a table's files come one after another)."""
        for statements in self.deferred.values():
            for sql in statements:
                self.conn.execute(sql)
        self.deferred = {}

    # -- per table ---------------------------------------------------------
    def start_table(self, name: str) -> None:
        if name in self.thresholds:
            return
        self.build_indexes()  # the tables before this one are complete: index them while the load goes on
        self.report.tables.setdefault(name, TableCounts())
        self.thresholds[name] = self.conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {quote(name)}").fetchone()[0]
        self.written[name] = 0
        if not self.thresholds[name] and not self.store.has_rows(name):
            self.defer_indexes(name)
        # A key written twice in one import is a duplicate, not an update: rows inserted by this
        # import have rowid above the threshold; older rows it updated are listed in a temp table.
        t = quote("kamrules_touched_" + name)
        self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {t} (r INTEGER PRIMARY KEY)")
        self.conn.execute(
            f"CREATE TEMP TRIGGER IF NOT EXISTS {quote('kamrules_dup_' + name)} BEFORE UPDATE ON {quote(name)} "
            f"WHEN old.rowid > {int(self.thresholds[name])} OR old.rowid IN (SELECT r FROM temp.{t}) "
            f"BEGIN SELECT RAISE(ABORT, '{DUPLICATE}'); END"
        )
        self.conn.execute(
            f"CREATE TEMP TRIGGER IF NOT EXISTS {quote('kamrules_upd_' + name)} AFTER UPDATE ON {quote(name)} "
            f"BEGIN INSERT OR IGNORE INTO {t} (r) VALUES (old.rowid); END"
        )
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS kamrules_changed (t TEXT PRIMARY KEY, n INTEGER)")
        self.conn.execute("INSERT OR IGNORE INTO temp.kamrules_changed VALUES (?, 0)", (name,))
        self.change_trigger(name)

    def change_trigger(self, name: str) -> None:
        """Count the updates that change a stored row (an upsert of an identical row is 'unchanged'):
        a trigger comparing the row before and after, over all its columns (made again after
        extra columns are added). Only updates run it: a first import pays nothing."""
        columns = self.store.columns(name)
        old = ", ".join(f"old.{quote(c)}" for c in columns)
        new = ", ".join(f"new.{quote(c)}" for c in columns)
        literal = "'" + name.replace("'", "''") + "'"
        trigger = quote("kamrules_chg_" + name)
        self.conn.execute(f"DROP TRIGGER IF EXISTS temp.{trigger}")
        self.conn.execute(
            f"CREATE TEMP TRIGGER {trigger} AFTER UPDATE ON {quote(name)} WHEN ({old}) IS NOT ({new}) "
            f"BEGIN UPDATE kamrules_changed SET n = n + 1 WHERE t = {literal}; END"
        )

    def drop_triggers(self) -> None:
        for name in self.thresholds:
            self.conn.execute(f"DROP TRIGGER IF EXISTS temp.{quote('kamrules_dup_' + name)}")
            self.conn.execute(f"DROP TRIGGER IF EXISTS temp.{quote('kamrules_upd_' + name)}")
            self.conn.execute(f"DROP TABLE IF EXISTS temp.{quote('kamrules_touched_' + name)}")
            self.conn.execute(f"DROP TRIGGER IF EXISTS temp.{quote('kamrules_chg_' + name)}")
        self.conn.execute("DROP TABLE IF EXISTS temp.kamrules_changed")

    def finish_counts(self) -> None:
        for name, threshold in self.thresholds.items():
            inserted = self.conn.execute(
                f"SELECT count(*) FROM {quote(name)} WHERE rowid > ?", (threshold,)
            ).fetchone()[0]
            changed = self.conn.execute("SELECT n FROM temp.kamrules_changed WHERE t = ?", (name,)).fetchone()[0]
            counts = self.report.tables[name]
            counts.inserted = inserted
            counts.updated = changed
            counts.unchanged = self.written[name] - inserted - changed

    # -- per file ----------------------------------------------------------
    def known_columns(self, table: str) -> set:
        """The table's column names in lower case (SQLite's are case-insensitive), with those this import added."""
        if table not in self._cols:
            self._cols[table] = {c.lower() for c in self.store.columns(table)}
        return self._cols[table]

    def add_columns(self, table: str, names: list[str]) -> None:
        """Unknown columns of an input file are kept: added to the table as TEXT."""
        have = set(self.store.columns(table))
        for name in names:
            if name not in have:
                self.conn.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} TEXT")
        if table in self.thresholds:
            self.change_trigger(table)

    def reject(self, plan, file_name, line, values, found: list[Problem], converted: bool = False) -> None:
        record = reject_record(plan, values, converted) if self.rejects is not None else None
        self.rejected(plan.table.name, file_name, line, found, record)

    def rejected(self, table: str, file_name: str, line: int, found: list[Problem], record) -> None:
        """Count a refused row, keep its problems, write it to the --skip-invalid file."""
        for p in found:
            self.problems.add(p)
        self.report.tables[table].rejected += 1
        if self.rejects is not None:
            self.rejects.write(
                file_name, line, table, [f"{p.column}: {p.message}" if p.column else p.message for p in found], record
            )

    def id_set(self, table, col) -> set:
        """Known values of ``table.col`` (the store, including rows written by this import so far)."""
        key = (table, col)
        if key not in self._sets:
            if table not in self.tables:
                self._sets[key] = set()
            else:
                self._sets[key] = {r[0] for r in self.conn.execute(f"SELECT {quote(col)} FROM {quote(table)}")}
        return self._sets[key]

    def remember(self, plan, rows) -> None:
        """Ids just written become valid references for the files that follow."""
        if self._sets:
            remember_ids(self._sets, plan, rows)

    def insert_many(self, plan, flat: list, n: int) -> int:
        """Insert ``n`` rows given one after another in ``flat``, MANY_ROWS per statement: the rows
        written before the first statement the store refuses (that one is undone as a whole)."""
        width = len(plan.insert_columns)
        per = max(1, min(MANY_ROWS, MAX_PARAMS // max(width, 1)))
        execute, done = self.conn.execute, 0
        try:
            while done < n:
                k = min(per, n - done)
                execute(plan.many_sql(k), flat[done * width : (done + k) * width])
                done += k
        except (
            sqlite3.IntegrityError,
            OverflowError,
            UnicodeEncodeError,
        ):  # an integer beyond 64 bits; a lone surrogate
            pass
        return done

    def flush(self, plan, rows, lines, file_name, flat=None) -> None:
        """Insert a batch; a row the store refuses (a duplicate key) is diagnosed and skipped.

        Many rows per statement (``flat``: the values row after row; None: made from ``rows``);
        from a refused statement on, executemany (row by row, to find the refused row).
        ``rows`` may be None with ``flat`` given. Plain INSERT until the first key conflict in
        the file, then the upsert.
        """
        conn, name, n = self.conn, plan.table.name, len(lines)
        if flat is None:
            flat = list(chain.from_iterable(rows))
        start = self.insert_many(plan, flat, n)
        if start:
            self.written[name] += start
            if self._sets:
                self.remember(plan, rows[:start] if start < n else rows)
        if start == n:
            return
        if rows is None:
            width = len(plan.insert_columns)
            rows = [flat[i * width : (i + 1) * width] for i in range(n)]
        while start < n:
            it = iter(rows[start:]) if start else iter(rows)
            try:
                conn.executemany(plan.sql if plan.upserting else plan.insert_sql, it)
                self.written[name] += n - start
                self.remember(plan, rows[start:] if start else rows)
                return
            except (sqlite3.IntegrityError, OverflowError, UnicodeEncodeError) as e:
                # executemany stops at the failing row: the last one taken from the iterator
                bad = n - operator.length_hint(it) - 1
                self.written[name] += bad - start
                self.remember(plan, rows[start:bad])
                if (
                    not plan.upserting
                    and isinstance(e, sqlite3.IntegrityError)
                    and "UNIQUE constraint failed" in str(e)
                ):
                    plan.upserting = True  # the key exists: from here on, update it
                    start = bad
                    continue
                out = rows[bad]
                self.reject(
                    plan,
                    file_name,
                    lines[bad],
                    out,
                    [self.diagnose(plan, file_name, lines[bad], out, e)],
                    converted=True,
                )
                start = bad + 1

    def diagnose(self, plan, file_name, line, out, error) -> Problem:
        if isinstance(error, OverflowError):
            for column, value in zip(plan.insert_columns, out, strict=True):
                if type(value) is int and not INT_MIN <= value <= INT_MAX:
                    return Problem(
                        file_name,
                        line,
                        f"{show(str(value))} is out of range (expected a whole number from {INT_MIN} to {INT_MAX})",
                        column,
                    )
        if isinstance(error, UnicodeEncodeError):  # JSON's "\ud800" escapes give text SQLite cannot store
            for column, value in zip(plan.insert_columns, out, strict=True):
                if type(value) is str and any("\ud800" <= c <= "\udfff" for c in value):
                    return Problem(
                        file_name,
                        line,
                        f"{show(value.encode('utf-8', 'backslashreplace').decode())} holds a lone "
                        "surrogate (expected Unicode text: \\uD800-\\uDFFF escapes only in pairs)",
                        column,
                    )
        msg = str(error)
        if DUPLICATE in msg:
            keys = plan.table.primary_key
            value = ", ".join(str(out[plan.insert_columns.index(k)]) for k in keys)
            return Problem(
                file_name,
                line,
                f"duplicate {'key' if len(keys) > 1 else 'id'} {show(value)} (already given earlier in this import; expected each once)",
                ", ".join(keys),
            )
        return Problem(file_name, line, f"refused by the store: {msg}")
