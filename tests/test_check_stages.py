"""The check as stages (kamrules.check): CheckRequest, plan -> evaluate -> merge, and the keyword wrapper run_check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kamrules.check import CheckRequest, evaluate, merge, plan, run, run_check, user_rulesets
from kamrules.config import CheckSettings, Settings
from kamrules.errors import InputError
from kamrules.explain import explain_account

AS_OF = "2026-10-31"


def dicts(result):
    return [a.to_dict() for a in result.alerts]


def summary(result):
    return {k: v for k, v in result.summary.to_dict().items() if k != "seconds"}


def test_request_is_frozen_and_keeps_tuples():
    r = CheckRequest(AS_OF, select=["kam1"], ignore="KAM104", rulesets_dirs=(Path("mine"),))
    assert r.select == ("kam1",) and r.ignore == ("KAM104",) and r.rulesets == ()
    assert r.rulesets_dirs == (Path("mine"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.as_of = "2026-11-30"  # type: ignore[misc]
    assert hash(CheckRequest(AS_OF, select=("KAM1",))) == hash(CheckRequest(AS_OF, select=["KAM1"]))


def test_from_settings_takes_the_check_settings_unless_given(tmp_path):
    settings = Settings(
        rulesets=("rules", "/abs/rules"),
        source=str(tmp_path / "conf" / "kamrules.toml"),
        check=CheckSettings(select=("KAM1",), ignore=("KAM104",), min_severity="warning", jobs=3, plugin_timeout=7.5),
    )
    r = CheckRequest.from_settings(settings, AS_OF, rulesets_dirs=("cli_rules",))
    assert r.rulesets_dirs == (str(tmp_path / "conf" / "rules"), "/abs/rules", "cli_rules")
    assert (r.select, r.ignore, r.min_severity, r.jobs, r.plugin_timeout) == (("KAM1",), ("KAM104",), "warning", 3, 7.5)
    given = CheckRequest.from_settings(
        settings, AS_OF, select=("KAM2",), ignore=(), min_severity="info", jobs=0, wait=2
    )
    assert (given.select, given.ignore, given.min_severity, given.jobs, given.wait) == (
        ("KAM2",),
        ("KAM104",),
        "info",
        0,
        2,
    )
    plain = CheckRequest.from_settings(Settings(), AS_OF)
    assert plain == CheckRequest(AS_OF, plugin_timeout=600.0, jobs=0)
    assert user_rulesets(None, ("x",)) == ("x",)


def test_the_stages_give_what_run_and_run_check_give(book_store):
    request = CheckRequest(AS_OF, select=("KAM1", "KAM2"), ignore=("KAM205",), jobs=1, part_size=50)
    whole = run(book_store, request)
    with plan(book_store, request) as p:
        assert [rs.name for rs in p.chosen] == [rs.name for rs in p.sets]
        assert p.select == ("KAM1", "KAM2") and all(r.code.startswith(("KAM1", "KAM2")) for r in p.rules)
        assert "KAM205" not in {r.code for r in p.rules}
        ev = evaluate(p)
        assert len(ev.parts) == len(ev.results) >= 4  # 200 accounts in parts of 50
        staged = merge(p, ev)
    wrapped = run_check(book_store, AS_OF, select=["KAM1", "KAM2"], ignore=["KAM205"], jobs=1, part_size=50)
    assert whole.alerts and dicts(whole) == dicts(staged) == dicts(wrapped)
    assert summary(whole) == summary(staged) == summary(wrapped)
    assert whole.summary.select == ("KAM1", "KAM2") and whole.summary.codes


def test_plan_names_the_rules_skipped_for_want_of_data(book_store):
    book_store.conn.execute("DELETE FROM complaints")
    book_store.conn.commit()
    with plan(book_store, CheckRequest(AS_OF)) as p:
        skipped = dict(p.skipped)
        assert skipped["KAM306"] == "no rows in table complaints"
        assert not {r.code for r in p.runnable} & set(skipped)
        assert len(p.runnable) + len(p.skipped) == len(p.rules)
    assert dict(run(book_store, CheckRequest(AS_OF)).summary.skipped) == skipped


def test_plan_refuses_a_bad_request_before_reading_accounts(book_store):
    with pytest.raises(InputError, match="unknown rule set 'nope'"):
        plan(book_store, CheckRequest(AS_OF, rulesets=("nope",)))
    with pytest.raises(InputError, match="unknown severity"):
        plan(book_store, CheckRequest(AS_OF, min_severity="loud"))
    with pytest.raises(InputError, match="matches no rule"):
        run_check(book_store, AS_OF, select=("ZZZ",))


def test_explain_uses_the_plan_so_an_unknown_rule_set_is_refused(book_store):
    account = book_store.conn.execute("SELECT id FROM accounts ORDER BY id LIMIT 1").fetchone()[0]
    ex = explain_account(book_store, account, AS_OF, rulesets=("stalled_stages",))
    assert ex.verdicts and {v.ruleset for v in ex.verdicts} == {"stalled_stages"}
    with pytest.raises(InputError, match="unknown rule set 'stalled_stage'"):
        explain_account(book_store, account, AS_OF, rulesets=("stalled_stage",))


def test_output_formats_are_the_librarys(book_store):
    from kamrules.formats import output_formats
    from kamrules_plugins import check_commands

    formats = output_formats(book_store.pm)
    assert {"table", "json", "jsonl", "csv", "markdown"} <= set(formats)
    assert check_commands.output_formats is output_formats
    result = run_check(book_store, AS_OF, select=("KAM4",))
    lines = "".join(formats["jsonl"].render(result.alerts, result.summary)).splitlines()
    assert len(lines) == len(result.alerts) > 0
