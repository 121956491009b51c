"""The store: schema from the contract, enforced foreign keys, migrations, query helpers (real SQLite files)."""

from __future__ import annotations

import sqlite3

import pytest

from kamrules import migrations
from kamrules.errors import InputError
from kamrules.store import Store


def test_open_creates_every_contract_table(tmp_path):
    path = tmp_path / "new" / "k.db"
    path.parent.mkdir()
    with Store.open(path) as store:
        assert store.schema_version == migrations.latest_version() >= 1
        names = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert set(store.tables) <= names
        assert set(store.tables) >= {
            "accounts",
            "stage_history",
            "contacts",
            "channels",
            "activities",
            "orders",
            "concessions",
            "commitments",
            "complaints",
        }
    # readable by plain sqlite3 with the contract's names and types
    conn = sqlite3.connect(path)
    cols = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(orders)")}
    assert cols == {"id": "TEXT", "account_id": "TEXT", "date": "TEXT", "amount": "REAL", "margin": "REAL"}
    pk = [r[1] for r in conn.execute("PRAGMA table_info(stage_history)") if r[5]]
    assert pk == ["account_id", "stage", "entered_on"]
    fks = {(r[3], r[2], r[4]) for r in conn.execute("PRAGMA foreign_key_list(activities)")}
    assert fks == {("account_id", "accounts", "id"), ("contact_id", "contacts", "id")}
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(orders)")}
    assert "idx_orders_account_id_date" in indexes
    conn.close()


def test_init_is_idempotent(store):
    store.db["accounts"].insert({"id": "A1", "name": "华为", "tier": "key"})
    store.init()
    store.init()
    assert store.count("accounts") == 1
    assert store.has_rows("accounts") and not store.has_rows("orders")


def test_foreign_keys_are_enforced(store):
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("INSERT INTO orders (id, account_id, date, amount) VALUES ('O1', 'nobody', '2026-01-01', 1)")


def test_defaults_from_the_contract(store):
    store.conn.execute("INSERT INTO accounts (id, name, tier) VALUES ('A1', 'X', 'key')")
    assert next(store.query("SELECT status FROM accounts"))["status"] == "active"


def test_query_helpers(store):
    store.conn.executemany(
        "INSERT INTO accounts (id, name, tier) VALUES (?, ?, ?)", [("A1", "甲", "key"), ("A2", "乙", "small")]
    )
    rows = list(store.query("SELECT id, name FROM accounts WHERE tier = :tier", {"tier": "key"}))
    assert rows == [{"id": "A1", "name": "甲"}]
    assert list(store.query("SELECT count(*) AS n FROM accounts WHERE tier = ?", ["small"])) == [{"n": 1}]
    assert store.count("accounts") == 2 and store.count("no_such_table") == 0
    assert store.db["accounts"].count == 2


def test_upgrade_a_version_1_store_in_place(tmp_path):
    path = tmp_path / "old.db"
    with Store.open(path, migrations=[(1, migrations.create_core_schema)]) as old:
        assert old.schema_version == 1
        old.conn.execute("INSERT INTO accounts (id, name, tier) VALUES ('A1', '旧客户', 'mid')")

    def add_notes_table(store):
        store.conn.execute("CREATE TABLE account_notes (account_id TEXT REFERENCES accounts(id), note TEXT)")
        store.conn.execute("INSERT INTO account_notes SELECT id, 'migrated' FROM accounts")

    steps = [(1, migrations.create_core_schema), (2, add_notes_table)]
    with Store.open(path, migrations=steps) as new:
        assert new.schema_version == 2
        assert list(new.query("SELECT * FROM account_notes")) == [{"account_id": "A1", "note": "migrated"}]
        assert new.count("accounts") == 1
    with Store.open(path, migrations=steps) as again:  # nothing left to apply
        assert again.schema_version == 2 and again.count("account_notes") == 1


def test_failed_migration_step_rolls_back(tmp_path):
    path = tmp_path / "k.db"
    Store.open(path, migrations=[(1, migrations.create_core_schema)]).close()

    def broken(store):
        store.conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("step failed")

    with pytest.raises(RuntimeError):
        Store.open(path, migrations=[(1, migrations.create_core_schema), (2, broken)])
    with Store.open(path, migrations=[(1, migrations.create_core_schema)]) as store:
        assert store.schema_version == 1 and not store.table_exists("half_done")


def test_step_given_as_module_path(tmp_path):
    steps = [(1, "kamrules.migrations:create_core_schema")]
    with Store.open(tmp_path / "k.db", migrations=steps) as store:
        assert store.table_exists("accounts")


def test_newer_store_is_refused(tmp_path):
    path = tmp_path / "k.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(InputError, match="schema version 999 is newer than this kamrules supports"):
        Store.open(path)


def test_not_a_store(tmp_path):
    path = tmp_path / "k.db"
    path.write_text("id,name\n")
    with pytest.raises(InputError, match="not a SQLite database"):
        Store.open(path)


def test_plugin_table_created_on_open(tmp_path):
    from kamrules import hookimpl
    from kamrules.contract import C, Table
    from kamrules.plugins import make_plugin_manager

    Store.open(tmp_path / "k.db").close()  # a store made before the plugin was installed

    class Invoices:
        @hookimpl
        def register_tables(self):
            return [
                Table("invoices_x", (C("id", required=True), C("account_id", required=True, references="accounts.id")))
            ]

    pm = make_plugin_manager(load_entry_points=False, extra=[Invoices()])
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        assert "invoices_x" in store.tables and store.table_exists("invoices_x")
        assert {r[2] for r in store.conn.execute("PRAGMA foreign_key_list(invoices_x)")} == {"accounts"}
