"""A check as stages: plan (rules, selection, providers) -> evaluate (the parts of the book) -> merge (alerts + Summary)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from kamrules.alerts import SEVERITIES, SEVERITY_RANK, Alert
from kamrules.check_parts import CompiledRules, PartResult, PartTask, compile_engine, emit
from kamrules.errors import EXIT_ALERTS, EXIT_INCOMPLETE, EXIT_OK, InputError
from kamrules.facts import PORTFOLIO_ADDRESS, FactSource, account_columns, collect_providers, provider_params
from kamrules.i18n import _
from kamrules.messages import format_message  # noqa: F401 (part of this module's API)
from kamrules.ruleset import EXTRA_FIELDS, Rule, RuleSet, check_facts, resolve

if TYPE_CHECKING:
    from pathlib import Path

    import pluggy

    from kamrules.config import Settings
    from kamrules.facts import FactProvider, Facts, Failures
    from kamrules.partition import Part, WorkerDied
    from kamrules.store import Store

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class Summary:
    as_of: str
    accounts_checked: int = 0
    alerts: int = 0
    by_severity: Mapping[str, int] = field(default_factory=dict)
    by_ruleset: Mapping[str, int] = field(default_factory=dict)
    rulesets: tuple[str, ...] = ()
    rules_run: int = 0
    skipped: tuple[tuple[str, str], ...] = ()  # (code, reason)
    failures: tuple[tuple[str, str], ...] = ()  # (where, message)
    seconds: float = 0.0
    codes: tuple[str, ...] = ()  # rule codes run (selected, not skipped): the scope alert history resolves in
    min_severity: str = "info"
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    newest: Mapping[str, str | None] = field(
        default_factory=dict
    )  # {dated table the rules read: newest record on or before as_of}
    stale_after_days: int = 0  # 0: no freshness warning
    stale: tuple[tuple[str, str, int], ...] = ()  # (table, newest record date, days before as_of) past the limit
    stale_rules: tuple[str, ...] = ()  # codes of rules run on a stale table: their windows reach past its newest record

    @property
    def complete(self) -> bool:
        return not self.failures

    def line(self) -> str:
        """The run summary in the output language (kamrules.i18n): counts, rule sets, skipped, failed, time."""
        from kamrules.i18n import _, count

        sev = ", ".join(count(self.by_severity.get(s, 0), s) for s in reversed(SEVERITIES))
        rs = ", ".join(f"{k} {v}" for k, v in sorted(self.by_ruleset.items())) or _("none")
        out = _(
            "{accounts} accounts checked as of {as_of}: {alerts} alerts ({sev}); "
            "by rule set: {rs}; {rules} rules run, {skipped} skipped"
        ).format(
            accounts=self.accounts_checked,
            as_of=self.as_of,
            alerts=self.alerts,
            sev=sev,
            rs=rs,
            rules=self.rules_run,
            skipped=len(self.skipped),
        )
        if self.failures:
            out += _("; {n} FAILED (run incomplete)").format(n=len(self.failures))
        return out + f"; {self.seconds:.1f}s"

    def details(self) -> list[str]:
        """Lines naming each skipped rule and each failure."""
        from kamrules.i18n import _

        reasons: dict[str, list[str]] = {}
        for code, reason in self.skipped:
            reasons.setdefault(reason, []).append(code)
        out = [
            _("skipped {codes}: {reason}").format(codes=", ".join(codes), reason=reason)
            for reason, codes in reasons.items()
        ]
        out += [_("FAILED {where}: {msg}").format(where=where, msg=msg) for where, msg in self.failures]
        return self.warnings() + out

    def warnings(self) -> list[str]:
        """The stale-data warning (empty when every table the rules read is fresh): shown on stderr, in
        Markdown and in digests' headers."""
        if not self.stale:
            return []
        tables = _(", ").join(
            _("{table} {date} ({n} days before)").format(table=t, date=d, n=n) for t, d, n in self.stale
        )
        out = [
            _(
                "WARNING stale data: newest records as of {as_of}: {tables}; more than {days} days old, "
                "so alerts that count days since a record may be false (import fresher data, or set "
                "[check] stale_after_days in kamrules.toml: 0 silences this warning)"
            ).format(as_of=self.as_of, tables=tables, days=self.stale_after_days)
        ]
        if self.stale_rules:
            out.append(
                _("WARNING rules whose windows reach past the newest records: {codes}").format(
                    codes=", ".join(self.stale_rules)
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "accounts_checked": self.accounts_checked,
            "alerts": self.alerts,
            "by_severity": dict(self.by_severity),
            "by_ruleset": dict(self.by_ruleset),
            "rulesets": list(self.rulesets),
            "rules_run": self.rules_run,
            "skipped": [list(s) for s in self.skipped],
            "failures": [list(f) for f in self.failures],
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "codes": list(self.codes),
            "min_severity": self.min_severity,
            "select": list(self.select),
            "ignore": list(self.ignore),
            "newest": dict(self.newest),
            "stale_after_days": self.stale_after_days,
            "stale": [{"table": t, "newest": d, "days": n} for t, d, n in self.stale],
            "stale_rules": list(self.stale_rules),
        }


@dataclass(frozen=True)
class CheckResult:
    alerts: list[Alert]  # sorted by Alert.sort_key
    summary: Summary
    as_of: str

    def exit_code(self, fail_on: str = "warning") -> int:
        """3 if the run is incomplete, else 1 if an alert is at or above ``fail_on``, else 0."""
        if not self.summary.complete:
            return EXIT_INCOMPLETE
        if fail_on != "never" and any(a.rank >= SEVERITY_RANK[fail_on] for a in self.alerts):
            return EXIT_ALERTS
        return EXIT_OK


def selection(
    sets: Sequence[RuleSet], select: Sequence[str] = (), ignore: Sequence[str] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(select, ignore)`` upper-cased (rule codes are capitals and digits, so prefixes match whatever
    their case); a prefix that starts no code of ``sets`` is an :class:`InputError` naming the closest."""
    import difflib
    import os

    codes = sorted({r.code for rs in sets for r in rs.rules})
    out, problems = [], []
    for option, given in (("--select", select), ("--ignore", ignore)):
        norm = tuple(dict.fromkeys(str(p).strip().upper() for p in given))
        out.append(norm)
        for prefix in norm:
            if not prefix or not any(c.startswith(prefix) for c in codes):
                heads = sorted({c[: len(prefix)] for c in codes} | set(codes))
                near = difflib.get_close_matches(prefix, heads, n=len(heads))
                # among the close ones, the one sharing the longest start (KAM1O1: KAM101, not KAM411)
                near = sorted(near, key=lambda h: -len(os.path.commonprefix([h, prefix])))[:1]
                hint = (
                    f"; did you mean {near[0]}?"
                    if near
                    else f" (codes: {', '.join(codes[:8])}{', ...' if len(codes) > 8 else ''})"
                )
                problems.append(f"{option} {prefix!r} matches no rule{hint}")
    if problems:
        raise InputError("\n".join(problems))
    return out[0], out[1]


def selected(code: str, select: Sequence[str] = (), ignore: Sequence[str] = ()) -> bool:
    """flake8 semantics: the longest matching prefix of --select / --ignore decides (ignore wins ties)."""
    sel = max((len(p) for p in select if code.startswith(p)), default=-1 if select else 0)
    ign = max((len(p) for p in ignore if code.startswith(p)), default=-1)
    return sel >= 0 and sel > ign


def builtin_ruleset_files(pm: pluggy.PluginManager, failures: Failures) -> list[str | Path]:
    from kamrules.plugins import call_hook

    return [f for _, got in call_hook(pm, "register_rulesets", failures) for f in got]


def known_facts(store: Store, providers: Iterable[FactProvider]) -> dict[str, set[str]]:
    acc = set(account_columns(store)) | {"account_id"}
    port = {"scope_key", *PORTFOLIO_ADDRESS}
    for p in providers:
        (port if p.scope == "portfolio" else acc).update(
            tuple(p.facts) + tuple(p.derived)
        )  # book facts: every account's
    return {"account": acc, "portfolio": port}


def load_rulesets(
    store: Store,
    pm: pluggy.PluginManager,
    rulesets_dirs: Iterable[str | Path] = (),
    failures: Failures | None = None,
    providers: Sequence[FactProvider] | None = None,
) -> list[RuleSet]:
    """Built-in + user rule sets, validated against the facts the registered providers produce."""
    failures = [] if failures is None else failures
    if providers is None:
        providers = collect_providers(pm, failures)
    sets = resolve(builtin_ruleset_files(pm, failures), rulesets_dirs)
    problems = check_facts(sets, known_facts(store, providers))
    if problems:
        raise InputError(f"rule-set files have {len(problems)} problem{'s' if len(problems) > 1 else ''}", problems)
    return sets


def user_rulesets(settings: Settings | None = None, given: Iterable[str | Path] = ()) -> tuple[str, ...]:
    """The user's rule-set folders: the config's ``rulesets`` (relative to the config file) and then ``given``
    (e.g. ``--rulesets``); a file in a later folder replaces one of the same name."""
    from pathlib import Path

    configured = tuple(getattr(settings, "rulesets", ()) or ())
    source = getattr(settings, "source", None)
    base = Path(source).parent if source else Path(".")
    return tuple(str(p if Path(p).is_absolute() else base / p) for p in configured) + tuple(str(g) for g in given)


@dataclass(frozen=True)
class CheckRequest:
    """What to check: the as-of date, which rules (rule sets, folders, select/ignore, minimum severity) and how
    (worker processes, accounts per part, engine batch, plugin timeout, wait for a busy store).

    ``jobs`` None or 0: one worker per CPU (books under 5,000 accounts are checked in this process);
    ``part_size``: accounts per part (see :mod:`kamrules.partition`); the alerts depend on neither.
    ``plugin_timeout``: seconds a provider's SQL or one ``derive`` call may run (None: 600).
    ``wait``: seconds to wait for another process writing the store (None: ``partition.BUSY_WAIT``).
    ``stale_after_days``: warn when a table the rules read has no record in this many days before the as-of
    date (0: never; setting ``[check] stale_after_days``).
    ``langs``: the languages other than English each alert carries its message and action in
    (``Alert.texts``): None every language its rule is written in (what the history stores); ``()`` none.
    """

    as_of: str
    rulesets_dirs: tuple[str, ...] = ()
    rulesets: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    min_severity: str = "info"
    jobs: int | None = None
    part_size: int | None = None
    batch_size: int = DEFAULT_BATCH
    plugin_timeout: float | None = None
    wait: float | None = None
    stale_after_days: int = 14
    langs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("rulesets_dirs", "rulesets", "select", "ignore"):  # any iterable given: kept as a tuple
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value or ()))
        object.__setattr__(self, "as_of", str(self.as_of))

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None,
        as_of: str,
        *,
        rulesets_dirs: Iterable[str | Path] = (),
        select: Sequence[str] = (),
        ignore: Sequence[str] = (),
        min_severity: str | None = None,
        jobs: int | None = None,
        **other: Any,
    ) -> CheckRequest:
        """The request ``kamrules check`` makes: the ``[check]`` settings (select, ignore, min_severity, jobs,
        plugin_timeout) and the configured rule-set folders, unless given here."""
        cfg = getattr(settings, "check", None)

        def get(name: str, default: Any) -> Any:
            return getattr(cfg, name, default) if cfg is not None else default

        return cls(
            as_of=as_of,
            rulesets_dirs=user_rulesets(settings, rulesets_dirs),
            select=tuple(select) or get("select", ()),
            ignore=tuple(ignore) or get("ignore", ()),
            min_severity=min_severity or get("min_severity", "info"),
            jobs=get("jobs", None) if jobs is None else jobs,
            **{"plugin_timeout": get("plugin_timeout", None), "stale_after_days": get("stale_after_days", 14), **other},
        )


@dataclass
class Plan:
    """Stage 1 of a check (:func:`plan`): everything decided before an account is read. Holds the
    :class:`~kamrules.facts.FactSource` of the as-of date: close it (or use the plan as a context manager)."""

    store: Store
    request: CheckRequest
    pm: pluggy.PluginManager
    providers: tuple[FactProvider, ...]
    sets: list[RuleSet]  # every loaded rule set (built-in, plugins', the user's)
    chosen: list[RuleSet]  # the request's rule sets (all when it names none)
    select: tuple[str, ...]  # normalised prefixes (upper case)
    ignore: tuple[str, ...]
    rules: list[Rule]  # enabled and selected rules of the chosen rule sets
    runnable: list[Rule]  # ...less those skipped: what the engines evaluate
    skipped: list[tuple[str, str]]  # (code, reason): a fact's provider has no data or failed
    failures: list[tuple[str, str]]  # (where, message), shared by every stage
    source: FactSource
    compiled: CompiledRules
    account_engine: Any  # None: no account rule runs
    portfolio_engine: Any  # None: no portfolio rule runs
    started: float = field(default_factory=time.perf_counter)

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Evaluation:
    """Stage 2 of a check (:func:`evaluate`): the account side of every part, and the portfolio providers'
    queries (run meanwhile)."""

    parts: list[Part]
    results: list[PartResult | WorkerDied]  # per part, in order
    portfolio_queries: dict[str, list[Facts]]
    newest: dict[str, str | None] | None = (
        None  # {table: newest record date} of the tables the rules read (None: not yet known)
    )


def plan(store: Store, request: CheckRequest, pm: pluggy.PluginManager | None = None) -> Plan:
    """Stage 1: the providers, the rule sets (validated against the facts), the selection, the rules to run and
    those skipped for want of data, the compiled engines. Raises :class:`InputError` for a bad request or rule-set
    file and for a store with no accounts; a failing provider or hook is named in ``plan.failures``.
    Used by :func:`run`, :func:`kamrules.explain.explain_account` and the backtest."""
    from kamrules.engine import EngineError

    started = time.perf_counter()
    if pm is None:
        pm = getattr(store, "pm", None)
    if pm is None:
        from kamrules.plugins import default_plugin_manager

        pm = default_plugin_manager()
    if request.min_severity not in SEVERITY_RANK:
        raise InputError(f"unknown severity {request.min_severity!r} (expected {', '.join(SEVERITIES)})")
    if not store.table_exists("accounts"):
        raise InputError(
            _("{store}: no accounts table (run `kamrules init` and `kamrules import` first)").format(
                store=getattr(store, "path", "store")
            )
        )
    failures: list[tuple[str, str]] = []
    providers = collect_providers(pm, failures)
    sets = load_rulesets(store, pm, request.rulesets_dirs, failures, providers)
    if not store.has_rows("accounts"):
        raise InputError(
            _(
                "{store}: no accounts in the store: nothing to check "
                "(load your data first: `kamrules import DIR`, see docs/data-contract.md)"
            ).format(store=getattr(store, "path", "store"))
        )
    wanted = list(request.rulesets)
    names = {rs.name for rs in sets}
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise InputError(
            _("unknown rule set {names} (expected one of {choices})").format(
                names=", ".join(map(repr, unknown)), choices=", ".join(sorted(names))
            )
        )
    chosen = [rs for rs in sets if not wanted or rs.name in wanted]
    select, ignore = selection(sets, request.select, request.ignore)
    outside = [p for p in select if not any(r.code.startswith(p) for rs in chosen for r in rs.rules)]
    if outside:  # its rules are in rule sets this check leaves out
        raise InputError(
            f"--select {', '.join(outside)} matches no rule of {', '.join(rs.name for rs in chosen)} "
            f"(it selects rules of {', '.join(rs.name for rs in sets if any(r.code.startswith(outside[0]) for r in rs.rules))})"
        )
    rules = [r for rs in chosen for r in rs.rules if r.enabled and selected(r.code, select, ignore)]
    timeout = {"timeout": request.plugin_timeout} if request.plugin_timeout else {}
    source = FactSource(store, request.as_of, providers, failures, **timeout, params=provider_params(providers, rules))
    skipped: list[tuple[str, str]] = []
    runnable = []
    if source.book_providers:  # whole-book facts, once, here: the workers forked by evaluate() inherit them
        source.book_facts({f for r in rules for f in r.evidence_facts()})
    status = source.fact_status()
    for rule in rules:
        bad = [status[f] for f in rule.facts if f in status and status[f].state != "ok"]
        gap = next((source.column_gaps[f] for f in rule.facts if f in source.column_gaps), None)
        if bad:
            st = bad[0]
            skipped.append((rule.code, st.reason if st.state == "unavailable" else f"fact provider {st.name} failed"))
        elif gap:
            skipped.append((rule.code, gap))
        else:
            runnable.append(rule)
    try:
        compiled, acc_engine, port_engine = compile_engine(runnable)
    except EngineError as e:
        failures.append(("rules engine", str(e)))
        compiled, acc_engine, port_engine = CompiledRules([], [], {}), None, None
    except BaseException:
        source.close()
        raise
    compiled.langs = request.langs if request.langs is None else tuple(request.langs)
    return Plan(
        store,
        request,
        pm,
        providers,
        sets,
        chosen,
        select,
        ignore,
        rules,
        runnable,
        skipped,
        failures,
        source,
        compiled,
        acc_engine,
        port_engine,
        started,
    )


def evaluate(
    plan: Plan, parts: Sequence[Part] | None = None, progress: Callable[[int], None] | None = None
) -> Evaluation:
    """Stage 2: the account rules on every part of the book (``parts``: :func:`kamrules.partition.plan_parts`
    by default), in worker processes when there are several parts and jobs; the portfolio providers' queries run
    here meanwhile. ``progress``, if given, is called with the number of accounts done so far."""
    from kamrules.partition import PART_SIZE, Part, default_jobs, plan_parts, run_parts

    request, store = plan.request, plan.store
    if plan.account_engine is None:
        return Evaluation([], [], {})
    jobs = request.jobs or default_jobs()
    if parts is None:
        parts = (
            plan_parts(store.conn, jobs, request.part_size or PART_SIZE) if on_disk(store) else [Part(0, None, None)]
        )
    task = PartTask(
        store,
        plan.source,
        plan.compiled,
        plan.account_engine,
        request.as_of,
        request.min_severity,
        request.batch_size,
        plan.portfolio_engine is not None,
    )

    def meanwhile() -> tuple[dict[str, list[Facts]], dict[str, str | None]]:  # in this process while the workers check
        queries = plan.source.portfolio_queries() if plan.portfolio_engine is not None else {}
        return queries, newest_of(plan, plan.runnable)

    results, got = run_parts(parts, task, jobs, progress, meanwhile=meanwhile)
    queries, newest = cast("tuple[dict[str, list[Facts]], dict[str, str | None]]", got)
    return Evaluation(list(parts), results, queries or {}, newest)


def merge(plan: Plan, evaluation: Evaluation) -> CheckResult:
    """Stage 3: the parts' results as one check: their failures; a provider that failed in any part has its
    rules skipped everywhere (as in one process); the portfolio rules on the merged account totals; the alerts
    sorted (:meth:`Alert.sort_key`) and the :class:`Summary`."""
    from kamrules.engine import EngineError

    request, source, failures = plan.request, plan.source, plan.failures
    skipped, runnable = list(plan.skipped), list(plan.runnable)
    alerts: list[Alert] = []
    msg_failed: dict[str, int] = {}
    derive_errors: Counter[str] = Counter()
    failed: set[str] = set()
    checked = 0
    rows: list[Facts] | None = None
    for part, r in zip(evaluation.parts, evaluation.results, strict=True):
        if not isinstance(r, PartResult):
            failures.append((f"check worker (accounts {part.lo or 'first'} to {part.hi or 'last'})", r.reason))
            continue
        alerts += r.alerts
        checked += r.checked
        known = {where for where, _ in failures}
        failures += [f for f in r.failures if f[0] not in known]
        derive_errors.update(r.derive_errors)
        for code, n in r.msg_failed.items():
            msg_failed[code] = msg_failed.get(code, 0) + n
        failed |= r.failed_providers
    if plan.account_engine is not None:
        if failed:  # a provider failed in some part: its rules are skipped everywhere, as in one process
            producer = {f: p.name for p in plan.providers for f in tuple(p.facts) + tuple(p.derived)}
            dropped = set()
            for rule in runnable:
                bad = sorted({producer[f] for f in rule.facts if f in producer} & failed)
                if bad:
                    skipped.append((rule.code, f"fact provider {bad[0]} failed"))
                    dropped.add(rule.code)
            runnable = [r for r in runnable if r.code not in dropped]
            alerts = [a for a in alerts if a.code not in dropped]
        if plan.portfolio_engine is not None:
            totals = [r.totals for r in evaluation.results if isinstance(r, PartResult)]
            rows = source.portfolio(evaluation.portfolio_queries, totals, failed)
    else:
        checked = plan.store.count("accounts")
        if (
            plan.portfolio_engine is not None
        ):  # only portfolio rules: account facts still feed over="account_facts" totals
            rows = source.prepare().portfolio()
    if plan.portfolio_engine is not None and rows is not None:
        try:
            fired = plan.portfolio_engine.match(rows)
        except EngineError as e:
            failures.append(("rules engine (portfolio)", str(e)))
            fired = [set() for _ in rows]
        for facts, keys in zip(rows, fired, strict=True):
            emit(plan.compiled, facts, keys, True, request.min_severity, request.as_of, alerts, msg_failed, failures)
    derive_errors.update(source.derive_error_counts())
    for name, n in sorted(derive_errors.items()):
        if n > 1:
            failures.append((f"fact provider {name} (derive)", f"failed on {n} accounts in all"))
    for code, n in msg_failed.items():
        if n > 1:
            failures.append((f"rule {code} (message)", f"failed on {n} alerts in all"))

    alerts.sort(key=lambda a: (a.sort_key(), a.scope_key))
    newest, stale, stale_rules = freshness(plan, runnable, evaluation.newest)
    by_sev = Counter(a.severity for a in alerts)
    by_rs = Counter(a.ruleset for a in alerts)
    summary = Summary(
        as_of=request.as_of,
        accounts_checked=checked,
        alerts=len(alerts),
        by_severity={s: by_sev.get(s, 0) for s in SEVERITIES},
        by_ruleset=dict(sorted(by_rs.items())),
        rulesets=tuple(rs.name for rs in plan.chosen),
        rules_run=len(plan.rules) - len(skipped),
        skipped=tuple(skipped),
        failures=tuple(failures),
        seconds=time.perf_counter() - plan.started,
        codes=tuple(r.code for r in runnable),
        min_severity=request.min_severity,
        select=tuple(plan.select),
        ignore=tuple(plan.ignore),
        newest=newest,
        stale_after_days=request.stale_after_days or 0,
        stale=stale,
        stale_rules=stale_rules,
    )
    return CheckResult(alerts=alerts, summary=summary, as_of=request.as_of)


def _reads(plan: Plan, runnable: Sequence[Rule]) -> dict[str, set[str]]:
    """{rule code: the tables its facts come from} (a provider's ``requires`` and those of its ``after``)."""
    by_name = {p.name: p for p in plan.providers}
    tables: dict[str, set[str]] = {}
    for p in plan.providers:  # in order: those of ``after`` come first; a derive reads their facts, so their tables
        tables[p.name] = set(p.requires).union(*(tables.get(n, set()) for n in p.after))
    producer = {f: p.name for p in by_name.values() for f in tuple(p.facts) + tuple(p.derived)}
    return {r.code: {t for f in r.facts if f in producer for t in tables[producer[f]]} for r in runnable}


def newest_of(plan: Plan, runnable: Sequence[Rule]) -> dict[str, str | None]:
    """{dated table the rules read: its newest record on or before the as-of date} (kamrules.runs.newest_dates)."""
    import sqlite3

    from kamrules.runs import newest_dates

    used = set().union(*_reads(plan, runnable).values()) if runnable else set()
    try:
        return newest_dates(plan.store.conn, plan.request.as_of, used) if used else {}
    except sqlite3.Error:  # a store whose tables lack the contract's date columns: no claim about freshness
        return {}


def stale_tables(newest: Mapping[str, str | None], as_of: str, limit: int) -> list[tuple[str, str, int]]:
    """``(table, newest record, days before as_of)`` of the tables whose newest record is more than ``limit``
    days before ``as_of`` (``limit`` 0: none), sorted by table."""
    import datetime as dt

    stale: list[tuple[str, str, int]] = []
    if limit <= 0:
        return stale
    day0 = dt.date.fromisoformat(as_of[:10])
    for table, day in sorted(newest.items()):
        try:
            n = (day0 - dt.date.fromisoformat(str(day)[:10])).days if day else 0
        except ValueError:  # a date the import let through as text: no claim about it
            continue
        if n > limit:
            stale.append((table, str(day)[:10], n))
    return stale


def freshness(
    plan: Plan, runnable: Sequence[Rule], newest: dict[str, str | None] | None = None
) -> tuple[dict[str, str | None], tuple[tuple[str, str, int], ...], tuple[str, ...]]:
    """``(newest, stale, stale_rules)`` of a check: the newest record on or before the as-of date of each dated
    table the run rules read (through their facts' providers' ``requires``), those more than
    ``request.stale_after_days`` days before it, and the rules reading them. ``newest``: as computed during
    :func:`evaluate` (while the workers ran), for these ``runnable`` rules or more."""

    reads = _reads(plan, runnable)
    used = set().union(*reads.values()) if reads else set()
    newest = {t: d for t, d in (newest_of(plan, runnable) if newest is None else newest).items() if t in used}
    stale = stale_tables(newest, plan.request.as_of, plan.request.stale_after_days or 0)
    old = {t for t, _, _ in stale}
    stale_rules = tuple(sorted(code for code, read in reads.items() if read & old))
    return dict(sorted(newest.items())), tuple(stale), stale_rules


def run(
    store: Store,
    request: CheckRequest,
    pm: pluggy.PluginManager | None = None,
    progress: Callable[[int], None] | None = None,
) -> CheckResult:
    """A whole check: :func:`plan`, :func:`evaluate`, :func:`merge`, on one state of the store.

    Raises :class:`InputError` for bad rule-set files or names; a provider, plugin hook or rule message that
    fails is named in ``summary.failures`` and the run goes on. No other process can commit meanwhile
    (:func:`kamrules.partition.one_snapshot`): the check waits up to ``request.wait`` seconds for one that is
    writing, then raises :class:`StoreBusy` (exit 5). Rendering is the output format's, on ``result.alerts``.
    """
    from kamrules.partition import BUSY_WAIT, one_snapshot

    with (
        one_snapshot(store.path, BUSY_WAIT if request.wait is None else request.wait)
        if on_disk(store)
        else nullcontext()
    ):
        with plan(store, request, pm) as p:
            return merge(p, evaluate(p, progress=progress))


def run_check(
    store: Store,
    as_of: str,
    pm: pluggy.PluginManager | None = None,
    progress: Callable[[int], None] | None = None,
    **request: Any,
) -> CheckResult:
    """``run(store, CheckRequest(as_of, **request), pm, progress)``: the keyword form of a check, kept for callers
    of the 15-parameter function (``rulesets_dirs``, ``rulesets``, ``select``, ``ignore``, ``min_severity``,
    ``jobs``, ``part_size``, ``batch_size``, ``plugin_timeout``, ``wait``: see :class:`CheckRequest`)."""
    return run(store, CheckRequest(as_of, **request), pm, progress)


def on_disk(store: Store) -> bool:
    """True for a store in a file (workers and snapshots need one), not ``:memory:`` or a URI."""
    path = getattr(store, "path", "") or ""
    return path not in ("", ":memory:") and not path.startswith("file:")


__all__ = [
    "CheckRequest",
    "CheckResult",
    "Evaluation",
    "Plan",
    "Summary",
    "evaluate",
    "merge",
    "plan",
    "run",
    "run_check",
    "selected",
    "selection",
    "load_rulesets",
    "user_rulesets",
    "format_message",
    "EXTRA_FIELDS",
]
