"""The built-in rule sets on a generated book: engine = Python evaluation, batching invariance, alert shape."""

from __future__ import annotations

import pytest

from kamrules.check import load_rulesets, run_check
from kamrules.check_parts import compile_engine
from kamrules.facts import FactSource, collect_providers
from kamrules.plugins import make_plugin_manager
from kamrules.ruleset import evaluate
from kamrules.store import Store

AS_OF = "2026-10-31"


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from kamrules.generate import generate_to_store

    pm = make_plugin_manager(load_entry_points=False)
    store = Store.open(tmp_path_factory.mktemp("real") / "book.db", pm=pm)
    store.init()
    generate_to_store(store, 300, seed=3, as_of=AS_OF)
    yield store, pm
    store.close()


def test_engine_agrees_with_python_on_every_account_and_rule(book):
    store, pm = book
    failures: list = []
    providers = collect_providers(pm, failures)
    rules = [r for rs in load_rulesets(store, pm, (), failures, providers) for r in rs.rules if r.scope == "account"]
    plan, engine, _ = compile_engine(rules)
    with FactSource(store, AS_OF, providers, failures) as source:
        facts = list(source.accounts())
    assert not failures
    fired = engine.match(facts)
    disagreements = []
    for f, keys in zip(facts, fired, strict=True):
        best = {code: v.severity for code, (_, v) in plan.strongest(keys).items()}
        for rule in rules:
            want = evaluate(rule, f).severity
            if best.get(rule.code) != want:
                disagreements.append((f["account_id"], rule.code, best.get(rule.code), want))
    assert disagreements == []
    assert sum(len(k) for k in fired) > 50  # the generated book has defects to find


def test_real_rules_batching_invariance_and_alert_shape(book):
    store, pm = book
    runs = [run_check(store, AS_OF, pm=pm, batch_size=n) for n in (1, 7, 1000)]
    dicts = [[a.to_dict() for a in r.alerts] for r in runs]
    assert dicts[0] == dicts[1] == dicts[2]
    r = runs[0]
    assert r.summary.complete and r.summary.accounts_checked == 300
    assert {"over_subsidising", "neglected_small_clients", "missing_escalation_channels", "stalled_stages"} <= set(
        r.summary.by_ruleset
    )
    for a in r.alerts:
        assert a.message and a.action and a.as_of == AS_OF and "n/a" not in a.message, a
        if a.account_id is not None:
            assert a.account_name
    fps = [a.fingerprint for a in r.alerts]
    assert len(fps) == len(set(fps))


def test_copied_builtin_file_replaces_it(book, tmp_path):
    import importlib.resources

    store, pm = book
    text = (importlib.resources.files("kamrules_rulesets.missing_escalation_channels") / "rules.yaml").read_text(
        encoding="utf-8"
    )
    assert "severity: critical" in text
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "escalation.yaml").write_text(text.replace("severity: critical", "severity: info", 1), encoding="utf-8")
    before = {a.code: a.severity for a in run_check(store, AS_OF, pm=pm, select=("KAM301",)).alerts}
    after = {
        a.code: a.severity for a in run_check(store, AS_OF, pm=pm, select=("KAM301",), rulesets_dirs=[mine]).alerts
    }
    assert before == {"KAM301": "critical"} and after == {"KAM301": "info"}
