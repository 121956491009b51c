"""The mapped import's inline row paths (blanks, dropped columns, required blanks) store what the canonical import does."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from kamrules.errors import InputError
from kamrules.importer import ImportRefused
from kamrules.store import Store

MAPPING = """\
dates: ["%Y/%m/%d", "%Y年%m月%d日"]
amounts: {currency: ["￥"]}
tables:
  accounts:
    files: [客户*.csv]
    columns: {客户编号: id, 客户名称: name, 客户级别: tier, 客户性质: buyer_type, 客户状态: status, 创建日期: created_on}
    values:
      tier: {重点客户: key, 小客户: small}
      buyer_type: {战略型: strategic, 交易型: transactional}
      status: {合作中: active, 已流失: lost}
    drop: [录入人]
  orders:
    files: [订单*.csv]
    columns: {订单编号: id, 客户编号: account_id, 下单日期: date, 订单金额: amount, 毛利: margin}
    drop: [录入人]
"""
CANONICAL = {
    "accounts.csv": "id,name,tier,buyer_type,status,created_on\n"
    "A1,甲公司,key,strategic,active,2026-03-05\n"
    "A2,乙公司,small,,,\n"  # blank optional enum (NULL), blank enum with a default, blank date
    "A3,丙公司,key,transactional,lost,2025-12-31\n",
    "orders.csv": "id,account_id,date,amount,margin\n"
    "O1,A1,2026-03-05,90438.25,1200.5\n"
    "O2,A2,2026-03-06,1234567,\n"  # blank optional amount (NULL)
    "O3,A3,2026-03-07,-5.5,0\n",
}


def export(folder: Path, drop_at: str) -> None:
    """The same rows as a GBK CRM export; the dropped column 录入人 at the end or in the middle."""
    accounts = [
        ["客户编号", "客户名称", "客户级别", "客户性质", "客户状态", "创建日期"],
        ["A1", "甲公司", "重点客户", "战略型", "合作中", "2026/3/5"],
        ["A2", "乙公司", "小客户", "", "", ""],
        ["A3", "丙公司", "重点客户", "交易型", "已流失", "2025年12月31日"],
    ]
    orders = [
        ["订单编号", "客户编号", "下单日期", "订单金额", "毛利"],
        ["O1", "A1", "2026年3月5日", "￥90,438.25", "￥1,200.50"],
        ["O2", "A2", "2026/3/6", "￥1,234,567", ""],
        ["O3", "A3", "2026/3/7", "-5.5", "0"],
    ]
    folder.mkdir()
    for name, rows in (("客户.csv", accounts), ("订单.csv", orders)):
        at = len(rows[0]) if drop_at == "end" else 2
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(
            r[:at] + (["录入人"] if i == 0 else ["管理员"]) + r[at:] for i, r in enumerate(rows)
        )
        text = out.getvalue()
        (folder / name).write_bytes(text.encode("gbk"))
    (folder.parent / f"{folder.name}.yaml").write_text(MAPPING, encoding="utf-8")


def contents(store) -> dict:
    return {t: sorted(tuple(map(repr, r.values())) for r in store.query(f'SELECT * FROM "{t}"')) for t in store.tables}


@pytest.fixture
def canonical(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    for name, text in CANONICAL.items():
        (book / name).write_text(text, encoding="utf-8")
    with Store.open(tmp_path / "canonical.db") as s:
        s.import_paths([book])
        yield contents(s)


@pytest.mark.parametrize("drop_at", ["end", "middle"])
def test_mapped_blanks_and_dropped_columns_store_the_canonical_values(tmp_path, canonical, drop_at):
    export(tmp_path / "export", drop_at)
    with Store.open(tmp_path / "mapped.db") as s:
        s.import_paths([tmp_path / "export"], mapping=tmp_path / "export.yaml")
        got = contents(s)
        assert got == canonical
        assert next(s.query("SELECT buyer_type, status, created_on FROM accounts WHERE id = 'A2'")) == {
            "buyer_type": None,
            "status": "active",
            "created_on": None,
        }
        assert next(s.query("SELECT margin FROM orders WHERE id = 'O2'")) == {"margin": None}
        assert "录入人" not in s.columns("accounts")


@pytest.mark.parametrize("column", ["客户级别", "订单金额"])
def test_blank_required_mapped_value_is_refused(tmp_path, column):
    """A blank in a required mapped column (tier) or amount (orders.amount) still reaches its converter's error."""
    export(tmp_path / "export", "end")
    name = "客户.csv" if column == "客户级别" else "订单.csv"
    path = tmp_path / "export" / name
    text = path.read_bytes().decode("gbk")
    value = "重点客户" if column == "客户级别" else "￥90,438.25"
    path.write_bytes(text.replace(value, "", 1).encode("gbk"))
    with Store.open(tmp_path / "mapped.db") as s:
        with pytest.raises(ImportRefused) as info:
            s.import_paths([tmp_path / "export"], mapping=tmp_path / "export.yaml")
        problems = [str(p) for p in info.value.problems]
        assert any(f"{name}:2:" in p and "missing value" in p for p in problems), problems
        assert next(s.query("SELECT count(*) AS n FROM accounts"))["n"] == 0


def test_mapping_encoding_reads_its_files_without_detection(tmp_path, canonical):
    """encoding: gbk reads the export as GBK; a file the mapping does not match is still detected (UTF-8)."""
    export(tmp_path / "export", "end")
    mapping = tmp_path / "export.yaml"
    mapping.write_text("encoding: gbk\n" + MAPPING, encoding="utf-8")
    with Store.open(tmp_path / "mapped.db") as s:
        s.import_paths([tmp_path / "export"], mapping=mapping)
        assert contents(s) == canonical
    # a UTF-8 file of canonical CSV next to it (not matched by the mapping): detected, not read as GBK
    (tmp_path / "export" / "stage_history.csv").write_text(
        "account_id,stage,entered_on\nA1,research,2026-01-02\n", encoding="utf-8"
    )
    with Store.open(tmp_path / "mixed.db") as s:
        s.import_paths([tmp_path / "export"], mapping=mapping)
        assert next(s.query("SELECT count(*) AS n FROM stage_history"))["n"] == 1


def test_mapping_encoding_that_does_not_fit_names_the_mapping(tmp_path):
    export(tmp_path / "export", "end")
    mapping = tmp_path / "export.yaml"
    mapping.write_text("encoding: utf-8\n" + MAPPING, encoding="utf-8")
    with Store.open(tmp_path / "mapped.db") as s:
        with pytest.raises(ImportRefused) as info:
            s.import_paths([tmp_path / "export"], mapping=mapping)
        problems = [str(p) for p in info.value.problems]
        assert any("cannot be decoded as utf-8" in p and f"check encoding: in {mapping}" in p for p in problems), (
            problems
        )
        # --encoding wins over the mapping's
        s.import_paths([tmp_path / "export"], mapping=mapping, encoding="gbk")
        assert next(s.query("SELECT count(*) AS n FROM orders"))["n"] == 3


def test_mapping_unknown_encoding_is_refused_with_its_place(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables: {}\nencoding: klingon\n", encoding="utf-8")
    with Store.open(tmp_path / "k.db") as s:
        with pytest.raises(InputError) as info:
            s.import_paths([tmp_path], mapping=mapping)
    assert any("m.yaml:2:" in str(p) and "'klingon' is not a known encoding" in str(p) for p in info.value.problems), (
        info.value.problems
    )


def test_suggested_mapping_says_the_encoding_it_read(tmp_path):
    from kamrules.mapping_suggest import suggest_mapping

    export(tmp_path / "export", "end")
    with Store.open(tmp_path / "k.db") as s:
        text, _ = suggest_mapping([tmp_path / "export"], s.tables)
    assert "\nencoding: gb18030\n" in text
    book = tmp_path / "book"
    book.mkdir()
    (book / "客户.csv").write_text("客户编号,客户名称,客户级别\nA1,甲公司,重点客户\n", encoding="utf-8")
    with Store.open(tmp_path / "k.db") as s:
        text, _ = suggest_mapping([book], s.tables)
    assert "encoding:" not in text  # UTF-8 is what import reads anyway


@pytest.mark.parametrize("bad", ["9￥0", "￥9￥0", "90,4￥38"])
def test_a_currency_sign_inside_an_amount_is_refused(tmp_path, bad):
    """The inline amount path drops signs at either end only: a sign in the middle is not a number."""
    export(tmp_path / "export", "end")
    path = tmp_path / "export" / "订单.csv"
    path.write_bytes(path.read_bytes().decode("gbk").replace("￥90,438.25", bad, 1).encode("gbk"))
    with Store.open(tmp_path / "mapped.db") as s:
        with pytest.raises(ImportRefused) as info:
            s.import_paths([tmp_path / "export"], mapping=tmp_path / "export.yaml")
        problems = [str(p) for p in info.value.problems]
        assert any("订单.csv:2:" in p and "amount" in p for p in problems), problems
        assert next(s.query("SELECT count(*) AS n FROM orders"))["n"] == 0
