"""Hostile rule files: YAML alias bombs, thresholds that disable their rule, format-string tricks, control characters."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

import kamrules.ruleset as ruleset_mod
from kamrules.errors import InputError
from kamrules.messages import format_message
from kamrules.ruleset import parse_ruleset

LOADERS = [pytest.param(yaml.SafeLoader, id="python")]
if hasattr(yaml, "CSafeLoader"):
    LOADERS.append(pytest.param(yaml.CSafeLoader, id="libyaml"))


@pytest.fixture(params=LOADERS)
def loader(request, monkeypatch):
    """Every test runs with the libyaml composer (the default where PyYAML has it) and the pure-Python one."""
    monkeypatch.setattr(ruleset_mod, "_LOADER", request.param)
    return request.param


def rule_file(tmp_path, rule: str = "", top: str = "", name: str = "hostile.yaml"):
    """A rule set with one rule; ``rule`` adds or replaces keys of the rule (indented 4)."""
    base = {"code": "TST101", "name": "t", "when": '["tier == key"]', "message": '"m {tier}"', "action": '"do it"'}
    extra = textwrap.dedent(rule).strip("\n").splitlines()
    keys = [ln.split(":", 1)[0].strip() for ln in extra if ln and not ln.startswith(" ")]
    lines = [f"{k}: {v}" for k, v in base.items() if k not in keys] + extra
    text = top + "ruleset: hostile\nrules:\n  - " + "\n    ".join(lines) + "\n"
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def at(path, needle: str, nth: int = 0) -> str:
    """FILE:LINE:COL of the ``nth`` occurrence of ``needle`` in the file."""
    text = path.read_text(encoding="utf-8")
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    line = text.count("\n", 0, i) + 1
    return f"{path}:{line}:{i - text.rfind(chr(10), 0, i)}"


def problems_of(path) -> list[str]:
    with pytest.raises(InputError) as e:
        parse_ruleset(path)
    return [str(p) for p in e.value.problems]


def kamrules(*args, cwd):
    env = dict(os.environ)
    env.pop("KAMRULES_PLUGINS_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "kamrules", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


LOL = '"lol"'
LAUGHS = (
    "".join(
        f"{c}: &{c} [{', '.join([('*' + p) if p else LOL] * 9)}]\n"
        for p, c in zip([""] + list("abcdefgh"), "abcdefghi", strict=True)
    )
    + "ruleset: lol\nrules: []\n"
)


# -- 1. YAML aliases -------------------------------------------------------------


def test_billion_laughs_is_refused_within_a_second_naming_the_place(tmp_path, loader):
    assert len(LAUGHS) < 800  # 9 levels of 9: 387 million "lol" if expanded
    p = tmp_path / "lol.yaml"
    p.write_text(LAUGHS, encoding="utf-8")
    started = time.perf_counter()
    found = problems_of(p)
    assert time.perf_counter() - started < 1.0
    assert found[0] == f"{p}:1:4: YAML anchor &a is not allowed in a rule file (expected every value written out)"
    assert f"{p}:2:8: YAML alias *a is not allowed in a rule file (expected every value written out)" in found


def test_a_single_alias_or_merge_key_is_refused(tmp_path, loader):
    p = rule_file(
        tmp_path,
        """
        thresholds: {days: &d 30}
        tiers: {key: {days: *d}}
        when: ["days_since_activity > $days"]
    """,
    )
    found = problems_of(p)
    assert found == [
        f"{at(p, '&d')}: YAML anchor &d is not allowed in a rule file (expected every value written out)",
        f"{at(p, '*d')}: YAML alias *d is not allowed in a rule file (expected every value written out)",
    ]


def test_stars_and_ampersands_in_text_are_not_aliases(tmp_path, loader):
    p = rule_file(
        tmp_path,
        """
        message: "R&D * 2: {tier}"
        action: "Call R&D *now*"
    """,
    )
    rs = parse_ruleset(p)
    assert rs.rules[0].message == "R&D * 2: {tier}" and rs.rules[0].action == "Call R&D *now*"


def test_deeply_nested_yaml_is_a_clean_error(tmp_path, loader):
    p = tmp_path / "deep.yaml"
    p.write_text("rules: " + "[" * 50000 + "]" * 50000 + "\n", encoding="utf-8")
    found = problems_of(p)
    assert found and found[0].startswith(f"{p}:1")


def test_cli_refuses_the_alias_bomb_with_exit_2_fast(tmp_path, book_store):
    (tmp_path / "rs").mkdir()
    (tmp_path / "rs" / "lol.yaml").write_text(LAUGHS, encoding="utf-8")
    started = time.perf_counter()
    proc = kamrules("--db", book_store.path, "check", "--rulesets", tmp_path / "rs", cwd=tmp_path)
    assert time.perf_counter() - started < 20  # the interpreter's start-up included; main never finished
    assert proc.returncode == 2, proc.stderr
    assert "lol.yaml:1:4: YAML anchor &a is not allowed" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


# -- 2. thresholds that silently disable their rule ---------------------------------


@pytest.mark.parametrize(
    "value, shown",
    [
        (".nan", "nan is not a threshold value (expected a finite number)"),
        (".inf", "inf is not a threshold value (expected a finite number)"),
        ("-.inf", "-inf is not a threshold value (expected a finite number)"),
        ('"10"', "text '10' is compared with `>`"),
        ("'0.5'", "text '0.5' is compared with `>`"),
        ('"10%"', "text '10%' is compared with `>`"),
        ("nan", "text 'nan' is compared with `>`"),
        ("true", "true/false is compared with `>`"),
    ],
)
def test_threshold_that_cannot_order_a_number_is_refused_at_its_value(tmp_path, loader, value, shown):
    p = rule_file(
        tmp_path,
        f"""
        when: ["days_since_activity > $days"]
        thresholds:
          days: {value}
    """,
    )
    found = problems_of(p)
    assert len(found) == 1 and found[0].startswith(f"{at(p, value)}: threshold days: {shown}"), found


def test_per_severity_and_tier_thresholds_are_checked_too(tmp_path, loader):
    p = rule_file(
        tmp_path,
        """
        when: ["ratio >= $limit"]
        thresholds:
          limit: {warning: 0.1, critical: "0.2"}
        tiers:
          key: {limit: {warning: false, critical: 0.3}}
    """,
    )
    found = problems_of(p)
    q = '"0.2"'
    assert found == [
        f"{at(p, q)}: threshold limit: text '0.2' is compared with `>=` in 'ratio >= $limit' (expected a number, unquoted)",
        f"{at(p, 'false')}: threshold limit: true/false is compared with `>=` in 'ratio >= $limit' (expected a number)",
    ]


def test_text_thresholds_that_are_no_numbers_still_work(tmp_path, loader):
    p = rule_file(
        tmp_path,
        """
        when: ["last_order_on < $cutoff", "status == $state", "flag == $wanted"]
        thresholds: {cutoff: "2026-01-01", state: "10", wanted: true}
    """,
    )
    rule = parse_ruleset(p).rules[0]
    assert rule.thresholds == {"cutoff": "2026-01-01", "state": "10", "wanted": True}


@pytest.mark.parametrize(
    "cond, operand, message",
    [
        ("days > '10'", "'10'", "text '10' compared with '>' (expected a number, unquoted, e.g. 10 or 0.5)"),
        ("days <= nan", "nan", "text 'nan' compared with '<='"),
        ("days > 1e999", "1e999", "number '1e999' is out of range (expected a finite number)"),
        ("days in [1, 1e400]", "1e400", "number '1e400' is out of range"),
        ("days == 99999999999999999999", "9999", "number '99999999999999999999' is out of range"),
    ],
)
def test_literal_operands_that_disable_a_rule_are_refused(tmp_path, loader, cond, operand, message):
    p = rule_file(
        tmp_path,
        f"""
        when: ["{cond}"]
    """,
    )
    found = problems_of(p)
    assert len(found) == 1 and found[0].startswith(f"{at(p, operand)}: {message}"), found


def test_cli_refuses_a_nan_threshold_with_exit_2(tmp_path, book_store):
    (tmp_path / "rs").mkdir()
    rule_file(
        tmp_path / "rs",
        """
        when: ["days_since_activity > $days"]
        thresholds: {days: .nan}
    """,
    )
    proc = kamrules("--db", book_store.path, "check", "--rulesets", tmp_path / "rs", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert (
        f"{at(tmp_path / 'rs' / 'hostile.yaml', '.nan')[len(str(tmp_path / 'rs')) + 1 :]}: threshold days: nan is not"
        in proc.stderr
    )


# -- 3. message and action templates ---------------------------------------------------


@pytest.mark.parametrize(
    "message, expected",
    [
        ('"{tier.__class__.__mro__}"', "field {tier.__class__.__mro__}: attribute or index access"),
        ('"{tier[0]}"', "field {tier[0]}: attribute or index access"),
        (
            '"{tier:>999999999}"',
            "field {tier}: format spec '>999999999': width 999999999 is too large (expected at most 50)",
        ),
        ('"{tier:.1000f}"', "precision 1000 is too large"),
        ('"{tier:{tier}}"', "holds a nested field"),
        ('"{tier:%Y-%m}"', "is not a simple format"),
        ('"{tier!x}"', "field {tier}: unknown conversion !x (expected !r, !s, !a or none)"),
        ('"{}"', "a positional {} field"),
        ('"{0}"', "a positional {} field"),
        ('"a {tier"', "not a valid format string"),
        ('"two\\nlines {tier}"', "a line break ('\\n') at character 4"),
        ('"bell\\a {tier}"', "a control character ('\\x07') at character 5"),
        ('"csi \\e[2J {tier}"', "a control character ('\\x1b')"),
        ('"nel \\N {tier}"', "a line break ('\\x85')"),
        ('"ls \\L {tier}"', "a line break ('\\u2028')"),
        ('"del \\x7f {tier}"', "a control character ('\\x7f')"),
        ('"c1 \\x9b {tier}"', "a control character ('\\x9b')"),
        ("|\n      block {tier}", "a line break ('\\n')"),
    ],
)
def test_message_templates_are_names_and_simple_specs_on_one_line(tmp_path, loader, message, expected):
    p = rule_file(tmp_path, f"message: {message}")
    found = problems_of(p)
    assert len(found) == 1 and found[0].startswith(f"{p}:7:14: message: ") and expected in found[0], found


@pytest.mark.parametrize(
    "action, expected",
    [
        ('"call\\nReply-To: x"', "action: a line break ('\\n') at character 5"),
        ('"x\\ty"', "action: a control character ('\\t')"),
        ('"\\e]8;;http://evil\\a"', "action: a control character ('\\x1b')"),
        ('"r\\u2029"', "action: a line break ('\\u2029')"),
    ],
)
def test_actions_are_one_line_without_control_characters(tmp_path, loader, action, expected):
    p = rule_file(tmp_path, f"action: {action}")
    found = problems_of(p)
    assert len(found) == 1 and found[0].startswith(f"{at(p, action[:3])}: {expected}"), found


def test_descriptions_may_span_lines_but_hold_no_control_characters(tmp_path, loader):
    ok = rule_file(tmp_path, "description: >\n      two\n      lines")
    assert parse_ruleset(ok).rules[0].description == "two lines"
    bad = rule_file(tmp_path, 'description: "a \\e[31m red"', name="bad.yaml")
    assert problems_of(bad)[0].startswith(at(bad, '"a ') + ": description: a control character ('\\x1b')")


def test_simple_templates_still_load_and_format(tmp_path, loader):
    p = rule_file(
        tmp_path,
        """
        message: "{tier!r} {tier:>8} {tier:*^12} {as_of} {x:,.0f} {x:05.1f} {x:.1%} {x:+,} {{literal}}"
        when: ["tier == key", "x > 0"]
    """,
    )
    rule = parse_ruleset(p).rules[0]
    assert (
        format_message(rule, {"tier": "key", "x": 1234.5}, {}, "2026-10-31")
        == "'key'      key ****key***** 2026-10-31 1,234 1234.5 123450.0% +1,234.5 {literal}"
    )
    assert format_message(rule, {}, {}, "2026-10-31").startswith("n/a n/a")


@pytest.mark.parametrize("template", ["{tier.__class__.__mro__}", "{tier[0]}", "{tier:>999999999}", "{tier:{tier}}"])
def test_a_rule_built_in_python_cannot_bypass_the_template_rules(tmp_path, loader, template):
    rule = dataclasses.replace(parse_ruleset(rule_file(tmp_path)).rules[0], message=template)
    started = time.perf_counter()
    with pytest.raises(ValueError):
        format_message(rule, {"tier": "key"}, {}, "2026-10-31")
    assert time.perf_counter() - started < 0.5


def test_cli_refuses_a_hostile_message_with_exit_2(tmp_path, book_store):
    (tmp_path / "rs").mkdir()
    rule_file(tmp_path / "rs", 'message: "{tier:>999999999}"')
    proc = kamrules("--db", book_store.path, "check", "--rulesets", tmp_path / "rs", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "hostile.yaml:7:14: message: field {tier}: format spec '>999999999'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
