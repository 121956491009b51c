"""Most urgent first (issue 13): kamrules.alerts.urgent_order and the formats people read (table, Markdown,
digests) use it; machine formats (json, jsonl, csv) keep the stable Alert.sort_key order."""

from __future__ import annotations

import json

from kamrules.alerts import Alert, urgent_order
from kamrules.check import run_check
from kamrules.formats import output_formats

AS_OF = "2026-10-31"


def alert(code, severity, account, name, owner="王磊", revenue=None, rule="r"):
    return Alert(
        ruleset="rs",
        code=code,
        rule=rule,
        severity=severity,
        message=f"{code} on {name}",
        action="act",
        as_of=AS_OF,
        account_id=account,
        account_name=name,
        owner=owner,
        revenue_12m=revenue,
    )


def test_accounts_by_most_severe_then_revenue_then_name():
    alerts = [
        alert("KAM201", "warning", "A1", "Alpha", revenue=100.0),
        alert("KAM202", "info", "A1", "Alpha", revenue=100.0),
        alert("KAM101", "warning", "A2", "Beta", revenue=900.0),  # same top severity, more revenue: before Alpha
        alert("KAM301", "critical", "A3", "Zeta", revenue=1.0),  # the one critical: first, whatever its revenue
        alert("KAM102", "info", "A4", "Gamma"),  # no revenue known: counts as 0
        alert("KAM103", "info", "A5", "Delta", revenue=0.0),
        alert("KAM204", "critical", "A3", "Zeta", revenue=1.0),
    ]
    got = [(a.account_id, a.code) for a in urgent_order(alerts)]
    assert got == [
        ("A3", "KAM204"),
        ("A3", "KAM301"),
        ("A2", "KAM101"),
        ("A1", "KAM201"),
        ("A1", "KAM202"),
        ("A5", "KAM103"),
        ("A4", "KAM102"),
    ]  # Delta before Gamma: same severity and revenue, by name


def test_per_owner_and_revenue_lookup_wins():
    alerts = [
        alert("KAM101", "warning", "B1", "Bee", owner="b"),
        alert("KAM101", "warning", "A1", "Ant", owner="a"),
        alert("KAM101", "warning", "A2", "Ape", owner="a"),
        alert("KAM205", "warning", None, None, owner=None),
    ]
    got = [a.account_id for a in urgent_order(alerts, revenue={"A2": 5.0, "A1": 1.0})]
    assert got == [None, "A2", "A1", "B1"]  # no owner first (as before), then owners by name


def test_items_through_alert_of_and_rank_of():
    items = [
        ("resolved", alert("KAM301", "critical", "A1", "Alpha")),
        ("firing", alert("KAM201", "warning", "A2", "Beta")),
    ]
    got = urgent_order(items, alert_of=lambda i: i[1], rank_of=lambda i: -1 if i[0] == "resolved" else i[1].rank)
    assert [i[1].account_id for i in got] == ["A2", "A1"]  # a resolved critical does not make its account urgent


def test_revenue_is_carried_but_not_serialised(book_store, pm):
    r = run_check(book_store, AS_OF, pm=pm, jobs=1)
    acc = [a for a in r.alerts if a.account_id]
    assert any(a.revenue_12m for a in acc)
    assert all("revenue_12m" not in a.to_dict() for a in r.alerts)
    # the machine order stays Alert.sort_key
    assert [a.sort_key() for a in r.alerts] == sorted(a.sort_key() for a in r.alerts)


def test_table_and_markdown_most_urgent_first_machine_formats_stable(book_store, pm):
    r = run_check(book_store, AS_OF, pm=pm, jobs=1)
    formats = output_formats(pm, [])
    ordered = urgent_order(r.alerts)
    # per owner, the first account shown holds the owner's most severe alert
    first_of_owner = {}
    for a in ordered:
        first_of_owner.setdefault(a.owner, a)
    for owner, a in first_of_owner.items():
        assert a.rank == max(b.rank for b in r.alerts if b.owner == owner)
    table = "".join(formats["table"].render(r.alerts, r.summary))
    md = "".join(formats["markdown"].render(r.alerts, r.summary))
    positions = [table.index(f"({a.account_id})") for a in ordered if a.account_id]
    firsts = {}
    for a, p in zip([a for a in ordered if a.account_id], positions, strict=False):
        firsts.setdefault(a.account_id, p)
    assert list(firsts.values()) == sorted(firsts.values())
    md_pos = {}
    for a in ordered:
        if a.account_id:
            md_pos.setdefault(a.account_id, md.index(f"({a.account_id})"))
    assert list(md_pos.values()) == sorted(md_pos.values())
    lines = "".join(formats["jsonl"].render(r.alerts, r.summary)).splitlines()
    assert [json.loads(x)["fingerprint"] for x in lines] == [
        a.fingerprint for a in sorted(r.alerts, key=lambda a: (a.sort_key(), a.scope_key))
    ]


def test_digest_groups_most_urgent_first(book_store, pm):
    from kamrules.lifecycle.digest import context
    from kamrules.lifecycle.notifiers import DueItem

    r = run_check(book_store, AS_OF, pm=pm, jobs=1)
    owner = max({a.owner for a in r.alerts if a.owner}, key=lambda o: sum(a.owner == o for a in r.alerts))
    mine = [a for a in r.alerts if a.owner == owner]
    ctx = context("ka@example.com", [DueItem(a, "new", 1, AS_OF) for a in mine], AS_OF, "k")
    ranks = {"critical": 2, "warning": 1, "info": 0}
    tops = [max(ranks[i["severity"]] for i in g["items"]) for g in ctx["groups"]]
    assert tops == sorted(tops, reverse=True)
    for g in ctx["groups"]:
        sev = [ranks[i["severity"]] for i in g["items"]]
        assert sev == sorted(sev, reverse=True)
