"""Checks split over worker processes (kamrules.partition): same alerts, failures isolated, no hangs."""

from __future__ import annotations

from itertools import pairwise

import pytest
from test_check import PLUGIN, make_plugin, make_store

from kamrules.check import run_check
from kamrules.partition import Part, connect, plan_parts, restrict
from kamrules.plugins import make_plugin_manager

AS_OF = "2026-10-31"


def dicts(result):
    return [a.to_dict() for a in result.alerts]


def test_parts_cover_every_account_once(book_store):
    parts = plan_parts(book_store.conn, jobs=2, part_size=30)
    assert len(parts) >= 4 and len(parts) % 2 == 0
    assert parts[0].lo is None and parts[-1].hi is None
    assert all(a.hi == b.lo for a, b in pairwise(parts))
    seen = []
    for part in parts:
        conn = connect(book_store.path)
        restrict(conn, part)
        seen += [r[0] for r in conn.execute("SELECT id FROM accounts ORDER BY id")]
        # every table with account_id is cut the same way, and rowid still works through the view
        orders = conn.execute("SELECT count(*), count(rowid) FROM orders").fetchone()
        outside = conn.execute(
            "SELECT count(*) FROM orders WHERE account_id NOT IN (SELECT id FROM accounts)"
        ).fetchone()[0]
        assert orders[0] == orders[1] and outside == 0
        conn.close()
    assert seen == [r[0] for r in book_store.conn.execute("SELECT id FROM accounts ORDER BY id")]


def test_small_book_is_one_part(book_store):
    assert plan_parts(book_store.conn, jobs=2) == [Part(0, None, None)]  # 200 accounts: not worth a fork
    assert plan_parts(book_store.conn, jobs=1, part_size=500) == [Part(0, None, None)]


def test_one_job_checks_the_parts_one_after_the_other(book_store):
    parts = plan_parts(book_store.conn, jobs=1, part_size=50)
    assert len(parts) == 4  # bounded temp tables on a big book, even without workers
    whole = run_check(book_store, AS_OF, jobs=1)
    done = []
    parted = run_check(book_store, AS_OF, jobs=1, part_size=50, progress=done.append)
    assert dicts(parted) == dicts(whole) and done[-1] == 200


def test_temp_objects_of_the_callers_connection_are_kept(book_store):
    book_store.conn.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
    run_check(book_store, AS_OF, jobs=1)
    assert book_store.conn.execute("SELECT x FROM temp.mine").fetchone() == (1,)


def test_workers_give_the_same_alerts_as_one_process(book_store):
    one = run_check(book_store, AS_OF, jobs=1)
    done = []
    many = run_check(book_store, AS_OF, jobs=2, part_size=30, progress=done.append)
    assert one.alerts and dicts(many) == dicts(one)
    # every rule fires somewhere in the book (the whole-book facts of KAM703 and KAM8xx included)
    assert {"KAM701", "KAM702", "KAM703", "KAM801", "KAM802"} <= {a.code for a in one.alerts}
    assert many.summary.accounts_checked == one.summary.accounts_checked == 200
    assert many.summary.complete and many.summary.codes == one.summary.codes
    assert done[-1] == 200 and done == sorted(done)
    # the portfolio rule (KAM205) runs once, over the whole book, not once per part
    assert sum(a.code == "KAM205" for a in many.alerts) == sum(a.code == "KAM205" for a in one.alerts)


def test_parent_connection_is_not_restricted(book_store):
    run_check(book_store, AS_OF, jobs=2, part_size=30)
    assert book_store.conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 200
    assert book_store.conn.execute("SELECT count(*) FROM sqlite_temp_master").fetchone()[0] == 0
    run_check(book_store, AS_OF, jobs=1)  # one part, on this connection: its temp tables are dropped too
    assert book_store.conn.execute("SELECT count(*) FROM sqlite_temp_master").fetchone()[0] == 0


def _many_accounts(tmp_path, pm, name, n=40):
    s = make_store(tmp_path / name, pm)
    s.db["accounts"].insert_all(
        {"id": f"B{i:03d}", "name": f"客户{i}", "tier": "small", "status": "active"} for i in range(n)
    )
    s.db["orders"].insert_all(
        {"id": f"P{i:03d}", "account_id": f"B{i:03d}", "date": "2026-10-01", "amount": 500.0 + i} for i in range(n)
    )
    return s


def test_provider_failing_in_one_part_is_skipped_everywhere(tmp_path):
    # the sales provider fails only on accounts B020 and later (one part), through a SQL function error
    bad = PLUGIN.replace(
        "TOTAL(amount) AS revenue",
        "TOTAL(CASE WHEN account_id >= 'B020' THEN abs('x' || zeroblob(2000000000)) ELSE amount END) AS revenue",
    )
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", bad)], load_entry_points=False)
    s = _many_accounts(tmp_path, pm, "f.db")
    r = run_check(s, AS_OF, pm=pm, jobs=2, part_size=10)
    assert not r.summary.complete
    assert [w for w, _ in r.summary.failures].count("fact provider sales") == 1
    assert ("TST101", "fact provider sales failed") in r.summary.skipped
    assert not any(a.code == "TST101" for a in r.alerts) and "TST101" not in r.summary.codes
    assert any(a.code == "TST102" for a in r.alerts)  # the other rules still ran on every part


def test_worker_that_dies_is_a_failure_not_a_hang(tmp_path):
    # a derive that kills its own process (as a crash in native code would) on one account
    bad = PLUGIN.replace(
        'derive=lambda f: {"revenue_k": f["revenue"] / 1000} if "revenue" in f else {}',
        'derive=lambda f: __import__("os")._exit(9) if f.get("account_id") == "B030" else {}',
    )
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", bad)], load_entry_points=False)
    s = _many_accounts(tmp_path, pm, "d.db")
    r = run_check(s, AS_OF, pm=pm, jobs=2, part_size=10)
    assert not r.summary.complete
    assert any(w.startswith("check worker (accounts") for w, _ in r.summary.failures)
    assert r.exit_code() == 3


@pytest.mark.parametrize("jobs", [1, 2])
def test_check_cli_jobs_option(book_store, jobs):
    from click.testing import CliRunner

    from kamrules.cli import cli

    res = CliRunner().invoke(
        cli,
        ["--db", book_store.path, "check", "--as-of", AS_OF, "--format", "jsonl", "--no-history", "--jobs", str(jobs)],
    )
    assert res.exit_code == 1, res.output
    assert len(res.stdout.splitlines()) == len(run_check(book_store, AS_OF, jobs=1).alerts)


TOTALS_PLUGIN = PLUGIN.replace(
    """        FactProvider(
            name="book", scope="portfolio", requires=("orders",), facts=("book_revenue",),
            sql="SELECT TOTAL(amount) AS book_revenue FROM orders WHERE date <= :as_of"),""",
    """        FactProvider(
            name="book", scope="portfolio", over="account_facts", requires=("orders",),
            facts=("book_revenue", "paying_accounts"),
            sql="SELECT revenue AS book_revenue, revenue > 0 AS paying_accounts FROM account_facts WHERE status = 'active'",
            derive=lambda f: {"revenue_per_payer": f["book_revenue"] / f["paying_accounts"]} if f["paying_accounts"] else {},
            derived=("revenue_per_payer",)),""",
)


def test_portfolio_totals_over_account_facts(tmp_path):
    assert TOTALS_PLUGIN != PLUGIN
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", TOTALS_PLUGIN)], load_entry_points=False)
    s = _many_accounts(tmp_path, pm, "t.db")
    expected = sum(
        s.conn.execute(
            "SELECT amount FROM orders o JOIN accounts a ON a.id = o.account_id "
            "WHERE a.status = 'active' AND o.date <= ?",
            (AS_OF,),
        ).fetchall(),
        (),
    )
    one = run_check(s, AS_OF, pm=pm, jobs=1)
    many = run_check(s, AS_OF, pm=pm, jobs=2, part_size=10)
    book = [a for a in one.alerts if a.code == "TST301"]
    assert len(book) == 1 and book[0].evidence["book_revenue"] == pytest.approx(sum(expected))
    assert dicts(many) == dicts(one) and many.summary.complete
    # only portfolio rules selected: the account facts are still computed for the totals
    only = run_check(s, AS_OF, pm=pm, select=("TST3",))
    assert [a.evidence["book_revenue"] for a in only.alerts] == [book[0].evidence["book_revenue"]]


def test_account_facts_totals_must_be_numbers(tmp_path):
    bad = TOTALS_PLUGIN.replace("SELECT revenue AS book_revenue", "SELECT name AS book_revenue")
    pm = make_plugin_manager(plugins_dirs=[make_plugin(tmp_path / "p", bad)], load_entry_points=False)
    s = _many_accounts(tmp_path, pm, "n.db")
    r = run_check(s, AS_OF, pm=pm, jobs=2, part_size=10)
    assert ("fact provider book",) == tuple(w for w, _ in r.summary.failures if w == "fact provider book")
    assert ("TST301", "fact provider book failed") in r.summary.skipped or not any(a.code == "TST301" for a in r.alerts)


def test_over_account_facts_needs_portfolio_scope():
    from kamrules.facts import FactProvider

    with pytest.raises(ValueError, match="needs scope='portfolio'"):
        FactProvider(name="x", facts=("y",), sql="SELECT 1", over="account_facts")
    with pytest.raises(ValueError, match="over must be"):
        FactProvider(name="x", facts=("y",), sql="SELECT 1", scope="portfolio", over="tables")


@pytest.mark.parametrize("name", ["json", "jsonl", "csv"])
def test_check_output_is_the_format_of_the_merged_alerts(book_store, name, tmp_path):
    """The CLI renders after the merge: a check in parts writes what the format makes of the library's alerts."""
    from click.testing import CliRunner

    from kamrules.cli import cli
    from kamrules.formats import output_formats

    form = output_formats(book_store.pm)[name]
    out = tmp_path / f"alerts.{name}"
    res = CliRunner().invoke(
        cli,
        ["--db", book_store.path, "check", "--as-of", AS_OF, "--format", name, "--no-history", "-o", str(out)],
        env={"KAMRULES_CONFIG": "", "KAMRULES_LOAD_PLUGINS": ""},
    )
    assert res.exit_code == 1, res.output
    r = run_check(book_store, AS_OF, jobs=2, part_size=30)
    assert r.alerts and out.read_text(encoding="utf-8-sig") == "".join(form.render(r.alerts, r.summary))


def test_explain_on_a_big_book_computes_one_accounts_facts(book_store, monkeypatch):
    import kamrules.explain as explain
    import kamrules.partition as partition

    ids = [r[0] for r in book_store.conn.execute("SELECT id FROM accounts ORDER BY id")]
    whole = {aid: explain.explain_account(book_store, aid, AS_OF) for aid in (ids[0], ids[57], ids[-1])}
    monkeypatch.setattr(partition, "MIN_PART", 20)  # 200 accounts now count as a big book
    seen = []
    restricted = explain._one_account_store

    def spy(store, account_id):
        own = restricted(store, account_id)
        seen.append([r[0] for r in own.conn.execute("SELECT id FROM accounts")])
        return own

    monkeypatch.setattr(explain, "_one_account_store", spy)
    for aid, before in whole.items():
        got = explain.explain_account(book_store, aid, AS_OF)
        assert seen[-1] == [aid]  # the providers saw this account only
        assert got.facts == before.facts and got.failures == before.failures
        assert [v for v in got.verdicts if v.status != "portfolio"] == [
            v for v in before.verdicts if v.status != "portfolio"
        ]
        ports = {v.code: v for v in got.verdicts if v.status == "portfolio"}
        assert all(
            v.severity is None and "not evaluated for one account of a book of 200 accounts" in v.reason
            for v in ports.values()
        )
        assert "kamrules check --select KAM205" in ports["KAM205"].reason
    # the caller's connection is not restricted
    assert book_store.conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 200


def test_worker_facts_have_no_rowid(book_store):
    from kamrules.facts import FactSource, collect_providers
    from kamrules.store import Store

    failures = []
    source = FactSource(book_store, AS_OF, collect_providers(book_store.pm, failures), failures)
    conn = connect(book_store.path)
    restrict(conn, plan_parts(book_store.conn, jobs=2, part_size=30)[1])
    with source.bound_to(Store(book_store.path, conn, book_store.pm), failures) as part:
        facts = list(part.accounts())
    assert facts and all("rowid" not in f for f in facts) and not failures


def test_the_cyclic_collector_is_restored_after_a_check(book_store):
    import gc

    assert gc.isenabled()
    run_check(book_store, AS_OF, jobs=1, part_size=50)  # the parts run in this process
    assert gc.isenabled()
    gc.disable()
    try:
        run_check(book_store, AS_OF, jobs=1)
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_the_heap_is_frozen_only_while_workers_run(book_store, monkeypatch):
    import gc

    import kamrules.partition as partition

    seen = []
    orig = partition.run_parts

    def spy(*a, **k):
        out = orig(*a, **k)
        seen.append(gc.get_freeze_count())
        return out

    monkeypatch.setattr(partition, "run_parts", spy)
    gc.unfreeze()
    many = run_check(book_store, AS_OF, jobs=2, part_size=30)
    assert seen == [0] and gc.get_freeze_count() == 0  # unfrozen again after the workers
    assert dicts(many) == dicts(run_check(book_store, AS_OF, jobs=1))
