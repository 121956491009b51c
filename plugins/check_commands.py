"""Built-in plugin: the commands check, rules, explain and demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kamrules import hookimpl
from kamrules.cliutils import (
    CliError,
    Env,
    as_of_option,
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
    stderr_is_tty,
)
from kamrules.errors import EXIT_ALERTS, EXIT_INCOMPLETE, EXIT_OK, EXIT_UNDELIVERED, KamrulesError
from kamrules.formats import output_formats  # noqa: F401 (imported from here by older code)
from kamrules.textsafe import term
from kamrules.vocab import SEVERITIES as SEVERITY_CHOICES  # noqa: E402

FAIL_ON_CHOICES = ("info", "warning", "critical", "never")
BUILTIN_FORMATS = "table|json|jsonl|csv|markdown"


def _progress(env: Env, store, label: str):
    """A click progress bar on stderr when it is a terminal; else no-op callbacks."""
    if not stderr_is_tty():
        return None, None
    bar = click.progressbar(length=store.count("accounts"), label=label, file=sys.stderr)
    bar.__enter__()
    state = {"done": 0}

    def update(done: int) -> None:
        bar.update(done - state["done"])
        state["done"] = done

    return update, bar


def _write(text, output: str | None, bom: bool = False) -> None:
    """Write a format's output: one string, or an iterable of chunks written as they come.

    A file is written whole or not at all (kamrules.outputs.atomic_output): a failure or a crash
    midway leaves the previous file, and no partial one."""
    chunks = [text] if isinstance(text, str) else text
    if output:  # a BOM lets spreadsheet programs read Chinese CSV as UTF-8
        from kamrules.outputs import write_text

        write_text(output, chunks, encoding="utf-8-sig" if bom else "utf-8")
    else:  # click.echo flushes on every call: hand it about 64 KiB at a time (one write each)
        held: list[str] = []
        size = 0
        for chunk in chunks:
            held.append(chunk)
            size += len(chunk)
            if size >= 65536:
                click.echo("".join(held), nl=False)
                held, size = [], 0
        if held:
            click.echo("".join(held), nl=False)


def _open_store(env: Env, wait: float | None):
    """The store, or StoreBusy (exit 5) when another process holds it locked past our wait."""
    import sqlite3

    from kamrules.errors import InputError, StoreBusy
    from kamrules.partition import busy_message, is_busy

    try:
        return env.open_store()
    except (sqlite3.OperationalError, InputError) as e:  # Store.open wraps SQLite's error in an InputError
        if is_busy(e) or is_busy(e.__cause__):
            raise StoreBusy(busy_message(env.db)) from None  # opening waits sqlite3's own 5 s
        raise


def _builtin_table(form) -> bool:
    from kamrules_plugins.formats import render_table

    return form.render is render_table


def decide_exit(result, fail_on: str, undelivered: int = 0) -> int:
    """Precedence 3 > 4 > 1 > 0 (2 is raised as an error before we get here)."""
    if not result.summary.complete:
        return EXIT_INCOMPLETE
    if undelivered:
        return EXIT_UNDELIVERED
    return EXIT_ALERTS if result.exit_code(fail_on) == EXIT_ALERTS else EXIT_OK


CHECK_HELP = """Check every account against the rule sets as of a date and report alerts.

\b
Examples:
  kamrules check                                  all rule sets, as of today
  kamrules check --as-of 2026-10-31 --format json > alerts.json
  kamrules check --ruleset over_subsidising --min-severity warning
  kamrules check --select KAM1 --ignore KAM104    prefixes; the longest match wins
  kamrules check --rulesets my_rules/             my tuned copies replace built-ins
  kamrules check --notify email --fail-on critical
  kamrules check --jobs 1                         one process (default: one per CPU)

\b
Exit codes: 0 nothing at or above --fail-on; 1 alerts at or above it;
2 bad usage or input; 3 a rule or plugin failed (run incomplete);
4 notifications could not be delivered (they stay queued);
5 the store is busy (another process is writing it): try again.
"""


def _langs_read(no_history: bool) -> tuple[str, ...] | None:
    """The languages besides English the alerts' texts are rendered in: every one when the history records
    them (readers and digests in any language), else only the output's (CheckRequest.langs)."""
    from kamrules.i18n import DEFAULT, get_lang

    if not no_history:
        return None
    lang = get_lang()
    return () if lang == DEFAULT else (lang,)


@hookimpl
def register_commands(cli):
    @cli.command(name="check", help=CHECK_HELP)
    @as_of_option
    @ruleset_option
    @select_option
    @ignore_option
    @min_severity_option("Report only alerts at or above this. Default: info (or [check] min_severity).")
    @click.option(
        "--format",
        "fmt",
        default="table",
        show_default=True,
        metavar="FORMAT",
        help=f"{BUILTIN_FORMATS}, or a plugin's format.",
    )
    @click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False),
        help="Write the report to this file instead of stdout (replaced only when complete; never the store or an input).",
    )
    @click.option(
        "--csv-raw",
        is_flag=True,
        help="With --format csv: no ' before cells starting with = + - @ (same as --format csv-raw).",
    )
    @click.option(
        "--fail-on",
        type=click.Choice(FAIL_ON_CHOICES),
        default=None,
        help="Exit 1 if an alert is at or above this. Default: warning.",
    )
    @rulesets_dirs_option("Your own rule-set folder (repeatable); a file with a built-in's name replaces it.")
    @click.option(
        "--notify", multiple=True, metavar="NAME", help="Send alerts through this notifier, e.g. email (repeatable)."
    )
    @click.option("--no-history", is_flag=True, help="Do not record the alerts in the history (and send nothing).")
    @click.option(
        "--jobs",
        "-j",
        type=click.IntRange(0, 64),
        default=None,
        metavar="N",
        help="Worker processes sharing the accounts. Default: one per CPU (or [check] jobs); 0: the same; 1: no workers. Books under 5,000 accounts always run in one process.",
    )
    @click.option(
        "--wait",
        type=click.FloatRange(0, 3600),
        default=None,
        metavar="SECONDS",
        help="How long to wait for another process writing the store (an import) before giving up with exit 5. Default: 10.",
    )
    @click.option("--batch-size", type=click.IntRange(1, 1000), default=500, hidden=True)
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def check_command(
        env: Env,
        as_of,
        rulesets,
        select,
        ignore,
        min_severity,
        fmt,
        output,
        csv_raw,
        fail_on,
        rulesets_dirs,
        notify,
        no_history,
        jobs,
        wait,
        batch_size,
    ):
        from kamrules.check import CheckRequest, run, user_rulesets

        cfg = env.settings.check
        if csv_raw:
            if fmt not in ("csv", "csv-raw"):
                raise click.UsageError("--csv-raw goes with --format csv")
            fmt = "csv-raw"
        format_failures: list = []
        formats = output_formats(env.pm, format_failures)
        if fmt not in formats:
            for where, msg in format_failures:
                click.echo(f"FAILED {where}: {msg}", err=True)
            raise click.BadParameter(
                f"{fmt!r} is not a format (expected one of {', '.join(sorted(formats))})", param_hint="--format"
            )
        if no_history and notify:
            raise click.UsageError("--notify needs the history; drop --no-history")
        if notify:  # every notifier known and configured before anything runs or is recorded (exit 2)
            from kamrules.lifecycle.notifiers import configured_notifiers

            configured_notifiers(env.pm, list(notify), env.settings)
        if output:
            env.output_path(output, user_rulesets(env.settings, rulesets_dirs), "--output file")
        request = CheckRequest.from_settings(
            env.settings,
            as_of,
            rulesets_dirs=rulesets_dirs,
            rulesets=rulesets,
            select=select,
            ignore=ignore,
            min_severity=min_severity,
            jobs=jobs,
            batch_size=batch_size,
            wait=wait,
            langs=_langs_read(no_history),
        )
        store = _open_store(env, wait)
        update, bar = _progress(env, store, "checking")
        try:
            result = run(store, request, env.pm, progress=update)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        try:
            # rendered here, after the merge: faster than in the workers (alerts and texts both pickled back)
            # or in this process as parts arrive (measured at 10k accounts, docs/architecture.md)
            form = formats[fmt]
            if fmt == "table" and not no_history and result.summary.complete and _builtin_table(form):
                from kamrules.runs import check_health, trend_text  # the score this run records, and its trend

                health = {a: trend_text(h) for a, h in check_health(store.conn, result, env.pm, env.settings).items()}
                _write(form.render(result.alerts, result.summary, health=health), output)
            else:
                _write(form.render(result.alerts, result.summary), output, bom=fmt.startswith("csv"))
        except KamrulesError:
            raise
        except OSError as e:
            raise CliError(f"{output or 'stdout'}: cannot write the report: {e}") from e
        except Exception as e:  # a plugin's format: report it, keep the exit code documented
            raise CliError(f"output format {fmt!r} failed: {type(e).__name__}: {e}", EXIT_INCOMPLETE) from e
        report = None
        if not no_history:
            from kamrules.lifecycle import record_and_notify

            report = record_and_notify(store, result, notify=tuple(notify), settings=env.settings, pm=env.pm)
        s = result.summary
        click.echo(term(s.line()), err=True)
        for line in s.details():
            click.echo(term(line), err=True)
        line = getattr(report, "summary_line", None)
        if callable(line):
            click.echo(term(line(), keep_newlines=True), err=True)
        if output:
            click.echo(f"wrote {len(result.alerts)} alerts to {output}", err=True)
        code = decide_exit(result, fail_on or cfg.fail_on, getattr(report, "undelivered", 0) or 0)
        if code:
            sys.exit(code)

    @cli.command(name="rules")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "markdown"]),
        default="table",
        show_default=True,
        help="markdown: the whole rule and fact reference (docs/rules.md).",
    )
    @ruleset_option
    @rulesets_dirs_option()
    @select_option
    @ignore_option
    @click.option(
        "--missing-lang",
        "missing_lang",
        default=None,
        metavar="LANG",
        help="Only the rules without a text in LANG (e.g. zh): they fall back to English.",
    )
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def rules_command(env: Env, fmt, rulesets, rulesets_dirs, select, ignore, missing_lang):
        """List rule sets and their rules: codes, severities, thresholds (with tier overrides).

        \b
        Examples:
          kamrules rules
          kamrules rules --ruleset stalled_stages
          kamrules rules --select KAM3 --ignore KAM306   same prefixes as check
          kamrules rules --format json | jq '.[].rules[].code'
          kamrules rules --rulesets my_rules/     after tuning a copied file
          kamrules rules --missing-lang zh        rules still English-only in Chinese output
          KAMRULES_LOAD_PLUGINS= kamrules rules --format markdown > docs/rules.md
        """
        from kamrules.check import builtin_ruleset_files, user_rulesets
        from kamrules.ruleset import resolve

        failures: list = []
        sets = resolve(builtin_ruleset_files(env.pm, failures), user_rulesets(env.settings, rulesets_dirs))
        if rulesets:
            unknown = sorted(set(rulesets) - {s.name for s in sets})
            if unknown:
                raise CliError(
                    f"unknown rule set {', '.join(unknown)} (expected one of {', '.join(s.name for s in sets)})"
                )
            sets = [s for s in sets if s.name in rulesets]
        if select or ignore:
            from dataclasses import replace

            from kamrules.check import selected, selection

            select, ignore = selection(sets, select, ignore)
            sets = [replace(s, rules=tuple(r for r in s.rules if selected(r.code, select, ignore))) for s in sets]
            sets = [s for s in sets if s.rules]
        if missing_lang:
            from dataclasses import replace

            from kamrules.i18n import check_lang

            lang = check_lang(missing_lang, "--missing-lang")
            sets = [replace(s, rules=tuple(r for r in s.rules if lang not in r.langs)) for s in sets]
            sets = [s for s in sets if s.rules]
            if not sets:
                click.echo(f"every rule has its texts in {lang}", err=True)
                return
        if fmt == "json":
            click.echo(json.dumps([s.to_dict() for s in sets], ensure_ascii=False, indent=2))
        elif fmt == "markdown":
            from kamrules.ruledoc import rules_markdown

            click.echo(rules_markdown(sets, env.pm), nl=False)
        else:
            click.echo(render_rules(sets))
        for where, msg in failures:
            click.echo(f"FAILED {where}: {msg}", err=True)
        if failures:
            sys.exit(EXIT_INCOMPLETE)

    @cli.command(name="explain")
    @click.argument("account_id")
    @as_of_option
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @ruleset_option
    @rulesets_dirs_option()
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def explain_command(env: Env, account_id, as_of, fmt, rulesets, rulesets_dirs):
        """Show one account's facts and, for every rule, whether it fired and why (not).

        \b
        Examples:
          kamrules explain A000012 --as-of 2026-10-31
          kamrules explain A000012 --ruleset over_subsidising
          kamrules explain A000012 --format json
        """
        from kamrules.check import user_rulesets
        from kamrules.explain import explain_account

        store = env.open_store()
        ex = explain_account(store, account_id, as_of, user_rulesets(env.settings, rulesets_dirs), rulesets, pm=env.pm)
        from kamrules.health import explain_section, render_explain_section  # issue 16: how the score was computed

        health = explain_section(ex)
        if fmt == "json":
            click.echo(json.dumps(dict(ex.to_dict(), health=health), ensure_ascii=False, indent=2))
        else:
            click.echo(render_explanation(ex) + "\n\n" + "\n".join(render_explain_section(health)))
        for where, msg in ex.failures:
            click.echo(term(f"FAILED {where}: {msg}"), err=True)
        if ex.failures:
            sys.exit(EXIT_INCOMPLETE)

    @cli.command(name="demo")
    @click.option(
        "--accounts",
        type=click.IntRange(1, 1_000_000),
        default=2000,
        show_default=True,
        help="How many accounts to generate.",
    )
    @click.option(
        "--db",
        "demo_db",
        default="kamrules-demo.db",
        show_default=True,
        type=click.Path(dir_okay=False),
        help="Where to leave the demo store (replaced if it exists).",
    )
    @click.option(
        "--seed", type=int, default=1, show_default=True, help="Random seed: the same seed gives the same book."
    )
    @click.option(
        "--as-of",
        "as_of",
        default="2026-10-31",
        show_default=True,
        metavar="DATE",
        help="The date the book is generated up to and checked as of.",
    )
    @click.option(
        "--owners",
        "max_owners",
        type=int,
        default=3,
        show_default=True,
        help="Show the alerts of this many owners (0 = all).",
    )
    @lang_option
    @pass_env
    @handle_errors
    def demo_command(env: Env, accounts, demo_db, seed, as_of, max_owners):
        """Generate a realistic book, check it with every rule set, print the alerts.

        Leaves the store (kamrules-demo.db) to explore with check, explain and rules.

        \b
        Examples:
          kamrules demo
          kamrules demo --accounts 10000 --seed 7
          kamrules check --db kamrules-demo.db --as-of 2026-10-31 --format json
        """
        as_of = parse_date(as_of, "--as-of")
        print_demo(env, accounts, demo_db, seed, as_of, max_owners)


def print_demo(env: Env, accounts: int, demo_db: str, seed: int, as_of: str, max_owners: int) -> None:
    from kamrules.check import run_check
    from kamrules.generate import generate_to_store
    from kamrules.store import Store

    path = Path(demo_db)
    refuse_demo_target(env, path)
    for p in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm"), Path(str(path) + "-journal")):
        if p.exists():
            p.unlink()
    store = Store.open(path, pm=env.pm)
    store.init()
    click.echo(f"generating {accounts} accounts into {path} (seed {seed}, as of {as_of}) ...", err=True)
    generate_to_store(store, accounts, seed=seed, as_of=as_of)
    result = run_check(store, as_of=as_of, pm=env.pm)
    from kamrules_plugins.formats import render_table

    alerts = list(result.alerts)
    owners: list = []
    for a in alerts:
        if a.owner not in owners:
            owners.append(a.owner)
    shown = alerts if not max_owners else [a for a in alerts if a.owner in owners[:max_owners]]
    click.echo(render_table(shown, result.summary), nl=False)
    if len(shown) < len(alerts):
        click.echo(
            f"… {len(alerts) - len(shown)} more alerts for {len(owners) - max_owners} more owners: "
            f"kamrules check --db {path} --as-of {as_of}"
        )
    click.echo(result.summary.line(), err=True)
    for line in result.summary.details():
        click.echo(line, err=True)
    store.close()


def refuse_demo_target(env: Env, path: Path) -> None:
    """The demo replaces its store: only a kamrules store that is not the one in use (--db / $KAMRULES_DB / config)."""
    import sqlite3

    from kamrules.errors import InputError
    from kamrules.store import _check_sqlite_file, foreign_reason

    env.output_path(path, what="demo store")  # the store in use, a folder, a FIFO: refused
    if not path.exists() or path.stat().st_size == 0:
        return
    _check_sqlite_file(path)  # not SQLite: refused
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        reason = foreign_reason(conn)
    except sqlite3.DatabaseError as e:
        reason = str(e)
    finally:
        conn.close()
    if reason:
        raise InputError(
            f"{path}: not a kamrules store ({reason}); the demo replaces its --db file, refusing to delete this one"
        )


def _fmt_threshold(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    return str(v)


def render_rules(sets) -> str:
    from kamrules.i18n import get_lang
    from kamrules.termtable import wrap

    out = []
    for rs in sets:
        out.append(term(f"{rs.name} ({len(rs.rules)} rules){'' if rs.builtin else '  [' + rs.path + ']'}"))
        if rs.description:
            out += ["  " + ln for ln in wrap(term(rs.description_in(get_lang()), keep_newlines=True), 76)]
        for r in rs.rules:
            flag = "" if r.enabled else "  (disabled)"
            sev = "/".join(sorted({v.severity for v in r.variants()}, key=SEVERITY_CHOICES.index))
            # a rule without all its texts in another language falls back to English there: say so
            only = "" if len(r.langs) > 1 else "  (English only)"
            out.append(
                term(f"  {r.code}  {r.name}  [{sev}{', portfolio' if r.scope == 'portfolio' else ''}]{flag}{only}")
            )
            for name, v in r.thresholds.items():
                tiers = "; ".join(f"{t}: {_fmt_threshold(o[name])}" for t, o in r.tiers.items() if name in o)
                out.append(term(f"      {name}: {_fmt_threshold(v)}" + (f"  (tiers: {tiers})" if tiers else "")))
            if r.description:
                out += ["      " + ln for ln in wrap(term(r.description_in(get_lang()), keep_newlines=True), 72)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_explanation(ex) -> str:
    """The text of `kamrules explain`: store values escaped (kamrules.textsafe.term), CJK aligned."""
    from kamrules.i18n import _
    from kamrules.termtable import pad, truncate, width, wrap

    head = _("account {account} as of {date}").format(account=term(ex.account_id), date=term(ex.as_of))
    out = [head, "", _("facts:")]
    from kamrules.messages import human

    # numbers rounded for people (full values: --format json); a missing fact says so
    none = _("(no value)")
    facts = {term(k): term(v if isinstance(v, str) else none if v is None else human(v)) for k, v in ex.facts.items()}
    w = max((width(k) for k in facts), default=0)
    for k, v in facts.items():
        out.append(f"  {pad(k, w)}  {truncate(v, 76 - w)}")
    out += ["", _("rules:")]
    # the status column is 5 wide: zh labels are two characters (4 columns)
    label = {"fired": _("FIRED"), "not_fired": "-", "skipped": _("skip"), "portfolio": _("port"), "disabled": _("off")}
    for v in ex.verdicts:
        lines = wrap(term(v.text or v.reason, keep_newlines=True), 80 - 2 - 8 - 2 - 5 - 2)
        out.append(f"  {term(v.code):<8}  {pad(label[v.status], 5)}  {lines[0]}")
        out += [" " * 19 + ln for ln in lines[1:]]
    return "\n".join(out)
