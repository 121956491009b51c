"""kamrules.testing.pytest_plugin: `kamrules test` files collected by pytest, one item per case, readable failures."""

from __future__ import annotations

import textwrap

import pytest

BOOK = """
as_of: 2026-10-31
book:
  accounts:
    - {id: A1, name: 华东电气集团, tier: key, owner: 王磊}
  orders:
    - {id: O1, account_id: A1, date: 2026-03-15, amount: 1000000}
  concessions:
    - {id: R1, account_id: A1, date: 2026-04-01, kind: rebate, amount: 250000}
cases:
  - name: a quarter of revenue given back is critical
    expect: [{code: KAM101, account: A1, severity: critical}]
  - name: deliberately wrong severity
    expect: [{code: KAM101, account: A1, severity: warning}]
"""


@pytest.fixture
def project(pytester):
    """A folder as a plugin author would have it: an ini enabling the plugin, a test file."""
    pytester.makeini(
        "[pytest]\naddopts = -p kamrules.testing.pytest_plugin -p no:cacheprovider\nkamrules_load_entry_points = false\n"
    )
    (pytester.path / "tests").mkdir()
    path = pytester.path / "tests" / "rules.test.yaml"
    path.write_text(textwrap.dedent(BOOK).lstrip(), encoding="utf-8")
    (pytester.path / "tests" / "rules.yaml").write_text(
        "not: a test file\n", encoding="utf-8"
    )  # *.yaml alone is not collected
    return path


def test_a_broken_case_fails_alone_with_its_own_report(pytester, project):
    done = pytester.runpytest_inprocess("tests")
    done.assert_outcomes(passed=1, failed=1)
    out = done.stdout.str()
    assert f"{project}:12: FAIL deliberately wrong severity" in out
    assert "missing (expected but did not fire):" in out
    assert "  KAM101 on A1 warning  (line 13)" in out
    assert "differs: severity critical != warning" in out
    assert "Traceback" not in out and "def runtest" not in out and "CaseFailed" not in out
    assert "FAILED tests/rules.test.yaml::deliberately wrong severity" in out


def test_k_selects_cases_by_name(pytester, project):
    done = pytester.runpytest_inprocess("tests", "-k", "quarter")
    done.assert_outcomes(passed=1, deselected=1)
    done = pytester.runpytest_inprocess("tests", "--collect-only", "-q")
    assert "tests/rules.test.yaml::a quarter of revenue given back is critical" in done.stdout.str()
    assert "rules.yaml::" not in done.stdout.str()


def test_an_invalid_file_is_one_collection_error_naming_file_and_line(pytester, project):
    project.write_text(
        project.read_text(encoding="utf-8").replace("severity: warning", "sevrity: warning"), encoding="utf-8"
    )
    done = pytester.runpytest_inprocess("tests")
    done.assert_outcomes(errors=1)
    out = done.stdout.str()
    assert f"{project}: invalid test file (1 problem(s))" in out
    assert f"{project}:13: unknown key 'sevrity' in an expected alert" in out
    assert "Traceback" not in out


def test_a_code_no_rule_has_fails_that_case_only(pytester, project):
    project.write_text(
        project.read_text(encoding="utf-8")
        .replace("severity: warning}", "severity: critical}")
        .replace("[{code: KAM101, account: A1, severity: critical}]", "[{code: KAM999}]", 1),
        encoding="utf-8",
    )
    done = pytester.runpytest_inprocess("tests")
    done.assert_outcomes(passed=1, failed=1)
    out = done.stdout.str()
    assert f"{project}:11: expect: no loaded rule has the code 'KAM999'" in out, out
    assert "Traceback" not in out


def test_a_conftest_chooses_the_plugins_of_its_cases(pytester, project):
    """The hook a plugin's tests implement to run their cases with their own plugin (here: none of KAM1xx)."""
    pytester.makeconftest("""
        from kamrules.plugins import make_plugin_manager

        def pytest_kamrules_plugin_manager(config, path):
            pm = make_plugin_manager(load_entry_points=False)
            pm.unregister(name="kamrules_rulesets.over_subsidising")
            return pm
    """)
    done = pytester.runpytest_inprocess("tests")
    done.assert_outcomes(failed=2)
    assert "no loaded rule has the code 'KAM101'" in done.stdout.str()
