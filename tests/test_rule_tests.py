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
from kamrules.testing import ABSENT, evaluate, load_test_file, render_junit, render_text, run_tests, values_match

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
    return subprocess.run([sys.executable, "-m", "kamrules", *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, encoding="utf-8", timeout=180)


def problems_of(path, tables) -> list[str]:
    with pytest.raises(InputError) as e:
        load_test_file(path, tables)
    return [str(p) for p in e.value.problems]


# -- the format ------------------------------------------------------------------
def test_a_valid_file_loads_into_cases(tmp_path, tables):
    f = write(tmp_path / "t.yaml", """
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
    """)
    tf = load_test_file(f, tables)
    first, second = tf.cases
    assert (first.name, first.line, first.as_of, first.select) == ("first", 7, "2026-10-31", ("KAM1",))
    (rows,) = [first.book[1]["accounts"]]
    # values are kept as written: ids with leading zeros and dates stay text
    assert rows[0][0] == {"id": "007", "name": "华东电气集团", "tier": "key", "owner": "王磊", "created_on": "2020-01-05"}
    e = first.expect[0]
    assert (e.code, e.account, e.severity, e.message, e.evidence, e.line) == ("KAM101", "007", "critical", ("23%",), (("concession_ratio", 0.23),), 9)
    assert [(q.account, q.code) for q in first.quiet] == [("8", ""), ("009", "KAM102")]
    # a case's tables replace the file's table by table; the rest is inherited
    assert set(second.book[1]) == {"accounts", "orders"} and second.as_of == "2026-09-30"
    assert second.book[1]["orders"][0][0]["amount"] == "1e5"
    assert second.expect[0].account is None and second.expect[0].scope is ABSENT


def test_unknown_keys_are_errors_with_line_numbers(tmp_path, tables):
    f = write(tmp_path / "t.yaml", """
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
    """)
    got = problems_of(f, tables)
    assert f"{f}:2: unknown key 'asof' in the test file (expected one of: as_of, book, cases, ignore, min_severity, rulesets, select)" in got
    assert any(p.startswith(f"{f}:5: unknown key 'expct' in a case") for p in got)
    assert any(p.startswith(f"{f}:8: unknown key 'acount' in an expected alert (expected one of: account, code, evidence, message, scope, severity)") for p in got)
    assert any(p.startswith(f"{f}:10: unknown key 'kode' in a quiet entry") for p in got)


def test_unknown_tables_and_columns_of_inline_rows_are_errors(tmp_path, tables):
    f = write(tmp_path / "t.yaml", """
        as_of: 2026-10-31
        book:
          acounts:
            - {id: A1}
          orders:
            - {id: O1, account_id: A1, date: 2026-01-01, amout: 5}
            - just text
        cases:
          - {name: one, quiet: [A1]}
    """)
    got = problems_of(f, tables)
    assert any(p.startswith(f"{f}:3: book: unknown table 'acounts' (expected one of: accounts, activities,") for p in got)
    assert any(p.startswith(f"{f}:6: book: orders: unknown column 'amout' (expected one of: id, account_id, date, amount, margin)") for p in got)
    assert f"{f}:7: book: orders: a row must be a mapping of column: value" in got


@pytest.mark.parametrize("body, expected", [
    ("cases:\n  - {name: x, quiet: [A1]}\n", "{f}:2: no as_of: give `as_of: YYYY-MM-DD` in the case or at the top of the file"),
    ("as_of: 2026-13-01\ncases:\n  - {name: x, quiet: [A1]}\n", "{f}:1: as_of: '2026-13-01' is not a date (expected YYYY-MM-DD)"),
    ("as_of: 2026-10-31\ncases:\n  - {quiet: [A1]}\n", "{f}:3: a case needs `name:` (a short sentence saying what it proves)"),
    ("as_of: 2026-10-31\ncases:\n  - {name: x}\n", "{f}:3: a case must expect something: give `expect:` alerts and/or `quiet:` accounts"),
    ("as_of: 2026-10-31\ncases:\n  - {name: x, quiet: [A1]}\n  - {name: x, quiet: [A2]}\n", "{f}:4: duplicate case name 'x' (first at line 3; expected unique names)"),
    ("as_of: 2026-10-31\ncases:\n  - name: x\n    expect:\n      - {code: KAM101, severity: fatal}\n", "{f}:5: severity: 'fatal' (expected one of: info, warning, critical)"),
    ("as_of: 2026-10-31\ncases:\n  - name: x\n    expect:\n      - {account: A1}\n", "{f}:5: expect: each alert needs `code:` (a rule code such as KAM101)"),
    ("as_of: 2026-10-31\ncases: []\n", "{f}:2: expected `cases:` with a list of at least one case"),
    ("as_of: 2026-10-31\nas_of: 2026-10-30\ncases: []\n", "{f}:2: duplicate key 'as_of' (expected valid YAML)"),
    ("as_of: 2026-10-31\ncases:\n  - name: x\n    quiet: [A1\n", "{f}:5: expected ',' or ']', but got '<stream end>' (expected valid YAML)"),
    ("- just a list\n", "{f}:1: expected a mapping with a `cases:` list (see docs/plugins.md#testing-rules-kamrules-test)"),
    ("as_of: 2026-10-31\nrulesets: [no_such_dir]\ncases:\n  - {name: x, quiet: [A1]}\n", "{f}:2: rulesets: no_such_dir: no such folder (paths are relative to the test file)"),
    ("as_of: 2026-10-31\nbook: no_such_dir\ncases:\n  - {name: x, quiet: [A1]}\n", "{f}:2: book: no_such_dir: no such folder (expected a folder of data files, relative to the test file)"),
    ("as_of: 2026-10-31\ncases:\n  - {name: x, quiet: [A1], exhaustive: maybe}\n", "{f}:3: exhaustive: expected true or false"),
])
def test_bad_files_name_file_and_line(tmp_path, tables, body, expected):
    f = tmp_path / "t.yaml"
    f.write_text(body, encoding="utf-8")
    assert expected.format(f=f) in problems_of(f, tables)


def test_cli_bad_test_file_exits_2_with_every_problem_and_no_traceback(tmp_path):
    f = write(tmp_path / "t.yaml", """
        as_of: 2026-10-31
        cases:
          - name: x
            expect: [{code: KAM101, sevrity: warning}]
          - {name: y}
    """)
    proc = kamrules("test", f)
    assert proc.returncode == 2
    assert f"{f}:4: unknown key 'sevrity' in an expected alert" in proc.stderr
    assert f"{f}:5: a case must expect something" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- matching ----------------------------------------------------------------------
def alert(code, account, severity="warning", message="m", **evidence):
    return Alert(ruleset="r", code=code, rule="x", severity=severity, message=message, action="", as_of="2026-10-31",
                 account_id=account, account_name=None if account is None else f"客户{account}", evidence=evidence)


@pytest.mark.parametrize("got, want, ok", [
    (0.2261, 0.23, True), (0.2349, 0.23, True), (0.2351, 0.23, False), (70.0, 70, True), (70.4, 70, False),
    (96.6666, 96.7, True), ("key", "key", True), (1, True, False), (True, True, True), (0.1, 0.1, True), (None, None, True),
])
def test_evidence_numbers_match_to_the_precision_written(got, want, ok):
    assert values_match(got, want) is ok


def test_evaluate_reports_missing_with_closest_unexpected_and_loud(tmp_path, tables):
    f = write(tmp_path / "t.yaml", """
        as_of: 2026-10-31
        cases:
          - name: x
            expect:
              - {code: KAM101, account: A1, severity: critical, message: "23%"}
              - {code: KAM101, account: A3}
              - {code: KAM205, account: A1}
            quiet: [A2, {account: A3, code: KAM3}]
    """)
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
    assert "KAM101 on A1 critical, message contains \"23%\"  (line 5)" in text
    assert "closest: KAM101 on A1 warning: ratio 23% of revenue" in text
    assert "differs: severity warning != critical" in text
    assert "unexpected (fired but not expected):\n  KAM101 on A4 warning: m" in text
    # exhaustive: every other alert is unexpected too
    exhaustive = type(case)(**{**case.__dict__, "exhaustive": True, "quiet": ()})
    assert {a.code for a in evaluate(exhaustive, fired).unexpected} == {"KAM101", "KAM102", "KAM301", "KAM999"}


def test_each_expectation_takes_its_own_alert(tmp_path, tables):
    f = write(tmp_path / "t.yaml", """
        as_of: 2026-10-31
        cases:
          - name: x
            expect:
              - {code: KAM510}
              - {code: KAM510, account: null, message: owner 王磊}
    """)
    (case,) = load_test_file(f, tables).cases
    one = [alert("KAM510", None, message="owner 王磊 holds 60%")]
    assert [m[0].line for m in evaluate(case, one).missing] == [5]
    two = one + [alert("KAM510", None, message="owner 李娜 holds 35%")]
    assert evaluate(case, two).status == "passed"
