"""Import data files into the store: validate everything, write in one transaction, report."""

from __future__ import annotations

import csv
import gc
import operator
import os
import sqlite3
import stat
import time
from itertools import chain
from pathlib import Path

from kamrules.contract import load_order
from kamrules.errors import InputError, Problem
from kamrules.import_report import (  # noqa: F401 (re-exported)
    ImportRefused,
    ImportReport,
    Problems,
    Rejects,
    TableCounts,
)
from kamrules.import_workers import run_with_worker, use_workers
from kamrules.migrations import quote
from kamrules.readers import (
    FORMATS,
    FileProblem,
    check_span,
    detect_encoding,
    open_reader,
    split_name,
    unclosed_quote,
)
from kamrules.validate import MAX_COLUMNS, Bad, make_plan, show

BATCH = 2000
MANY_ROWS = 64  # rows per INSERT statement: a third less time than one statement per row
IMPORT_CACHE_KIB = 256 * 1024  # page cache during an import (the default is 2 MiB)
MAX_PARAMS = 32766  # SQLite's limit on ? per statement (3.32+)
DUPLICATE = "kamrules: duplicate key in this import"
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1  # SQLite's INTEGER


def resolve_files(paths, tables: dict, table: str | None, problems: Problems) -> list[tuple[Path, str, str]]:
    """(path, table, format) for every input file, in dependency order (accounts first)."""
    paths = [Path(p) for p in paths]
    if table is not None and (len(paths) != 1 or paths[0].is_dir()):
        raise InputError("--table NAME needs exactly one file (not a folder, not several files)")
    if table is not None and table not in tables:
        raise InputError(f"--table {table}: no such table (expected one of: {', '.join(tables)})")
    found: list[tuple[Path, str, str]] = []
    for path in paths:
        if path.is_dir():
            entries = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS and not p.name.startswith("."))
            if not entries:
                problems.add(Problem(str(path), None, f"no data files in this folder (expected files such as accounts.csv, orders.jsonl: {', '.join(FORMATS)})"), True)
            candidates = entries
        elif path.exists() or path.is_symlink():
            candidates = [path]
        else:
            problems.add(Problem(str(path), None, "no such file or folder"), True)
            continue
        for p in candidates:
            why = unreadable(p)
            if why:
                problems.add(Problem(str(p), None, why), True)
                continue
            name, fmt = split_name(p)
            if fmt is None:
                problems.add(Problem(str(p), None, f"unknown file type {p.suffix or '(none)'!r} (expected one of: {', '.join(FORMATS)})"), True)
                continue
            name = table or name
            if name not in tables:
                lowered = name.lower()
                if lowered in tables:
                    name = lowered
                else:
                    problems.add(Problem(str(p), None, f"no table named {name!r} (expected a file named after a table: {', '.join(tables)}; or use --table NAME)"), True)
                    continue
            found.append((p, name, fmt))
    order = {name: i for i, name in enumerate(load_order(tables))}
    return sorted(found, key=lambda f: order[f[1]])


def unreadable(path: Path) -> str | None:
    """Why a data-named entry cannot be imported (a folder, a dangling link, no permission ...), or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a symbolic link to a file that does not exist (expected a readable data file)" if path.is_symlink() else "no such file"
    except OSError as e:
        return f"cannot be read: {e.strerror or e} (expected a readable data file)"
    if stat.S_ISDIR(mode):
        return "a folder named like a data file (expected a readable data file)"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, socket or device; expected a readable data file)"
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        return f"cannot be read: {e.strerror or e} (expected a readable data file)"
    return None


class _Importer:
    def __init__(self, store, skip_invalid, progress, total_bytes):
        self.store = store
        self.conn = store.conn
        self.tables = store.tables
        self.skip = skip_invalid is not None
        self.rejects = Rejects(skip_invalid) if skip_invalid is not None else None
        self.problems = Problems()
        self.report = ImportReport()
        self.thresholds: dict[str, int] = {}
        self.written: dict[str, int] = {}
        self.progress = progress
        self.total_bytes = total_bytes
        self.done_bytes = 0
        self._sets: dict[tuple[str, str], set] = {}
        self._cols: dict[str, set] = {}  # table -> its column names, lower case (with those added so far)
        self.deferred: dict[str, list[str]] = {}  # table -> CREATE INDEX statements to run after its load

    def defer_indexes(self, name: str) -> None:
        """Drop the plain (non-unique) indexes of a table that is empty before the import, to
        rebuild them once after the load: one sort instead of a B-tree insert per row and index.
        Inside the import transaction, so a refused import gets them back with the ROLLBACK."""
        conn = self.conn
        for _, index, unique, origin, _ in conn.execute(f"PRAGMA index_list({quote(name)})").fetchall():
            if unique or origin != "c":
                continue
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)).fetchone()[0]
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
            inserted = self.conn.execute(f"SELECT count(*) FROM {quote(name)} WHERE rowid > ?", (threshold,)).fetchone()[0]
            changed = self.conn.execute("SELECT n FROM temp.kamrules_changed WHERE t = ?", (name,)).fetchone()[0]
            counts = self.report.tables[name]
            counts.inserted = inserted
            counts.updated = changed
            counts.unchanged = self.written[name] - inserted - changed

    # -- per file ----------------------------------------------------------
    def import_file(self, path: Path, table: str, fmt: str, encoding: str) -> None:
        tdef = self.tables[table]
        self.start_table(table)
        reader = open_reader(path, fmt, encoding)
        file_name = str(path)
        count = 0
        try:
            if reader.header is not None:
                plan = self.plan_for(tdef, path, reader.header, per_row=False)
                if plan.problems:
                    for col, msg in plan.problems:
                        self.problems.add(Problem(file_name, 1, msg, col), True)
                    return
                count = self.load_rows(plan, file_name, None, reader, csv_reader=reader)
            else:
                count = self.load_json(tdef, path, reader)
        finally:
            reader.close()
            self.file_done({"path": file_name, "table": table, "format": fmt, "encoding": encoding, "rows": count}, path.stat().st_size)

    def file_done(self, entry: dict, size: int) -> None:
        self.report.files.append(entry)
        self.done_bytes += size
        self.tick(None)

    def load_json(self, tdef, path, reader) -> int:
        """JSON objects may differ in keys: consecutive objects with the same keys share one plan."""
        plans: dict = {}
        count = 0
        group: list = []
        plan = None
        for line, keys, values in reader:
            if plan is None or keys != plan_keys:  # noqa: F821
                if group:
                    count += self.load_rows(plan, str(path), iter(group), reader)
                    group = []
                plan = plans.get(keys)
                if plan is None:
                    plan = plans[keys] = self.plan_for(tdef, path, list(keys), per_row=True)
                    for col, msg in plan.problems:
                        self.problems.add(Problem(str(path), line, msg, col), True)
                    if plan.problems:
                        return count
                plan_keys = keys  # noqa: F841
            group.append((line, None, values))
            if len(group) >= BATCH:
                count += self.load_rows(plan, str(path), iter(group), reader)
                group = []
        if group:
            count += self.load_rows(plan, str(path), iter(group), reader)
        return count

    def load_rows(self, plan, file_name, rows, reader, csv_reader=None) -> int:
        """Validate and write rows (line, _, values) under one plan; returns the number of rows seen.

        With ``csv_reader`` (a CsvReader) its csv rows are read directly (no generator per row).
        """
        convs, width, positions = plan.convs, plan.width, plan.positions
        identity = positions == list(range(width))
        extra_checks = bool(plan.ignored or plan.absent_required)
        slow = self.slow_row
        if csv_reader is not None:
            source, prev = csv_reader.reader, csv_reader.line
        else:
            source = rows
        if csv_reader is not None and identity and not extra_checks:
            return self._load_csv(plan, file_name, source, reader, prev, slow)
        return self._load(plan, file_name, source, reader, csv_reader is not None, prev if csv_reader is not None else 0, convs, width, positions, identity, extra_checks, slow)

    def _load_csv(self, plan, file_name, source, reader, prev, slow) -> int:
        """The common case of :meth:`_load`: CSV rows whose header maps one to one onto the insert."""
        batch, lines = [], []
        add, add_line = batch.append, lines.append
        count = 0
        convert, width = plan.convert, plan.width
        try:
            for values in source:
                line = prev + 1
                prev = source.line_num
                if prev != line:  # a record over line breaks: a quote that swallowed rows?
                    check_span(file_name, line, prev, values, source.dialect.delimiter)
                if len(values) == width:
                    try:
                        convert(values)
                    except Bad:
                        values = slow(plan, file_name, line, values, 0)
                        if values is None:
                            count += 1
                            continue
                elif not values:
                    continue
                else:
                    values = slow(plan, file_name, line, values, 0)
                    if values is None:
                        count += 1
                        continue
                count += 1
                add(values)
                add_line(line)
                if len(batch) >= BATCH:
                    self.flush(plan, batch, lines, file_name)
                    batch, lines = [], []
                    add, add_line = batch.append, lines.append
                    self.tick(reader)
        except csv.Error as e:  # in the record after the last one read: where the quote opened
            raise unclosed_quote(file_name, prev + 1, e) from None
        if batch:
            self.flush(plan, batch, lines, file_name)
        return count

    def _load(self, plan, file_name, source, reader, is_csv, prev, convs, width, positions, identity, extra_checks, slow) -> int:
        batch, lines = [], []
        count = 0
        convert = plan.convert
        try:
            for item in source:
                if is_csv:
                    line = prev + 1
                    prev = source.line_num
                    values = item
                    if prev != line:
                        check_span(file_name, line, prev, values, source.dialect.delimiter)
                    if not values:
                        continue
                else:
                    line, _, values = item
                count += 1
                if len(values) != width:
                    out = slow(plan, file_name, line, values, 0)
                else:
                    try:
                        convert(values)
                        out = values if identity else [values[p] for p in positions]
                        if extra_checks:
                            out = slow(plan, file_name, line, values, width)
                    except Bad:
                        out = slow(plan, file_name, line, values, 0)
                if out is None:
                    continue
                batch.append(out)
                lines.append(line)
                if len(batch) >= BATCH:
                    self.flush(plan, batch, lines, file_name)
                    batch, lines = [], []
                    self.tick(reader)
        except csv.Error as e:  # in the record after the last one read: where the quote opened
            raise unclosed_quote(file_name, prev + 1, e) from None
        if batch:
            self.flush(plan, batch, lines, file_name)
        return count

    def tick(self, reader) -> None:
        if self.progress is not None:
            pos = reader.position() if reader is not None else 0
            self.progress(min(self.done_bytes + pos, self.total_bytes), self.total_bytes)

    def plan_for(self, tdef, path, header, per_row):
        from kamrules.plugins import PluginFailed, call_hook

        renames = {}
        for plugin, mapping in call_hook(self.store.pm, "rename_columns", table=tdef.name, columns=list(header), path=str(path)):
            if not isinstance(mapping, dict) or not all(type(k) is str and type(v) is str for k, v in mapping.items()):
                raise PluginFailed(f"plugin {plugin}: rename_columns returned {mapping!r} for {path} (expected a dict of column names or None)")
            renames.update(mapping)
        plan = make_plan(tdef, header, renames, per_row_required=per_row, id_set=self.id_set)
        if not plan.problems and plan.extra:
            have = self.known_columns(tdef.name)
            new = [n for n in plan.extra if n.lower() not in have]
            if len(have) + len(new) > MAX_COLUMNS:
                plan.problems.append((None, f"{len(new)} new columns would give table {tdef.name} {len(have) + len(new)} columns (expected at most {MAX_COLUMNS} in all)"))
            elif new:
                have.update(n.lower() for n in new)
                self.add_columns(tdef.name, new)
        return plan

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
            self.rejects.write(file_name, line, table, [f"{p.column}: {p.message}" if p.column else p.message for p in found], record)

    def slow_row(self, plan, file_name, line, values, done):
        """Check one row column by column, collecting every problem; the row to insert, or None if refused.

        Values at header positions below ``done`` are already converted.
        """
        found: list[Problem] = []
        width = plan.width
        if len(values) != width:
            if len(values) > width and not any(str(v).strip() for v in values[width:]):
                values = values[:width]
            else:
                found.append(Problem(file_name, line, f"has {len(values)} values but the header has {width} columns (expected one value per column)"))
                self.reject(plan, file_name, line, values, found)
                return None
        for i in plan.ignored:
            if values[i].strip():
                found.append(Problem(file_name, line, f"value {show(values[i])} in a column without a name (expected a column name in the header)", f"column {i + 1}"))
        for name in plan.absent_required:
            found.append(Problem(file_name, line, "missing value (expected a value: the column is required)", name))
        vals = list(values)
        for pos, conv in plan.convs:
            if pos < done or not isinstance(values[pos], str):  # converted already
                continue
            try:
                vals[pos] = conv(values[pos])
            except Bad as e:
                found.append(Problem(file_name, line, str(e), plan.columns[pos]))
                vals[pos] = None
        out = [vals[p] for p in plan.positions]
        if found:
            self.reject(plan, file_name, line, values, found)
            return None
        return out

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
        name = plan.table.name
        for (table, col), ids in self._sets.items():
            if table == name and col in plan.insert_columns:
                pos = plan.insert_columns.index(col)
                ids.update(r[pos] for r in rows)

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
        except (sqlite3.IntegrityError, OverflowError, UnicodeEncodeError):  # an integer beyond 64 bits; a lone surrogate
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
                if not plan.upserting and isinstance(e, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(e):
                    plan.upserting = True  # the key exists: from here on, update it
                    start = bad
                    continue
                out = rows[bad]
                self.reject(plan, file_name, lines[bad], out, [self.diagnose(plan, file_name, lines[bad], out, e)], converted=True)
                start = bad + 1

    def diagnose(self, plan, file_name, line, out, error) -> Problem:
        if isinstance(error, OverflowError):
            for column, value in zip(plan.insert_columns, out):
                if type(value) is int and not INT_MIN <= value <= INT_MAX:
                    return Problem(file_name, line, f"{show(str(value))} is out of range (expected a whole number from {INT_MIN} to {INT_MAX})", column)
        if isinstance(error, UnicodeEncodeError):  # JSON's "\ud800" escapes give text SQLite cannot store
            for column, value in zip(plan.insert_columns, out):
                if type(value) is str and any("\ud800" <= c <= "\udfff" for c in value):
                    return Problem(file_name, line, f"{show(value.encode('utf-8', 'backslashreplace').decode())} holds a lone "
                                   "surrogate (expected Unicode text: \\uD800-\\uDFFF escapes only in pairs)", column)
        msg = str(error)
        if DUPLICATE in msg:
            keys = plan.table.primary_key
            value = ", ".join(str(out[plan.insert_columns.index(k)]) for k in keys)
            return Problem(file_name, line, f"duplicate {'key' if len(keys) > 1 else 'id'} {show(value)} (already given earlier in this import; expected each once)", ", ".join(keys))
        return Problem(file_name, line, f"refused by the store: {msg}")


def reject_record(plan, values, converted: bool) -> dict:
    """A refused row as {column: value} for the --skip-invalid file."""
    if converted:
        header = plan.insert_columns
        values = [None if v == "" and c in plan.converted else v for c, v in zip(header, values)]  # '' = NULL
    else:
        header = [c if c is not None else f"column{i + 1}" for i, c in enumerate(plan.columns)]
    record = dict(zip(header, values))
    if len(values) > len(header):
        record["(extra values)"] = values[len(header):]
    return record


def import_paths(store, paths, table=None, encoding=None, skip_invalid=None, progress=None, parallel=None) -> ImportReport:
    """Validate and load ``paths`` (files or folders) into ``store``: all or nothing.

    Every problem is collected; if there is any (and ``skip_invalid`` is None) the
    transaction is rolled back and :class:`ImportRefused` (an InputError, exit 2)
    lists them as ``FILE:LINE: COLUMN: message``. With ``skip_invalid=PATH`` the
    valid rows are committed and each refused row goes to that CSV file. Problems
    with a whole file (undecodable, binary, empty, missing columns) always refuse.
    ``progress(done_bytes, total_bytes)`` is called as the import advances.
    ``parallel``: read and validate in a forked worker process while this one writes (True,
    False, or None: by size and $KAMRULES_IMPORT_WORKERS; see :mod:`kamrules.import_workers`).
    """
    started = time.perf_counter()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    tables = store.tables
    problems = Problems()
    files = resolve_files(paths, tables, table, problems)
    total_bytes = sum(p.stat().st_size for p, _, _ in files)
    # The worker checks each file's encoding just before reading it (see import_workers)
    workers = not problems.total and use_workers(tables, files, total_bytes, parallel)
    encodings = {}
    for path, _, _ in [] if workers else files:
        try:
            encodings[path] = detect_encoding(path, encoding)
        except FileProblem as e:
            problems.add(e.problem, True)
    if problems.total:
        raise ImportRefused(f"import refused: {problems.total} problem(s); the store was not changed", problems.kept, problems.total)
    imp = _Importer(store, skip_invalid, progress, total_bytes)
    imp.problems = problems
    conn = store.conn
    # References are checked row by row against sets of known ids (faster than SQLite's
    # per-row foreign key lookups, and they name the column); the keys go back on after.
    conn.execute("PRAGMA foreign_keys = OFF")
    # A larger page cache for the load: fewer B-tree pages re-read, index sorts kept in memory.
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")
        raise InputError(f"{store.path}: cannot write to the store: {e}") from e
    ok = False
    # The import makes no reference cycles: the cyclic collector would only rescan the rows
    # in flight (about 3% of the import in py-spy). Restored below.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if workers:
            run_with_worker(imp, files, encoding)
        else:
            for path, name, fmt in files:
                try:
                    imp.import_file(path, name, fmt, encodings[path])
                except FileProblem as e:
                    problems.add(e.problem, True)
        if problems.fatal or (problems.total and not imp.skip):
            rank = {str(path): i for i, (path, _, _) in enumerate(files)}
            problems.kept.sort(key=lambda p: (rank.get(p.file, -1), p.line or 0))
            raise ImportRefused(
                f"import refused: {problems.total} problem(s); the store was not changed",
                problems.kept,
                problems.total,
            )
        imp.build_indexes()
        imp.finish_counts()
        conn.execute("COMMIT")
        ok = True
    except sqlite3.Error as e:
        raise InputError(f"{store.path}: the store refused the import: {e}; the store was not changed") from e
    finally:
        if collecting:
            gc.enable()
        if not ok and conn.in_transaction:
            conn.execute("ROLLBACK")
        imp.drop_triggers()
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")
        if imp.rejects is not None:
            imp.rejects.finish(keep=ok)
    imp.report.seconds = time.perf_counter() - started
    if imp.rejects is not None:
        imp.report.rejects_path = str(imp.rejects.path)
    return imp.report
