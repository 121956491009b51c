"""run_check(): facts -> rules engine -> alerts + Summary, for one store and as-of date."""

from __future__ import annotations

import string
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from kamrules.alerts import SEVERITIES, SEVERITY_RANK, Alert, fingerprint_of
from kamrules.errors import EXIT_ALERTS, EXIT_INCOMPLETE, EXIT_OK, InputError
from kamrules.facts import FactSource, account_columns, collect_providers
from kamrules.ruleset import EXTRA_FIELDS, Rule, RuleSet, Variant, check_facts, resolve

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

    @property
    def complete(self) -> bool:
        return not self.failures

    def line(self) -> str:
        sev = ", ".join(f"{self.by_severity.get(s, 0)} {s}" for s in reversed(SEVERITIES))
        rs = ", ".join(f"{k} {v}" for k, v in sorted(self.by_ruleset.items())) or "none"
        out = (f"{self.accounts_checked} accounts checked as of {self.as_of}: {self.alerts} alerts ({sev}); "
               f"by rule set: {rs}; {self.rules_run} rules run, {len(self.skipped)} skipped")
        if self.failures:
            out += f"; {len(self.failures)} FAILED (run incomplete)"
        return out + f"; {self.seconds:.1f}s"

    def details(self) -> list[str]:
        """Lines naming each skipped rule and each failure."""
        reasons: dict[str, list[str]] = {}
        for code, reason in self.skipped:
            reasons.setdefault(reason, []).append(code)
        out = [f"skipped {', '.join(codes)}: {reason}" for reason, codes in reasons.items()]
        out += [f"FAILED {where}: {msg}" for where, msg in self.failures]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of, "accounts_checked": self.accounts_checked, "alerts": self.alerts,
            "by_severity": dict(self.by_severity), "by_ruleset": dict(self.by_ruleset), "rulesets": list(self.rulesets),
            "rules_run": self.rules_run, "skipped": [list(s) for s in self.skipped],
            "failures": [list(f) for f in self.failures], "seconds": round(self.seconds, 3), "complete": self.complete,
            "codes": list(self.codes), "min_severity": self.min_severity, "select": list(self.select), "ignore": list(self.ignore),
        }


@dataclass(frozen=True)
class CheckResult:
    alerts: list[Alert]  # sorted by Alert.sort_key
    summary: Summary
    as_of: str
    rendered: Iterable[str] | None = None  # prerender(alert) of each alert in order, to consume once (run_check's prerender)

    def exit_code(self, fail_on: str = "warning") -> int:
        """3 if the run is incomplete, else 1 if an alert is at or above ``fail_on``, else 0."""
        if not self.summary.complete:
            return EXIT_INCOMPLETE
        if fail_on != "never" and any(a.rank >= SEVERITY_RANK[fail_on] for a in self.alerts):
            return EXIT_ALERTS
        return EXIT_OK


def selected(code: str, select: Sequence[str] = (), ignore: Sequence[str] = ()) -> bool:
    """flake8 semantics: the longest matching prefix of --select / --ignore decides (ignore wins ties)."""
    sel = max((len(p) for p in select if code.startswith(p)), default=-1 if select else 0)
    ign = max((len(p) for p in ignore if code.startswith(p)), default=-1)
    return sel >= 0 and sel > ign


def builtin_ruleset_files(pm, failures: list) -> list:
    files = []
    for impl in reversed(pm.hook.register_rulesets.get_hookimpls()):
        try:
            files += list(impl.function() or [])
        except Exception as e:
            failures.append((f"plugin {impl.plugin_name}: register_rulesets", f"{type(e).__name__}: {e}"))
    return files


def known_facts(store, providers) -> dict[str, set[str]]:
    acc = set(account_columns(store)) | {"account_id"}
    port = {"scope_key", "owner", "owner_email"}
    for p in providers:
        (acc if p.scope == "account" else port).update(tuple(p.facts) + tuple(p.derived))
    return {"account": acc, "portfolio": port}


def load_rulesets(store, pm, rulesets_dirs: Iterable = (), failures: list | None = None, providers=None) -> list[RuleSet]:
    """Built-in + user rule sets, validated against the facts the registered providers produce."""
    failures = [] if failures is None else failures
    if providers is None:
        providers = collect_providers(pm, failures)
    sets = resolve(builtin_ruleset_files(pm, failures), rulesets_dirs)
    problems = check_facts(sets, known_facts(store, providers))
    if problems:
        raise InputError(f"rule-set files have {len(problems)} problem{'s' if len(problems) > 1 else ''}", problems)
    return sets


class _Formatter(string.Formatter):
    """Message formatting where a missing field prints as "n/a" whatever its format spec."""

    def get_value(self, key, args, kwargs):
        return kwargs.get(key, _MISSING) if isinstance(key, str) else super().get_value(key, args, kwargs)

    def format_field(self, value, spec):
        if value is _MISSING:
            return "n/a"
        return super().format_field(value, spec)


_MISSING = object()
_FMT = _Formatter()


class _NA:
    """A missing field: prints as "n/a" whatever its format spec."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return "n/a"


_NA_VALUE = _NA()


class _Fields(dict):
    def __missing__(self, key):
        return _NA_VALUE


_SIMPLE: dict[str, bool] = {}


def _simple(template: str) -> bool:
    """True if every field of ``template`` is a plain name with a literal spec and no conversion:
    then ``str.format_map`` gives exactly what _Formatter gives, several times faster."""
    ok = _SIMPLE.get(template)
    if ok is None:
        try:
            ok = all(name is None or (name.isidentifier() and conv is None and "{" not in (spec or ""))
                     for _, name, spec, conv in string.Formatter().parse(template))
        except ValueError:
            ok = False
        _SIMPLE[template] = ok
    return ok


def format_message(rule: Rule, facts: Mapping[str, Any], thresholds: Mapping[str, Any], as_of: str) -> str:
    if _simple(rule.message):
        fields = _Fields(facts)
        fields.update(thresholds)
        fields["as_of"] = as_of
        return rule.message.format_map(fields)
    return _FMT.vformat(rule.message, (), {**facts, **thresholds, "as_of": as_of})


@dataclass
class _Plan:
    """The rules of one run and their engine form."""

    account: list[Rule]
    portfolio: list[Rule]
    variants: dict[str, tuple[Rule, Variant]]  # engine key -> (rule, variant)

    def strongest(self, fired: Iterable[str]) -> dict[str, tuple[Rule, Variant]]:
        """Per rule code, the highest-severity variant among the fired engine keys."""
        best: dict[str, tuple[Rule, Variant]] = {}
        for key in fired:
            rule, v = self.variants[key]
            if rule.code not in best or SEVERITY_RANK[v.severity] > SEVERITY_RANK[best[rule.code][1].severity]:
                best[rule.code] = (rule, v)
        return best


def _plan(rules: Sequence[Rule]) -> tuple[_Plan, Any, Any]:
    from kamrules.engine import EngineRule, compile_rules

    variants: dict[str, tuple[Rule, Variant]] = {}
    eng: dict[str, list] = {"account": [], "portfolio": []}
    for rule in rules:
        for v in rule.variants():
            key = f"{rule.code}|{v.tier or '*'}|{v.severity}"
            variants[key] = (rule, v)
            eng[rule.scope].append(EngineRule(key, rule.to_durable(v)))
    plan = _Plan([r for r in rules if r.scope == "account"], [r for r in rules if r.scope == "portfolio"], variants)
    acc = compile_rules(eng["account"]) if eng["account"] else None
    port = compile_rules(eng["portfolio"]) if eng["portfolio"] else None
    return plan, acc, port


def run_check(
    store,
    as_of: str,
    rulesets_dirs: Iterable = (),
    rulesets: Iterable[str] = (),
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    min_severity: str = "info",
    pm=None,
    batch_size: int = DEFAULT_BATCH,
    progress=None,
    jobs: int | None = None,
    part_size: int | None = None,
    prerender=None,
) -> CheckResult:
    """Evaluate the enabled, selected rules of the chosen rule sets on every account of ``store``.

    Raises :class:`InputError` for bad rule-set files or names; a provider, plugin hook
    or rule message that fails is named in ``summary.failures`` and the run goes on.
    ``progress``, if given, is called with the number of accounts done so far.
    ``jobs`` worker processes share the accounts (None or 0: one per CPU; books under
    5,000 accounts are checked in this process); ``part_size`` is the accounts per part
    (see :mod:`kamrules.partition`). The alerts do not depend on either.
    ``prerender(alert) -> str`` (an output format's ``item``), if given, is applied to the
    alerts of each part as soon as it is checked, while other parts are still running:
    ``result.rendered`` yields the texts in alert order, once (None if ``prerender`` raised); at most
    about 100 million characters are held, the rest is rendered as it is read.
    """
    from kamrules.engine import EngineError
    from kamrules.partition import PART_SIZE, Part, default_jobs, plan_parts, run_parts

    started = time.perf_counter()
    if pm is None:
        pm = getattr(store, "pm", None)
    if pm is None:
        from kamrules.plugins import default_plugin_manager

        pm = default_plugin_manager()
    if min_severity not in SEVERITY_RANK:
        raise InputError(f"unknown severity {min_severity!r} (expected {', '.join(SEVERITIES)})")
    if not store.table_exists("accounts"):
        raise InputError(f"{getattr(store, 'path', 'store')}: no accounts table (run `kamrules init` and `kamrules import` first)")
    failures: list[tuple[str, str]] = []
    providers = collect_providers(pm, failures)
    sets = load_rulesets(store, pm, rulesets_dirs, failures, providers)
    wanted = list(rulesets)
    names = {rs.name for rs in sets}
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise InputError(f"unknown rule set {', '.join(map(repr, unknown))} (expected one of {', '.join(sorted(names))})")
    chosen = [rs for rs in sets if not wanted or rs.name in wanted]
    rules = [r for rs in chosen for r in rs.rules if r.enabled and selected(r.code, select, ignore)]

    skipped: list[tuple[str, str]] = []
    alerts: list[Alert] = []
    checked = 0
    texts = _Texts(prerender)
    source = FactSource(store, as_of, providers, failures)
    try:
        status = source.fact_status()
        runnable = []
        for rule in rules:
            bad = [status[f] for f in rule.facts if f in status and status[f].state != "ok"]
            if bad:
                st = bad[0]
                skipped.append((rule.code, st.reason if st.state == "unavailable" else f"fact provider {st.name} failed"))
            else:
                runnable.append(rule)
        try:
            plan, acc_engine, port_engine = _plan(runnable)
        except EngineError as e:
            failures.append(("rules engine", str(e)))
            plan, acc_engine, port_engine = _Plan([], [], {}), None, None
        msg_failed: dict[str, int] = {}
        derive_errors = Counter()

        def portfolio_queries() -> dict:
            return source.portfolio_queries() if port_engine is not None else {}

        if acc_engine is not None:
            jobs = jobs or default_jobs()
            parts = plan_parts(store.conn, jobs, part_size or PART_SIZE) if _on_disk(store) else [Part(0, None, None)]
            task = _PartTask(store, source, plan, acc_engine, as_of, min_severity, batch_size, port_engine is not None,
                             prerender, _shared_count() if prerender else None)
            results, queries = run_parts(parts, task, jobs, progress, meanwhile=portfolio_queries,
                                         on_result=texts.add if prerender else None)
            failed: set[str] = set()
            for part, r in zip(parts, results):
                if not isinstance(r, _PartResult):
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
            if failed:  # a provider failed in some part: its rules are skipped everywhere, as in one process
                producer = {f: p.name for p in providers for f in tuple(p.facts) + tuple(p.derived)}
                dropped = set()
                for r in runnable:
                    bad = sorted({producer[f] for f in r.facts if f in producer} & failed)
                    if bad:
                        skipped.append((r.code, f"fact provider {bad[0]} failed"))
                        dropped.add(r.code)
                runnable = [r for r in runnable if r.code not in dropped]
                alerts = [a for a in alerts if a.code not in dropped]
            if port_engine is not None:
                totals = [r.totals for r in results if isinstance(r, _PartResult)]
                rows = source.portfolio(queries, totals, failed)
        else:
            checked = store.count("accounts")
            if port_engine is not None:  # only portfolio rules: account facts still feed over="account_facts" totals
                rows = source.prepare().portfolio()
        if port_engine is not None:
            try:
                fired = port_engine.match(rows)
            except EngineError as e:
                failures.append(("rules engine (portfolio)", str(e)))
                fired = [set() for _ in rows]
            for facts, keys in zip(rows, fired):
                _emit(plan, facts, keys, True, min_severity, as_of, alerts, msg_failed, failures)
        derive_errors.update(source.derive_error_counts())
        for name, n in sorted(derive_errors.items()):
            if n > 1:
                failures.append((f"fact provider {name} (derive)", f"failed on {n} accounts in all"))
    finally:
        source.close()
    for code, n in msg_failed.items():
        if n > 1:
            failures.append((f"rule {code} (message)", f"failed on {n} alerts in all"))

    alerts.sort(key=lambda a: (a.sort_key(), a.scope_key))
    rendered = texts.of(alerts)
    by_sev = Counter(a.severity for a in alerts)
    by_rs = Counter(a.ruleset for a in alerts)
    summary = Summary(
        as_of=as_of, accounts_checked=checked, alerts=len(alerts),
        by_severity={s: by_sev.get(s, 0) for s in SEVERITIES}, by_ruleset=dict(sorted(by_rs.items())),
        rulesets=tuple(rs.name for rs in chosen), rules_run=len(rules) - len(skipped),
        skipped=tuple(skipped), failures=tuple(failures), seconds=time.perf_counter() - started,
        codes=tuple(r.code for r in runnable), min_severity=min_severity, select=tuple(select), ignore=tuple(ignore),
    )
    return CheckResult(alerts=alerts, summary=summary, as_of=as_of, rendered=rendered)


class _Texts:
    """Texts of alerts rendered by the workers, part by part (``add``), kept up to a budget of characters;
    ``of(alerts)`` then yields every alert's text in order (rendering the rest as it goes)."""

    BUDGET = 100_000_000  # characters (100-400 MB): beyond that the rest is rendered while written

    def __init__(self, render):
        self.render, self.by_id, self.failed, self.size = render, {}, render is None, 0

    def add(self, index: int, result) -> None:
        """Keep the texts a part's worker rendered (``result.texts``: [] none, beyond the budget; None: its
        render raised)."""
        if self.failed or not isinstance(result, _PartResult):
            return
        if result.texts is None:  # a plugin format's item() raised: the format renders (and reports) it
            self.failed = True
            return
        for a, text in zip(result.alerts, result.texts):
            self.by_id[id(a)] = (a, text)  # the alert kept alive: its id stays its own
            self.size += len(text)

    def of(self, alerts: list) -> Iterator[str] | None:
        if self.failed:
            return None

        def texts() -> Iterator[str]:
            for a in alerts:
                got = self.by_id.pop(id(a), None)  # freed as written
                yield got[1] if got is not None and got[0] is a else self.render(a)

        return texts()


def _shared_count():
    """A counter the forked check workers share (multiprocessing.Value in shared memory)."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None).Value("q", 0)


def _on_disk(store) -> bool:
    path = getattr(store, "path", "") or ""
    return path not in ("", ":memory:") and not path.startswith("file:")


def _emit(plan: _Plan, facts: dict, fired: set[str], portfolio: bool, min_severity: str, as_of: str,
          alerts: list, msg_failed: dict, failures: list) -> None:
    best = plan.strongest(fired)
    for code in sorted(best):
        rule, v = best[code]
        if SEVERITY_RANK[v.severity] >= SEVERITY_RANK[min_severity]:
            alerts.append(_alert(rule, v, facts, as_of, portfolio, msg_failed, failures))


def _temp_in_memory(conn) -> None:
    """Keep the provider temp tables of the caller's connection in memory (not a temp file): only if it
    has no temp objects, because changing temp_store deletes them."""
    if conn.execute("PRAGMA temp_store").fetchone()[0] != 2 and conn.execute("SELECT count(*) FROM sqlite_temp_master").fetchone()[0] == 0:
        conn.execute("PRAGMA temp_store = MEMORY")


@dataclass
class _PartResult:
    alerts: list
    checked: int
    failures: list
    derive_errors: dict
    msg_failed: dict
    failed_providers: set
    totals: dict  # FactSource.account_totals() of the part
    texts: list | None = None  # render(alert) of each alert, in the part's worker (None: render raised)


@dataclass
class _PartTask:
    """The account side of a check for one part of the book (see :mod:`kamrules.partition`)."""

    store: Any
    source: FactSource
    plan: _Plan
    engine: Any
    as_of: str
    min_severity: str
    batch_size: int
    totals: bool  # compute the part's account_totals (a portfolio rule runs)
    render: Any = None  # an output format's item(alert): texts rendered here, in parallel, not in the parent
    rendered: Any = None  # characters rendered by all parts so far (shared): none beyond _Texts.BUDGET

    def __call__(self, part, tick) -> _PartResult:
        from kamrules.engine import EngineError
        from kamrules.partition import connect, restrict

        failures: list = []
        alerts: list[Alert] = []
        msg_failed: dict[str, int] = {}
        store = self.store
        if part.whole:
            _temp_in_memory(store.conn)
        else:
            from kamrules.store import Store

            conn = connect(store.path)
            restrict(conn, part)
            store = Store(store.path, conn, store.pm)
        source = self.source.bound_to(store, failures)
        checked = 0
        totals: dict = {}
        batch: list[dict] = []

        def flush() -> None:
            nonlocal checked
            try:
                fired = self.engine.match(batch)
            except EngineError as e:
                failures.append((f"rules engine (accounts {batch[0].get('account_id')}..{batch[-1].get('account_id')})", str(e)))
                fired = [set() for _ in batch]
            for facts, keys in zip(batch, fired):
                _emit(self.plan, facts, keys, False, self.min_severity, self.as_of, alerts, msg_failed, failures)
            checked += len(batch)
            tick(len(batch))
            batch.clear()

        try:
            with source:
                try:
                    for facts in source.accounts():
                        batch.append(facts)
                        if len(batch) >= max(1, self.batch_size):
                            flush()
                    if batch:
                        flush()
                except Exception as e:  # the composed fact query itself failed mid-stream
                    failures.append(("fact query", f"{type(e).__name__}: {e}"))
                if self.totals:
                    totals = source.account_totals()
        finally:
            if store is not self.store:
                store.close()
        texts: list | None = []  # none rendered: the parent renders them as it writes
        if self.render is not None and alerts and self.rendered.value <= _Texts.BUDGET:
            try:
                texts = [self.render(a) for a in alerts]
            except Exception:  # a plugin format's item(): the parent's format renders (and reports) it
                texts = None
            else:
                with self.rendered.get_lock():
                    self.rendered.value += sum(map(len, texts))
        return _PartResult(alerts, checked, failures, source.derive_error_counts(), msg_failed, source.failed_providers(),
                           totals, texts)


_EVIDENCE: dict[int, tuple[Rule, tuple[str, ...]]] = {}  # id(rule) -> (rule, its evidence facts)


def _alert(rule: Rule, v: Variant, facts: Mapping[str, Any], as_of: str, portfolio: bool,
           msg_failed: dict[str, int], failures: list) -> Alert:
    try:
        message = format_message(rule, facts, v.thresholds, as_of)
    except Exception as e:
        n = msg_failed.get(rule.code, 0)
        msg_failed[rule.code] = n + 1
        if n == 0:
            failures.append((f"rule {rule.code} (message)", f"{type(e).__name__}: {e}"))
        message = f"{rule.name}: {rule.message} (message could not be formatted: {e})"
    names = _EVIDENCE.get(id(rule))
    if names is None or names[0] is not rule:
        if len(_EVIDENCE) > 4096:
            _EVIDENCE.clear()
        names = _EVIDENCE[id(rule)] = (rule, rule.evidence_facts())
    evidence = {f: facts.get(f) for f in names[1]}
    evidence.update(v.thresholds)
    alert = Alert(
        ruleset=rule.ruleset, code=rule.code, rule=rule.name, severity=v.severity, message=message,
        action=rule.action, as_of=as_of,
        account_id=None if portfolio else facts.get("account_id"),
        account_name=None if portfolio else facts.get("name"),
        owner=facts.get("owner"), owner_email=facts.get("owner_email"),
        evidence=evidence, scope_key=str(facts.get("scope_key", "")) if portfolio else "",
    )
    # computed here, in the worker, not in the parent's output; stored where the cached_property keeps it
    # (its first access takes a lock on Python 3.11)
    alert.__dict__["fingerprint"] = fingerprint_of(rule.ruleset, rule.code, alert.account_id, alert.scope_key)
    return alert


__all__ = ["CheckResult", "Summary", "run_check", "selected", "load_rulesets", "format_message", "EXTRA_FIELDS"]
