"""The plugin manager: built-in plugins and third-party ones (entry points), plugin folders, allowlist."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pluggy

from kamrules import hookspecs
from kamrules.errors import EXIT_INCOMPLETE, KamrulesError, PluginError

ENTRY_POINT_GROUP = "kamrules"

# Built-in behaviour is registered exactly like third-party plugins: entry points of the group
# "kamrules", declared by this distribution in setup.cfg [options.entry_points].
DISTRIBUTION = "kamrules"


def _is_builtin(ep) -> bool:
    return ep.dist is not None and _normalise(ep.dist.name) == DISTRIBUTION


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@lru_cache(maxsize=1)
def builtin_plugins() -> tuple:
    """The built-in plugins' entry points (they always load, before any other; their order does not matter).

    Raises :class:`PluginError` when kamrules is not installed (no entry points: the
    built-in rule sets and commands would be silently missing).
    """
    eps = tuple(ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if _is_builtin(ep))
    if not eps:
        raise PluginError(
            f"the built-in plugins are not installed (no entry points of the distribution "
            f"{DISTRIBUTION!r} in the group {ENTRY_POINT_GROUP!r}): run pip install -e . in the repository"
        )
    return eps


class PluginFailed(PluginError):
    """A plugin's hook raised (or exited): named with the plugin and the hook; the run is incomplete (exit 3)."""

    exit_code = EXIT_INCOMPLETE


_FAILED = object()


def _is_notifier(x) -> bool:
    return isinstance(getattr(x, "name", None), str) and all(
        callable(getattr(x, m, None)) for m in ("route", "render", "send")
    )


def _is_ruleset_file(x) -> bool:
    return isinstance(x, (str, os.PathLike)) or callable(getattr(x, "read_text", None))


def _instance_of(module: str, cls: str):
    return lambda x: isinstance(x, getattr(importlib.import_module(module), cls))


# What each hook must return (the docs of kamrules.hookspecs): (is_item, what an item is). A result of
# another shape is that plugin's failure, named like a hook that raised, never a traceback further on.
RESULTS = {
    "register_tables": (_instance_of("kamrules.contract", "Table"), "kamrules.contract.Table"),
    "register_facts": (_instance_of("kamrules.facts", "FactProvider"), "kamrules.facts.FactProvider"),
    "register_rulesets": (_is_ruleset_file, "a path (str or pathlib.Path)"),
    "register_defect_recipes": (_instance_of("kamrules.bookgen", "Defect"), "kamrules.bookgen.Defect"),
    "register_output_formats": (_instance_of("kamrules.formats", "OutputFormat"), "kamrules.formats.OutputFormat"),
    "register_notifiers": (_is_notifier, "a notifier (name, route, render, send)"),
}


def check_result(hook: str, result) -> tuple[Any, str | None]:
    """``(result, None)`` if ``result`` has the shape ``hook`` must return (a list is made of any other
    iterable), else ``(None, what is wrong)``."""
    if hook not in RESULTS:  # (rename_columns: checked by the importer, which names the file)
        return result, None
    is_item, what = RESULTS[hook]
    if isinstance(result, (str, bytes, dict)) or not hasattr(result, "__iter__"):
        return None, f"returned {_show(result)} (expected a list of {what})"
    result = list(result)
    for i, item in enumerate(result):
        if not is_item(item):
            return None, f"returned a list whose item {i + 1} is {_show(item)} (expected {what})"
    return result, None


def _show(x) -> str:
    text = repr(x)
    return f"{type(x).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _call(impl, hook: str, failures: list | None, kwargs: dict) -> Any:
    """One plugin's implementation of ``hook``; ``_FAILED`` if it failed (recorded in ``failures``)."""
    try:
        result = impl.function(**{a: kwargs[a] for a in impl.argnames})
        if result is None:
            return None
        result, wrong = check_result(hook, result)
        if wrong is None:
            return result
        where, what = f"plugin {impl.plugin_name}: {hook}", wrong
        if failures is None:
            raise PluginFailed(f"{where} failed: {what}")
        failures.append((where, what))
        return _FAILED
    except PluginFailed:
        raise
    except KeyboardInterrupt:
        raise
    except KamrulesError as e:
        e.args = (f"plugin {impl.plugin_name}: {hook}: {e}",) + e.args[1:]
        raise
    except BaseException as e:  # noqa: B036 - sys.exit() in a plugin is its failure, not ours to obey
        where, what = f"plugin {impl.plugin_name}: {hook}", f"{type(e).__name__}: {e}"
        if failures is None:
            raise PluginFailed(f"{where} failed: {what}") from e
        failures.append((where, what))
        return _FAILED


def call_hook(pm: pluggy.PluginManager, hook: str, failures: list | None = None, **kwargs) -> list[tuple[str, Any]]:
    """``(plugin name, result)`` of every implementation of ``hook``, each called on its own, in pluggy's
    order (``None`` results dropped).

    A plugin whose hook raises (also ``SystemExit`` or any other BaseException but KeyboardInterrupt) is
    recorded in ``failures`` as ``(where, message)`` and the others still run; with ``failures`` None it
    raises :class:`PluginFailed` (exit 3). A :class:`KamrulesError` a plugin raises on purpose (bad input:
    exit 2) keeps its exit code and gets the plugin's name.
    """
    out = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        result = _call(impl, hook, failures, kwargs)
        if result is not None and result is not _FAILED:
            out.append((impl.plugin_name, result))
    return out


def register_commands(pm: pluggy.PluginManager, cli, failures: list) -> None:
    """Hook ``register_commands`` for every plugin on its own; a plugin that fails is recorded in ``failures``
    and none of its commands stay (those it added before it failed are removed)."""
    for impl in reversed(pm.hook.register_commands.get_hookimpls()):
        before = dict(cli.commands)
        try:
            failed = _call(impl, "register_commands", failures, {"cli": cli}) is _FAILED
        except KamrulesError as e:  # on purpose, but no command can be its input's fault: a failure too
            where = f"plugin {impl.plugin_name}: register_commands"
            failures.append((where, f"{type(e).__name__}: {str(e).removeprefix(where + ': ')}"))
            failed = True
        if failed:
            cli.commands.clear()
            cli.commands.update(before)


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
    eps = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if not _is_builtin(ep)]
    if allow:
        _check_allowlist(allow, eps)
    for ep in eps:
        dist = ep.dist.name if ep.dist else None
        if allow is not None and ep.name not in allow and dist not in allow:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B036 - a broken plugin (even one calling sys.exit) shows no traceback
            raise PluginError(f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {e}") from e
        pm.register(plugin, name=ep.name)
        if ep.dist:
            pm._kamrules_versions[ep.name] = ep.dist.version  # type: ignore[attr-defined]


def _check_allowlist(allow: set[str], eps) -> None:
    """A name in KAMRULES_LOAD_PLUGINS that no installed plugin has is a usage error, not a quiet no-op."""
    import difflib

    known = {ep.name for ep in eps} | {ep.dist.name for ep in eps if ep.dist}
    unknown = sorted(allow - known)
    if not unknown:
        return
    lines = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        lines.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise PluginError(
        f"KAMRULES_LOAD_PLUGINS names plugins that are not installed: {', '.join(lines)} "
        f"(installed: {', '.join(sorted(known)) or 'none'}; built-in plugins always load)"
    )


def _load_dir(pm: pluggy.PluginManager, folder: Path) -> None:
    if not folder.is_dir():
        raise PluginError(f"{folder}: plugins folder does not exist")
    for path in sorted(folder.glob("*.py")):
        name = f"kamrules_dir_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # a *.py path always has a spec with a loader
            raise PluginError(f"{path}: can't be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: @dataclass and pickling look the module up
        try:
            spec.loader.exec_module(module)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: B036 - sys.exit() at import is a failure to load, not a quiet exit 0
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
    for ep in builtin_plugins():
        pm.register(ep.load(), name=ep.name)
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
        _check_hook_names(pm)
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(f"plugin error: {e}") from e
    return pm


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """A hookimpl whose name is no kamrules hook (a typo: ``register_fact``) would never be called: a
    PluginError naming the plugin, the function and the closest hook."""
    import difflib

    known = sorted(name for name, caller in vars(pm.hook).items() if getattr(caller, "spec", None) is not None)
    lines = []
    for name, caller in sorted(vars(pm.hook).items()):
        if not hasattr(caller, "get_hookimpls") or getattr(caller, "spec", None) is not None:
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"kamrules hooks: {', '.join(known)}"
            lines.append(f"plugin {impl.plugin_name}: unknown hook {name!r}, never called ({hint})")
    if lines:
        raise PluginError("; ".join(lines))


@lru_cache(maxsize=1)
def default_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager used by the library API when none is passed."""
    return make_plugin_manager()


def get_plugins(pm: pluggy.PluginManager) -> list[dict]:
    """Name, version and implemented hooks of every registered plugin."""
    from kamrules import __version__

    versions = getattr(pm, "_kamrules_versions", {})
    builtin_names = {ep.name for ep in builtin_plugins()}
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        builtin = name in builtin_names
        out.append(
            {
                "name": name,
                "version": __version__ if builtin else versions.get(name),
                "builtin": builtin,
                "hooks": hooks,
            }
        )
    return sorted(out, key=lambda p: (not p["builtin"], p["name"]))
