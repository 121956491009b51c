"""`kamrules plugin new`: the scaffold installs (a real pip install) and passes its own rule tests."""

from __future__ import annotations

import configparser
import importlib
import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from kamrules.errors import InputError
from kamrules.plugins import make_plugin_manager
from kamrules.testing import render_text, run_tests
from kamrules_plugins.devtools import new_plugin, plugin_names


def kamrules(*args, python=sys.executable, cwd=None, env=None):
    return subprocess.run(
        [str(python), "-m", "kamrules", *map(str, args)],
        cwd=cwd,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


@pytest.mark.parametrize(
    "name, prefix, expected",
    [
        ("receivables", None, ("receivables", "kamrules-receivables", "kamrules_receivables", "REC")),
        ("CRM Sync", "CRM", ("crm-sync", "kamrules-crm-sync", "kamrules_crm_sync", "CRM")),
        ("kamrules-payments", None, ("payments", "kamrules-payments", "kamrules_payments", "PAY")),
        ("kam", None, ("kam", "kamrules-kam", "kamrules_kam", "XKA")),
        ("x", None, ("x", "kamrules-x", "kamrules_x", "XX")),
    ],
)
def test_names_derived_from_name(name, prefix, expected):
    n = plugin_names(name, prefix)
    assert (n["slug"], n["dist"], n["module"], n["prefix"]) == expected


@pytest.mark.parametrize(
    "name, prefix, message",
    [
        ("回款", None, "expected ASCII letters"),
        ("9lives", None, "expected ASCII letters"),
        ("ok", "KAM", "other than KAM"),
        ("ok", "rc", "2-4 capital letters"),
    ],
)
def test_unusable_names_are_refused(name, prefix, message):
    with pytest.raises(InputError, match=message):
        plugin_names(name, prefix)


def test_scaffold_files_and_entry_point(tmp_path):
    made = new_plugin("receivables", tmp_path)
    root = tmp_path / "kamrules-receivables"
    assert made.folder == root and made.module == "kamrules_receivables" and made.prefix == "REC"
    assert sorted(str(p.relative_to(root)) for p in made.files) == [
        "README.md",
        "kamrules_receivables/__init__.py",
        "kamrules_receivables/plugin.py",
        "kamrules_receivables/rules.yaml",
        "pyproject.toml",
        "setup.cfg",
        "tests/rules.test.yaml",
        "tests/test_rules.py",
    ]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg", encoding="utf-8")
    assert cfg["metadata"]["name"] == "kamrules-receivables"
    assert cfg["options.entry_points"]["kamrules"].strip() == "receivables = kamrules_receivables.plugin"
    assert "REC101" in (root / "kamrules_receivables" / "rules.yaml").read_text(encoding="utf-8")
    for py in root.rglob("*.py"):
        compile(py.read_text(encoding="utf-8"), str(py), "exec")
        assert py.read_text(encoding="utf-8").startswith('"""')  # every module opens with a docstring
    with pytest.raises(InputError, match="already exists"):
        new_plugin("receivables", tmp_path)


def test_cli_plugin_new_refuses_existing_folder_and_bad_dir(tmp_path):
    proc = kamrules("plugin", "new", "demo", "--dir", tmp_path, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["package"] == "kamrules-demo" and out["prefix"] == "DEM" and len(out["files"]) == 8
    again = kamrules("plugin", "new", "demo", "--dir", tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    missing = kamrules("plugin", "new", "demo", "--dir", tmp_path / "nope")
    assert missing.returncode == 2 and "no such folder" in missing.stderr


@pytest.fixture
def scaffold_module(tmp_path, monkeypatch):
    """A fresh scaffold imported from its folder (no install), as a plugin object."""
    made = new_plugin("scaffold check", tmp_path, prefix="SCF")
    monkeypatch.syspath_prepend(str(made.folder))
    module = importlib.import_module(f"{made.module}.plugin")
    yield made, module
    for name in [m for m in sys.modules if m.startswith(made.module)]:
        del sys.modules[name]


def test_scaffold_passes_its_own_rule_tests(scaffold_module):
    made, module = scaffold_module
    pm = make_plugin_manager(load_entry_points=False, extra=[module])
    run = run_tests([made.folder / "tests"], pm=pm)
    assert run.ok and run.passed == 2, render_text(run)


def test_a_broken_expectation_in_the_scaffold_fails_with_a_diff(scaffold_module):
    made, module = scaffold_module
    tests = made.folder / "tests" / "rules.test.yaml"
    tests.write_text(
        tests.read_text(encoding="utf-8").replace("severity: warning", "severity: critical"), encoding="utf-8"
    )
    run = run_tests([tests], pm=make_plugin_manager(load_entry_points=False, extra=[module]))
    assert (run.passed, run.failed, run.exit_code) == (1, 1, 1)
    text = render_text(run)
    assert "FAIL  a key account without orders for 90 days is flagged" in text
    assert "closest: SCF101 on K1 warning: 0 orders in the 90 days to 2026-10-31" in text
    assert "differs: severity warning != critical" in text


def _venv_seeing_this_environment(where: Path) -> Path:
    """A venv whose interpreter also sees this environment's packages (kamrules, pip, pytest).

    Installing into it leaves the shared environment untouched.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = [p for p in dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]]) if Path(p).is_dir()]
    Path(purelib, "_outer_site.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in outer) + "\n", encoding="utf-8"
    )
    return python


@pytest.mark.slow
def test_scaffold_pip_installs_and_passes_kamrules_test(tmp_path):
    """The real thing: pip install -e the scaffold, then its entry point loads and `kamrules test` passes."""
    made = new_plugin("install check", tmp_path, prefix="INS")
    python = _venv_seeing_this_environment(tmp_path / "venv")
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(made.folder)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    env = {"KAMRULES_LOAD_PLUGINS": "install-check"}
    plugins = kamrules("plugins", "--format", "json", python=python, env=env)
    assert plugins.returncode == 0, plugins.stderr
    info = {p["name"]: p for p in json.loads(plugins.stdout)}
    assert info["install-check"]["version"] == "0.1.0"
    assert info["install-check"]["hooks"] == ["register_facts", "register_rulesets"]
    junit = tmp_path / "junit.xml"
    proc = kamrules("test", "tests/", "--junit", junit, python=python, cwd=made.folder, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed, 0 failed" in proc.stdout
    assert 'tests="2" failures="0" errors="0"' in junit.read_text(encoding="utf-8")
    # the environment running this test did not get the plugin
    assert "install-check" not in kamrules("plugins", "--format", "json").stdout
