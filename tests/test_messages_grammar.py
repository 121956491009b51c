"""Messages that are true and actionable (issue 13): plural fields, every built-in rule's message rendered
with singular and plural values, actions chosen by a condition, numbers rounded for people."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules.check import CheckRequest, builtin_ruleset_files, plan
from kamrules.cli import cli
from kamrules.errors import InputError
from kamrules.messages import human, render_template, template_problems
from kamrules.ruleset import parse_ruleset, resolve

AS_OF = "2026-10-31"
RECEIVABLES = (
    Path(__file__).resolve().parents[1]
    / "plugins"
    / "kamrules-receivables"
    / "kamrules_receivables"
    / "receivables.yaml"
)


def msg(template, **values):
    return render_template(template, values, {}, AS_OF)


@pytest.mark.parametrize(
    "template, values, expected",
    [
        ("{n|activity|activities}", {"n": 1}, "1 activity"),
        ("{n|activity|activities}", {"n": 3}, "3 activities"),
        ("{n|activity|activities}", {"n": 0}, "0 activities"),
        ("{n|day}", {"n": 1}, "1 day"),
        ("{n|day}", {"n": 1234}, "1,234 days"),
        ("{n:.0f|day}", {"n": 1.4}, "1 day"),  # singular follows the number as printed
        ("{n:.0f|day}", {"n": 1.6}, "2 days"),
        ("{n|day}", {}, "n/a days"),
        ("{n|day} to {as_of}, {{literal}} {m:,.0f}", {"n": 2, "m": 1234.5}, "2 days to 2026-10-31, {literal} 1,234"),
    ],
)
def test_plural_fields(template, values, expected):
    assert template_problems(template) == []
    assert msg(template, **values) == expected


@pytest.mark.parametrize(
    "template, problem",
    [
        ("{n|}", "one or two word forms"),
        ("{n|a|b|c}", "one or two word forms"),
        ("{n:xyz|day}", "not a simple format"),
        ("{n.x|day}", "attribute or index access"),
    ],
)
def test_bad_plural_fields_are_refused(template, problem):
    assert any(problem in p for p in template_problems(template))


def test_bad_plural_field_in_a_rule_file_names_file_and_line(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(
        "ruleset: r\nrules:\n  - code: ABC101\n    name: x\n    when: ['n > 1']\n"
        "    message: '{n|a|b|c} as of {as_of}'\n    action: do it\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as e:
        parse_ruleset(f)
    text = str(e.value) + "\n" + "\n".join(map(str, e.value.problems))
    assert "r.yaml:6" in text and "word forms" in text


def _builtin_rules(pm):
    sets = resolve(builtin_ruleset_files(pm, []))
    sets.append(parse_ruleset(RECEIVABLES))
    return [r for rs in sets for r in rs.rules]


def _samples(book_store, pm) -> dict:
    """A real value of every fact of the generated book (the first account that has one)."""
    out: dict = {}
    with plan(book_store, CheckRequest(AS_OF, jobs=1), pm) as p:
        for facts in p.source.prepare().accounts():
            for k, v in facts.items():
                if v is not None and k not in out:
                    out[k] = v
        for row in p.source.portfolio():
            for k, v in row.items():
                out.setdefault(k, v)
    return out


PLURAL_AFTER_ONE = re.compile(r"(?<![\d.,:/-])1 (?!x\b)([a-z][a-z-]*(?: [a-z-]+)?)")
SINGULAR_AFTER_TWO = re.compile(
    r"(?<![\d.,:/-])2 (day|activity|visit|complaint|open complaint|invoice|order day|"
    r"recorded attitude|active decision-maker contact)\b(?!s)"
)


def test_every_builtin_message_is_grammatical_singular_and_plural(book_store, pm):
    samples = _samples(book_store, pm)
    rules = _builtin_rules(pm)
    assert len(rules) > 30
    for rule in rules:
        fields = set(rule.message_fields) - {"as_of"}
        for n in (1, 2):
            values = {}
            for f in fields:
                sample = samples.get(f, 0.5)
                values[f] = n if isinstance(sample, (int, float)) and not isinstance(sample, bool) else sample
            thresholds = {t: n for t in rule.thresholds}
            text = render_template(rule.message, values, thresholds, AS_OF)
            assert "(s)" not in text and "n/a" not in text, (rule.code, text)
            if n == 1:
                for m in PLURAL_AFTER_ONE.finditer(text):
                    word = m.group(1).split()[-1] if m.group(1).startswith("active ") else m.group(1).split()[0]
                    assert not (word.endswith("s") and word not in ("is", "has", "was")), (rule.code, text)
            else:
                assert not SINGULAR_AFTER_TWO.search(text), (rule.code, text)


def test_messages_that_were_untrue_or_garbled(pm):
    rules = {r.name: r for r in _builtin_rules(pm)}
    single = render_template(rules["single_threaded"].message, {"missing_channels": "technical"}, {}, AS_OF)
    assert "technical" in single and "only the KA manager connects the two sides" not in single
    told = render_template(
        rules["no_complaint_channel"].message,
        {"complaint_channel_state": "a complaint channel the client has not been told of"},
        {},
        AS_OF,
    )
    assert told.startswith(
        "this key account has a complaint channel the client has not been told of as of 2026-10-31: "
    )
    skipped = render_template(
        rules["stage_skipped"].message,
        {"pipeline_stage": "proposal", "skipped_stages": "analysis and visit"},
        {},
        AS_OF,
    )
    assert "stage(s)" not in skipped and "without going through analysis and visit before the proposal" in skipped


def test_actions_follow_the_situation(pm):
    rules = {r.name: r for r in _builtin_rules(pm)}
    ratio = rules["concession_ratio"]
    th = ratio.variants()[0].thresholds
    assert "renegotiate the rebate scale" in ratio.action_for({"uncommitted_concessions_12m": 0.0}, th)
    assert ratio.action_for({"uncommitted_concessions_12m": 5000.0}, th).startswith("Tie further rebates")
    net = rules["negative_net_margin"]
    assert "follow-on business" in net.action_for({"orders_12m": 0}, {"limit": 0})
    assert net.action_for({"orders_12m": 3}, {"limit": 0}).startswith("Rework the terms")
    star = rules["rising_star_unattended"]
    assert "give this account an owner" not in star.action_for({"owner": "王磊"}, {}).lower()
    assert star.action_for({"owner": None}, {}).startswith("Give this account an owner")


def test_action_list_is_validated(tmp_path):
    head = "ruleset: r\nrules:\n  - code: ABC101\n    name: x\n    when: ['n > 1']\n    message: 'm {n}'\n"
    good = tmp_path / "good.yaml"
    good.write_text(
        head + "    action:\n      - when: 'n > 5'\n        text: big\n      - text: small\n", encoding="utf-8"
    )
    r = parse_ruleset(good).rules[0]
    assert (r.action_for({"n": 9}, {}), r.action_for({"n": 2}, {}), r.action) == ("big", "small", "small")
    assert r.to_dict()["actions"] == [{"when": "n > 5", "text": "big"}]
    for body, problem in [
        ("    action:\n      - when: 'n > 5'\n        text: big\n", "the last action has a when"),
        ("    action:\n      - text: a\n      - text: b\n", "is not the last"),
        ("    action:\n      - when: 'n >'\n        text: a\n      - text: b\n", "condition"),
        ("    action: []\n", "empty list"),
        ("    action:\n      - when: 'n > 1'\n        txt: a\n      - text: b\n", "unknown key 'txt'"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(head + body, encoding="utf-8")
        with pytest.raises(InputError) as e:
            parse_ruleset(bad)
        text = "\n".join(map(str, e.value.problems))
        assert problem in text and "bad.yaml:" in text, text


@pytest.mark.parametrize(
    "value, text",
    [
        (10414839.430000002, "10,414,839"),
        (5323160.0, "5,323,160"),
        (0.04410266, "0.0441"),
        (31.456, "31.46"),
        (2.5, "2.5"),
        (7, "7"),
        (12345, "12,345"),
        (None, "none"),
        (True, "yes"),
        ("2026-10-31", "2026-10-31"),
        (-1887022.42, "-1,887,022"),
    ],
)
def test_human_numbers(value, text):
    assert human(value) == text


def test_explain_and_alerts_show_print_numbers_for_people(book_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("KAMRULES_CONFIG", "KAMRULES_DB"):
        monkeypatch.delenv(var, raising=False)
    path = str(book_store.path)
    acc = book_store.conn.execute(
        "SELECT account_id FROM orders GROUP BY account_id ORDER BY SUM(amount) DESC LIMIT 1"
    ).fetchone()[0]
    book_store.close()
    run = lambda *a: CliRunner().invoke(cli, ["--db", path, *a], catch_exceptions=False)  # noqa: E731
    ex = run("explain", acc, "--as-of", AS_OF)
    assert ex.exit_code == 0, ex.output
    for bad in (r"\d\.\d{7,}", r"e\+0\d", r"= missing", r"= None", r"\bNone\b"):
        assert not re.search(bad, ex.stdout), (bad, ex.stdout)
    assert re.search(r"revenue_12m\s+\d{1,3}(,\d{3})+\n", ex.stdout)
    run("check", "--as-of", AS_OF, "-j", "1", "--format", "jsonl")
    listed = run("alerts", "list", "--format", "json")
    import json

    fp = next(r["fingerprint"] for r in json.loads(listed.stdout) if r["code"] == "KAM101")
    shown = run("alerts", "show", fp)
    assert shown.exit_code == 0, shown.output
    for bad in (r"\d\.\d{7,}", r"e\+0\d", r"\bNone\b"):
        assert not re.search(bad, shown.stdout), (bad, shown.stdout)
    assert re.search(r"revenue_12m: \d{1,3}(,\d{3})+", shown.stdout)
