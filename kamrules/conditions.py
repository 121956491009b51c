"""Rule conditions ("FACT OP OPERAND"): parsing and Python evaluation (engine.py matches them)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "is missing", "is present")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_COND = re.compile(
    rf"^\s*(?P<fact>{_NAME})\s*(?P<op>is\s+missing|is\s+present|not\s+in\b|in\b|==|!=|<=|>=|<|>)\s*(?P<rest>.*?)\s*$"
)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?$")
_BARE = re.compile(r"^[^\s,\[\]'\"$@][^\s,\[\]'\"]*$")
_RESERVED = {"id", "sid"}


class ConditionError(ValueError):
    """A condition text that does not parse; ``offset`` is the character index of the problem."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.offset = offset


def _norm(v: Any) -> Any:
    """Booleans compare as 1/0 (SQLite stores them so); NaN and infinities count as missing."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return int(v) if isinstance(v, bool) else v


def parse_literal(text: str, offset: int = 0) -> Any:
    """A number (``10%`` = 0.1), true/false, a quoted string, or a bare word (a string)."""
    t = text.strip()
    offset += len(text) - len(text.lstrip())  # point at the operand, not the blanks before it
    if not t:
        raise ConditionError(
            "missing operand (expected a number, true/false, a string, [list], $threshold or @fact)", offset
        )
    if _NUMBER.match(t):
        pct = t.endswith("%")
        num = t[:-1] if pct else t
        value = float(num) if any(c in num for c in ".eE") or pct else int(num)
        if isinstance(value, float) and not math.isfinite(value):  # 1e999: infinity, compared as missing
            raise ConditionError(f"number {t!r} is out of range (expected a finite number)", offset)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:  # beyond SQLite's integers
            raise ConditionError(f"number {t!r} is out of range (expected at most 19 digits)", offset)
        return value / 100 if pct else value
    if t in ("true", "false"):
        return 1 if t == "true" else 0
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if t in ("null", "none", "None"):
        raise ConditionError(f"{t!r} is not a value (expected `is missing` to test for no value)", offset)
    if _BARE.match(t):
        return t
    raise ConditionError(f"bad operand {t!r} (expected a number, true/false, a quoted string or a bare word)", offset)


def _split_list(body: str, offset: int) -> list[tuple[str, int]]:
    items, cur, start, quote = [], "", 0, None
    for i, ch in enumerate(body):
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch == ",":
            items.append((cur, offset + start))
            cur, start = "", i + 1
        else:
            cur += ch
    if quote:
        raise ConditionError("unterminated quoted string in list", offset)
    if cur.strip() or items:
        items.append((cur, offset + start))
    return items


@dataclass(frozen=True)
class Condition:
    """One ``when`` entry. ``value`` is a literal (a tuple for in/not in) unless ``ref`` is set:
    ``ref_kind`` ``"threshold"`` (``$name``) or ``"fact"`` (``@name``)."""

    text: str
    fact: str
    op: str
    value: Any = None
    ref: str | None = None
    ref_kind: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def facts(self) -> tuple[str, ...]:
        return (self.fact, self.ref) if self.ref_kind == "fact" and self.ref is not None else (self.fact,)

    @property
    def threshold(self) -> str | None:
        return self.ref if self.ref_kind == "threshold" else None

    def operand(self, facts: Mapping[str, Any], thresholds: Mapping[str, Any]) -> Any:
        ref = self.ref  # set exactly when ref_kind is
        if ref is None:
            return self.value
        if self.ref_kind == "threshold":
            return _norm(thresholds[ref])
        return _norm(facts.get(ref))

    def holds(self, facts: Mapping[str, Any], thresholds: Mapping[str, Any]) -> bool:
        """Python evaluation; a missing fact (or @fact) makes every comparison false."""
        actual = _norm(facts.get(self.fact))
        if self.op == "is missing":
            return actual is None
        if self.op == "is present":
            return actual is not None
        if actual is None:
            return False
        actual = _norm(actual)
        other = self.operand(facts, thresholds)
        if other is None:
            return False
        if self.op == "==":
            return _eq(actual, other)
        if self.op == "!=":
            return not _eq(actual, other)
        if self.op == "in":
            return any(_eq(actual, v) for v in other)
        if self.op == "not in":
            return not any(_eq(actual, v) for v in other)
        if _is_num(actual) != _is_num(other):
            return False
        try:
            held: bool = {"<": actual < other, "<=": actual <= other, ">": actual > other, ">=": actual >= other}[
                self.op
            ]
            return held
        except TypeError:
            return False

    def describe(self, thresholds: Mapping[str, Any]) -> str:
        """The condition with its threshold filled in, e.g. ``concession_ratio > 0.1``."""
        if self.ref_kind == "threshold":
            return f"{self.fact} {self.op} {thresholds.get(self.ref or '')!r}"
        return self.text.strip()


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a: Any, b: Any) -> bool:
    same: bool = a == b if _is_num(a) and _is_num(b) else type(a) is type(b) and a == b
    return same


def parse_condition(text: str, line: int | None = None, column: int | None = None) -> Condition:
    """Parse ``"FACT OP OPERAND"``; raises :class:`ConditionError` with the offset of the problem."""
    if not isinstance(text, str):
        raise ConditionError('a condition must be a string "FACT OP OPERAND"')
    m = _COND.match(text)
    if not m:
        word = re.match(rf"\s*({_NAME})?\s*", text)
        if not word or not word.group(1):
            raise ConditionError(f'{text!r} does not start with a fact name (expected "FACT OP OPERAND")', 0)
        raise ConditionError(
            f"no operator after {word.group(1)!r} (expected one of {', '.join(OPERATORS)})", word.end()
        )
    fact, op, rest = m.group("fact"), " ".join(m.group("op").split()), m.group("rest")
    if fact in _RESERVED:
        raise ConditionError(f"{fact!r} is reserved (use account_id)", m.start("fact"))
    roff = m.start("rest")
    kw: dict[str, Any] = dict(text=text, fact=fact, op=op, line=line, column=column)
    if op in ("is missing", "is present"):
        if rest:
            raise ConditionError(f"unexpected {rest!r} after {op!r} (expected nothing)", roff)
        return Condition(**kw)
    if rest.startswith(("$", "@")):
        if op in ("in", "not in"):
            raise ConditionError(f"{op!r} needs a [list] (expected e.g. [key, mid])", roff)
        name = rest[1:]
        if not re.fullmatch(_NAME, name):
            raise ConditionError(f"bad name {rest!r} (expected {rest[0]}name)", roff)
        return Condition(**kw, ref=name, ref_kind="threshold" if rest[0] == "$" else "fact")
    if op in ("in", "not in"):
        if not (rest.startswith("[") and rest.endswith("]")):
            raise ConditionError(f"{op!r} needs a [list] (expected e.g. [key, mid])", roff)
        items = tuple(parse_literal(t, roff + 1 + o) for t, o in _split_list(rest[1:-1], 0))
        return Condition(**kw, value=items)
    if rest.startswith("["):
        raise ConditionError(f"a list needs `in` or `not in`, not {op!r}", roff)
    value = parse_literal(rest, roff)
    if op in ("<", "<=", ">", ">=") and isinstance(value, str) and numberlike(value):
        # "10" or nan compares as text: against a number it is always false, so the rule would never fire
        raise ConditionError(f"text {value!r} compared with {op!r} (expected a number, unquoted, e.g. 10 or 0.5)", roff)
    return Condition(**kw, value=value)


def numberlike(text: str) -> bool:
    """Text that reads as a number ("10", "0.5", "nan", "10%"): compared as text, never equal to a number."""
    try:
        float(text.strip().rstrip("%"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AnyOf:
    """An ``any:`` block of a rule's ``when`` list: true when at least one of its conditions holds."""

    conditions: tuple[Condition, ...]
    line: int | None = None
    column: int | None = None
    op: str = "any"
    ref: str | None = None
    ref_kind: str | None = None
    value: Any = None
    threshold: str | None = None

    @property
    def text(self) -> str:
        return "any: [" + "; ".join(c.text.strip() for c in self.conditions) + "]"

    @property
    def fact(self) -> str:
        return self.conditions[0].fact

    @property
    def facts(self) -> tuple[str, ...]:
        out: list[str] = []
        for c in self.conditions:
            out += [f for f in c.facts if f not in out]
        return tuple(out)

    def holds(self, facts: Mapping[str, Any], thresholds: Mapping[str, Any]) -> bool:
        return any(c.holds(facts, thresholds) for c in self.conditions)

    def describe(self, thresholds: Mapping[str, Any]) -> str:
        return "any of: " + "; ".join(c.describe(thresholds) for c in self.conditions)


def leaves(when: Iterable[Condition | AnyOf]) -> list[Condition]:
    """The plain conditions of a ``when`` list, those inside ``any:`` blocks included."""
    out: list[Condition] = []
    for c in when:
        out += list(c.conditions) if isinstance(c, AnyOf) else [c]
    return out
