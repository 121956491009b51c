"""Hostile input to `kamrules import`: each is refused with FILE:LINE and a documented exit code, or counted honestly; a refused import leaves the store file byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules import import_workers
from kamrules.cli import cli
from kamrules.contract import CORE_TABLES
from kamrules.generate import generate_to_dir
from kamrules.importer import ImportRefused, import_paths
from kamrules.readers import MAX_DEPTH, MAX_LINE_BREAKS
from kamrules.store import Store
from kamrules.validate import MAX_COLUMNS

ACCOUNTS = "id,name,tier\nA1,Acme,key\nA2,Globex,mid\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path) -> Path:
    """A store holding two accounts (what every refused import must leave exactly as it is)."""
    path = tmp_path / "k.db"
    with Store.open(path) as store:
        store.init()
        store.import_paths([write(tmp_path / "base" / "accounts.csv", ACCOUNTS)])
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def refused(db: Path, *args) -> list[str]:
    """Import through the CLI; it must exit 2 without a traceback and leave the store file unchanged."""
    before = digest(db)
    r = run("--db", db, "import", *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "the store was not changed" in r.output
    assert digest(db) == before
    return r.stderr.splitlines()[1:]


def worker(monkeypatch, parallel: bool) -> None:
    monkeypatch.setenv(import_workers.ENV, "1" if parallel else "0")


both = pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "worker"])


# -- 1. quotes ---------------------------------------------------------------
@both
def test_quote_never_closed_swallows_nothing(db, tmp_path, monkeypatch, parallel):
    worker(monkeypatch, parallel)
    rows = [f"B{i},Name {i},mid,ok" for i in range(97)]
    path = write(
        tmp_path / "accounts.csv", 'id,name,tier,notes\nB-1,Open,key,"the quote opens here\n' + "\n".join(rows) + "\n"
    )
    assert refused(db, path) == [
        f'{path}:2: a quoted value opened on this line is not closed before the end of the file (expected a closing quote ")'
    ]


@both
def test_quote_closed_far_below_is_refused(db, tmp_path, monkeypatch, parallel):
    worker(monkeypatch, parallel)
    rows = [f"B{i},Name {i},mid,ok" for i in range(150)]
    # the stray quote of 'a 5" screen' closes the value opened on line 3, 151 lines further
    path = write(
        tmp_path / "accounts.csv",
        'id,name,tier,notes\nB0,Fine,key,x\nB-1,Open,key,"opens\n'
        + "\n".join(rows)
        + '\nB999,Z,small,a 5"\nB1000,Y,mid,y\n',
    )
    [problem] = refused(db, path)
    assert problem.startswith(
        f"{path}:3: a quoted value opened on this line runs over 151 line breaks, to line 154 (expected at most {MAX_LINE_BREAKS} line breaks"
    )


def test_text_after_a_closing_quote_is_refused(db, tmp_path):
    path = write(tmp_path / "accounts.csv", 'id,name,tier\nB1,"Acme" Ltd,key\n')
    [problem] = refused(db, path)
    assert problem.startswith(f"{path}:2: malformed CSV:")


@both
def test_notes_over_a_few_lines_still_import(tmp_path, monkeypatch, parallel):
    worker(monkeypatch, parallel)
    notes = 'first line\nsecond, with a comma\n\n"quoted" fourth'
    text = 'id,name,tier,notes\nA1,Acme,key,"' + notes.replace('"', '""') + '"\nA2,Globex,gold,x\n'
    path = write(tmp_path / "accounts.csv", text)
    with Store.open(tmp_path / "k.db") as store:
        with pytest.raises(ImportRefused) as info:
            store.import_paths([path])
        # the bad row's line counts the notes' line breaks
        assert [str(p) for p in info.value.problems] == [
            f"{path}:6: tier: 'gold' is not allowed (expected one of: key, mid, small)"
        ]
        write(path, text.replace("gold", "mid"))
        assert store.import_paths([path]).inserted == 2
        assert next(store.query("SELECT notes FROM accounts WHERE id = 'A1'"))["notes"] == notes


# -- 3. rowid ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rowid", "OID", "_RowId_"])
def test_rowid_columns_refused(db, tmp_path, name):
    path = write(tmp_path / "accounts.csv", f"id,name,tier,{name}\nB1,a,key,1\nB2,b,key,1\n")
    [problem] = refused(db, path)
    assert problem.startswith(f"{path}:1: {name}: column name '{name}' is reserved")


def test_rowid_key_in_json_lines_refused(db, tmp_path):
    path = write(
        tmp_path / "accounts.jsonl",
        '{"id": "B1", "name": "a", "tier": "key"}\n{"id": "B2", "name": "b", "tier": "key", "ROWID": 1}\n',
    )
    [problem] = refused(db, path)
    assert problem.startswith(f"{path}:2: ROWID: column name 'ROWID' is reserved")


# -- 4. folders with entries that cannot be read -----------------------------
def test_unreadable_entries_in_a_folder_are_each_named(db, tmp_path):
    folder = tmp_path / "data"
    write(folder / "accounts.csv", "id,name,tier\nB1,a,key\n")
    (folder / "orders.csv").symlink_to(tmp_path / "gone.csv")
    (folder / "activities.csv").mkdir()
    os.mkfifo(folder / "contacts.csv")  # opening it would wait for a writer forever
    (folder / "complaints.csv").symlink_to(folder / "complaints.csv")
    problems = refused(db, folder)
    assert sorted(problems) == sorted(
        [
            f"{folder}/activities.csv: a folder named like a data file (expected a readable data file)",
            f"{folder}/complaints.csv: cannot be read: Too many levels of symbolic links (expected a readable data file)",
            f"{folder}/contacts.csv: not a regular file (a pipe, socket or device; expected a readable data file)",
            f"{folder}/orders.csv: a symbolic link to a file that does not exist (expected a readable data file)",
        ]
    )


def test_a_pipe_given_by_name_is_refused(db, tmp_path):
    os.mkfifo(tmp_path / "accounts.csv")
    assert refused(db, tmp_path / "accounts.csv") == [
        f"{tmp_path}/accounts.csv: not a regular file (a pipe, socket or device; expected a readable data file)"
    ]


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads a file whatever its mode: no unreadable file to test with",
)
def test_unreadable_file_is_refused(db, tmp_path):
    path = write(tmp_path / "data" / "orders.csv", "id,account_id,date,amount\n")
    path.chmod(0)
    [problem] = refused(db, tmp_path / "data")
    assert problem.startswith(f"{path}: cannot be read: Permission denied")


# -- 5. numbers, nesting, columns ----------------------------------------------
@both
def test_integer_beyond_64_bits_refused(db, tmp_path, monkeypatch, parallel):
    worker(monkeypatch, parallel)
    big = "9" * 23
    path = write(
        tmp_path / "activities.csv",
        f"id,account_id,date,kind,duration_minutes\nX1,A1,2025-01-01,call,45\nX2,A1,2025-01-02,call,{big}\nX3,A1,2025-01-02,call,-{big}\n",
    )
    assert refused(db, path) == [
        f"{path}:3: duration_minutes: '{big}' is out of range (expected a whole number from -9223372036854775808 to 9223372036854775807)",
        f"{path}:4: duration_minutes: '-{big}' is out of range (expected a whole number from -9223372036854775808 to 9223372036854775807)",
    ]


def test_integer_beyond_64_bits_in_json_and_skipped(db, tmp_path):
    path = write(
        tmp_path / "activities.jsonl",
        '{"id": "X1", "account_id": "A1", "date": "2025-01-01", "kind": "call", "duration_minutes": 1e30}\n'
        '{"id": "X2", "account_id": "A1", "date": "2025-01-01", "kind": "call", "duration_minutes": 9223372036854775807}\n',
    )
    [problem] = refused(db, path)
    assert problem.startswith(f"{path}:1: duration_minutes: '1000000000000000019884624838656' is out of range")
    r = run("--db", db, "import", path, "--skip-invalid", tmp_path / "rejects.csv")
    assert r.exit_code == 1 and "Traceback" not in r.output
    with Store.open(db) as store:
        assert next(store.query("SELECT duration_minutes FROM activities"))["duration_minutes"] == 9223372036854775807


def test_number_with_thousands_of_digits_in_json(db, tmp_path):
    path = write(
        tmp_path / "accounts.jsonl",
        '{"id": "B1", "name": "a", "tier": "key"}\n{"id": "B2", "name": "b", "tier": "key", "score": '
        + "7" * 5000
        + "}\n",
    )
    assert refused(db, path) == [
        f"{path}:2: invalid JSON: a number with too many digits (expected at most {sys.get_int_max_str_digits()} digits)"
    ]
    path = write(
        tmp_path / "accounts.json",
        '[{"id": "B1", "name": "a", "tier": "key"},\n {"id": "B2", "name": "b", "tier": "key", "score": '
        + "7" * 5000
        + "}]\n",
    )
    assert refused(db, path) == [
        f"{path}:2: invalid JSON: a number with too many digits (expected at most {sys.get_int_max_str_digits()} digits)"
    ]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_json_nested_too_deep(db, tmp_path, depth, suffix):
    value = "[" * depth + "]" * depth
    record = '{"id": "B1", "name": "a", "tier": "key", "extra": ' + value + "}"
    path = write(tmp_path / f"accounts.{suffix}", record + "\n" if suffix == "jsonl" else "[\n" + record + "\n]\n")
    [problem] = refused(db, path)
    assert problem.startswith(f"{path}:{1 if suffix == 'jsonl' else 2}: ") and f"at most {MAX_DEPTH} levels" in problem


def test_json_nested_within_the_limit_is_kept_as_text(tmp_path):
    value = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    path = write(tmp_path / "accounts.jsonl", '{"id": "B1", "name": "a", "tier": "key", "extra": ' + value + "}\n")
    with Store.open(tmp_path / "k.db") as store:
        store.import_paths([path])
        assert next(store.query("SELECT extra FROM accounts"))["extra"] == value


def test_header_with_thousands_of_columns(db, tmp_path):
    n = 3000
    path = write(
        tmp_path / "accounts.csv", "id,name,tier," + ",".join(f"c{i}" for i in range(n)) + "\nB1,a,key" + "," * n + "\n"
    )
    assert refused(db, path) == [f"{path}:1: the header has {n + 3} columns (expected at most {MAX_COLUMNS})"]


def test_extra_columns_capped_across_imports(db, tmp_path):
    first = write(
        tmp_path / "one" / "accounts.csv",
        "id,name,tier," + ",".join(f"a{i}" for i in range(600)) + "\nB1,a,key" + "," * 600 + "\n",
    )
    assert run("--db", db, "import", first).exit_code == 0
    second = write(
        tmp_path / "two" / "accounts.csv",
        "id,name,tier," + ",".join(f"b{i}" for i in range(600)) + "\nB2,a,key" + "," * 600 + "\n",
    )
    [problem] = refused(db, second)
    assert (
        problem.startswith(f"{second}:1: 600 new columns would give table accounts ")
        and f"(expected at most {MAX_COLUMNS} in all)" in problem
    )


def test_extra_column_differing_only_in_case_is_the_same_column(tmp_path):
    with Store.open(tmp_path / "k.db") as store:
        store.import_paths([write(tmp_path / "a" / "accounts.csv", "id,name,tier,crm_score\nB1,a,key,1\n")])
        report = store.import_paths([write(tmp_path / "b" / "accounts.csv", "id,name,tier,CRM_Score\nB1,a,key,2\n")])
        assert report.updated == 1
        assert next(store.query("SELECT crm_score FROM accounts"))["crm_score"] == "2"


# -- 6. counts and --skip-invalid ----------------------------------------------
@both
def test_reimport_counts_unchanged_rows(tmp_path, monkeypatch, parallel):
    worker(monkeypatch, parallel)
    with Store.open(tmp_path / "k.db") as store:
        path = write(
            tmp_path / "accounts.csv", "id,name,tier,owner\nA1,Acme,key,Li\nA2,Globex,mid,\nA3,Initech,small,Wang\n"
        )
        assert (store.import_paths([path]).inserted, store.count("accounts")) == (3, 3)
        again = store.import_paths([path])
        assert vars(again.tables["accounts"]) == {"inserted": 0, "updated": 0, "unchanged": 3, "rejected": 0}
        write(path, "id,name,tier,owner\nA1,Acme,key,Li\nA2,Globex,mid,Zhao\nA3,Initech,small,Wang\nA4,Umbrella,key,\n")
        changed = store.import_paths([path])
        assert vars(changed.tables["accounts"]) == {"inserted": 1, "updated": 1, "unchanged": 2, "rejected": 0}
        # a new extra column with a value changes the row; a blank one does not
        write(path, "id,name,tier,owner,crm\nA1,Acme,key,Li,7\nA2,Globex,mid,Zhao,\n")
        assert vars(store.import_paths([path]).tables["accounts"]) == {
            "inserted": 0,
            "updated": 1,
            "unchanged": 1,
            "rejected": 0,
        }
        assert "unchanged" in str(changed) and json.loads(json.dumps(changed.to_dict()))["unchanged"] == 2


def test_an_identical_key_twice_is_still_a_duplicate(db, tmp_path):
    path = write(tmp_path / "accounts.csv", "id,name,tier\nA1,Acme,key\nA1,Acme,key\n")
    [problem] = refused(db, path)
    assert problem.startswith(f"{path}:3: id: duplicate id 'A1'")


def test_skip_invalid_exit_codes(db, tmp_path):
    rejects = tmp_path / "rejects.csv"
    good = write(tmp_path / "good" / "accounts.csv", "id,name,tier\nB1,a,key\n")
    r = run("--db", db, "import", good, "--skip-invalid", rejects)
    assert r.exit_code == 0 and "row(s) refused" not in r.output
    bad = write(tmp_path / "bad" / "accounts.csv", "id,name,tier\nB2,a,key\nB3,b,gold\n")
    r = run("--db", db, "import", bad, "--skip-invalid", rejects)
    assert r.exit_code == 1 and "1 row(s) refused" in r.stderr and "Traceback" not in r.output
    with Store.open(db) as store:
        assert store.count("accounts") == 4  # A1, A2, B1, B2


# -- 7. the worker killed in the middle of a message ---------------------------
@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("book") / "csv"
    generate_to_dir(folder, 300, seed=1, as_of="2026-10-31")
    return folder


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="the import worker needs fork")
def test_worker_killed_mid_message_is_exit_3(book, db, monkeypatch):
    # A one-page pipe: the worker, ahead of the parent, blocks in the middle of a message
    monkeypatch.setattr(import_workers, "PIPE_SIZE", 4096)
    before = digest(db)
    killed = []

    def progress(done, total):  # runs in the parent, which reads nothing meanwhile
        if not killed:
            [child] = [p for p in multiprocessing.active_children() if p.name == "kamrules-import"]
            time.sleep(0.5)
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
            killed.append(child.exitcode)

    with Store.open(db) as store:
        with pytest.raises(import_workers.ImportWorkerError) as info:
            import_paths(store, [book], parallel=True, progress=progress)
        assert not store.conn.in_transaction
    assert killed == [-signal.SIGKILL]
    assert info.value.exit_code == 3 and "killed by signal 9" in str(info.value)
    assert digest(db) == before
    assert not multiprocessing.active_children()


# -- 8. portability --------------------------------------------------------------
def test_worker_choice_without_sched_getaffinity(book, monkeypatch):
    monkeypatch.delenv(import_workers.ENV, raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    tables = {t.name: t for t in CORE_TABLES}
    files = [(book / "accounts.csv", "accounts", "csv")]
    assert not import_workers.use_workers(tables, files, import_workers.MIN_BYTES, None)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert import_workers.use_workers(tables, files, import_workers.MIN_BYTES, None)


def test_import_modules_load_without_fcntl(tmp_path):
    """As on Windows: no fcntl module. The import modules load, and an import (the worker too) runs."""
    accounts = write(tmp_path / "accounts.csv", ACCOUNTS)
    code = (
        "import sys; sys.modules['fcntl'] = None\n"
        "from kamrules import import_workers, importer\n"
        "from kamrules.store import Store\n"
        f"s = Store.open({str(tmp_path / 'k.db')!r})\n"
        f"print(importer.import_paths(s, [{str(accounts)!r}], parallel=True).inserted)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr


# -- no tracebacks ------------------------------------------------------------------
def test_no_hostile_input_gives_a_traceback(db, tmp_path):
    cases = {
        "accounts.csv": 'id,name,tier,notes\nB1,a,key,"open\n' + "B2,b,key,x\n" * 200,
        "activities.jsonl": '{"id": "X1", "account_id": "A1", "date": "2025-01-01", "kind": "call", "duration_minutes": '
        + "9" * 30
        + "}\n",
        "orders.jsonl": '{"id": "O1", "extra": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}\n",
        "contacts.json": '[{"id": ' + "1" * 6000 + "}]",
        "complaints.csv": "id," + ",".join(f"c{i}" for i in range(5000)) + "\n",
        "channels.csv": "account_id,kind,Rowid\nA1,technical,1\n",
    }
    for name, text in cases.items():
        path = write(tmp_path / "hostile" / name, text)
        for extra in ([], ["--skip-invalid", tmp_path / "rejects.csv"]):
            before = digest(db)
            r = run("--db", db, "import", path, *extra)
            assert "Traceback" not in r.output, (name, r.output)
            if extra and r.exit_code == 1:  # a refused row, skipped
                assert "1 row(s) refused" in r.stderr
                continue
            assert r.exit_code == 2, (name, r.output)
            assert digest(db) == before
