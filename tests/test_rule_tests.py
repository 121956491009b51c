"""`kamrules test`: the test-file format (strict, with line numbers), matching, reports, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kamrules.alerts import Alert
from kamrules.errors import InputError
from kamrules.plugins import make_plugin_manager
from kamrules.store import collect_tables
from kamrules.testing import ABSENT, evaluate, load_test_file, render_text, run_tests, values_match

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tables():
    return collect_tables(make_plugin_manager(load_entry_points=False))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def kamrules(*args, cwd=None, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "kamrules", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=180,
    )


def problems_of(path, tables) -> list[str]:
    with pytest.raises(InputError) as e:
        load_test_file(path, tables)
    return [str(p) for p in e.value.problems]


# -- the format ------------------------------------------------------------------
def test_a_valid_file_loads_into_cases(tmp_path, tables):
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        select: KAM1
        book:
          accounts:
            - {id: 007, name: 华东电气集团, tier: key, owner: 王磊, created_on: 2020-01-05}
        cases:
          - name: first
            expect:
              - {code: KAM101, account: 007, severity: critical, message: "23%", evidence: {concession_ratio: 0.23}}
            quiet: [8, {account: "009", code: KAM102}]
          - name: second
            as_of: 2026-09-30
            book:
              orders:
                - {id: O1, account_id: 007, date: 2026-01-15, amount: 1e5}
            expect:
              - {code: KAM510, account: null}
    """,
    )
    tf = load_test_file(f, tables)
    first, second = tf.cases
    assert (first.name, first.line, first.as_of, first.select) == ("first", 7, "2026-10-31", ("KAM1",))
    (rows,) = [first.book[1]["accounts"]]
    # values are kept as written: ids with leading zeros and dates stay text
    assert rows[0][0] == {
        "id": "007",
        "name": "华东电气集团",
        "tier": "key",
        "owner": "王磊",
        "created_on": "2020-01-05",
    }
    e = first.expect[0]
    assert (e.code, e.account, e.severity, e.message, e.evidence, e.line) == (
        "KAM101",
        "007",
        "critical",
        ("23%",),
        (("concession_ratio", 0.23),),
        9,
    )
    assert [(q.account, q.code) for q in first.quiet] == [("8", ""), ("009", "KAM102")]
    # a case's tables replace the file's table by table; the rest is inherited
    assert set(second.book[1]) == {"accounts", "orders"} and second.as_of == "2026-09-30"
    assert second.book[1]["orders"][0][0]["amount"] == "1e5"
    assert second.expect[0].account is None and second.expect[0].scope is ABSENT


def test_unknown_keys_are_errors_with_line_numbers(tmp_path, tables):
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        asof: 2026-10-31
        cases:
          - name: one
            expct: []
            expect:
              - code: KAM101
                acount: A1
            quiet:
              - {account: A1, kode: KAM1}
    """,
    )
    got = problems_of(f, tables)
    assert (
        f"{f}:2: unknown key 'asof' in the test file (expected one of: as_of, book, cases, ignore, min_severity, rulesets, select)"
        in got
    )
    assert any(p.startswith(f"{f}:5: unknown key 'expct' in a case") for p in got)
    assert any(
        p.startswith(
            f"{f}:8: unknown key 'acount' in an expected alert (expected one of: account, code, evidence, message, scope, severity)"
        )
        for p in got
    )
    assert any(p.startswith(f"{f}:10: unknown key 'kode' in a quiet entry") for p in got)


def test_unknown_tables_and_columns_of_inline_rows_are_errors(tmp_path, tables):
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        book:
          acounts:
            - {id: A1}
          orders:
            - {id: O1, account_id: A1, date: 2026-01-01, amout: 5}
            - just text
        cases:
          - {name: one, quiet: [A1]}
    """,
    )
    got = problems_of(f, tables)
    assert any(
        p.startswith(f"{f}:3: book: unknown table 'acounts' (expected one of: accounts, activities,") for p in got
    )
    assert any(
        p.startswith(
            f"{f}:6: book: orders: unknown column 'amout' (expected one of: id, account_id, date, amount, margin)"
        )
        for p in got
    )
    assert f"{f}:7: book: orders: a row must be a mapping of column: value" in got


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            "cases:\n  - {name: x, quiet: [A1]}\n",
            "{f}:2: no as_of: give `as_of: YYYY-MM-DD` in the case or at the top of the file",
        ),
        (
            "as_of: 2026-13-01\ncases:\n  - {name: x, quiet: [A1]}\n",
            "{f}:1: as_of: '2026-13-01' is not a date (expected YYYY-MM-DD)",
        ),
        (
            "as_of: 2026-10-31\ncases:\n  - {quiet: [A1]}\n",
            "{f}:3: a case needs `name:` (a short sentence saying what it proves)",
        ),
        (
            "as_of: 2026-10-31\ncases:\n  - {name: x}\n",
            "{f}:3: a case must expect something: give `expect:` alerts and/or `quiet:` accounts",
        ),
        (
            "as_of: 2026-10-31\ncases:\n  - {name: x, quiet: [A1]}\n  - {name: x, quiet: [A2]}\n",
            "{f}:4: duplicate case name 'x' (first at line 3; expected unique names)",
        ),
        (
            "as_of: 2026-10-31\ncases:\n  - name: x\n    expect:\n      - {code: KAM101, severity: fatal}\n",
            "{f}:5: severity: 'fatal' (expected one of: info, warning, critical)",
        ),
        (
            "as_of: 2026-10-31\ncases:\n  - name: x\n    expect:\n      - {account: A1}\n",
            "{f}:5: expect: each alert needs `code:` (a rule code such as KAM101)",
        ),
        ("as_of: 2026-10-31\ncases: []\n", "{f}:2: expected `cases:` with a list of at least one case"),
        ("as_of: 2026-10-31\nas_of: 2026-10-30\ncases: []\n", "{f}:2: duplicate key 'as_of' (expected valid YAML)"),
        (
            "as_of: 2026-10-31\ncases:\n  - name: x\n    quiet: [A1\n",
            "{f}:5: expected ',' or ']', but got '<stream end>' (expected valid YAML)",
        ),
        (
            "- just a list\n",
            "{f}:1: expected a mapping with a `cases:` list (see docs/plugins.md#testing-rules-kamrules-test)",
        ),
        (
            "as_of: 2026-10-31\nrulesets: [no_such_dir]\ncases:\n  - {name: x, quiet: [A1]}\n",
            "{f}:2: rulesets: no_such_dir: no such folder (paths are relative to the test file)",
        ),
        (
            "as_of: 2026-10-31\nbook: no_such_dir\ncases:\n  - {name: x, quiet: [A1]}\n",
            "{f}:2: book: no_such_dir: no such folder (expected a folder of data files, relative to the test file)",
        ),
        (
            "as_of: 2026-10-31\ncases:\n  - {name: x, quiet: [A1], exhaustive: maybe}\n",
            "{f}:3: exhaustive: expected true or false",
        ),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, tables, body, expected):
    f = tmp_path / "t.yaml"
    f.write_text(body, encoding="utf-8")
    assert expected.format(f=f) in problems_of(f, tables)


def test_cli_bad_test_file_exits_2_with_every_problem_and_no_traceback(tmp_path):
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        cases:
          - name: x
            expect: [{code: KAM101, sevrity: warning}]
          - {name: y}
    """,
    )
    proc = kamrules("test", f)
    assert proc.returncode == 2
    assert f"{f}:4: unknown key 'sevrity' in an expected alert" in proc.stderr
    assert f"{f}:5: a case must expect something" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- matching ----------------------------------------------------------------------
def alert(code, account, severity="warning", message="m", **evidence):
    return Alert(
        ruleset="r",
        code=code,
        rule="x",
        severity=severity,
        message=message,
        action="",
        as_of="2026-10-31",
        account_id=account,
        account_name=None if account is None else f"客户{account}",
        evidence=evidence,
    )


@pytest.mark.parametrize(
    "got, want, ok",
    [
        (0.2261, 0.23, True),
        (0.2349, 0.23, True),
        (0.2351, 0.23, False),
        (70.0, 70, True),
        (70.4, 70, False),
        (96.6666, 96.7, True),
        ("key", "key", True),
        (1, True, False),
        (True, True, True),
        (0.1, 0.1, True),
        (None, None, True),
    ],
)
def test_evidence_numbers_match_to_the_precision_written(got, want, ok):
    assert values_match(got, want) is ok


def test_evaluate_reports_missing_with_closest_unexpected_and_loud(tmp_path, tables):
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        cases:
          - name: x
            expect:
              - {code: KAM101, account: A1, severity: critical, message: "23%"}
              - {code: KAM101, account: A3}
              - {code: KAM205, account: A1}
            quiet: [A2, {account: A3, code: KAM3}]
    """,
    )
    (case,) = load_test_file(f, tables).cases
    fired = [
        alert("KAM101", "A1", "warning", "ratio 23% of revenue"),
        alert("KAM101", "A3"),
        alert("KAM101", "A4"),  # same code as expected, not expected: unexpected
        alert("KAM102", "A4"),  # other code: ignored (not exhaustive)
        alert("KAM301", "A3"),  # quiet A3 for KAM3*
        alert("KAM999", "A2"),  # quiet A2 entirely
    ]
    summary = type("S", (), {"skipped": [("KAM205", "no rows in orders")], "failures": []})()
    res = evaluate(case, fired, summary)
    assert res.status == "failed"
    (m1, m2) = res.missing
    assert m1[0].line == 5 and m1[1] is fired[0] and m1[2] == ["severity warning != critical"]
    assert m2[0].code == "KAM205" and m2[1] is None and m2[3] == "KAM205 was skipped: no rows in orders"
    assert res.unexpected == [fired[2]]
    assert [(q.account, a.code) for q, a in res.loud] == [("A3", "KAM301"), ("A2", "KAM999")]
    text = "\n".join(__import__("kamrules.testing", fromlist=["case_details"]).case_details(res))
    assert 'KAM101 on A1 critical, message contains "23%"  (line 5)' in text
    assert "closest: KAM101 on A1 warning: ratio 23% of revenue" in text
    assert "differs: severity warning != critical" in text
    assert "unexpected (fired but not expected):\n  KAM101 on A4 warning: m" in text
    # exhaustive: every other alert is unexpected too
    exhaustive = type(case)(**{**case.__dict__, "exhaustive": True, "quiet": ()})
    assert {a.code for a in evaluate(exhaustive, fired).unexpected} == {"KAM101", "KAM102", "KAM301", "KAM999"}


def test_each_expectation_takes_its_own_alert(tmp_path, tables):
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        cases:
          - name: x
            expect:
              - {code: KAM510}
              - {code: KAM510, account: null, message: owner 王磊}
    """,
    )
    (case,) = load_test_file(f, tables).cases
    one = [alert("KAM510", None, message="owner 王磊 holds 60%")]
    assert [m[0].line for m in evaluate(case, one).missing] == [5]
    two = one + [alert("KAM510", None, message="owner 李娜 holds 35%")]
    assert evaluate(case, two).status == "passed"


# -- running cases on real stores --------------------------------------------------
@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager(load_entry_points=False)


BOOK = """
    as_of: 2026-10-31
    select: [KAM101]
    book:
      accounts:
        - {id: A1, name: 华东电气集团, tier: key, owner: 王磊}
        - {id: A2, name: 小五金商行, tier: small, owner: 李娜}
      orders:
        - {id: O1, account_id: A1, date: 2026-03-15, amount: 1000000}
        - {id: O2, account_id: A2, date: 2026-03-15, amount: 100000}
      concessions:
        - {id: R1, account_id: A1, date: 2026-04-01, kind: rebate, amount: 250000}
        - {id: R2, account_id: A2, date: 2026-04-01, kind: rebate, amount: 5000}
"""


def test_the_core_rule_sets_own_behaviour_cases_are_pytest_items(pytester, tables):
    """Each case of rulesets/*/rules.test.yaml runs as its own pytest item (kamrules.testing.pytest_plugin)."""
    files = sorted((REPO / "rulesets").glob("*/rules.test.yaml"))
    assert {f.parent.name for f in files} >= {
        "over_subsidising",
        "neglected_small_clients",
        "missing_escalation_channels",
        "stalled_stages",
    }
    done = pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider", *map(str, files))
    collected = [line for line in done.outlines if "::" in line]
    for f in files:
        cases = [c.name for c in load_test_file(f, tables).cases]
        assert len(cases) >= 3, f
        assert [line.split("::", 1)[1] for line in collected if line.startswith(f"rulesets/{f.parent.name}/")] == cases


def test_cli_passing_run_exits_0_and_writes_junit(tmp_path):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: 25% is critical
        expect: [{code: KAM101, account: A1, severity: critical}]
        quiet: [A2]
      - name: nothing below the limit
        quiet: [A2]
    """,
    )
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    proc = kamrules("test", f, "--junit", junit, env={"KAMRULES_LOAD_PLUGINS": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == str(f)
    assert "  PASS  25% is critical [" in proc.stdout and "2 passed, 0 failed in" in proc.stdout
    root = ET.parse(junit).getroot()
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", "2", "0", "0")
    (suite,) = root
    assert [tc.get("name") for tc in suite] == ["25% is critical", "nothing below the limit"]
    assert [tc.get("line") for tc in suite] == ["15", "18"]


def test_cli_failing_run_exits_1_with_a_readable_diff(tmp_path):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: wrong severity and a loud account
        expect: [{code: KAM101, account: A1, severity: warning, message: "25.0%"}]
        quiet: [A1]
      - name: an alert that never comes
        expect: [{code: KAM101, account: A2}]
    """,
    )
    junit = tmp_path / "junit.xml"
    proc = kamrules("test", f, "--junit", junit, env={"KAMRULES_LOAD_PLUGINS": ""})
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "  FAIL  wrong severity and a loud account" in out and f"({f}:15)" in out
    assert (
        'missing (expected but did not fire):\n          KAM101 on A1 warning, message contains "25.0%"  (line 16)'
        in out
    )
    assert "closest: KAM101 on A1 critical: concessions 250,000 = 25.0% of revenue 1,000,000" in out
    assert "differs: severity critical != warning" in out
    assert "not quiet:\n          A1 (line 17): KAM101 on A1 critical" in out
    assert "no KAM101 alert fired on A2" in out
    assert out.rstrip().splitlines()[-1].startswith("0 passed, 2 failed in")
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert [x.get("message") for x in failures] == [
        "1 missing, 0 unexpected, 1 not quiet",
        "1 missing, 1 unexpected, 0 not quiet",
    ]
    assert "differs: severity critical != warning" in failures[0].text


def test_cli_json_format(tmp_path):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: one
        expect: [{code: KAM101, account: A1, severity: critical}]
        exhaustive: true
    """,
    )
    proc = kamrules("test", f, "--format", "json", env={"KAMRULES_LOAD_PLUGINS": ""})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["passed"], data["failed"], data["errors"], data["files"]) == (1, 0, 0, [str(f)])
    (case,) = data["cases"]
    assert (case["name"], case["status"], case["alerts"], case["missing"], case["unexpected"]) == (
        "one",
        "passed",
        1,
        [],
        [],
    )


def test_a_book_folder_is_imported_with_the_real_importer_and_inline_tables_replace_its_files(tmp_path, pm):
    data = tmp_path / "book"
    data.mkdir()
    (data / "accounts.csv").write_bytes(
        "id,name,tier,owner\nA1,华东电气集团,key,王磊\nA2,小五金商行,small,李娜\n".encode("gbk")
    )
    (data / "orders.csv").write_text(
        "id,account_id,date,amount\nO1,A1,2026-03-15,1000000\nO2,A2,2026-03-15,100000\n", encoding="utf-8-sig"
    )
    (data / "concessions.jsonl").write_text(
        '{"id": "R1", "account_id": "A1", "date": "2026-04-01", "kind": "rebate", "amount": 150000}\n', encoding="utf-8"
    )
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        select: [KAM101]
        book: book
        cases:
          - name: from the folder
            expect: [{code: KAM101, account: A1, severity: warning}]
          - name: the folder's concessions replaced inline
            book:
              concessions:
                - {id: R9, account_id: A2, date: 2026-04-01, kind: rebate, amount: 30000}
            expect: [{code: KAM101, account: A2, severity: critical}]
            quiet: [A1]
    """,
    )
    run = run_tests([f], pm=pm)
    assert run.ok and run.passed == 2, render_text(run)


def test_a_book_the_importer_refuses_is_exit_2_at_the_row_in_the_test_file(tmp_path):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: bad rows
        book:
          orders:
            - {id: O1, account_id: A1, date: 2026-03-15, amount: 1000000}
            - {id: O2, account_id: A9, date: 2026-03-15, amount: 一百万}
        quiet: [A2]
    """,
    )
    proc = kamrules("test", f, env={"KAMRULES_LOAD_PLUGINS": ""})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "  ERROR bad rows" in proc.stdout
    assert f"{f}:19: book: orders: amount: '一百万' is not a number" in proc.stdout
    assert f"{f}:19: book: orders: account_id: 'A9' is not a known accounts.id" in proc.stdout
    assert "0 passed, 0 failed, 1 errors" in proc.stdout


def test_rulesets_folder_select_and_min_severity_apply_per_case(tmp_path, pm):
    tuned = tmp_path / "my_rules"
    tuned.mkdir()
    core = (REPO / "rulesets" / "over_subsidising" / "rules.yaml").read_text(encoding="utf-8")
    assert "limit: {warning: 0.10, critical: 0.20}" in core
    (tuned / "over_subsidising.yaml").write_text(
        core.replace("limit: {warning: 0.10, critical: 0.20}", "limit: {warning: 0.30, critical: 0.50}"),
        encoding="utf-8",
    )
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: the built-in limits
        expect: [{code: KAM101, account: A1, severity: critical, evidence: {limit: 0.2}}]
      - name: a tuned copy replaces the built-in rule set by name
        rulesets: [my_rules]
        quiet: [{account: A1, code: KAM101}]
      - name: min_severity hides what is below it
        select: [KAM101, KAM102]
        min_severity: critical
        expect:
          - {code: KAM101, account: A1, severity: critical}
          - {code: KAM102, account: A1, severity: critical}
        quiet: [A2]          # its KAM102 (5% uncommitted) is only a warning
        exhaustive: true
      - name: without it the warning shows
        select: [KAM102]
        expect:
          - {code: KAM102, account: A2, severity: warning, evidence: {uncommitted_ratio: 0.05}}
          - {code: KAM102, account: A1, severity: critical}
    """,
    )
    run = run_tests([f], pm=pm)
    assert run.ok and run.passed == 4, render_text(run)


def test_a_folder_without_test_files_is_an_error(tmp_path, pm):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no test files in this folder"):
        run_tests([tmp_path / "empty"], pm=pm)


def test_codes_no_loaded_rule_has_are_errors_in_the_test_file(tmp_path, pm):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: typo
        expect: [{code: KAM1O1, account: A1}]
        quiet: [{account: A2, code: XYZ}]
    """,
    )
    with pytest.raises(InputError) as e:
        run_tests([f], pm=pm)
    got = [str(p) for p in e.value.problems]
    assert got[0].startswith(f"{f}:16: expect: no loaded rule has the code 'KAM1O1'; did you mean KAM101?")
    assert got[1] == f"{f}:17: quiet: no loaded rule code starts with 'XYZ'"


def test_verbose_lists_what_fired_in_passing_cases(tmp_path):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: one
        expect: [{code: KAM101, account: A1}]
    """,
    )
    proc = kamrules("test", f, "-v", env={"KAMRULES_LOAD_PLUGINS": ""})
    assert proc.returncode == 0, proc.stderr
    assert "  PASS  one [" in proc.stdout
    assert "        fired (1):\n          KAM101 on A1 critical: concessions 250,000 = 25.0% of revenue" in proc.stdout


def test_quiet_by_code_alone_covers_every_account(tmp_path, pm):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: no KAM101 anywhere
        quiet: [{code: KAM101}]
      - name: needs something
        quiet: [{}]
    """,
    )
    with pytest.raises(InputError) as e:
        run_tests([f], pm=pm)
    assert f"{f}:18: quiet: needs `account:`, `code:` or both" in [str(p) for p in e.value.problems]
    f = write(
        tmp_path / "t2.yaml",
        BOOK
        + """
    cases:
      - name: no KAM101 anywhere
        quiet: [{code: KAM101}]
    """,
    )
    run = run_tests([f], pm=pm)
    (case,) = run.cases
    assert case.status == "failed" and [(q.describe(), a.account_id) for q, a in case.loud] == [
        ("any account KAM101", "A1")
    ]


def test_portfolio_alerts_match_by_scope(tmp_path, tables):
    f = write(
        tmp_path / "t.yaml",
        """
        as_of: 2026-10-31
        cases:
          - name: per owner
            expect:
              - {code: KAM510, account: null, scope: 王磊}
    """,
    )
    (case,) = load_test_file(f, tables).cases

    def portfolio_alert(scope):
        return Alert(
            ruleset="r",
            code="KAM510",
            rule="x",
            severity="warning",
            message="m",
            action="",
            as_of="2026-10-31",
            scope_key=scope,
        )

    li, wang = portfolio_alert("李娜"), portfolio_alert("王磊")
    res = evaluate(case, [li])
    assert (
        res.missing[0][2] == ["scope '李娜' != '王磊'"]
        and "KAM510 on the portfolio scope '王磊'" in res.missing[0][0].describe()
    )
    assert evaluate(case, [li, wang]).unexpected == [li]


def test_an_empty_table_in_a_case_empties_it_and_its_rules_are_skipped(tmp_path, pm):
    f = write(
        tmp_path / "t.yaml",
        BOOK
        + """
    cases:
      - name: no concessions at all
        book:
          concessions: []
        expect: [{code: KAM101, account: A1}]
    """,
    )
    run = run_tests([f], pm=pm)
    (case,) = run.cases
    assert case.status == "failed"
    (missing,) = case.missing
    assert missing[3].startswith("KAM101 was skipped: ") and "concessions" in missing[3]
    assert "KAM101 was skipped" in render_text(run)
