"""Shared pieces for CLI commands: the run environment, common options, error mapping."""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from kamrules.errors import EXIT_USAGE, KamrulesError
from kamrules.i18n import _


class CliError(click.ClickException):
    """A library error turned into a clean CLI message with its documented exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        from kamrules.textsafe import term

        super().__init__(term(message, keep_newlines=True))  # file names and values may carry escapes
        self.exit_code = exit_code


@dataclass
class Env:
    """What every command gets through ``@pass_env``: settings, plugins, the store path."""

    db_path: str | None = None
    config_path: str | None = None
    plugins_dirs: tuple[str, ...] = ()
    lang_option: str | None = None  # --lang, before $KAMRULES_LANG and the settings' lang (kamrules.i18n)
    _settings: object = field(default=None, repr=False)
    _pm: object = field(default=None, repr=False)

    @property
    def settings(self):
        if self._settings is None:
            from kamrules.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def pm(self):
        if self._pm is None:
            from kamrules.plugins import make_plugin_manager

            dirs = tuple(self.settings.plugins_dirs) + tuple(self.plugins_dirs)
            self._pm = make_plugin_manager(plugins_dirs=dirs)
        return self._pm

    @property
    def db(self) -> str:
        return self.db_path or os.environ.get("KAMRULES_DB") or self.settings.db

    def apply_lang(self) -> str:
        """Set the output language: --lang > $KAMRULES_LANG > kamrules.toml lang > en."""
        from kamrules.i18n import resolve_lang, set_lang

        if self.lang_option or os.environ.get("KAMRULES_LANG"):
            return set_lang(resolve_lang(self.lang_option))
        return set_lang(resolve_lang(None, settings=self.settings))

    def open_store(self, create: bool = False):
        """Open the store; refuses (exit 2) if it does not exist and ``create`` is false."""
        from kamrules.store import Store

        path = Path(self.db)
        if not create and not path.exists():
            folder = path.parent
            if not folder.is_dir():
                raise CliError(
                    _(
                        "{db}: no store here, and its folder {folder} does not exist "
                        "(create the folder first: mkdir -p {folder}; then `kamrules init --db {db}`; or pass --db PATH)"
                    ).format(db=self.db, folder=folder)
                )
            raise CliError(
                _("{db}: no store here (create one with `kamrules init --db {db}` or pass --db PATH)").format(
                    db=self.db
                )
            )
        return Store.open(self.db, pm=self.pm)

    def output_path(self, path, inputs=(), what: str = "output file", store: bool = True):
        """``path`` checked by :func:`kamrules.outputs.check_output_path` against this store and ``inputs``
        (plus the settings file); raises OutputRefused (exit 2)."""
        from kamrules.outputs import check_output_path

        extra = (self.config_path,) if self.config_path else ()
        source = getattr(self.settings, "source", None) if self._settings is not None else None
        if source:
            extra += (source,)
        return check_output_path(path, self.db if store else None, tuple(inputs) + extra, what)


pass_env = click.make_pass_decorator(Env, ensure=True)


def _set_db(ctx, param, value):
    if value is not None:
        ctx.ensure_object(Env).db_path = value
    return value


def db_option(f):
    """``--db PATH`` on every command (also KAMRULES_DB; default ./kamrules.db)."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        default=None,
        expose_value=False,
        callback=_set_db,
        is_eager=True,
        help="The account store (SQLite file). Default: $KAMRULES_DB or ./kamrules.db.",
    )(f)


def _set_lang(ctx, param, value):
    from kamrules.i18n import set_lang

    if value is not None:  # set now too, so that errors found while parsing the options are in this language
        ctx.ensure_object(Env).lang_option = set_lang(value.lower())
    return value


def lang_option(f):
    """``--lang zh|en`` on commands that write for people (also $KAMRULES_LANG, ``lang`` in kamrules.toml)."""
    return click.option(
        "--lang",
        type=click.Choice(["en", "zh"], case_sensitive=False),
        default=None,
        expose_value=False,
        callback=_set_lang,
        is_eager=True,
        help="Language of the output: en or zh. Default: $KAMRULES_LANG, else lang in kamrules.toml, else en.",
    )(f)


def parse_date(value: str | None, what: str = "date") -> str:
    """ISO date text for a user-given date (default: today)."""
    if value is None or value == "today":
        return dt.date.today().isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(
            _("{value!r} is not a date (expected YYYY-MM-DD)").format(value=value), param_hint=what
        ) from None


def as_of_option(f):
    return click.option(
        "--as-of",
        "as_of",
        default=None,
        metavar="DATE",
        callback=lambda ctx, p, v: parse_date(v, "--as-of"),
        help="Evaluate as of this date (YYYY-MM-DD); records after it are ignored. Default: today.",
    )(f)


# The options that choose which rules run, one definition for every command that has them
# (check, rules, explain, backtest, health, report).
ruleset_option = click.option(
    "--ruleset", "rulesets", multiple=True, metavar="NAME", help="Only these rule sets (repeatable)."
)


def _codes(ctx: Any, param: Any, values: tuple[str, ...]) -> tuple[str, ...]:
    """--select/--ignore values: repeatable, and each may be a comma-separated list (flake8's KAM1,KAM203)."""
    return tuple(code.strip() for v in values for code in v.split(",") if code.strip())


select_option = click.option(
    "--select",
    multiple=True,
    metavar="CODE",
    callback=_codes,
    help="Only rules whose code starts with CODE (repeatable, or CODE,CODE).",
)
ignore_option = click.option(
    "--ignore",
    multiple=True,
    metavar="CODE",
    callback=_codes,
    help="Skip rules whose code starts with CODE (repeatable, or CODE,CODE).",
)


def min_severity_option(help_text: str) -> Any:
    from kamrules.vocab import SEVERITIES

    return click.option("--min-severity", type=click.Choice(SEVERITIES), default=None, help=help_text)


def rulesets_dirs_option(help_text: str = "Your own rule-set folder (repeatable).") -> Any:
    return click.option("--rulesets", "rulesets_dirs", multiple=True, type=click.Path(), metavar="DIR", help=help_text)


def handle_errors(f):
    """Turn library errors (KamrulesError) into a clean message and their exit code: no traceback."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            ctx = click.get_current_context(silent=True)
            env = ctx.find_object(Env) if ctx is not None else None
            if env is not None:  # the output language, before the command writes anything
                env.apply_lang()
            return f(*args, **kwargs)
        except KamrulesError as e:
            raise CliError(e.render(), e.exit_code) from e

    return wrapper


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
