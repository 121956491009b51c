"""Import with the forked worker: the same store, report, problems and rejects as in one process.

test_import.py, test_import_cli.py and test_import_indexes.py run each of their tests on both paths (conftest.py: import_mode).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from kamrules import import_workers
from kamrules.contract import CORE_TABLES, C, Table
from kamrules.errors import EXIT_INCOMPLETE, InputError
from kamrules.generate import generate_to_dir
from kamrules.importer import ImportRefused, _Importer, import_paths
from kamrules.store import Store

AS_OF = "2026-10-31"


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("book") / "csv"
    generate_to_dir(folder, 300, seed=1, as_of=AS_OF)
    return folder


def dump(path: Path) -> dict:
    """Every table's rows in rowid order, and the schema (indexes included)."""
    conn = sqlite3.connect(path)
    try:
        schema = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=repr)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {t: conn.execute(f'SELECT rowid, * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()
    return {"schema": schema, "rows": rows}


def run(tmp_path: Path, name: str, paths, parallel: bool, before=None, **kw):
    """Import into a fresh store (after importing ``before``); (report or ImportRefused, store dump, rejects text)."""
    db = tmp_path / f"{name}.db"
    with Store.open(db) as store:
        if before is not None:
            import_paths(store, before, parallel=False)
        if "skip_invalid" in kw:
            kw["skip_invalid"] = tmp_path / f"{name}-rejects.csv"
        try:
            result = import_paths(store, paths, parallel=parallel, **kw)
        except ImportRefused as e:
            result = e
    rejects = kw.get("skip_invalid")
    return result, dump(db), rejects.read_text("utf-8-sig") if rejects and rejects.exists() else None


def same(tmp_path, paths, before=None, **kw):
    """The import gives the same result with the worker as without; returns that result."""
    one, one_db, one_rejects = run(tmp_path, "one", paths, False, before, **kw)
    two, two_db, two_rejects = run(tmp_path, "two", paths, True, before, **kw)
    assert type(one) is type(two)
    if isinstance(one, ImportRefused):
        assert (str(two), two.total, [str(p) for p in two.problems]) == (
            str(one),
            one.total,
            [str(p) for p in one.problems],
        )
    else:
        assert two.to_dict() | {"seconds": 0, "rejects": None} == one.to_dict() | {"seconds": 0, "rejects": None}
    assert two_db == one_db
    assert two_rejects == one_rejects
    return one, one_db


def spoil(book: Path, folder: Path) -> Path:
    """A copy of ``book`` with bad rows throughout (more than one batch of them)."""
    shutil.copytree(book, folder)
    for name in ("accounts", "orders", "activities"):
        path = folder / f"{name}.csv"
        lines = path.read_text("utf-8").splitlines(keepends=True)
        for i in range(3, len(lines), 97):
            if '"' in lines[i]:
                continue  # a quoted value (a comma in a name): split(",") would leave its quote unclosed
            cells = lines[i].rstrip("\n").split(",")
            if name == "accounts":
                cells[2] = "huge"  # tier: not allowed
            elif name == "orders":
                cells[1] = "NOPE"  # unknown account
            else:
                cells[0] = lines[i - 1].split(",")[0]  # the id of the row before: a duplicate
            lines[i] = ",".join(cells) + "\n"
        lines.insert(5, "too,few\n")
        path.write_text("".join(lines), "utf-8")
    return folder


def test_generated_book_same_store_and_report(book, tmp_path):
    report, db = same(tmp_path, [book])
    assert report.rejected == 0 and report.inserted == sum(
        len(r) for t, r in db["rows"].items() if not t.startswith("kamrules")
    )
    assert report.inserted > 10_000


def test_reimport_updates_the_same(book, tmp_path):
    report, _ = same(tmp_path, [book], before=[book])
    assert report.inserted == 0 and report.updated == 0 and report.unchanged > 10_000


def test_bad_rows_refused_the_same(book, tmp_path):
    refused, _ = same(tmp_path, [spoil(book, tmp_path / "bad")])
    assert isinstance(refused, ImportRefused) and refused.total > 100


def test_bad_rows_skipped_the_same(book, tmp_path):
    report, _ = same(tmp_path, [spoil(book, tmp_path / "bad")], skip_invalid=True)
    assert report.rejected > 100


def test_undecodable_file_refused_the_same(book, tmp_path):
    folder = tmp_path / "gbk"
    shutil.copytree(book, folder)
    (folder / "orders.csv").write_bytes(
        (folder / "orders.csv").read_bytes() + "A1-O9,A1,2025-01-01,1,\n".encode("utf-16")
    )
    refused, _ = same(tmp_path, [folder])
    assert isinstance(refused, ImportRefused) and "orders.csv" in str(refused.problems[0])


def _accounts_only(book, tmp_path):
    """A store holding the book's accounts only, and its dump (what a failed import must leave)."""
    db = tmp_path / "kept.db"
    with Store.open(db) as store:
        import_paths(store, [book / "accounts.csv"], parallel=False)
    return db, dump(db)


def test_refused_import_leaves_the_store_as_it_was(book, tmp_path):
    db, before = _accounts_only(book, tmp_path)
    with Store.open(db) as store, pytest.raises(ImportRefused):
        import_paths(store, [spoil(book, tmp_path / "bad")], parallel=True)
    assert dump(db) == before


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_a_failing_worker_is_a_clean_error(book, tmp_path, monkeypatch, how):
    db, before = _accounts_only(book, tmp_path)
    real = import_workers.pack
    calls = []

    def pack(rows):  # runs in the worker (forked after the patch)
        calls.append(1)
        if len(calls) == 3:
            if how == "exit":
                os._exit(7)
            raise RuntimeError("boom")
        return real(rows)

    monkeypatch.setattr(import_workers, "pack", pack)
    with Store.open(db) as store:
        with pytest.raises(import_workers.ImportWorkerError if how == "exit" else RuntimeError) as info:
            import_paths(store, [book], parallel=True)
        if how == "exit":
            assert info.value.exit_code == EXIT_INCOMPLETE and "exited with code 7" in str(info.value)
        else:
            assert "boom" in str(info.value)
        assert not store.conn.in_transaction
    assert not multiprocessing.active_children()
    assert dump(db) == before


def test_a_store_error_stops_the_worker(book, tmp_path, monkeypatch):
    db, before = _accounts_only(book, tmp_path)
    real = _Importer.insert_many
    calls = []

    def insert_many(self, *args):  # runs in the parent
        calls.append(1)
        if len(calls) == 5:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *args)

    monkeypatch.setattr(_Importer, "insert_many", insert_many)
    with Store.open(db) as store, pytest.raises(InputError, match="disk I/O error; the store was not changed"):
        import_paths(store, [book], parallel=True)
    assert not multiprocessing.active_children()
    assert dump(db) == before


def test_small_imports_stay_in_one_process(book, monkeypatch):
    monkeypatch.delenv(import_workers.ENV, raising=False)
    files = [(book / "accounts.csv", "accounts", "csv")]
    tables = {t.name: t for t in CORE_TABLES}
    assert not import_workers.use_workers({}, [], 0, None)
    assert import_workers.use_workers(tables, files, import_workers.MIN_BYTES, None)
    assert not import_workers.use_workers(tables, files, import_workers.MIN_BYTES - 1, None)
    monkeypatch.setenv(import_workers.ENV, "1")
    assert import_workers.use_workers(tables, files, 10, None)
    monkeypatch.setenv(import_workers.ENV, "0")
    assert not import_workers.use_workers(tables, files, import_workers.MIN_BYTES, None)
    assert import_workers.use_workers(tables, files, 10, True)
    # a reference to a column that is not the sole primary key: one process (the store knows)
    odd = Table("odd", (C("id", required=True), C("owner", references="accounts.name")))
    assert not import_workers.use_workers(tables | {"odd": odd}, [(book / "odd.csv", "odd", "csv")], 10, True)


def test_pack_round_trip():
    rows = [["a\x1fb", 1, "x", ""], ["c", 2.5, "y", ""], ["", "", "z", ""]]
    flat = import_workers.unpack(import_workers.pack(rows))
    assert flat == [v for row in rows for v in row]
    assert import_workers.unpack(import_workers.pack([[]] * 3)) == []
