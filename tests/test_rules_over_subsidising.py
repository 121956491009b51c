"""The over_subsidising rule set (KAM1xx) on small books in a real store, through run_check."""

from __future__ import annotations

import pytest
from rulebook import skipped_codes


def sold(book, account, amount, margin=None, days=30):
    book.add("orders", account_id=account, date=book.ago(days), amount=amount, margin=margin)


def given(book, account, amount, days=30, commitment_id=None, kind="rebate"):
    book.add(
        "concessions", account_id=account, date=book.ago(days), kind=kind, amount=amount, commitment_id=commitment_id
    )


# -- KAM101 concession_ratio --------------------------------------------------------------
@pytest.mark.parametrize(
    "concessions, severity",
    [(100_000, None), (100_001, "warning"), (200_000, "warning"), (200_001, "critical")],
)
def test_concession_ratio_severity_either_side_of_each_limit(book, concessions, severity):
    book.account("A")
    sold(book, "A", 1_000_000)
    given(book, "A", concessions)
    alerts = book.alerts("KAM101")
    if severity is None:
        assert alerts == {}
    else:
        assert alerts["A"].severity == severity
        assert alerts["A"].rule == "concession_ratio"
        assert alerts["A"].ruleset == "over_subsidising"


def test_concession_ratio_message_shows_the_numbers(book):
    book.account("A")
    sold(book, "A", 1_790_000)
    given(book, "A", 412_000)
    alert = book.alerts("KAM101")["A"]
    assert alert.message == (
        "concessions 412,000 = 23.0% of revenue 1,790,000 over the 12 months to 2026-10-31; limit 20%"
    )
    assert alert.account_name == "客户A" and alert.owner == "张伟"
    assert alert.evidence["concession_ratio"] == pytest.approx(412_000 / 1_790_000)
    assert alert.action


def test_concession_ratio_ignores_records_after_as_of_and_before_the_window(book):
    book.account("A")
    sold(book, "A", 1_000_000)
    given(book, "A", 100_000)
    given(book, "A", 500_000, days=-1)  # after the as-of date
    given(book, "A", 500_000, days=366)  # before the 12-month window
    assert book.alerts("KAM101") == {}
    # checked a day later, the concession dated 2026-11-01 counts
    assert book.alerts("KAM101", as_of="2026-11-01")["A"].severity == "critical"


def test_concession_ratio_only_for_active_accounts_with_revenue(book):
    book.account("P", status="prospect")
    sold(book, "P", 1_000_000)
    given(book, "P", 300_000)
    book.account("Z")  # concessions but no revenue: no ratio (negative_net_margin covers it)
    given(book, "Z", 300_000)
    assert book.alerts("KAM101") == {}


def test_concession_ratio_skipped_without_concessions_data(book):
    book.account("A")
    sold(book, "A", 1_000_000)
    result = book.check(select=("KAM101",))
    assert not result.alerts
    assert "KAM101" in skipped_codes(result)


# -- KAM102 uncommitted_concessions ------------------------------------------------------
def commitment(book, account, id="M1", signed=1, target=500_000, start_days=100, end_days=-265):
    book.add(
        "commitments",
        id=id,
        account_id=account,
        start=book.ago(start_days),
        end=book.ago(end_days),
        target_amount=target,
        signed=signed,
    )


def test_concessions_tied_to_a_signed_commitment_are_fine(book):
    book.account("A")
    sold(book, "A", 1_000_000)
    commitment(book, "A")
    given(book, "A", 80_000, commitment_id="M1")
    assert book.alerts("KAM102") == {}


# below the floor (1% of revenue) nothing; then a warning, above 5% critical
@pytest.mark.parametrize(
    "untied, severity", [(10_000, None), (10_001, "warning"), (50_000, "warning"), (50_001, "critical")]
)
def test_uncommitted_concessions_severity(book, untied, severity):
    book.account("A")
    sold(book, "A", 1_000_000)
    commitment(book, "A")
    given(book, "A", 80_000, commitment_id="M1")
    given(book, "A", untied)
    alerts = book.alerts("KAM102")
    if severity is None:
        assert alerts == {}
        return
    alert = alerts["A"]
    assert alert.severity == severity
    assert f"concessions of {untied:,}" in alert.message


def test_unsigned_or_foreign_or_targetless_commitments_do_not_count(book):
    for acc in ("A", "B", "C"):
        book.account(acc)
        sold(book, acc, 1_000_000)
    commitment(book, "A", id="UNSIGNED", signed=0)
    given(book, "A", 20_000, commitment_id="UNSIGNED")
    commitment(book, "C", id="OTHER")
    given(book, "B", 20_000, commitment_id="OTHER")  # another account's commitment
    commitment(book, "C", id="NOTARGET", target=0)
    given(book, "C", 20_000, commitment_id="NOTARGET")
    alerts = book.alerts("KAM102")
    assert sorted(alerts) == ["A", "B", "C"]


# -- KAM103 commitment_shortfall ---------------------------------------------------------
# A 365-day commitment started 99 days before the as-of date: 100 days elapsed
# (inclusive), so 100,000 of a 365,000 target is due by the as-of date.
def shortfall_book(book, delivered, concession_days=10, start_days=99):
    book.account("A")
    commitment(book, "A", target=365_000, start_days=start_days, end_days=start_days - 364)
    sold(book, "A", delivered, days=20)
    given(book, "A", 5_000, days=concession_days, commitment_id="M1")
    return book


@pytest.mark.parametrize("delivered, fires", [(80_000, False), (79_000, True)])
def test_commitment_shortfall_either_side_of_20_percent(book, delivered, fires):
    shortfall_book(book, delivered)
    alerts = book.alerts("KAM103")
    assert ("A" in alerts) is fires
    if fires:
        assert "orders 79,000 against 100,000 due by 2026-10-31" in alerts["A"].message
        assert "21% behind" in alerts["A"].message


def test_commitment_shortfall_needs_concessions_still_flowing(book):
    shortfall_book(book, 10_000, concession_days=91)
    assert book.alerts("KAM103") == {}


def test_commitment_shortfall_not_judged_in_the_first_30_days(book):
    shortfall_book(book, 0, start_days=28)  # 29 days elapsed
    assert book.alerts("KAM103") == {}


def test_commitment_shortfall_ignores_orders_after_as_of(book):
    shortfall_book(book, 79_000)
    sold(book, "A", 50_000, days=-3)
    assert "A" in book.alerts("KAM103")


# -- KAM104 concessions_outpacing_revenue ------------------------------------------------
@pytest.mark.parametrize(
    "now, revenue_now, fires",
    [(125_000, 1_000_000, False), (126_000, 1_000_000, True), (126_000, 1_010_000, False), (200_000, 900_000, True)],
)
def test_concessions_outpacing_revenue(book, now, revenue_now, fires):
    book.account("A")
    given(book, "A", 100_000, days=400)
    given(book, "A", now, days=30)
    sold(book, "A", 1_000_000, days=400)
    sold(book, "A", revenue_now, days=30)
    alerts = book.alerts("KAM104")
    assert ("A" in alerts) is fires
    if fires and now == 126_000:
        assert "concessions 100,000 -> 126,000 (+26%)" in alerts["A"].message


# -- KAM105 cost_to_serve ----------------------------------------------------------------
@pytest.mark.parametrize(
    "cost, buyer, fires",
    [(50_000, "transactional", False), (50_001, "transactional", True), (90_000, "consultative", False)],
)
def test_cost_to_serve(book, cost, buyer, fires):
    book.account("A", buyer_type=buyer)
    sold(book, "A", 400_000, margin=100_000)
    book.add("activities", account_id="A", date=book.ago(40), kind="visit", cost=cost)
    alerts = book.alerts("KAM105")
    assert ("A" in alerts) is fires


def test_cost_to_serve_skipped_without_activities(book):
    book.account("A", buyer_type="transactional")
    sold(book, "A", 400_000, margin=100_000)
    result = book.check(select=("KAM105",))
    assert not result.alerts and "KAM105" in skipped_codes(result)


# -- KAM106 negative_net_margin ----------------------------------------------------------
@pytest.mark.parametrize("concessions, fires", [(7_000, False), (7_001, True)])
def test_negative_net_margin(book, concessions, fires):
    book.account("A")
    sold(book, "A", 100_000, margin=10_000)
    given(book, "A", concessions)
    book.add("activities", account_id="A", date=book.ago(10), kind="visit", cost=3_000)
    alerts = book.alerts("KAM106")
    assert ("A" in alerts) is fires
    if fires:
        assert "net margin -1 (margin 10,000 - concessions 7,001 - service cost 3,000)" in alerts["A"].message


def test_negative_net_margin_spares_prospects_and_unknown_margins(book):
    book.account("P", status="prospect")
    given(book, "P", 50_000)  # development investment, not a loss
    book.account("U")
    sold(book, "U", 100_000)  # margin not recorded: unknown, not zero
    given(book, "U", 50_000)
    book.account("Z")  # active, concessions and no orders at all: a loss
    given(book, "Z", 50_000)
    assert sorted(book.alerts("KAM106")) == ["Z"]


def test_commitment_shortfall_skipped_without_commitments(book):
    book.account("A")
    sold(book, "A", 10_000)
    given(book, "A", 5_000)
    result = book.check(select=("KAM103",))
    assert not result.alerts and "KAM103" in skipped_codes(result)


def test_rule_set_file_parses_with_kam1_codes():
    import importlib.resources

    from kamrules.ruleset import parse_ruleset

    rs = parse_ruleset(importlib.resources.files("kamrules_rulesets.over_subsidising") / "rules.yaml", builtin=True)
    assert rs.name == "over_subsidising"
    assert [r.name for r in rs.rules] == [
        "concession_ratio",
        "uncommitted_concessions",
        "commitment_shortfall",
        "concessions_outpacing_revenue",
        "cost_to_serve",
        "negative_net_margin",
    ]
    assert all(r.code.startswith("KAM1") and r.description and r.action and r.message for r in rs.rules)
