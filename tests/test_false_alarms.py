"""Issue 13's false alarms: each a healthy account that must stay quiet and a defect that must still fire
(real store, real engine, through run_check)."""

from __future__ import annotations

from rulebook import act

# -- long key-account decisions (seeds 002, 003): stage limits per tier, key twice the others -----------


def test_key_tender_80_days_into_negotiation_is_quiet_a_mid_one_fires(book):
    book.account("BANK", tier="key", status="prospect", stage="negotiation", stage_since=book.ago(80))
    book.account("MID", tier="mid", status="prospect", stage="negotiation", stage_since=book.ago(80))
    book.account("SLOW", tier="key", status="prospect", stage="negotiation", stage_since=book.ago(121))
    alerts = book.alerts("KAM411")
    assert sorted(alerts) == ["MID", "SLOW"]
    assert alerts["SLOW"].message.endswith("limit 120 days") and alerts["MID"].message.endswith("limit 60 days")


# -- follow-up scope (seed 002): development visits, i.e. prospects and key accounts --------------------


def test_routine_visit_to_an_established_mid_client_needs_no_one_week_follow_up(book):
    book.account("MID", tier="mid", status="active")
    book.account("SMALL", tier="small", status="active")
    book.account("KEY", tier="key", status="active")
    book.account("PROS", tier="mid", status="prospect")
    for a in ("MID", "SMALL", "KEY", "PROS"):
        act(book, a, 30, kind="visit")  # no follow-up, no contact, no duration, no attitude
    result = book.check(select=("KAM401", "KAM402"))
    fired = {(a.code, a.account_id) for a in result.alerts}
    assert fired == {(c, a) for c in ("KAM401", "KAM402") for a in ("KEY", "PROS")}


def test_incomplete_visit_record_names_the_visit(book):
    book.account("KEY", tier="key", status="active")
    book.add("contacts", id="C1", account_id="KEY", name="赵总")
    act(book, "KEY", 40, kind="visit", contact_id="C1", duration_minutes=60, attitude="warm", by="王磊")
    act(book, "KEY", 20, kind="visit", by="王磊")  # the latest incomplete one
    act(book, "KEY", 30, kind="visit", contact_id="C1", by="李娜")
    alert = book.alerts("KAM402")["KEY"]
    assert alert.message == (
        f"the visit on {book.ago(20)} by 王磊 has no contact, duration or attitude on record"
        "; incomplete visit records: 2 of 3 in the 6 months to 2026-10-31"
    )
    assert "0 without" not in alert.message
