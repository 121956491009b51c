"""Rule tests as files (``kamrules test``), in the manner of ``promtool test rules``.

A test file holds cases; each case builds a small book in a temporary store
with the real importer, runs :func:`kamrules.check.run_check` as of a date and
compares the alerts with what it expects (docs/plugins.md, "Testing rules")::

    from kamrules.testing import render_text, run_tests
    run = run_tests(["tests/rules/"])
    assert run.ok, render_text(run)
"""

from kamrules.testing.model import ABSENT, Case, CaseResult, Expect, Quiet, TestFile, TestRun, values_match  # noqa: F401
from kamrules.testing.report import case_details, describe_alert, render_junit, render_text  # noqa: F401
from kamrules.testing.runner import evaluate, rule_codes, run_case, run_tests, write_book  # noqa: F401
from kamrules.testing.spec import check_codes, collect_paths, load_test_file  # noqa: F401
