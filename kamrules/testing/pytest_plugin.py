"""A pytest plugin collecting `kamrules test` files (``*.test.yaml``) as one pytest item per case.

Enable it with ``-p kamrules.testing.pytest_plugin`` (e.g. in ``addopts``) or
``pytest_plugins = ["kamrules.testing.pytest_plugin"]`` in a top-level conftest.py;
docs/plugins.md, "Testing rules", says how to choose the plugins a case runs with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kamrules.errors import InputError, KamrulesError
from kamrules.testing.model import TestFile
from kamrules.testing.report import case_details
from kamrules.testing.runner import rule_codes, run_case
from kamrules.testing.spec import check_codes, load_test_file

SUFFIXES = (".test.yaml", ".test.yml")
_STATE = pytest.StashKey[dict]()


class KamrulesHooks:
    """The hook a conftest.py implements to choose the kamrules plugins of the cases below it."""

    @pytest.hookspec(firstresult=True)
    def pytest_kamrules_plugin_manager(self, config: pytest.Config, path: Path):
        """Return the kamrules plugin manager to run the cases of ``path`` with (None: the default)."""


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(KamrulesHooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "kamrules_load_entry_points",
        type="bool",
        default=True,
        help="kamrules test files: load installed third-party kamrules plugins, as `kamrules test` does (default true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = {}


def pytest_collect_file(file_path: Path, parent):
    if file_path.name.endswith(SUFFIXES):
        return RuleTestFile.from_parent(parent, path=file_path)
    return None


def _default_pm(config: pytest.Config):
    state = config.stash[_STATE]
    if "pm" not in state:
        from kamrules.plugins import make_plugin_manager

        state["pm"] = make_plugin_manager(load_entry_points=config.getini("kamrules_load_entry_points"))
    return state["pm"]


def _tools(config: pytest.Config, pm):
    """(tables, codes) for ``pm``, computed once per plugin manager."""
    from kamrules.store import collect_tables

    state = config.stash[_STATE].setdefault("tools", {})
    if id(pm) not in state:
        state[id(pm)] = (pm, collect_tables(pm), rule_codes(pm))
    return state[id(pm)][1:]


class RuleTestFile(pytest.File):
    """One test file: invalid files are one collection error listing every FILE:LINE problem."""

    def collect(self):
        pm = self.ihook.pytest_kamrules_plugin_manager(config=self.config, path=self.path) or _default_pm(self.config)
        tables, codes = _tools(self.config, pm)
        tf = load_test_file(self.path, tables)
        for case in tf.cases:
            yield RuleTestCase.from_parent(self, name=case.name, case=case, pm=pm, codes=codes)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, KamrulesError):
            return _problems_text(excinfo.value)
        return super().repr_failure(excinfo, style)


class CaseFailed(Exception):
    """A case that failed or could not run; the text is the case's own report."""


class RuleTestCase(pytest.Item):
    """One case: its book imported into a temporary store, the check run, the alerts compared."""

    def __init__(self, *, case, pm, codes, **kw):
        super().__init__(**kw)
        self.case, self.pm, self.codes = case, pm, codes

    def runtest(self) -> None:
        where = str(self.path)
        problems = check_codes(TestFile(where, (self.case,)), (), for_case=lambda c: self.codes(c.rulesets))
        if problems:
            raise CaseFailed(
                _problems_text(InputError(f"{where}:{self.case.line}: {self.case.name}: invalid case", problems))
            )
        res = run_case(self.case, where, self.pm)
        if res.status != "passed":
            head = f"{where}:{self.case.line}: {'FAIL' if res.status == 'failed' else 'ERROR'} {self.case.name}"
            raise CaseFailed("\n".join([head] + [f"  {d}" for d in case_details(res)]))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.case.line - 1, f"{self.path.name}: {self.case.name}"


def _problems_text(e: KamrulesError) -> str:
    return e.render()
