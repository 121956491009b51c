"""run_check on a real SQLite store with test plugins: selection, skipping, isolation, determinism."""

from __future__ import annotations

import textwrap

import pytest

from kamrules.check import run_check, selected
from kamrules.errors import InputError, PluginError
from kamrules.plugins import make_plugin_manager
from kamrules.store import Store

AS_OF = "2026-10-31"

PLUGIN = '''
"""Test plugin: sales facts and the examples rule set."""
import pathlib
from kamrules import hookimpl
from kamrules.facts import FactProvider

@hookimpl
def register_facts():
    return [
        FactProvider(
            name="sales", requires=("orders",), facts=("revenue", "n_orders"),
            sql="SELECT account_id, TOTAL(amount) AS revenue, COUNT(*) AS n_orders FROM orders "
                "WHERE date <= :as_of GROUP BY account_id",
            derive=lambda f: {"revenue_k": f["revenue"] / 1000} if "revenue" in f else {},
            derived=("revenue_k",)),
        FactProvider(
            name="tst_complaints", requires=("complaints",), facts=("tst_open_complaints",),
            sql="SELECT account_id, COUNT(*) AS tst_open_complaints FROM complaints "
                "WHERE opened_on <= :as_of AND (closed_on IS NULL OR closed_on > :as_of) GROUP BY account_id"),
        FactProvider(
            name="book", scope="portfolio", requires=("orders",), facts=("book_revenue",),
            sql="SELECT TOTAL(amount) AS book_revenue FROM orders WHERE date <= :as_of"),
    ]

@hookimpl
def register_rulesets():
    return [pathlib.Path(__file__).with_name("examples.yaml")]
'''

RULES = """\
ruleset: examples
description: Test rules.
rules:
  - code: TST101
    name: big_revenue
    severity: info
    when: ["status == active", "revenue > $limit"]
    thresholds:
      limit: {info: 100, warning: 1000, critical: 10000}
    tiers:
      key: {limit: {info: 1000, warning: 10000, critical: 100000}}
    message: "revenue {revenue:,.0f} ({revenue_k:.1f}k) above {limit:,} as of {as_of}"
    action: "Thank them."
  - code: TST102
    name: no_owner
    severity: critical
    when: ["owner is missing"]
    message: "{name} has no owner"
    action: "Name an owner."
  - code: TST201
    name: open_complaint
    when: ["tst_open_complaints > 0"]
    message: "{tst_open_complaints} open complaints"
    action: "Close them."
  - code: TST301
    name: book_size
    scope: portfolio
    severity: info
    when: ["book_revenue > 0"]
    message: "book {book_revenue:,.0f}"
    action: "None."
"""

ACCOUNTS = [
    {
        "id": "A1",
        "name": "华东机电有限公司",
        "tier": "key",
        "owner": "王磊",
        "owner_email": "wanglei@example.com",
        "status": "active",
    },
    {
        "id": "A2",
        "name": "Acme",
        "tier": "mid",
        "owner": "王磊",
        "owner_email": "wanglei@example.com",
        "status": "active",
    },
    {"id": "A3", "name": "北京小店", "tier": "small", "status": "active"},
    {
        "id": "A4",
        "name": "Lost Co",
        "tier": "small",
        "owner": "李娜",
        "owner_email": "lina@example.com",
        "status": "lost",
    },
]
ORDERS = [
    {"id": "O1", "account_id": "A1", "date": "2026-10-01", "amount": 50_000.0},
    {"id": "O2", "account_id": "A2", "date": "2026-09-01", "amount": 5_000.0},
    {"id": "O3", "account_id": "A3", "date": "2026-09-01", "amount": 150.0},
    {"id": "O4", "account_id": "A4", "date": "2026-09-01", "amount": 99_999.0},
    {"id": "O5", "account_id": "A2", "date": "2026-11-05", "amount": 1_000_000.0},  # after as-of: ignored
]


def make_plugin(folder, plugin=PLUGIN, rules=RULES):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "examples_plugin.py").write_text(textwrap.dedent(plugin), encoding="utf-8")
    (folder / "examples.yaml").write_text(rules, encoding="utf-8")
    return folder


def make_store(path, pm, orders=ORDERS, complaints=()):
    store = Store.open(path, pm=pm)
    store.init()
    store.db["accounts"].insert_all(ACCOUNTS)
    if orders:
        store.db["orders"].insert_all(orders)
    if complaints:
        store.db["complaints"].insert_all(complaints)
    return store


@pytest.fixture
def pm(tmp_path):
    return make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "plugins")], load_entry_points=False)


@pytest.fixture
def store(tmp_path, pm):
    s = make_store(tmp_path / "book.db", pm)
    yield s
    s.close()


def check(store, pm, **kw):
    kw.setdefault("rulesets", ("examples",))
    return run_check(store, AS_OF, pm=pm, **kw)


def codes(result):
    return [(a.account_id, a.code, a.severity) for a in result.alerts]


def test_alerts_fields_severities_and_tiers(store, pm):
    r = check(store, pm)
    assert sorted(codes(r), key=str) == sorted(
        [
            ("A1", "TST101", "warning"),  # key tier: 50,000 >= 10,000
            ("A2", "TST101", "warning"),  # mid: 5,000 > 1,000 (the November order is after as-of)
            ("A3", "TST101", "info"),
            ("A3", "TST102", "critical"),
            (None, "TST301", "info"),
        ],
        key=str,
    )
    a1 = next(a for a in r.alerts if a.account_id == "A1")
    assert a1.account_name == "华东机电有限公司" and a1.owner == "王磊" and a1.owner_email == "wanglei@example.com"
    assert a1.message == "revenue 50,000 (50.0k) above 10,000 as of 2026-10-31"
    assert dict(a1.evidence) == {"status": "active", "revenue": 50000.0, "revenue_k": 50.0, "limit": 10000}
    assert a1.ruleset == "examples" and a1.rule == "big_revenue" and a1.as_of == AS_OF and a1.action == "Thank them."
    s = r.summary
    assert s.accounts_checked == 4 and s.alerts == 5 and s.complete
    assert s.skipped == (("TST201", "no rows in table complaints"),)
    assert dict(s.by_severity) == {"info": 2, "warning": 2, "critical": 1}


def test_min_severity_and_select_ignore(store, pm):
    assert {a.code for a in check(store, pm, min_severity="warning").alerts} == {"TST101", "TST102"}
    assert {a.code for a in check(store, pm, select=("TST1",)).alerts} == {"TST101", "TST102"}
    assert {a.code for a in check(store, pm, select=("TST1",), ignore=("TST102",)).alerts} == {"TST101"}
    assert {a.code for a in check(store, pm, select=("TST102",), ignore=("TST1",)).alerts} == {"TST102"}
    assert {a.code for a in check(store, pm, ignore=("TST",)).alerts} == set()


@pytest.mark.parametrize(
    "code, select, ignore, want",
    [
        ("KAM101", (), (), True),
        ("KAM101", ("KAM1",), (), True),
        ("KAM201", ("KAM1",), (), False),
        ("KAM101", ("KAM",), ("KAM1",), False),
        ("KAM101", ("KAM10",), ("KAM1",), True),
        ("KAM101", ("KAM1",), ("KAM1",), False),
    ],
)
def test_longest_prefix_wins(code, select, ignore, want):
    assert selected(code, select, ignore) is want


def test_deterministic_and_batch_invariant(store, pm):
    runs = [check(store, pm, batch_size=n) for n in (1, 3, 1000)]
    dicts = [[a.to_dict() for a in r.alerts] for r in runs]
    assert dicts[0] == dicts[1] == dicts[2]
    assert [a.sort_key() for a in runs[0].alerts] == sorted(a.sort_key() for a in runs[0].alerts)


def test_rule_runs_when_its_table_has_rows(tmp_path, pm):
    s = make_store(tmp_path / "c.db", pm, complaints=[{"id": "C1", "account_id": "A2", "opened_on": "2026-10-01"}])
    r = check(s, pm)
    assert ("A2", "TST201", "warning") in codes(r) and r.summary.skipped == ()


def test_failing_provider_is_isolated(tmp_path):
    bad = PLUGIN.replace("TOTAL(amount) AS revenue", "TOTAL(no_such_column) AS revenue")
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", bad)], load_entry_points=False)
    s = make_store(tmp_path / "b.db", pm, complaints=[{"id": "C1", "account_id": "A2", "opened_on": "2026-10-01"}])
    r = check(s, pm)
    assert not r.summary.complete
    assert r.summary.failures[0][0] == "fact provider sales" and "no_such_column" in r.summary.failures[0][1]
    assert {a.code for a in r.alerts} == {"TST102", "TST201", "TST301"}  # the others still fire
    assert ("TST101", "fact provider sales failed") in r.summary.skipped


def test_failing_derive_and_message_are_isolated(tmp_path):
    bad = PLUGIN.replace('f["revenue"] / 1000', 'f["revenue"] / (f["revenue"] - 150)')  # A3 divides by zero
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", bad)], load_entry_points=False)
    s = make_store(tmp_path / "b.db", pm)
    r = check(s, pm)
    assert not r.summary.complete
    where, msg = r.summary.failures[0]
    assert where == "fact provider sales (derive)" and "ZeroDivisionError" in msg and "A3" in msg
    a3 = next(a for a in r.alerts if a.account_id == "A3" and a.code == "TST101")
    assert "(n/ak)" in a3.message  # the missing derived fact prints as n/a
    assert ("A3", "TST102", "critical") in codes(r)


def test_hook_that_raises_is_isolated(tmp_path):
    bad = PLUGIN + "\n@hookimpl\ndef register_output_formats():\n    return []\n"
    bad = bad.replace(
        "def register_rulesets():\n    return", "def register_rulesets():\n    raise RuntimeError('boom')\n    return"
    )
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", bad)], load_entry_points=False)
    s = make_store(tmp_path / "b.db", pm)
    r = run_check(s, AS_OF, pm=pm, rulesets_dirs=[tmp_path / "p" / "examples.yaml"], rulesets=("examples",))
    assert not r.summary.complete and "register_rulesets" in r.summary.failures[0][0]
    assert r.alerts  # the rule set given by path still runs


def test_duplicate_fact_names_are_a_plugin_error(tmp_path):
    dup = PLUGIN.replace('facts=("tst_open_complaints",)', 'facts=("revenue",)').replace(
        "COUNT(*) AS tst_open_complaints", "COUNT(*) AS revenue"
    )
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", dup)], load_entry_points=False)
    s = make_store(tmp_path / "b.db", pm)
    with pytest.raises(PluginError, match="fact 'revenue' is produced by two providers: sales and tst_complaints"):
        check(s, pm)


def test_unknown_fact_in_rules_is_input_error(tmp_path, pm, store):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "examples.yaml").write_text(RULES.replace('"owner is missing"', '"ownr is missing"'), encoding="utf-8")
    with pytest.raises(InputError) as e:
        check(store, pm, rulesets_dirs=[user])
    assert (
        str(e.value.problems[0])
        == f"{user / 'examples.yaml'}:17:13: rule TST102: unknown fact 'ownr' (expected a fact of a registered provider; did you mean 'owner'?)"
    )


def test_user_copy_replaces_builtin(tmp_path, pm, store):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "examples.yaml").write_text(
        RULES.replace("critical: 10000}", "critical: 20000}").replace("warning: 1000,", "warning: 100000,"),
        encoding="utf-8",
    )
    r = check(store, pm, rulesets_dirs=[user], select=("TST101",))
    assert ("A2", "TST101", "info") in codes(r)


def test_unknown_ruleset_name(store, pm):
    with pytest.raises(InputError, match="unknown rule set 'nope'"):
        check(store, pm, rulesets=("nope",))
