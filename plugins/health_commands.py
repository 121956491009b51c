"""Built-in plugin: the command `kamrules health` (account health scores, grades and trends)."""

from __future__ import annotations

import csv
import io
import json
import sys

import click

from kamrules import hookimpl
from kamrules.cliutils import (
    CliError,
    Env,
    as_of_option,
    db_option,
    handle_errors,
    lang_option,
    pass_env,
    rulesets_dirs_option,
)
from kamrules.errors import EXIT_INCOMPLETE
from kamrules.i18n import _, amount, get_lang, label, reason_text

HEALTH_HELP = """Each account's health score (0-100), grade, trend and main driver, worst first.

Scores come from the alerts of the check recorded at --as-of (`kamrules check`
records a run); with no recorded run at that date they are computed now from
a check that records nothing (said on stderr). The trend compares with the
previous run and with a run about 30 days earlier: up / down / steady
(within 2 points). The model (weights, penalties, grades, tier profiles) is
the scorecard: docs/health.md.

\b
Examples:
  kamrules health                                 every account, as of today
  kamrules health --as-of 2026-10-31 --owner 王磊
  kamrules health --tier key --grade at_risk --grade critical
  kamrules health --sort change                   the biggest drops first
  kamrules health --format json -o health.json
  kamrules health --scorecard my_scorecard.yaml   a tuned copy of the model

\b
Exit codes: 0 ok; 2 bad usage or input (an unknown owner, a bad scorecard,
a selection that matches no account); 3 the on-the-fly check was incomplete.
"""

CSV_FIELDS = (
    "account_id",
    "account_name",
    "owner",
    "tier",
    "segment",
    "score",
    "grade",
    "grade_zh",
    "trend",
    "change",
    "trend_30d",
    "change_30d",
    "revenue_12m",
    "main_driver",
    "drivers",
)


def _driver(d) -> str:
    return f"{d['code']} {d['rule']} -{d['points']:g}" if d else ""


def _change(direction, change) -> str:
    if direction is None:
        return _("new")
    arrow = {"up": "↑", "down": "↓", "steady": "→"}[direction]
    return f"{arrow}{change:+d}" if change else arrow


def render_csv(report, raw: bool = False) -> str:
    """The report as CSV; cells starting with = + - @ TAB CR get a leading ' (kamrules.textsafe.csv_cell)
    so a spreadsheet reads names from the store as text, unless ``raw``."""
    from kamrules.textsafe import csv_cell

    cell = (lambda v: v) if raw else csv_cell
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for a in report.accounts:
        row = dict(a, main_driver=_driver(a["main_driver"]), drivers="; ".join(_driver(d) for d in a["drivers"]))
        w.writerow(["" if row.get(k) is None else cell(row[k]) for k in CSV_FIELDS])
    return buf.getvalue()


def _grade(g: dict) -> str:
    """A grade's name for people: en ``watch 关注`` (as before), zh ``关注``."""
    zh = g.get("grade_zh", g.get("zh"))
    return zh if get_lang() == "zh" else f"{g.get('grade_en', g.get('en'))} {zh}"


def _summary_line(name: str, s: dict) -> list[str]:
    if get_lang() == "zh":
        grades = "，".join(f"{g['zh']}{g['accounts']}" for g in s["by_grade"].values())
    else:
        grades = ", ".join(f"{g['accounts']} {g['en']}" for g in s["by_grade"].values())
    return [name, str(s["accounts"]), f"{s['average']:.1f}", grades, amount(s["revenue_at_risk"])]


def render_table(report) -> str:
    """The table for people, in the run's language (tiers and grades by their labels, amounts in 万 / 亿 in zh)."""
    from kamrules.termtable import table

    rows = [
        [
            a["account_name"] or a["account_id"],
            a["owner"] or "",
            label("tier", a["tier"]) or "",
            str(a["score"]),
            _grade(a),
            _change(a["trend"], a["change"]) if report.previous else "",
            _change(a["trend_30d"], a["change_30d"]) if report.month else "",
            _driver(a["main_driver"]),
        ]
        for a in report.accounts
    ]
    out = [
        table(
            [_("account"), _("owner"), _("tier"), _("score"), _("grade"), _("trend"), _("30d"), _("main driver")],
            rows,
            max_width=110,
            aligns=["<", "<", "<", ">", "<", "<", "<", "<"],
        ),
        "",
    ]
    summary = [_summary_line(_(o) if o == "(no owner)" else o, s) for o, s in report.owners.items()]
    summary.append(_summary_line(_("whole book"), report.book))
    out.append(
        table(
            [_("owner"), _("accounts"), _("average"), _("grades"), _("revenue at risk (12m)")],
            summary,
            max_width=110,
            aligns=["<", ">", ">", "<", ">"],
        )
    )
    by_grade = _("; ").join(
        _("{grade}: {revenue}").format(grade=_grade(g), revenue=amount(g["revenue_12m"]))
        for g in report.book["by_grade"].values()
    )
    out.append("\n" + _("trailing 12-month revenue by grade: {grades}").format(grades=by_grade))
    return "\n".join(out) + "\n"


def notes(report, as_of: str, output=None) -> list[str]:
    """What health says on stderr, in the run's language: where the scores come from, what the trends
    compare with, the book's summary, skipped rules and failures."""
    if report.computed:
        first = _(
            "no recorded run as of {as_of}: scores computed now from a check that recorded nothing "
            "(`kamrules check --as-of {as_of}` records one)"
        ).format(as_of=as_of)
    else:
        first = _("scores of run {id} (as of {as_of}, finished {finished})").format(
            id=report.run["id"], as_of=as_of, finished=report.run["finished"]
        )
    prev, month = report.previous, report.month
    against = (
        _("trend against run {id} as of {as_of}").format(id=prev["id"], as_of=prev["as_of"])
        if prev
        else _("trend against nothing (no earlier run)")
    )
    thirty = (
        _("30 days: run {id} as of {as_of}").format(id=month["id"], as_of=month["as_of"])
        if month
        else _("30 days: no run about 30 days earlier")
    )
    b = report.book
    out = [
        first,
        against + _("; ") + thirty,
        _("{n} accounts, average {average}; revenue at risk {revenue}").format(
            n=b["accounts"], average=b["average"], revenue=amount(b["revenue_at_risk"])
        ),
    ]
    out += [
        _("skipped {code}: {reason} (not counted; weight shared)").format(code=code, reason=reason_text(reason))
        for code, reason in report.skipped
    ]
    out += [_("FAILED {where}: {msg}").format(where=where, msg=msg) for where, msg in report.failures]
    if output:
        out.append(_("wrote {n} accounts to {output}").format(n=len(report.accounts), output=output))
    return out


@hookimpl
def register_commands(cli):
    @cli.command(name="health", help=HEALTH_HELP)
    @as_of_option
    @click.option("--owner", default=None, metavar="NAME", help="Only this owner's accounts.")
    @click.option(
        "--tier",
        "tiers",
        multiple=True,
        type=click.Choice(["key", "mid", "small"]),
        help="Only these tiers (repeatable).",
    )
    @click.option(
        "--grade", "grades", multiple=True, metavar="GRADE", help="Only these grades, e.g. at_risk (repeatable)."
    )
    @click.option(
        "--sort",
        type=click.Choice(["score", "change", "revenue"]),
        default="score",
        show_default=True,
        help="score: worst first; change: biggest drop first; revenue: biggest first.",
    )
    @click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
    @click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False),
        help="Write to this file instead of stdout (replaced only when complete; never the store or an input).",
    )
    @click.option("--csv-raw", is_flag=True, help="With --format csv: no ' before cells starting with = + - @.")
    @click.option(
        "--scorecard",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="A scorecard YAML file. Default: the built-in one.",
    )
    @rulesets_dirs_option("Your own rule-set folder, for scores computed on the fly (repeatable).")
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def health_command(env: Env, as_of, owner, tiers, grades, sort, fmt, output, csv_raw, scorecard, rulesets_dirs):
        from kamrules.check import user_rulesets
        from kamrules.health_report import health_report
        from kamrules.scorecard import load_scorecard

        if csv_raw and fmt != "csv":
            raise click.UsageError("--csv-raw goes with --format csv")
        if output:  # refused before anything runs: never the store, the scorecard, a rule file, a folder or a FIFO
            env.output_path(
                output,
                tuple(user_rulesets(env.settings, rulesets_dirs)) + ((scorecard,) if scorecard else ()),
                "--output file",
            )
        sc = load_scorecard(scorecard)  # a bad file is exit 2 before the store is touched
        store = env.open_store()
        report = health_report(
            store,
            as_of,
            sc,
            owner=owner,
            tiers=tiers,
            grades=grades,
            sort=sort,
            rulesets_dirs=user_rulesets(env.settings, rulesets_dirs),
            pm=env.pm,
        )
        if fmt == "json":
            text = json.dumps(report.accounts, ensure_ascii=False, indent=2) + "\n"
        elif fmt == "csv":
            text = render_csv(report, raw=csv_raw)
        else:
            text = render_table(report)
        try:
            if output:  # whole or not at all: a full disk or a crash leaves the previous file
                from kamrules.outputs import write_text

                write_text(output, text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
            else:
                click.echo(text, nl=False)
        except OSError as e:
            raise CliError(f"{output or 'stdout'}: cannot write the report: {e}") from e
        from kamrules.runs import stale_warnings

        # as check warns: the default date is today, and old data would make every "days since" look bad
        days = getattr(getattr(env.settings, "check", None), "stale_after_days", 14)
        for line in stale_warnings(store.conn, as_of, days if days is not None else 14):
            click.echo(line, err=True)
        for line in notes(report, as_of, output):
            click.echo(line, err=True)
        if report.failures:
            sys.exit(EXIT_INCOMPLETE)
