"""Alert messages: a rule's template filled from the facts and thresholds; numbers for people; plurals."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kamrules.ruleset import Rule


MAX_WIDTH = 50  # largest width or precision a message field may ask for ({x:>999999999} would be 1 GB)
# Python's format-spec mini-language, without nested fields; ``fill`` may be any one character
_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>[0-9]+)?[,_]?(?:\.(?P<precision>[0-9]+))?[bcdeEfFgGnosxX%]?", re.S
)
# C0, DEL, C1 (NEL among them) and the Unicode line and paragraph separators
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_problem(text: str) -> str | None:
    """What is wrong with a one-line text that holds a control character or a line break (else None)."""
    m = CONTROL.search(text)
    if m is None:
        return None
    what = "a line break" if m.group() in "\r\n\x0b\x0c\x85\u2028\u2029" else "a control character"
    return f"{what} ({m.group()!r}) at character {m.start() + 1} (expected one line of printable text)"


def spec_problem(spec: str) -> str | None:
    """What is wrong with a field's format spec (else None): simple specs only, widths up to MAX_WIDTH."""
    if "{" in spec or "}" in spec:
        return f"format spec {spec!r} holds a nested field (expected a literal spec such as ,.0f or .1%)"
    m = _SPEC.fullmatch(spec)
    if m is None:
        return f"format spec {spec!r} is not a simple format (expected e.g. ,.0f, .1%, >8)"
    for part in ("width", "precision"):
        if m.group(part) and int(m.group(part)) > MAX_WIDTH:
            return f"format spec {spec!r}: {part} {int(m.group(part))} is too large (expected at most {MAX_WIDTH})"
    return None


def template_problems(template: str) -> list[str]:
    """Every way ``template`` breaks the message rules: fields are plain names ({fact}, {fact:,.0f}, {fact!r}),
    no attribute or index access, no positional fields, simple specs only, one line, no control characters."""
    out = []
    bad = control_problem(template)
    if bad:
        out.append(bad)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        return out + [f"not a valid format string: {e} (expected {{fact}} or {{fact:,.0f}} fields)"]
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        name, spec, forms = split_plural(name, spec or "")
        if forms is not None:
            if conv is not None:
                out.append(f"field {{{name}|...}}: a plural field takes no conversion (expected {{n|day|days}})")
            if not forms[0] or len(forms) > 2 or any(not f.strip() or f != f.strip() for f in forms):
                out.append(
                    f"field {{{name}|{'|'.join(forms)}}}: expected one or two word forms, e.g. {{{name}|day}} or {{{name}|activity|activities}}"
                )
        if not name or name.isdigit():
            out.append("a positional {} field (expected {fact_name})")
        elif not name.isidentifier():
            out.append(f"field {{{name}}}: attribute or index access (expected a plain name like {{fact_name}})")
        if conv is not None and conv not in "rsa":
            out.append(f"field {{{name}}}: unknown conversion !{conv} (expected !r, !s, !a or none)")
        bad = spec_problem(spec or "")
        if bad:
            out.append(f"field {{{name}}}: {bad}")
    return out


class _Formatter(string.Formatter):
    """Message formatting where a missing field prints as "n/a" whatever its format spec.

    It enforces the load-time rules again (a Rule built in Python skips the rule-file checks)."""

    def get_field(self, field_name, args, kwargs):
        if not field_name.isidentifier():
            raise ValueError(f"field {{{field_name}}}: attribute or index access is not allowed")
        return self.get_value(field_name, args, kwargs), field_name

    def get_value(self, key, args, kwargs):
        return kwargs.get(key, _MISSING) if isinstance(key, str) else super().get_value(key, args, kwargs)

    def convert_field(self, value, conversion):
        return value if value is _MISSING else super().convert_field(value, conversion)

    def format_field(self, value, spec):
        bad = spec_problem(spec)
        if bad:
            raise ValueError(bad)
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


def split_plural(name: str, spec: str) -> tuple[str, str, tuple[str, ...] | None]:
    """``(name, spec, forms)`` of a field: ``{n|activity|activities}`` or ``{n:,.0f|day}`` is a plural field
    (forms ``("activity", "activities")`` / ``("day",)``); any other field has forms None."""
    if "|" in name:
        name, _, rest = name.partition("|")
        return name, spec, tuple(rest.split("|"))
    if "|" in spec:
        spec, _, rest = spec.partition("|")
        return name, spec, tuple(rest.split("|"))
    return name, spec, None


def human(v: Any) -> str:
    """A number as people read it: ``10,414,839`` (not 10414839.430000002), ``31.5``, ``0.0442``; other
    values as text, None as "none", True/False as "yes"/"no". Used by messages, explain, alerts show, digests."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        a = abs(v)
        if v.is_integer() or a >= 100:
            return f"{v:,.0f}"
        if a >= 1:
            return f"{v:,.2f}".rstrip("0").rstrip(".")
        return f"{v:.3g}"
    return str(v)


def plural_word(value: Any, forms: tuple[str, ...], number: str) -> str:
    """The form of ``forms`` that goes with ``number`` (the value as printed): singular for "1" (or "-1"),
    else the plural (the second form, or the first + "s")."""
    if number.lstrip("-+") == "1":
        return forms[0]
    return forms[1] if len(forms) > 1 else forms[0] + "s"


_PLURALS: dict[tuple[str, bool], tuple[str, tuple]] = {}
NO_PLURAL = frozenset({"zh"})  # languages without plural forms: {n|天} prints the number and the word, 30天


def _compiled(template: str, lang: str = "en") -> tuple[str, tuple]:
    """``template`` with every plural field replaced by a plain field (``{kamplural_0}``) and the list of
    ``(key, name, spec, forms)`` to fill them: so that formatting stays ``str.format_map``. In zh an amount
    field ``{x:,.0f}`` is one too (forms None): it prints in 万 / 亿 (kamrules.i18n.amount)."""
    zh = lang in NO_PLURAL
    got = _PLURALS.get((template, zh))
    if got is None:
        if "|" not in template and not (zh and ":,.0f}" in template):
            got = (template, ())
        else:
            text: list[str] = []
            plurals: list[tuple[str, str, str, tuple[str, ...] | None]] = []
            for literal, name, spec, conv in string.Formatter().parse(template):
                text.append(literal.replace("{", "{{").replace("}", "}}"))
                if name is None:
                    continue
                base, spec2, forms = split_plural(name, spec or "")
                if forms is None and zh and spec == ",.0f" and conv is None:
                    key = f"kamplural_{len(plurals)}"
                    plurals.append((key, base, spec, None))
                    text.append("{" + key + "}")
                elif forms is None:
                    text.append("{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
                else:
                    key = f"kamplural_{len(plurals)}"
                    plurals.append((key, base, spec2, forms))
                    text.append("{" + key + "}")
            got = ("".join(text), tuple(plurals))
        _PLURALS[(template, zh)] = got
    return got


def _plural_values(plurals: tuple, values: Mapping[str, Any], lang: str = "en") -> dict[str, str]:
    out = {}
    for key, name, spec, forms in plurals:
        v = values.get(name, _MISSING)
        if forms is None:  # an amount in zh
            out[key] = _amount_in(lang, None if v is _MISSING else v)
            continue
        if v is _MISSING or v is None:
            number = "n/a"
        elif spec:
            number = format(v, spec)
        else:
            number = human(v)
        out[key] = f"{number}{forms[0]}" if lang in NO_PLURAL else f"{number} {plural_word(v, forms, number)}"
    return out


def _amount_in(lang: str, v: Any) -> str:
    from kamrules.i18n import amount, using

    with using(lang):
        return amount(v)


_SIMPLE: dict[str, bool] = {}


def _simple(template: str) -> bool:
    """True if every field of ``template`` is a plain name with a literal spec and no conversion:
    then ``str.format_map`` gives exactly what _Formatter gives, several times faster."""
    ok = _SIMPLE.get(template)
    if ok is None:
        try:
            ok = all(
                name is None or (name.isidentifier() and conv is None and spec_problem(spec or "") is None)
                for _, name, spec, conv in string.Formatter().parse(template)
            )
        except ValueError:
            ok = False
        _SIMPLE[template] = ok
    return ok


def format_message(
    rule: Rule, facts: Mapping[str, Any], thresholds: Mapping[str, Any], as_of: str, lang: str = "en"
) -> str:
    """The rule's message for these facts (in ``lang`` if the rule has it, else English);
    ``{n|activity|activities}`` prints "1 activity" or "3 activities" (``{n|day}``: "1 day", "3 days";
    ``{n:.0f|day}`` formats the number first; in zh ``{n|天}`` prints "3天"), see docs/rulesets.md."""
    template = rule.message_in(lang) if lang != "en" else rule.message
    return render_template(template, facts, thresholds, as_of, lang if template is not rule.message else "en")


def render_template(
    template: str, facts: Mapping[str, Any], thresholds: Mapping[str, Any], as_of: str, lang: str = "en"
) -> str:
    template, plurals = _compiled(template, lang)
    if _simple(template):
        fields = _Fields(facts)
        fields.update(thresholds)
        fields["as_of"] = as_of
        if plurals:
            fields.update(_plural_values(plurals, fields, lang))
        return template.format_map(fields)
    values = {**facts, **thresholds, "as_of": as_of}
    if plurals:
        values.update(_plural_values(plurals, values, lang))
    return _FMT.vformat(template, (), values)
