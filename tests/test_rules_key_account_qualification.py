"""The key_account_qualification rule set (KAM7xx) on small books in a real store, through run_check."""

from __future__ import annotations

import datetime as dt

import pytest
from rulebook import skipped_codes


def month_day(book, months_back: int, day: int = 10) -> str:
    """Day ``day`` of the calendar month ``months_back`` months before the as-of month."""
    d = dt.date.fromisoformat(book.as_of).replace(day=1)
    y, m = divmod(d.year * 12 + d.month - 1 - months_back, 12)
    return dt.date(y, m + 1, day).isoformat()


def order(book, account, months_back, amount=100_000.0, day=10):
    book.add("orders", account_id=account, date=month_day(book, months_back, day), amount=amount)


# -- KAM701 one_off_buyer -----------------------------------------------------------------
@pytest.mark.parametrize(
    "months, fires", [([14], True), ([14, 14], True), ([14, 15], False), ([14, 11], False), ([11], False)]
)
def test_one_off_buyer_either_side(book, months, fires):
    book.account("K", tier="key")
    for i, m in enumerate(months):
        order(book, "K", m, day=5 + i)
    alerts = book.alerts("KAM701")
    assert ("K" in alerts) is fires
    if fires:
        assert alerts["K"].message == (
            f"orders in 1 month of the 24 to 2026-10-31 (last in {month_day(book, 14)[:7]}), "
            "none in the last 12; limit 1 month for a key account"
        )


def test_one_off_buyer_window_is_24_calendar_months(book):
    book.account("OLD", tier="key")
    book.account("EDGE", tier="key")
    order(book, "OLD", 24)  # outside the 24 months: no order months at all -> not judged
    order(book, "EDGE", 23)
    assert sorted(book.alerts("KAM701")) == ["EDGE"]


def test_one_off_buyer_never_judges_prospects_mid_or_accounts_without_orders(book):
    book.account("P", tier="key", status="prospect")
    book.account("M", tier="mid")
    book.account("N", tier="key")  # a long key tender: no orders yet
    book.account("K", tier="key")
    order(book, "P", 14)
    order(book, "M", 14)
    order(book, "K", 1)
    assert book.alerts("KAM701") == {}


def test_one_off_buyer_ignores_orders_after_as_of(book):
    book.account("K", tier="key")
    order(book, "K", 14)
    book.add("orders", account_id="K", date=book.ago(-20), amount=1.0)
    assert "K" in book.alerts("KAM701")


def test_one_off_buyer_tuned(book, tmp_path):
    import importlib.resources

    text = (importlib.resources.files("kamrules_rulesets.key_account_qualification") / "rules.yaml").read_text(
        encoding="utf-8"
    )
    assert "max_months: 1" in text
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kaq.yaml").write_text(text.replace("max_months: 1", "max_months: 2"), encoding="utf-8")
    book.account("K", tier="key")
    order(book, "K", 14)
    order(book, "K", 15)
    assert book.alerts("KAM701") == {}
    assert "K" in book.alerts("KAM701", rulesets_dirs=(str(mine),))


def test_one_off_buyer_skipped_without_orders(book):
    book.account("K", tier="key")
    result = book.check(select=("KAM7",))
    assert not result.alerts and {"KAM701", "KAM702", "KAM703"} <= skipped_codes(result)


# -- KAM702 distributed_purchasing ---------------------------------------------------------
@pytest.mark.parametrize(
    "tier, purchasing, orders, fires",
    [
        ("key", "distributed", True, True),
        ("key", "centralized", True, False),
        ("key", None, True, False),
        ("mid", "distributed", True, False),
        ("key", "distributed", False, False),
    ],
)
def test_distributed_purchasing(book, tier, purchasing, orders, fires):
    book.account("A", tier=tier, purchasing=purchasing)
    book.account("B", tier="small")
    order(book, "B", 1)
    if orders:
        order(book, "A", 30)  # an old order still counts: it has bought
    alerts = book.alerts("KAM702")
    assert ("A" in alerts) is fires
    if fires:
        assert alerts["A"].message.startswith(
            "a key account whose branches buy on their own (purchasing distributed); 0 order months"
        )


# -- KAM703 promotion_candidate --------------------------------------------------------------
def decile_book(book, candidate_revenue, months=10, n_others=9, tier="mid"):
    """``n_others`` small accounts with one order each (10,000 .. 90,000) and the candidate ``C``."""
    for i in range(n_others):
        book.account(f"S{i}", tier="small")
        order(book, f"S{i}", 2, amount=10_000.0 * (i + 1))
    book.account("C", tier=tier)
    for m in range(months):
        order(book, "C", m, amount=candidate_revenue / months)


@pytest.mark.parametrize("months, fires", [(10, True), (9, False), (12, True)])
def test_promotion_candidate_months(book, months, fires):
    decile_book(book, 500_000, months)
    alerts = book.alerts("KAM703")
    assert ("C" in alerts) is fires
    if fires:
        a = alerts["C"]
        assert a.severity == "info"
        assert a.message == (
            f"revenue 500,000 in the 12 months to 2026-10-31 is in the book's top decile (line 500,000 over "
            f"10 accounts with revenue), with orders in {months} of the last 12 months; limits top decile, "
            "10 months, for a mid account"
        )


def test_promotion_candidate_needs_the_top_decile(book):
    decile_book(book, 80_000, n_others=9)  # 10 buyers: only the top one is in the decile; S8 has 90,000
    assert book.alerts("KAM703") == {}


@pytest.mark.parametrize("revenue, fires", [(180_000, True), (179_999, False)])
def test_promotion_candidate_decile_of_a_larger_book(book, revenue, fires):
    decile_book(book, revenue, n_others=19)  # 20 buyers: the top 2 make the decile; S18 has 190,000, S17 180,000
    assert ("C" in book.alerts("KAM703")) is fires


@pytest.mark.parametrize("n_others, fires", [(9, True), (8, False)])
def test_promotion_candidate_needs_a_book_of_min_buyers(book, n_others, fires):
    decile_book(book, 500_000, n_others=n_others)
    assert ("C" in book.alerts("KAM703")) is fires


def test_promotion_candidate_not_key_prospect_or_lost(book):
    decile_book(book, 500_000, tier="key")
    assert book.alerts("KAM703") == {}


def test_promotion_candidate_book_excludes_lost_accounts_and_later_orders(book):
    decile_book(book, 500_000)
    book.account("L", tier="key", status="lost")
    order(book, "L", 3, amount=9_000_000)  # not in the book
    book.add("orders", account_id="S0", date=book.ago(-3), amount=9_000_000)  # after the as-of date
    assert "C" in book.alerts("KAM703")


def test_promotion_candidate_without_a_year_of_history(book):
    """Orders only in the last 4 months: a steady buyer cannot show 10 months yet, so it stays quiet."""
    for i in range(9):
        book.account(f"S{i}", tier="small")
        order(book, f"S{i}", 1, amount=1_000.0)
    book.account("C", tier="mid", created_on=book.ago(120))
    for m in range(4):
        order(book, "C", m, amount=1_000_000)
    assert book.alerts("KAM703") == {}


def test_the_decile_line_is_a_whole_book_fact_with_workers(book, monkeypatch):
    """Split into parts of 4 accounts, each worker sees a few accounts: the line still comes from all of them."""
    import kamrules.partition as partition

    decile_book(book, 500_000, n_others=19)  # 20 buyers: C (500,000) and S18 (190,000) make the top decile
    book.account("D", tier="small")
    for m in range(11):
        order(book, "D", m, amount=200_000 / 11)  # 200,000: in the decile too (ties at the line are in)
    monkeypatch.setattr(partition, "MIN_PART", 2)
    one = book.check(select=("KAM703",), jobs=1)
    many = book.check(select=("KAM703",), jobs=2, part_size=4)
    assert [a.account_id for a in one.alerts] == ["C", "D"]
    assert [a.to_dict() for a in many.alerts] == [a.to_dict() for a in one.alerts]
    assert len({p.lo for p in partition.plan_parts(book.store.conn, 2, 4)}) > 2  # the book was really split
    assert "(line 190,000 over 21 accounts with revenue)" in one.alerts[1].message


def test_decile_line_matches_the_core_revenue_facts(book):
    from kamrules.facts import FactSource, collect_providers

    decile_book(book, 500_000, n_others=25)
    book.save()
    failures = []
    providers = collect_providers(book.store.pm, failures)
    with FactSource(book.store, book.as_of, providers, failures) as src:
        src.book_facts()
        revenues = sorted(
            (f["revenue_12m"] for f in src.accounts() if f["status"] == "active" and f.get("revenue_12m", 0) > 0),
            reverse=True,
        )
        assert src.book["book_buyers_12m"] == len(revenues) == 26
        assert src.book["book_top_decile_revenue_12m"] == revenues[(len(revenues) + 9) // 10 - 1]
    assert not failures


def test_rule_set_file_parses_with_kam7_codes():
    import importlib.resources

    from kamrules.ruleset import parse_ruleset

    rs = parse_ruleset(
        importlib.resources.files("kamrules_rulesets.key_account_qualification") / "rules.yaml", builtin=True
    )
    assert [r.name for r in rs.rules] == [
        "one_off_buyer",
        "distributed_purchasing",
        "promotion_candidate",
        "buying_centre_coverage",
    ]
    assert all(r.code.startswith("KAM7") and r.description and r.action and r.message for r in rs.rules)
