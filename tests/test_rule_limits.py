"""The rule-file format of issue 13: `any:` blocks, `limits:` tables (per stage, buyer type, segment, tier) with
their precedence and FILE:LINE:COL errors, both matchers agreeing on them, and look-back windows set by thresholds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamrules.engine import MatchRule, compile_matcher, import_error
from kamrules.errors import InputError
from kamrules.ruleset import evaluate, parse_ruleset

needs_durable = pytest.mark.skipif(
    import_error() is not None, reason=f"durable_rules can't be imported: {import_error()}"
)

RULES = """\
ruleset: demo
rules:
  - code: KAM901
    name: dwell
    when:
      - "status != lost"
      - any: ["status == prospect", "tier == key", "days > 1000"]
      - "days > $days"
    thresholds:
      days: {warning: 30, critical: 90}
    tiers:
      key: {days: {warning: 60, critical: 180}}
    limits:
      - {stage: negotiation, days: {warning: 60, critical: 120}}
      - {stage: negotiation, tier: key, days: {warning: 120, critical: 240}}
      - {buyer_type: strategic, days: {warning: 45, critical: 100}}
      - {segment: [银行, 保险], tier: [mid, small], days: {warning: 40, critical: 99}}
    message: "{days} days"
    action: "move"
"""


def _rule(tmp_path, text=RULES):
    p = tmp_path / "demo.yaml"
    p.write_text(text, encoding="utf-8")
    return parse_ruleset(p).rules[0]


@pytest.mark.parametrize(
    "facts, warning",
    [
        ({"tier": "mid"}, 30),
        ({"tier": "key"}, 60),
        ({"tier": "mid", "pipeline_stage": "negotiation"}, 60),
        ({"tier": "key", "pipeline_stage": "negotiation"}, 120),  # two keys beat one
        ({"tier": "key", "buyer_type": "strategic"}, 45),  # buyer_type ranks above tier
        (
            {"tier": "mid", "pipeline_stage": "negotiation", "buyer_type": "strategic"},
            60,
        ),  # stage ranks above buyer_type
        ({"tier": "mid", "segment": "保险"}, 40),
        ({"tier": "key", "segment": "保险"}, 60),  # the segment row is for mid and small only
        ({"tier": "mid", "segment": "保险", "pipeline_stage": "negotiation"}, 40),  # two keys beat one
        ({"tier": None, "pipeline_stage": 3}, 30),  # not text: no row selects it
    ],
)
def test_limits_precedence(tmp_path, facts, warning):
    rule = _rule(tmp_path)
    assert rule.thresholds_for(facts)["days"]["warning"] == warning
    got = {v.severity: v.thresholds["days"] for v in rule.variants_for(facts)}
    assert got["warning"] == warning and len(got) == 2
    on = dict(facts, status="prospect", days=warning + 1)
    assert evaluate(rule, on).severity == "warning"
    assert not evaluate(rule, dict(on, days=warning)).fired


def test_any_block_is_an_or_beside_the_and_list(tmp_path):
    rule = _rule(tmp_path)
    base = {"tier": "mid", "days": 500}
    assert not evaluate(rule, dict(base, status="active")).fired  # none of the any: conditions
    assert evaluate(rule, dict(base, status="prospect")).fired
    assert evaluate(rule, dict(base, status="active", days=1001)).fired
    assert not evaluate(rule, dict(base, status="lost", tier="key")).fired
    assert "any of:" in evaluate(rule, dict(base, status="active")).reason()


@needs_durable
def test_both_matchers_agree_on_any_and_limits(tmp_path):
    rule = _rule(tmp_path)
    keys = [MatchRule(f"{rule.code}|{v.label}|{v.severity}", rule, v) for v in rule.variants()]
    durable, python = compile_matcher(keys, "durable"), compile_matcher(keys, "python")
    text = st.sampled_from(
        ["key", "mid", "small", "", "negotiation", "visit", "strategic", "保险", "银行", "prospect", "lost", "active"]
    )
    # numbers with numbers, text with text (between the two durable_rules has its own rules: see test_matcher.py)
    number = st.one_of(st.none(), st.integers(-5, 300), st.sampled_from([0, 1, 1001, 59.5, 120, 240]))
    fields = {f: st.one_of(st.none(), text) for f in ("tier", "pipeline_stage", "buyer_type", "segment", "status")}
    fields["days"] = number

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(facts=st.lists(st.fixed_dictionaries({}, optional=fields), min_size=1, max_size=20))
    def agree(facts):
        got = durable.match(facts)
        assert got == python.match(facts), facts
        for f, keys_ in zip(facts, got, strict=True):  # and the Python evaluation picks the same severity
            v = evaluate(rule, f)
            strongest = max((k.split("|")[2] for k in keys_), key=["info", "warning", "critical"].index, default=None)
            assert (v.severity if v.fired else None) == strongest, f

    agree()


@pytest.mark.parametrize(
    "row, message, col",
    [
        ("{region: north, days: 5}", "unknown key 'region' in a limits row", 10),
        ("{stage: visit, dayz: 5}", "unknown key 'dayz' in a limits row", 24),
        ("{tier: huge, days: 5}", "unknown tier 'huge'", 16),
        ("{stage: 5, days: 5}", "stage: a number (expected text", 17),
        ("{stage: visit}", "limits row sets no threshold", 9),
        ("{days: 5}", "limits row selects no accounts", 9),
        ("{stage: negotiation, days: 7}", "also matches row pipeline_stage=negotiation", 9),
    ],
)
def test_limits_errors_name_file_line_col(tmp_path, row, message, col):
    text = RULES.replace("      - {buyer_type: strategic, days: {warning: 45, critical: 100}}\n", f"      - {row}\n")
    text = text.replace("days: {warning: 30, critical: 90}", "days: 30").replace("{warning: 60, critical: 180}", "60")
    text = text.replace("{warning: 60, critical: 120}", "60").replace("{warning: 120, critical: 240}", "120")
    text = text.replace("{warning: 40, critical: 99}", "40")
    with pytest.raises(InputError) as e:
        _rule(tmp_path, text)
    rendered = e.value.render()
    assert f"demo.yaml:16:{col}" in rendered and message in rendered, rendered


def test_any_block_errors(tmp_path):
    text = RULES.replace('- any: ["status == prospect", "tier == key", "days > 1000"]', '- any: ["status === x"]')
    with pytest.raises(InputError) as e:
        _rule(tmp_path, text)
    assert "demo.yaml:7:" in e.value.render()
    text = RULES.replace('- any: ["status == prospect", "tier == key", "days > 1000"]', "- {any: [], or: [x]}")
    with pytest.raises(InputError) as e:
        _rule(tmp_path, text)
    assert "unknown key 'or' in a condition" in e.value.render()


# -- look-back windows set by thresholds ---------------------------------------------------------------


def _visit_rules(tmp_path, window_401, window_402):
    from importlib.resources import files

    text = (files("kamrules_rulesets.stalled_stages") / "rules.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "visit_window_months: 6  # the visits looked at (shared with incomplete_visit_record)",
        f"visit_window_months: {window_401}",
    )
    text = text.replace(
        "visit_window_months: 6  # the visits looked at (shared with no_follow_up)",
        f"visit_window_months: {window_402}",
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "stalled_stages.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "rules"


def test_visit_window_is_a_threshold_of_the_rule_file(book, tmp_path):
    from rulebook import act

    book.account("A", status="prospect")
    act(book, "A", 250, kind="visit")  # 8 months ago: outside the default 6-month window
    assert "A" not in book.alerts("KAM401")
    folder = _visit_rules(tmp_path, 9, 9)
    alert = book.alerts("KAM401", rulesets_dirs=[folder])["A"]
    assert alert.message.startswith(f"visit on {book.ago(250)}")
    alert = book.alerts("KAM402", rulesets_dirs=[folder])["A"]
    assert "in the 9 months to 2026-10-31" in alert.message


def test_visit_windows_that_disagree_are_an_error(book, tmp_path):
    book.account("A", status="prospect")
    folder = _visit_rules(tmp_path, 9, 6)
    with pytest.raises(InputError) as e:
        book.check(select=("KAM40",), rulesets_dirs=[folder])
    assert "visit_window_months = 6 but rule KAM401" in e.value.render()
    assert "stalled_stages.yaml:" in e.value.render()
