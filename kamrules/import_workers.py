"""Parallel import: a forked worker reads and validates the files while the parent only writes the rows."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import queue
import threading
import traceback
from itertools import chain

from kamrules.errors import EXIT_INCOMPLETE, KamrulesError
from kamrules.import_report import ImportRefused, Problems
from kamrules.readers import FileProblem, detect_encoding

# Imports of at least this many bytes use the worker (below, forking costs more than it saves).
MIN_BYTES = 1 << 20
ENV = "KAMRULES_IMPORT_WORKERS"  # "0": never, "1": always (tests), unset: by size
SEP = "\x1f"  # joins a batch's text column into one string: one split() in the parent, no pickle per value
PIPE_SIZE = 1 << 20
# Bytes of pickled batches the worker may be ahead of the parent. While the parent builds a loaded
# table's indexes (about 100 s for the activities of a 1M-account book) the worker reads the next
# table into this buffer instead of waiting; it is the import's main memory beyond SQLite's cache.
AHEAD = 512 << 20


class ImportWorkerError(KamrulesError):
    """The import worker process failed or died; the import is abandoned (exit 3)."""

    exit_code = EXIT_INCOMPLETE


def reference_targets(tables: dict, names) -> list[tuple[str, str]]:
    """The (table, column) pairs the files' tables reference: the id sets the worker keeps."""
    pairs = set()
    for name in names:
        for ref in tables[name].references.values():
            target, _, col = ref.partition(".")
            pairs.add((target, col))
    return sorted(pairs)


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the system has one: Linux; else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _grow_pipe(fd: int) -> None:
    """A larger pipe buffer (Linux only: fcntl is missing on Windows, F_SETPIPE_SZ on macOS)."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass  # the default pipe size works, with less slack


def use_workers(tables: dict, files, total_bytes: int, parallel: bool | None) -> bool:
    """Whether to import with a worker: forced by ``parallel`` or $KAMRULES_IMPORT_WORKERS, else by size.

    Only where the result is exactly the serial one: every reference names the sole primary key of
    its table (the worker's id sets then need no answer from the store about refused rows).
    """
    if parallel is None:
        env = os.environ.get(ENV, "").strip()
        parallel = {"0": False, "1": True}.get(env)
    if parallel is False or not files or "fork" not in multiprocessing.get_all_start_methods():
        return False
    if not parallel and usable_cpus() < 2:
        return False  # one core: the worker would only add its overhead
    for target, col in reference_targets(tables, {name for _, name, _ in files}):
        if target in tables and tables[target].primary_key != (col,):
            return False
    return parallel or total_bytes >= MIN_BYTES


# -- the worker ------------------------------------------------------------
def pack(rows: list) -> tuple[int, list]:
    """A batch column by column: text columns as one SEP-joined string, others as lists."""
    n = len(rows)
    width = len(rows[0]) if n else 0
    flat = list(chain.from_iterable(rows))
    if len(flat) != n * width:
        raise ValueError("rows of a batch differ in length")
    cols = []
    for i in range(width):
        col = flat[i::width]
        try:
            text = SEP.join(col)
        except TypeError:  # numbers (or None)
            cols.append(col)
            continue
        cols.append(text if text.count(SEP) == n - 1 else col)
    return n, cols


def unpack(packed: tuple[int, list]) -> list:
    """The batch's values row after row (what :meth:`_Importer.flush` takes as ``flat``)."""
    n, cols = packed
    width = len(cols)
    flat = [None] * (n * width)
    for i, col in enumerate(cols):
        flat[i::width] = col.split(SEP) if type(col) is str else col
    return flat


class _Events:
    """What the worker's Problems.add becomes: an event for the parent."""

    def __init__(self, events: list):
        self.events = events

    def add(self, problem, fatal: bool = False) -> None:
        self.events.append(("problem", problem, fatal))


def _producer_class():
    from kamrules.importer import _Importer

    class Producer(_Importer):
        """Runs the importer's reading and validation; every effect on the store goes to the parent as an event."""

        def __init__(self, store, skip: bool, sets: dict, cols: dict, out):
            super().__init__(store, None, None, 0)
            self.skip = skip
            self.rejects = True if skip else None  # only tested for None: builds the rejected records
            self._sets = sets
            self._cols = cols
            self.out = out
            self.events: list = []
            self.problems = _Events(self.events)
            self.started: set[str] = set()
            self.plan_ids: dict[int, tuple] = {}
            # A thread writes to the pipe (without the GIL) while the worker reads on, up to AHEAD bytes
            self.queue: queue.SimpleQueue = queue.SimpleQueue()
            self.ahead = 0
            self.room = threading.Condition()
            self.failed: BaseException | None = None
            self.sender = threading.Thread(target=self._send_all, name="kamrules-import-send", daemon=True)
            self.sender.start()

        def _send_all(self) -> None:
            try:
                while (data := self.queue.get()) is not None:
                    self.out.send_bytes(data)
                    with self.room:
                        self.ahead -= len(data)
                        self.room.notify()
            except BaseException as e:  # noqa: BLE001 - the parent is gone: raised in the worker by send()
                with self.room:
                    self.failed = e
                    self.room.notify()
                while self.queue.get() is not None:
                    pass

        def send(self) -> None:
            if self.failed is not None:
                raise self.failed
            if self.events:
                data = pickle.dumps(self.events, pickle.HIGHEST_PROTOCOL)
                with self.room:
                    while self.ahead > AHEAD and self.failed is None:
                        self.room.wait()
                    if self.failed is not None:
                        raise self.failed
                    self.ahead += len(data)
                self.queue.put(data)
                self.events.clear()

        def close(self) -> None:
            self.queue.put(None)
            self.sender.join()

        def start_table(self, name: str) -> None:
            if name not in self.started:
                self.started.add(name)
                self.events.append(("start", name))

        def add_columns(self, table: str, names: list[str]) -> None:
            self.events.append(("columns", table, list(names)))

        def file_done(self, entry: dict, size: int) -> None:
            self.events.append(("file", entry, size))
            self.send()

        def tick(self, reader) -> None:
            if reader is not None:
                self.events.append(("tick", reader.position()))

        def rejected(self, table, file_name, line, found, record) -> None:
            self.events.append(("reject", table, file_name, line, found, record))

        def id_set(self, table, col) -> set:
            return self._sets.setdefault((table, col), set())

        def flush(self, plan, rows, lines, file_name) -> None:
            known = self.plan_ids.get(id(plan))
            if known is None:
                known = self.plan_ids[id(plan)] = (len(self.plan_ids), plan)  # keeps the plan (and its id) alive
                self.events.append(("plan", known[0], dataclasses.replace(plan, convs=[], convert=None)))
            self.events.append(("rows", known[0], pack(rows), lines, file_name))
            self.remember(plan, rows)
            self.send()

    return Producer


def _work(store, files, encoding, skip, sets, cols, out) -> None:
    """The worker process: read and validate ``files`` in order, sending events to the parent.

    Each file's encoding is checked just before it is read; after a file that fails the check the
    others are only checked, and the parent refuses the import with these problems alone.
    """
    prod = None
    try:
        prod = _producer_class()(store, skip, sets, cols, out)
        undecodable: list = []
        for path, name, fmt in files:
            try:
                codec = detect_encoding(path, encoding)
            except FileProblem as e:
                undecodable.append(e.problem)
                continue
            if undecodable:
                continue
            try:
                prod.import_file(path, name, fmt, codec)
            except FileProblem as e:
                prod.problems.add(e.problem, True)
        prod.events.append(("undecodable", undecodable) if undecodable else ("done",))
        prod.send()
        prod.close()
    except BaseException as e:  # noqa: BLE001 - everything goes to the parent, which raises it
        text = traceback.format_exc()
        try:
            message = pickle.dumps([("error", e, text)], pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - not picklable
            message = pickle.dumps([("error", None, text)], pickle.HIGHEST_PROTOCOL)
        try:
            if prod is not None and prod.sender.is_alive():
                prod.queue.put(message)
                prod.close()
            else:
                out.send_bytes(message)
        except BaseException:  # noqa: BLE001, S110 - the parent sees the pipe close
            pass
        os._exit(1)  # never run the inherited store's finalizers here


# -- the parent ------------------------------------------------------------
def run_with_worker(imp, files, encoding: str | None) -> None:
    """Import ``files`` with a forked worker reading and validating; ``imp`` (the parent) writes."""
    sets = {pair: imp.id_set(*pair) for pair in reference_targets(imp.tables, {name for _, name, _ in files})}
    cols = {name: imp.known_columns(name) for name in {name for _, name, _ in files}}  # the worker never reads the store
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    _grow_pipe(send.fileno())
    proc = ctx.Process(target=_work, args=(imp.store, files, encoding, imp.skip, sets, cols, send), name="kamrules-import", daemon=True)
    proc.start()
    send.close()
    imp._sets = {}  # the worker keeps the id sets; the parent need not update them
    try:
        _consume(imp, recv, proc)
        proc.join(10)  # it has sent everything; killed below should it not end
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
            proc.join()


def _consume(imp, recv, proc) -> None:
    plans: dict[int, object] = {}
    flush, rejected, problems = imp.flush, imp.rejected, imp.problems
    progress, total = imp.progress, imp.total_bytes
    while True:
        try:
            events = recv.recv()
        except (EOFError, OSError):  # OSError: the worker died in the middle of a message
            proc.join(5)
            code = proc.exitcode
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            raise ImportWorkerError(f"import failed: the import worker process {how}; the store was not changed") from None
        for event in events:
            kind = event[0]
            if kind == "rows":
                _, pid, packed, lines, file_name = event
                flush(plans[pid], None, lines, file_name, unpack(packed))
            elif kind == "tick":
                if progress is not None:
                    progress(min(imp.done_bytes + event[1], total), total)
            elif kind == "reject":
                rejected(*event[1:])
            elif kind == "problem":
                problems.add(event[1], event[2])
            elif kind == "plan":
                plans[event[1]] = event[2]
            elif kind == "start":
                imp.start_table(event[1])
            elif kind == "columns":
                imp.add_columns(event[1], event[2])
            elif kind == "file":
                imp.file_done(event[1], event[2])
            elif kind == "done":
                return
            elif kind == "undecodable":  # as when the parent checks the encodings before the import
                refused = Problems()
                for problem in event[1]:
                    refused.add(problem, True)
                raise ImportRefused(f"import refused: {refused.total} problem(s); the store was not changed", refused.kept, refused.total)
            elif kind == "error":
                _, error, text = event
                if isinstance(error, BaseException):
                    error.add_note("(raised in the import worker process)\n" + text)
                    raise error
                raise ImportWorkerError(f"import failed in the import worker process; the store was not changed\n{text}")
