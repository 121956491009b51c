"""Settings for bulk work: the cyclic collector paused, and SQLite's bulk-load pragmas and transaction."""

from __future__ import annotations

import contextlib
import gc
import sqlite3

from kamrules.errors import InputError

IMPORT_CACHE_KIB = 256 * 1024  # page cache during an import (the default is 2 MiB)


@contextlib.contextmanager
def collector_paused(freeze: bool = False):
    """The cyclic garbage collector off for the block (restored after, as it was).

    Bulk work (an import's rows, a check part's facts and alerts) makes no reference cycles worth
    collecting: the collector would only rescan the objects in flight (about 3% of an import in
    py-spy, 3-5% of a check's CPU at 100k). ``freeze=True`` instead moves everything allocated so
    far out of its reach (``gc.freeze``), as the gc documentation advises before forking workers:
    their collections would otherwise walk the whole inherited heap and write to every page of it
    (copy-on-write).
    """
    if freeze:
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@contextlib.contextmanager
def bulk_load(conn: sqlite3.Connection, store_path):
    """One write transaction with the bulk-load settings; committed if the block ends normally.

    An exception in the block rolls everything back (the store is left as it was); the pragmas
    and the collector are restored either way. A store that cannot be locked for writing is an
    InputError naming it.
    """
    # References are checked row by row against sets of known ids (faster than SQLite's
    # per-row foreign key lookups, and they name the column); the keys go back on after.
    conn.execute("PRAGMA foreign_keys = OFF")
    # A larger page cache for the load: fewer B-tree pages re-read, index sorts kept in memory.
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise InputError(f"{store_path}: cannot write to the store: {e}") from e
        ok = False
        try:
            with collector_paused():
                yield conn
            conn.execute("COMMIT")
            ok = True
        finally:
            if not ok and conn.in_transaction:
                conn.execute("ROLLBACK")
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")
