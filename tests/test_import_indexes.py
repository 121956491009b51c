"""Import into empty tables drops their plain indexes and rebuilds them once: same schema after, also after a refusal."""

from __future__ import annotations

import pytest

from kamrules.import_report import ImportRefused
from kamrules.store import Store

pytestmark = pytest.mark.usefixtures("import_mode")  # each test on the serial and the worker import


def schema(store):
    return sorted(r[0] for r in store.conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))


def indexes(store, table):
    return {r[1] for r in store.conn.execute(f'PRAGMA index_list("{table}")')}


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


ACCOUNTS = "id,name,tier,owner\nA1,甲公司,key,王芳\nA2,乙公司,mid,李娜\n"


def test_indexes_rebuilt_after_import_into_empty_tables(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        before = schema(store)
        assert "idx_accounts_owner" in indexes(store, "accounts")
        store.import_paths([write(tmp_path / "accounts.csv", ACCOUNTS)])
        assert schema(store) == before
        plan = " ".join(
            r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM accounts WHERE owner = '王芳'")
        )
        assert "idx_accounts_owner" in plan
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_refused_import_keeps_the_indexes(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        before = schema(store)
        (tmp_path / "book").mkdir()
        write(tmp_path / "book" / "accounts.csv", ACCOUNTS)
        write(tmp_path / "book" / "orders.csv", "id,account_id,date,amount\nO1,A9,2026-01-02,10\n")
        with pytest.raises(ImportRefused):
            store.import_paths([tmp_path / "book"])
        assert schema(store) == before
        assert store.count("accounts") == 0


def test_import_into_filled_table_keeps_its_indexes(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        before = schema(store)
        store.import_paths([write(tmp_path / "accounts.csv", ACCOUNTS)])
        store.import_paths([write(tmp_path / "accounts.csv", ACCOUNTS.replace("王芳", "赵强"))])
        assert schema(store) == before
        assert [r[0] for r in store.conn.execute("SELECT id FROM accounts WHERE owner = '赵强'")] == ["A1"]
