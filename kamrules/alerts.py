"""The Alert: what a check emits, with a stable fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kamrules.i18n import get_lang
from kamrules.vocab import SEVERITIES

SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}


_ENCODE = json.JSONEncoder(
    ensure_ascii=False
).encode  # = json.dumps(..., ensure_ascii=False), without a new encoder per call


def fingerprint_of(ruleset: str, code: str, account_id: str | None, scope_key: str = "") -> str:
    """Stable id of 'this rule on this account' (or portfolio scope): same across runs and dates."""
    raw = _ENCODE([ruleset, code, account_id, scope_key])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    ruleset: str
    code: str
    rule: str  # the rule's name, e.g. "concession_ratio"
    severity: str  # info | warning | critical
    message: str
    action: str  # one-line recommended action
    as_of: str  # ISO date
    account_id: str | None = None  # None for portfolio rules
    account_name: str | None = None
    owner: str | None = None
    owner_email: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    scope_key: str = ""  # distinguishes several portfolio alerts of one rule (e.g. per owner)
    # the account's trailing 12-month revenue (fact revenue_12m) when the check had it: orders alerts for
    # people (urgent_order); not part of the alert's dict (machine formats, history)
    revenue_12m: float | None = field(default=None, compare=False, repr=False)
    # message and action in the other languages the rule is written in: {"zh": {"message": ..., "action": ...}};
    # ``message``/``action`` are English (machine formats, history); people read message_in()/action_in()
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r} (expected one of {', '.join(SEVERITIES)})")

    @cached_property
    def fingerprint(self) -> str:
        # cached in the instance (and pickled with it: a check's workers compute it, not the parent)
        return fingerprint_of(self.ruleset, self.code, self.account_id, self.scope_key)

    def message_in(self, lang: str | None = None) -> str:
        """The message in ``lang`` (default: the run's language, kamrules.i18n.get_lang()); English if the rule
        has no text in it."""
        t = self.texts.get(lang or get_lang()) if self.texts else None
        return (t.get("message") if t else None) or self.message

    def action_in(self, lang: str | None = None) -> str:
        t = self.texts.get(lang or get_lang()) if self.texts else None
        return (t.get("action") if t else None) or self.action

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    def to_dict(self) -> dict[str, Any]:
        # shallow: every field but evidence is text or None (asdict's deep copy cost ~60 us per alert);
        # the instance dict holds the fields in order (and the fingerprint, once computed, after them)
        fp = self.fingerprint
        d = dict(self.__dict__)
        d["evidence"] = dict(self.evidence)
        d["fingerprint"] = fp
        del d["scope_key"]
        del d["revenue_12m"]
        del d["texts"]
        return d

    def sort_key(self) -> tuple[str, str, str, int, str]:
        """The stable order of machine formats (json, jsonl, csv): owner, account name, account id, most severe
        first, code (see docs/cli.md)."""
        return (self.owner or "", self.account_name or "", self.account_id or "", -self.rank, self.code)


def urgent_order(
    items: Iterable,
    revenue: Mapping[str, float] | None = None,
    alert_of: Callable | None = None,
    rank_of: Callable | None = None,
) -> list:
    """``items`` (alerts, or anything ``alert_of`` maps to its alert) in the order people read them: per owner
    (by name; no owner first), the accounts by their most severe alert, then by trailing 12-month revenue
    (largest first: ``revenue[account_id]``, else the alert's ``revenue_12m``, else 0), then by name and id;
    the portfolio alerts of an owner rank as one account with no revenue; within an account, most severe
    first, then by code. ``rank_of`` overrides an item's severity rank (e.g. a resolved item ranks lowest)."""
    items = list(items)
    get = alert_of or (lambda x: x)
    rank = rank_of or (lambda x: get(x).rank)
    top: dict[tuple, int] = {}
    money: dict[tuple, float] = {}
    keys = []
    for it in items:
        a = get(it)
        acct = (a.owner or "", a.account_id or "")
        r = rank(it)
        keys.append((acct, r))
        if top.get(acct, -99) < r:
            top[acct] = r
        if a.account_id is not None:
            v = revenue.get(a.account_id) if revenue else None
            if v is None:
                v = a.revenue_12m
            if v is not None and (acct not in money or money[acct] < v):
                money[acct] = float(v)

    def key(pair):
        (acct, r), it = pair
        a = get(it)
        return (acct[0], -top[acct], -money.get(acct, 0.0), a.account_name or "", acct[1], -r, a.code, a.scope_key)

    return [it for _, it in sorted(zip(keys, items, strict=True), key=key)]
