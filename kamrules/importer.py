"""Import data files into the store: validate everything, write in one transaction, report.

The import runs in two halves joined by a stream of typed events: :mod:`kamrules.import_read`
reads and validates (batches, problems, refused rows), :mod:`kamrules.import_write` writes to
the store; :func:`kamrules.bulkload.bulk_load` holds the transaction and the bulk settings. The
reader runs here, or in a forked worker (:mod:`kamrules.import_workers`) that pipes its events.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from kamrules.bulkload import IMPORT_CACHE_KIB, bulk_load  # noqa: F401 (re-exported)
from kamrules.contract import load_order
from kamrules.errors import InputError, Problem
from kamrules.import_read import BATCH, Reader, reject_record  # noqa: F401 (re-exported)
from kamrules.import_report import (  # noqa: F401 (re-exported)
    ImportRefused,
    ImportReport,
    Problems,
    Rejects,
    TableCounts,
)
from kamrules.import_workers import run_with_worker, use_workers
from kamrules.import_write import DUPLICATE, MANY_ROWS, Writer  # noqa: F401 (re-exported)
from kamrules.outputs import check_output_path
from kamrules.readers import FORMATS, FileProblem, detect_encoding, split_name

_Importer = Writer  # the name the store-writing half had before the split (tests patch its methods)


def resolve_files(
    paths, tables: dict, table: str | None, problems: Problems, mapping=None
) -> list[tuple[Path, str, str]]:
    """(path, table, format) for every input file, in dependency order (accounts first); a
    ``mapping`` (:class:`kamrules.mapping.Mapping`) names the tables of the files its patterns match."""
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
                problems.add(
                    Problem(
                        str(path),
                        None,
                        f"no data files in this folder (expected files such as accounts.csv, orders.jsonl: {', '.join(FORMATS)})",
                    ),
                    True,
                )
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
                problems.add(
                    Problem(
                        str(p),
                        None,
                        f"unknown file type {p.suffix or '(none)'!r} (expected one of: {', '.join(FORMATS)})",
                    ),
                    True,
                )
                continue
            name = table or (mapping.table_for(p.name) if mapping is not None else None) or name
            if name not in tables:
                lowered = name.lower()
                if lowered in tables:
                    name = lowered
                else:
                    problems.add(
                        Problem(
                            str(p),
                            None,
                            f"no table named {name!r} (expected a file named after a table: {', '.join(tables)}; or use --table NAME)",
                        ),
                        True,
                    )
                    continue
            found.append((p, name, fmt))
    order = {name: i for i, name in enumerate(load_order(tables))}
    return sorted(found, key=lambda f: order[f[1]])


def unreadable(path: Path) -> str | None:
    """Why a data-named entry cannot be imported (a folder, a dangling link, no permission ...), or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return (
            "a symbolic link to a file that does not exist (expected a readable data file)"
            if path.is_symlink()
            else "no such file"
        )
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


def _refused(problems: Problems) -> ImportRefused:
    return ImportRefused(
        f"import refused: {problems.total} problem(s); the store was not changed", problems.kept, problems.total
    )


def import_paths(
    store, paths, table=None, encoding=None, skip_invalid=None, progress=None, parallel=None, mapping=None
) -> ImportReport:
    """Validate and load ``paths`` (files or folders) into ``store``: all or nothing.

    Every problem is collected; if there is any (and ``skip_invalid`` is None) the
    transaction is rolled back and :class:`ImportRefused` (an InputError, exit 2)
    lists them as ``FILE:LINE: COLUMN: message``. With ``skip_invalid=PATH`` the
    valid rows are committed and each refused row goes to that CSV file (refused with
    :class:`~kamrules.outputs.OutputRefused`, exit 2, before anything is read, when that
    path is the store, one of its companion files, an input file or not a plain file). Problems
    with a whole file (undecodable, binary, empty, missing columns) always refuse.
    ``progress(done_bytes, total_bytes)`` is called as the import advances.
    ``parallel``: read and validate in a forked worker process while this one writes (True,
    False, or None: by size and $KAMRULES_IMPORT_WORKERS; see :mod:`kamrules.import_workers`).
    ``mapping``: a mapping file (path) or a loaded :class:`kamrules.mapping.Mapping` that maps a
    CRM export's file names, headers and values onto the contract (InputError, exit 2, if invalid).
    """
    started = time.perf_counter()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if skip_invalid is not None:
        check_output_path(skip_invalid, store.path, paths, "--skip-invalid file")
    tables = store.tables
    if mapping is not None:
        from kamrules.mapping import Mapping, load_mapping

        if not isinstance(mapping, Mapping):
            mapping = load_mapping(mapping, tables)
    problems = Problems()
    files = resolve_files(paths, tables, table, problems, mapping)
    total_bytes = sum(p.stat().st_size for p, _, _ in files)
    # The worker checks each file's encoding just before reading it (see Reader.run)
    workers = not problems.total and use_workers(tables, files, total_bytes, parallel)
    encodings = {}
    for path, _, _ in [] if workers else files:
        try:
            encodings[path] = detect_encoding(
                path, *(mapping.encoding_for(path, encoding) if mapping is not None else (encoding,))
            )
        except FileProblem as e:
            problems.add(e.problem, True)
    if problems.total:
        raise _refused(problems)
    rejects = None
    writer = Writer(store, None, problems, progress, total_bytes)
    ok = False
    try:
        with bulk_load(store.conn, store.path):
            if skip_invalid is not None:
                writer.rejects = rejects = Rejects(skip_invalid)
            if workers:
                run_with_worker(writer, files, encoding, mapping)
            else:
                reader = Reader(
                    tables,
                    store.pm,
                    writer.handle,
                    writer.id_set,
                    writer.known_columns,
                    records=rejects is not None,
                    mapping=mapping,
                )
                reader.run(files, encodings.__getitem__)
            if problems.fatal or (problems.total and skip_invalid is None):
                rank = {str(path): i for i, (path, _, _) in enumerate(files)}
                problems.kept.sort(key=lambda p: (rank.get(p.file, -1), p.line or 0))
                raise _refused(problems)
            writer.build_indexes()
            writer.finish_counts()
        ok = True
    except sqlite3.Error as e:
        raise InputError(f"{store.path}: the store refused the import: {e}; the store was not changed") from e
    finally:
        if writer.thresholds:  # a table was started: its temp triggers go (after the COMMIT or ROLLBACK)
            writer.drop_triggers()
        if rejects is not None:
            rejects.finish(keep=ok)
    writer.report.seconds = time.perf_counter() - started
    if rejects is not None:
        writer.report.rejects_path = str(rejects.path)
    return writer.report
