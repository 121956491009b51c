"""Built-in plugin: the command `kamrules report` (the portfolio report, one self-contained HTML file)."""

from __future__ import annotations

import time

import click

from kamrules import hookimpl
from kamrules.cliutils import Env, as_of_option, db_option, handle_errors, pass_env, rulesets_dirs_option

REPORT_HELP = """The portfolio report: one HTML file that opens anywhere, offline.

Sections: the book at a glance, health by grade (count and revenue), alerts
by owner and rule set, revenue concentration (Pareto), the pipeline, the
trend over recorded runs, the accounts most at risk, and a section per owner.
Charts are inline SVG and aggregate the whole book; tables hold the --top
accounts. Every style is inline; the file references no network address.

\b
Examples:
  kamrules report -o report.html
  kamrules report --as-of 2026-10-31 --lang zh -o 报告.html
  kamrules report --owner 王磊 --owner 李娜 --top 50 -o team.html
  kamrules report --mail-to ka-director@example.com       (weekly cron job)

\b
Exit codes: 0 ok; 2 bad usage or input (empty store, an --owner nobody has,
an output path refused); 3 the check was incomplete (the report is still
written and says so); 4 --mail-to: the report could not be delivered (kept
in the outbox: `kamrules notify` retries).
"""


@hookimpl
def register_commands(cli):
    @cli.command(name="report", help=REPORT_HELP)
    @as_of_option
    @click.option(
        "--owner",
        "owners",
        multiple=True,
        metavar="NAME",
        help="Sections for these owners only (repeatable). Default: every owner.",
    )
    @click.option(
        "--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True, help="Language of the page."
    )
    @click.option(
        "--top",
        type=click.IntRange(min=1),
        default=20,
        show_default=True,
        help="Accounts per table (most at risk; per owner).",
    )
    @click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False),
        help="Write the page here. Default: kamrules-report-DATE.html unless --mail-to.",
    )
    @click.option(
        "--mail-to",
        "mail_to",
        multiple=True,
        metavar="ADDR",
        help="Email the page as an attachment through the outbox (repeatable).",
    )
    @click.option(
        "--templates",
        "templates_dir",
        type=click.Path(file_okay=False),
        metavar="DIR",
        help="Your own templates (report.html.j2, report.css.j2) override the built-in ones by name.",
    )
    @click.option(
        "--scorecard",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="A scorecard YAML file. Default: the built-in one.",
    )
    @rulesets_dirs_option()
    @db_option
    @pass_env
    @handle_errors
    def report_command(env: Env, as_of, owners, lang, top, output, mail_to, templates_dir, scorecard, rulesets_dirs):
        import sys

        from kamrules.check import user_rulesets
        from kamrules.errors import EXIT_INCOMPLETE
        from kamrules.report import build_report, mail_report, write_report
        from kamrules.scorecard import load_scorecard

        if output is None and not mail_to:
            output = f"kamrules-report-{as_of}.html"
        path = (
            env.output_path(output, inputs=[*rulesets_dirs, *([scorecard] if scorecard else [])], what="report")
            if output
            else None
        )
        sc = load_scorecard(scorecard)
        if mail_to:  # a sender or notifier problem is refused before the check runs
            from kamrules.lifecycle.notifiers import configured_notifiers

            configured_notifiers(env.pm, ["email"], env.settings)
        store = env.open_store()
        t0 = time.monotonic()
        report = build_report(
            store,
            as_of,
            owners=owners,
            lang=lang,
            top=top,
            templates_dir=templates_dir,
            scorecard=sc,
            rulesets_dirs=user_rulesets(env.settings, rulesets_dirs),
            pm=env.pm,
        )
        b = report.data["book"]
        if path is not None:
            write_report(report, path)
            click.echo(
                f"wrote {path}: {report.size / 1024:,.0f} KiB, {b['accounts']} accounts, {b['total_alerts']} alerts, "
                f"{len(report.data['sections'])} owner sections, in {time.monotonic() - t0:.1f}s",
                err=True,
            )
        if mail_to:
            done = mail_report(store, report, list(mail_to), env.settings, env.pm)
            click.echo(
                f"mailed the report to {', '.join(mail_to)} ({done.sent} messages sent from the outbox)", err=True
            )
        if not report.data["complete"]:
            for where, msg in b["failures"]:
                click.echo(f"FAILED {where}: {msg}", err=True)
            sys.exit(EXIT_INCOMPLETE)
