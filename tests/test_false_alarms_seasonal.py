"""Issue 13's false alarms in neglected_small_clients, missing_escalation_channels (KAM304/305) and
churn_signals: seasonal buyers, contact_decay beside no_recent_contact, rising stars that are one big
project, and day counts that start before the records do. Each: a healthy account that must stay quiet
and a defect that must still fire (real store, real engine, through run_check)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rulebook import Book, act


def _book(tmp_path, as_of):
    return Book(tmp_path / "t.db", as_of=as_of)


def _monthly_orders(book, account, years, months, amount=20000, day=15):
    for y in years:
        for m in months:
            book.add("orders", account_id=account, date=f"{y}-{m:02d}-{day:02d}", amount=amount)


# -- seasonal buyers: silent_churn (KAM203) ---------------------------------------------------------------


def test_seasonal_dealer_is_not_silent_in_january_a_stopped_buyer_fires(tmp_path):
    book = _book(tmp_path, "2027-01-31")
    book.account("DEALER", tier="small")  # building materials: March to November, every year
    _monthly_orders(book, "DEALER", (2024, 2025, 2026), range(3, 12))
    book.account("STOPPED", tier="small")  # ordered all year round, stopped in November
    _monthly_orders(book, "STOPPED", (2025, 2026), range(1, 12))
    book.account("YOUNG", tier="small")  # its first season: no year-earlier span to compare with
    _monthly_orders(book, "YOUNG", (2026,), range(3, 12))
    alerts = book.alerts("KAM203")
    assert sorted(alerts) == ["STOPPED", "YOUNG"]
    assert "no order for 77 days" in alerts["YOUNG"].message
    assert "DEALER" not in alerts  # 77 days against a 31-day usual gap, but last January was silent too


def test_seasonal_dealer_still_silent_after_last_years_break_fires(tmp_path):
    book = _book(tmp_path, "2027-04-30")
    book.account("DEALER", tier="small")
    _monthly_orders(book, "DEALER", (2024, 2025, 2026), range(3, 12))
    alert = book.alerts("KAM203")["DEALER"]  # last April it had ordered again: now it is silent
    assert "no order for 166 days" in alert.message
    assert "longer than the 30-day break over the same date a year earlier" in alert.message


# -- seasonal buyers: contact_decay (KAM202) --------------------------------------------------------------


def test_seasonal_contact_compares_with_the_same_months_a_year_earlier(tmp_path):
    book = _book(tmp_path, "2027-02-28")
    book.account("SEASON", tier="small")  # visited March to October every year
    book.account("DECAY", tier="small")  # contacted all year; half as often as a year earlier
    for y in (2024, 2025, 2026):
        for m in range(3, 11):
            for d in (5, 20):
                act(book, "SEASON", (book_date(book, f"{y}-{m:02d}-{d:02d}")))
    for y, months in ((2025, range(1, 13)), (2026, range(1, 9))):
        for m in months:
            for d in (5, 20):
                act(book, "DECAY", book_date(book, f"{y}-{m:02d}-{d:02d}"))
    for day in ("2026-09-10", "2026-11-10", "2027-01-10", "2027-02-10"):
        act(book, "DECAY", book_date(book, day))
    alerts = book.alerts("KAM202")
    assert sorted(alerts) == ["DECAY"]
    assert "the same 6 months a year earlier" in alerts["DECAY"].message


def book_date(book, iso):
    """Days before the book's as-of date of the ISO date ``iso`` (act() takes days)."""
    import datetime as dt

    return (dt.date.fromisoformat(book.as_of) - dt.date.fromisoformat(iso)).days


# -- contact_decay is not reported beside no_recent_contact (KAM201) --------------------------------------


def test_contact_decay_is_quiet_when_no_recent_contact_fires(book):
    book.account("GONE", tier="small")  # two contacts a month, nothing since mid-June: no_recent_contact
    book.account("DECAY", tier="small")  # still in touch, but far less than before
    for days in range(150, 560, 15):
        act(book, "GONE", days)
    for days in range(190, 560, 15):
        act(book, "DECAY", days)
    for days in (10, 100):
        act(book, "DECAY", days)
    result = book.check(select=("KAM201", "KAM202"))
    fired = {(a.code, a.account_id) for a in result.alerts}
    assert fired == {("KAM201", "GONE"), ("KAM202", "DECAY")}


def test_contact_decay_quiet_days_follow_no_recent_contact_days():
    """KAM202's no_contact_days must equal KAM201's days per tier (the format can't refer to another rule)."""
    path = Path(__file__).parents[1] / "rulesets" / "neglected_small_clients" / "rules.yaml"
    rules = {r["code"]: r for r in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]}
    for tier in ("mid", "small"):
        assert rules["KAM202"]["tiers"][tier]["no_contact_days"] == rules["KAM201"]["tiers"][tier]["days"]


# -- rising_star_unattended (KAM204): a revenue floor and recurring orders ------------------------------


def test_rising_star_needs_revenue_and_recurring_orders(book):
    book.account("PROJECT", tier="small")  # one big project: not a rising star
    book.add("orders", account_id="PROJECT", date="2025-06-01", amount=100000)
    book.add("orders", account_id="PROJECT", date="2026-06-01", amount=900000)
    book.account("TINY", tier="small")  # tripled, but from almost nothing
    book.account("STAR", tier="small")  # a recurring buyer growing fast
    for m in range(1, 13):
        book.add("orders", account_id="TINY", date=f"2025-{m:02d}-10", amount=1000 if m < 11 else 3000)
        book.add("orders", account_id="STAR", date=f"2025-{m:02d}-10", amount=10000 if m < 11 else 25000)
    for m in range(1, 11):
        book.add("orders", account_id="TINY", date=f"2026-{m:02d}-10", amount=3000)
        book.add("orders", account_id="STAR", date=f"2026-{m:02d}-10", amount=25000)
    for a in ("PROJECT", "TINY", "STAR"):
        act(book, a, 700, kind="call")  # in touch, never visited
        act(book, a, 20, kind="call")
    alerts = book.alerts("KAM204")
    assert sorted(alerts) == ["STAR"]


# -- counting from the wrong start: never before the first record of the table ---------------------------


@pytest.mark.parametrize("start_days_ago, fires", [(122, False), (303, True)])
def test_no_executive_meeting_counts_from_the_records_start(book, start_days_ago, fires):
    book.account("KEY", tier="key", created_on="2022-01-01")  # never met an executive
    book.account("OTHER", tier="mid")
    act(book, "OTHER", start_days_ago)  # the activity export starts here
    alerts = book.alerts("KAM304")
    assert ("KEY" in alerts) is fires
    if fires:
        start = book.ago(start_days_ago)
        assert alerts["KEY"].message.startswith(f"no executive meeting for {start_days_ago} days to 2026-10-31")
        assert f"none on record since the records start on {start}" in alerts["KEY"].message


@pytest.mark.parametrize("start_days_ago, fires", [(122, False), (303, True)])
def test_no_decision_maker_counts_from_the_records_start(book, start_days_ago, fires):
    book.account("KEY", tier="key", created_on="2022-01-01")
    book.add("contacts", id="C1", account_id="KEY", name="赵总", role="decision_maker")
    book.account("OTHER", tier="mid")
    act(book, "OTHER", start_days_ago)
    alerts = book.alerts("KAM305")
    assert ("KEY" in alerts) is fires
    if fires:
        assert f"none met for {start_days_ago} days" in alerts["KEY"].message
        assert f"since the records start on {book.ago(start_days_ago)}" in alerts["KEY"].message


def test_no_recent_contact_counts_from_the_records_start(book):
    book.account("SMALL", tier="small", created_on="2022-01-01")  # no activity on record at all
    book.account("MID", tier="mid", created_on="2022-01-01")
    book.account("NEW", tier="mid", created_on=book.ago(70))  # created after the records start
    book.account("KEY", tier="key")
    act(book, "KEY", 91)  # the activity export starts 91 days ago
    alerts = book.alerts("KAM201")
    assert sorted(alerts) == ["MID", "NEW"]  # 91 days is within a small account's 120
    assert alerts["MID"].message == (
        f"no activity for 91 days to 2026-10-31 (none on record since the records start on {book.ago(91)}); "
        "limit 60 days for a mid account"
    )
    assert f"none on record since it was created on {book.ago(70)}" in alerts["NEW"].message


def test_rising_star_never_visited_counts_from_the_records_start(book):
    book.account("STAR", tier="small", created_on="2022-01-01")
    for m in range(1, 13):
        book.add("orders", account_id="STAR", date=f"2025-{m:02d}-10", amount=10000 if m < 11 else 25000)
    for m in range(1, 11):
        book.add("orders", account_id="STAR", date=f"2026-{m:02d}-10", amount=25000)
    act(book, "STAR", 60, kind="call")  # the activity export starts 60 days ago: no visit could be on record
    assert book.alerts("KAM204") == {}
    act(book, "STAR", 100, kind="call")
    alert = book.alerts("KAM204")["STAR"]
    assert f"no visit on record since the records start on {book.ago(100)}" in alert.message


def test_satisfaction_overdue_counts_from_the_records_start(book):
    book.account("KEY", tier="key", created_on="2022-01-01")  # won long ago, never surveyed
    act(book, "KEY", 200)  # the activity export starts 200 days ago
    assert book.alerts("KAM502") == {}
    act(book, "KEY", 400)
    alert = book.alerts("KAM502")["KEY"]
    assert "no satisfaction survey for 400 days" in alert.message
    assert f"since the records start on {book.ago(400)}" in alert.message
