"""Every plugin hook kamrules calls, with how it is called and an example.

Hooks are called with keyword arguments. Unless a hook says ``firstresult``,
pluggy calls every implementation and the caller gets a list of their return
values (``None`` results are dropped). Built-in behaviour is implemented by the
plugins in ``kamrules_plugins`` (the repository's ``plugins/`` folder) and the
rule sets in ``kamrules_rulesets`` (``rulesets/<name>/``) through these same hooks,
registered as entry points of the group ``kamrules`` like any third-party plugin. Implement them with ``from kamrules import hookimpl``.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("kamrules")
hookimpl = pluggy.HookimplMarker("kamrules")


@hookspec
def register_tables():
    """Declare tables of the account store.

    Returns a list of :class:`kamrules.contract.Table`. Called once per plugin
    manager; the results of all plugins are merged (a name declared twice is an
    error). ``kamrules init`` creates the tables and ``kamrules import``
    validates and loads files named after them.

    Example::

        @hookimpl
        def register_tables():
            from kamrules.contract import C, Table
            return [Table("invoices", (C("id", required=True),
                                       C("account_id", required=True, references="accounts.id"),
                                       C("due_on", "date", required=True),
                                       C("amount", "float", required=True),
                                       C("paid_on", "date")))]
    """


@hookspec
def register_facts():
    """Contribute per-account (or portfolio) facts derived from the store.

    Returns a list of :class:`kamrules.facts.FactProvider`. Each provider gives
    one SQL query that computes named facts for the check's as-of date; rules
    refer to facts by name. All providers' results are merged per account.

    Example::

        @hookimpl
        def register_facts():
            from kamrules.facts import FactProvider
            return [FactProvider(
                name="receivables",
                requires=("invoices",),
                facts=("overdue_amount",),
                sql=\"\"\"SELECT account_id, SUM(amount) AS overdue_amount
                         FROM invoices WHERE paid_on IS NULL AND due_on < :as_of
                         GROUP BY account_id\"\"\")]
    """


@hookspec
def register_rulesets():
    """Contribute rule-set files (YAML, see docs/rulesets.md).

    Returns a list of paths (``str`` or ``pathlib.Path``). A user's own folder
    (``--rulesets DIR``) overrides a registered rule set with the same name.

    Example::

        @hookimpl
        def register_rulesets():
            return [pathlib.Path(__file__).parent / "receivables.yaml"]
    """


@hookspec
def register_defect_recipes():
    """Contribute defect recipes: how ``kamrules generate`` bends an account so that a rule fires.

    Returns a list of :class:`kamrules.bookgen.Defect` objects. Each recipe's
    ``kind`` is the name of a rule of a loaded rule set (anything else is a
    PluginError); ``tiers`` and ``statuses`` say which accounts can carry it. The
    generator gives a share ``--defects`` of the accounts a defect (drawn among the
    kinds each fits) and the first accounts one kind each, so that even a small book
    fires every rule. The list may also hold healthy traps
    (:class:`kamrules.bookgen.Trap`: ``kind`` names the trap, ``quiet`` the rules
    that must not fire on it), given to a share ``--traps`` of the healthy accounts. Recipes are ordered by their rule codes, each plugin's in the
    order it returns them; the same recipes, seed and date give the same book.
    A recipe overrides the builder steps it needs (see ``Defect``'s methods, called
    in that order); it draws from ``acc.rng`` only where the default does, or in
    rows of its own.

    in rows of its own. Rows go to the core tables (``acc.rows[table]``, tuples in
    the contract's column order).

    Example (open complaints piling up, for a rule ``complaints_piling_up``)::

        @hookimpl
        def register_defect_recipes():
            from kamrules.bookgen import Defect, iso

            class ComplaintsPilingUp(Defect):
                kind, tiers = "complaints_piling_up", ("key", "mid")

                def extra_complaints(self, acc):
                    for k in range(5):
                        acc.rows["complaints"].append(
                            (acc.next_id("Q"), acc.id, iso(acc.as_of - 10 - k), None, "high", True))

            return [ComplaintsPilingUp()]
    """


@hookspec
def register_output_formats():
    """Contribute output formats for ``kamrules check --format NAME``.

    Returns a list of :class:`kamrules.formats.OutputFormat`.

    Example::

        @hookimpl
        def register_output_formats():
            return [OutputFormat(name="count", description="number of alerts",
                                 render=lambda alerts, summary: f"{len(alerts)}\\n")]
    """


@hookspec
def register_notifiers():
    """Contribute notifiers (ways alerts reach people), e.g. email or a webhook.

    Returns a list of notifier objects following the protocol
    :class:`kamrules.lifecycle.notifiers.Notifier`. ``kamrules check --notify NAME``
    and ``kamrules notify --notifier NAME`` select one by its ``name`` (two
    notifiers with one name are a PluginError). kamrules calls, in order:

    - ``route(items, settings)`` -> ``(groups, unrouted)``: ``items`` are the
      :class:`~kamrules.lifecycle.notifiers.DueItem` s due this run (``item.alert``,
      ``item.reason`` new|changed|reminder|resolved, ``item.status``); ``groups``
      maps a recipient (address, URL, ...) to its items, one message each;
      ``unrouted`` lists the items nobody can receive (shown in the summary).
    - ``render(recipient, items, key, as_of, settings)`` -> ``Rendered(subject, payload)``:
      ``payload`` is exactly the bytes ``send`` transmits; it is committed to the
      outbox before anything is sent. Put the idempotency ``key`` in it (a
      Message-ID, a header) so a receiver can drop a duplicate.
    - ``send(recipient, payload, settings)``: deliver or raise any exception; the
      message then stays queued and is retried with exponential backoff (by the
      next check or ``kamrules notify``); the check exits 4. Delivery is
      at-least-once: a crash after the receiver accepted a message but before
      kamrules recorded it resends it once, with the same key. ``send`` runs under the
      run's deadline (``notify_deadline``; ``notifiers.time_left()``); one still running
      then is abandoned and counted as failed. An exception with ``permanent = True``
      (refused for good) makes the message ``rejected``: not retried.
    - optional ``unrouted_reason(item, settings)`` -> ``str``: why ``route`` left ``item``
      unrouted, in the notifier's own words (shown in the summary; docs/plugins.md).
    - optional ``check_settings(settings)``: raise InputError if misconfigured; called
      before a check runs with ``--notify NAME``, so a refusal records nothing.

    Renotify intervals, silences and the per-alert state are handled by the core:
    a notifier only sees what is due. Never log secrets from ``settings``.

    Example::

        @hookimpl
        def register_notifiers():
            from kamrules.lifecycle.notifiers import Rendered

            class FileNotifier:
                name = "file"
                def route(self, items, settings):
                    return {"alerts.log": list(items)}, []
                def render(self, recipient, items, key, as_of, settings):
                    lines = [f"{key} {as_of} {i.alert.code} {i.reason}" for i in items]
                    return Rendered(f"{len(items)} alerts", ("\\n".join(lines) + "\\n").encode())
                def send(self, recipient, payload, settings):
                    with open(recipient, "ab") as f:
                        f.write(payload)

            return [FileNotifier()]
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``kamrules`` CLI.

    ``cli`` is the top-level :class:`click.Group`; add commands to it. Returns
    nothing.

    Example::

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")
    """


@hookspec
def rename_columns(table, columns, path):
    """Map the column names of an input file onto the data contract.

    Called by ``kamrules import`` for every input file, with the target
    ``table`` name, the file's ``columns`` (list of header names, in order) and
    its ``path``. Return a dict ``{source_name: contract_name}`` for the columns
    to rename, or ``None``. The mappings of all plugins are merged.

    Example (a CRM export with its own headers)::

        @hookimpl
        def rename_columns(table, columns, path):
            if table == "accounts" and "客户编号" in columns:
                return {"客户编号": "id", "客户名称": "name", "客户等级": "tier"}
    """
