"""The ``kamrules`` command line: a thin layer; commands come from plugins."""

from __future__ import annotations

import json
import sys

import click

from kamrules import __version__
from kamrules.cliutils import CliError, Env, db_option, handle_errors, lang_option, pass_env
from kamrules.errors import EXIT_INCOMPLETE, KamrulesError

EPILOG = """\b
Examples:
  kamrules demo                        generate a book, check it, print the alerts
  kamrules init && kamrules import data/
  kamrules check --as-of 2026-10-31 --format json
  kamrules rules
Docs: docs/getting-started.md. Exit codes: 0 ok, 1 alerts at/above --fail-on,
2 bad usage or input, 3 a rule or plugin failed, 4 notifications undelivered,
5 the store is busy (another process is writing it).
"""


def _scan_option(args: list[str], name: str) -> list[str]:
    """Values of ``name`` in raw args (both ``--x V`` and ``--x=V``), before parsing."""
    out = []
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(name + "="):
            out.append(a.split("=", 1)[1])
    return out


class KamrulesGroup(click.Group):
    """Loads plugins (incl. ``--plugins-dir``) before resolving the command name."""

    def make_context(self, info_name, args, parent=None, **extra):
        env = Env(
            plugins_dirs=tuple(_scan_option(args, "--plugins-dir")),
            config_path=next(reversed(_scan_option(args, "--config")), None),  # the last one given
        )
        from kamrules.plugins import register_commands

        self.plugin_failures: list[tuple[str, str]] = []
        try:
            register_commands(env.pm, self, self.plugin_failures)
            # "auto" is the matcher's own default: no need to import it (unless an earlier run in this
            # process chose another)
            if env.settings.check.engine != "auto" or "kamrules.engine" in sys.modules:
                from kamrules.engine import configure

                configure(None if env.settings.check.engine == "auto" else env.settings.check.engine)
        except KamrulesError as e:
            raise CliError(e.render(), e.exit_code) from e
        for where, what in self.plugin_failures:  # the other commands still run; this one's are missing
            click.echo(f"Warning: {where} failed: {what} (its commands are not available)", err=True)
        extra.setdefault("obj", env)
        return super().make_context(info_name, args, parent=parent, **extra)

    def resolve_command(self, ctx, args):
        if (
            args
            and args[0] not in self.commands
            and getattr(self, "plugin_failures", None)
            and not args[0].startswith("-")
        ):
            failed = "; ".join(f"{where} failed: {what}" for where, what in self.plugin_failures)
            raise CliError(f"no command {args[0]!r}: it may come from a plugin that failed ({failed})", EXIT_INCOMPLETE)
        return super().resolve_command(ctx, args)

    def main(self, *args, **kwargs):
        kwargs.setdefault("windows_expand_args", False)
        try:
            return super().main(*args, **kwargs)
        finally:  # --lang holds for this invocation only (the library's default stays en)
            from kamrules.i18n import set_lang

            set_lang(None)


def _show_version(ctx, param, value):
    """``--version``: kamrules' version and the matcher its checks use (durable_rules or Python)."""
    if not value or ctx.resilient_parsing:
        return
    from kamrules.engine import describe

    click.echo(f"kamrules, version {__version__}\nmatcher: {describe()}")
    ctx.exit()


@click.group(cls=KamrulesGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and the matcher in use, and exit.",
)
@click.option(
    "--plugins-dir",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Load plugins (*.py) from this folder (also $KAMRULES_PLUGINS_DIR).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="Settings file (default ./kamrules.toml if present, or $KAMRULES_CONFIG).",
)
@db_option
@lang_option
def cli(plugins_dir, config):
    """Watch the health of your key accounts.

    kamrules evaluates rule sets against an account store (a SQLite file) as of
    a date and reports alerts: over-subsidised key accounts, neglected small
    clients, missing escalation channels, stalled development stages, and more.
    """


@cli.command(name="plugins")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_env
@handle_errors
def plugins_command(env: Env, fmt):
    """List loaded plugins: name, version and the hooks they implement.

    \b
    Examples:
      kamrules plugins
      kamrules --plugins-dir my_plugins/ plugins --format json
    """
    from kamrules.plugins import get_plugins

    rows = get_plugins(env.pm)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from kamrules.textsafe import term

    names = [term(r["name"]) for r in rows]  # a plugin file's name may carry escape sequences
    width = max(len(n) for n in names)
    for name, r in zip(names, rows, strict=True):
        click.echo(f"{name:<{width}}  {term(r['version']) or '-':<8}  {', '.join(r['hooks']) or '-'}")
    from kamrules.engine import describe

    click.echo(f"matcher: {describe()}")
