"""The docs keep up with the code (datasette style): hooks, CLI commands and options, core modules."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

from kamrules import hookspecs
from kamrules.cli import cli
from kamrules.plugins import make_plugin_manager, register_commands

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _hooks() -> dict[str, str]:
    """{hook name: "name(arg, ...)"} of every hookspec, its arguments read off the signature."""
    out = {}
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, "kamrules_spec"):
            out[name] = f"{name}({', '.join(inspect.signature(fn).parameters)})"
    return out


def test_hookspecs_are_found():
    assert {"register_facts", "register_commands", "rename_columns"} <= set(_hooks())


@pytest.mark.parametrize("hook", sorted(_hooks()))
def test_every_hook_has_its_section_in_plugins_md(hook):
    headings = re.findall(r"^### (.+?)\s*$", (DOCS / "plugins.md").read_text(encoding="utf-8"), re.M)
    assert _hooks()[hook] in headings, f"docs/plugins.md needs a section '### {_hooks()[hook]}'"


def test_plugins_md_documents_no_hook_that_does_not_exist():
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    section = text.split("\n## Plugin hooks", 1)[1].split("\n## ", 1)[0]
    documented = {m.group(1) for m in re.finditer(r"^### (\w+)\(", section, re.M)}
    assert documented <= set(_hooks()), f"sections for unknown hooks: {sorted(documented - set(_hooks()))}"


def _commands() -> list[tuple[str, click.Command]]:
    """(path without "kamrules", command) of the root group and every command and subcommand the
    built-in plugins register, as `kamrules` sees them."""
    register_commands(make_plugin_manager(load_entry_points=False), cli, [])

    def walk(cmd: click.Command, path: tuple[str, ...]):
        yield " ".join(path), cmd
        if isinstance(cmd, click.Group):
            for name, sub in sorted(cmd.commands.items()):
                if not sub.hidden:
                    yield from walk(sub, path + (name,))

    return list(walk(cli, ()))


def _options(cmd: click.Command) -> list[tuple[str, ...]]:
    return [
        tuple(o for o in p.opts + p.secondary_opts if o.startswith("--"))
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden and "--help" not in p.opts
    ]


def _sections() -> list[str]:
    """docs/cli.md cut at its `## ` headings."""
    return re.split(r"^(?=## )", (DOCS / "cli.md").read_text(encoding="utf-8"), flags=re.M)


def _mentions(section: str, path: str) -> bool:
    """``path`` ("alerts show") named in a heading or a code span of ``section`` (with or without
    the leading "kamrules"), followed by anything but a word character."""
    spans = re.findall(r"`([^`]+)`", section) + re.findall(r"^#+ (.+)$", section, re.M)
    pattern = re.compile(rf"(?:^|kamrules |\[|\(|, ){re.escape(path)}(?![\w-])")
    return any(pattern.search(s.strip()) for s in spans)


def test_cli_commands_are_found():
    paths = {p for p, _ in _commands()}
    assert {"check", "import", "alerts show", "silence add", "notify test", "plugin new"} <= paths


@pytest.mark.parametrize("path", [p for p, _ in _commands() if p])
def test_every_command_is_in_cli_md(path):
    assert any(_mentions(s, path) for s in _sections()), f"docs/cli.md never names `kamrules {path}`"


@pytest.mark.parametrize("path", [p for p, _ in _commands()] or [""])
def test_every_option_is_in_cli_md(path):
    """Each option of a command appears in a section of docs/cli.md that names the command; options the
    root group has too (``--db``) are described once, anywhere."""
    commands = dict(_commands())
    common = {n for names in _options(commands[""]) for n in names}
    sections = [s for s in _sections() if not path or _mentions(s, path)]
    text, everywhere = "\n".join(sections), "\n".join(_sections())
    missing = [
        names[0]
        for names in _options(commands[path])
        if names and not any(re.search(rf"{re.escape(n)}(?![\w-])", everywhere if n in common else text) for n in names)
    ]
    assert not missing, f"docs/cli.md: `kamrules {path}` is missing {', '.join(missing)}"


def _core_modules() -> list[str]:
    pkg = ROOT / "kamrules"
    files = sorted(pkg.glob("*.py")) + sorted(pkg.glob("*/*.py"))
    return [f.relative_to(pkg).as_posix() for f in files]


@pytest.mark.parametrize("module", _core_modules())
def test_every_core_module_is_in_architecture_md(module):
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert re.search(rf"(?<![\w/.]){re.escape(module)}(?!\w)", text), f"docs/architecture.md does not name {module}"


def test_architecture_md_names_no_issue_and_no_outside_path():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert not re.search(r"\(issue \d+\)", text)
    assert not re.search(r"(?<![\w.])(/work/|/home/|/root/|/tmp/|~/|\.\./\.\./)", text)
