"""The plugin manager: built-in plugins, entry points, plugin folders, allowlist."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pluggy

from kamrules import hookspecs
from kamrules.errors import PluginError

ENTRY_POINT_GROUP = "kamrules"

# Built-in behaviour, registered exactly like third-party plugins.
DEFAULT_PLUGINS = (
    "kamrules_plugins.contract",
    "kamrules_plugins.store_commands",
    "kamrules_plugins.core_facts",
    "kamrules_plugins.over_subsidising",
    "kamrules_plugins.neglected_small_clients",
    "kamrules_plugins.missing_escalation_channels",
    "kamrules_plugins.stalled_stages",
    "kamrules_plugins.formats",
    "kamrules_plugins.check_commands",
    "kamrules_plugins.alert_commands",
    "kamrules_plugins.email_notifier",
    "kamrules_plugins.webhook_notifier",
    "kamrules_plugins.devtools",
    "kamrules_plugins.health_commands",
    "kamrules_plugins.backtest_commands",
)


def _allowlist() -> set[str] | None:
    """KAMRULES_LOAD_PLUGINS: comma-separated names of third-party plugins to load.

    Unset: load every installed plugin. Empty: load none. Built-ins always load.
    """
    value = os.environ.get("KAMRULES_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allow = _allowlist()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        if allow is not None and ep.name not in allow and dist not in allow:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as e:  # a broken third-party plugin must not show a traceback
            raise PluginError(f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {e}") from e
        pm.register(plugin, name=ep.name)
        if ep.dist:
            pm._kamrules_versions[ep.name] = ep.dist.version  # type: ignore[attr-defined]


def _load_dir(pm: pluggy.PluginManager, folder: Path) -> None:
    if not folder.is_dir():
        raise PluginError(f"{folder}: plugins folder does not exist")
    for path in sorted(folder.glob("*.py")):
        name = f"kamrules_dir_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: @dataclass and pickling look the module up
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as e:
            del sys.modules[name]
            raise PluginError(f"{path}: plugin failed to load: {type(e).__name__}: {e}") from e
        pm.register(module, name=str(path))


def make_plugin_manager(
    plugins_dirs: Iterable[str | os.PathLike] = (),
    load_entry_points: bool = True,
    extra: Iterable[object] = (),
) -> pluggy.PluginManager:
    """A fresh plugin manager: built-ins, entry points, ``plugins_dirs``, ``extra`` objects.

    ``KAMRULES_PLUGINS_DIR`` (os.pathsep-separated) adds folders. Raises
    :class:`PluginError` if a plugin fails to load or implements an unknown hook.
    """
    pm = pluggy.PluginManager("kamrules")
    pm._kamrules_versions = {}  # type: ignore[attr-defined]
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    dirs = [Path(d) for d in plugins_dirs]
    env_dirs = os.environ.get("KAMRULES_PLUGINS_DIR")
    if env_dirs:
        dirs += [Path(d) for d in env_dirs.split(os.pathsep) if d]
    try:  # register() refuses a hookimpl whose arguments the hookspec lacks: no traceback for that either
        if load_entry_points:
            _load_entry_points(pm)
        for folder in dirs:
            _load_dir(pm, folder)
        for obj in extra:
            pm.register(obj)
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(f"plugin error: {e}") from e
    return pm


@lru_cache(maxsize=1)
def default_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager used by the library API when none is passed."""
    return make_plugin_manager()


def get_plugins(pm: pluggy.PluginManager) -> list[dict]:
    """Name, version and implemented hooks of every registered plugin."""
    from kamrules import __version__

    versions = getattr(pm, "_kamrules_versions", {})
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        builtin = name in DEFAULT_PLUGINS
        out.append(
            {
                "name": name,
                "version": __version__ if builtin else versions.get(name),
                "builtin": builtin,
                "hooks": hooks,
            }
        )
    return sorted(out, key=lambda p: (not p["builtin"], p["name"]))
