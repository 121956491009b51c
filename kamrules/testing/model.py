"""The objects of a rule test: test files, cases, expectations, results (immutable where given by the user)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # an expectation field that was not given


# -- the test file as immutable objects ---------------------------------------
@dataclass(frozen=True)
class Expect:
    code: str
    line: int
    account: Any = ABSENT  # str, None (portfolio) or ABSENT (any)
    scope: Any = ABSENT
    severity: str | None = None
    message: tuple[str, ...] = ()
    evidence: tuple[tuple[str, Any], ...] = ()

    def mismatches(self, alert) -> list[str]:
        """Why ``alert`` does not match (empty: it matches)."""
        why = []
        if alert.code != self.code:
            why.append(f"code {alert.code} != {self.code}")
        if self.account is not ABSENT and alert.account_id != self.account:
            why.append(f"account {alert.account_id} != {self.account}")
        if self.scope is not ABSENT and (alert.scope_key or "") != self.scope:
            why.append(f"scope {alert.scope_key!r} != {self.scope!r}")
        if self.severity and alert.severity != self.severity:
            why.append(f"severity {alert.severity} != {self.severity}")
        for part in self.message:
            if part not in alert.message:
                why.append(f"message lacks {part!r}")
        for name, want in self.evidence:
            if name not in alert.evidence:
                why.append(f"evidence has no {name}")
            elif not values_match(alert.evidence[name], want):
                why.append(f"evidence {name} = {alert.evidence[name]!r} != {want!r}")
        return why

    def describe(self) -> str:
        text = f"{self.code} on {_where(self.account, self.scope)}"
        if self.severity:
            text += f" {self.severity}"
        if self.message:
            text += ", message contains " + " and ".join(f'"{m}"' for m in self.message)
        if self.evidence:
            text += ", evidence " + ", ".join(f"{k}={v!r}" for k, v in self.evidence)
        return text


@dataclass(frozen=True)
class Quiet:
    account: str | None  # None: any account, and portfolio alerts
    code: str = ""  # a code or code prefix; empty = any
    line: int = 0

    def hits(self, alert) -> bool:
        return (self.account is None or alert.account_id == self.account) and alert.code.startswith(self.code)

    def describe(self) -> str:
        return " ".join(x for x in (self.account if self.account is not None else "any account", self.code) if x)


@dataclass(frozen=True)
class Case:
    name: str
    line: int
    as_of: str
    book: Any  # {table: ((row dict of raw text, line), ...)} or a folder Path, or a pair (folder, tables)
    rulesets: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    min_severity: str = "info"
    expect: tuple[Expect, ...] = ()
    quiet: tuple[Quiet, ...] = ()
    exhaustive: bool = False


@dataclass(frozen=True)
class TestFile:
    __test__ = False  # not a pytest test class, even when imported into a test module
    path: str
    cases: tuple[Case, ...]


def values_match(got, want) -> bool:
    """Equality; a float ``want`` matches to the precision it was written with."""
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if isinstance(want, int):
            return float(got) == float(want)
        text = repr(want)
        decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 6
        return math.isclose(got, want, abs_tol=0.5 * 10**-decimals + 1e-12)
    return got == want or str(got) == str(want)


def _where(account, scope) -> str:
    if account is ABSENT:
        return "any account" if scope is ABSENT else f"portfolio scope {scope!r}"
    if account is None:
        return "the portfolio" + (f" scope {scope!r}" if scope not in (ABSENT, "", None) else "")
    return str(account)


# -- running ------------------------------------------------------------------
@dataclass
class CaseResult:
    name: str
    file: str
    line: int
    status: str = "passed"  # passed | failed | error
    seconds: float = 0.0
    alerts: int = 0
    missing: list = field(default_factory=list)  # [(Expect, closest Alert or None, [reasons], note)]
    unexpected: list = field(default_factory=list)  # [Alert]
    loud: list = field(default_factory=list)  # [(Quiet, Alert)]
    notes: list = field(default_factory=list)  # run failures, import problems
    fired: list = field(default_factory=list, repr=False)  # every Alert the check returned

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "alerts": self.alerts,
            "missing": [
                {"expected": e.describe(), "line": e.line, "closest": _alert_dict(a), "why": why, "note": note}
                for e, a, why, note in self.missing
            ],
            "unexpected": [_alert_dict(a) for a in self.unexpected],
            "not_quiet": [{"quiet": q.describe(), "line": q.line, "alert": _alert_dict(a)} for q, a in self.loud],
            "notes": list(self.notes),
        }


@dataclass
class TestRun:
    __test__ = False
    cases: list[CaseResult] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    inputs: list[str] = field(default_factory=list)  # the cases' rule-set and book folders (read, never written)

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)

    @property
    def passed(self) -> int:
        return self.count("passed")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def ok(self) -> bool:
        return self.passed == len(self.cases)

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else (1 if self.failed else 0)

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "cases": [c.to_dict() for c in self.cases],
        }


def _alert_dict(a) -> dict | None:
    if a is None:
        return None
    return {
        "code": a.code,
        "account": a.account_id,
        "scope": a.scope_key,
        "severity": a.severity,
        "message": a.message,
        "evidence": dict(a.evidence),
    }
