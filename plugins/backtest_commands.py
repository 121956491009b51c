"""Built-in plugin: the command `kamrules backtest` (the rule sets at every date of a range, read-only)."""

from __future__ import annotations

import sys

import click

from kamrules import hookimpl
from kamrules.cliutils import (
    CliError,
    Env,
    db_option,
    handle_errors,
    ignore_option,
    lang_option,
    min_severity_option,
    parse_date,
    pass_env,
    ruleset_option,
    rulesets_dirs_option,
    select_option,
)
from kamrules.errors import EXIT_INCOMPLETE
from kamrules.i18n import _, get_lang

BACKTEST_HELP = """Evaluate the rule sets at every date of a range, writing nothing.

The alerts at each date are exactly those of `kamrules check --as-of` that
date; the store is opened read-only, so no history, outbox or run is
recorded. The table shows, per date, the alerts by severity and rule set,
new and resolved against the previous date, and the accounts per health
grade. --compare DIR checks a tuned copy of the rule files at the same
dates and shows, per date and rule, the alerts it adds and removes.

\b
Examples:
  kamrules backtest --from 2026-08-01 --to 2026-10-31            weekly
  kamrules backtest --from 2026-01-31 --to 2026-10-31 --every month
  kamrules backtest --from 2026-10-01 --to 2026-10-31 --every 3d --select KAM1
  kamrules backtest --from 2026-08-01 --to 2026-10-31 --compare tuned/
  kamrules backtest --from 2026-08-01 --to 2026-10-31 --format jsonl -o alerts.jsonl

\b
Exit codes: 0 ok; 2 bad usage or input (--from after --to, a bad --every,
bad rule files); 3 a rule or plugin failed at some date (the output is
still written, the failures are named on stderr).
"""


def _every(every: str) -> str:
    """--every as the title says it: as given in en; zh ``周`` / ``月`` / ``3天`` (after 每)."""
    if get_lang() == "en":
        return every
    from kamrules.backtest import parse_every

    unit, n = parse_every(every)
    if unit == "months":
        return _("month")
    return _("week") if str(every).strip() == "week" else _("{n} days").format(n=n)


@hookimpl
def register_commands(cli):

    @cli.command(name="backtest", help=BACKTEST_HELP)
    @click.option("--from", "start", required=True, metavar="DATE", help="The first date (YYYY-MM-DD).")
    @click.option("--to", "end", default=None, metavar="DATE", help="The last date (YYYY-MM-DD). Default: today.")
    @click.option("--every", default="week", show_default=True, metavar="week|month|Nd", help="The step between dates.")
    @ruleset_option
    @select_option
    @ignore_option
    @min_severity_option("Only alerts at or above this. Default: info (or [check] min_severity).")
    @rulesets_dirs_option("Your own rule-set folder (repeatable), as for check.")
    @click.option(
        "--compare",
        "compare",
        multiple=True,
        type=click.Path(),
        metavar="DIR",
        help="A folder of tuned rule files, laid over the current ones (repeatable): per date and rule, the alerts it adds and removes.",
    )
    @click.option(
        "--scorecard",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="The scorecard for the health grades. Default: the built-in one.",
    )
    @click.option(
        "--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]), default="table", show_default=True
    )
    @click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
    @click.option(
        "--jobs",
        "-j",
        type=click.IntRange(0, 64),
        default=None,
        metavar="N",
        help="Worker processes per date, as for check.",
    )
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def backtest_command(
        env: Env,
        start,
        end,
        every,
        rulesets,
        select,
        ignore,
        min_severity,
        rulesets_dirs,
        compare,
        scorecard,
        fmt,
        output,
        jobs,
    ):
        from itertools import chain

        from kamrules.backtest import backtest, date_range, open_read_only
        from kamrules.backtest_report import render
        from kamrules.check import user_rulesets
        from kamrules.outputs import atomic_output
        from kamrules.scorecard import load_scorecard

        start, end = parse_date(start, "--from"), parse_date(end, "--to")
        dates = date_range(start, end, every)  # exit 2 before the store is opened
        sc = load_scorecard(scorecard)
        if output:  # never the store, a rule file or the scorecard; written whole or not at all
            env.output_path(
                output,
                tuple(user_rulesets(env.settings, rulesets_dirs))
                + tuple(compare or ())
                + ((scorecard,) if scorecard else ()),
                "--output file",
            )
        cfg = env.settings.check
        store = open_read_only(env.db, env.pm)
        failed: list[tuple[str, str, str]] = []

        def progress(i: int, n: int, as_of: str) -> None:
            click.echo(_("backtest: date {i}/{n} ({as_of})").format(i=i, n=n, as_of=as_of), err=True)

        def noted(results):
            for r in results:
                for side, res in (("", r.result), ("tuned ", r.tuned)):
                    for where, msg in res.summary.failures if res is not None else ():
                        failed.append((r.as_of, side + where, msg))
                click.echo(
                    _("  {as_of}: {n} alerts").format(as_of=r.as_of, n=len(r.alerts))
                    + (
                        _(", {new} new, {resolved} resolved").format(new=len(r.new), resolved=len(r.resolved))
                        if r.new is not None
                        else ""
                    )
                    + (
                        _("; tuned: {added} added, {removed} removed").format(
                            added=sum(len(d.added) for d in r.diffs), removed=sum(len(d.removed) for d in r.diffs)
                        )
                        if r.diffs is not None
                        else ""
                    ),
                    err=True,
                )
                yield r

        try:
            results = backtest(
                store,
                dates,
                rulesets_dirs=user_rulesets(env.settings, rulesets_dirs),
                rulesets=rulesets,
                select=select or cfg.select,
                ignore=ignore or cfg.ignore,
                min_severity=min_severity or cfg.min_severity,
                pm=env.pm,
                jobs=cfg.jobs if jobs is None else jobs,
                compare=compare or None,
                scorecard=sc,
                progress=progress if len(dates) > 1 else None,
            )
            first = next(results)  # bad rule files, an empty store: exit 2 before any output is opened
            title = _("backtest {first} to {last} every {every}: {n} dates, {accounts} accounts").format(
                first=dates[0],
                last=dates[-1],
                every=_every(every),
                n=len(dates),
                accounts=first.result.summary.accounts_checked,
            ) + (_("; tuned: {dirs}").format(dirs=", ".join(compare)) if compare else "")
            chunks = render(fmt, noted(chain([first], results)), sc, title)
            try:
                if output:
                    with atomic_output(output, encoding="utf-8-sig" if fmt == "csv" else "utf-8") as f:
                        for chunk in chunks:
                            f.write(chunk)
                else:
                    for chunk in chunks:
                        click.echo(chunk, nl=False)
            except OSError as e:
                raise CliError(f"{output or 'stdout'}: cannot write the report: {e}") from e
        finally:
            store.close()
        for as_of, where, msg in failed:
            click.echo(_("FAILED at {as_of}: {where}: {msg}").format(as_of=as_of, where=where, msg=msg), err=True)
        if output:
            click.echo(_("wrote the backtest of {n} dates to {output}").format(n=len(dates), output=output), err=True)
        if failed:
            sys.exit(EXIT_INCOMPLETE)
