"""The four rules of issue 14's "also worth building": KAM803, KAM704, KAM604, KAM418, on both sides of every threshold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rulebook import act

from kamrules.check import run_check
from kamrules.generate import generate_to_store
from kamrules.store import Store


# -- KAM803 key_visit_cadence ------------------------------------------------------------------
@pytest.mark.parametrize(
    "buyer, days, fires",
    [
        ("strategic", 45, False),
        ("strategic", 46, True),
        ("consultative", 46, True),
        ("transactional", 90, False),
        ("transactional", 91, True),
        (None, 90, False),  # buyer type not recorded: the lenient cadence
        (None, 91, True),
    ],
)
def test_key_visit_cadence_by_buyer_type(book, buyer, days, fires):
    book.account("K", tier="key", buyer_type=buyer)
    act(book, "K", days, "meeting")
    act(book, "K", 3, "call")
    alerts = book.alerts("KAM803")
    assert ("K" in alerts) is fires
    if fires:
        assert f"no visit or meeting for {days} days" in alerts["K"].message
        assert f"cadence {90 if buyer in (None, 'transactional') else 45} days" in alerts["K"].message


def test_key_visit_cadence_scope_and_start(book):
    for acc, cols in {
        "MID": {"tier": "mid", "buyer_type": "strategic"},
        "P": {"tier": "key", "status": "prospect", "buyer_type": "strategic"},
        "NEW": {"tier": "key", "buyer_type": "strategic", "created_on": book.ago(40)},
        "OLD": {"tier": "key", "buyer_type": "strategic"},
        "BARE": {"tier": "key", "buyer_type": "strategic"},  # no activity record at all: not judged
    }.items():
        book.account(acc, **cols)
    act(book, "MID", 100, "call")
    act(book, "P", 100, "call")
    act(book, "NEW", 10, "call")  # created 40 days ago: counted from created_on
    act(book, "OLD", 60, "call")  # the store's records start 100 days ago; OLD was never visited
    alerts = book.alerts("KAM803")
    assert set(alerts) == {"OLD"}
    assert "for 100 days" in alerts["OLD"].message and "first activity record" in alerts["OLD"].message


# -- KAM704 buying_centre_coverage ------------------------------------------------------------
def contacts(book, account, roles, inactive=()):
    for r in roles:
        book.add("contacts", account_id=account, name=f"{account}-{r}", role=r, active=True)
    for r in inactive:
        book.add("contacts", account_id=account, name=f"{account}-{r}-old", role=r, active=False)


@pytest.mark.parametrize(
    "roles, fires, missing",
    [
        (["decision_maker", "technical", "procurement"], False, None),
        (["decision_maker", "executive", "other", "technical"], True, "procurement, user"),
        (["executive"], True, "decision maker, technical, procurement, user"),
    ],
)
def test_buying_centre_threshold(book, roles, fires, missing):
    book.account("K", tier="key", status="prospect", stage="negotiation", stage_since=book.ago(10))
    contacts(book, "K", roles, inactive=["procurement", "user"])  # former contacts do not count
    alerts = book.alerts("KAM704")
    assert ("K" in alerts) is fires
    if fires:
        assert f"(missing: {missing};" in alerts["K"].message


def test_buying_centre_scope(book):
    for acc, cols in {
        "EARLY": {"tier": "key", "status": "prospect", "stage": "presentation"},
        "MID": {"tier": "mid", "status": "prospect", "stage": "proposal"},
        "LOST": {"tier": "key", "status": "lost", "stage": "proposal"},
        "ACT": {"tier": "key", "status": "active", "stage": "proposal"},
    }.items():
        book.account(acc, stage_since=book.ago(5), **cols)
        contacts(book, acc, ["decision_maker"])
    assert set(book.alerts("KAM704")) == {"ACT"}
    assert "1 buying role of 4" in book.alerts("KAM704")["ACT"].message


def test_buying_centre_is_skipped_without_contacts(book):
    book.account("K", tier="key", status="prospect", stage="proposal", stage_since=book.ago(5))
    result = book.check(select=("KAM704",))
    assert result.alerts == [] and "KAM704" in {c for c, _ in result.summary.skipped}


# -- KAM604 mixed_book ---------------------------------------------------------------------------
def owned(book, owner, key=0, mid=0, small=0, status="active", tag=""):
    for tier, n in (("key", key), ("mid", mid), ("small", small)):
        for i in range(n):
            book.account(
                f"{owner}-{tier}-{status}{tag}{i}", tier=tier, owner=owner, owner_email=f"{owner}@x.cn", status=status
            )


@pytest.mark.parametrize(
    "key, mid, small, fires",
    [
        (1, 20, 10, False),  # 10 small, 32%: within both limits
        (1, 20, 11, True),  # more than 10 small
        (1, 0, 3, False),  # 75% small: not above the share
        (1, 0, 4, True),  # 80% small
        (0, 0, 30, False),  # no key account: a small-client book
    ],
)
def test_mixed_book_thresholds(book, key, mid, small, fires):
    owned(book, "王磊", key, mid, small)
    owned(book, "王磊", key=3, small=20, status="prospect")  # prospects and lost are not the book
    owned(book, "王磊", key=3, small=20, status="lost")
    owned(book, "李娜", key=8)  # a KA manager of key accounts only
    alerts = book.check(select=("KAM604",)).alerts
    assert [(a.owner, a.account_id) for a in alerts] == ([("王磊", None)] if fires else [])
    if fires:
        a = alerts[0]
        assert a.owner_email == "王磊@x.cn"
        assert f"mixes {key} key account with {small} small accounts" in a.message


def test_mixed_book_threshold_is_tunable(book, tmp_path):
    owned(book, "王磊", key=2, mid=20, small=10)
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (Path(__file__).parent.parent / "rulesets/concentration_risk/rules.yaml").read_text(encoding="utf-8")
    (rules / "concentration_risk.yaml").write_text(text.replace("min_key: 1", "min_key: 3"), encoding="utf-8")
    assert book.alerts("KAM604") == {}
    owned(book, "王磊", small=1, tag="x")
    assert set(book.alerts("KAM604")) == {None}
    assert book.alerts("KAM604", rulesets_dirs=[rules]) == {}


# -- KAM418 lost_reason_pattern ----------------------------------------------------------------
def lost(book, owner, n, reason, days=100, prefix="L"):
    for i in range(n):
        book.account(
            f"{prefix}{owner}{reason}{i}",
            owner=owner,
            owner_email="o@x.cn",
            status="lost",
            stage="proposal",
            stage_since=book.ago(days),
            lost_reason=reason,
        )


@pytest.mark.parametrize(
    "reasons, fires",
    [
        ({"价格": 3, "竞争对手": 1, "预算": 1}, True),  # 3 of 5 = 60%: at the share
        ({"价格": 2, "竞争对手": 2, "预算": 1}, False),  # 40%
        ({"价格": 3, "竞争对手": 3}, False),  # 50%: under the share
        ({"价格": 4}, False),  # 4 lost: under min_lost
    ],
)
def test_lost_reason_share(book, reasons, fires):
    for reason, n in reasons.items():
        lost(book, "王磊", n, reason)
    alerts = book.check(select=("KAM418",)).alerts
    assert bool(alerts) is fires
    if fires:
        assert alerts[0].owner == "王磊" and alerts[0].account_id is None
        assert "lost 5 accounts in the 12 months to 2026-10-31: 3 for '价格' (60%)" in alerts[0].message


def test_lost_reason_spread_is_quiet_and_old_losses_do_not_count(book):
    for i, r in enumerate(["价格", "价格", "竞争对手", "竞争对手", "预算", "决策人"]):
        lost(book, "王磊", 1, r, prefix=f"X{i}")  # 2 of 6 = 33%
    lost(book, "李娜", 4, "价格")
    lost(book, "李娜", 3, "价格", days=400, prefix="OLD")  # before the 12 months
    lost(book, "张伟", 5, None, days=30)
    book.account("Q", owner="张伟", status="lost", lost_reason="价格")  # no dated record: not counted
    alerts = {a.owner: a for a in book.check(select=("KAM418",)).alerts}
    assert set(alerts) == {"张伟"}
    assert "5 with no reason (100%)" in alerts["张伟"].message
    assert alerts["张伟"].action.startswith("Record why")


@pytest.mark.parametrize("no_reason, fires", [(3, True), (2, False)])
def test_lost_without_reason_share(book, no_reason, fires):
    lost(book, "王磊", no_reason, None)
    for i in range(5 - no_reason):
        lost(book, "王磊", 1, f"原因{i}")
    assert bool(book.check(select=("KAM418",)).alerts) is fires  # 3 of 5 = 60% > 50%; 2 of 5 = 40%


def test_lost_date_is_the_last_dated_record(book):
    # stage_since two years back, but activity and stage history show the account worked 200 days ago
    for i in range(5):
        acc = f"H{i}"
        book.account(acc, status="lost", stage="proposal", stage_since=book.ago(700), lost_reason="价格")
        book.add("stage_history", account_id=acc, stage="proposal", entered_on=book.ago(650))
        act(book, acc, 200 if i else 500)
    assert book.check(select=("KAM418",)).alerts == []  # H0 was last seen 500 days ago: 4 in the window
    earlier = book.check(select=("KAM418",), as_of=book.ago(150)).alerts  # then H0 was within 12 months
    assert len(earlier) == 1 and "lost 5 accounts in the 12 months" in earlier[0].message


# -- the hand-written reference SQL agrees on a generated book ---------------------------------
def test_reference_sql_flags_the_same_accounts(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import reference_sql

    db = tmp_path / "b.db"
    with Store.open(db) as store:
        generate_to_store(store, 200, seed=1, as_of="2026-10-31")
        alerts = run_check(store, as_of="2026-10-31").alerts
    ref = reference_sql.run(str(db), "2026-10-31")["rules"]
    for rule in ("key_visit_cadence", "buying_centre_coverage", "mixed_book", "lost_reason_pattern"):
        mine = [a for a in alerts if a.rule == rule]
        assert mine, rule
        if ref[rule]["scope"] == "portfolio":
            assert ref[rule]["rows"] == len(mine), rule
        else:
            assert ref[rule]["accounts"] == sorted(a.account_id for a in mine), rule
