"""Built-in plugin: tools for plugin and rule authors (`kamrules test`, `kamrules plugin new`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import click

from kamrules import hookimpl
from kamrules.cliutils import handle_errors, pass_env, stderr_is_tty
from kamrules.errors import InputError


@hookimpl
def register_commands(cli):
    cli.add_command(test_command)
    cli.add_command(plugin_group)


@click.command(name="test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--junit", "junit", type=click.Path(dir_okay=False), help="Also write the results as JUnit XML to FILE (for CI)."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Show the details of passing cases too.")
@pass_env
@handle_errors
def test_command(env, paths, junit, fmt, verbose):
    """Run rule tests: YAML files of small books and the alerts they must (not) fire.

    Each case builds its book in a temporary store with the real importer, runs
    the check as of its date, and compares the alerts with its `expect:` and
    `quiet:` lists. A folder means every *.yaml / *.yml file below it. The
    file format is in docs/plugins.md (Testing rules). Every case gets its own
    temporary store: no account store is used.

    \b
    Examples:
      kamrules test tests/rules/
      kamrules test receivables.test.yaml --junit rule-tests.xml
      kamrules --plugins-dir my_plugins/ test my_plugins/tests/ --format json
    \b
    Exit codes: 0 every case passed, 1 a case failed, 2 a test file is invalid
    (FILE:LINE: messages) or its book was refused by the importer.
    """
    from kamrules.testing import render_junit, render_text, run_tests

    progress = None
    if stderr_is_tty() and fmt == "text":

        def progress(done, total):
            click.echo(f"\r{done}/{total} cases", nl=False, err=True)
            if done == total:
                click.echo("\r" + " " * 24 + "\r", nl=False, err=True)

    if junit:  # refused before the run: never the store, a test file, a folder or a FIFO
        env.output_path(junit, paths, "--junit file")
    run = run_tests(paths, pm=env.pm, progress=progress)
    if junit:
        from kamrules.outputs import write_text

        env.output_path(
            junit, tuple(paths) + tuple(dict.fromkeys(run.inputs)), "--junit file"
        )  # and no rule file a case read
        write_text(junit, render_junit(run), newline=None)
    if fmt == "json":
        click.echo(json.dumps(run.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        text = render_text(run, verbose=verbose)
        if stderr_is_tty():
            text = text.replace("  PASS ", "  " + click.style("PASS", fg="green") + " ")
            text = text.replace("  FAIL ", "  " + click.style("FAIL", fg="red") + " ")
            text = text.replace("  ERROR ", "  " + click.style("ERROR", fg="red", bold=True) + " ")
        click.echo(text, nl=False)
    if run.exit_code:
        raise SystemExit(run.exit_code)


@click.group(name="plugin")
def plugin_group():
    """Create plugin packages."""


@plugin_group.command(name="new")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Create the package folder inside this folder.",
)
@click.option(
    "--prefix",
    default=None,
    metavar="CODE",
    help="Rule code prefix, 2-4 capital letters (default: from NAME, e.g. REC for receivables).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def plugin_new(name, parent, prefix, fmt):
    """Scaffold a plugin package that installs and passes its own test at once.

    Creates PARENT/kamrules-NAME/ with setup.cfg (entry point in the group
    `kamrules`), pyproject.toml, README.md, the module kamrules_NAME (hook
    implementations, a fact provider, a rule set with one rule) and
    tests/rules.test.yaml for `kamrules test`. Refuses to overwrite anything.

    \b
    Examples:
      kamrules plugin new receivables
      kamrules plugin new "crm sync" --dir ~/src --prefix CRM
      cd kamrules-receivables && pip install -e . && kamrules test tests/
    """
    made = new_plugin(name, parent, prefix=prefix)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "folder": str(made.folder),
                    "package": made.package,
                    "module": made.module,
                    "prefix": made.prefix,
                    "files": [str(f) for f in made.files],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    click.echo(f"created {made.folder} (package {made.package}, module {made.module}, rule codes {made.prefix}1xx)")
    for f in made.files:
        click.echo(f"  {f}")
    click.echo(f"\nnext:\n  cd {made.folder}\n  pip install -e .\n  kamrules test tests/")


# -- the scaffold (library function behind `kamrules plugin new`) ---------------
@dataclass(frozen=True)
class NewPlugin:
    folder: Path
    package: str  # distribution name, e.g. kamrules-receivables
    module: str  # import name, e.g. kamrules_receivables
    prefix: str  # rule code prefix, e.g. REC
    files: tuple[Path, ...]


def _templates() -> Path:
    from importlib.resources import files

    return Path(str(files("kamrules") / "templates" / "plugin"))


def plugin_names(name: str, prefix: str | None = None) -> dict:
    """The names a scaffold uses, derived from NAME; InputError if NAME or the prefix is unusable."""
    slug = re.sub(r"[\s_]+", "-", name.strip().lower())
    slug = re.sub(r"^kamrules-", "", slug)
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", slug):
        raise InputError(
            f"plugin name {name!r}: expected ASCII letters, digits and dashes, starting with a letter (e.g. receivables, crm-sync)"
        )
    short = slug.replace("-", "_")
    if prefix is None:
        prefix = re.sub(r"[^A-Z]", "", short.upper())[:3]
        prefix = "XKA" if prefix in ("KAM", "") else prefix.ljust(2, "X")
    if not re.fullmatch(r"[A-Z]{2,4}", prefix) or prefix == "KAM":
        raise InputError(
            f"--prefix {prefix!r}: expected 2-4 capital letters other than KAM (KAM codes belong to the core)"
        )
    return {
        "slug": slug,
        "short": short,
        "dist": f"kamrules-{slug}",
        "module": f"kamrules_{short}",
        "prefix": prefix,
        "ruleset": short,
        "title": name.strip(),
    }


def new_plugin(name: str, parent=".", prefix: str | None = None) -> NewPlugin:
    """Write a plugin package for NAME into PARENT/kamrules-NAME (which must not exist)."""
    import jinja2

    names = plugin_names(name, prefix)
    parent = Path(parent)
    if not parent.is_dir():
        raise InputError(f"{parent}: no such folder (expected an existing folder for --dir)")
    folder = parent / names["dist"]
    if folder.exists():
        raise InputError(f"{folder}: already exists (expected a new folder; choose another NAME or --dir)")
    root = _templates()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)), keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )
    written = []
    for src in sorted(root.rglob("*.j2")):
        rel = src.relative_to(root).with_suffix("")
        parts = [names["module"] if p == "module" else p for p in rel.parts]
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(src.relative_to(root).as_posix()).render(**names), encoding="utf-8")
        written.append(target)
    return NewPlugin(folder, names["dist"], names["module"], names["prefix"], tuple(written))
