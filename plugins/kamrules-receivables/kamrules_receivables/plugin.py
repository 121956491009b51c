"""The plugin's hook implementations: the invoices table, receivables facts, rule set, CRM column names."""

from __future__ import annotations

from pathlib import Path

from kamrules import hookimpl
from kamrules.contract import C, Table
from kamrules.facts import FactProvider

HERE = Path(__file__).parent

INVOICES = Table(
    "invoices",
    (
        C("id", required=True),
        C("account_id", required=True, references="accounts.id"),
        C("issued_on", "date", required=True),
        C("due_on", "date", required=True),
        C("amount", "float", required=True),
        C("paid_on", "date"),  # blank = not paid (yet)
        C("payment_method", choices=("transfer", "acceptance_bill", "cash", "other")),
        C("disputed", "bool", default=0),  # disputed invoices are not chased
    ),
    indexes=(("account_id", "due_on"),),
    description="Invoices issued to accounts and when they were paid (回款).",
)

# An invoice counts when it was issued by the as-of date and is not disputed;
# it is open when it was not paid by then, overdue when also past its due date.
_OPEN = "(paid_on IS NULL OR paid_on > :as_of)"
_OVERDUE = f"({_OPEN} AND due_on < :as_of)"
_PAID_12M = "(paid_on IS NOT NULL AND paid_on <= :as_of AND paid_on > date(:as_of, '-365 days'))"

ACCOUNT_SQL = f"""
SELECT account_id,
       SUM(CASE WHEN {_OPEN} THEN amount ELSE 0 END) AS open_receivables,
       SUM(CASE WHEN {_OVERDUE} THEN amount ELSE 0 END) AS overdue_amount,
       SUM(CASE WHEN {_OVERDUE} THEN 1 ELSE 0 END) AS overdue_invoices,
       CAST(MAX(CASE WHEN {_OVERDUE} THEN julianday(:as_of) - julianday(due_on) END) AS INTEGER) AS max_days_overdue,
       SUM(CASE WHEN {_PAID_12M} THEN 1 ELSE 0 END) AS paid_invoices_12m,
       AVG(CASE WHEN {_PAID_12M} THEN julianday(paid_on) - julianday(issued_on) END) AS avg_days_to_pay
FROM invoices
WHERE issued_on <= :as_of AND NOT COALESCE(disputed, 0)
GROUP BY account_id
"""

BOOK_SQL = f"""
SELECT SUM(CASE WHEN {_OPEN} THEN amount ELSE 0 END) AS book_open_receivables,
       SUM(CASE WHEN {_OVERDUE} THEN amount ELSE 0 END) AS book_overdue_amount
FROM invoices
WHERE issued_on <= :as_of AND NOT COALESCE(disputed, 0)
"""


def _share(part: str, whole: str, name: str):
    """A ``derive`` function: ``name`` = part / whole when whole is positive."""

    def derive(facts):
        total = facts.get(whole)
        if not total or total <= 0:
            return {}
        return {name: (facts.get(part) or 0) / total}

    return derive


RECEIVABLES = FactProvider(
    name="receivables",
    requires=("invoices",),
    facts=(
        "open_receivables",
        "overdue_amount",
        "overdue_invoices",
        "max_days_overdue",
        "paid_invoices_12m",
        "avg_days_to_pay",
    ),
    sql=ACCOUNT_SQL,
    derive=_share("overdue_amount", "open_receivables", "overdue_share"),
    derived=("overdue_share",),
    description="Open and overdue invoices per account, and how long paid invoices took (回款周期).",
)

RECEIVABLES_BOOK = FactProvider(
    name="receivables_book",
    scope="portfolio",
    requires=("invoices",),
    facts=("book_open_receivables", "book_overdue_amount"),
    sql=BOOK_SQL,
    derive=_share("book_overdue_amount", "book_open_receivables", "book_overdue_share"),
    derived=("book_overdue_share",),
    description="Open and overdue invoices of the whole book.",
)

# Column names of a CRM export (应收/回款明细, 客户列表) -> the data contract.
CRM_COLUMNS = {
    "invoices": {
        "发票号": "id",
        "发票编号": "id",
        "客户编号": "account_id",
        "开票日期": "issued_on",
        "到期日": "due_on",
        "应收金额": "amount",
        "金额": "amount",
        "回款日期": "paid_on",
        "付款方式": "payment_method",
        "有争议": "disputed",
    },
    "accounts": {
        "客户编号": "id",
        "客户名称": "name",
        "客户等级": "tier",
        "客户经理": "owner",
        "经理邮箱": "owner_email",
        "客户状态": "status",
    },
}


@hookimpl
def register_tables():
    return [INVOICES]


@hookimpl
def register_facts():
    return [RECEIVABLES, RECEIVABLES_BOOK]


@hookimpl
def register_rulesets():
    return [HERE / "receivables.yaml"]


@hookimpl
def rename_columns(table, columns, path):
    mapping = CRM_COLUMNS.get(table)
    if not mapping:
        return None
    found = {c: mapping[c.strip()] for c in columns if c.strip() in mapping}
    return found or None


@hookimpl
def register_notifiers():
    from kamrules_receivables.wecom import WeComNotifier

    return [WeComNotifier()]
