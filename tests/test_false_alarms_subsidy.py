"""Issue 13's false alarms in over_subsidising and complaint_unresolved: each a healthy account that must
stay quiet and a defect that must still fire (real store, real engine, through run_check)."""

from __future__ import annotations

import datetime as dt

import pytest

# -- newly won accounts (seed 000): a committed listing fee on track is development investment ---------


def _won_key_chain(book, id, won_days, commitment_start_days, orders, created_days=None):
    """A key chain with a one-off listing fee (进场费) of 480,000 tied to a signed 2-year commitment
    (target 8,000,000) that started ``commitment_start_days`` ago; ``orders`` ordered since, margin 10%."""
    book.account(id, tier="key", status="active", created_on=book.ago(created_days or won_days + 10))
    if won_days is not None:
        book.add("stage_history", account_id=id, stage="won", entered_on=book.ago(won_days))
    start = book.ago(commitment_start_days)
    end = (dt.date.fromisoformat(start) + dt.timedelta(days=730)).isoformat()
    book.add("commitments", id=f"M-{id}", account_id=id, start=start, end=end, target_amount=8_000_000, signed=True)
    book.add("orders", account_id=id, date=book.ago(20), amount=orders, margin=orders * 0.10)
    book.add(
        "concessions",
        account_id=id,
        date=book.ago(80),
        kind="marketing_support",
        amount=480_000,
        commitment_id=f"M-{id}",
    )


def test_newly_won_chain_with_a_committed_listing_fee_on_track_is_quiet(book):
    # pro-rated target after 91 of 731 days: ~996,000
    _won_key_chain(book, "NEW", 90, 90, 1_200_000)  # ahead of it
    _won_key_chain(book, "NEWC", None, 90, 1_200_000, created_days=90)  # no stage history: created_on
    _won_key_chain(book, "BEHIND", 90, 90, 500_000)  # half of it
    _won_key_chain(book, "OLD", 730, 90, 1_200_000)  # won two years ago: no development investment
    result = book.check(select=("KAM101", "KAM106"))
    fired = {(a.code, a.account_id): a for a in result.alerts}
    assert sorted(fired) == [
        ("KAM101", "BEHIND"),
        ("KAM101", "OLD"),
        ("KAM106", "BEHIND"),
        ("KAM106", "OLD"),
    ]
    assert fired["KAM101", "OLD"].severity == "critical" and "40.0%" in fired["KAM101", "OLD"].message
    # behind target: the action says so
    assert "behind" in fired["KAM101", "BEHIND"].action


# -- commitment_shortfall's pro-rating follows last year's seasons -----------------------------------------


def _dealer(book, id, first_year, months=range(3, 12), commitment="2027"):
    """A building-materials dealer ordering 100,000 on the 15th of ``months`` every year since ``first_year``,
    with a signed commitment for calendar ``commitment`` (target 900,000) and a rebate in January."""
    book.account(id, tier="mid", status="active", created_on=f"{first_year}-01-01")
    for year in range(first_year, 2027):
        for m in months:
            book.add("orders", account_id=id, date=f"{year}-{m:02d}-15", amount=100_000, margin=10_000)
    book.add(
        "commitments",
        id=f"M-{id}",
        account_id=id,
        start=f"{commitment}-01-01",
        end=f"{commitment}-12-31",
        target_amount=900_000,
        signed=True,
    )
    book.add("concessions", account_id=id, date="2027-01-10", kind="rebate", amount=9_000, commitment_id=f"M-{id}")


def test_seasonal_dealer_is_not_behind_its_commitment_in_january(book):
    _dealer(book, "DEAL", 2024)  # March to November since 2024: nothing due by January 31
    _dealer(book, "YOUNG", 2026, months=range(6, 12))  # first order June 2026: under a year before the start
    alerts = book.alerts("KAM103", as_of="2027-01-31")
    assert sorted(alerts) == ["YOUNG"]  # linear pro-rating: 31/365 of the target due
    assert "linear" in alerts["YOUNG"].message and "76,438 due by 2027-01-31" in alerts["YOUNG"].message


def test_seasonal_dealer_behind_its_season_fires(book):
    _dealer(book, "DEAL", 2024)
    book.add("orders", account_id="DEAL", date="2027-03-15", amount=50_000, margin=5_000)
    book.add("concessions", account_id="DEAL", date="2027-05-01", kind="rebate", amount=9_000, commitment_id="M-DEAL")
    alerts = book.alerts("KAM103", as_of="2027-05-31")
    # last year March-May: 300,000 of 900,000 = a third of the target due, 50,000 ordered
    assert sorted(alerts) == ["DEAL"]
    a = alerts["DEAL"]
    assert "orders 50,000 against 300,000 due by 2027-05-31" in a.message and "seasonal" in a.message
    assert a.evidence["commitment_behind"] == pytest.approx(1 - 50_000 / 300_000)


# -- uncommitted_concessions: a floor, and kinds that need no volume deal ------------------------------------


def _revenue(book, id, amount=1_000_000):
    book.account(id, tier="key", status="active")
    book.add("orders", account_id=id, date=book.ago(100), amount=amount, margin=amount * 0.2)


def test_small_uncommitted_amounts_and_complaint_settlements_are_quiet(book):
    for a in ("TINY", "SETTLE", "REBATE"):
        _revenue(book, a)
    book.add("concessions", account_id="TINY", date=book.ago(50), kind="rebate", amount=5_000)  # 0.5%
    book.add("concessions", account_id="SETTLE", date=book.ago(50), kind="free_service", amount=30_000)  # 3%
    book.add("concessions", account_id="REBATE", date=book.ago(50), kind="rebate", amount=30_000)  # 3%
    alerts = book.alerts("KAM102")
    assert sorted(alerts) == ["REBATE"]
    assert alerts["REBATE"].severity == "warning"


def test_excluded_kinds_and_floor_are_tunable_in_the_rule_file(book, tmp_path):
    from importlib.resources import files

    for a in ("TINY", "SETTLE"):
        _revenue(book, a)
    book.add("concessions", account_id="TINY", date=book.ago(50), kind="rebate", amount=5_000)
    book.add("concessions", account_id="SETTLE", date=book.ago(50), kind="free_service", amount=30_000)
    text = (files("kamrules_rulesets.over_subsidising") / "rules.yaml").read_text(encoding="utf-8")
    assert 'excluded_kinds: "free_service"' in text and "share: {warning: 0.01, critical: 0.05}" in text
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "over_subsidising.yaml").write_text(
        text.replace('excluded_kinds: "free_service"', 'excluded_kinds: ""').replace(
            "share: {warning: 0.01, critical: 0.05}", "share: {warning: 0.0, critical: 0.05}"
        ),
        encoding="utf-8",
    )
    alerts = book.alerts("KAM102", rulesets_dirs=(mine,))
    assert sorted(alerts) == ["SETTLE", "TINY"]


def test_an_unknown_excluded_kind_is_refused_with_its_place(book, tmp_path):
    from importlib.resources import files

    from kamrules.errors import InputError

    _revenue(book, "A")
    text = (files("kamrules_rulesets.over_subsidising") / "rules.yaml").read_text(encoding="utf-8")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "over_subsidising.yaml").write_text(
        text.replace('excluded_kinds: "free_service"', 'excluded_kinds: "free_servce"'), encoding="utf-8"
    )
    with pytest.raises(InputError) as e:
        book.check(select=("KAM102",), rulesets_dirs=(mine,))
    assert "over_subsidising.yaml:" in e.value.render() and "free_servce" in e.value.render()


# -- complaint severity: limits and severity follow the complaint's ------------------------------------------


def test_complaint_limits_and_severity_follow_the_complaint(book):
    def complaint(acc, days, severity, tier="mid", **kw):
        book.account(acc, tier=tier)
        book.add("complaints", account_id=acc, opened_on=book.ago(days), severity=severity, **kw)

    complaint("KHIGH", 5, "high", tier="key")  # key high: 3 days
    complaint("MHIGH", 8, "high")  # others high: 7 days
    complaint("KMED", 10, "medium", tier="key")  # key medium: 14 days, quiet
    complaint("MLOW", 45, "low")  # others low: 60 days, quiet
    complaint("MLOWOLD", 61, "low")
    complaint("KESC", 117, "high", tier="key", escalated=True)  # escalated: 3 x 3 days
    complaint("KESCMED", 20, "medium", tier="key", escalated=True)  # escalated medium: 3 x 14 days, quiet
    complaint("MBLANK", 31, None)  # no severity: medium, 30 days
    alerts = book.alerts("KAM306")
    assert sorted(alerts) == ["KESC", "KHIGH", "MBLANK", "MHIGH", "MLOWOLD"]
    sev = {a: alerts[a].severity for a in alerts}
    assert sev == {"KESC": "critical", "KHIGH": "critical", "MBLANK": "warning", "MHIGH": "critical", "MLOWOLD": "info"}
    k = alerts["KHIGH"]
    assert f"high-severity complaint opened on {book.ago(5)}" in k.message and "limit 3 days" in k.message
    assert "escalated" in alerts["KESC"].message and "escalated" in alerts["KESC"].action.lower()
    assert "not escalated" in k.message and "Escalate" in k.action
