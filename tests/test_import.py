"""Import: formats, encodings, upsert, atomicity, every validation message, --skip-invalid (real SQLite files)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from kamrules.errors import InputError
from kamrules.importer import ImportRefused

pytestmark = pytest.mark.usefixtures("import_mode")  # each test on the serial and the worker import

DATA = Path(__file__).parent / "data"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


ACCOUNTS = "id,name,tier\nA1,华为技术有限公司,key\nA2,Acme Trading Ltd,small\n"


def refused(store, paths, **kw) -> list[str]:
    """The problem lines of a refused import (and the store must be unchanged)."""
    before = {t: store.count(t) for t in store.tables}
    with pytest.raises(ImportRefused) as info:
        store.import_paths(paths, **kw)
    assert {t: store.count(t) for t in store.tables} == before
    assert info.value.exit_code == 2
    return [str(p) for p in info.value.problems]


def test_folder_in_dependency_order_all_formats(store):
    report = store.import_paths([DATA / "book"])
    assert [f["table"] for f in report.files][:2] == ["accounts", "stage_history"] or report.files[0][
        "table"
    ] == "accounts"
    counts = {name: c.inserted for name, c in report.tables.items()}
    assert counts == {
        "accounts": 3,
        "stage_history": 3,
        "contacts": 2,
        "channels": 2,
        "activities": 3,
        "orders": 3,
        "commitments": 1,
        "concessions": 2,
        "complaints": 2,
    }
    assert report.updated == 0 and report.rejected == 0
    a1 = next(store.query("SELECT * FROM accounts WHERE id = :id", {"id": "A1"}))
    assert a1["name"] == "华为技术有限公司" and a1["crm_score"] == "88"  # unknown column kept as TEXT
    assert a1["lost_reason"] is None
    chan = {r["kind"]: r["client_informed"] for r in store.query("SELECT * FROM channels")}
    assert chan == {"ka_manager": 1, "complaint": 1}  # 是 -> true
    assert [r["active"] for r in store.query("SELECT active FROM contacts ORDER BY id")] == [1, 1]
    r2 = next(store.query("SELECT * FROM concessions WHERE id = 'R2'"))
    assert r2["commitment_id"] is None and r2["amount"] == 1200.5
    notes = next(store.query("SELECT notes FROM activities WHERE id = 'V1'"))["notes"]
    assert notes == '客户反馈:"价格偏高", 需跟进'
    assert "inserted" in str(report) and "accounts" in str(report)


def test_round_trip_equals_input(store, tmp_path):
    from kamrules.generate import COLUMNS, generate_to_dir

    generate_to_dir(tmp_path / "book", 30, seed=7, as_of="2026-10-31")
    store.import_paths([tmp_path / "book"])
    for name, cols in COLUMNS.items():
        with open(tmp_path / "book" / f"{name}.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[0] == cols
        table = store.tables[name]
        got = list(store.query(f'SELECT * FROM "{name}" ORDER BY rowid'))
        assert len(got) == len(rows) - 1
        for src, row in zip(rows[1:], got, strict=True):
            for col, text in zip(cols, src, strict=True):
                value = row[col]
                kind = table.column(col).kind
                if text == "":
                    assert value is None
                elif kind == "float":
                    assert value == float(text)
                elif kind in ("int",):
                    assert value == int(text)
                elif kind == "bool":
                    assert value == (1 if text == "true" else 0)
                else:
                    assert value == text


def test_upsert_updates_and_says_so(store, tmp_path):
    write(tmp_path / "accounts.csv", ACCOUNTS)
    first = store.import_paths([tmp_path / "accounts.csv"])
    assert (first.tables["accounts"].inserted, first.tables["accounts"].updated) == (2, 0)
    write(tmp_path / "v2" / "accounts.csv", "id,name,tier\nA1,华为技术有限公司,mid\nA3,Globex Foods GmbH,small\n")
    second = store.import_paths([tmp_path / "v2" / "accounts.csv"])
    assert (second.tables["accounts"].inserted, second.tables["accounts"].updated) == (1, 1)
    assert store.count("accounts") == 3
    assert next(store.query("SELECT tier, status FROM accounts WHERE id = 'A1'")) == {"tier": "mid", "status": "active"}


def test_absent_column_keeps_value_on_update(store, tmp_path):
    write(tmp_path / "a" / "accounts.csv", "id,name,tier,owner\nA1,X,key,王伟\n")
    store.import_paths([tmp_path / "a"])
    write(tmp_path / "b" / "accounts.csv", "id,name,tier\nA1,X,key\n")
    store.import_paths([tmp_path / "b"])
    assert next(store.query("SELECT owner FROM accounts"))["owner"] == "王伟"


def test_one_bad_file_in_folder_leaves_store_untouched(store, tmp_path):
    folder = tmp_path / "book"
    shutil.copytree(DATA / "book", folder)
    write(folder / "orders.csv", "id,account_id,date,amount\nO1,A1,2026-01-15,12\nO2,A1,2026-02-30,10\n")
    problems = refused(store, [folder])
    assert problems == [f"{folder / 'orders.csv'}:3: date: '2026-02-30' is not a valid date (expected YYYY-MM-DD)"]
    assert store.count("accounts") == 0 and store.count("orders") == 0
    assert "crm_score" not in store.columns("accounts")  # the extra column went with the rollback


@pytest.mark.parametrize(
    "text, expected",
    [
        ("id,name\nA1,X\n", "accounts.csv:1: tier: required column is missing (expected a header with id, name, tier)"),
        ("id,name,tier\nA1,X,vip\n", "accounts.csv:2: tier: 'vip' is not allowed (expected one of: key, mid, small)"),
        ("id,name,tier\nA1,,key\n", "accounts.csv:2: name: missing value (expected a value: the column is required)"),
        (
            "id,name,tier,created_on\nA1,X,key,31.12.2025\n",
            "accounts.csv:2: created_on: '31.12.2025' is not a date (expected YYYY-MM-DD)",
        ),
        (
            "id,name,tier,owner_email\nA1,X,key,wang@\n",
            "accounts.csv:2: owner_email: 'wang@' is not an e-mail address (expected one address such as li.na@example.com)",
        ),
        (
            'id,name,tier,owner_email\nA1,X,key,"a@b.com\nBcc: x@evil.com"\n',
            "accounts.csv:2: owner_email: 'a@b.com\\nBcc: x@evil.com' contains a line break (expected one e-mail address on one line)",
        ),
        (
            'id,name,tier\nA1,"Evil\r\nCo",key\n',
            "accounts.csv:2: name: 'Evil\\r\\nCo' contains a line break (expected a single line)",
        ),
        (
            "id,name,tier\nA1,X,key\nA1,Y,mid\n",
            "accounts.csv:3: id: duplicate id 'A1' (already given earlier in this import; expected each once)",
        ),
        (
            "id,name,tier\nA1,X,key,extra\n",
            "accounts.csv:2: has 4 values but the header has 3 columns (expected one value per column)",
        ),
        (
            "id,name,tier,tier\nA1,X,key,key\n",
            "accounts.csv:1: tier: column appears twice in the header (columns 3 and 4; expected each column once)",
        ),
        ("", "accounts.csv: empty file (expected a header line with column names, or JSON data)"),
    ],
)
def test_account_messages(store, tmp_path, text, expected):
    write(tmp_path / "accounts.csv", text)
    assert refused(store, [tmp_path / "accounts.csv"]) == [f"{tmp_path}/{expected}"]


@pytest.mark.parametrize(
    "name, text, expected",
    [
        (
            "orders.csv",
            "id,account_id,date,amount\nO1,A9,2026-01-01,5\n",
            "orders.csv:2: account_id: 'A9' is not a known accounts.id (expected an id in accounts, in the store or in this import)",
        ),
        (
            "orders.csv",
            "id,account_id,date,amount\nO1,A1,2026-01-01,12abc\n",
            "orders.csv:2: amount: '12abc' is not a number (expected a decimal number such as 1234.5)",
        ),
        (
            "activities.csv",
            "id,account_id,date,kind,duration_minutes\nV1,A1,2026-01-01,visit,1.5h\n",
            "activities.csv:2: duration_minutes: '1.5h' is not a whole number (expected an integer such as 45)",
        ),
        (
            "activities.csv",
            "id,account_id,date,kind,contact_id\nV1,A1,2026-01-01,visit,P404\n",
            "activities.csv:2: contact_id: 'P404' is not a known contacts.id (expected an id in contacts, in the store or in this import)",
        ),
        (
            "concessions.csv",
            "id,account_id,date,kind,amount,commitment_id\nR1,A1,2026-01-01,rebate,5,K9\n",
            "concessions.csv:2: commitment_id: 'K9' is not a known commitments.id (expected an id in commitments, in the store or in this import)",
        ),
        (
            "contacts.csv",
            "id,account_id,name,active\nP1,A1,张敏,maybe\n",
            "contacts.csv:2: active: 'maybe' is not a boolean (expected true/false, yes/no, 1/0 or 是/否)",
        ),
        (
            "orders.jsonl",
            '{"id": "O1", "account_id": "A1", "date": "2026-01-01"}\n',
            "orders.jsonl:1: amount: missing value (expected a value: the column is required)",
        ),
        (
            "orders.jsonl",
            '{"id": "O1", "account_id": "A1", "date": "2026-01-01", "amount": 1}\n{"id": "O2",\n',
            "orders.jsonl:2: invalid JSON: Expecting property name enclosed in double quotes (column 13; expected one JSON object per line)",
        ),
        (
            "orders.json",
            '{"id": "O1"}',
            "orders.json:1: expected a JSON array of objects ([{...}, ...]) or use .jsonl for JSON Lines",
        ),
        (
            "orders.json",
            '[{"id": "O1", "account_id": "A1", "date": "2026-01-01", "amount": 1},\n {"id": "O2" "x": 1}]',
            "orders.json:2: invalid JSON: Expecting ',' delimiter",
        ),
    ],
)
def test_reference_and_type_messages(store, tmp_path, name, text, expected):
    write(tmp_path / "base" / "accounts.csv", ACCOUNTS)
    store.import_paths([tmp_path / "base"])
    write(tmp_path / name, text)
    assert refused(store, [tmp_path / name]) == [f"{tmp_path}/{expected}"]


def test_reference_to_an_account_in_the_same_import(store, tmp_path):
    write(tmp_path / "d" / "accounts.csv", ACCOUNTS)
    write(tmp_path / "d" / "orders.csv", 'id,account_id,date,amount\nO1,A2,2026/3/5,"1,200.50"\n')
    store.import_paths([tmp_path / "d" / "orders.csv", tmp_path / "d" / "accounts.csv"])  # reordered: accounts first
    assert list(store.query("SELECT date, amount FROM orders")) == [{"date": "2026-03-05", "amount": 1200.5}]


def test_gbk_detected(store):
    report = store.import_paths([DATA / "gbk" / "accounts.csv"])
    assert report.files[0]["encoding"] == "gb18030"
    names = [r["name"] for r in store.query("SELECT name FROM accounts ORDER BY id")]
    assert names == ["北京恒通物流有限公司", "上海佳源食品股份有限公司"]


def test_gbk_chosen(store):
    store.import_paths([DATA / "gbk" / "accounts.csv"], encoding="gbk")
    assert next(store.query("SELECT owner FROM accounts WHERE id = 'G1'"))["owner"] == "赵强"


def test_bom_stripped(store):
    report = store.import_paths([DATA / "bom" / "accounts.csv"])
    assert report.files[0]["encoding"] == "utf-8-sig"
    assert [r["id"] for r in store.query("SELECT id FROM accounts ORDER BY id")] == ["B1", "B2"]


def test_wrong_encoding_refused_with_place(store, tmp_path):
    # UTF-8 Chinese read as ... a file mixing UTF-8 and GBK lines is never stored as mojibake
    data = "id,name,tier\nA1,华为,key\n".encode() + "A2,恒通,mid\n".encode("gbk")
    (tmp_path / "accounts.csv").write_bytes(data)
    [problem] = refused(store, [tmp_path / "accounts.csv"])
    assert problem.startswith(
        f"{tmp_path}/accounts.csv:3: not valid UTF-8: byte 0xBA (invalid start byte) at byte offset 30"
    )
    assert "mixes encodings" in problem


def test_given_encoding_that_does_not_fit(store):
    [problem] = refused(store, [DATA / "bom" / "accounts.csv"], encoding="gbk")
    assert "byte order mark but --encoding gbk was given" in problem


def test_undecodable_in_any_encoding(store, tmp_path):
    (tmp_path / "accounts.csv").write_bytes(b"id,name,tier\nA1,\xff\xfe\xff,key\n")
    [problem] = refused(store, [tmp_path / "accounts.csv"])
    assert problem.startswith(
        f"{tmp_path}/accounts.csv:2: unknown text encoding: not UTF-8 (byte 0xFF (invalid start byte) at byte offset 16)"
    )
    assert "pass --encoding ENC" in problem


def test_binary_garbage_refused(store, tmp_path):
    (tmp_path / "accounts.csv").write_bytes(b"id,name,tier\nA1,\x00\x01\x02,key\n")
    assert refused(store, [tmp_path / "accounts.csv"]) == [
        f"{tmp_path}/accounts.csv:2: binary data: a NUL byte at byte offset 16 (expected a text file: CSV, TSV, JSON or JSON Lines)"
    ]
    (tmp_path / "orders.csv").write_bytes(b"PK\x03\x04" + bytes(range(256)))
    assert refused(store, [tmp_path / "orders.csv"]) == [
        f"{tmp_path}/orders.csv: binary file: this looks like a ZIP archive or an Excel .xlsx workbook (save it as CSV UTF-8)"
    ]


def test_unknown_table_and_missing_path(store, tmp_path):
    write(tmp_path / "invoices2.csv", "id\n1\n")
    assert refused(store, [tmp_path / "invoices2.csv", tmp_path / "nope"]) == [
        f"{tmp_path}/invoices2.csv: no table named 'invoices2' (expected a file named after a table: {', '.join(store.tables)}; or use --table NAME)",
        f"{tmp_path}/nope: no such file or folder",
    ]


def test_table_option(store, tmp_path):
    write(tmp_path / "crm_export.csv", ACCOUNTS)
    report = store.import_paths([tmp_path / "crm_export.csv"], table="accounts")
    assert report.tables["accounts"].inserted == 2
    with pytest.raises(InputError, match="--table NAME needs exactly one file"):
        store.import_paths([tmp_path], table="accounts")


def test_header_only_file_is_fine(store, tmp_path):
    write(tmp_path / "complaints.csv", "id,account_id,opened_on\n")
    assert store.import_paths([tmp_path / "complaints.csv"]).rows == 0


def test_problem_cap(store, tmp_path):
    rows = "".join(f"A{i},X,vip\n" for i in range(250))
    write(tmp_path / "accounts.csv", "id,name,tier\n" + rows)
    with pytest.raises(ImportRefused) as info:
        store.import_paths([tmp_path / "accounts.csv"])
    assert len(info.value.problems) == 100 and info.value.total == 250
    assert info.value.render().endswith("... and 150 more problems")


def test_skip_invalid_writes_every_refused_row(store, tmp_path):
    write(tmp_path / "d" / "accounts.csv", "id,name,tier\nA1,X,key\nA2,Y,vip\nA1,Z,mid\n")
    write(
        tmp_path / "d" / "orders.csv",
        "id,account_id,date,amount\nO1,A1,2026-01-01,5\nO2,A2,2026-01-01,5\nO3,A1,bad,x\n",
    )
    rejects = tmp_path / "rejects.csv"
    report = store.import_paths([tmp_path / "d"], skip_invalid=rejects)
    assert (report.tables["accounts"].inserted, report.tables["accounts"].rejected) == (1, 2)
    assert (report.tables["orders"].inserted, report.tables["orders"].rejected) == (1, 2)
    with open(rejects, newline="", encoding="utf-8-sig") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: (r["file"], int(r["line"])))
    assert [(Path(r["file"]).name, r["line"]) for r in rows] == [
        ("accounts.csv", "3"),
        ("accounts.csv", "4"),
        ("orders.csv", "3"),
        ("orders.csv", "4"),
    ]
    assert rows[0]["reason"] == "tier: 'vip' is not allowed (expected one of: key, mid, small)"
    assert rows[1]["reason"].startswith("id: duplicate id 'A1'")
    assert rows[2]["reason"].startswith("account_id: 'A2' is not a known accounts.id")
    assert rows[3]["reason"].count(";") == 1  # both problems of the row
    assert json.loads(rows[0]["record"]) == {"id": "A2", "name": "Y", "tier": "vip"}
    assert store.count("accounts") == 1 and store.count("orders") == 1


def test_skip_invalid_still_refuses_broken_files(store, tmp_path):
    write(tmp_path / "accounts.csv", "id,name\nA1,X\n")
    rejects = tmp_path / "rejects.csv"
    refused(store, [tmp_path / "accounts.csv"], skip_invalid=rejects)
    assert not rejects.exists()


def test_plugin_table_is_imported_and_validated(tmp_path):
    from kamrules import hookimpl
    from kamrules.contract import C, Table
    from kamrules.plugins import make_plugin_manager
    from kamrules.store import Store

    class Invoices:
        @hookimpl
        def register_tables(self):
            return [
                Table(
                    "invoices",
                    (
                        C("id", required=True),
                        C("account_id", required=True, references="accounts.id"),
                        C("due_on", "date", required=True),
                        C("amount", "float", required=True),
                    ),
                )
            ]

    pm = make_plugin_manager(load_entry_points=False, extra=[Invoices()])
    with Store.open(tmp_path / "k.db", pm=pm) as store:
        write(tmp_path / "d" / "accounts.csv", ACCOUNTS)
        write(tmp_path / "d" / "invoices.csv", "id,account_id,due_on,amount\nI1,A1,2026-11-30,99.5\n")
        report = store.import_paths([tmp_path / "d"])
        assert report.tables["invoices"].inserted == 1
        write(tmp_path / "invoices.csv", "id,account_id,due_on,amount\nI2,A7,2026-11-30,1\n")
        assert refused(store, [tmp_path / "invoices.csv"]) == [
            f"{tmp_path}/invoices.csv:2: account_id: 'A7' is not a known accounts.id (expected an id in accounts, in the store or in this import)"
        ]


def test_progress_is_reported(store):
    seen = []
    store.import_paths([DATA / "book"], progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] > 0


def test_json_array_streamed_across_chunk_boundaries(store, tmp_path, monkeypatch):
    import kamrules.readers as readers

    monkeypatch.setattr(readers, "CHUNK", 7)  # force objects, strings and numbers to straddle reads
    objs = [
        {"id": f"A{i}", "name": f'客户 "{i}", 第{i}号', "tier": "small", "created_on": "2026-01-0" + str(1 + i % 9)}
        for i in range(30)
    ]
    text = "[\n" + ",\n".join(json.dumps(o, ensure_ascii=False) for o in objs) + "\n]\n"
    write(tmp_path / "accounts.json", text)
    store.import_paths([tmp_path / "accounts.json"])
    got = [(r["id"], r["name"]) for r in store.query("SELECT id, name FROM accounts ORDER BY rowid")]
    assert got == [(o["id"], o["name"]) for o in objs]
    bad = text.replace('"tier": "small", "created_on": "2026-01-05"', '"tier": "huge", "created_on": "2026-01-05"', 1)
    write(tmp_path / "x" / "accounts.json", bad)
    [problem] = refused(store, [tmp_path / "x" / "accounts.json"])
    assert problem == f"{tmp_path}/x/accounts.json:6: tier: 'huge' is not allowed (expected one of: key, mid, small)"


def test_json_objects_with_different_keys(store, tmp_path):
    write(
        tmp_path / "accounts.jsonl",
        '{"id": "A1", "name": "甲", "tier": "key"}\n\n{"id": "A2", "name": "乙", "tier": "mid", "owner": "王伟", "vip": true}\n',
    )
    report = store.import_paths([tmp_path / "accounts.jsonl"])
    assert report.tables["accounts"].inserted == 2
    assert list(store.query("SELECT id, owner, vip FROM accounts ORDER BY id")) == [
        {"id": "A1", "owner": None, "vip": None},
        {"id": "A2", "owner": "王伟", "vip": "true"},
    ]


def test_any_text_round_trips_through_csv(tmp_path_factory):
    import io

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from kamrules.store import Store

    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
    one_line = text.filter(lambda s: "\n" not in s and "\r" not in s and s.strip())

    @settings(max_examples=40, deadline=None)
    @given(rows=st.lists(st.tuples(one_line, text), min_size=1, max_size=5))
    def check(rows):
        folder = tmp_path_factory.mktemp("rt")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "name", "tier", "segment"])
        for i, (name, segment) in enumerate(rows):
            w.writerow([f"A{i}", name, "mid", segment])
        (folder / "accounts.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
        with Store.open(folder / "k.db") as store:
            store.import_paths([folder / "accounts.csv"])
            got = [(r["name"], r["segment"]) for r in store.query("SELECT name, segment FROM accounts ORDER BY rowid")]
        assert got == [(name, segment or None) for name, segment in rows]

    check()
