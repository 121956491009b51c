"""Account-range partitions of a check, run side by side in forked worker processes.

A check is per account: the facts of one account never depend on another's
(portfolio facts are computed apart, over the whole book). So the book is cut
into contiguous ranges of account ids and each range is checked on its own
connection, in its own process: both cores work, and each range's fact tables
stay small. A worker restricts its connection to its range with TEMP VIEWs that
shadow every table having an ``account_id`` column (and ``accounts`` itself):
an unqualified table name resolves to the temp schema first, so providers' SQL
runs unchanged, and SQLite pushes the range into the ``(account_id, ...)``
index scans. Workers are forked, so they inherit the loaded plugins and the
compiled rules; each opens its own connection (never the parent's).
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise

PART_SIZE = 25_000  # accounts per part on big books (progress steps, bounded temp tables)
MIN_PART = 2_500  # below 2 x this many accounts, a check runs in one process


@dataclass(frozen=True)
class Part:
    """Accounts with ``lo <= id < hi`` (``None``: unbounded on that side)."""

    index: int
    lo: str | None
    hi: str | None

    @property
    def whole(self) -> bool:
        return self.lo is None and self.hi is None


def default_jobs() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def one_part(accounts: int, min_part: int | None = None) -> bool:
    """True for a book checked as one part, in one process (fewer than two parts of ``min_part``,
    default MIN_PART, accounts)."""
    return accounts < 2 * (MIN_PART if min_part is None else min_part)


def plan_parts(conn: sqlite3.Connection, jobs: int, part_size: int = PART_SIZE) -> list[Part]:
    """Cut the accounts (ordered by id) into parts: one (the whole book) for a small book, else
    parts of at most about ``part_size`` accounts and at least ``min(MIN_PART, part_size)`` each;
    with several ``jobs``, a multiple of ``jobs`` parts."""
    min_part = max(1, min(MIN_PART, part_size))
    n = conn.execute("SELECT count(*) FROM main.accounts").fetchone()[0]
    if not _forkable():
        jobs = 1
    if one_part(n, min_part) or (jobs <= 1 and n <= part_size):
        return [Part(0, None, None)]
    if jobs <= 1:  # one process, the parts one after the other: temp tables stay small
        count = math.ceil(n / part_size)
    else:  # a multiple of jobs: the workers get the same number of equal parts. One part per worker
        # when they hold the book (10k accounts: 1.30 s instead of 1.52 s for four, each part's
        # connection, views and provider tables costing a fixed ~0.05 s)
        count = jobs * max(1, math.ceil(n / (jobs * part_size)))
    count = max(2, min(count, n // min_part))
    bounds: list[str | None] = [None]
    for i in range(1, count):
        row = conn.execute("SELECT id FROM main.accounts ORDER BY id LIMIT 1 OFFSET ?", (n * i // count,)).fetchone()
        if row is not None and row[0] != bounds[-1]:
            bounds.append(row[0])
    bounds.append(None)
    return [Part(i, lo, hi) for i, (lo, hi) in enumerate(pairwise(bounds))]


def _forkable() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def restrict(conn: sqlite3.Connection, part: Part) -> None:
    """Shadow every main table with an ``account_id`` column (and ``accounts``) by a TEMP VIEW of the
    part's rows. The view keeps ``rowid`` as a column, so ``t.rowid`` still works in provider SQL."""
    if part.whole:
        return
    tables = [
        r[0]
        for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    for table in tables:
        cols = [r[1] for r in conn.execute(f"PRAGMA main.table_info({_quote(table)})")]
        key = "id" if table == "accounts" else "account_id" if "account_id" in cols else None
        if key is None or "rowid" in cols:
            continue
        cond = [
            f"{_quote(key)} >= {_literal(part.lo)}" if part.lo is not None else "",
            f"{_quote(key)} < {_literal(part.hi)}" if part.hi is not None else "",
        ]
        where = " AND ".join(c for c in cond if c)
        conn.execute(
            f"CREATE TEMP VIEW {_quote(table)} AS SELECT rowid AS rowid, * FROM main.{_quote(table)} WHERE {where}"
        )


from kamrules.migrations import quote as _quote  # noqa: E402

BUSY_WAIT = 10.0  # seconds a check waits for another process's write to end before it gives up (exit 5)


@contextmanager
def one_snapshot(path: str, wait: float = BUSY_WAIT) -> Iterator[None]:
    """Every read of the store made meanwhile, by this process or its forked workers, sees one state of it.

    Holds the store's write lock (``BEGIN IMMEDIATE`` on a connection of its own, nothing written):
    readers are not held up, but no other process can start writing, so none can commit while a
    check reads (rollback journal or WAL alike). Waits up to ``wait`` seconds for a writer to finish,
    then raises :class:`StoreBusy`. A read-only store falls back to a read transaction (which keeps
    writers from committing too). Without this, each part's statements would read whatever the
    store held at their moment, and an import committing mid-check gave answers of neither state.
    """
    from kamrules.errors import StoreBusy

    conn = sqlite3.connect(path, timeout=max(0.0, wait), isolation_level=None, check_same_thread=False)
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if is_busy(e):
                raise StoreBusy(busy_message(path, wait)) from None
            if "readonly" not in str(e).replace(" ", "").lower():
                raise
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        yield
    finally:
        conn.close()  # rolls back: nothing was written


def is_busy(e: BaseException) -> bool:
    """A SQLite error saying another connection holds a lock we needed (past the busy timeout)."""
    return isinstance(e, sqlite3.OperationalError) and any(
        w in str(e).lower() for w in ("database is locked", "database is busy")
    )


def busy_message(path: str, wait: float | None = None) -> str:
    waited = f"waited {wait:g} s; " if wait is not None else ""
    return f"{path}: the store is busy: another kamrules process is writing; try again ({waited}`check --wait SECONDS` waits longer)"


def connect(path: str) -> sqlite3.Connection:
    """A worker's own read connection to the store (temp tables in memory)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


# -- running parts in forked workers ------------------------------------------------------------

_TASK: Callable | None = None  # set before the pool forks; the workers inherit it
_DONE = None  # shared counter of accounts done (multiprocessing.Value)


def _run(part: Part):
    return part.index, _TASK(part, _tick)


def _tick(n: int) -> None:
    with _DONE.get_lock():
        _DONE.value += n


def run_parts(
    parts: Sequence[Part],
    task: Callable,
    jobs: int,
    progress: Callable[[int], None] | None = None,
    meanwhile: Callable[[], object] | None = None,
    on_result: Callable[[int, object], None] | None = None,
) -> tuple[list, object]:
    """``task(part, tick)`` for every part, in ``jobs`` forked processes (in this process, one part after
    the other, when there is one part or one job); ``tick(n)`` reports ``n`` more accounts done.
    ``on_result(index, result)`` is called here as each part's result arrives (while other parts run).
    Returns the results in part order (a part whose worker died gets a :class:`WorkerDied`) and what
    ``meanwhile()`` returned (run here meanwhile)."""
    global _TASK, _DONE
    if len(parts) == 1 or jobs <= 1:
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done)

        other = meanwhile() if meanwhile else None
        out = []
        for part in parts:
            out.append(task(part, tick))
            if on_result:
                on_result(part.index, out[-1])
        return out, other
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from kamrules.bulkload import collector_paused

    ctx = multiprocessing.get_context("fork")
    _TASK, _DONE = task, ctx.Value("q", 0)
    results: dict[int, object] = {}
    # Everything allocated so far (plugins, rules, the compiled engine) moves out of the collector's
    # reach before the fork: a worker's collections would otherwise walk the whole inherited heap and
    # write to every page of it (copy-on-write). As the gc module's documentation advises.
    try:
        with collector_paused(freeze=True), ProcessPoolExecutor(min(jobs, len(parts)), mp_context=ctx) as pool:
            futures = {pool.submit(_run, p): p for p in parts}
            other = meanwhile() if meanwhile else None
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for f in done:
                    try:
                        index, result = f.result()
                    except Exception as e:  # BrokenProcessPool: a worker was killed or crashed
                        index, result = futures[f].index, WorkerDied(f"{type(e).__name__}: {e}")
                    results[index] = result
                    if on_result:
                        on_result(index, result)
                if progress:
                    progress(_DONE.value)
    finally:
        _TASK = None
    return [results[p.index] for p in parts], other


@dataclass(frozen=True)
class WorkerDied:
    """A part whose worker process ended without a result (killed, or crashed in native code)."""

    reason: str
