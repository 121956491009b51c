"""Healthy traps of `kamrules generate`: each is generated in its shape, and no rule it names in `quiet` fires on it."""

from __future__ import annotations

import datetime as dt

import pytest

from kamrules.check import run_check
from kamrules.generate import defect_kinds, generate_to_store, trap_accounts, trap_kinds, trap_recipes
from kamrules.store import Store

WINTER = "2027-01-31"  # the seasonal dealers have been silent since November: the case of issue 13
N, SEED, SHARE = 400, 4, 0.3  # no defects: every alert is on a healthy account
KINDS = ("long_key_tender", "newly_won_listing_fee", "records_start_late", "seasonal_dealer", "served_mid_account")


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("traps") / "book.db"
    with Store.open(path) as store:
        generate_to_store(store, N, seed=SEED, as_of=WINTER, defects=0, traps=SHARE)
    store = Store.open(path)
    carriers = trap_accounts(N, seed=SEED, as_of=WINTER, defects=0, traps=SHARE)
    fired: dict[str, set] = {}
    for a in run_check(store, as_of=WINTER).alerts:
        fired.setdefault(a.rule, set()).add(a.account_id)
    yield store, carriers, fired
    store.close()


def rows(store, sql, *params):
    return list(store.query(sql, list(params)))


def days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days


def test_every_trap_is_registered_and_carried(book):
    _, carriers, _ = book
    assert trap_kinds() == KINDS
    assert not set(KINDS) & set(defect_kinds())  # a trap is named after no rule
    rules = set(defect_kinds())  # one defect per rule of the built-in catalogue
    for trap in trap_recipes():
        assert trap.quiet and set(trap.quiet) <= rules, (trap.kind, set(trap.quiet) - rules)
        assert carriers[trap.kind], trap.kind


def test_seasonal_dealer_orders_march_to_november(book):
    store, carriers, _ = book
    for acc in carriers["seasonal_dealer"]:
        (a,) = rows(store, "SELECT tier, status, segment, name FROM accounts WHERE id = ?", acc)
        assert a["tier"] in ("mid", "small") and a["status"] == "active" and "建材" in a["name"]
        dates = [r["date"] for r in rows(store, "SELECT date FROM orders WHERE account_id = ? ORDER BY date", acc)]
        assert dates and not [d for d in dates if d[5:7] in ("12", "01", "02")], acc
        assert {d[:4] for d in dates} >= {"2025", "2026"}  # every year, not once
        assert days(dates[-1], WINTER) > 60  # silent since November
        winter = rows(
            store,
            "SELECT kind FROM activities WHERE account_id = ? AND date > '2026-11-30' AND date <= ?",
            acc,
            WINTER,
        )
        assert winter  # kept in touch through the winter


def test_newly_won_key_account_with_a_committed_listing_fee(book):
    store, carriers, _ = book
    for acc in carriers["newly_won_listing_fee"]:
        (a,) = rows(store, "SELECT tier, status FROM accounts WHERE id = ?", acc)
        assert (a["tier"], a["status"]) == ("key", "active")
        (won,) = rows(store, "SELECT entered_on FROM stage_history WHERE account_id = ? AND stage = 'won'", acc)
        assert 0 < days(won["entered_on"], WINTER) < 365
        (c,) = rows(store, "SELECT * FROM commitments WHERE account_id = ?", acc)
        assert c["signed"] and c["start"] == won["entered_on"] and days(c["start"], c["end"]) == 729  # two years
        fees = rows(store, "SELECT * FROM concessions WHERE account_id = ? AND kind = 'marketing_support'", acc)
        assert len(fees) == 1 and days(c["start"], fees[0]["date"]) <= 10
        assert {r["commitment_id"] for r in rows(store, "SELECT * FROM concessions WHERE account_id = ?", acc)} == {
            c["id"]
        }
        (o,) = rows(store, "SELECT SUM(amount) AS s FROM orders WHERE account_id = ? AND date >= ?", acc, c["start"])
        due = c["target_amount"] * days(c["start"], WINTER) / 730
        assert o["s"] > 1.1 * due  # ahead of its pro-rated target
        (k,) = rows(store, "SELECT SUM(amount) AS s FROM concessions WHERE account_id = ?", acc)
        assert k["s"] / o["s"] > 0.10  # what a naive concession ratio takes for over-subsidising


def test_long_key_tender_in_negotiation(book):
    store, carriers, _ = book
    for acc in carriers["long_key_tender"]:
        (a,) = rows(store, "SELECT tier, status, segment, name FROM accounts WHERE id = ?", acc)
        assert (a["tier"], a["status"], a["segment"]) == ("key", "prospect", "finance")
        assert a["name"].endswith("银行总行")
        (h,) = rows(
            store,
            "SELECT stage, entered_on FROM stage_history WHERE account_id = ? ORDER BY entered_on DESC LIMIT 1",
            acc,
        )
        assert h["stage"] == "negotiation" and 60 < days(h["entered_on"], WINTER) < 120  # others' limit 60, key 120


def test_served_mid_account_visits_without_follow_up(book):
    store, carriers, _ = book
    for acc in carriers["served_mid_account"]:
        (a,) = rows(store, "SELECT tier, status FROM accounts WHERE id = ?", acc)
        assert a["tier"] in ("mid", "small") and a["status"] == "active"
        visits = rows(
            store,
            "SELECT date, attitude FROM activities WHERE account_id = ? AND kind = 'visit' AND date <= ? ORDER BY date",
            acc,
            WINTER,
        )
        assert [v for v in visits if v["attitude"] is None and days(v["date"], WINTER) <= 60]  # an incomplete record
        unfollowed = [
            v
            for v in visits
            if days(v["date"], WINTER) <= 180
            and not rows(
                store,
                "SELECT 1 FROM activities WHERE account_id = ? AND date > ? AND date <= date(?, '+7 days')"
                " AND kind IN ('visit', 'call', 'meeting', 'executive_meeting')",
                acc,
                v["date"],
                v["date"],
            )
        ]
        assert unfollowed, acc


def test_records_start_late_after_created_on(book):
    store, carriers, _ = book
    (first,) = rows(store, "SELECT MIN(date) AS d FROM activities")
    for acc in carriers["records_start_late"]:
        (a,) = rows(store, "SELECT created_on FROM accounts WHERE id = ?", acc)
        starts = [
            rows(store, f"SELECT MIN({col}) AS d FROM {table} WHERE account_id = ?", acc)[0]["d"]
            for table, col in (("stage_history", "entered_on"), ("activities", "date"), ("orders", "date"))
        ]
        assert all(days(a["created_on"], s) > 365 for s in starts), (acc, a["created_on"], starts)
        assert days(a["created_on"], first["d"]) > 365  # years before the activity table's first record


@pytest.mark.parametrize("rule", ["stage_dwell", "no_follow_up", "incomplete_visit_record"])
def test_traps_quiet_for_rules_fixed_on_main(book, rule):
    """KAM411 (stage_dwell, key limits twice the others'), KAM401 and KAM402 (prospects and key accounts only)."""
    _, carriers, fired = book
    traps = {acc for accs in carriers.values() for acc in accs}
    assert not fired.get(rule, set()) & traps, sorted(fired[rule] & traps)


@pytest.mark.parametrize(
    "trap, rule",
    [(t.kind, rule) for t in trap_recipes() for rule in t.quiet],
)
def test_trap_does_not_trigger(book, trap, rule):
    _, carriers, fired = book
    hit = fired.get(rule, set()) & set(carriers[trap])
    assert not hit, f"{rule} fires on {len(hit)} of {len(carriers[trap])} {trap} accounts: {sorted(hit)[:5]}"
