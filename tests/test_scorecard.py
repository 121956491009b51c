"""The scorecard file: the built-in default, and every validation error as FILE:LINE:COL."""

from __future__ import annotations

import pytest

from kamrules.errors import InputError
from kamrules.scorecard import default_path, load_scorecard, parse_scorecard

DEFAULT = default_path().read_text(encoding="utf-8")


def test_default_scorecard_loads_with_grades_and_profiles():
    sc = load_scorecard()
    assert sc.name == "default"
    assert [(g.grade, g.zh) for g in sc.grades] == [
        ("healthy", "健康"),
        ("watch", "关注"),
        ("at_risk", "有风险"),
        ("critical", "危险"),
    ]
    assert (
        sc.grade_of(100).grade == "healthy" and sc.grade_of(80).grade == "healthy" and sc.grade_of(79).grade == "watch"
    )
    assert sc.grade_of(0).grade == "critical"
    key, small, mid = sc.model_for("key"), sc.model_for("small"), sc.model_for("mid")
    assert key.name == "key_accounts" and mid.name == "base" and small.name == "small_accounts"
    # a key account's missing executive channel weighs more than a small one's
    assert key.weight("missing_escalation_channels") > small.weight("missing_escalation_channels")
    assert key.factor("KAM304") > small.factor("KAM304")
    # profiles merge over the base: what a profile does not name keeps the base value
    assert key.weight("over_subsidising") == sc.base.weight("over_subsidising")
    assert key.penalties == sc.base.penalties


def test_digest_changes_with_the_model(tmp_path):
    a = parse_scorecard("a.yaml", DEFAULT)
    b = parse_scorecard("b.yaml", DEFAULT.replace("over_subsidising: 30", "over_subsidising: 31"))
    assert a.digest == load_scorecard().digest != b.digest


def problems(text: str, path="sc.yaml") -> list[str]:
    with pytest.raises(InputError) as e:
        parse_scorecard(path, text)
    return [str(p) for p in e.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


BAD = [
    # (change to the default text, the line holding it, expected column, part of the message)
    (("extra_alerts: 0.5 ", "extra_alerts: 0.5 \ncolour: red "), "colour: red", 1, "unknown key 'colour'"),
    (("  over_subsidising: 30", "  over_subsidising: lots"), "over_subsidising: lots", 21, "is not a number"),
    (("  over_subsidising: 30", "  over_subsidising: -3"), "over_subsidising: -3", 21, "out of range"),
    (("  over_subsidising: 30", "  Over Subsidising: 30"), "Over Subsidising", 3, "is not a rule-set name"),
    (
        (
            "weights:\n  over_subsidising: 30\n  neglected_small_clients: 20\n  missing_escalation_channels: 30\n  stalled_stages: 20\n",
            "weights: 12\n",
        ),
        "weights: 12",
        10,
        "expected a mapping of rule-set name",
    ),
    (("  warning: 0.4", "  warning: '0.4'"), "warning: '0.4'", 12, "is not a number"),
    (("  warning: 0.4", "  warning: 1.4"), "warning: 1.4", 12, "out of range"),
    (("  warning: 0.4", "  warning: 0.05"), "penalties:", 1, "must not decrease"),
    (("  warning: 0.4", "  warning: 0.4\n  fatal: 1"), "fatal: 1", 3, "unknown severity 'fatal'"),
    (("extra_alerts: 0.5", "extra_alerts: 0.95"), "penalties:", 1, "enough infos outweigh one critical"),
    (("extra_alerts: 0.5", "extra_alerts: 1"), "extra_alerts: 1", 15, "out of range"),
    (("    min: 0\n", "    min: 10\n"), "grades:", 1, "do not cover 0 to 100"),
    (("    min: 80", "    min: high"), "min: high", 10, "is not a number"),
    (("    min: 80", "    min: 120"), "min: 120", 10, "out of range"),
    (("  - grade: watch", "  - grade: healthy  # again"), "# again", 12, "duplicate grade 'healthy'"),
    (("    zh: 关注", "    zh: 关注\n    colour: amber"), "colour: amber", 5, "unknown key 'colour' in a grade"),
    (("      tier: [key]", "      tier: [vip]"), "tier: [vip]", 14, "unknown tier 'vip'"),
    (("      tier: [key]", "      size: [key]"), "size: [key]", 7, "unknown key 'size' in match"),
    (("      KAM301: 1.5", "      KAM1: 1.5"), "KAM1: 1.5", 7, "is not a rule code"),
    (("      KAM301: 1.5", "      KAM301: yes"), "KAM301: yes", 15, "is not a number"),
    (
        ("  - profile: key_accounts", "  - profile: Key Accounts"),
        "profile: Key Accounts",
        14,
        "lower_case_with_underscores",
    ),
    (
        (
            "    weights:\n      missing_escalation_channels: 40",
            "    bonus: 3\n    weights:\n      missing_escalation_channels: 40",
        ),
        "bonus: 3",
        5,
        "unknown key 'bonus' in a profile",
    ),
]


@pytest.mark.parametrize("change,needle,col,message", BAD, ids=[b[3][:30] for b in BAD])
def test_every_error_names_file_line_and_column(change, needle, col, message):
    old, new = change
    assert old in DEFAULT
    text = DEFAULT.replace(old, new, 1)
    found = problems(text)
    want = f"sc.yaml:{line_of(text, needle)}:{col}: "
    assert any(p.startswith(want) and message in p for p in found), (want, message, found)


def test_missing_keys_and_wrong_shapes():
    assert any(
        "missing key 'penalties'" in p
        for p in problems(
            "scorecard: x\nweights: {a: 1}\nextra_alerts: 0.5\ngrades: [{grade: ok, en: ok, zh: 好, min: 0}]\n"
        )
    )
    assert any(
        "missing key 'weights'" in p
        for p in problems(
            "scorecard: x\npenalties: {info: 0.1, warning: 0.2, critical: 1}\n"
            "extra_alerts: 0.5\ngrades: [{grade: ok, en: ok, zh: 好, min: 0}]\n"
        )
    )
    assert any("expected a mapping with scorecard:" in p for p in problems("- just\n- a list\n"))
    assert any("penalties: missing critical" in p for p in problems(DEFAULT.replace("  critical: 1.0\n", "", 1)))
    assert any("missing key 'match'" in p for p in problems(DEFAULT.replace("    match:\n      tier: [key]\n", "", 1)))
    assert any(
        "grades: a mapping" in p for p in problems(DEFAULT.replace("grades:\n", "grades:\n  x: 1\nold_grades:\n", 1))
    )


def test_invalid_yaml_and_unreadable_files(tmp_path):
    assert any(p.startswith("sc.yaml:3:1: ") and "invalid YAML" in p for p in problems("scorecard: x\nweights: [a\n"))
    with pytest.raises(InputError, match="scorecard file not found"):
        load_scorecard(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a folder"):
        load_scorecard(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("scorecard: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_scorecard(bad)


def test_all_problems_are_reported_at_once():
    text = DEFAULT.replace("  over_subsidising: 30", "  over_subsidising: lots").replace(
        "    min: 0\n", "    min: 10\n"
    )
    found = problems(text)
    assert any("is not a number" in p for p in found) and any("do not cover" in p for p in found)


def test_a_tuned_copy_loads_from_a_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(DEFAULT.replace("scorecard: default", "scorecard: mine"), encoding="utf-8")
    sc = load_scorecard(p)
    assert sc.name == "mine" and sc.path == str(p)
