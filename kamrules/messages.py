"""Alert messages: a rule's template filled from the facts and thresholds; a missing fact prints as "n/a"."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from kamrules.ruleset import Rule


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
