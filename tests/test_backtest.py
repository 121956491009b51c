"""kamrules backtest: the rule sets at every date of a range, read-only, equal to check at each date; --compare."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamrules.backtest import backtest, date_range, open_read_only, parse_every
from kamrules.cli import cli
from kamrules.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
DATES = ["2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31"]


def run(args, db, plugins=None):
    base = ["--plugins-dir", str(plugins)] if plugins else []
    return CliRunner().invoke(
        cli, base + ["--db", str(db)] + args, env={"KAMRULES_LOAD_PLUGINS": ""}, catch_exceptions=False
    )


def dump(db) -> dict:
    c = sqlite3.connect(str(db))
    try:
        names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: c.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    finally:
        c.close()


def digest(db) -> str:
    return hashlib.sha256(Path(db).read_bytes()).hexdigest()


@pytest.fixture
def db(book_store):
    path = book_store.path
    book_store.close()
    return path


# -- dates -------------------------------------------------------------------------------------------


def test_date_ranges():
    assert date_range("2026-08-01", "2026-08-29", "week") == [
        "2026-08-01",
        "2026-08-08",
        "2026-08-15",
        "2026-08-22",
        "2026-08-29",
    ]
    assert date_range("2026-08-01", "2026-08-28", "week")[-1] == "2026-08-22"  # the end is a bound, not a date added
    assert date_range("2026-01-31", "2026-05-31", "month") == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
    ]
    assert date_range("2026-01-30", "2026-04-30", "month") == ["2026-01-30", "2026-02-28", "2026-03-30", "2026-04-30"]
    assert date_range("2026-09-30", "2026-12-31", "month") == ["2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31"]
    assert date_range("2026-10-01", "2026-10-10", "3d") == ["2026-10-01", "2026-10-04", "2026-10-07", "2026-10-10"]
    assert date_range("2026-10-01", "2026-10-01", "week") == ["2026-10-01"]
    assert (
        parse_every("week") == ("days", 7)
        and parse_every("14d") == ("days", 14)
        and parse_every("month") == ("months", 1)
    )
    for bad in ("weekly", "0d", "d", "-3d", "1.5d", ""):
        with pytest.raises(InputError, match="--every"):
            parse_every(bad)
    with pytest.raises(InputError, match="after --to"):
        date_range("2026-10-31", "2026-10-01", "week")
    with pytest.raises(InputError, match="more than"):
        date_range("2000-01-01", "2026-10-01", "1d")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--from", "2026-10-31", "--to", "2026-10-01"], "is after --to"),
        (["--from", "2026-10-01", "--to", "2026-10-31", "--every", "fortnight"], "--every 'fortnight'"),
        (["--from", "31/10/2026"], "is not a date"),
        (["--from", "2026-10-01", "--to", "2026-10-31", "--ruleset", "nope"], "unknown rule set"),
        (["--from", "2026-10-01", "--to", "2026-10-31", "--format", "xml"], "xml"),
    ],
)
def test_bad_usage_is_exit_2_without_traceback(db, args, words):
    before = digest(db)
    r = run(["backtest"] + args, db)
    assert r.exit_code == 2, r.output
    assert words in r.stderr and "Traceback" not in r.output and r.stdout == ""
    assert digest(db) == before


def test_an_empty_or_missing_or_old_store_is_exit_2(tmp_path, pm):
    from kamrules.migrations import MIGRATIONS
    from kamrules.store import Store

    r = run(["backtest", "--from", "2026-10-01", "--to", "2026-10-31"], tmp_path / "none.db")
    assert r.exit_code == 2 and "no store here" in r.stderr and not (tmp_path / "none.db").exists()
    Store.open(tmp_path / "empty.db", pm=pm).close()
    r = run(["backtest", "--from", "2026-10-01", "--to", "2026-10-31"], tmp_path / "empty.db")
    assert r.exit_code == 2 and "no accounts" in r.stderr
    Store.open(tmp_path / "old.db", pm=pm, migrations=[m for m in MIGRATIONS if m[0] <= 2]).close()
    before = digest(tmp_path / "old.db")
    r = run(["backtest", "--from", "2026-10-01", "--to", "2026-10-31"], tmp_path / "old.db")
    assert r.exit_code == 2 and "schema version 2" in r.stderr and "kamrules init" in r.stderr
    assert digest(tmp_path / "old.db") == before  # not migrated behind the user's back


# -- the alerts are check's ----------------------------------------------------------------------------


def test_alerts_at_each_date_are_exactly_checks(db):
    r = run(["backtest", "--from", DATES[0], "--to", DATES[-1], "--every", "month", "--format", "jsonl"], db)
    assert r.exit_code == 0, r.output
    got: dict[str, list] = {}
    for line in r.stdout.splitlines():
        a = json.loads(line)
        got.setdefault(a["as_of"], []).append(a)
    assert list(got) == DATES  # dates in order, each with alerts on this book
    for d in DATES:
        c = run(["check", "--as-of", d, "--format", "jsonl", "--no-history", "--fail-on", "never"], db)
        assert c.exit_code == 0
        assert got[d] == [json.loads(x) for x in c.stdout.splitlines()], d  # same alerts, same order, same fields
    assert len({json.dumps(v, sort_keys=True) for v in got.values()}) == len(DATES)  # the dates really differ
    assert "backtest: date 1/4 (2026-07-31)" in r.stderr and "backtest: date 4/4 (2026-10-31)" in r.stderr


def test_selection_options_are_checks(db):
    args = ["--select", "KAM1", "--select", "KAM3", "--ignore", "KAM104", "--min-severity", "warning"]
    r = run(
        ["backtest", "--from", "2026-09-30", "--to", "2026-10-31", "--every", "31d", "--format", "jsonl", *args], db
    )
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines and {a["code"][:4] for a in lines} <= {"KAM1", "KAM3"} and all(a["code"] != "KAM104" for a in lines)
    assert all(a["severity"] != "info" for a in lines)
    for d in ("2026-09-30", "2026-10-31"):
        c = run(["check", "--as-of", d, "--format", "jsonl", "--no-history", "--fail-on", "never", *args], db)
        assert [a for a in lines if a["as_of"] == d] == [json.loads(x) for x in c.stdout.splitlines()]


def test_new_resolved_and_health_against_the_library(db, pm):
    from kamrules.check import run_check
    from kamrules.health import score_accounts
    from kamrules.store import Store

    store = open_read_only(db, pm)
    results = list(backtest(store, DATES, pm=pm, jobs=1))
    store.close()
    with Store.open(db, pm=pm) as s:
        accounts = [
            dict(id=r[0], tier=r[1], segment=r[2]) for r in s.conn.execute("SELECT id, tier, segment FROM accounts")
        ]
        prev = None
        for r in results:
            c = run_check(s, as_of=r.as_of, jobs=1)
            assert [a.to_dict() for a in r.alerts] == [a.to_dict() for a in c.alerts]
            fps = {a.fingerprint for a in c.alerts}
            if prev is None:
                assert r.new is None and r.resolved is None
            else:
                assert {a.fingerprint for a in r.new} == fps - prev and {
                    a.fingerprint for a in r.resolved
                } == prev - fps
            prev = fps
            from kamrules.check import load_rulesets

            scores = score_accounts(c.alerts, accounts, skipped=c.summary.skipped, rulesets=load_rulesets(s, pm))
            expected = {}
            for x in scores:
                expected[x.grade] = expected.get(x.grade, 0) + 1
            assert {g: n for g, n in r.grades.items() if n} == expected and sum(r.grades.values()) == 200
    assert any(r.new for r in results[1:]) and any(r.resolved for r in results[1:])


# -- read-only -----------------------------------------------------------------------------------------


def test_backtest_writes_nothing(db):
    assert run(["check", "--as-of", "2026-09-30", "--fail-on", "never"], db).exit_code == 0  # history, a run, scores
    tables, before = dump(db), digest(db)
    assert tables["runs"] and tables["alert_history"] and tables["health_scores"]
    for fmt in ("table", "json", "jsonl", "csv"):
        r = run(["backtest", "--from", "2026-09-01", "--to", "2026-10-31", "--every", "month", "--format", fmt], db)
        assert r.exit_code == 0, r.output
    assert dump(db) == tables and digest(db) == before
    assert not Path(str(db) + "-journal").exists()


def test_the_store_is_opened_read_only(db, pm):
    store = open_read_only(db, pm)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.conn.execute("INSERT INTO runs (as_of, started, finished, complete) VALUES ('x', 'x', 'x', 1)")
        store.conn.execute("CREATE TEMP TABLE t (x)")  # what fact providers need still works
    finally:
        store.close()


# -- outputs -----------------------------------------------------------------------------------------


def test_table_json_and_csv(db, tmp_path):
    r = run(["backtest", "--from", "2026-09-30", "--to", "2026-10-31", "--every", "month"], db)
    assert r.exit_code == 0
    out = r.stdout
    assert out.startswith("backtest 2026-09-30 to 2026-10-31 every month: 2 dates, 200 accounts")
    assert "alerts and health (accounts per grade) at each date" in out and "by rule set" in out
    for head in ("critical", "warning", "info", "new", "resolved", "healthy", "watch", "at risk"):
        assert head in out
    data = json.loads(
        run(
            ["backtest", "--from", "2026-09-30", "--to", "2026-10-31", "--every", "month", "--format", "json"], db
        ).stdout
    )
    assert [d["as_of"] for d in data] == ["2026-09-30", "2026-10-31"]
    assert data[0]["new"] is None and isinstance(data[1]["new"], int)
    assert (
        data[1]["summary"]["alerts"]
        == len(data[1]["alerts"])
        == sum(sum(v.values()) for v in data[1]["by_ruleset"].values())
    )
    assert sum(data[1]["health"].values()) == 200
    # the table's first rows are the json's numbers
    line = next(x for x in out.splitlines() if x.startswith("2026-10-31"))
    assert line.split()[1:7] == [
        str(data[1]["summary"]["alerts"]),
        *(str(data[1]["summary"]["by_severity"][s]) for s in ("critical", "warning", "info")),
        str(data[1]["new"]),
        str(data[1]["resolved"]),
    ]
    f = tmp_path / "bt.csv"
    r = run(
        ["backtest", "--from", "2026-09-30", "--to", "2026-10-31", "--every", "month", "--format", "csv", "-o", str(f)],
        db,
    )
    assert r.exit_code == 0 and r.stdout == "" and "wrote the backtest of 2 dates" in r.stderr
    rows = list(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8-sig"))))
    dates = [x for x in rows if x["kind"] == "date"]
    assert [x["as_of"] for x in dates] == ["2026-09-30", "2026-10-31"] and dates[1]["alerts"] == str(
        data[1]["summary"]["alerts"]
    )
    assert int(dates[1]["healthy"]) == data[1]["health"]["healthy"]
    by_rs = [x for x in rows if x["kind"] == "ruleset" and x["as_of"] == "2026-10-31"]
    assert sum(int(x["alerts"]) for x in by_rs) == data[1]["summary"]["alerts"]


# -- failures ------------------------------------------------------------------------------------------

FLAKY = """
import pathlib
from kamrules import hookimpl
from kamrules.facts import FactProvider

@hookimpl
def register_facts():
    # fails (malformed JSON) only for dates after 2026-10-01
    return [FactProvider(name="flaky", requires=("accounts",), facts=("bt_flag",),
        sql="SELECT id AS account_id, CASE WHEN :as_of > '2026-10-01' THEN json_extract('not json', '$') ELSE 1 END "
            "AS bt_flag FROM accounts")]

@hookimpl
def register_rulesets():
    return [pathlib.Path(__file__).with_name("flaky.yaml")]
"""

FLAKY_RULES = """\
ruleset: flaky
description: A rule on a provider that fails on some dates.
rules:
  - code: BT901
    name: flag
    severity: info
    when: ["bt_flag > 5"]
    message: "flag {bt_flag}"
    action: "None."
"""


def test_a_rule_failing_on_some_date_is_exit_3_and_names_the_date(db, tmp_path):
    plugins = tmp_path / "flaky"
    plugins.mkdir()
    (plugins / "flaky_plugin.py").write_text(FLAKY, encoding="utf-8")
    (plugins / "flaky.yaml").write_text(FLAKY_RULES, encoding="utf-8")
    r = run(
        ["backtest", "--from", "2026-09-30", "--to", "2026-10-31", "--every", "month", "--format", "jsonl"],
        db,
        plugins=plugins,
    )
    assert r.exit_code == 3, r.output
    assert "FAILED at 2026-10-31: fact provider flaky" in r.stderr and "FAILED at 2026-09-30" not in r.stderr
    assert {json.loads(x)["as_of"] for x in r.stdout.splitlines()} == {
        "2026-09-30",
        "2026-10-31",
    }  # the output is whole


# -- --compare -----------------------------------------------------------------------------------------


def tuned(tmp_path, old="limit: {warning: 0.10, critical: 0.20}", new="limit: {warning: 0.03, critical: 0.20}") -> Path:
    folder = tmp_path / "tuned"
    folder.mkdir()
    text = (ROOT / "rulesets" / "over_subsidising" / "rules.yaml").read_text(encoding="utf-8")
    assert text.count(old) == 1
    (folder / "over_subsidising.yaml").write_text(text.replace(old, new), encoding="utf-8")
    return folder


def test_compare_a_lowered_threshold_adds_alerts_of_that_rule_only(db, tmp_path, pm):
    folder = tuned(tmp_path)
    r = run(
        [
            "backtest",
            "--from",
            DATES[0],
            "--to",
            DATES[-1],
            "--every",
            "month",
            "--compare",
            str(folder),
            "--format",
            "json",
        ],
        db,
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rules = [x for d in data for x in d["compare"]["rules"]]
    assert rules and {x["code"] for x in rules} == {"KAM101"}
    assert sum(x["added"] for x in rules) > 0 and all(x["removed"] == 0 and x["changed"] == 0 for x in rules)
    # the added alerts are what check with the tuned folder fires and check without it does not
    for d in data:
        cur = run(["check", "--as-of", d["as_of"], "--format", "json", "--no-history", "--fail-on", "never"], db)
        new = run(
            [
                "check",
                "--as-of",
                d["as_of"],
                "--format",
                "json",
                "--no-history",
                "--fail-on",
                "never",
                "--rulesets",
                str(folder),
            ],
            db,
        )
        added = {a["fingerprint"] for a in json.loads(new.stdout)} - {a["fingerprint"] for a in json.loads(cur.stdout)}
        assert sorted(added) == sorted(fp for x in d["compare"]["rules"] for fp in x["added_fingerprints"])
        assert d["alerts"] == json.loads(cur.stdout)  # the current side is unchanged by --compare
    table = run(
        ["backtest", "--from", DATES[0], "--to", DATES[-1], "--every", "month", "--compare", str(folder)], db
    ).stdout
    assert "tuned rule sets (--compare)" in table and "KAM101" in table and "over the range: KAM101 +" in table
    jl = [
        json.loads(x)
        for x in run(
            [
                "backtest",
                "--from",
                DATES[0],
                "--to",
                DATES[-1],
                "--every",
                "month",
                "--compare",
                str(folder),
                "--format",
                "jsonl",
            ],
            db,
        ).stdout.splitlines()
    ]
    assert {a["code"] for a in jl if a.get("compare") == "added"} == {"KAM101"}


def test_compare_with_the_same_rules_shows_no_difference_and_bad_files_are_exit_2(db, tmp_path):
    same = tmp_path / "same"
    same.mkdir()
    shutil.copy(ROOT / "rulesets" / "over_subsidising" / "rules.yaml", same / "over_subsidising.yaml")
    r = run(["backtest", "--from", "2026-10-01", "--to", "2026-10-31", "--compare", str(same)], db)
    assert r.exit_code == 0 and "no difference: the tuned rule sets fire the same alerts at every date" in r.stdout
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "over_subsidising.yaml").write_text(
        (same / "over_subsidising.yaml")
        .read_text(encoding="utf-8")
        .replace("    severity: warning", "    severity: huge"),
        encoding="utf-8",
    )
    r = run(["backtest", "--from", "2026-10-01", "--to", "2026-10-31", "--compare", str(bad)], db)
    assert r.exit_code == 2 and "over_subsidising.yaml:" in r.stderr and r.stdout == "" and "Traceback" not in r.output
    r = run(["backtest", "--from", "2026-10-01", "--to", "2026-10-31", "--compare", str(tmp_path / "missing")], db)
    assert r.exit_code == 2 and "does not exist" in r.stderr
