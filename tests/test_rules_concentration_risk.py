"""The concentration_risk rule set (KAM6xx) on small books in a real store, through run_check."""

from __future__ import annotations

import pytest
from rulebook import act, skipped_codes


def order(book, account, days, amount):
    book.add("orders", account_id=account, date=book.ago(days), amount=amount)


def spread(book, big, others, owner="李娜", n=5, big_owner=None):
    """Account BIG with revenue ``big`` and ``n`` accounts of ``others`` each, in the last 12 months."""
    book.account("BIG", tier="key", owner=big_owner or owner, owner_email="big@example.com")
    order(book, "BIG", 30, big)
    for i in range(n):
        book.account(f"O{i}", owner=owner)
        order(book, f"O{i}", 30, others)


# -- KAM601 revenue_concentration: share of the whole book -----------------------------------
@pytest.mark.parametrize(
    "big, severity",
    [(2_142_857, None), (2_143_000, "warning"), (5_000_000, "warning"), (5_001_000, "critical")],
)
def test_book_share_thresholds(book, big, severity):
    # others: 5 x 1,000,000; 30% of the book is 2,142,857.1; 50% is 5,000,000
    spread(book, big, 1_000_000, big_owner="王磊")
    alerts = book.alerts("KAM601")
    assert (alerts["BIG"].severity if "BIG" in alerts else None) == severity
    if severity:
        a = alerts["BIG"]
        # an alert on the account, addressed to its owner
        assert (a.account_id, a.account_name, a.owner, a.owner_email) == ("BIG", "客户BIG", "王磊", "big@example.com")
        assert set(alerts) == {"BIG"}


@pytest.mark.parametrize("n, fires", [(3, False), (4, True)])
def test_book_share_needs_five_accounts_with_revenue(book, n, fires):
    spread(book, 9_000_000, 1_000_000, n=n, big_owner="王磊")
    book.account("ZERO")  # no revenue: not counted
    assert ("BIG" in book.alerts("KAM601")) is fires


def test_book_share_counts_active_accounts_and_the_last_12_months_only(book):
    spread(book, 3_000_000, 1_000_000, big_owner="王磊")  # 3 of 8 million: 37.5%
    book.account("P", status="prospect")
    book.account("L", status="lost")
    order(book, "P", 30, 90_000_000)
    order(book, "L", 30, 90_000_000)
    order(book, "O1", 400, 90_000_000)  # before the 12 months
    order(book, "O2", -3, 90_000_000)  # after the as-of date
    alerts = book.alerts("KAM601")
    assert set(alerts) == {"BIG"}
    assert (
        "holds 38% of the book's revenue in the 12 months to 2026-10-31 (3,000,000 of 8,000,000 over 6 active accounts)"
        in alerts["BIG"].message
    )


# -- KAM602 revenue_concentration: share of the owner's book ----------------------------------
@pytest.mark.parametrize(
    "big, severity",
    [(1_000_000, None), (1_001_000, "warning"), (2_333_333, "warning"), (2_334_000, "critical")],
)
def test_owner_share_thresholds(book, big, severity):
    # owner 李娜: BIG + 4 x 250,000; 50% of that book is 1,000,000; 70% is 2,333,333.3
    spread(book, big, 250_000, n=4)
    for i in range(6):  # a big rest of the book, with another owner: KAM601 stays quiet
        book.account(f"R{i}", owner="王磊")
        order(book, f"R{i}", 30, 10_000_000)
    alerts = book.alerts("KAM602")
    assert (alerts["BIG"].severity if "BIG" in alerts else None) == severity
    assert set(alerts) <= {"BIG"}
    if severity:
        assert (
            f"of 李娜's book in the 12 months to 2026-10-31 ({big:,} of {big + 1_000_000:,} over 5 active accounts)"
            in alerts["BIG"].message
        )
    assert book.alerts("KAM601") == {}


def test_owner_share_needs_five_accounts_and_an_owner(book):
    spread(book, 5_000_000, 250_000, n=3)  # 李娜 has 4 accounts
    book.account("NOBODY", owner=None)
    order(book, "NOBODY", 30, 5_000_000)
    for i in range(6):
        book.account(f"R{i}", owner="王磊")
        order(book, f"R{i}", 30, 10_000_000)
    assert book.alerts("KAM602") == {}


def test_shares_skipped_without_orders(book):
    book.account("A")
    result = book.check(select=("KAM60",))
    assert not result.alerts and {"KAM601", "KAM602"} <= skipped_codes(result)


def test_shares_are_the_same_with_workers(book):
    # parts of 10 accounts in 2 worker processes: each sees only its part, the shares are the book's
    spread(book, 50_000_000, 1_000_000, n=39)  # 56% of the book, which is also its owner's
    book.save()
    one = book.check(select=("KAM6",), jobs=1)
    two = book.check(select=("KAM6",), jobs=2, part_size=10)
    assert [(a.code, a.account_id, a.severity, a.message) for a in one.alerts] == [
        (a.code, a.account_id, a.severity, a.message) for a in two.alerts
    ]
    assert [(a.code, a.account_id) for a in one.alerts] == [("KAM601", "BIG"), ("KAM602", "BIG")]


# -- KAM603 relaxed_after_signing -------------------------------------------------------------
def signed(book, account, days, signed=True):
    book.add(
        "commitments",
        account_id=account,
        start=book.ago(days),
        end=book.ago(days - 364),
        target_amount=1_000_000,
        signed=signed,
    )


def won(book, account, days):
    book.add("stage_history", account_id=account, stage="won", entered_on=book.ago(days))


def contacts(book, account, start_days, before, after):
    """``before`` activities in the days before a start ``start_days`` ago, ``after`` since it."""
    for i in range(before):
        act(book, account, start_days + 1 + i * (start_days // max(before, 1)))
    for i in range(after):
        act(book, account, start_days - i * (start_days // max(after, 1)))


@pytest.mark.parametrize(
    "before, after, fires", [(6, 3, False), (6, 2, True), (4, 1, True), (3, 0, False), (8, 3, True)]
)
def test_relaxed_after_signing_ratio(book, before, after, fires):
    book.account("A", tier="key")
    won(book, "A", 2000)
    signed(book, "A", 120)
    contacts(book, "A", 120, before, after)
    alerts = book.alerts("KAM603")
    assert ("A" in alerts) is fires
    if fires:
        assert alerts["A"].evidence["activities_since_signing"] == after
        assert alerts["A"].evidence["activities_before_signing"] == before


@pytest.mark.parametrize("days, fires", [(59, False), (60, True), (365, True), (366, False)])
def test_relaxed_after_signing_window(book, days, fires):
    book.account("A", tier="mid")
    won(book, "A", 2000)
    signed(book, "A", days)
    contacts(book, "A", days, 6, 1)
    assert ("A" in book.alerts("KAM603")) is fires


def test_relaxed_after_signing_latest_signed_commitment_only(book):
    book.account("A", tier="key")
    won(book, "A", 2000)
    signed(book, "A", 200)
    signed(book, "A", 30)  # renewed 30 days ago: too early to judge
    signed(book, "A", 10, signed=False)  # not signed: not a commitment
    contacts(book, "A", 200, 10, 1)
    assert book.alerts("KAM603") == {}


@pytest.mark.parametrize("won_days, fires", [(241, True), (239, False), (None, True)])
def test_relaxed_after_signing_days_before_must_be_within_the_relationship(book, won_days, fires):
    # started 120 days ago: the 121 days before it begin 241 days ago; without a stage history the
    # account counts as won on created_on (five years ago)
    book.account("A", tier="key")
    if won_days is not None:
        won(book, "A", won_days)
    signed(book, "A", 120)
    contacts(book, "A", 120, 6, 1)
    assert ("A" in book.alerts("KAM603")) is fires


def test_relaxed_after_signing_not_on_lost_or_prospects(book):
    for acc, status in (("L", "lost"), ("P", "prospect")):
        book.account(acc, tier="key", status=status)
        signed(book, acc, 120)
        contacts(book, acc, 120, 6, 0)
    assert book.alerts("KAM603") == {}
