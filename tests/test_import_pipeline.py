"""The import's two halves (typed events between reader and writer), the bulk-load context, the rejects file."""

from __future__ import annotations

import csv
import gc
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kamrules import import_read
from kamrules.bulkload import bulk_load, collector_paused
from kamrules.errors import InputError
from kamrules.import_read import Batch, FileDone, Finished, ProblemFound, Progress, Reader, Reject, TableStart
from kamrules.importer import ImportRefused, import_paths
from kamrules.outputs import OutputRefused
from kamrules.store import Store


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def files(folder: Path) -> list[str]:
    """The names in ``folder`` but the store's (kamrules.db and its companions)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("kamrules.db"))


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the reader: typed events, no store writes --------------------------------------
def test_the_reader_sends_typed_events_and_writes_nothing(store, tmp_path):
    accounts = write(tmp_path / "accounts.csv", "id,name,tier\nA1,Acme,key\nA2,Globex,vip\nA3,Initech,mid\n")
    store.conn.execute("PRAGMA user_version")  # the store file exists
    before = digest(store.path)
    events: list = []
    reader = Reader(store.tables, store.pm, events.append, lambda t, c: set(), lambda t: set(), records=True)
    reader.run([(accounts, "accounts", "csv")], lambda path: "utf-8")
    kinds = [type(e) for e in events]
    assert kinds[0] is TableStart and kinds[-2:] == [FileDone, Finished]
    assert {k.__module__ for k in kinds} == {"kamrules.import_read"}  # no string-tagged tuples
    [batch] = [e for e in events if type(e) is Batch]
    assert batch.lines == [2, 4] and [r[0] for r in batch.rows] == ["A1", "A3"]
    [reject] = [e for e in events if type(e) is Reject]
    assert (reject.table, reject.line, reject.record) == ("accounts", 3, {"id": "A2", "name": "Globex", "tier": "vip"})
    assert "'vip' is not allowed" in reject.problems[0].message
    assert events[-2].entry["rows"] == 3
    assert digest(store.path) == before and store.count("accounts") == 0


def test_a_broken_file_is_one_fatal_problem_event(store, tmp_path):
    accounts = write(tmp_path / "accounts.csv", "id,name\nA1,X\n")  # no tier column
    events: list = []
    Reader(store.tables, store.pm, events.append, lambda t, c: set(), lambda t: set(), records=False).run(
        [(accounts, "accounts", "csv")], lambda path: "utf-8"
    )
    problems = [e for e in events if type(e) is ProblemFound]
    assert problems and all(p.fatal for p in problems) and "tier" in str(problems[0].problem)
    assert not any(type(e) in (Batch, Progress) for e in events)


def test_no_import_cycle_between_importer_and_its_worker():
    code = "import sys, kamrules.import_workers; print('kamrules.importer' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert not hasattr(import_read, "Writer")  # the reader knows nothing of the store-writing half


# -- the bulk-load context ------------------------------------------------------------
@pytest.mark.parametrize("enabled", [True, False])
def test_collector_paused_restores_what_it_found(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(RuntimeError), collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("x")
        assert gc.isenabled() is enabled
        frozen = gc.get_freeze_count()
        with collector_paused(freeze=True):
            assert gc.get_freeze_count() > frozen
        assert gc.get_freeze_count() == frozen
    finally:
        (gc.enable if was else gc.disable)()


def test_bulk_load_rolls_back_and_restores_the_pragmas(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE t (a)")
    conn.execute("PRAGMA foreign_keys = ON")
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    with pytest.raises(RuntimeError), bulk_load(conn, "x.db"):
        assert conn.in_transaction and conn.execute("PRAGMA foreign_keys").fetchone()[0] == 0
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("refused")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with bulk_load(conn, "x.db"):
        conn.execute("INSERT INTO t VALUES (2)")
    assert conn.execute("SELECT a FROM t").fetchall() == [(2,)]
    assert (
        conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        and conn.execute("PRAGMA cache_size").fetchone()[0] == cache
    )
    other = sqlite3.connect(tmp_path / "x.db", isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(InputError, match="x.db: cannot write to the store"), bulk_load(conn, "x.db"):
        pass
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


# -- the --skip-invalid file ----------------------------------------------------------
BAD = "id,name,tier\nA1,Acme,key\nA2,Globex,vip\n"


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "worker"])
def test_rejects_never_touch_an_existing_part_file(store, tmp_path, parallel):
    accounts = write(tmp_path / "d" / "accounts.csv", BAD)
    rejects = tmp_path / "rejects.csv"
    part = write(tmp_path / "rejects.csv.part", "someone else's file\n")
    report = import_paths(store, [accounts], skip_invalid=rejects, parallel=parallel)
    assert report.rejected == 1 and part.read_text(encoding="utf-8") == "someone else's file\n"
    rows = list(csv.DictReader(open(rejects, newline="", encoding="utf-8-sig")))
    assert [r["line"] for r in rows] == ["3"]
    assert files(tmp_path) == ["d", "rejects.csv", "rejects.csv.part"]


def test_a_refused_import_leaves_the_old_rejects_file(store, tmp_path):
    accounts = write(tmp_path / "accounts.csv", "id,name\nA1,X\n")  # refused whatever --skip-invalid says
    rejects = write(tmp_path / "rejects.csv", "the previous run's rejects\n")
    with pytest.raises(ImportRefused):
        import_paths(store, [accounts], skip_invalid=rejects)
    assert rejects.read_text(encoding="utf-8") == "the previous run's rejects\n"
    assert files(tmp_path) == ["accounts.csv", "rejects.csv"]


def test_kill_9_mid_import_leaves_no_partial_rejects_file(tmp_path):
    accounts = write(tmp_path / "d" / "accounts.csv", BAD * 1 + "".join(f"B{i},N,vip\n" for i in range(50)))
    rejects = write(tmp_path / "out" / "rejects.csv", "the previous run's rejects\n")
    code = (
        "import os, signal\n"
        "from kamrules.store import Store\n"
        "def progress(done, total):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"  # the rejects are written, the file not yet in place
        f"Store.open({str(tmp_path / 'k.db')!r}).import_paths([{str(accounts)!r}], skip_invalid={str(rejects)!r}, progress=progress)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == -9, done.stderr
    assert rejects.read_text(encoding="utf-8") == "the previous run's rejects\n"
    left = sorted(p.name for p in rejects.parent.iterdir())
    o_tmpfile = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
    assert left == ["rejects.csv"] if o_tmpfile else all(n == "rejects.csv" or n.startswith(".kamrules-") for n in left)


def test_rejects_cells_cannot_become_formulas(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "=1+2" / "accounts.csv", BAD)
    rejects = tmp_path / "rejects.csv"
    import_paths(store, ["=1+2/accounts.csv"], skip_invalid=rejects)
    with open(rejects, newline="", encoding="utf-8-sig") as f:
        [row] = list(csv.DictReader(f))
    assert row["file"] == "'=1+2/accounts.csv" and row["line"] == "3"
    assert row["reason"].startswith("tier: ")


# -- the --skip-invalid path is checked by the library -------------------------------
def test_import_paths_refuses_the_store_as_rejects_file(tmp_path):
    accounts = write(tmp_path / "accounts.csv", BAD)
    with Store.open(tmp_path / "k.db") as store:
        before = digest(store.path)
        for target in (store.path, Path(str(store.path) + "-wal")):
            with pytest.raises(OutputRefused, match="is the store"):
                import_paths(store, [accounts], skip_invalid=target)
        with pytest.raises(OutputRefused, match="is an input file"):
            store.import_paths([tmp_path], skip_invalid=accounts)
        assert store.count("accounts") == 0
    assert digest(tmp_path / "k.db") == before
    assert accounts.read_text(encoding="utf-8") == BAD
