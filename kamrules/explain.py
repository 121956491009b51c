"""explain_account(): one account's facts and, for every rule, whether it fired and if not why not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kamrules.check import CheckRequest, Plan, on_disk, plan
from kamrules.errors import InputError
from kamrules.i18n import _, get_lang, reason_text, using


@dataclass(frozen=True)
class RuleVerdict:
    ruleset: str
    code: str
    rule: str
    status: str  # fired | not_fired | skipped | portfolio | disabled
    severity: str | None = None
    reason: str = ""  # in English: JSON is for machines
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    text: str = field(default="", compare=False)  # the reason in the run's language (explain's table)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ruleset": self.ruleset,
            "code": self.code,
            "rule": self.rule,
            "status": self.status,
            "severity": self.severity,
            "reason": self.reason,
            "thresholds": dict(self.thresholds),
        }


@dataclass(frozen=True)
class Explanation:
    account_id: str
    as_of: str
    facts: Mapping[str, Any]
    verdicts: tuple[RuleVerdict, ...]
    failures: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "as_of": self.as_of,
            "facts": dict(self.facts),
            "rules": [v.to_dict() for v in self.verdicts],
            "failures": [list(f) for f in self.failures],
        }


def explain_account(
    store, account_id: str, as_of: str, rulesets_dirs: Iterable = (), rulesets: Iterable[str] = (), pm=None
) -> Explanation:
    """The account's facts and, for every rule, whether it fired and if not why not.

    The Python evaluation is cross-checked with the engine; a disagreement is a failure.
    On a book of 5,000 accounts or more only this account's facts are computed, and portfolio
    rules are reported as not evaluated (they need every account's facts).
    """
    with plan(store, CheckRequest(as_of, rulesets_dirs=rulesets_dirs, rulesets=rulesets), pm) as p:
        failures = p.failures
        book = p.source  # which providers can run: judged on the whole store
        own = _one_account_store(store, account_id)
        try:
            with book.bound_to(own, failures) if own is not None else book as source:
                found = list(source.accounts(account_id=account_id))
                if not found:
                    raise InputError(
                        f"no account {account_id!r} in {getattr(store, 'path', 'the store')} (expected an id from the accounts table)"
                    )
                facts = found[0]
                verdicts = _verdicts(p, source, book if own is None else None, facts)
        finally:
            if own is not None:
                own.close()
    return Explanation(account_id, as_of, dict(sorted(facts.items())), tuple(verdicts), tuple(failures))


def _one_account_store(store, account_id: str):
    """On a book the check splits (see :mod:`kamrules.partition`), a store connection that sees only this
    account's rows, so that the providers compute one account's facts, not the book's; else None."""
    from kamrules.partition import Part, connect, one_part, restrict
    from kamrules.store import Store

    if not on_disk(store) or one_part(store.count("accounts")):
        return None
    conn = connect(store.path)
    restrict(conn, Part(0, account_id, account_id + "\x01"))  # id >= account_id AND id < account_id + U+0001: this id
    return Store(store.path, conn, store.pm)


def _both(make) -> dict[str, str]:
    """reason= in English and text= in the run's language: ``make()`` called once per language."""
    with using("en"):
        en = make()
    return {"reason": en, "text": en if get_lang() == "en" else make()}


def _verdicts(p: Plan, source, book, facts) -> list[RuleVerdict]:
    """Every rule's verdict on ``facts``; portfolio rules over ``book`` (None: not evaluated, a big book)."""
    from kamrules.ruleset import evaluate

    store, failures = p.store, p.failures
    verdicts: list[RuleVerdict] = []
    status = source.fact_status()
    portfolio = None
    for rs in p.chosen:
        for rule in rs.rules:
            base = dict(ruleset=rule.ruleset, code=rule.code, rule=rule.name)
            bad = [status[f] for f in rule.facts if f in status and status[f].state != "ok"]
            gap = next((source.column_gaps[f] for f in rule.facts if f in source.column_gaps), None)
            if not rule.enabled:
                verdicts.append(
                    RuleVerdict(**base, status="disabled", **_both(lambda: _("enabled: false in its rule-set file")))
                )
            elif rule.scope == "portfolio" and not bad and book is None:
                verdicts.append(
                    RuleVerdict(
                        **base,
                        status="portfolio",
                        **_both(
                            lambda rule=rule: _(
                                "portfolio rule: not evaluated for one account of a book of {n:,} accounts "
                                "(it needs every account's facts); `kamrules check --select {code}` evaluates it"
                            ).format(n=store.count("accounts"), code=rule.code)
                        ),
                    )
                )
            elif rule.scope == "portfolio" and not bad:
                if portfolio is None:
                    portfolio = book.portfolio()
                mine = [
                    row for row in portfolio if row.get("account_id") in (None, facts.get("account_id"))
                ]  # not other accounts' rows
                parts = [(row.get("scope_key"), evaluate(rule, row)) for row in mine]
                fired = [(k, v) for k, v in parts if v.fired]
                shown = fired[0] if fired else (parts[0] if parts else None)

                def said(shown=shown) -> str:
                    if not shown:
                        return _("portfolio rule: no portfolio facts")
                    return _("portfolio rule, on {scope}: {reason}").format(
                        scope=shown[0] or _("the book"), reason=shown[1].reason()
                    )

                verdicts.append(
                    RuleVerdict(
                        **base, status="portfolio", severity=shown[1].severity if shown else None, **_both(said)
                    )
                )
            elif bad:
                st = bad[0]
                why = (
                    (lambda st=st: reason_text(st.reason))
                    if st.state == "unavailable"
                    else (
                        lambda st=st: _("fact provider {name} failed: {reason}").format(name=st.name, reason=st.reason)
                    )
                )
                verdicts.append(
                    RuleVerdict(
                        **base, status="skipped", **_both(lambda why=why: _("skipped: {why}").format(why=why()))
                    )
                )
            elif gap:
                verdicts.append(
                    RuleVerdict(
                        **base,
                        status="skipped",
                        **_both(lambda gap=gap: _("skipped: {why}").format(why=reason_text(gap))),
                    )
                )
            else:
                v = evaluate(rule, facts)
                verdicts.append(
                    RuleVerdict(
                        **base,
                        status="fired" if v.fired else "not_fired",
                        severity=v.severity,
                        thresholds=v.thresholds,
                        **_both(v.reason),
                    )
                )
    engine = p.account_engine  # the plan's: compiled from the same rules (enabled, account scope, not skipped)
    if engine is not None:
        best = {code: v.severity for code, (_, v) in p.compiled.strongest(engine.match([facts])[0]).items()}
        for v in verdicts:
            if v.status in ("fired", "not_fired") and best.get(v.code) != v.severity:
                failures.append(
                    (
                        f"rule {v.code}",
                        f"engine says {best.get(v.code) or 'not fired'}, Python evaluation says {v.severity or 'not fired'}",
                    )
                )
    return verdicts
