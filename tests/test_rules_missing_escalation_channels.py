"""The missing_escalation_channels rule set (KAM3xx) on small books in a real store, through run_check."""

from __future__ import annotations

import pytest
from rulebook import skipped_codes


# -- KAM301 no_ka_manager ----------------------------------------------------------------
def test_no_ka_manager(book):
    book.account("K", tier="key", owner=None, owner_email=None)
    book.account("OK", tier="key")
    book.account("M", tier="mid", owner=None)
    book.account("L", tier="key", owner=None, status="lost")
    alerts = book.alerts("KAM301")
    assert sorted(alerts) == ["K"]
    assert alerts["K"].severity == "critical"
    assert alerts["K"].message == "key account with no owner (KA manager) as of 2026-10-31"


# -- KAM302 single_threaded --------------------------------------------------------------
def test_single_threaded(book):
    for acc in ("BOTH", "TECH", "NONE", "LATE"):
        book.account(acc, tier="key")
    book.account("MID", tier="mid")
    book.add("channels", account_id="BOTH", kind="technical")
    book.add("channels", account_id="BOTH", kind="management", since=book.ago(10))
    book.add("channels", account_id="TECH", kind="technical")
    book.add("channels", account_id="LATE", kind="technical")
    book.add("channels", account_id="LATE", kind="management", since=book.ago(-3))  # set up after the as-of date
    alerts = book.alerts("KAM302")
    assert sorted(alerts) == ["LATE", "NONE", "TECH"]
    assert alerts["TECH"].message.startswith("no standing management channel")
    assert alerts["NONE"].message.startswith("no standing technical and management channel")


def test_single_threaded_skipped_without_channels(book):
    book.account("K", tier="key")
    result = book.check(select=("KAM302", "KAM303"))
    assert not result.alerts
    assert {"KAM302", "KAM303"} <= skipped_codes(result)


# -- KAM303 no_complaint_channel ---------------------------------------------------------
def test_no_complaint_channel(book):
    for acc in ("TOLD", "UNTOLD", "NONE"):
        book.account(acc, tier="key")
    book.add("channels", account_id="TOLD", kind="complaint", client_informed=1)
    book.add("channels", account_id="UNTOLD", kind="complaint", client_informed=0)
    book.add("channels", account_id="NONE", kind="technical")
    alerts = book.alerts("KAM303")
    assert sorted(alerts) == ["NONE", "UNTOLD"]
    assert alerts["UNTOLD"].message == (
        "this key account has a complaint channel the client has not been told of as of 2026-10-31: "
        "the client has no known way to complain outside the KA manager"
    )
    assert alerts["NONE"].message == (
        "this key account has no complaint channel as of 2026-10-31: "
        "the client has no known way to complain outside the KA manager"
    )


# -- KAM304 no_executive_meeting ---------------------------------------------------------
@pytest.mark.parametrize(
    "days, kind, level, fires",
    [
        (180, "executive_meeting", None, False),
        (181, "executive_meeting", None, True),
        (100, "meeting", "executive", False),
        (100, "meeting", "management", True),
    ],
)
def test_no_executive_meeting(book, days, kind, level, fires):
    book.account("K", tier="key")
    book.add("activities", account_id="K", date=book.ago(days), kind=kind, level=level)
    book.add("activities", account_id="K", date=book.ago(-1), kind="executive_meeting")  # after as-of
    book.add("activities", account_id="K", date=book.ago(400), kind="call")  # the records start before
    alerts = book.alerts("KAM304")
    assert ("K" in alerts) is fires


def test_no_executive_meeting_ever_counts_from_created_on(book):
    book.account("OLD", tier="key", created_on=book.ago(400))
    book.account("NEW", tier="key", created_on=book.ago(100))
    book.add("activities", account_id="NEW", date=book.ago(3), kind="call")
    book.add("activities", account_id="NEW", date=book.ago(500), kind="call")  # where the records start
    alerts = book.alerts("KAM304")
    assert sorted(alerts) == ["OLD"]
    assert alerts["OLD"].message == (
        f"no executive meeting for 400 days to 2026-10-31 (none on record since it was created on {book.ago(400)}); "
        "limit 180 days"
    )


# -- KAM305 no_decision_maker ------------------------------------------------------------
@pytest.mark.parametrize("days, fires", [(180, False), (181, True)])
def test_no_decision_maker_met_recently(book, days, fires):
    book.account("K", tier="key")
    book.add("contacts", id="DM", account_id="K", name="王总", role="decision_maker")
    book.add("activities", account_id="K", date=book.ago(days), kind="visit", contact_id="DM")
    assert ("K" in book.alerts("KAM305")) is fires


def test_no_decision_maker_on_file_or_inactive(book):
    book.account("NONE", tier="key")
    book.account("GONE", tier="key")
    book.add("contacts", id="X", account_id="GONE", name="前任总经理", role="decision_maker", active=0)
    book.add("contacts", id="T", account_id="NONE", name="工程师", role="technical")
    book.add("activities", account_id="GONE", date=book.ago(5), kind="visit", contact_id="X")
    book.add("activities", account_id="NONE", date=book.ago(5), kind="visit", contact_id="T")
    book.add("activities", account_id="NONE", date=book.ago(2000), kind="call")  # the records start before
    alerts = book.alerts("KAM305")
    assert sorted(alerts) == ["GONE", "NONE"]
    assert alerts["NONE"].message.startswith("0 active decision-maker contacts on file, none met for 1,825 days")


# -- KAM306 complaint_unresolved: a medium complaint, key 14 days, others 30 ------------------
# (the other severities and escalated complaints: tests/test_false_alarms_subsidy.py)
@pytest.mark.parametrize(
    "tier, days, fires",
    [("key", 14, False), ("key", 15, True), ("mid", 30, False), ("mid", 31, True), ("small", 31, True)],
)
def test_complaint_unresolved_per_tier(book, tier, days, fires):
    book.account("A", tier=tier)
    book.add("complaints", id="Q1", account_id="A", opened_on=book.ago(days), severity="medium")
    alerts = book.alerts("KAM306")
    assert ("A" in alerts) is fires
    if fires:
        limit = 14 if tier == "key" else 30
        assert alerts["A"].severity == "warning"
        assert alerts["A"].message == (
            f"medium-severity complaint opened on {book.ago(days)} (Q1), not escalated, open for {days} days "
            f"to 2026-10-31; limit {limit} days for a {tier} account (1 of 1 open complaint past the limit)"
        )


def test_complaint_unresolved_escalated_closed_and_future(book):
    for acc in ("ESC", "CLOSED", "CLOSED_LATER", "FUTURE"):
        book.account(acc, tier="key")
    book.add("complaints", account_id="ESC", opened_on=book.ago(40), escalated=1)
    book.add("complaints", account_id="CLOSED", opened_on=book.ago(40), closed_on=book.ago(2))
    book.add("complaints", account_id="CLOSED_LATER", opened_on=book.ago(40), closed_on=book.ago(-2))  # open on as-of
    book.add("complaints", account_id="FUTURE", opened_on=book.ago(-20))
    assert sorted(book.alerts("KAM306")) == ["CLOSED_LATER"]


def test_skipped_without_contacts_or_complaints(book):
    book.account("K", tier="key")
    book.add("activities", account_id="K", date=book.ago(5), kind="call")
    result = book.check(select=("KAM305", "KAM306"))
    assert not result.alerts and {"KAM305", "KAM306"} <= skipped_codes(result)


def test_rule_set_file_parses_with_kam3_codes():
    import importlib.resources

    from kamrules.ruleset import parse_ruleset

    rs = parse_ruleset(
        importlib.resources.files("kamrules_rulesets.missing_escalation_channels") / "rules.yaml", builtin=True
    )
    assert [r.name for r in rs.rules] == [
        "no_ka_manager",
        "single_threaded",
        "no_complaint_channel",
        "no_executive_meeting",
        "no_decision_maker",
        "complaint_unresolved",
    ]
    assert all(r.code.startswith("KAM3") and r.description and r.action and r.message for r in rs.rules)
