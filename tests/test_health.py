"""Health scores: bounds and monotonicity (property tests), redistribution, tier profiles, `kamrules health`."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kamrules.alerts import SEVERITIES
from kamrules.cli import cli
from kamrules.health import Hit, compute, default_scorecard, score_account, score_accounts, to_int, trend
from kamrules.scorecard import Model

RULESETS = (
    "over_subsidising",
    "neglected_small_clients",
    "missing_escalation_channels",
    "stalled_stages",
    "receivables",
)
CODES = ("KAM101", "KAM102", "KAM201", "KAM301", "KAM304", "KAM401", "RCV101")
RAN = set(RULESETS)

hits = st.builds(Hit, st.sampled_from(RULESETS), st.sampled_from(CODES), st.just("r"), st.sampled_from(SEVERITIES))


@st.composite
def models(draw):
    p = sorted(draw(st.lists(st.floats(0, 1), min_size=3, max_size=3)))
    return Model(
        "m",
        {r: draw(st.floats(0, 100)) for r in RULESETS[:4]},
        draw(st.floats(0, 50)),
        dict(zip(SEVERITIES, p, strict=True)),
        draw(st.floats(0, 0.95)),
        {c: draw(st.floats(0, 3)) for c in CODES[:3]},
    )


def score(alerts, model):
    return to_int(compute(alerts, model, RAN)[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(hits, max_size=12), models())
def test_score_is_between_0_and_100(alerts, model):
    assert 0 <= score(alerts, model) <= 100
    raw, drivers, budgets, lost = compute(alerts, model, RAN)
    assert all(0 <= lost[r] <= budgets[r] + 1e-9 for r in lost)


@settings(max_examples=300, deadline=None)
@given(st.lists(hits, max_size=10), hits, models())
def test_adding_an_alert_never_raises_the_score(alerts, extra, model):
    assert compute(alerts + [extra], model, RAN)[0] <= compute(alerts, model, RAN)[0] + 1e-9
    assert score(alerts + [extra], model) <= score(alerts, model)


@settings(max_examples=300, deadline=None)
@given(st.lists(hits, min_size=1, max_size=10), st.data(), models())
def test_a_worse_severity_never_raises_the_score(alerts, data, model):
    i = data.draw(st.integers(0, len(alerts) - 1))
    h = alerts[i]
    worse = data.draw(st.sampled_from(SEVERITIES[SEVERITIES.index(h.severity) :]))
    changed = alerts[:i] + [Hit(h.ruleset, h.code, h.rule, worse)] + alerts[i + 1 :]
    assert compute(changed, model, RAN)[0] <= compute(alerts, model, RAN)[0] + 1e-9


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.sampled_from(RULESETS[:4]), st.sampled_from(("key", "mid", "small")))
def test_one_critical_weighs_more_than_any_number_of_infos(n, rs, tier):
    sc = default_scorecard()
    infos = [Hit(rs, f"KAM{900 + i}", "r", "info") for i in range(n)]
    crit = [Hit(rs, "KAM999", "r", "critical")]
    assert score_account("A", crit, sc, tier).score < score_account("A", infos, sc, tier).score


def test_no_alerts_scores_100_and_drivers_are_sorted():
    sc = default_scorecard()
    assert score_account("A", [], sc, "mid").score == 100
    s = score_account(
        "A",
        [
            Hit("over_subsidising", "KAM101", "concession_ratio", "critical"),
            Hit("stalled_stages", "KAM401", "stalled", "info"),
            Hit("over_subsidising", "KAM102", "uncommitted", "warning"),
        ],
        sc,
        "mid",
        ran=RULESETS[:4],
    )
    assert [d.code for d in s.drivers] == ["KAM101", "KAM102", "KAM401"]
    # base model: over_subsidising budget 30, critical 1.0 + warning 0.4 x 0.5 caps at the budget
    assert s.lost["over_subsidising"] == pytest.approx(30.0)
    assert s.lost["stalled_stages"] == pytest.approx(20 * 0.1)
    assert s.score == 68 and s.grade == "watch"
    assert sum(d.points for d in s.drivers) == pytest.approx(100 - 68, abs=0.2)


def test_skipped_rule_sets_do_not_count_and_their_weight_is_redistributed():
    sc = default_scorecard()
    alert = [Hit("over_subsidising", "KAM101", "concession_ratio", "warning")]
    full = score_account("A", alert, sc, "mid", ran=RULESETS[:4])
    # no orders: neglected_small_clients did not run; over_subsidising's budget grows from 30 to 30/80 of 100
    partial = score_account(
        "A", alert, sc, "mid", ran={"over_subsidising", "missing_escalation_channels", "stalled_stages"}
    )
    assert full.budgets["over_subsidising"] == pytest.approx(30.0)
    assert partial.budgets["over_subsidising"] == pytest.approx(37.5)
    assert "neglected_small_clients" not in partial.budgets
    assert sum(partial.budgets.values()) == pytest.approx(100.0)
    assert full.score == 88 and partial.score == 85


def test_score_accounts_reads_skipped_rules_through_the_rule_sets(pm, book_store):
    from kamrules.check import load_rulesets

    sets = [rs for rs in load_rulesets(book_store, pm) if rs.name in RULESETS]  # the budgets below are the four's
    a = {
        "ruleset": "over_subsidising",
        "code": "KAM101",
        "rule": "concession_ratio",
        "severity": "warning",
        "account_id": "A1",
    }
    accounts = [{"id": "A1", "tier": "mid"}, {"id": "A2", "tier": "mid"}]
    all_ran = score_accounts([a], accounts, rulesets=sets)
    skipped = [
        (r.code, "no rows in table activities") for rs in sets if rs.name == "neglected_small_clients" for r in rs.rules
    ]
    some_skipped = score_accounts([a], accounts, skipped=skipped, rulesets=sets)
    # over_subsidising's budget: its weight 30 over the weights of every rule set that ran (built-ins named in the
    # scorecard: 30 + 20 + 30 + 20; any further one: default_weight 10); a warning costs 0.4 of it
    total = 100 + 10 * (len(sets) - 4)
    assert [s.score for s in all_ran] == [round(100 - 0.4 * 100 * 30 / total), 100]
    assert some_skipped[0].score < all_ran[0].score and some_skipped[1].score == 100
    assert "neglected_small_clients" not in some_skipped[0].budgets


def test_profiles_per_tier_weigh_the_missing_executive_channel():
    sc = default_scorecard()
    exec_missing = [Hit("missing_escalation_channels", "KAM304", "no_executive_meeting", "warning")]
    key, mid, small = (score_account("A", exec_missing, sc, t, ran=RULESETS[:4]) for t in ("key", "mid", "small"))
    assert key.profile == "key_accounts" and small.profile == "small_accounts" and mid.profile == "base"
    assert key.score < mid.score < small.score


def test_trend_directions():
    assert trend(70, 80) == {"direction": "down", "change": -10, "previous": 80}
    assert trend(81, 79)["direction"] == "steady" and trend(78, 80)["direction"] == "steady"
    assert trend(83, 80)["direction"] == "up"
    assert trend(80, None) is None


# -- `kamrules health` end to end on a generated book ------------------------------------------------


def run(args, db):
    r = CliRunner().invoke(cli, ["--db", str(db)] + args, env={"KAMRULES_LOAD_PLUGINS": ""}, catch_exceptions=False)
    return r


@pytest.fixture
def db(book_store):
    path = book_store.path
    book_store.close()
    return path


def test_health_on_the_fly_says_so_and_records_nothing(db):
    import sqlite3

    r = run(["health", "--as-of", "2026-10-31", "--format", "json"], db)
    assert r.exit_code == 0, r.output
    assert "no recorded run as of 2026-10-31: scores computed now" in r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 200
    for k in ("account_id", "account_name", "owner", "score", "grade", "trend", "drivers"):
        assert k in rows[0]
    assert [x["score"] for x in rows] == sorted(x["score"] for x in rows)  # worst first
    assert rows[0]["score"] < 100 and rows[0]["drivers"] and rows[0]["main_driver"] == rows[0]["drivers"][0]
    c = sqlite3.connect(db)
    assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert c.execute("SELECT COUNT(*) FROM alert_history").fetchone()[0] == 0


def test_health_after_checks_uses_the_run_and_shows_the_trend(db):
    assert run(["check", "--as-of", "2026-09-30", "--fail-on", "never"], db).exit_code == 0
    assert run(["check", "--as-of", "2026-10-31", "--fail-on", "never"], db).exit_code == 0
    r = run(["health", "--as-of", "2026-10-31", "--format", "json", "--sort", "change"], db)
    assert r.exit_code == 0, r.output
    assert "scores of run 2" in r.stderr and "trend against run 1 as of 2026-09-30" in r.stderr
    rows = json.loads(r.stdout)
    assert all(x["trend"] in ("up", "down", "steady") for x in rows)
    assert all(x["change_30d"] == x["change"] for x in rows)  # run 1 is also the run ~30 days earlier
    changes = [x["change"] for x in rows]
    assert changes == sorted(changes) and min(changes) < -2
    # the same scores as computed on the fly
    fly = run(["health", "--as-of", "2026-10-31", "--format", "json"], db)
    assert {x["account_id"]: x["score"] for x in json.loads(fly.stdout)} == {x["account_id"]: x["score"] for x in rows}


def test_health_table_csv_output_file_and_summaries(db, tmp_path):
    r = run(["health", "--as-of", "2026-10-31"], db)
    assert r.exit_code == 0
    assert (
        "main driver" in r.stdout
        and "revenue at risk" in r.stdout
        and "whole book" in r.stdout
        and "有风险" in r.stdout
    )
    out = tmp_path / "h.csv"
    r = run(["health", "--as-of", "2026-10-31", "--format", "csv", "-o", str(out), "--tier", "key"], db)
    assert r.exit_code == 0 and f"to {out}" in r.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows and all(x["tier"] == "key" for x in rows)
    assert {"account_id", "score", "grade", "main_driver"} <= set(rows[0])


def test_health_filters_and_bad_usage(db):
    rows = json.loads(run(["health", "--as-of", "2026-10-31", "--format", "json"], db).stdout)
    owner = next(x["owner"] for x in rows if x["owner"])
    mine = json.loads(run(["health", "--as-of", "2026-10-31", "--format", "json", "--owner", owner], db).stdout)
    assert mine and all(x["owner"] == owner for x in mine)
    r = run(["health", "--as-of", "2026-10-31", "--owner", owner + "x"], db)
    assert r.exit_code == 2 and f"did you mean {owner!r}" in r.stderr and "Traceback" not in r.output
    bad = [x["grade"] for x in rows]
    r = run(["health", "--as-of", "2026-10-31", "--grade", "bad"], db)
    assert r.exit_code == 2 and "unknown grade 'bad'" in r.stderr
    crit = (
        json.loads(
            run(
                ["health", "--as-of", "2026-10-31", "--format", "json", "--grade", "at_risk", "--grade", "critical"], db
            ).stdout
            or "[]"
        )
        if {"at_risk", "critical"} & set(bad)
        else []
    )
    assert all(x["grade"] in ("at_risk", "critical") for x in crit)
    assert run(["health", "--sort", "name"], db).exit_code == 2


def test_health_with_a_bad_or_tuned_scorecard(db, tmp_path):
    from kamrules.scorecard import default_path

    bad = tmp_path / "bad.yaml"
    bad.write_text("scorecard: x\nweights: {over_subsidising: lots}\n", encoding="utf-8")
    r = run(["health", "--as-of", "2026-10-31", "--scorecard", str(bad)], db)
    assert r.exit_code == 2 and f"{bad}:2:" in r.stderr and "Traceback" not in r.output
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        default_path().read_text(encoding="utf-8").replace("warning: 0.4", "warning: 0.8"), encoding="utf-8"
    )
    base = {
        x["account_id"]: x["score"]
        for x in json.loads(run(["health", "--as-of", "2026-10-31", "--format", "json"], db).stdout)
    }
    tuned = {
        x["account_id"]: x["score"]
        for x in json.loads(
            run(["health", "--as-of", "2026-10-31", "--format", "json", "--scorecard", str(strict)], db).stdout
        )
    }
    assert all(tuned[a] <= base[a] for a in base) and any(tuned[a] < base[a] for a in base)


def test_health_on_an_empty_store_is_exit_2(tmp_path):
    from kamrules.store import Store

    Store.open(tmp_path / "e.db").close()
    r = run(["health"], tmp_path / "e.db")
    assert r.exit_code == 2 and "no accounts" in r.stderr


def test_explain_shows_how_the_score_was_computed(db):
    rows = json.loads(run(["health", "--as-of", "2026-10-31", "--format", "json"], db).stdout)
    worst = rows[0]
    r = run(["explain", worst["account_id"], "--as-of", "2026-10-31", "--format", "json"], db)
    h = json.loads(r.stdout)["health"]
    assert h["score"] == worst["score"] and h["grade"] == worst["grade"]
    assert [d["code"] for d in h["drivers"]] == [d["code"] for d in worst["drivers"]]
    text = run(["explain", worst["account_id"], "--as-of", "2026-10-31"], db).stdout
    assert (
        f"health: {worst['score']}/100" in text
        and "budget" in text
        and worst["drivers"][0]["code"] in text.split("health:")[1]
    )


# -- the score and trend beside the alerts: check's table and the digest --------------------------------


def _stored(db, as_of):
    import sqlite3

    c = sqlite3.connect(db)
    try:
        rid = c.execute("SELECT MAX(id) FROM runs WHERE as_of = ?", (as_of,)).fetchone()[0]
        return dict(c.execute("SELECT account_id, score FROM health_scores WHERE run_id = ?", (rid,)).fetchall())
    finally:
        c.close()


def test_check_table_shows_the_recorded_score_and_trend(db):
    import re

    plain = run(["check", "--as-of", "2026-09-30", "--fail-on", "never", "--no-history"], db)
    assert "· health" not in plain.stdout  # nothing recorded: no score shown (the golden tables stay as they are)
    first = run(["check", "--as-of", "2026-09-30", "--fail-on", "never"], db)
    second = run(["check", "--as-of", "2026-10-31", "--fail-on", "never"], db)
    s1, s2 = _stored(db, "2026-09-30"), _stored(db, "2026-10-31")
    shown = {
        m.group(1): (int(m.group(2)), m.group(3))
        for m in re.finditer(r"\((A\d+)\)  · health (\d+) [a-z ]+?(?: ([↑↓→][+-]?\d*))?$", second.stdout, re.M)
    }
    alerting = {m.group(1) for m in re.finditer(r"\((A\d+)\)", second.stdout)}
    assert shown and set(shown) == alerting  # every account with alerts, none without
    for acc, (score, arrow) in shown.items():
        assert score == s2[acc]  # the score the run recorded
        t = trend(s2[acc], s1[acc])
        assert arrow == (
            {"up": "↑", "down": "↓", "steady": "→"}[t["direction"]] + (f"{t['change']:+d}" if t["change"] else "")
        )
    assert any(a[1] != "→" for a in shown.values())  # some account really moved between the dates
    assert (
        "· health" in first.stdout and "→" not in first.stdout.split("· health", 1)[1].splitlines()[0]
    )  # no earlier run: no arrow


def test_the_digest_shows_each_accounts_score_and_trend(book_store, server):
    import datetime as dt

    from smtp_server import settings_for

    from kamrules.check import run_check
    from kamrules.lifecycle import record_and_notify

    s = settings_for(server.port, KAMRULES_EMAIL_DEFAULT_TO="ka-team@example.com")
    now = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
    record_and_notify(
        book_store, run_check(book_store, as_of="2026-09-30", jobs=1), notify=(), now=now - dt.timedelta(days=31)
    )
    result = run_check(book_store, as_of="2026-10-31", jobs=1)
    r = record_and_notify(book_store, result, notify=("email",), settings=s, pm=book_store.pm, now=now)
    assert r.sent > 0 and r.undelivered == 0
    s1, s2 = _stored(book_store.path, "2026-09-30"), _stored(book_store.path, "2026-10-31")
    seen = 0
    for m in server.received:
        text = m.message.get_body(("plain",)).get_content()
        html = m.message.get_body(("html",)).get_content()
        for acc in {a.account_id for a in result.alerts if a.account_id and f"({a.account_id})" in text}:
            t = trend(s2[acc], s1[acc])
            arrow = {"up": "↑", "down": "↓", "steady": "→"}[t["direction"]] + (
                f"{t['change']:+d}" if t["change"] else ""
            )
            grade = default_scorecard().grade_of(s2[acc]).en
            line = next(x for x in text.splitlines() if x.startswith("== ") and f"({acc})" in x)
            assert line.endswith(f"· health {s2[acc]} {grade} {arrow} =="), line
            assert f"health {s2[acc]} {grade} {arrow}" in html
            seen += 1
    assert seen >= 5
