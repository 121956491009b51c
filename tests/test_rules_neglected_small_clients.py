"""The neglected_small_clients rule set (KAM2xx) on small books in a real store, through run_check."""

from __future__ import annotations

import pytest
from rulebook import act, skipped_codes


# -- KAM201 no_recent_contact: per-tier limits --------------------------------------------
@pytest.mark.parametrize(
    "tier, days, fires",
    [("mid", 60, False), ("mid", 61, True), ("small", 120, False), ("small", 121, True), ("key", 500, False)],
)
def test_no_recent_contact_per_tier(book, tier, days, fires):
    book.account("A", tier=tier)
    act(book, "A", days)
    alerts = book.alerts("KAM201")
    assert ("A" in alerts) is fires
    if fires:
        limit = 60 if tier == "mid" else 120
        assert alerts["A"].message == (
            f"no activity for {days} days to 2026-10-31 (last: {book.ago(days)}); limit {limit} days for a {tier} account"
        )


def test_no_recent_contact_ignores_activities_after_as_of(book):
    book.account("A", tier="mid")
    act(book, "A", 61)
    act(book, "A", -2)  # logged after the as-of date
    assert "A" in book.alerts("KAM201")


def test_no_recent_contact_without_any_activity_counts_from_created_on(book):
    book.account("OLD", tier="small", created_on=book.ago(200))
    book.account("NEW", tier="small", created_on=book.ago(100))
    book.account("UNKNOWN", tier="small", created_on=None)  # no date to count from: silent
    book.account("B", tier="key")
    act(book, "B", 300)  # the activity records start 300 days ago, before OLD was created
    alerts = book.alerts("KAM201")
    assert sorted(alerts) == ["OLD"]
    assert "no activity for 200 days" in alerts["OLD"].message
    assert f"(none on record since it was created on {book.ago(200)})" in alerts["OLD"].message


def test_no_recent_contact_only_active_accounts(book):
    book.account("L", tier="small", status="lost")
    book.account("P", tier="small", status="prospect")
    act(book, "L", 300)
    act(book, "P", 300)
    assert book.alerts("KAM201") == {}


def test_no_recent_contact_skipped_without_activities(book):
    book.account("A", tier="small")
    result = book.check(select=("KAM201",))
    assert not result.alerts and "KAM201" in skipped_codes(result)


# -- KAM202 contact_decay ----------------------------------------------------------------
# (2, 0): no activity for 200 days is no_recent_contact's alert (KAM201), not also contact_decay's
@pytest.mark.parametrize("before, now, fires", [(4, 2, False), (4, 1, True), (1, 0, False), (2, 0, False)])
def test_contact_decay(book, before, now, fires):
    book.account("A", tier="small")
    for i in range(before):
        act(book, "A", 200 + i)  # 6-12 months ago
    for i in range(now):
        act(book, "A", 10 + i)
    alerts = book.alerts("KAM202")
    assert ("A" in alerts) is fires
    if fires and before == 4:
        assert alerts["A"].message.startswith(
            "1 activity in the 6 months to 2026-10-31 against 4 in the 6 months before (25%)"
        )


# -- KAM203 silent_churn -----------------------------------------------------------------
@pytest.mark.parametrize("silence, orders, fires", [(60, 4, False), (61, 4, True), (100, 2, False)])
def test_silent_churn_either_side_of_twice_the_usual_gap(book, silence, orders, fires):
    book.account("A", tier="mid")
    for i in range(orders):  # every 30 days
        book.add("orders", account_id="A", date=book.ago(silence + 30 * i), amount=10_000)
    alerts = book.alerts("KAM203")
    assert ("A" in alerts) is fires
    if fires:
        assert f"no order for {silence} days" in alerts["A"].message
        assert "usual gap of 30 days over 4 order days" in alerts["A"].message


def test_silent_churn_counts_order_days_and_ignores_orders_after_as_of(book):
    book.account("A", tier="small")
    for days in (61, 61, 91, 121):  # two orders on one day are one order day: only 3 days
        book.add("orders", account_id="A", date=book.ago(days), amount=1_000)
    book.add("orders", account_id="A", date=book.ago(-5), amount=1_000)
    assert "A" in book.alerts("KAM203")


# -- KAM204 rising_star_unattended -------------------------------------------------------
def rising(book, id, growth_to=151_000, visit_days=91, **account):
    book.account(id, tier="small", **account)
    for i in range(10):  # a recurring buyer (orders in 6 months of the last 12: not one big project)
        book.add("orders", account_id=id, date=book.ago(400 + 30 * i), amount=10_000)
    book.add("orders", account_id=id, date=book.ago(30), amount=growth_to - 100_000)
    for i in range(2, 7):
        book.add("orders", account_id=id, date=book.ago(30 * i), amount=20_000)
    if visit_days is not None:
        act(book, id, visit_days, kind="visit")
    else:
        act(book, id, 700, kind="call")  # calls, but never a visit (the records start 700 days ago)
        act(book, id, 10, kind="call")


@pytest.mark.parametrize(
    "growth_to, visit_days, fires",
    [(151_000, 91, True), (151_000, 90, False), (150_000, 91, False), (151_000, None, True)],
)
def test_rising_star_unattended(book, growth_to, visit_days, fires):
    rising(book, "A", growth_to, visit_days)
    alerts = book.alerts("KAM204")
    assert ("A" in alerts) is fires


def test_rising_star_without_owner_is_unattended_even_if_visited(book):
    rising(book, "A", visit_days=5, owner=None)
    alert = book.alerts("KAM204")["A"]
    assert "but it has no owner" in alert.message
    assert alert.owner is None


def test_rising_star_message(book):
    rising(book, "A")
    assert book.alerts("KAM204")["A"].message.startswith(
        "revenue 100,000 -> 151,000 (+51%) in the 12 months to 2026-10-31, ordering in 6 months of 12, "
        f"but its last visit was on {book.ago(91)} (91 days unattended)"
    )


# -- KAM205 support_share (portfolio) ----------------------------------------------------
@pytest.mark.parametrize("small_support, fires", [(5_000, True), (12_000, False)])
def test_support_share_portfolio(book, small_support, fires):
    book.account("K", tier="key")
    book.account("S", tier="small")
    book.add("orders", account_id="K", date=book.ago(30), amount=600_000, margin=60_000)
    book.add("orders", account_id="S", date=book.ago(30), amount=400_000, margin=40_000)
    book.add("concessions", account_id="K", date=book.ago(30), kind="rebate", amount=100_000)
    book.add("concessions", account_id="S", date=book.ago(30), kind="rebate", amount=small_support)
    alerts = book.alerts("KAM205")
    assert (None in alerts) is fires
    if fires:
        alert = alerts[None]
        assert alert.account_id is None and alert.account_name is None
        assert alert.message.startswith(
            "small and mid accounts earn 40% of the margin (40,000 of 100,000) but get 4.8%"
        )


def test_support_share_margin_share_threshold(book):
    book.account("K", tier="key")
    book.account("S", tier="small")
    book.add("orders", account_id="K", date=book.ago(30), amount=700_000, margin=70_000)
    book.add("orders", account_id="S", date=book.ago(30), amount=300_000, margin=30_000)  # exactly 30%
    book.add("concessions", account_id="K", date=book.ago(30), kind="rebate", amount=100_000)
    assert book.alerts("KAM205") == {}


def test_support_share_skipped_without_concessions(book):
    book.account("S", tier="small")
    book.add("orders", account_id="S", date=book.ago(30), amount=300_000, margin=30_000)
    result = book.check(select=("KAM205",))
    assert not result.alerts and "KAM205" in skipped_codes(result)


def test_tuning_a_copied_rule_set_file(book, tmp_path):
    import importlib.resources

    text = (importlib.resources.files("kamrules_rulesets.neglected_small_clients") / "rules.yaml").read_text(
        encoding="utf-8"
    )
    assert "mid: {days: 60}" in text
    mine = tmp_path / "my_rules"
    mine.mkdir()
    (mine / "neglected_small_clients.yaml").write_text(
        text.replace("mid: {days: 60}", "mid: {days: 45}"), encoding="utf-8"
    )
    book.account("A", tier="mid")
    act(book, "A", 50)
    assert book.alerts("KAM201") == {}
    tuned = book.alerts("KAM201", rulesets_dirs=(str(mine),))
    assert tuned["A"].message.endswith("limit 45 days for a mid account")


def test_rule_set_file_parses_with_kam2_codes():
    import importlib.resources

    from kamrules.ruleset import parse_ruleset

    rs = parse_ruleset(
        importlib.resources.files("kamrules_rulesets.neglected_small_clients") / "rules.yaml", builtin=True
    )
    assert [r.name for r in rs.rules] == [
        "no_recent_contact",
        "contact_decay",
        "silent_churn",
        "rising_star_unattended",
        "support_share",
    ]
    assert all(r.code.startswith("KAM2") and r.description and r.action and r.message for r in rs.rules)
    assert [r.scope for r in rs.rules].count("portfolio") == 1
