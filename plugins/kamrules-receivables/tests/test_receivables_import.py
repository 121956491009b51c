"""The invoices table: created, validated and loaded like a core table; the CRM's Chinese headers mapped."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

try:
    import kamrules_receivables  # noqa: F401  (installed: pip install -e plugins/kamrules-receivables)
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kamrules.errors import InputError
from kamrules.plugins import get_plugins, make_plugin_manager
from kamrules.store import Store
from kamrules_receivables import plugin

ACCOUNTS = "客户编号,客户名称,客户等级,客户经理,经理邮箱\nC001,华东电气集团,key,王磊,wanglei@example.cn\nC002,小五金商行,small,李娜,lina@example.cn\n"


@pytest.fixture
def store(tmp_path):
    pm = make_plugin_manager(load_entry_points=False, extra=[plugin])
    with Store.open(tmp_path / "kamrules.db", pm=pm) as s:
        yield s


def export(folder: Path, name: str, text: str, encoding: str = "gbk") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def test_invoices_table_is_registered_and_created(store):
    assert store.tables["invoices"] is plugin.INVOICES
    assert store.table_exists("invoices")
    assert store.columns("invoices") == [
        "id",
        "account_id",
        "issued_on",
        "due_on",
        "amount",
        "paid_on",
        "payment_method",
        "disputed",
    ]


def test_crm_export_in_gbk_with_chinese_headers_imports(store, tmp_path):
    data = tmp_path / "export"
    export(data, "accounts.csv", ACCOUNTS)
    export(
        data,
        "invoices.csv",
        "发票号,客户编号,开票日期,到期日,应收金额,回款日期,付款方式,有争议\n"
        "I1,C001,2026-07-01,2026-08-22,120000,,transfer,\n"
        "I2,C002,2026-09-01,2026-10-01,5000,2026-09-20,acceptance_bill,是\n",
    )
    report = store.import_paths([data])
    assert (report.tables["accounts"].inserted, report.tables["invoices"].inserted) == (2, 2)
    rows = list(store.query("SELECT * FROM invoices ORDER BY id"))
    assert rows == [
        {
            "id": "I1",
            "account_id": "C001",
            "issued_on": "2026-07-01",
            "due_on": "2026-08-22",
            "amount": 120000.0,
            "paid_on": None,
            "payment_method": "transfer",
            "disputed": 0,
        },
        {
            "id": "I2",
            "account_id": "C002",
            "issued_on": "2026-09-01",
            "due_on": "2026-10-01",
            "amount": 5000.0,
            "paid_on": "2026-09-20",
            "payment_method": "acceptance_bill",
            "disputed": 1,
        },
    ]
    assert list(store.query("SELECT name, owner FROM accounts WHERE id = 'C001'")) == [
        {"name": "华东电气集团", "owner": "王磊"}
    ]


def test_bad_invoice_rows_are_refused_with_file_line_and_contract_column(store, tmp_path):
    data = tmp_path / "export"
    export(data, "accounts.csv", ACCOUNTS)
    export(
        data,
        "invoices.csv",
        "发票号,客户编号,开票日期,到期日,应收金额,付款方式\n"
        "I1,C001,2026-07-01,2026-08-22,120000,transfer\n"
        "I2,C009,2026-07-01,2026-08-22,一万,wire\n"
        "I3,C002,2026-07-01,,10,cash\n",
    )
    with pytest.raises(InputError) as e:
        store.import_paths([data])
    text = e.value.render()
    f = data / "invoices.csv"
    assert f"{f}:3: account_id: 'C009' is not a known accounts.id" in text
    assert f"{f}:3: amount: '一万' is not a number" in text
    assert (
        f"{f}:3: payment_method: 'wire' is not allowed (expected one of: transfer, acceptance_bill, cash, other)"
        in text
    )
    assert f"{f}:4: due_on: missing value" in text
    assert store.count("invoices") == 0 and store.count("accounts") == 0  # all or nothing


def test_rename_columns_leaves_other_tables_and_unknown_headers_alone():
    assert plugin.rename_columns(table="orders", columns=["客户编号"], path="orders.csv") is None
    assert plugin.rename_columns(table="invoices", columns=["id", "备注"], path="invoices.csv") is None
    assert plugin.rename_columns(table="invoices", columns=[" 发票号 ", "金额"], path="x.csv") == {
        " 发票号 ": "id",
        "金额": "amount",
    }


def test_installed_entry_point_loads_the_plugin():
    """When the package is installed (as CI does), kamrules finds it through its entry point."""
    eps = [ep for ep in importlib.metadata.entry_points(group="kamrules") if ep.name == "receivables"]
    if not eps:
        pytest.skip("kamrules-receivables is not installed (pip install -e plugins/kamrules-receivables)")
    pm = make_plugin_manager()
    info = {p["name"]: p for p in get_plugins(pm)}
    assert info["receivables"]["version"] == "0.1.0"
    assert info["receivables"]["hooks"] == [
        "register_facts",
        "register_notifiers",
        "register_rulesets",
        "register_tables",
        "rename_columns",
    ]
