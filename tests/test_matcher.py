"""The two matchers agree: every built-in rule on random facts, a whole check of a generated book; the choice
of matcher (setting, environment, fallback where durable_rules can't be imported) and how it is shown."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamrules import engine
from kamrules.engine import MatchRule, compile_matcher, import_error

needs_durable = pytest.mark.skipif(
    import_error() is not None, reason=f"durable_rules can't be imported: {import_error()}"
)
AS_OF = "2026-10-31"


def _builtin_rules():
    from kamrules.check import builtin_ruleset_files
    from kamrules.plugins import make_plugin_manager
    from kamrules.ruleset import resolve

    failures: list = []
    sets = resolve(builtin_ruleset_files(make_plugin_manager(), failures))
    assert not failures and sets
    return [r for rs in sets for r in rs.rules]


RULES = _builtin_rules()


def _operands(rule) -> dict[str, list]:
    """Per fact of ``rule``: the values its conditions compare with (literals, every variant's thresholds)."""
    out: dict[str, list] = {f: [] for f in rule.facts}
    for c in rule.when:
        if c.ref_kind == "threshold":
            out[c.fact] += [v.thresholds[c.ref] for v in rule.variants()]
        elif c.ref_kind is None and c.value is not None:
            out[c.fact] += list(c.value) if isinstance(c.value, tuple) else [c.value]
    return out


def _near(values: list) -> list:
    """The values and, for numbers, numbers just around them and the other forms a number takes."""
    out = list(values)
    nums = [v for v in values if isinstance(v, (int, float))]
    for v in nums:
        out += [v - 1, v + 1, v * 0.999, v * 1.001, -v, float(v), int(v)]
    if nums or not values:
        out += [0, 1, -1, 0.5, 1e-06, 2.5e20, True, False, float("nan"), float("inf")]
    if not nums:
        out += ["", "key", "华东", "active", "A1e-5"]
    return out


def _facts_for(rule):
    """Strategy: lists of fact dicts for ``rule``: each fact missing, None, or a value of the kind its
    conditions compare it with (numbers with numbers, text with text: between the two, durable_rules has
    its own rules, e.g. "5" == 5 and "key" > 0.2, where kamrules' Python evaluation says false)."""
    ops = _operands(rule)
    for c in rule.when:  # `a < @b`: b is of a's kind
        if c.ref_kind == "fact":
            ops[c.fact] += ops[c.ref]
            ops[c.ref] += ops[c.fact]
    fields = {}
    for f in rule.facts:
        numeric = not ops[f] or any(isinstance(v, (int, float)) for v in ops[f])
        kind = (
            st.one_of(st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32))
            if numeric
            else st.text(max_size=6)
        )
        fields[f] = st.one_of(st.none(), st.sampled_from(_near(ops[f])), kind)
    fields["tier"] = st.sampled_from(["key", "mid", "small", "other", ""])
    one = st.fixed_dictionaries({}, optional=fields)
    return st.lists(one, min_size=1, max_size=20)


def _keys(rule):
    return [MatchRule(f"{rule.code}|{v.tier or '*'}|{v.severity}", rule, v) for v in rule.variants()]


@needs_durable
@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_both_matchers_agree_on_every_builtin_rule(rule):
    durable = compile_matcher(_keys(rule), "durable")
    python = compile_matcher(_keys(rule), "python")
    assert (durable.name, python.name) == ("durable", "python")

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(facts=_facts_for(rule))
    def agree(facts):
        assert durable.match(facts) == python.match(facts), facts

    agree()


def test_python_matcher_on_a_missing_fact_nan_and_tiers():
    rule = next(r for r in RULES if r.tiers and any(c.ref_kind == "threshold" for c in r.when))
    python = compile_matcher(_keys(rule), "python")
    missing = {"tier": "key"}  # none of the rule's facts: nothing fires (unless the rule asks `is missing`)
    nan = {f: math.nan for f in rule.facts} | {"tier": "key"}
    got = python.match([missing, nan])
    if not any(c.op == "is missing" for c in rule.when):
        assert got == [set(), set()]
    for keys in python.match([{"tier": t} | {f: 10**9 for f in rule.facts} for t in ("key", "mid", None)]):
        assert all(k.split("|")[1] in {"*", "key", "mid"} for k in keys)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from kamrules.generate import generate_to_store
    from kamrules.plugins import make_plugin_manager
    from kamrules.store import Store

    pm = make_plugin_manager(load_entry_points=False)
    store = Store.open(tmp_path_factory.mktemp("matcher") / "book.db", pm=pm)
    store.init()
    generate_to_store(store, 1500, seed=11, as_of=AS_OF)
    yield store, pm
    store.close()


def _alerts(result):
    return sorted((a.fingerprint, a.code, a.severity, a.account_id, a.message) for a in result.alerts)


@needs_durable
def test_a_full_check_gives_the_same_alerts_with_either_matcher(book):
    from kamrules.check import run_check

    store, pm = book
    got = {}
    try:
        for name in ("durable", "python"):
            engine.configure(name)
            result = run_check(store, AS_OF, pm=pm, jobs=1)
            assert not result.summary.failures
            got[name] = _alerts(result)
    finally:
        engine.configure(None)
    assert got["durable"] and len({a[1] for a in got["durable"]}) > 10  # many rules fired
    assert got["durable"] == got["python"]


def test_choice_setting_and_environment(monkeypatch):
    from kamrules.config import load_settings
    from kamrules.errors import InputError

    monkeypatch.delenv("KAMRULES_ENGINE", raising=False)
    engine.configure(None)  # what the CLI does for engine = "auto": back to $KAMRULES_ENGINE, else auto
    assert engine.choice() == "auto"
    assert engine.resolve("python") == "python"
    assert engine.resolve("auto") == ("durable" if import_error() is None else "python")
    monkeypatch.setenv("KAMRULES_ENGINE", "python")
    assert engine.choice() == "python" and "python" in engine.describe()
    try:
        engine.configure("durable")
        assert engine.choice() == "durable"
    finally:
        engine.configure(None)
    with pytest.raises(InputError):
        engine.configure("fast")
    assert load_settings(environ={"KAMRULES_ENGINE": "python"}).check.engine == "python"
    with pytest.raises(InputError) as bad:
        load_settings(environ={"KAMRULES_ENGINE": "fast"})
    assert "check.engine" in bad.value.render()


# -- the CLI where durable_rules can't be imported: a real process in which importing it fails --------

_NO_DURABLE = (
    "import sys; sys.modules['durable'] = sys.modules['durable.engine'] = None; "
    "sys.modules['durable_rules_engine'] = None; from kamrules.cli import cli; cli()"
)


def _kamrules(tmp_path, *args, blocked: bool, env_extra=None):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMRULES_")} | (env_extra or {})
    cmd = [sys.executable, "-c", _NO_DURABLE] if blocked else [sys.executable, "-m", "kamrules"]
    return subprocess.run(
        cmd + [str(a) for a in args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    assert _kamrules(tmp, "demo", "--accounts", "200", "--db", tmp / "k.db", blocked=False).returncode == 0
    return tmp / "k.db"


def test_without_durable_the_python_matcher_is_used_and_said_once(tmp_path, demo_db):
    db = demo_db
    check = ("check", "--db", db, "--as-of", AS_OF, "--format", "json", "--fail-on", "never")
    base = _kamrules(tmp_path, *check, blocked=False)
    fallback = _kamrules(tmp_path, *check, blocked=True)
    assert base.returncode == fallback.returncode == 0, fallback.stderr
    assert fallback.stdout == base.stdout and base.stdout.count('"code"') > 5
    lines = [ln for ln in fallback.stderr.splitlines() if "durable_rules" in ln]
    assert len(lines) == 1 and "using the Python matcher" in lines[0]
    assert "CPPFLAGS='-DPyEval_CallObject=PyObject_CallObject'" in lines[0] and 'engine = "python"' in lines[0]
    # the setting silences it; --version and `plugins` say which matcher is in use
    (tmp_path / "kamrules.toml").write_text('[check]\nengine = "python"\n', encoding="utf-8")
    quiet = _kamrules(tmp_path, *check, blocked=True)
    assert quiet.stdout == base.stdout and "durable_rules" not in quiet.stderr
    version = _kamrules(tmp_path, "--version", blocked=True)
    assert 'matcher: python (engine = "python")' in version.stdout
    (tmp_path / "kamrules.toml").unlink()
    version = _kamrules(tmp_path, "--version", blocked=True)
    assert "matcher: python" in version.stdout and "can't be imported" in version.stdout
    assert "matcher: python" in _kamrules(tmp_path, "plugins", blocked=True).stdout


def test_engine_durable_where_it_cannot_be_imported_is_a_clear_error(tmp_path, demo_db):
    proc = _kamrules(
        tmp_path, "check", "--db", demo_db, "--as-of", AS_OF, blocked=True, env_extra={"KAMRULES_ENGINE": "durable"}
    )
    assert proc.returncode == 2
    assert "durable_rules can't be imported" in proc.stderr and "CPPFLAGS=" in proc.stderr
    assert "Traceback" not in proc.stderr


@needs_durable
def test_version_and_plugins_name_durable_where_it_imports(tmp_path):
    assert "matcher: durable_rules 2.0.28" in _kamrules(tmp_path, "--version", blocked=False).stdout
    assert "matcher: durable_rules" in _kamrules(tmp_path, "plugins", blocked=False).stdout
