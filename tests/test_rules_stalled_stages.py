"""The stalled_stages rule set (KAM4xx) on small books in a real store, through run_check."""

from __future__ import annotations

import pytest
from rulebook import Book, act, skipped_codes


def history(book, account, *moves):
    """moves: (stage, days ago) pairs."""
    for stage, days in moves:
        book.add("stage_history", account_id=account, stage=stage, entered_on=book.ago(days))


# -- KAM411 stage_dwell (one rule, limits per stage and tier; KAM412-KAM417 retired) ------
DWELL = [
    ("research", 30),
    ("analysis", 30),
    ("contact", 30),
    ("visit", 45),
    ("presentation", 45),
    ("proposal", 30),
    ("negotiation", 60),
]
DWELL = [(s, t, d * (2 if t == "key" else 1)) for s, d in DWELL for t in ("mid", "key")]


@pytest.mark.parametrize("stage, tier, limit", DWELL)
def test_stage_dwell_either_side_of_each_stage_limit(book, stage, tier, limit):
    code = "KAM411"
    book.account("AT", tier=tier, status="prospect", stage=stage, stage_since=book.ago(limit))
    book.account("OVER", tier=tier, status="prospect", stage=stage, stage_since=book.ago(limit + 1))
    book.account("LOST", tier=tier, status="lost", stage=stage, stage_since=book.ago(limit + 100), lost_reason="价格")
    result = book.check(select=("KAM41",))
    fired = {(a.code, a.account_id) for a in result.alerts}
    assert fired == {(code, "OVER")}
    alert = result.alerts[0]
    assert alert.rule == "stage_dwell"
    assert alert.message == (
        f"in stage {stage} for {limit + 1} days since {book.ago(limit + 1)} to 2026-10-31; limit {limit} days"
    )


def test_stage_history_is_the_authority(book):
    # the account row says research since long ago; the history says proposal 10 days ago
    book.account("A", status="prospect", stage="research", stage_since=book.ago(300))
    history(book, "A", ("research", 300), ("proposal", 10))
    # history after the as-of date is ignored: on the as-of date B is still in contact, since 40 days
    book.account("B", status="prospect", stage="proposal", stage_since=book.ago(-5))
    history(book, "B", ("contact", 40), ("proposal", -5))
    result = book.check(select=("KAM41",))
    assert {(a.code, a.account_id) for a in result.alerts} == {("KAM411", "B")}


def test_stage_since_after_as_of_means_stage_unknown(book):
    book.account("A", status="prospect", stage="research", stage_since=book.ago(-1))
    assert not book.check(select=("KAM41",)).alerts


# -- KAM401 no_follow_up -----------------------------------------------------------------
@pytest.mark.parametrize("visit_days, fires", [(7, False), (8, True)])
def test_no_follow_up_week_must_be_over(book, visit_days, fires):
    book.account("A", status="prospect")
    act(book, "A", visit_days, kind="visit")
    alerts = book.alerts("KAM401")
    assert ("A" in alerts) is fires
    if fires:
        assert alerts["A"].message == (
            f"visit on {book.ago(8)}: no follow-up yet, 8 days after it (checked 2026-10-31); limit 7 days"
        )


@pytest.mark.parametrize(
    "follow_days, kind, fires",
    [(13, "call", False), (12, "call", True), (13, "email", True), (20, "call", True), (-1, "call", True)],
)
def test_no_follow_up_within_a_week_of_the_visit(book, follow_days, kind, fires):
    book.account("A", status="prospect")
    act(book, "A", 20, kind="visit")
    act(book, "A", follow_days, kind=kind)  # 20 = same day, -1 = after the as-of date
    assert ("A" in book.alerts("KAM401")) is fires


def test_no_follow_up_late_follow_up_message(book):
    book.account("A", status="prospect")
    act(book, "A", 20, kind="visit")
    act(book, "A", 10, kind="meeting")
    assert book.alerts("KAM401")["A"].message == (
        f"visit on {book.ago(20)}: the first follow-up came on {book.ago(10)}, 10 days after it (checked 2026-10-31); "
        "limit 7 days"
    )


def test_no_follow_up_skipped_without_activities(book):
    book.account("A", status="prospect")
    result = book.check(select=("KAM401", "KAM402", "KAM405"))
    assert not result.alerts and {"KAM401", "KAM402", "KAM405"} <= skipped_codes(result)


# -- KAM402 incomplete_visit_record ------------------------------------------------------
def test_incomplete_visit_record(book):
    book.account("A", status="prospect")
    book.add("contacts", id="C", account_id="A", name="赵经理")
    book.account("FULL", status="prospect")
    book.add("contacts", id="D", account_id="FULL", name="钱经理")
    act(book, "A", 20, kind="visit", contact_id="C", duration_minutes=45)  # no attitude
    act(book, "A", 10, kind="visit", contact_id="C", duration_minutes=30, attitude="warm")
    act(book, "A", 300, kind="visit")  # outside the 6-month window
    act(book, "FULL", 10, kind="visit", contact_id="D", duration_minutes=30, attitude="neutral")
    alerts = book.alerts("KAM402")
    assert sorted(alerts) == ["A"]
    assert alerts["A"].severity == "info"
    assert alerts["A"].message == (
        f"the visit on {book.ago(20)} by someone unrecorded has no attitude on record"
        "; incomplete visit records: 1 of 2 in the 6 months to 2026-10-31"
    )


# -- KAM403 stage_regression -------------------------------------------------------------
@pytest.mark.parametrize("back_days, fires", [(90, True), (91, False)])
def test_stage_regression_window(book, back_days, fires):
    book.account("A", status="prospect")
    history(book, "A", ("analysis", 200), ("proposal", 150), ("analysis", back_days))
    alerts = book.alerts("KAM403")
    assert ("A" in alerts) is fires
    if fires:
        assert alerts["A"].message.startswith(f"moved back from proposal to analysis on {book.ago(90)}")


def test_stage_regression_ignores_moves_after_as_of_and_needs_history(book, tmp_path):
    book.account("A", status="prospect")
    history(book, "A", ("proposal", 150), ("analysis", -3))
    assert book.alerts("KAM403") == {}
    other = Book(tmp_path / "empty.db")
    other.account("A", status="prospect", stage="analysis", stage_since=other.ago(5))
    result = other.check(select=("KAM403", "KAM404"))
    assert not result.alerts and {"KAM403", "KAM404"} <= skipped_codes(result)


# -- KAM404 stage_skipped ----------------------------------------------------------------
def test_stage_skipped(book):
    book.account("SKIP", status="prospect")
    history(book, "SKIP", ("research", 100), ("contact", 80), ("proposal", 20))
    book.account("HALF", status="prospect")
    history(book, "HALF", ("analysis", 100), ("contact", 80), ("negotiation", 20))
    book.account("FULL", status="prospect")
    history(book, "FULL", ("analysis", 100), ("visit", 80), ("proposal", 20))
    book.account("LATE", status="prospect")  # analysis and visit only after the proposal
    history(book, "LATE", ("proposal", 100), ("analysis", 60), ("visit", 50), ("proposal", 20))
    book.account("WON", status="active")
    history(book, "WON", ("contact", 300), ("proposal", 200), ("won", 100))
    alerts = book.alerts("KAM404")
    assert sorted(alerts) == ["HALF", "LATE", "SKIP"]
    assert alerts["SKIP"].message == (
        "reached the proposal stage without going through analysis and visit before the proposal (as of 2026-10-31): "
        "price before needs"
    )
    assert "without going through visit before" in alerts["HALF"].message


# -- KAM405 cold_streak ------------------------------------------------------------------
@pytest.mark.parametrize(
    "attitudes, fires",
    [
        (["cold", "cold", "cold"], True),
        (["cold", "cold"], False),
        (["cold", "cold", "cold", "warm"], False),
        (["warm", "cold", "cold", "cold"], True),
        (["cold", "neutral", "cold", "cold"], False),
    ],
)
def test_cold_streak(book, attitudes, fires):
    book.account("A", status="prospect", stage="contact", stage_since=book.ago(100))
    for i, attitude in enumerate(attitudes):  # oldest first
        act(book, "A", 50 - 5 * i, attitude=attitude)
    act(book, "A", 2, attitude=None)  # no attitude recorded: not part of the streak
    assert ("A" in book.alerts("KAM405")) is fires


def test_cold_streak_counts_only_the_current_stage(book):
    book.account("A", status="prospect", stage="visit", stage_since=book.ago(47))
    for days in (50, 45, 40, 35):  # one cold before the stage advanced, three after
        act(book, "A", days, attitude="cold")
    book.account("B", status="prospect", stage="visit", stage_since=book.ago(42))
    for days in (50, 45, 40, 35):  # two colds before the stage advanced, two after
        act(book, "B", days, attitude="cold")
    alerts = book.alerts("KAM405")
    assert sorted(alerts) == ["A"]
    assert alerts["A"].message == (
        f"the last 3 recorded attitudes since {book.ago(45)}: all cold, still in stage visit (as of 2026-10-31); limit 3"
    )


def test_cold_streak_ignores_attitudes_after_as_of(book):
    book.account("A", status="prospect", stage="contact", stage_since=book.ago(100))
    for days in (30, 20):
        act(book, "A", days, attitude="cold")
    act(book, "A", -1, attitude="cold")
    assert book.alerts("KAM405") == {}


# -- KAM406 lost_without_reason ----------------------------------------------------------
def test_lost_without_reason(book):
    book.account("NO", status="lost")
    book.account("YES", status="lost", lost_reason="竞争对手价格更低")
    book.account("ACTIVE")
    alerts = book.alerts("KAM406")
    assert sorted(alerts) == ["NO"]
    assert alerts["NO"].severity == "info"


# -- KAM407 relationship_stuck -----------------------------------------------------------
@pytest.mark.parametrize(
    "tier, rel, won_days, fires",
    [
        ("key", "establish", 365, False),
        ("key", "establish", 366, True),
        ("key", "stabilize", 900, False),
        ("mid", "establish", 900, False),
    ],
)
def test_relationship_stuck(book, tier, rel, won_days, fires):
    book.account("A", tier=tier, relationship_stage=rel, stage="won", stage_since=book.ago(won_days))
    alerts = book.alerts("KAM407")
    assert ("A" in alerts) is fires
    if fires:
        assert alerts["A"].message == (
            f"won on {book.ago(366)}, 366 days to 2026-10-31, and still in the establish stage; limit 365 days"
        )


def test_relationship_stuck_won_date_from_history(book):
    book.account("A", tier="key", relationship_stage="establish", stage="won", stage_since=book.ago(10))
    history(book, "A", ("negotiation", 500), ("won", 400))
    assert "A" in book.alerts("KAM407")


def test_rule_set_file_parses_with_kam4_codes():
    import importlib.resources

    from kamrules.ruleset import parse_ruleset

    rs = parse_ruleset(importlib.resources.files("kamrules_rulesets.stalled_stages") / "rules.yaml", builtin=True)
    names = [r.name for r in rs.rules]
    assert names[:7] == [
        "no_follow_up",
        "incomplete_visit_record",
        "stage_regression",
        "stage_skipped",
        "cold_streak",
        "lost_without_reason",
        "relationship_stuck",
    ]
    assert names[7:] == ["stage_dwell", "lost_reason_pattern"]
    dwell = rs.rules[7]
    assert dwell.code == "KAM411"
    assert {
        (stage, tier): dwell.thresholds_for({"pipeline_stage": stage, "tier": tier})["days"] for stage, tier, _ in DWELL
    } == {(stage, tier): limit for stage, tier, limit in DWELL}
    assert all(r.code.startswith("KAM4") and r.description and r.action and r.message for r in rs.rules)
