"""The Python matcher: parsed rules matched against facts in plain Python, as durable_rules matches them.

Same semantics as the durable matcher (kamrules/engine.py), checked by tests/test_matcher.py on random
facts for every built-in rule: a fact is read as durable_rules receives it (None, NaN and infinities are
missing, booleans are 0/1, values other than text and numbers are text); a condition on a missing fact
is false (``is missing`` aside); numbers compare with numbers, text with text, never across; a variant
for one tier applies to that tier's accounts, the default variant to accounts of every other tier (or
none). Each condition is compiled once into a closure with its threshold bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kamrules.conditions import AnyOf, Condition, _norm

if TYPE_CHECKING:
    from kamrules.engine import MatchRule
    from kamrules.ruleset import Variant

Pred = Callable[[Mapping[str, Any]], bool]


def _val(v: Any) -> Any:
    """A fact value as the durable matcher sends it to durable_rules (see engine._encode)."""
    t = type(v)
    if t is str or t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else None
    if v is None:
        return None
    if t is bool:
        return int(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (int, str)):
        return v
    return str(v)


def _num(v: Any) -> bool:
    return (type(v) is int or type(v) is float) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _eq(a: Any, b: Any) -> bool:
    same: bool = a == b if _num(a) and _num(b) else type(a) is type(b) and a == b
    return same


def _lt(a: Any, b: Any) -> bool:
    held: bool = _num(a) == _num(b) and a < b
    return held


def _le(a: Any, b: Any) -> bool:
    held: bool = _num(a) == _num(b) and a <= b
    return held


def _gt(a: Any, b: Any) -> bool:
    held: bool = _num(a) == _num(b) and a > b
    return held


def _ge(a: Any, b: Any) -> bool:
    held: bool = _num(a) == _num(b) and a >= b
    return held


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _eq,
    "!=": lambda a, b: not _eq(a, b),
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
    "in": lambda a, bs: any(_eq(a, b) for b in bs),
    "not in": lambda a, bs: not any(_eq(a, b) for b in bs),
}


def _never(f: Mapping[str, Any]) -> bool:
    return False


def compile_condition(c: Condition | AnyOf, thresholds: Mapping[str, Any]) -> Pred:
    """``facts -> bool`` for condition ``c`` with ``thresholds`` in force."""
    if isinstance(c, AnyOf):
        preds = tuple(compile_condition(x, thresholds) for x in c.conditions)
        return lambda f: any(p(f) for p in preds)
    fact = c.fact
    if c.op == "is missing":
        return lambda f: _val(f.get(fact)) is None
    if c.op == "is present":
        return lambda f: _val(f.get(fact)) is not None
    test = _TESTS[c.op]
    if c.ref_kind == "fact" and c.ref is not None:
        ref = c.ref

        def against_fact(f: Mapping[str, Any]) -> bool:
            a = _val(f.get(fact))
            if a is None:
                return False
            b = _val(f.get(ref))
            return b is not None and test(a, b)

        return against_fact
    other = _norm(thresholds[c.ref]) if c.ref_kind == "threshold" and c.ref is not None else c.value
    if other is None:
        return _never
    if c.op == "in" and all(type(v) is str for v in other):  # the common case: a word among words
        words = frozenset(other)
        return lambda f: type(a := _val(f.get(fact))) is str and a in words

    def against_value(f: Mapping[str, Any]) -> bool:
        a = _val(f.get(fact))
        return a is not None and test(a, other)

    return against_value


def _tier_test(variant: Variant) -> Callable[[Mapping[str, Any]], bool] | None:
    """Which accounts a variant applies to, by their (normalised) facts: its `limits:` row (or tier), minus
    the rows taking precedence; None: every account."""
    if not variant.select and not variant.exclude:
        return None
    select = tuple((f, frozenset(v)) for f, v in variant.select)
    exclude = tuple(tuple((f, frozenset(v)) for f, v in x) for x in variant.exclude)

    def has(f: Mapping[str, Any], sel: tuple[tuple[str, frozenset[str]], ...]) -> bool:
        for name, values in sel:
            a = _val(f.get(name))
            if type(a) is not str or a not in values:
                return False
        return True

    if not exclude:
        return lambda f: has(f, select)
    return lambda f: has(f, select) and not any(has(f, x) for x in exclude)


class PythonMatcher:
    """The Python matcher (same interface as the durable one: ``name``, ``keys``, ``match``)."""

    name = "python"

    def __init__(self, rules: Sequence[MatchRule]):
        """``rules``: :class:`kamrules.engine.MatchRule` items (key, rule, variant)."""
        keys = [r.key for r in rules]
        if len(set(keys)) != len(keys):
            from kamrules.engine import EngineError

            raise EngineError("rule keys must be unique")
        self.keys = tuple(keys)
        self._rules = [
            (
                r.key,
                _tier_test(r.variant) if r.rule.scope == "account" else None,
                tuple(compile_condition(c, r.variant.thresholds) for c in r.rule.when),
            )
            for r in rules
        ]

    def match(self, facts: Sequence[Mapping[str, Any]]) -> list[set[str]]:
        """For each fact (dict of name -> value), the keys of the rules it fired."""
        out = []
        rules = self._rules
        for f in facts:
            fired = set()
            for key, applies, preds in rules:
                if applies is not None and not applies(f):
                    continue
                for p in preds:
                    if not p(f):
                        break
                else:
                    fired.add(key)
            out.append(fired)
        return out
