"""The layout: one folder per rule set, built-ins as entry points, one definition per fact, docs/rules.md generated."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kamrules.errors import PluginError
from kamrules.facts import FactProvider, ordered
from kamrules.plugins import builtin_plugins, make_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
RULESETS = sorted(p.parent for p in (ROOT / "rulesets").glob("*/rules.yaml"))


def _cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def test_every_ruleset_folder_is_complete_packaged_and_registered():
    cfg = _cfg()
    packages = cfg["options"]["packages"].split()
    entry_points = dict(line.split(" = ") for line in cfg["options.entry_points"]["kamrules"].strip().splitlines())
    assert {p.name for p in RULESETS} >= {
        "over_subsidising",
        "neglected_small_clients",
        "missing_escalation_channels",
        "stalled_stages",
    }
    for folder in RULESETS:
        assert {"__init__.py", "plugin.py", "rules.yaml", "rules.test.yaml", "defects.py"} <= {
            f.name for f in folder.iterdir()
        }, folder
        assert f"kamrules_rulesets.{folder.name}" in packages
        assert entry_points[f"kamrules_rulesets.{folder.name}"] == f"kamrules_rulesets.{folder.name}.plugin"
    assert not list((ROOT / "plugins").glob("*.yaml")) and not (ROOT / "tests" / "rules").exists()


def test_builtins_are_the_entry_points_of_kamrules_itself(tmp_path):
    declared = {line.split(" = ")[0] for line in _cfg()["options.entry_points"]["kamrules"].strip().splitlines()}
    assert {ep.name for ep in builtin_plugins()} == declared
    pm = make_plugin_manager(load_entry_points=False)  # built-ins load even without third-party entry points
    assert declared <= {pm.get_name(p) for p in pm.get_plugins()}


def test_the_core_knows_no_rule_by_name(pm):
    from kamrules.check import builtin_ruleset_files
    from kamrules.ruleset import resolve

    words = {rs.name for rs in resolve(builtin_ruleset_files(pm, []))}
    words |= {w for rs in resolve(builtin_ruleset_files(pm, [])) for r in rs.rules for w in (r.name, r.code)}
    for module in ("bookgen.py", "generate.py"):
        text = (ROOT / "kamrules" / module).read_text(encoding="utf-8")
        found = sorted({w for w in re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text) if w in words})
        assert found == [], (module, found)


def test_a_recipe_must_be_named_after_a_loaded_rule():
    from kamrules.bookgen import Defect
    from kamrules.generate import defect_recipes
    from kamrules.hookspecs import hookimpl

    class Bad(Defect):
        kind = "no_such_rule"

    class Plugin:
        @hookimpl
        def register_defect_recipes(self):
            return [Bad()]

    with pytest.raises(PluginError, match="no loaded rule is named 'no_such_rule'"):
        defect_recipes(make_plugin_manager(load_entry_points=False, extra=[Plugin()]))


def _p(name, after=(), **kw):
    return FactProvider(name=name, derive=lambda f: {}, derived=(f"{name}_x",), after=after, **kw)


def test_providers_run_after_those_they_read_and_otherwise_keep_their_order():
    a, b, c, d = _p("a", after=("c",)), _p("b"), _p("c", after=("d",)), _p("d")
    assert [p.name for p in ordered([a, b, c, d])] == ["b", "d", "c", "a"]
    assert [p.name for p in ordered([b, d])] == ["b", "d"]
    with pytest.raises(PluginError, match="form a cycle"):
        ordered([_p("a", after=("b",)), _p("b", after=("a",))])
    with pytest.raises(PluginError, match="names no loaded provider 'nope'"):
        ordered([_p("a", after=("nope",))])


def test_a_provider_without_sql_must_only_derive():
    assert _p("only_derives").sql == ""
    with pytest.raises(ValueError, match="without sql it needs derive"):
        FactProvider(name="nothing", facts=("x",))
    with pytest.raises(ValueError, match="without sql it needs derive"):
        FactProvider(name="portfolio", derive=lambda f: {}, scope="portfolio")


def test_enumerations_have_one_definition():
    from kamrules import alerts, ruleset, vocab
    from kamrules.bookgen import STAGES
    from kamrules.contract import CORE_TABLES

    columns = {(t.name, c.name): c.choices for t in CORE_TABLES for c in t.columns}
    assert columns[("accounts", "tier")] is vocab.TIERS and ruleset.TIERS is vocab.TIERS
    assert (
        columns[("accounts", "stage")] is vocab.STAGES is STAGES and columns[("stage_history", "stage")] is vocab.STAGES
    )
    assert columns[("accounts", "status")] is vocab.STATUSES and alerts.SEVERITIES is vocab.SEVERITIES
    for path in (
        list((ROOT / "kamrules").rglob("*.py"))
        + list((ROOT / "plugins").glob("*.py"))
        + list((ROOT / "rulesets").rglob("*.py"))
    ):
        text = path.read_text(encoding="utf-8")
        if path.name != "vocab.py":
            assert '"research", "analysis"' not in text and '("info", "warning", "critical")' not in text, path
            assert """.replace('"', '""')""" not in text or path.name == "migrations.py", path


def test_docs_rules_md_is_the_generated_reference():
    env = dict(os.environ, KAMRULES_LOAD_PLUGINS="")  # built-ins only: the reference of what kamrules ships
    out = subprocess.run(
        [sys.executable, "-m", "kamrules", "rules", "--format", "markdown"],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    ).stdout
    assert (
        "## Fact reference" in out and "### KAM101 concession_ratio" in out and "| orders_summary (core_facts)" in out
    )
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == out, (
        "docs/rules.md is out of date: KAMRULES_LOAD_PLUGINS= kamrules rules --format markdown > docs/rules.md"
    )
