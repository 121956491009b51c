"""One part of a check: its accounts' facts matched by the engine and the alerts built (stage 2 of kamrules.check)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kamrules.alerts import SEVERITY_RANK, Alert, fingerprint_of
from kamrules.bulkload import collector_paused
from kamrules.facts import FactSource
from kamrules.messages import format_message
from kamrules.ruleset import Rule, Variant
from kamrules.ruletext import localized


@dataclass
class CompiledRules:
    """The rules of one run and their engine form."""

    account: list[Rule]
    portfolio: list[Rule]
    variants: dict[str, tuple[Rule, Variant]]  # engine key -> (rule, variant)
    langs: tuple[str, ...] | None = None  # the other languages alerts carry texts in (None: all; CheckRequest.langs)

    def strongest(self, fired: Iterable[str]) -> dict[str, tuple[Rule, Variant]]:
        """Per rule code, the highest-severity variant among the fired engine keys."""
        best: dict[str, tuple[Rule, Variant]] = {}
        for key in fired:
            rule, v = self.variants[key]
            if rule.code not in best or SEVERITY_RANK[v.severity] > SEVERITY_RANK[best[rule.code][1].severity]:
                best[rule.code] = (rule, v)
        return best


def compile_engine(rules: Sequence[Rule]) -> tuple[CompiledRules, Any, Any]:
    """The rules' variants keyed for the matcher, and the compiled account and portfolio matchers (None: no rule)."""
    from kamrules.engine import MatchRule, compile_matcher

    variants: dict[str, tuple[Rule, Variant]] = {}
    eng: dict[str, list] = {"account": [], "portfolio": []}
    for rule in rules:
        for v in rule.variants():
            key = f"{rule.code}|{v.label}|{v.severity}"
            variants[key] = (rule, v)
            eng[rule.scope].append(MatchRule(key, rule, v))
    plan = CompiledRules(
        [r for r in rules if r.scope == "account"], [r for r in rules if r.scope == "portfolio"], variants
    )
    acc = compile_matcher(eng["account"]) if eng["account"] else None
    port = compile_matcher(eng["portfolio"]) if eng["portfolio"] else None
    return plan, acc, port


def emit(
    plan: CompiledRules,
    facts: dict,
    fired: set[str],
    portfolio: bool,
    min_severity: str,
    as_of: str,
    alerts: list,
    msg_failed: dict,
    failures: list,
) -> None:
    """Append to ``alerts`` the strongest fired variant of each rule at or above ``min_severity``."""
    best = plan.strongest(fired)
    for code in sorted(best):
        rule, v = best[code]
        if SEVERITY_RANK[v.severity] >= SEVERITY_RANK[min_severity]:
            alerts.append(_alert(rule, v, facts, as_of, portfolio, msg_failed, failures, plan.langs))


def _temp_in_memory(conn) -> None:
    """Keep the provider temp tables of the caller's connection in memory (not a temp file): only if it
    has no temp objects, because changing temp_store deletes them."""
    if (
        conn.execute("PRAGMA temp_store").fetchone()[0] != 2
        and conn.execute("SELECT count(*) FROM sqlite_temp_master").fetchone()[0] == 0
    ):
        conn.execute("PRAGMA temp_store = MEMORY")


@dataclass
class PartResult:
    alerts: list
    checked: int
    failures: list
    derive_errors: dict
    msg_failed: dict
    failed_providers: set
    totals: dict  # FactSource.account_totals() of the part


@dataclass
class PartTask:
    """The account side of a check for one part of the book (see :mod:`kamrules.partition`)."""

    store: Any
    source: FactSource
    plan: CompiledRules
    engine: Any
    as_of: str
    min_severity: str
    batch_size: int
    totals: bool  # compute the part's account_totals (a portfolio rule runs)
    opened: dict | None = None  # part index -> its restricted Store, kept open across dates (kamrules.backtest_run)
    multi_date: tuple[str, ...] | None = None  # every date of a backtest (FactSource.use_dates)

    def __call__(self, part, tick) -> PartResult:
        # The part makes no reference cycles worth collecting (a failing derive's traceback at most):
        # the cyclic collector would only rescan the facts and alerts in flight, and, in a forked
        # worker, the inherited heap (3-5% of a check's CPU at 100k, alternating runs). Restored after.
        with collector_paused():
            return self._check(part, tick)

    def _check(self, part, tick) -> PartResult:
        from kamrules.engine import EngineError
        from kamrules.partition import connect, restrict

        failures: list = []
        alerts: list[Alert] = []
        msg_failed: dict[str, int] = {}
        store = self.store
        if part.whole:
            _temp_in_memory(store.conn)
        elif self.opened is not None and part.index in self.opened:  # a backtest's worker: the part's store, kept open
            store = self.opened[part.index]
        else:
            from kamrules.store import Store

            conn = connect(store.path)
            restrict(conn, part)
            store = Store(store.path, conn, store.pm)
            if self.opened is not None:
                self.opened[part.index] = store
        source = self.source.bound_to(store, failures)
        if self.multi_date is not None:  # a backtest: the multi-date providers' facts, all dates in one pass
            source.use_dates(self.multi_date)
        checked = 0
        totals: dict = {}
        batch: list[dict] = []

        def flush() -> None:
            nonlocal checked
            try:
                fired = self.engine.match(batch)
            except EngineError as e:
                failures.append(
                    (f"rules engine (accounts {batch[0].get('account_id')}..{batch[-1].get('account_id')})", str(e))
                )
                fired = [set() for _ in batch]
            for facts, keys in zip(batch, fired, strict=True):
                emit(self.plan, facts, keys, False, self.min_severity, self.as_of, alerts, msg_failed, failures)
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
            if store is not self.store and self.opened is None:
                store.close()
        return PartResult(
            alerts, checked, failures, source.derive_error_counts(), msg_failed, source.failed_providers(), totals
        )


def _texts(
    rule: Rule, v: Variant, facts: Mapping[str, Any], as_of: str, langs: tuple[str, ...] | None = None
) -> dict[str, dict[str, str]]:
    """The alert's message and action in every other language the rule is written in: all of them, not only
    the run's, so that the history can show and mail each alert in any reader's language (``langs``: only
    these, for a run whose alerts no one reads in another language: no history, one output language)."""
    out = {}
    for lang, tr in rule.translations.items():
        if langs is not None and lang not in langs:
            continue
        try:
            message = format_message(rule, localized(facts, lang), v.thresholds, as_of, lang) if tr.message else ""
        except Exception:  # the English message is the one reported as failed; this one falls back to it
            message = ""
        out[lang] = {"message": message, "action": rule.action_for(facts, v.thresholds, lang)}
    return out


_EVIDENCE: dict[int, tuple[Rule, tuple[str, ...]]] = {}  # id(rule) -> (rule, its evidence facts)


def _alert(
    rule: Rule,
    v: Variant,
    facts: Mapping[str, Any],
    as_of: str,
    portfolio: bool,
    msg_failed: dict[str, int],
    failures: list,
    langs: tuple[str, ...] | None = None,
) -> Alert:
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
    texts = _texts(rule, v, facts, as_of, langs) if rule.translations and langs != () else {}
    alert = Alert(
        ruleset=rule.ruleset,
        code=rule.code,
        rule=rule.name,
        severity=v.severity,
        message=message,
        action=rule.action_for(facts, v.thresholds) if rule.actions else rule.action,
        as_of=as_of,
        account_id=facts.get("account_id"),  # a portfolio row may name its account (PORTFOLIO_ADDRESS)
        account_name=facts.get("account_name") if portfolio else facts.get("name"),
        owner=facts.get("owner"),
        owner_email=facts.get("owner_email"),
        evidence=evidence,
        scope_key=str(facts.get("scope_key", "")) if portfolio else "",
        revenue_12m=None if portfolio else facts.get("revenue_12m"),
        texts=texts,
    )
    # computed here, in the worker, not in the parent's output; stored where the cached_property keeps it
    # (its first access takes a lock on Python 3.11)
    alert.__dict__["fingerprint"] = fingerprint_of(rule.ruleset, rule.code, alert.account_id, alert.scope_key)
    return alert
