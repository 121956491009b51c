"""A SQLite file that isn't a kamrules store is refused and left untouched (issue 11); `init --force` adopts it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules.cli import cli
from kamrules.errors import InputError
from kamrules.store import APPLICATION_ID, Store


@pytest.fixture(autouse=True)
def _clean_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB", "KAMRULES_PLUGINS_DIR", "KAMRULES_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


def foreign_db(path: Path, user_version: int = 0, app_id: int = 0) -> Path:
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO customers (name) VALUES ('ACME')")
        c.execute(f"PRAGMA user_version = {user_version}")
        c.execute(f"PRAGMA application_id = {app_id}")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as c:
        return sorted(r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


COMMANDS = [
    ["check"],
    ["check", "--no-history"],
    ["import", "data"],
    ["explain", "A1"],
    ["alerts"],
    ["alerts", "list"],
    ["silence", "list"],
    ["notify", "list"],
    ["init"],
    ["generate", "--accounts", "3"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
@pytest.mark.parametrize("version", [0, 1])  # "other tables, no kamrules schema version"; a version of its own
def test_every_command_refuses_a_foreign_database(tmp_path, args, version):
    db = foreign_db(tmp_path / "crm.db", user_version=version)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "accounts.csv").write_text("id,name,tier\nA1,x,key\n", encoding="utf-8")
    before = digest(db)
    r = CliRunner().invoke(cli, ["--db", str(db)] + args)
    assert r.exit_code == 2, r.output
    assert f"{db}: not a kamrules store" in r.output and "customers" in r.output
    assert "Traceback" not in r.output
    assert digest(db) == before and tables(db) == ["customers"]


def test_another_applications_id_is_refused(tmp_path):
    db = foreign_db(tmp_path / "app.db", app_id=0x12345678)
    with pytest.raises(InputError, match="another application"):
        Store.open(db)
    assert tables(db) == ["customers"]


def test_init_force_adopts_a_foreign_database(tmp_path):
    db = foreign_db(tmp_path / "crm.db")
    r = CliRunner().invoke(cli, ["--db", str(db), "init", "--force"])
    assert r.exit_code == 0, r.output
    assert "customers" in tables(db) and "accounts" in tables(db)
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT name FROM customers").fetchall() == [("ACME",)]
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    r = CliRunner().invoke(cli, ["--db", str(db), "check", "--no-history"])  # a store now
    assert "not a kamrules store" not in r.output


@pytest.mark.parametrize("how", ["new", "empty"])
def test_a_new_path_or_an_empty_file_is_still_created(tmp_path, how):
    db = tmp_path / "k.db"
    if how == "empty":
        db.write_bytes(b"")
    r = CliRunner().invoke(cli, ["--db", str(db), "init"])
    assert r.exit_code == 0, r.output
    assert "accounts" in tables(db)


def test_a_store_from_before_the_application_id_is_still_a_store(tmp_path):
    db = tmp_path / "old.db"
    with Store.open(db) as s:
        s.conn.execute("PRAGMA application_id = 0")  # as every store made before this change
    with Store.open(db) as s:
        assert s.schema_version >= 1
        assert s.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_not_sqlite_at_all(tmp_path):
    db = tmp_path / "notes.db"
    db.write_text("hello, this is not a database\n" * 10, encoding="utf-8")
    before = digest(db)
    r = CliRunner().invoke(cli, ["--db", str(db), "check"])
    assert r.exit_code == 2 and "not a SQLite database" in r.output, r.output
    assert digest(db) == before


def test_a_fifo_as_store_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.db")
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "pipe.db"), "init"])
    assert r.exit_code == 2 and "not a plain file" in r.output, r.output


def test_missing_folder_suggests_creating_it(tmp_path):
    db = tmp_path / "no" / "such" / "x.db"
    r = CliRunner().invoke(cli, ["--db", str(db), "check"])
    assert r.exit_code == 2
    assert f"mkdir -p {db.parent}" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args", [["test"], ["plugin", "new"]])
def test_commands_without_a_store_have_no_db_option(args):
    r = CliRunner().invoke(cli, args + ["--help"])
    assert r.exit_code == 0 and "--db FILE" not in r.output and "account store (SQLite" not in r.output
