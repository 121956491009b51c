"""The init / import / generate commands: exit codes, clean messages, summaries (real store files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules.cli import cli

pytestmark = pytest.mark.usefixtures("import_mode")  # each test on the serial and the worker import

DATA = Path(__file__).parent / "data"


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_init_then_import_then_reimport(tmp_path):
    db = str(tmp_path / "k.db")
    r = run("init", "--db", db)
    assert r.exit_code == 0 and "schema version" in r.output
    r = run("--db", db, "import", str(DATA / "book"))
    assert r.exit_code == 0, r.stderr
    assert "accounts" in r.output and "inserted" in r.output and "rows/s" in r.output
    r = run("import", str(DATA / "book"), "--db", db, "--format", "json")
    data = json.loads(r.stdout)
    assert data["tables"]["accounts"] == {"inserted": 0, "updated": 0, "unchanged": 3, "rejected": 0}
    assert data["unchanged"] == 21 and data["updated"] == 0 and data["inserted"] == 0


def test_bad_input_exit_2_no_traceback(tmp_path):
    db = str(tmp_path / "k.db")
    (tmp_path / "accounts.csv").write_text("id,name,tier\nA1,X,gold\n", encoding="utf-8")
    r = run("--db", db, "import", str(tmp_path / "accounts.csv"))
    assert r.exit_code == 2
    assert "Traceback" not in r.stderr
    assert f"{tmp_path / 'accounts.csv'}:2: tier: 'gold' is not allowed (expected one of: key, mid, small)" in r.stderr
    assert "the store was not changed" in r.stderr


def test_skip_invalid_and_encoding_options(tmp_path):
    db = str(tmp_path / "k.db")
    rejects = tmp_path / "rejects.csv"
    (tmp_path / "accounts.csv").write_text("id,name,tier\nA1,X,key\nA2,Y,gold\n", encoding="utf-8")
    r = run("--db", db, "import", str(tmp_path / "accounts.csv"), "--skip-invalid", str(rejects))
    assert r.exit_code == 1 and "1 row(s) refused" in r.stderr and rejects.exists()
    r = run("--db", db, "import", str(DATA / "gbk" / "accounts.csv"), "--encoding", "gbk")
    assert r.exit_code == 0
    r = run("--db", db, "import", str(DATA / "gbk" / "accounts.csv"), "--encoding", "klingon")
    assert r.exit_code == 2 and "unknown encoding 'klingon'" in r.stderr


def test_table_option(tmp_path):
    db = str(tmp_path / "k.db")
    (tmp_path / "export.tsv").write_text("id\tname\ttier\nA1\t华为\tkey\n", encoding="utf-8")
    r = run("--db", db, "import", str(tmp_path / "export.tsv"), "--table", "accounts", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["tables"]["accounts"]["inserted"] == 1


def test_generate_to_dir_and_db(tmp_path):
    r = run("generate", "--accounts", "30", "--out", str(tmp_path / "book"), "--seed", "1", "--as-of", "2026-10-31")
    assert r.exit_code == 0 and (tmp_path / "book" / "orders.csv").exists()
    r = run("generate", "--accounts", "30", "--db", str(tmp_path / "g.db"), "--seed", "1", "--as-of", "2026-10-31")
    assert r.exit_code == 0 and "30 accounts" in r.output
    r = run("generate", "--accounts", "30", "--db", str(tmp_path / "g.db"), "--seed", "1", "--as-of", "2026-10-31")
    assert r.exit_code == 2 and "already holds a generated book" in r.stderr
    r = run("generate", "--accounts", "5", env={"KAMRULES_DB": ""})
    assert r.exit_code == 2 and "needs --out DIR or --db PATH" in r.stderr
    r = run("generate", "--accounts", "5", "--out", str(tmp_path / "j"), "--format", "jsonl", "--as-of", "2026-02-30")
    assert r.exit_code == 2 and "is not a date" in r.stderr


def test_help_has_examples():
    for command in ("init", "import", "generate"):
        r = run(command, "--help")
        assert r.exit_code == 0 and "Examples:" in r.output and "--db" in r.output
