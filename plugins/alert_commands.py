"""Built-in plugin: `kamrules alerts`, `kamrules silence`, `kamrules notify` (issue 4)."""

from __future__ import annotations

import getpass
import json

import click

from kamrules import hookimpl
from kamrules.cliutils import CliError, Env, db_option, handle_errors, lang_option, pass_env, stderr_is_tty
from kamrules.errors import DeliveryError
from kamrules.i18n import get_lang
from kamrules.termtable import width  # noqa: E402 (one definition of terminal columns)
from kamrules.textsafe import term


def echo(text: str = "", err: bool = False) -> None:
    """click.echo of text holding store values: control and bidi characters shown escaped."""
    click.echo(term(text, keep_newlines=True), err=err)


def table(headers: list[str], data: list[list]) -> str:
    """Store values are escaped (kamrules.textsafe.term) before they are measured and padded."""
    cells = [[term(v) for v in row] for row in [headers] + data]
    widths = [max(width(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _conn(env: Env):
    from kamrules.lifecycle.schema import ensure_schema

    store = env.open_store()
    ensure_schema(store.conn)
    return store


def _loaded_rules(env: Env):
    """(rule codes, rule-set names) of the built-in and configured rule sets; (None, None) if they don't load."""
    from kamrules.check import builtin_ruleset_files, user_rulesets
    from kamrules.errors import KamrulesError
    from kamrules.ruleset import resolve

    try:
        sets = resolve(builtin_ruleset_files(env.pm, []), user_rulesets(env.settings))
    except KamrulesError:
        return None, None
    return [r.code for rs in sets for r in rs.rules], [rs.name for rs in sets]


FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


def register(cli: click.Group) -> None:
    from kamrules.lifecycle import history, outbox, silences
    from kamrules.lifecycle.schema import utcnow

    @cli.group(name="alerts", invoke_without_command=True)
    @click.option(
        "--status",
        type=click.Choice(["firing", "resolved", "all"]),
        default="firing",
        show_default=True,
        help="Without a subcommand: as `alerts list --status`.",
    )
    @click.option("--owner", default=None, help="Without a subcommand: as `alerts list --owner`.")
    @FORMAT
    @db_option
    @lang_option
    @click.pass_context
    def alerts_group(ctx, status, owner, fmt):
        """Alert history: what fired, since when, whether it resolved, when it was last sent.

        \b
        Examples:
          kamrules alerts                       firing alerts (same as `alerts list`)
          kamrules alerts --owner 王磊 --format json
          kamrules alerts list --status all --owner 王磊
          kamrules alerts show 274e503e         one alert (a fingerprint prefix is enough)
        """
        if ctx.invoked_subcommand is None:
            ctx.invoke(alerts_list, status=status, owner=owner, fmt=fmt)

    @alerts_group.command(name="list")
    @click.option("--status", type=click.Choice(["firing", "resolved", "all"]), default="firing", show_default=True)
    @click.option("--owner", default=None, help="Only this owner's alerts.")
    @FORMAT
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def alerts_list(env: Env, status="firing", owner=None, fmt="table"):
        """List the alert history.

        \b
        Examples:
          kamrules alerts list --status resolved
          kamrules alerts list --owner 王磊 --format json
        """
        found = history.list_history(_conn(env).conn, status, owner)
        if fmt == "json":
            for r in found:
                r.pop("alert_json", None)
            return _echo_json(found)
        if not found:
            return click.echo(f"no {'' if status == 'all' else status + ' '}alerts in the history")
        click.echo(
            table(
                ["id", "status", "severity", "code", "account", "owner", "first seen", "last seen", "notified"],
                [
                    [
                        r["fingerprint"][:8],
                        r["status"] + (" (silenced)" if r["silenced"] else ""),
                        r["severity"],
                        r["code"],
                        r["account_name"] or "(portfolio)",
                        r["owner"] or "-",
                        r["first_seen"][:10],
                        r["last_seen"][:10],
                        (r["last_notified"] or "-")[:10],
                    ]
                    for r in found
                ],
            )
        )

    @alerts_group.command(name="show")
    @click.argument("fingerprint")
    @FORMAT
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def alerts_show(env: Env, fingerprint, fmt):
        """Show one alert: its last message, numbers, history of events.

        \b
        Examples:
          kamrules alerts show 274e503e5e5e4782
          kamrules alerts show 274e --format json
        """
        conn = _conn(env).conn
        found = history.find(conn, fingerprint)
        if not found:
            raise CliError(f"no alert with fingerprint {fingerprint!r} (see `kamrules alerts list --status all`)")
        if len(found) > 1:
            raise CliError(
                f"{fingerprint!r} matches {len(found)} alerts: {', '.join(r['fingerprint'] for r in found[:5])}; give more characters"
            )
        r = found[0]
        alert = json.loads(r.pop("alert_json"))
        events = history.events(conn, r["fingerprint"])
        if fmt == "json":
            return _echo_json({**r, "alert": alert, "events": events})
        echo(term(f"{r['fingerprint']}  {r['status']}  {r['severity']}  {r['code']} {r['rule']} ({r['ruleset']})"))
        echo(
            term(
                f"account:  {r['account_name'] or '(portfolio)'} {('(' + r['account_id'] + ')') if r['account_id'] else ''}"
            )
        )
        echo(term(f"owner:    {r['owner'] or '(no owner)'} {r['owner_email'] or ''}".rstrip()))
        shown = (alert.get("texts") or {}).get(get_lang()) or {}  # the stored text in the reader's language
        echo(f"message:  {term(shown.get('message') or r['message'])}")
        echo(f"action:   {term(shown.get('action') or alert.get('action', ''))}")
        from kamrules.messages import human

        for k, v in (alert.get("evidence") or {}).items():  # rounded for people (full values: --format json)
            echo(f"  {term(k)}: {term(v if isinstance(v, str) else '(no value)' if v is None else human(v))}")
        echo(
            f"first seen {r['first_seen']} (as of {r['first_as_of']}), last seen {r['last_seen']} (as of {r['last_as_of']}), "
            f"episode {r['episode']}, last notified {r['last_notified'] or 'never'}"
        )
        for e in events:
            echo(term(f"  {e['at']}  {e['event']:<8} {e['detail'] or ''}"))

    @cli.group(name="silence")
    def silence_group():
        """Silence alerts for a while: still recorded and counted, never sent.

        \b
        Examples:
          kamrules silence add --rule KAM101 --account A001 --until 2026-12-31 --comment "rebate deal under review"
          kamrules silence add --owner 王磊 --until 2026-11-15 --comment "on leave"
          kamrules silence list --all
          kamrules silence expire 3
        """

    @silence_group.command(name="add")
    @click.option(
        "--rule", "rules", multiple=True, metavar="CODE", help="Rule code or prefix (KAM101, KAM1). Repeatable."
    )
    @click.option("--ruleset", "rulesets", multiple=True, metavar="NAME", help="Rule set name. Repeatable.")
    @click.option("--account", "accounts", multiple=True, metavar="ID", help="Account id. Repeatable.")
    @click.option("--owner", "owners", multiple=True, metavar="NAME", help="Owner (KA manager) name. Repeatable.")
    @click.option(
        "--until",
        required=True,
        metavar="DATE",
        help="Last day silenced (YYYY-MM-DD, through its end, UTC) or a UTC time.",
    )
    @click.option("--comment", required=True, help="Why (shown in `silence list`).")
    @click.option("--author", default=None, help="Who silenced it. Default: the login name.")
    @FORMAT
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def silence_add(env: Env, rules, rulesets, accounts, owners, until, comment, author, fmt):
        """Add a silence. Different kinds must all match; values of one kind: any.

        \b
        Examples:
          kamrules silence add --rule KAM101 --until 2026-12-31 --comment "policy change pending"
          kamrules silence add --ruleset stalled_stages --owner 李娜 --until 2026-11-30 --comment "重组中"
        """
        try:
            who = author or getpass.getuser()
        except Exception:
            who = None
        conn = _conn(env).conn
        s = silences.add(
            conn,
            rules=rules,
            rulesets=rulesets,
            accounts=accounts,
            owners=owners,
            until=until,
            comment=comment,
            author=who,
            now=utcnow(),
        )
        codes, names = _loaded_rules(env) if (rules or rulesets) else (None, None)
        for warning in silences.unknown_targets(conn, s.rules, s.rulesets, s.accounts, s.owners, codes, names):
            click.echo(f"warning: {warning}; silence {s.id} added anyway (it matches once that appears)", err=True)
        if fmt == "json":
            return _echo_json(s.to_dict())
        echo(term(f"silence {s.id} added: {s.describe()} until {s.until}"))

    @silence_group.command(name="list")
    @click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
    @FORMAT
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def silence_list(env: Env, show_all, fmt):
        """List active silences (--all: also expired ones).

        \b
        Examples:
          kamrules silence list
          kamrules silence list --all --format json
        """
        now = utcnow()
        found = silences.list_silences(_conn(env).conn, now, include_inactive=show_all)
        if fmt == "json":
            return _echo_json([{**s.to_dict(), "active": s.active(now)} for s in found])
        if not found:
            return click.echo("no silences" if show_all else "no active silences")
        click.echo(
            table(
                ["id", "matches", "until", "active", "author", "comment"],
                [
                    [s.id, s.describe(), s.until, "yes" if s.active(now) else "no", s.author or "-", s.comment]
                    for s in found
                ],
            )
        )

    @silence_group.command(name="expire")
    @click.argument("silence_id", type=int)
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def silence_expire(env: Env, silence_id):
        """End a silence now.

        \b
        Examples:
          kamrules silence expire 3
        """
        s = silences.expire(_conn(env).conn, silence_id, utcnow())
        click.echo(f"silence {s.id} expired at {s.expired_at}")

    @cli.group(name="notify", invoke_without_command=True)
    @click.option(
        "--notifier", "names", multiple=True, metavar="NAME", help="Only this notifier (repeatable). Default: all."
    )
    @click.option(
        "--dry-run",
        "dry_run",
        type=click.Path(file_okay=False),
        metavar="DIR",
        help="Write pending messages to DIR (.eml / .json) instead of sending.",
    )
    @click.option("--ignore-backoff", is_flag=True, help="Retry failed messages now, not at their next attempt time.")
    @FORMAT
    @db_option
    @lang_option
    @pass_env
    @click.pass_context
    @handle_errors
    def notify_group(ctx, env: Env, names, dry_run, ignore_backoff, fmt):
        """Send what is due in the outbox (queued by `check --notify`); exit 4 if some stay undelivered.

        \b
        Examples:
          kamrules notify                       send due messages (cron this after the check)
          kamrules notify --ignore-backoff      retry failed ones now
          kamrules notify --dry-run out/        write .eml files, send nothing
          kamrules notify list                  the outbox
          kamrules notify test --to me@example.com
        """
        if ctx.invoked_subcommand is not None:
            return
        from kamrules.lifecycle import send_due
        from kamrules.lifecycle.notifiers import get_notifiers

        names = list(names) or sorted(get_notifiers(env.pm))
        store = _conn(env)
        if dry_run:
            paths = outbox.dry_run(store.conn, names, dry_run, utcnow())
            if fmt == "json":
                return _echo_json([str(p) for p in paths])
            for p in paths:
                echo(term(str(p)))
            return click.echo(f"{len(paths)} messages written to {dry_run} (nothing sent)", err=True)
        bar = None
        if stderr_is_tty():
            due = outbox.due_messages(store.conn, names, utcnow(), ignore_backoff)
            bar = click.progressbar(length=len(due), label="sending", file=click.get_text_stream("stderr"))
        try:
            report = send_due(
                store, names, env.settings, env.pm, ignore_backoff=ignore_backoff, progress=bar.update if bar else None
            )
        finally:
            if bar:
                bar.render_finish()
        if fmt == "json":
            _echo_json(report.to_dict())
        else:
            for e in report.errors:
                echo(term(f"error: {e}"), err=True)
            rejected = f" ({report.rejected} rejected)" if report.rejected else ""
            click.echo(f"{report.sent} sent, {report.failed} failed{rejected}, {report.undelivered} undelivered")
            if report.in_flight:
                click.echo(report.in_flight_line(), err=True)
        if report.undelivered:
            left = report.undelivered - report.rejected
            parts = [f"{left} messages still queued (retried by the next `kamrules notify`)"] if left else []
            if report.rejected:
                parts.append(
                    f"{report.rejected} refused for good by the receiver, not retried (`kamrules notify list --status rejected`)"
                )
            raise DeliveryError("; ".join(parts))

    @notify_group.command(name="list")
    @click.option(
        "--status",
        type=click.Choice(["pending", "queued", "sending", "failed", "sent", "superseded", "rejected", "all"]),
        default="pending",
        show_default=True,
    )
    @FORMAT
    @db_option
    @lang_option
    @pass_env
    @handle_errors
    def notify_list(env: Env, status, fmt):
        """List outbox messages (default: pending = queued, failed or sending).

        \b
        Examples:
          kamrules notify list
          kamrules notify list --status rejected   refused for good (5xx, HTTP 4xx): never retried
          kamrules notify list --status all --format json
        """
        conn = _conn(env).conn
        found = outbox.list_outbox(conn, status)
        rejected = len(outbox.list_outbox(conn, "rejected")) if status == "pending" else 0
        if rejected:  # not pending (never retried), but nobody got them: say so
            click.echo(
                f"{rejected} messages were refused for good by the receiver: kamrules notify list --status rejected",
                err=True,
            )
        if fmt == "json":
            return _echo_json(found)
        if not found:
            return click.echo("outbox: nothing " + ("" if status == "all" else status))
        click.echo(
            table(
                ["id", "notifier", "recipient", "status", "attempts", "next attempt", "subject / last error"],
                [
                    [
                        r["id"],
                        r["notifier"],
                        r["recipient"],
                        r["status"],
                        r["attempts"],
                        r["next_attempt"],
                        (r["last_error"] or r["subject"])[:70],
                    ]
                    for r in found
                ],
            )
        )

    @notify_group.command(name="test")
    @click.option("--to", "to", required=True, metavar="ADDR", help="Send the test message here.")
    @lang_option
    @pass_env
    @handle_errors
    def notify_test(env: Env, to):
        """Send a test email now (not through the outbox) to check the SMTP settings.

        \b
        Examples:
          kamrules notify test --to me@example.com
          KAMRULES_SMTP_HOST=smtp.example.com KAMRULES_SMTP_USER=bot kamrules notify test --to me@example.com
        """
        from kamrules.lifecycle.testmail import send_test

        e = env.settings.email
        try:
            send_test(env.settings, to)
        except DeliveryError:
            raise
        click.echo(
            f"test message sent to {to} via {e.smtp_host}:{e.port} ({e.smtp_tls}{', as ' + e.smtp_user if e.smtp_user else ''})"
        )


@hookimpl
def register_commands(cli):
    register(cli)
