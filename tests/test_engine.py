"""The matchers: agreement with Python evaluation (both matchers); the durable_rules wrapper: batching
invariance, nothing lost."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamrules.conditions import parse_condition
from kamrules.engine import MAX_RULES, EngineRule, MatchRule, compile_matcher, compile_rules, import_error
from kamrules.ruleset import Rule, evaluate

NUMS = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 0.0, 1e-06, -1e-07, 1e20, 2.5e-5, 0.1, 0.2, 3]),
)
WORDS = st.sampled_from(["active", "lost", "prospect", "华东", "key", "mid", "small"])


def fact_sets():
    return st.fixed_dictionaries(
        {},
        optional={
            "a": NUMS,
            "b": NUMS,
            "c": st.integers(0, 1),
            "s": WORDS,
            "tier": st.sampled_from(["key", "mid", "small"]),
        },
    )


def _num_text(v) -> str:
    return repr(v)


CONDITIONS = st.one_of(
    st.builds(lambda op, v: f"a {op} {_num_text(v)}", st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), NUMS),
    st.builds(lambda op: f"a {op} @b", st.sampled_from(["<", "<=", ">", ">=", "==", "!="])),
    st.builds(lambda op: f"b {op} $limit", st.sampled_from(["<", ">", ">=", "<="])),
    st.builds(
        lambda op, ws: f"s {op} [{', '.join(ws)}]",
        st.sampled_from(["in", "not in"]),
        st.lists(WORDS, min_size=1, max_size=3),
    ),
    st.builds(lambda op, w: f"s {op} {w}", st.sampled_from(["==", "!="]), WORDS),
    st.builds(
        lambda f, op: f"{f} {op}", st.sampled_from(["a", "b", "s", "c"]), st.sampled_from(["is missing", "is present"])
    ),
    st.sampled_from(["c == true", "c == false", "c != true"]),
)


def make_rule(texts, limits, tier_limits=None) -> Rule:
    tiers = {"key": {"limit": tier_limits}} if tier_limits is not None else {}
    return Rule(
        code="TST001",
        name="t",
        ruleset="t",
        severity="warning",
        when=tuple(parse_condition(t) for t in texts),
        message="",
        action="",
        thresholds={"limit": limits},
        tiers=tiers,
    )


needs_durable = pytest.mark.skipif(
    import_error() is not None, reason=f"durable_rules can't be imported: {import_error()}"
)
MATCHERS = [pytest.param("durable", marks=needs_durable), "python"]


def engine_verdicts(rule: Rule, facts: list[dict], engine: str = "durable") -> list[str | None]:
    variants = {}
    rules = []
    for v in rule.variants():
        key = f"{v.tier or '*'}|{v.severity}"
        variants[key] = v
        rules.append(MatchRule(key, rule, v))
    compiled = compile_matcher(rules, engine)
    assert compiled.name == engine
    out = []
    rank = {"info": 0, "warning": 1, "critical": 2}
    for fired in compiled.match(facts):
        sevs = [variants[k].severity for k in fired]
        out.append(max(sevs, key=rank.get) if sevs else None)
    return out


@pytest.mark.parametrize("engine", MATCHERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    conds=st.lists(CONDITIONS, min_size=1, max_size=3),
    limits=st.one_of(NUMS, st.fixed_dictionaries({"warning": NUMS, "critical": NUMS})),
    tier_limits=st.one_of(st.none(), st.fixed_dictionaries({"warning": NUMS, "critical": NUMS})),
    facts=st.lists(fact_sets(), min_size=1, max_size=12),
)
def test_engine_agrees_with_python_evaluation(engine, conds, limits, tier_limits, facts):
    if tier_limits is not None and not isinstance(limits, dict):
        tier_limits = tier_limits["warning"]
    rule = make_rule(conds, limits, tier_limits)
    got = engine_verdicts(rule, facts, engine)
    want = [evaluate(rule, f).severity for f in facts]
    assert got == want, (conds, limits, tier_limits, facts)


def _book(n: int, seed: int = 7) -> list[dict]:
    rnd = random.Random(seed)
    return [
        {"account_id": f"A{i:05d}", "a": rnd.randint(0, 100), "b": rnd.random(), "s": rnd.choice(["x", "y", "中文"])}
        for i in range(n)
    ]


RULES = [
    EngineRule("a_high", {"$gt": {"a": 50}}),
    EngineRule("b_low", {"$lt": {"b": 0.3}}),
    EngineRule("zh", {"s": "中文"}),
    EngineRule("both", {"$and": [{"$gt": {"a": 90}}, {"$lt": {"b": 0.5}}]}),
]


@needs_durable
def test_same_alerts_however_batched():
    compiled = compile_rules(RULES)
    facts = _book(2500)
    results = []
    for size in (1, 7, 1000):
        fired = []
        for i in range(0, len(facts), size):
            fired += compiled.match(facts[i : i + size])
        results.append(fired)
    assert results[0] == results[1] == results[2]
    # and equal to the plain Python truth
    want = [
        {
            k
            for k, ok in (
                ("a_high", f["a"] > 50),
                ("b_low", f["b"] < 0.3),
                ("zh", f["s"] == "中文"),
                ("both", f["a"] > 90 and f["b"] < 0.5),
            )
            if ok
        }
        for f in facts
    ]
    assert results[0] == want


@needs_durable
def test_no_lost_actions_over_many_facts():
    compiled = compile_rules([EngineRule("every", {"$ex": {"a": 1}}), EngineRule("even", {"$gte": {"a": 0}})])
    facts = [{"a": i} for i in range(20_000)]
    fired = compiled.match(facts)  # split into batches of MAX_BATCH internally
    assert all(f == {"every", "even"} for f in fired)
    assert len(fired) == 20_000


@needs_durable
def test_unmatched_and_identical_facts_do_not_raise():
    compiled = compile_rules([EngineRule("a_high", {"$gt": {"a": 50}})])
    assert compiled.match([{"a": 1}, {"a": 1}, {}, {"a": 99}, {"a": 99}]) == [
        set(),
        set(),
        set(),
        {"a_high"},
        {"a_high"},
    ]
    assert compiled.match([]) == []


@needs_durable
def test_exponent_floats_and_non_finite_values():
    # durable_rules' JSON parser crashes on 1e-06 / 1e+20; the wrapper writes plain decimals
    compiled = compile_rules([EngineRule("pos", {"$gt": {"x": 1e-07}}), EngineRule("big", {"$gte": {"x": 1e20}})])
    assert compiled.match([{"x": 1e-06}, {"x": 1e-08}, {"x": 3e20}, {"x": float("nan")}, {"x": float("inf")}]) == [
        {"pos"},
        set(),
        {"pos", "big"},
        set(),
        set(),
    ]


@needs_durable
def test_values_the_fast_encoder_leaves_to_the_careful_one():
    # booleans go as 0/1, other types as text; text that looks like an exponent float stays text
    from decimal import Decimal

    compiled = compile_rules(
        [
            EngineRule("one", {"x": 1}),
            EngineRule("name", {"name": "A1e-5"}),
            EngineRule("dec", {"d": "2.5"}),
            EngineRule("t", {"s": "true"}),
        ]
    )
    got = compiled.match([{"x": True}, {"x": False, "name": "A1e-5"}, {"d": Decimal("2.5")}, {"s": "true"}, {"x": 1}])
    assert got == [{"one"}, {"name"}, {"dec"}, {"t"}, {"one"}]


@needs_durable
def test_many_rules_are_split_across_durable_rulesets():
    rules = [EngineRule(f"r{i}", {"$gte": {"a": i}}) for i in range(3 * MAX_RULES)]
    compiled = compile_rules(rules)
    assert len(compiled.names) >= 3
    assert compiled.match([{"a": 10}]) == [{f"r{i}" for i in range(11)}]


@needs_durable
def test_registering_the_same_rules_twice_reuses_them():
    assert compile_rules(RULES) is compile_rules(list(RULES))


@needs_durable
def test_rule_keys_must_be_unique():
    from kamrules.engine import EngineError

    with pytest.raises(EngineError):
        compile_rules([EngineRule("x", {"a": 1}), EngineRule("x", {"a": 2})])
