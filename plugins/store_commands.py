"""Built-in plugin: the store commands ``init``, ``import`` and ``generate``."""

from __future__ import annotations

import json
import sys

import click

from kamrules import hookimpl
from kamrules.cliutils import CliError, Env, db_option, handle_errors, parse_date, pass_env, stderr_is_tty
from kamrules.errors import EXIT_ALERTS


class _Bar:
    """A click progress bar on stderr, only when stderr is a terminal; a callable(done, total)."""

    def __init__(self, label: str, enabled: bool, min_total: int = 0):
        self.label = label
        self.min_total = min_total  # small jobs get no bar
        self.enabled = enabled
        self.bar = None
        self.pos = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < self.min_total:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.pos)
        self.pos = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@hookimpl
def register_commands(cli):
    @cli.command(name="init")
    @click.option(
        "--force",
        is_flag=True,
        help="Also make an existing SQLite file of another application a store (adds the kamrules tables to it).",
    )
    @db_option
    @pass_env
    @handle_errors
    def init_command(env: Env, force):
        """Create an empty account store (or bring an existing one up to date).

        Safe to run again: existing data is kept, missing tables are created and
        the schema is migrated to the current version.

        \b
        Examples:
          kamrules init
          kamrules init --db /data/ka.db
          KAMRULES_DB=/data/ka.db kamrules init
          kamrules init --force --db crm.db     add the kamrules tables to another SQLite file
        """
        from kamrules.store import Store

        with Store.open(env.db, pm=env.pm, adopt=force) as store:
            store.init()
            click.echo(
                f"{env.db}: store ready (schema version {store.schema_version}, tables: {', '.join(store.tables)})"
            )

    @cli.command(name="import")
    @click.argument("paths", nargs=-1, required=True, type=click.Path())
    @click.option(
        "--table",
        default=None,
        metavar="NAME",
        help="Load a single file into this table (default: the file's name, e.g. orders.csv -> orders).",
    )
    @click.option(
        "--encoding",
        default=None,
        metavar="ENC",
        help="Text encoding of the files (default: UTF-8 with or without BOM, else GBK/GB18030 detected).",
    )
    @click.option(
        "--skip-invalid",
        "skip_invalid",
        default=None,
        metavar="REJECTS.csv",
        type=click.Path(dir_okay=False),
        help="Load the valid rows and write every refused row, with its reason, to this CSV file.",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Summary format.",
    )
    @click.option(
        "--mapping",
        default=None,
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="A mapping YAML file for a CRM export: file names, headers and values onto the contract.",
    )
    @click.option(
        "--suggest-mapping",
        "suggest",
        is_flag=True,
        help="Import nothing: write a starting mapping file for these files (stdout, or --output).",
    )
    @click.option(
        "--output",
        "-o",
        default=None,
        type=click.Path(dir_okay=False),
        help="With --suggest-mapping: write the mapping to this file (replaced only when complete).",
    )
    @db_option
    @pass_env
    @handle_errors
    def import_command(env: Env, paths, table, encoding, skip_invalid, fmt, mapping, suggest, output):
        """Validate and load data files (CSV, TSV, JSON, JSON Lines) into the store.

        Files are named after their table (accounts.csv, orders.jsonl, ...); a
        folder loads every data file in it, accounts first. A row whose id is
        already in the store is updated (upsert); the summary says how many rows
        were inserted and updated per table. Everything is validated before
        anything is kept: on any problem nothing is written, each problem is
        printed as FILE:LINE: COLUMN: what is wrong, and the exit code is 2.
        With --skip-invalid the valid rows are kept and the exit code is 1 if
        any row was refused. The store is created if it does not exist yet.

        \b
        Examples:
          kamrules import data/
          kamrules import accounts.csv orders.csv
          kamrules import crm_export.csv --table accounts --encoding gbk
          kamrules import data/ --skip-invalid rejects.csv
          kamrules --db ka.db import data/ --format json
          kamrules import export/ --suggest-mapping -o crm.yaml
          kamrules import export/ --mapping crm.yaml
        """
        from kamrules.store import Store

        if suggest:
            _suggest(env, paths, encoding, output, mapping, skip_invalid)
            return
        if output is not None:
            raise click.UsageError("--output goes with --suggest-mapping")

        if skip_invalid is not None:
            # import_paths makes the same check (for API users); made here too so that a refused
            # path creates no store, and the settings file is protected as for every output file
            env.output_path(skip_invalid, paths, "--skip-invalid file")
        bar = _Bar("importing", stderr_is_tty(), min_total=1 << 20)
        try:
            with Store.open(env.db, pm=env.pm) as store:
                report = store.import_paths(
                    list(paths),
                    table=table,
                    encoding=encoding,
                    skip_invalid=skip_invalid,
                    progress=bar,
                    mapping=mapping,
                )
        finally:
            bar.close()
        if fmt == "json":
            click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        else:
            click.echo(str(report))
        if report.rejected:
            # The valid rows are kept, but the import is not whole: a script must not take it for a clean one.
            click.echo(
                f"{report.rejected} row(s) refused, see {report.rejects_path} (exit code {EXIT_ALERTS})", err=True
            )
            sys.exit(EXIT_ALERTS)

    @cli.command(name="generate")
    @click.option(
        "--accounts",
        "accounts",
        type=click.IntRange(0, 10_000_000),
        required=True,
        help="Number of accounts to generate (up to 10,000,000).",
    )
    @click.option(
        "--out",
        "out",
        type=click.Path(file_okay=False),
        default=None,
        help="Write one data file per table into this folder.",
    )
    @click.option(
        "--seed", type=int, default=0, show_default=True, help="Random seed: the same seed gives the same book."
    )
    @click.option(
        "--as-of",
        "as_of",
        default=None,
        metavar="DATE",
        help="The book ends on this date (YYYY-MM-DD). Default: today.",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["csv", "jsonl"]),
        default="csv",
        show_default=True,
        help="File format with --out.",
    )
    @click.option(
        "--defects",
        type=click.FloatRange(0, 1),
        default=None,
        help="Share of accounts carrying a defect (default 0.12).",
    )
    @click.option(
        "--traps",
        type=click.FloatRange(0, 1),
        default=None,
        help="Share of healthy accounts carrying a healthy trap: seasonal, newly won ... (default 0.1).",
    )
    @db_option
    @pass_env
    @handle_errors
    def generate_command(env: Env, accounts, out, seed, as_of, fmt, defects, traps):
        """Generate a realistic synthetic book of accounts (for demos, tests, benchmarks).

        Key / mid / small accounts (about 10 / 30 / 60 %), Chinese and Latin
        names, owners, two years of orders, activities, concessions,
        commitments, complaints and stage histories. A share of the accounts
        carries a defect of the rule catalogue, so every rule has something
        to find; a share of the healthy ones is a trap that must stay quiet. Writes data files (--out DIR) or loads a store (--db PATH).

        \b
        Examples:
          kamrules generate --accounts 200 --out data/ --seed 1 --as-of 2026-10-31
          kamrules generate --accounts 10000 --db book.db
          kamrules generate --accounts 1000 --out data/ --format jsonl
        """
        from kamrules import generate as gen

        as_of = parse_date(as_of, "--as-of")
        kwargs = {} if defects is None else {"defects": defects}
        if traps is not None:
            kwargs["traps"] = traps
        kwargs["pm"] = env.pm  # its rule sets give the defect recipes
        bar = _Bar("generating", stderr_is_tty(), min_total=500)
        try:
            if out:
                from pathlib import Path

                if Path(out).is_dir():  # the files it will replace: none may be the store or not a plain file
                    for name in gen.ORDER:
                        env.output_path(Path(out) / f"{name}.{fmt}", what="--out file")
                stats = gen.generate_to_dir(out, accounts, seed=seed, as_of=as_of, fmt=fmt, progress=bar, **kwargs)
                where = out
            else:
                if env.db_path is None and not _db_given(click.get_current_context()):
                    raise CliError(
                        "generate needs --out DIR or --db PATH (refusing to fill the default store by accident)"
                    )
                from kamrules.store import Store

                with Store.open(env.db, pm=env.pm) as store:
                    stats = gen.generate_to_store(store, accounts, seed=seed, as_of=as_of, progress=bar, **kwargs)
                where = env.db
        finally:
            bar.close()
        total = sum(stats.values()) if isinstance(stats, dict) else 0
        click.echo(f"{where}: {accounts:,} accounts, {total:,} rows (seed {seed}, as of {as_of})")


def _db_given(ctx) -> bool:
    import os

    return bool(os.environ.get("KAMRULES_DB"))


def _suggest(env: Env, paths, encoding, output, mapping, skip_invalid) -> None:
    """``import --suggest-mapping``: the mapping to stdout or ``output``, what was not matched to stderr."""
    from kamrules.mapping_suggest import suggest_mapping
    from kamrules.store import collect_tables

    if mapping is not None or skip_invalid is not None:
        raise click.UsageError("--suggest-mapping imports nothing: it goes without --mapping and --skip-invalid")
    if output is not None:  # never the store, an input file, a folder or a FIFO
        env.output_path(output, paths, "--output file")
    text, notes = suggest_mapping(list(paths), collect_tables(env.pm), encoding)
    for note in notes:
        click.echo(note, err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    from kamrules.outputs import write_text

    try:
        write_text(output, text)
    except OSError as e:
        raise CliError(f"{output}: cannot write the mapping: {e}") from e
    click.echo(f"wrote a mapping for {len(paths)} path(s) to {output}", err=True)
