"""The import's reading side: read and validate data files into a stream of typed events (no store writes)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from kamrules.errors import Problem
from kamrules.readers import FileProblem, check_span, open_reader, unclosed_quote
from kamrules.validate import MAX_COLUMNS, MISSING, Bad, make_plan, show

BATCH = 2000


# -- the events: what the reader tells the writer (kamrules.import_write), in order ----------
@dataclass(slots=True)
class TableStart:
    """The files of ``table`` begin (the tables before it are complete)."""

    table: str


@dataclass(slots=True)
class Columns:
    """Unknown columns of an input file, to add to ``table`` as TEXT."""

    table: str
    names: list[str]


@dataclass(slots=True)
class Batch:
    """Valid rows to write under ``plan``: ``rows`` (lists), or ``flat`` (the values row after row)."""

    plan: object
    rows: list | None
    lines: list[int]
    file: str
    flat: list | None = None


@dataclass(slots=True)
class ProblemFound:
    """A problem with the input; ``fatal``: one that refuses the import even with --skip-invalid."""

    problem: Problem
    fatal: bool = False


@dataclass(slots=True)
class Reject:
    """A refused row: its problems and (with --skip-invalid) the record for the rejects file."""

    table: str
    file: str
    line: int
    problems: list[Problem]
    record: dict | None


@dataclass(slots=True)
class Progress:
    """Bytes read of the current file."""

    position: int


@dataclass(slots=True)
class FileDone:
    """A file read to its end: its entry for the report and its size."""

    entry: dict
    size: int


@dataclass(slots=True)
class Finished:
    """Every file was read."""


@dataclass(slots=True)
class Undecodable:
    """Files whose encoding was refused: the import is refused with these problems alone."""

    problems: list[Problem] = field(default_factory=list)


class Reader:
    """Reads and validates files, sending every result to ``emit`` as an event; never writes to the store.

    ``id_set(table, column)``: the known ids a reference is checked against (kept up to date by
    whoever writes or sends the batches); ``known_columns(table)``: the table's column names in
    lower case; ``records``: build the refused rows' records (for --skip-invalid); ``mapping``: a
    :class:`kamrules.mapping.Mapping` applied to the headers and values of its tables' files.
    """

    def __init__(
        self, tables: dict, pm, emit: Callable, id_set: Callable, known_columns: Callable, records: bool, mapping=None
    ):
        self.mapping = mapping
        self.tables = tables
        self.pm = pm
        self.emit = emit
        self.id_set = id_set
        self.known_columns = known_columns
        self.records = records
        self.started: set[str] = set()

    def run(self, files, encoding_of: Callable) -> None:
        """Read ``files`` [(path, table, format)] in order; ``encoding_of(path)`` gives the codec or
        raises FileProblem. After a file that fails it the others are only checked: the import
        is refused with these problems alone (:class:`Undecodable`)."""
        undecodable: list = []
        for path, name, fmt in files:
            try:
                codec = encoding_of(path)
            except FileProblem as e:
                undecodable.append(e.problem)
                continue
            if undecodable:
                continue
            try:
                self.import_file(path, name, fmt, codec)
            except FileProblem as e:
                self.emit(ProblemFound(e.problem, True))
        self.emit(Undecodable(undecodable) if undecodable else Finished())

    def flush(self, plan, rows, lines, file_name) -> None:
        self.emit(Batch(plan, rows, lines, file_name))

    def tick(self, reader) -> None:
        self.emit(Progress(reader.position()))

    def problem(self, problem: Problem, fatal: bool = False) -> None:
        self.emit(ProblemFound(problem, fatal))

    # -- per file ----------------------------------------------------------
    def import_file(self, path: Path, table: str, fmt: str, encoding: str) -> None:
        tdef = self.tables[table]
        if table not in self.started:
            self.started.add(table)
            self.emit(TableStart(table))
        reader = open_reader(path, fmt, encoding)
        file_name = str(path)
        count = 0
        try:
            if reader.header is not None:
                plan = self.plan_for(tdef, path, reader.header, per_row=False)
                if plan.problems:
                    for col, msg in plan.problems:
                        self.problem(Problem(file_name, 1, msg, col), True)
                    # headers the contract does not know and a required column missing: another layout
                    if self.mapping is None and plan.extra and any(m.startswith(MISSING) for _, m in plan.problems):
                        from kamrules.mapping import missing_columns_hint

                        self.problem(Problem(file_name, 1, missing_columns_hint(path, reader.header)), True)
                    return
                count = self.load_rows(plan, file_name, None, reader, csv_reader=reader)
            else:
                count = self.load_json(tdef, path, reader)
        finally:
            reader.close()
            self.emit(
                FileDone(
                    {"path": file_name, "table": table, "format": fmt, "encoding": encoding, "rows": count},
                    path.stat().st_size,
                )
            )

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
                        self.problem(Problem(str(path), line, msg, col), True)
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
        if csv_reader is not None and (identity or len(positions) > 1) and not extra_checks:
            # columns left out (a mapping's drop:): the rest picked by one itemgetter call per row,
            # or, when they are the last ones (an export's extra columns at the end), cut off in place
            n = len(positions)
            cut = n if not identity and positions == list(range(n)) else None
            pick = None if identity or cut is not None else itemgetter(*positions)
            return self._load_csv(plan, file_name, source, reader, prev, slow, pick, cut)
        return self._load(
            plan,
            file_name,
            source,
            reader,
            csv_reader is not None,
            prev if csv_reader is not None else 0,
            convs,
            width,
            positions,
            identity,
            extra_checks,
            slow,
        )

    def _load_csv(self, plan, file_name, source, reader, prev, slow, pick=None, cut=None) -> int:
        """The common case of :meth:`_load`: CSV rows whose header maps one to one onto the insert."""
        batch: list[list[Any]] = []
        lines: list[int] = []
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
                        if cut is not None:
                            del values[cut:]
                        elif pick is not None:
                            values = list(pick(values))
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

    def _load(
        self, plan, file_name, source, reader, is_csv, prev, convs, width, positions, identity, extra_checks, slow
    ) -> int:
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

    def plan_for(self, tdef, path, header, per_row):
        from kamrules.plugins import PluginFailed, call_hook

        tmap = self.mapping.tables.get(tdef.name) if self.mapping is not None else None
        renames = {}
        for plugin, mapping in call_hook(
            self.pm, "rename_columns", table=tdef.name, columns=list(header), path=str(path)
        ):
            if not isinstance(mapping, dict) or not all(type(k) is str and type(v) is str for k, v in mapping.items()):
                raise PluginFailed(
                    f"plugin {plugin}: rename_columns returned {mapping!r} for {path} (expected a dict of column names or None)"
                )
            renames.update(mapping)
        if tmap is not None:
            renames.update(tmap.renames(header))
        plan = make_plan(tdef, header, renames, per_row_required=per_row, id_set=self.id_set, adapt=tmap)
        if not plan.problems and plan.extra:
            have = self.known_columns(tdef.name)
            new = [n for n in plan.extra if n.lower() not in have]
            if len(have) + len(new) > MAX_COLUMNS:
                plan.problems.append(
                    (
                        None,
                        f"{len(new)} new columns would give table {tdef.name} {len(have) + len(new)} columns (expected at most {MAX_COLUMNS} in all)",
                    )
                )
            elif new:
                have.update(n.lower() for n in new)
                self.emit(Columns(tdef.name, new))
        return plan

    def reject(self, plan, file_name, line, values, found: list[Problem], converted: bool = False) -> None:
        record = reject_record(plan, values, converted) if self.records else None
        self.emit(Reject(plan.table.name, file_name, line, found, record))

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
                found.append(
                    Problem(
                        file_name,
                        line,
                        f"has {len(values)} values but the header has {width} columns (expected one value per column)",
                    )
                )
                self.reject(plan, file_name, line, values, found)
                return None
        for i in plan.ignored:
            if values[i].strip():
                found.append(
                    Problem(
                        file_name,
                        line,
                        f"value {show(values[i])} in a column without a name (expected a column name in the header)",
                        f"column {i + 1}",
                    )
                )
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


def reject_record(plan, values, converted: bool) -> dict:
    """A refused row as {column: value} for the --skip-invalid file."""
    if converted:
        header = plan.insert_columns
        values = [
            None if v == "" and c in plan.converted else v for c, v in zip(header, values, strict=False)
        ]  # '' = NULL
    else:
        header = [c if c is not None else f"column{i + 1}" for i, c in enumerate(plan.columns)]
    record = dict(zip(header, values, strict=False))
    if len(values) > len(header):
        record["(extra values)"] = values[len(header) :]
    return record


def remember_ids(sets: dict, plan, rows) -> None:
    """Add the ids in ``rows`` (written under ``plan``) to the id ``sets`` {(table, column): ids}:
    valid references for the files that follow."""
    name = plan.table.name
    for (table, col), ids in sets.items():
        if table == name and col in plan.insert_columns:
            pos = plan.insert_columns.index(col)
            ids.update(r[pos] for r in rows)
