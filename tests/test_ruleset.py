"""Rule-set files: parsing, strict validation with FILE:LINE:COL, conditions, resolution."""

from __future__ import annotations

import textwrap

import pytest

from kamrules.conditions import ConditionError, parse_condition
from kamrules.errors import InputError
from kamrules.ruleset import check_facts, evaluate, parse_ruleset, resolve

GOOD = """\
ruleset: examples
description: Example rules.
rules:
  - code: TST101
    name: big_revenue
    severity: info
    when:
      - "status == active"
      - "revenue > $limit"
    thresholds:
      limit: {info: 100, warning: 1000, critical: 10000}
    tiers:
      key: {limit: {info: 1000, warning: 10000, critical: 100000}}
    message: "revenue {revenue:,.0f} above {limit:,}"
    action: "Thank them."
  - code: TST102
    name: no_owner
    severity: critical
    when: ["owner is missing", "tier in [key, mid]"]
    message: "no owner as of {as_of}"
    action: "Name an owner."
"""


def write(tmp_path, text, name="examples.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def problems(tmp_path, text, name="examples.yaml"):
    p = write(tmp_path, text, name)
    with pytest.raises(InputError) as e:
        parse_ruleset(p)
    return [str(x) for x in e.value.problems], str(p)


def test_parses_a_good_file(tmp_path):
    rs = parse_ruleset(write(tmp_path, GOOD))
    assert rs.name == "examples" and [r.code for r in rs.rules] == ["TST101", "TST102"]
    r = rs.rules[0]
    assert r.when[1].fact == "revenue" and r.when[1].threshold == "limit"
    assert r.thresholds["limit"]["warning"] == 1000 and r.tiers["key"]["limit"]["critical"] == 100000
    assert [(v.tier, v.severity) for v in r.variants()] == [
        (None, "critical"),
        (None, "warning"),
        (None, "info"),
        ("key", "critical"),
        ("key", "warning"),
        ("key", "info"),
    ]
    assert r.line == 4 and r.when[1].line == 9 and r.when[1].column == 10
    assert rs.rules[1].when[1].value == ("key", "mid")


def test_highest_severity_wins_and_tiers_override(tmp_path):
    r = parse_ruleset(write(tmp_path, GOOD)).rules[0]
    assert evaluate(r, {"status": "active", "revenue": 5000, "tier": "mid"}).severity == "warning"
    assert evaluate(r, {"status": "active", "revenue": 5000, "tier": "key"}).severity == "info"
    assert evaluate(r, {"status": "active", "revenue": 50, "tier": "mid"}).fired is False
    v = evaluate(r, {"status": "active", "revenue": 50, "tier": "mid"})
    assert v.reason() == "not fired: `revenue > 100` is false (revenue = 50)"
    assert (
        evaluate(r, {"status": "active", "tier": "mid"}).reason()
        == "not fired: `revenue > 100` is false: revenue has no value"
    )


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "    severity: info\n",
            "    severity: urgent\n",
            "{f}:6:15: unknown severity 'urgent' (expected info, warning, critical)",
        ),
        (
            "    name: big_revenue\n",
            "    name: big_revenue\n    colour: red\n",
            "{f}:6:5: unknown key 'colour' in a rule (expected one of ",
        ),
        (
            "code: TST101",
            "code: tst101",
            "{f}:4:11: code 'tst101' (expected 2-5 capital letters and 3 digits, e.g. KAM101)",
        ),
        ('"revenue > $limit"', '"revenue >> $limit"', "{f}:9:19: bad operand '> $limit'"),
        ('"revenue > $limit"', '"revenue > $cap"', "{f}:9:20: unknown threshold $cap (expected one of: limit)"),
        (
            '"revenue > $limit"',
            '"revenue about 3"',
            "{f}:9:18: no operator after 'revenue' (expected one of ==, !=, <, <=, >, >=, in, not in, is missing, is present)",
        ),
        ("code: TST102", "code: TST101", "{f}:16:11: duplicate rule code 'TST101' (first at line 4)"),
        (
            "    enabled: true\n" if False else "    severity: critical\n",
            "    severity: critical\n    enabled: yes please\n",
            "{f}:19:14: enabled: text (expected true or false)",
        ),
        ("      key: {limit:", "      big: {limit:", "{f}:13:7: unknown tier 'big' (expected key, mid, small)"),
        ("      key: {limit:", "      key: {cap:", "{f}:13:13: tier key overrides unknown threshold 'cap'"),
        (
            "limit: {info: 100, warning: 1000, critical: 10000}",
            "limit: {info: 100, warnin: 1000}",
            "{f}:11:26: unknown severity 'warnin' (expected info, warning, critical)",
        ),
        (
            "limit: {info: 100, warning: 1000, critical: 10000}",
            "limit: [1, 2]",
            "{f}:11:14: threshold limit: a list is not a threshold value",
        ),
        ("rules:\n", "rule:\n", "{f}:3:1: unknown key 'rule' (expected one of ruleset, description, source, rules)"),
        (
            '    message: "revenue {revenue:,.0f} above {limit:,}"\n',
            "",
            "{f}:4:5: missing key 'message' (expected message: text)",
        ),
        ('"tier in [key, mid]"', '"tier in key"', "{f}:19:41: 'in' needs a [list] (expected e.g. [key, mid])"),
    ],
)
def test_errors_name_file_line_column(tmp_path, old, new, expected):
    assert old in GOOD
    got, f = problems(tmp_path, GOOD.replace(old, new, 1))
    want = expected.format(f=f)
    assert any(g.startswith(want) for g in got), got


def test_every_problem_is_reported_at_once(tmp_path):
    text = GOOD.replace("severity: info", "severity: loud").replace("code: TST102", "code: X1")
    got, f = problems(tmp_path, text)
    assert len(got) == 2 and got[0].startswith(f"{f}:6:") and got[1].startswith(f"{f}:16:")


def test_invalid_yaml_and_wrong_top_level(tmp_path):
    got, f = problems(tmp_path, "ruleset: x\nrules: [\n")
    assert got[0].startswith(f"{f}:3:1: invalid YAML")
    got, f = problems(tmp_path, "- just\n- a list\n")
    assert got == [f"{f}:1:1: the file holds a list (expected a mapping with ruleset:, rules:)"]


def test_unknown_facts_are_reported_with_position(tmp_path):
    rs = parse_ruleset(write(tmp_path, GOOD.replace('"revenue > $limit"', '"revenu > $limit"')))
    got = [str(p) for p in check_facts([rs], {"account": {"status", "revenue", "owner", "tier"}})]
    assert got == [
        f"{rs.path}:9:10: rule TST101: unknown fact 'revenu' (expected a fact of a registered provider; did you mean 'revenue'?)"
    ]
    rs = parse_ruleset(write(tmp_path, GOOD.replace("{revenue:,.0f}", "{revnue:,.0f}")))
    got = [str(p) for p in check_facts([rs], {"account": {"status", "revenue", "owner", "tier"}})]
    assert got[0].startswith(f"{rs.path}:14:14: rule TST101: message uses unknown field {{revnue}}")


def test_user_file_replaces_builtin_of_same_name_and_codes_are_unique(tmp_path):
    builtin = write(tmp_path, GOOD, "builtin.yaml")
    user = tmp_path / "mine"
    user.mkdir()
    write(user, GOOD.replace("info: 100,", "info: 500,"), "tuned.yaml")
    sets = resolve([builtin], [user])
    assert len(sets) == 1 and not sets[0].builtin and sets[0].rules[0].thresholds["limit"]["info"] == 500
    write(user, GOOD.replace("ruleset: examples", "ruleset: other"), "other.yaml")
    with pytest.raises(InputError) as e:
        resolve([builtin], [user])
    assert any("rule code TST101 is also used in" in str(p) for p in e.value.problems)
    with pytest.raises(InputError, match="rule-sets folder does not exist"):
        resolve([builtin], [tmp_path / "nope"])


@pytest.mark.parametrize(
    "text, fact, op, value, ref",
    [
        ("a == 3", "a", "==", 3, None),
        ("a >= 2.5", "a", ">=", 2.5, None),
        ("a < 10%", "a", "<", 0.1, None),
        ("s == 华东", "s", "==", "华东", None),
        ("s != 'two words'", "s", "!=", "two words", None),
        ("flag == true", "flag", "==", 1, None),
        ("s not in [a, 'b c', 3]", "s", "not in", ("a", "b c", 3), None),
        ("x is missing", "x", "is missing", None, None),
        ("x is  present", "x", "is present", None, None),
        ("a > @b", "a", ">", None, "b"),
        ("d < 2026-01-01", "d", "<", "2026-01-01", None),
    ],
)
def test_condition_parsing(text, fact, op, value, ref):
    c = parse_condition(text)
    assert (c.fact, c.op, c.value, c.ref) == (fact, op, value, ref)


@pytest.mark.parametrize("text", ["== 3", "a ==", "a in [", "a is missing now", "id == 3", "a == null", "a < [1]"])
def test_bad_conditions(text):
    with pytest.raises(ConditionError):
        parse_condition(text)


def test_real_rulesets_parse():
    from kamrules.check import builtin_ruleset_files
    from kamrules.plugins import make_plugin_manager

    failures: list = []
    sets = resolve(builtin_ruleset_files(make_plugin_manager(), failures))
    assert not failures
    assert {"over_subsidising", "neglected_small_clients", "missing_escalation_channels", "stalled_stages"} <= {
        s.name for s in sets
    }
