"""Packaging: every Python package and data file in the tree is shipped by setup.cfg."""

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _options():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    packages = {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}
    return cfg, packages


def test_every_subpackage_is_listed():
    _, packages = _options()
    # every folder under kamrules/ that holds files (code or templates) must be a listed package
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "kamrules").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert found <= packages, f"add to setup.cfg [options] packages: {sorted(found - packages)}"


def test_no_top_level_plugins_package():
    cfg, packages = _options()
    assert "plugins" not in packages
    assert "kamrules_plugins = plugins" in cfg["options"]["package_dir"]


def test_templates_are_package_data():
    cfg, _ = _options()
    data = cfg["options.package_data"]["kamrules.templates"]
    templates = [p for p in (ROOT / "kamrules" / "templates").rglob("*") if p.is_file()]
    assert templates and "**/*" in data
