"""Parallel import: a forked worker reads and validates the files while the parent only writes the rows."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import queue
import threading
import traceback
from dataclasses import dataclass
from itertools import chain

from kamrules.errors import EXIT_INCOMPLETE, KamrulesError
from kamrules.import_read import Batch, FileDone, Finished, Reader, Undecodable, remember_ids
from kamrules.readers import detect_encoding

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
    """The batch's values row after row (what :meth:`Writer.flush <kamrules.import_write.Writer.flush>` takes as ``flat``)."""
    n, cols = packed
    width = len(cols)
    flat = [None] * (n * width)
    for i, col in enumerate(cols):
        flat[i::width] = col.split(SEP) if type(col) is str else col
    return flat


@dataclass(slots=True)
class PlanSent:
    """On the wire: a plan, sent once before its first batch (without its converters: code)."""

    id: int
    plan: object


@dataclass(slots=True)
class BatchSent:
    """On the wire: a :class:`~kamrules.import_read.Batch` with its plan's id and its rows packed."""

    plan: int
    packed: tuple
    lines: list
    file: str


@dataclass(slots=True)
class Failed:
    """On the wire: the worker failed (``error`` None when it could not be pickled; ``text``: its traceback)."""

    error: BaseException | None
    text: str


class Sender:
    """The worker's end of the pipe: takes the reader's events, sends them in pickled bundles.

    A thread writes to the pipe (without the GIL) while the worker reads on, up to AHEAD bytes.
    The worker keeps the id sets itself (``sets``): the ids of every batch it sends count as written.
    """

    def __init__(self, out, sets: dict):
        self.out = out
        self.sets = sets
        self.events: list = []
        self.plan_ids: dict[int, tuple] = {}
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.ahead = 0
        self.room = threading.Condition()
        self.failed: BaseException | None = None
        self.sender = threading.Thread(target=self._send_all, name="kamrules-import-send", daemon=True)
        self.sender.start()

    def emit(self, event) -> None:
        kind = type(event)
        if kind is Batch:
            plan = event.plan
            known = self.plan_ids.get(id(plan))
            if known is None:
                known = self.plan_ids[id(plan)] = (len(self.plan_ids), plan)  # keeps the plan (and its id) alive
                self.events.append(PlanSent(known[0], dataclasses.replace(plan, convs=[], convert=None)))
            self.events.append(BatchSent(known[0], pack(event.rows), event.lines, event.file))
            if self.sets:
                remember_ids(self.sets, plan, event.rows)
            self.send()
            return
        self.events.append(event)
        if kind is FileDone or kind is Finished or kind is Undecodable:
            self.send()

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


def _work(store, files, encoding, records, sets, cols, out, mapping=None) -> None:
    """The worker process: run the reader over ``files``, sending its events to the parent."""
    sender = None
    try:
        sender = Sender(out, sets)
        reader = Reader(
            store.tables,
            store.pm,
            sender.emit,
            lambda t, c: sets.setdefault((t, c), set()),
            cols.__getitem__,
            records,
            mapping,
        )
        reader.run(
            files,
            lambda path: detect_encoding(
                path, *(mapping.encoding_for(path, encoding) if mapping is not None else (encoding,))
            ),
        )
        sender.close()
    except BaseException as e:  # noqa: BLE001 - everything goes to the parent, which raises it
        text = traceback.format_exc()
        try:
            message = pickle.dumps([Failed(e, text)], pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - not picklable
            message = pickle.dumps([Failed(None, text)], pickle.HIGHEST_PROTOCOL)
        try:
            if sender is not None and sender.sender.is_alive():
                sender.queue.put(message)
                sender.close()
            else:
                out.send_bytes(message)
        except BaseException:  # noqa: BLE001, S110 - the parent sees the pipe close
            pass
        os._exit(1)  # never run the inherited store's finalizers here


# -- the parent ------------------------------------------------------------
def run_with_worker(writer, files, encoding: str | None, mapping=None) -> None:
    """Import ``files`` with a forked worker running the reader (under ``mapping``, if given);
    ``writer`` (an :class:`~kamrules.import_write.Writer`, in this process) applies its events."""
    sets = {pair: writer.id_set(*pair) for pair in reference_targets(writer.tables, {name for _, name, _ in files})}
    cols = {
        name: writer.known_columns(name) for name in {name for _, name, _ in files}
    }  # the worker never reads the store
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    _grow_pipe(send.fileno())
    records = writer.rejects is not None
    proc = ctx.Process(
        target=_work,
        args=(writer.store, files, encoding, records, sets, cols, send, mapping),  # forked: nothing pickled
        name="kamrules-import",
        daemon=True,
    )
    proc.start()
    send.close()
    writer._sets = {}  # the worker keeps the id sets; the parent need not update them
    try:
        _consume(writer, recv, proc)
        proc.join(10)  # it has sent everything; killed below should it not end
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
            proc.join()


def _consume(writer, recv, proc) -> None:
    plans: dict[int, object] = {}
    handle, flush = writer.handle, writer.flush
    while True:
        try:
            events = recv.recv()
        except (EOFError, OSError):  # OSError: the worker died in the middle of a message
            proc.join(5)
            code = proc.exitcode
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            raise ImportWorkerError(
                f"import failed: the import worker process {how}; the store was not changed"
            ) from None
        for event in events:
            kind = type(event)
            if kind is BatchSent:
                flush(plans[event.plan], None, event.lines, event.file, unpack(event.packed))
            elif kind is PlanSent:
                plans[event.id] = event.plan
            elif kind is Failed:
                if isinstance(event.error, BaseException):
                    event.error.add_note("(raised in the import worker process)\n" + event.text)
                    raise event.error
                raise ImportWorkerError(
                    f"import failed in the import worker process; the store was not changed\n{event.text}"
                )
            else:
                handle(event)  # Undecodable raises ImportRefused, as when the parent checks the encodings
                if kind is Finished:
                    return
