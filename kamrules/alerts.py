"""The Alert: what a check emits, with a stable fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kamrules.vocab import SEVERITIES

SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # = json.dumps(..., ensure_ascii=False), without a new encoder per call


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

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r} (expected one of {', '.join(SEVERITIES)})")

    @cached_property
    def fingerprint(self) -> str:
        # cached in the instance (and pickled with it: a check's workers compute it, not the parent)
        return fingerprint_of(self.ruleset, self.code, self.account_id, self.scope_key)

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
        return d

    def sort_key(self) -> tuple[str, str, str, int, str]:
        return (self.owner or "", self.account_name or "", self.account_id or "", -self.rank, self.code)

