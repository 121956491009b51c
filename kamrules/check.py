"""run_check(): facts -> rules engine -> alerts + Summary, for one store and as-of date."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from kamrules.alerts import SEVERITIES, SEVERITY_RANK, Alert
from kamrules.errors import EXIT_ALERTS, EXIT_INCOMPLETE, EXIT_OK, InputError
from kamrules.facts import PORTFOLIO_ADDRESS, FactSource, account_columns, collect_providers
from kamrules.check_parts import _emit, _PartResult, _PartTask, _Plan, _plan, _shared_count, _Texts  # noqa: F401 (_plan: explain)
from kamrules.messages import format_message  # noqa: F401 (part of this module's API)
from kamrules.ruleset import EXTRA_FIELDS, RuleSet, check_facts, resolve

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


def selection(sets: Sequence[RuleSet], select: Sequence[str] = (), ignore: Sequence[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
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
                heads = sorted({c[:len(prefix)] for c in codes} | set(codes))
                near = difflib.get_close_matches(prefix, heads, n=len(heads))
                # among the close ones, the one sharing the longest start (KAM1O1: KAM101, not KAM411)
                near = sorted(near, key=lambda h: -len(os.path.commonprefix([h, prefix])))[:1]
                hint = f"; did you mean {near[0]}?" if near else f" (codes: {', '.join(codes[:8])}{', ...' if len(codes) > 8 else ''})"
                problems.append(f"{option} {prefix!r} matches no rule{hint}")
    if problems:
        raise InputError("\n".join(problems))
    return out[0], out[1]


def selected(code: str, select: Sequence[str] = (), ignore: Sequence[str] = ()) -> bool:
    """flake8 semantics: the longest matching prefix of --select / --ignore decides (ignore wins ties)."""
    sel = max((len(p) for p in select if code.startswith(p)), default=-1 if select else 0)
    ign = max((len(p) for p in ignore if code.startswith(p)), default=-1)
    return sel >= 0 and sel > ign


def builtin_ruleset_files(pm, failures: list) -> list:
    from kamrules.plugins import call_hook

    return [f for _, got in call_hook(pm, "register_rulesets", failures) for f in got]


def known_facts(store, providers) -> dict[str, set[str]]:
    acc = set(account_columns(store)) | {"account_id"}
    port = {"scope_key", *PORTFOLIO_ADDRESS}
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
    plugin_timeout: float | None = None,
    wait: float | None = None,
) -> CheckResult:
    """Evaluate the enabled, selected rules of the chosen rule sets on every account of ``store``.

    Raises :class:`InputError` for bad rule-set files or names; a provider, plugin hook
    or rule message that fails is named in ``summary.failures`` and the run goes on.
    ``progress``, if given, is called with the number of accounts done so far.
    ``jobs`` worker processes share the accounts (None or 0: one per CPU; books under
    5,000 accounts are checked in this process); ``part_size`` is the accounts per part
    (see :mod:`kamrules.partition`). The alerts do not depend on either.
    ``prerender(alert) -> str`` (an output format's ``item``), if given, is applied to the
    alerts of each part by the process that checked it (a worker, in parallel):
    ``result.rendered`` yields the texts in alert order, once (None if ``prerender`` raised); at most
    about 100 million characters are held, the rest is rendered as it is read.
    ``plugin_timeout``: seconds a provider's SQL or one ``derive`` call may run before it is stopped and
    the provider counts as failed (None: the default, 600).

    The whole check reads one state of the store: no other process can commit meanwhile
    (:func:`kamrules.partition.one_snapshot`); it waits up to ``wait`` seconds (default
    ``partition.BUSY_WAIT``) for one that is writing, then raises :class:`StoreBusy` (exit 5).
    """
    from kamrules.partition import BUSY_WAIT, one_snapshot

    if not _on_disk(store):
        return _run_check(store, as_of, rulesets_dirs, rulesets, select, ignore, min_severity, pm, batch_size, progress,
                          jobs, part_size, prerender, plugin_timeout)
    with one_snapshot(store.path, BUSY_WAIT if wait is None else wait):
        return _run_check(store, as_of, rulesets_dirs, rulesets, select, ignore, min_severity, pm, batch_size, progress,
                          jobs, part_size, prerender, plugin_timeout)


def _run_check(store, as_of, rulesets_dirs, rulesets, select, ignore, min_severity, pm, batch_size, progress, jobs,
               part_size, prerender, plugin_timeout) -> CheckResult:
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
    if not store.has_rows("accounts"):
        raise InputError(f"{getattr(store, 'path', 'store')}: no accounts in the store: nothing to check "
                         "(load your data first: `kamrules import DIR`, see docs/data-contract.md)")
    wanted = list(rulesets)
    names = {rs.name for rs in sets}
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise InputError(f"unknown rule set {', '.join(map(repr, unknown))} (expected one of {', '.join(sorted(names))})")
    chosen = [rs for rs in sets if not wanted or rs.name in wanted]
    select, ignore = selection(sets, select, ignore)
    outside = [p for p in select if not any(r.code.startswith(p) for rs in chosen for r in rs.rules)]
    if outside:  # its rules are in rule sets this check leaves out
        raise InputError(f"--select {', '.join(outside)} matches no rule of {', '.join(rs.name for rs in chosen)} "
                         f"(it selects rules of {', '.join(rs.name for rs in sets if any(r.code.startswith(outside[0]) for r in rs.rules))})")
    rules = [r for rs in chosen for r in rs.rules if r.enabled and selected(r.code, select, ignore)]

    skipped: list[tuple[str, str]] = []
    alerts: list[Alert] = []
    checked = 0
    texts = _Texts(prerender)
    source = FactSource(store, as_of, providers, failures, **({"timeout": plugin_timeout} if plugin_timeout else {}))
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


def _on_disk(store) -> bool:
    path = getattr(store, "path", "") or ""
    return path not in ("", ":memory:") and not path.startswith("file:")


__all__ = ["CheckResult", "Summary", "run_check", "selected", "selection", "load_rulesets", "format_message", "EXTRA_FIELDS"]
