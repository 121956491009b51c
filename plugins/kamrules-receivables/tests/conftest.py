"""The receivables cases in *.test.yaml run with the built-ins and this plugin (kamrules.testing.pytest_plugin)."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import pytest


@lru_cache(maxsize=1)
def _pm():
    try:
        from kamrules_receivables import plugin
    except ImportError:  # running from a checkout without installing
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from kamrules_receivables import plugin
    from kamrules.plugins import make_plugin_manager

    return make_plugin_manager(load_entry_points=False, extra=[plugin])


@pytest.hookimpl(optionalhook=True)
def pytest_kamrules_plugin_manager(config, path):
    return _pm()
