"""The churn_signals rule set (KAM5xx) on small books in a real store, through run_check."""

from __future__ import annotations

import pytest
from rulebook import act, skipped_codes


def won(book, account, days):
    book.add("stage_history", account_id=account, stage="won", entered_on=book.ago(days))


def order(book, account, days, amount):
    book.add("orders", account_id=account, date=book.ago(days), amount=amount)


# -- KAM501 revenue_decline: the same 6 months a year earlier ------------------------------
@pytest.mark.parametrize(
    "tier, before, now, severity",
    [
        ("key", 2_000_000, 1_400_001, None),  # 30% down: not more than 30%
        ("key", 2_000_000, 1_399_000, "warning"),
        ("key", 2_000_000, 1_000_000, "warning"),  # 50%: not more than 50%
        ("key", 2_000_000, 999_000, "critical"),
        ("key", 999_000, 0, None),  # under a key account's minimum prior revenue (1,000,000)
        ("mid", 200_000, 100_000, "warning"),  # a mid account's minimum is 200,000
        ("mid", 199_999, 0, None),
        ("small", 2_000_000, 0, None),
    ],
)
def test_revenue_decline_thresholds(book, tier, before, now, severity):
    book.account("A", tier=tier)
    won(book, "A", 1000)
    order(book, "A", 365 + 90, before)
    if now:
        order(book, "A", 90, now)
    alerts = book.alerts("KAM501")
    assert (alerts["A"].severity if "A" in alerts else None) == severity


def test_revenue_decline_compares_with_a_year_earlier_not_the_half_year_before(book):
    # a seasonal dealer: strong summer, nothing in winter; the last 6 months (summer) against last summer
    book.account("SEASONAL", tier="mid")
    book.account("FALLING", tier="mid")
    for acc in ("SEASONAL", "FALLING"):
        won(book, acc, 1000)
        order(book, acc, 365 + 120, 800_000)  # last summer
        order(book, acc, 250, 0.01)  # winter: next to nothing
    order(book, "SEASONAL", 120, 820_000)
    order(book, "FALLING", 120, 300_000)
    alerts = book.alerts("KAM501")
    assert sorted(alerts) == ["FALLING"]
    assert alerts["FALLING"].message.startswith(
        "revenue 300,000 in the 6 months to 2026-10-31 against 800,000 in the same 6 months a year earlier (62% down)"
    )


@pytest.mark.parametrize("won_days, fires", [(547, False), (548, True), (None, True)])
def test_revenue_decline_needs_a_year_earlier_half_year_of_its_own(book, won_days, fires):
    # without a stage history, the account counts as won on created_on (five years ago)
    book.account("A", tier="key")
    if won_days is not None:
        won(book, "A", won_days)
    order(book, "A", 365 + 100, 3_000_000)
    order(book, "A", 100, 1_000_000)
    assert ("A" in book.alerts("KAM501")) is fires


def test_revenue_decline_not_on_prospects_lost_or_accounts_without_orders_a_year_ago(book):
    book.account("P", tier="key", status="prospect")
    book.account("L", tier="key", status="lost")
    book.account("NEW", tier="key")  # no order a year earlier: nothing to fall from
    for acc in ("P", "L"):
        order(book, acc, 365 + 100, 3_000_000)
    order(book, "NEW", 100, 10)
    assert book.alerts("KAM501") == {}


def test_revenue_decline_skipped_without_orders(book):
    book.account("A", tier="key")
    result = book.check(select=("KAM501",))
    assert not result.alerts and "KAM501" in skipped_codes(result)


# -- KAM502 satisfaction_overdue -----------------------------------------------------------
@pytest.mark.parametrize("survey_days, fires", [(365, False), (366, True), (30, False)])
def test_satisfaction_overdue_limit(book, survey_days, fires):
    book.account("K", tier="key")
    won(book, "K", 2000)
    act(book, "K", survey_days, kind="survey")
    act(book, "K", 3, kind="visit")  # other contacts do not count
    assert ("K" in book.alerts("KAM502")) is fires


@pytest.mark.parametrize("won_days, fires", [(364, False), (365, False), (366, True)])
def test_satisfaction_overdue_not_for_accounts_won_within_the_year(book, won_days, fires):
    # never surveyed: the days count from the win, so it is due one year after it
    book.account("K", tier="key", created_on=book.ago(3000))
    won(book, "K", won_days)
    act(book, "K", 3, kind="visit")
    act(book, "K", 1000, kind="call")  # the activity records start before the win
    alerts = book.alerts("KAM502")
    assert ("K" in alerts) is fires
    if fires:
        assert alerts["K"].message == (
            f"no satisfaction survey for {won_days} days to 2026-10-31 (none on record since it was won on {book.ago(won_days)}; won {book.ago(won_days)}); "
            "limit 365 days for a key account"
        )


def test_satisfaction_overdue_only_active_key_accounts_with_a_known_start(book):
    book.account("M", tier="mid")
    book.account("P", tier="key", status="prospect")
    book.account("L", tier="key", status="lost")
    book.account("U", tier="key", created_on=None)  # no won date, no created_on: silent
    for acc in ("M", "P", "L", "U"):
        act(book, acc, 3)
    assert book.alerts("KAM502") == {}


def test_satisfaction_overdue_ignores_surveys_after_as_of(book):
    book.account("K", tier="key")
    won(book, "K", 2000)
    act(book, "K", 400, kind="survey")
    act(book, "K", -5, kind="survey")
    assert "K" in book.alerts("KAM502")


# -- KAM503 complaints_rising ----------------------------------------------------------------
def complaints(book, account, *days):
    for d in days:
        book.add("complaints", account_id=account, opened_on=book.ago(d))


@pytest.mark.parametrize(
    "recent, before, fires",
    [(3, 0, True), (2, 0, False), (3, 1, True), (3, 2, False), (4, 2, True), (5, 3, False)],
)
def test_complaints_rising_thresholds(book, recent, before, fires):
    book.account("A", tier="key")
    won(book, "A", 1000)
    complaints(book, "A", *[10 + 20 * i for i in range(recent)])
    complaints(book, "A", *[200 + 20 * i for i in range(before)])
    complaints(book, "A", 500, 520, 540)  # more than a year ago: outside both half-years
    alerts = book.alerts("KAM503")
    assert ("A" in alerts) is fires
    if fires:
        assert alerts["A"].message.startswith(
            f"{recent} complaints opened in the 6 months to 2026-10-31 against {before} in the 6 before"
        )


@pytest.mark.parametrize("won_days, fires", [(300, False), (365, True)])
def test_complaints_rising_needs_a_year_of_history(book, won_days, fires):
    book.account("A", tier="mid")
    won(book, "A", won_days)
    complaints(book, "A", 10, 30, 50)
    assert ("A" in book.alerts("KAM503")) is fires


def test_complaints_rising_not_on_small_lost_or_prospects(book):
    for acc, tier, status in (("S", "small", "active"), ("L", "key", "lost"), ("P", "key", "prospect")):
        book.account(acc, tier=tier, status=status)
        complaints(book, acc, 10, 30, 50, 70)
    assert book.alerts("KAM503") == {}
