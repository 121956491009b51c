"""The resource_mismatch rule set (KAM8xx) on small books in a real store, through run_check."""

from __future__ import annotations

import pytest
from rulebook import act, skipped_codes


def consultative(book, id="C", unvisited=181, remote=(30, 10), **account):
    book.account(id, buyer_type="consultative", **account)
    if unvisited is not None:
        act(book, id, unvisited, kind="visit")
    for days in remote:
        act(book, id, days, kind="call" if days % 2 == 0 else "email")


# -- KAM801 consultative_unvisited ----------------------------------------------------------
@pytest.mark.parametrize("days, fires", [(180, False), (181, True)])
def test_consultative_unvisited_either_side_of_180_days(book, days, fires):
    consultative(book, unvisited=days)
    alerts = book.alerts("KAM801")
    assert ("C" in alerts) is fires
    if fires:
        assert alerts["C"].message == (
            f"no visit, meeting or presentation for 181 days to 2026-10-31 (last on {book.ago(181)}) "
            f"while 2 calls or emails went on (last {book.ago(10)}); limit 180 days for a consultative buyer"
        )


@pytest.mark.parametrize("remote, fires", [((30,), False), ((30, 10), True), ((), False)])
def test_consultative_unvisited_needs_calls_or_emails_going_on(book, remote, fires):
    consultative(book, remote=remote)
    act(book, "C", 200, kind="call")  # before the last visit: does not count
    assert ("C" in book.alerts("KAM801")) is fires


@pytest.mark.parametrize("kind", ["meeting", "presentation", "executive_meeting"])
def test_consultative_unvisited_any_in_person_contact_counts(book, kind):
    consultative(book)
    act(book, "C", 100, kind=kind)
    assert book.alerts("KAM801") == {}


def test_consultative_unvisited_only_active_consultative_buyers(book):
    consultative(book, "P", status="prospect")
    consultative(book, "L", status="lost")
    book.account("T", buyer_type="transactional")
    act(book, "T", 300, kind="visit")
    act(book, "T", 10)
    act(book, "T", 20)
    book.account("U")  # no buyer type recorded: not judged
    act(book, "U", 10)
    act(book, "U", 20)
    assert book.alerts("KAM801") == {}


def test_consultative_never_visited_counts_from_created_on(book):
    consultative(book, "NEW", unvisited=None, created_on=book.ago(150))  # a newly won account
    consultative(book, "OLD", unvisited=None, created_on=book.ago(400))
    book.account("Z", buyer_type="transactional")
    act(book, "Z", 600)  # the store's records start long before both
    alerts = book.alerts("KAM801")
    assert sorted(alerts) == ["OLD"]
    assert "(none recorded, counted from created_on" in alerts["OLD"].message


def test_day_count_never_starts_before_the_first_activity_record(book):
    """An export that starts 170 days ago says nothing about the 1,700 days before it."""
    consultative(book, "C", unvisited=None, remote=(170, 30, 10), created_on=book.ago(1705))
    assert book.alerts("KAM801") == {}
    book.account("Z", buyer_type="transactional")
    act(book, "Z", 200)  # the store's activities now start 200 days ago
    alert = book.alerts("KAM801")["C"]
    assert alert.message.startswith(
        f"no visit, meeting or presentation for 200 days to 2026-10-31 (none recorded, counted from "
        f"the first activity record, {book.ago(200)})"
    )


def test_first_activity_record_is_a_whole_book_fact_with_workers(book, monkeypatch):
    import kamrules.partition as partition

    for i in range(12):  # only the last account's activities start early; each part sees a few accounts
        consultative(book, f"C{i:02d}", unvisited=None, remote=(100, 30, 10), created_on=book.ago(1000))
    act(book, "C11", 400)
    monkeypatch.setattr(partition, "MIN_PART", 2)
    one = book.check(select=("KAM801",), jobs=1)
    many = book.check(select=("KAM801",), jobs=2, part_size=3)
    assert len(one.alerts) == 12 and all("for 400 days" in a.message for a in one.alerts)
    assert [a.to_dict() for a in many.alerts] == [a.to_dict() for a in one.alerts]


def test_consultative_unvisited_skipped_without_activities(book):
    book.account("C", buyer_type="consultative")
    result = book.check(select=("KAM8",))
    assert not result.alerts and {"KAM801", "KAM802"} <= skipped_codes(result)


# -- KAM802 strategic_no_executive ---------------------------------------------------------------
@pytest.mark.parametrize("tier", ["key", "mid", "small"])
@pytest.mark.parametrize("days, fires", [(180, False), (181, True)])
def test_strategic_no_executive_any_tier(book, tier, days, fires):
    book.account("S", tier=tier, buyer_type="strategic")
    act(book, "S", days, kind="executive_meeting")
    act(book, "S", 5)
    alerts = book.alerts("KAM802")
    assert ("S" in alerts) is fires
    if fires:
        assert alerts["S"].message == (
            f"no executive-level activity for 181 days to 2026-10-31 (last on {book.ago(181)}); "
            "limit 180 days for a strategic buyer"
        )


def test_strategic_executive_level_activity_counts(book):
    book.account("S", buyer_type="strategic")
    act(book, "S", 300, kind="executive_meeting")
    act(book, "S", 100, kind="visit", level="executive")
    assert book.alerts("KAM802") == {}


def test_strategic_no_executive_never_met(book):
    book.account("NEW", buyer_type="strategic", created_on=book.ago(100))
    book.account("OLD", buyer_type="strategic", created_on=book.ago(900))
    book.account("P", buyer_type="strategic", status="prospect", created_on=book.ago(900))
    book.account("C", buyer_type="consultative", created_on=book.ago(900))
    for a in ("NEW", "OLD", "P", "C"):
        act(book, a, 400)  # the records start 400 days ago
    alerts = book.alerts("KAM802")
    assert sorted(alerts) == ["OLD"]
    assert alerts["OLD"].message.startswith(
        f"no executive-level activity for 400 days to 2026-10-31 (none recorded, counted from "
        f"the first activity record, {book.ago(400)})"
    )


def test_strategic_without_a_year_of_history(book):
    """Records that start 150 days ago: too short to say 180 days went by without an executive meeting."""
    book.account("S", buyer_type="strategic", created_on=book.ago(2000))
    act(book, "S", 150)
    act(book, "S", 10)
    assert book.alerts("KAM802") == {}


def test_rule_set_file_parses_with_kam8_codes():
    import importlib.resources

    from kamrules.ruleset import parse_ruleset

    rs = parse_ruleset(importlib.resources.files("kamrules_rulesets.resource_mismatch") / "rules.yaml", builtin=True)
    assert [r.name for r in rs.rules][:2] == ["consultative_unvisited", "strategic_no_executive"]
    assert all(r.code.startswith("KAM8") and r.description and r.action and r.message for r in rs.rules)
