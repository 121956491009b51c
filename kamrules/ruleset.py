"""Rule-set files (YAML) -> immutable RuleSet/Rule, strictly validated, with FILE:LINE:COL errors."""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kamrules.alerts import SEVERITIES, SEVERITY_RANK
from kamrules.conditions import AnyOf, Condition, ConditionError, leaves, numberlike, parse_condition
from kamrules.errors import InputError, Problem
from kamrules.i18n import gettext, label
from kamrules.messages import control_problem, human
from kamrules.ruletext import Texts, message_problems, parse_text

CODE_RE = re.compile(r"^[A-Z]{2,5}[0-9]{3}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
from kamrules.vocab import TIERS  # noqa: E402 (re-exported: kamrules.ruleset.TIERS)

SCOPES = ("account", "portfolio")
TOP_KEYS = {"ruleset": "the rule set's name", "description": "text", "source": "text", "rules": "a list of rules"}
RULE_KEYS = (
    "code",
    "name",
    "description",
    "source",
    "scope",
    "enabled",
    "severity",
    "when",
    "thresholds",
    "tiers",
    "limits",
    "message",
    "action",
)
# keys of a `limits:` row -> the fact they select on, in order of precedence (see docs/rulesets.md)
SELECTORS = {"stage": "pipeline_stage", "buyer_type": "buyer_type", "segment": "segment", "tier": "tier"}
EXTRA_FIELDS = ("as_of",)  # always available to messages
ORDERING = ("<", "<=", ">", ">=")


Select = tuple[tuple[str, tuple[str, ...]], ...]  # ((fact, (value, ...)), ...): every fact has one of its values


@dataclass(frozen=True)
class Limits:
    """One row of a rule's `limits:` table (or one tier of `tiers:`): the accounts it selects and the
    threshold values it puts in place of the defaults."""

    select: Select
    thresholds: Mapping[str, Any]
    line: int | None = None
    path: NodePath = field(default=(), compare=False)  # in the YAML document (for problems)

    @property
    def label(self) -> str:
        return ",".join(f"{f}={'/'.join(v)}" for f, v in self.select)

    def rank(self) -> tuple[int, list[int]]:
        """Precedence: more keys first; then by the highest-precedence key (stage, buyer_type, segment, tier)."""
        order = list(SELECTORS.values())
        return (-len(self.select), sorted(order.index(f) for f, _ in self.select))


def selects(select: Select, facts: Mapping[str, Any]) -> bool:
    """True if ``facts`` has, for every fact of ``select``, one of its (text) values."""
    for f, values in select:
        v = facts.get(f)
        if type(v) is not str or v not in values:
            return False
    return True


@dataclass(frozen=True)
class Variant:
    """One compiled form of a rule: for the accounts one `limits:` row (or tier) selects, or the default
    (``select`` empty: every account no row selects), and one severity."""

    severity: str
    thresholds: Mapping[str, Any]
    select: Select = ()
    exclude: tuple[Select, ...] = ()  # rows taking precedence: an account any of them selects is not this variant's

    @property
    def tier(self) -> str | None:
        """The tier a tier-only variant is for (None otherwise)."""
        if len(self.select) == 1 and self.select[0][0] == "tier" and len(self.select[0][1]) == 1:
            tier: str = self.select[0][1][0]
            return tier
        return None

    @property
    def label(self) -> str:
        return ",".join(f"{f}={'/'.join(v)}" for f, v in self.select) or "*"

    def applies(self, facts: Mapping[str, Any]) -> bool:
        return selects(self.select, facts) and not any(selects(x, facts) for x in self.exclude)

    def applies_to(self, tier: Any) -> bool:
        return self.applies({"tier": tier})


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    ruleset: str
    severity: str
    when: tuple[Condition | AnyOf, ...]
    message: str
    action: str
    description: str = ""
    source: str = ""
    scope: str = "account"
    enabled: bool = True
    thresholds: Mapping[str, Any] = field(default_factory=dict)  # name -> value | {severity: value}
    tiers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # tier -> {name: value | {...}}
    limits: tuple[Limits, ...] = ()  # every row (tiers: included), highest precedence first
    file: str = ""
    line: int | None = None
    message_line: int | None = None
    message_column: int | None = None
    # the actions chosen by a condition, in order (``action`` is the default): ((condition, text), ...)
    actions: tuple[tuple[Condition, str], ...] = ()
    # the texts in other languages than English (message/action/description: {en: ..., zh: ...})
    translations: Mapping[str, Texts] = field(default_factory=dict)

    def action_for(self, facts: Mapping[str, Any], thresholds: Mapping[str, Any], lang: str = "en") -> str:
        """The first action whose condition holds on ``facts``, else the default ``action``; in ``lang``
        where the rule has that text (else English)."""
        tr = self.translations.get(lang)
        for i, (cond, text) in enumerate(self.actions):
            if cond.holds(facts, thresholds):
                return (tr.actions[i] if tr and i < len(tr.actions) else "") or text
        return (tr.action if tr else "") or self.action

    def message_in(self, lang: str) -> str:
        """The message template in ``lang`` (English if the rule has none in it)."""
        tr = self.translations.get(lang)
        return (tr.message if tr else "") or self.message

    def description_in(self, lang: str) -> str:
        tr = self.translations.get(lang)
        return (tr.description if tr else "") or self.description

    @property
    def langs(self) -> tuple[str, ...]:
        """The languages every text of the rule is written in (en first); others fall back to English."""
        done = [
            lang
            for lang, tr in sorted(self.translations.items())
            if tr.complete(len(self.actions), bool(self.description))
        ]
        return ("en", *done)

    @property
    def facts(self) -> tuple[str, ...]:
        """Facts the conditions refer to, in order of first use, then those `limits:` rows select on (tier aside)."""
        out: list[str] = []
        for c in self.when:
            for f in c.facts:
                if f not in out:
                    out.append(f)
        for row in self.limits:
            for f, _ in row.select:
                if f != "tier" and f not in out:
                    out.append(f)
        return tuple(out)

    @property
    def message_fields(self) -> tuple[str, ...]:
        return message_fields(self.message)

    def evidence_facts(self) -> tuple[str, ...]:
        """Facts shown on an alert: those in conditions, then those in the message."""
        out = list(self.facts)
        for f in self.message_fields:
            if f not in out and f not in self.thresholds and f not in EXTRA_FIELDS:
                out.append(f)
        return tuple(out)

    def thresholds_for(self, tier: str | Mapping[str, Any] | None) -> dict[str, Any]:
        """The thresholds in force for an account: ``tier`` is its facts (or just its tier)."""
        facts = tier if isinstance(tier, Mapping) else {"tier": tier}
        merged = dict(self.thresholds)
        for row in self.limits:
            if selects(row.select, facts):
                merged.update(row.thresholds)
                break
        return merged

    def variants(self) -> tuple[Variant, ...]:
        """Every (row, severity) form: the default, then the rows in order of precedence; highest severity first."""
        out = []
        forms: list[tuple[Limits | None, tuple[Select, ...]]] = [
            (None, _merge_excludes(tuple(r.select for r in self.limits)))
        ]
        forms += [(row, _excluded(row, self.limits[:i])) for i, row in enumerate(self.limits)]
        for row, exclude in forms:
            merged = dict(self.thresholds)
            if row is not None:
                merged.update(row.thresholds)
            for sev in severities_of(merged, self.severity):
                values = {k: (v[sev] if isinstance(v, Mapping) else v) for k, v in merged.items()}
                out.append(Variant(sev, values, row.select if row is not None else (), exclude))
        return tuple(out)

    def variants_for(self, facts: Any) -> tuple[Variant, ...]:
        """The variants for an account (``facts``: its facts, or just its tier), highest severity first."""
        facts = facts if isinstance(facts, Mapping) else {"tier": facts}
        return tuple(v for v in self.variants() if v.applies(facts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "ruleset": self.ruleset,
            "scope": self.scope,
            "enabled": self.enabled,
            "severity": self.severity,
            "severities": sorted({v.severity for v in self.variants()}, key=SEVERITY_RANK.__getitem__),
            "when": [c.text for c in self.when],
            "thresholds": _plain(self.thresholds),
            "tiers": _plain(self.tiers),
            "limits": [
                dict(select={f: list(v) for f, v in r.select}, thresholds=_plain(r.thresholds))
                for r in self.limits
                if not (len(r.select) == 1 and r.select[0][0] == "tier")
            ],
            "message": self.message,
            "action": self.action,
            "actions": [{"when": c.text, "text": t} for c, t in self.actions],
            "description": self.description,
            "langs": list(self.langs),
            "translations": {
                lang: {
                    "message": tr.message,
                    "action": tr.action,
                    "actions": list(tr.actions),
                    "description": tr.description,
                }
                for lang, tr in sorted(self.translations.items())
            },
            "source": self.source,
            "file": self.file,
            "line": self.line,
        }


@dataclass(frozen=True)
class RuleSet:
    name: str
    rules: tuple[Rule, ...]
    description: str = ""
    source: str = ""
    path: str = ""
    builtin: bool = False
    descriptions: Mapping[str, str] = field(default_factory=dict)  # the description in other languages

    def description_in(self, lang: str) -> str:
        return self.descriptions.get(lang) or self.description

    @property
    def digest(self) -> str:
        raw = json.dumps([r.to_dict() for r in self.rules], sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ruleset": self.name,
            "description": self.description,
            "source": self.source,
            "path": self.path,
            "builtin": self.builtin,
            "descriptions": dict(self.descriptions),
            "rules": [r.to_dict() for r in self.rules],
        }


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _excluded(row: Limits, before: Sequence[Limits]) -> tuple[Select, ...]:
    """The parts of the rows before ``row`` (higher precedence) that can select an account ``row`` selects:
    for each, the keys ``row`` does not already imply."""
    mine = dict(row.select)
    out = []
    for other in before:
        extra = []
        for f, values in other.select:
            if f in mine:
                if not set(mine[f]) & set(values):
                    break  # never both
                if set(mine[f]) <= set(values):
                    continue  # implied by row
            extra.append((f, values))
        else:
            out.append(tuple(extra))
    return _merge_excludes(tuple(out))


def _within(a: Select, b: Select) -> bool:
    """True if every account ``a`` selects is one ``b`` selects."""
    mine = dict(a)
    return all(f in mine and set(mine[f]) <= set(v) for f, v in b)


def _merge_excludes(excludes: tuple[Select, ...]) -> tuple[Select, ...]:
    """Excluded selections simplified (an engine expression has a size limit): those within another
    excluded one dropped, one-key selections on the same fact merged (tier key, tier mid -> tier key/mid)."""
    excludes = tuple(
        x
        for i, x in enumerate(excludes)
        if not any(_within(x, y) and (x != y or j < i) for j, y in enumerate(excludes) if j != i)
    )
    single: dict[str, list[str]] = {}
    rest = []
    for x in excludes:
        if len(x) == 1:
            f, values = x[0]
            single.setdefault(f, []).extend(v for v in values if v not in single.get(f, []))
        else:
            rest.append(x)
    return tuple(((f, tuple(v)),) for f, v in single.items()) + tuple(rest)


def message_fields(template: str) -> tuple[str, ...]:
    out = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name:
            base = re.split(r"[.\[|]", name, maxsplit=1)[0]
            if base not in out:
                out.append(base)
    return tuple(out)


def severities_of(thresholds: Mapping[str, Any], default: str) -> tuple[str, ...]:
    """Severities a threshold set defines, highest first; the rule's own severity if none is per-severity."""
    sevs: set[str] = set()
    for v in thresholds.values():
        if isinstance(v, Mapping):
            sevs |= set(v)
    return tuple(sorted(sevs, key=SEVERITY_RANK.__getitem__, reverse=True)) or (default,)


# -- YAML with positions -------------------------------------------------------------------------

# libyaml's composer when PyYAML was built with it (about 10x faster: 0.1 s of every check's start-up
# for the four built-in rule sets); same nodes, same marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


NodePath = tuple[str | int, ...]  # where a node sits in a YAML document: keys and list indexes


class _Doc:
    """Plain data of a YAML file plus the position of every node by path."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.marks: dict[NodePath, tuple[int, int]] = {}
        self.key_marks: dict[NodePath, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.quoted: set[NodePath] = set()
        self._ctor = yaml.SafeLoader("")
        try:
            if "&" in text or "*" in text:  # only then can there be anchors or aliases: scan for them
                self._refuse_aliases(text)
            node = yaml.compose(text, Loader=_LOADER)
            self.data = self._build(node, ()) if node is not None else None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
            raise InputError(
                f"{path}: invalid YAML", [Problem(path, line, f"invalid YAML: {getattr(e, 'problem', e)}", col)]
            ) from e
        except RecursionError:  # thousands of nested [ or {: no rule file is like that
            raise InputError(
                f"{path}: invalid rule-set file",
                [Problem(path, 1, "nested too deeply (expected a mapping with ruleset:, rules:)", 1)],
            ) from None

    def _refuse_aliases(self, text: str) -> None:
        """Anchors (&a) and aliases (*a) are refused before anything is built: a few hundred bytes of
        nested aliases expand to gigabytes ("billion laughs"), and a rule file has no use for them."""
        problems = []
        for token in yaml.scan(text, Loader=_LOADER):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                kind = "anchor &" if isinstance(token, yaml.AnchorToken) else "alias *"
                problems.append(
                    Problem(
                        self.path,
                        token.start_mark.line + 1,
                        f"YAML {kind}{token.value} is not allowed in a rule file (expected every value written out)",
                        token.start_mark.column + 1,
                    )
                )
                if len(problems) >= 20:
                    break
        if problems:
            raise InputError(
                f"{self.path}: invalid rule-set file ({len(problems)} problem{'s' if len(problems) > 1 else ''})",
                problems,
            )

    def _build(self, node: yaml.Node, path: NodePath) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for knode, vnode in node.value:
                key = self._ctor.construct_object(knode)
                if not isinstance(key, str):
                    self.problem(path, f"key {key!r} is not a name (expected text)", at=knode)
                    continue
                if key in out:
                    self.problem(path, f"duplicate key {key!r}", at=knode)
                self.key_marks[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                out[key] = self._build(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(v, path + (i,)) for i, v in enumerate(node.value)]
        if getattr(node, "style", None) in ("'", '"'):
            self.quoted.add(path)
        return self._ctor.construct_object(node)

    def problem(
        self, path: NodePath, message: str, at: yaml.Node | None = None, key: bool = False, offset: int = 0
    ) -> None:
        if at is not None:
            line, col = at.start_mark.line + 1, at.start_mark.column + 1
        else:
            line, col = (self.key_marks.get(path) if key else None) or self.marks.get(path) or self._nearest(path)
        self.problems.append(Problem(self.path, line, message, col + offset if col else col))

    def _nearest(self, path: NodePath) -> tuple[int | None, int | None]:
        while path:
            path = path[:-1]
            if path in self.marks:
                return self.marks[path]
        return (None, None)


def _type_name(v: Any) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
        type(None): "nothing",
    }.get(type(v), type(v).__name__)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_value(doc: _Doc, path: NodePath, v: Any, what: str) -> bool:
    if isinstance(v, float) and not math.isfinite(v):  # .nan/.inf: every comparison with it is false
        doc.problem(path, f"{what}: {v} is not a threshold value (expected a finite number)")
        return False
    if isinstance(v, bool) or _is_num(v) or isinstance(v, str):
        return True
    doc.problem(path, f"{what}: {_type_name(v)} is not a threshold value (expected a number, true/false or text)")
    return False


def _check_thresholds(doc: _Doc, path: NodePath, raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        doc.problem(path, f"{where}: {_type_name(raw)} (expected a mapping of threshold names to values)")
        return {}
    out: dict[str, Any] = {}
    for name, v in raw.items():
        p = path + (name,)
        if not NAME_RE.match(name):
            doc.problem(p, f"threshold name {name!r} (expected lower_case_with_underscores)", key=True)
            continue
        if isinstance(v, dict):
            if not v:
                doc.problem(p, f"threshold {name!r} has no values (expected e.g. {{warning: 0.1, critical: 0.2}})")
                continue
            per = {}
            for sev, x in v.items():
                if sev not in SEVERITIES:
                    doc.problem(p + (sev,), f"unknown severity {sev!r} (expected {', '.join(SEVERITIES)})", key=True)
                elif _check_value(doc, p + (sev,), x, f"threshold {name}.{sev}"):
                    per[sev] = x
            out[name] = per
        elif _check_value(doc, p, v, f"threshold {name}"):
            out[name] = v
    return out


def _check_ordering(
    doc: _Doc,
    path: NodePath,
    when: list[Condition | AnyOf],
    thresholds: Mapping[str, Any],
    tiers: Mapping[str, Any],
    limits: Sequence[Limits] = (),
) -> None:
    """A threshold used with < <= > >= must be able to order the fact: true/false and number-like text never
    compare with a number (the rule would silently never fire). Other text (ISO dates) is allowed."""
    for cond in leaves(when):
        t = cond.threshold
        if t is None or cond.op not in ORDERING or t not in thresholds:
            continue
        where: list[tuple[NodePath, Any]] = [(("thresholds", t), thresholds[t])] + [
            (("tiers", tier, t), over[t]) for tier, over in tiers.items() if t in over
        ]
        where += [
            (row.path[len(path) :] + (t,), row.thresholds[t])
            for row in limits
            if t in row.thresholds and row.path[len(path)] == "limits"
        ]
        for sub, v in where:
            for p, x in [(sub + (k,), y) for k, y in v.items()] if isinstance(v, Mapping) else [(sub, v)]:
                if isinstance(x, bool) or (isinstance(x, str) and numberlike(x)):
                    shown = "true/false" if isinstance(x, bool) else f"text {x!r}"
                    doc.problem(
                        path + p,
                        f"threshold {t}: {shown} is compared with `{cond.op}` in {cond.text.strip()!r} "
                        f"(expected a number{', unquoted' if isinstance(x, str) else ''})",
                    )


def _str(doc: _Doc, r: dict[str, Any], key: str, path: NodePath, required: bool = False, default: str = "") -> str:
    if key not in r:
        if required:
            doc.problem(path, f"missing key {key!r} (expected {key}: text)")
        return default
    v = r[key]
    if not isinstance(v, str) or (required and not v.strip()):
        doc.problem(path + (key,), f"{key}: {_type_name(v)} (expected non-empty text)")
        return default
    # descriptions may span lines (they are joined with spaces); every other text is one line
    bad = control_problem(" ".join(v.split()) if key == "description" else v)
    if bad and key != "message":  # a message's problems are reported with its template's
        doc.problem(path + (key,), f"{key}: {bad}")
        return default
    return v.strip() if key != "message" else v


def _parse_one(doc: _Doc, text: Any, p: NodePath, r: dict[str, Any], thresholds: Mapping[str, Any]) -> Condition | None:
    """One condition text of a ``when`` list (or of an ``any:`` block in it)."""
    line, col = doc.marks[p]
    if not isinstance(text, str):
        doc.problem(p, f'condition is {_type_name(text)} (expected text "FACT OP OPERAND" or any: [conditions])')
        return None
    base = 1 if p in doc.quoted else 0  # columns point into the text itself
    try:
        cond = parse_condition(text, line, col + base + len(text) - len(text.lstrip()))
    except ConditionError as e:
        doc.problem(p, f"{e} in condition {text!r}", offset=base + e.offset)
        return None
    if (
        cond.threshold
        and cond.threshold not in thresholds
        and not (isinstance(r.get("thresholds"), dict) and cond.threshold in r["thresholds"])
    ):
        doc.problem(
            p,
            f"unknown threshold ${cond.threshold} (expected one of: {', '.join(thresholds) or 'none defined under thresholds:'})",
            offset=base + text.index("$" + cond.threshold),
        )
    return cond


def _parse_any(
    doc: _Doc, item: dict[str, Any], p: NodePath, r: dict[str, Any], thresholds: Mapping[str, Any]
) -> AnyOf | None:
    """``- any: [cond, cond]`` in a ``when`` list: true when one of the conditions holds."""
    for key in item:
        if key != "any":
            doc.problem(p + (key,), f"unknown key {key!r} in a condition (expected any: [conditions])", key=True)
            return None
    raw = item.get("any")
    if not isinstance(raw, list) or not raw:
        doc.problem(p + ("any",), f'any: {_type_name(raw)} (expected a non-empty list of conditions "FACT OP OPERAND")')
        return None
    conds = [c for j, text in enumerate(raw) if (c := _parse_one(doc, text, p + ("any", j), r, thresholds)) is not None]
    if len(conds) < len(raw):
        return None
    line, col = doc.marks[p]
    return AnyOf(tuple(conds), line, col)


def _parse_limits(
    doc: _Doc, r: dict[str, Any], path: NodePath, thresholds: Mapping[str, Any], tiers: Mapping[str, Any]
) -> tuple[Limits, ...]:
    """The rule's `tiers:` and `limits:` rows, in order of precedence; FILE:LINE:COL for unknown keys,
    values that aren't text, thresholds not defined under thresholds:, and rows that overlap or never apply."""
    rows = [
        Limits((("tier", (t,)),), over, doc.marks.get(path + ("tiers", t), (None,))[0], path + ("tiers", t))
        for t, over in sorted(tiers.items())
    ]
    raw = r.get("limits")
    if "limits" in r and r.get("scope", "account") == "portfolio":
        doc.problem(
            path + ("limits",), "a portfolio rule cannot have per-account limits (expected no limits:)", key=True
        )
        raw = []
    elif "limits" in r and (not isinstance(raw, list) or not raw):
        doc.problem(
            path + ("limits",), f"limits: {_type_name(raw)} (expected a list of rows like {{stage: visit, days: 45}})"
        )
        raw = []
    for i, row in enumerate(raw or []):
        rp = path + ("limits", i)
        if not isinstance(row, dict):
            doc.problem(rp, f"a limits row is {_type_name(row)} (expected a mapping like {{stage: visit, days: 45}})")
            continue
        select, over = [], {}
        known = len(doc.problems)
        for key, v in row.items():
            if key in SELECTORS:
                values = v if isinstance(v, list) else [v]
                if not values or not all(isinstance(x, str) and x.strip() for x in values):
                    doc.problem(rp + (key,), f"{key}: {_type_name(v)} (expected text or a list of text values)")
                    continue
                if key == "tier" and (bad := [x for x in values if x not in TIERS]):
                    doc.problem(rp + (key,), f"unknown tier {bad[0]!r} (expected {', '.join(TIERS)})")
                    continue
                select.append((SELECTORS[key], tuple(dict.fromkeys(values))))
            elif key in thresholds:
                over.update(_check_thresholds(doc, rp, {key: v}, "limits"))
            else:
                doc.problem(
                    rp + (key,),
                    f"unknown key {key!r} in a limits row (expected a selector ({', '.join(SELECTORS)}) "
                    f"or a threshold ({', '.join(thresholds) or 'none defined under thresholds:'}))",
                    key=True,
                )
        if len(doc.problems) > known:
            continue
        if not select:
            doc.problem(rp, f"limits row selects no accounts (expected at least one of {', '.join(SELECTORS)})")
            continue
        if not over:
            doc.problem(rp, "limits row sets no threshold (expected e.g. days: 45)")
            continue
        order = list(SELECTORS.values())
        rows.append(
            Limits(tuple(sorted(select, key=lambda fv: order.index(fv[0]))), over, doc.marks.get(rp, (None,))[0], rp)
        )
    rows.sort(key=Limits.rank)
    for i, row in enumerate(rows):
        for other in rows[:i]:
            same_keys = [f for f, _ in other.select] == [f for f, _ in row.select]
            overlap = all(set(dict(other.select)[f]) & set(v) for f, v in row.select) if same_keys else False
            if overlap or (not same_keys and () in _excluded(row, [other])):
                doc.problem(
                    row.path,
                    f"limits row {row.label} also matches row {other.label} (line {other.line}), "
                    f"which takes precedence (expected each account selected by one row of the same keys)",
                )
                break
    return tuple(rows)


def _parse_rule(doc: _Doc, r: Any, path: NodePath, ruleset: str) -> Rule | None:
    if not isinstance(r, dict):
        doc.problem(
            path, f"a rule must be a mapping, not {_type_name(r)} (expected code:, name:, when:, message:, action:)"
        )
        return None
    before = len(doc.problems)
    for key in r:
        if key not in RULE_KEYS:
            doc.problem(
                path + (key,), f"unknown key {key!r} in a rule (expected one of {', '.join(RULE_KEYS)})", key=True
            )
    code = _str(doc, r, "code", path, required=True)
    if code and not CODE_RE.match(code):
        doc.problem(path + ("code",), f"code {code!r} (expected 2-5 capital letters and 3 digits, e.g. KAM101)")
    name = _str(doc, r, "name", path, required=True)
    if name and not NAME_RE.match(name):
        doc.problem(path + ("name",), f"name {name!r} (expected lower_case_with_underscores)")
    scope = r.get("scope", "account")
    if scope not in SCOPES:
        doc.problem(path + ("scope",), f"scope {scope!r} (expected account or portfolio)")
    enabled = r.get("enabled", True)
    if not isinstance(enabled, bool):
        doc.problem(path + ("enabled",), f"enabled: {_type_name(enabled)} (expected true or false)")
    severity = r.get("severity", "warning")
    if severity not in SEVERITIES:
        doc.problem(path + ("severity",), f"unknown severity {severity!r} (expected {', '.join(SEVERITIES)})")
    thresholds = (
        _check_thresholds(doc, path + ("thresholds",), r["thresholds"], "thresholds") if "thresholds" in r else {}
    )
    tiers: dict[str, dict[str, Any]] = {}
    if "tiers" in r:
        if scope == "portfolio":
            doc.problem(
                path + ("tiers",), "a portfolio rule cannot have per-tier thresholds (expected no tiers:)", key=True
            )
        elif not isinstance(r["tiers"], dict):
            doc.problem(path + ("tiers",), f"tiers: {_type_name(r['tiers'])} (expected a mapping tier -> thresholds)")
        else:
            for tier, over in r["tiers"].items():
                tp = path + ("tiers", tier)
                if tier not in TIERS:
                    doc.problem(tp, f"unknown tier {tier!r} (expected {', '.join(TIERS)})", key=True)
                    continue
                checked = _check_thresholds(doc, tp, over, f"tier {tier}")
                for t in checked:
                    if t not in thresholds:
                        doc.problem(
                            tp + (t,),
                            f"tier {tier} overrides unknown threshold {t!r} (expected one of: {', '.join(thresholds) or 'none defined'})",
                            key=True,
                        )
                tiers[tier] = checked
    when: list[Condition | AnyOf] = []
    wp = path + ("when",)
    raw_when = r.get("when")
    if "when" not in r:
        doc.problem(path, "missing key 'when' (expected a list of conditions \"FACT OP OPERAND\")")
    elif not isinstance(raw_when, list) or not raw_when:
        doc.problem(wp, f'when: {_type_name(raw_when)} (expected a non-empty list of conditions "FACT OP OPERAND")')
    else:
        for i, item in enumerate(raw_when):
            cond: Condition | AnyOf | None
            if isinstance(item, dict):
                cond = _parse_any(doc, item, wp + (i,), r, thresholds)
            else:
                cond = _parse_one(doc, item, wp + (i,), r, thresholds)
            if cond is not None:
                when.append(cond)
    message, message_tr = parse_text(doc, r, "message", path, required=True)
    mpath = path + ("message",) + (("en",) if isinstance(r.get("message"), dict) else ())
    mline, mcol = doc.marks.get(mpath, (None, None))
    message_problems(doc, path, message, message_tr)
    action, actions, action_tr, actions_tr = _parse_action(doc, r, path, thresholds)
    limits = _parse_limits(doc, r, path, thresholds, tiers)
    _check_ordering(doc, path, when, thresholds, tiers, limits)
    # per-severity values must agree on their severities, tier by tier
    for tier in [None] + list(tiers) + [row for row in limits if row.select[0][0] != "tier" or len(row.select) > 1]:
        merged = dict(thresholds)
        if isinstance(tier, Limits):
            merged.update(tier.thresholds)
            tier = None
        elif tier:
            merged.update(tiers[tier])
        sets = {k: frozenset(v) for k, v in merged.items() if isinstance(v, dict)}
        if len(set(sets.values())) > 1:
            first = next(iter(sets))
            for k, s in sets.items():
                if s != sets[first]:
                    where = path + (("tiers", tier, k) if tier and k in tiers[tier] else ("thresholds", k))
                    doc.problem(
                        where,
                        f"threshold {k!r} has severities {sorted(s)} but {first!r} has {sorted(sets[first])} (expected the same severities)",
                    )
                    break
    description, description_tr = parse_text(doc, r, "description", path)
    description, source = " ".join(description.split()), _str(doc, r, "source", path)
    translations = {
        lang: Texts(
            message_tr.get(lang, ""),
            action_tr.get(lang, ""),
            tuple(a.get(lang, "") for a in actions_tr),
            " ".join(description_tr.get(lang, "").split()),
        )
        for lang in sorted({*message_tr, *action_tr, *description_tr, *(k for a in actions_tr for k in a)})
    }
    if len(doc.problems) > before:
        return None
    return Rule(
        code=code,
        name=name,
        ruleset=ruleset,
        severity=severity,
        when=tuple(when),
        message=message,
        action=action,
        description=description,
        source=source,
        scope=scope,
        enabled=enabled,
        thresholds=thresholds,
        tiers=tiers,
        limits=limits,
        file=doc.path,
        line=doc.marks[path][0],
        message_line=mline,
        message_column=mcol,
        actions=actions,
        translations=translations,
    )


def _parse_action(
    doc: _Doc, r: dict[str, Any], path: tuple[Any, ...], thresholds: Mapping[str, Any]
) -> tuple[str, tuple[Any, ...], dict[str, str], list[dict[str, str]]]:
    """``action:`` as one text, or a list of ``{when: CONDITION, text: ...}`` ending with ``{text: ...}`` (the
    default): the first whose condition holds on the alert's facts is the alert's action. Each text may be
    {en: ..., zh: ...}: returns (default, actions, default's translations, each action's translations)."""
    raw = r.get("action")
    if not isinstance(raw, list):
        text, tr = parse_text(doc, r, "action", path, required=True)
        return text, (), tr, []
    ap = path + ("action",)
    expected = "(expected a list of {when: CONDITION, text: ...} ending with one {text: ...}, the default)"
    if not raw:
        doc.problem(ap, f"action: an empty list {expected}")
        return "", (), {}, []
    default, actions = "", []
    default_tr: dict[str, str] = {}
    actions_tr: list[dict[str, str]] = []
    for i, item in enumerate(raw):
        ip = ap + (i,)
        if not isinstance(item, dict):
            doc.problem(ip, f"action {i + 1}: {_type_name(item)} {expected}")
            continue
        for key in item:
            if key not in ("when", "text"):
                doc.problem(ip + (key,), f"unknown key {key!r} in an action (expected when and text)", key=True)
        text, tr = parse_text(doc, item, "text", ip, required=True)
        last = i == len(raw) - 1
        if "when" not in item:
            if not last:
                doc.problem(ip, f"action {i + 1} has no when: but is not the last {expected}")
            default, default_tr = text, tr
            continue
        if last:
            doc.problem(ip, f"the last action has a when: {expected}")
        cond_text = item["when"]
        line, col = doc.marks.get(ip + ("when",), (None, None))
        if not isinstance(cond_text, str):
            doc.problem(ip + ("when",), f'when: {_type_name(cond_text)} (expected one condition "FACT OP OPERAND")')
            continue
        base = 1 if ip + ("when",) in doc.quoted else 0
        try:
            cond = parse_condition(cond_text, line, (col or 0) + base)
        except ConditionError as e:
            doc.problem(ip + ("when",), f"{e} in condition {cond_text!r}", offset=base + e.offset)
            continue
        if cond.threshold and cond.threshold not in thresholds:
            doc.problem(
                ip + ("when",),
                f"unknown threshold ${cond.threshold} (expected one of: {', '.join(thresholds) or 'none defined under thresholds:'})",
            )
            continue
        actions.append((cond, text))
        actions_tr.append(tr)
    return default, tuple(actions), default_tr, actions_tr


def parse_ruleset(path: str | Path, text: str | None = None, builtin: bool = False) -> RuleSet:
    """Parse one rule-set file; raises :class:`InputError` listing every problem as FILE:LINE:COL."""
    spath = str(path)
    if text is None:
        try:
            text = (
                Path(path).read_text(encoding="utf-8-sig")
                if isinstance(path, (str, Path))
                else path.read_text(encoding="utf-8")
            )
        except FileNotFoundError:
            raise InputError(f"{spath}: rule-set file not found") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{spath}: not UTF-8 text (byte {e.start})") from e
    doc = _Doc(spath, text)
    data = doc.data
    if not isinstance(data, dict):
        doc.problem((), f"the file holds {_type_name(data)} (expected a mapping with ruleset:, rules:)")
        raise InputError(f"{spath}: invalid rule-set file", doc.problems)
    for key in data:
        if key not in TOP_KEYS:
            doc.problem((key,), f"unknown key {key!r} (expected one of {', '.join(TOP_KEYS)})", key=True)
    name = _str(doc, data, "ruleset", (), required=True)
    if name and not NAME_RE.match(name):
        doc.problem(("ruleset",), f"rule-set name {name!r} (expected lower_case_with_underscores)")
    rules: list[Rule] = []
    if "rules" not in data:
        doc.problem((), "missing key 'rules' (expected a list of rules)")
    elif not isinstance(data["rules"], list):
        doc.problem(("rules",), f"rules: {_type_name(data['rules'])} (expected a list of rules)")
    else:
        seen: dict[tuple[str, str], int | None] = {}
        for i, r in enumerate(data["rules"]):
            rule = _parse_rule(doc, r, ("rules", i), name)
            if rule is None:
                continue
            for key, val in (("code", rule.code),):  # names may repeat (e.g. one name, per-stage codes)
                if (key, val) in seen:
                    doc.problem(("rules", i, key), f"duplicate rule {key} {val!r} (first at line {seen[(key, val)]})")
                seen[(key, val)] = rule.line
            rules.append(rule)
    description, description_tr = parse_text(doc, data, "description", ())
    description, source = " ".join(description.split()), _str(doc, data, "source", ())
    if doc.problems:
        raise InputError(
            f"{spath}: invalid rule-set file ({len(doc.problems)} problem{'s' if len(doc.problems) > 1 else ''})",
            doc.problems,
        )
    return RuleSet(
        name=name,
        rules=tuple(rules),
        description=description,
        source=source,
        path=spath,
        builtin=builtin,
        descriptions={k: " ".join(v.split()) for k, v in description_tr.items()},
    )


# -- facts known at load time -----------------------------------------------------------------------


def check_facts(rulesets: Iterable[RuleSet], known: Mapping[str, set[str]]) -> list[Problem]:
    """Problems for conditions and messages naming facts no provider (or account column) produces.

    ``known`` maps a scope ("account"/"portfolio") to the fact names available there.
    """
    problems = []
    for rs in rulesets:
        for rule in rs.rules:
            names = known.get(rule.scope, set())
            for c in leaves(rule.when) + [c for c, _ in rule.actions]:
                for f in c.facts:
                    if f not in names:
                        problems.append(
                            Problem(
                                rule.file,
                                c.line,
                                f"rule {rule.code}: unknown fact {f!r} (expected a fact of a registered provider{_close(f, names)})",
                                c.column,
                            )
                        )
            for f in rule.message_fields:
                if f not in names and f not in rule.thresholds and f not in EXTRA_FIELDS:
                    problems.append(
                        Problem(
                            rule.file,
                            rule.message_line,
                            f"rule {rule.code}: message uses unknown field {{{f}}} (expected a fact, a threshold or as_of{_close(f, names | set(rule.thresholds))})",
                            rule.message_column,
                        )
                    )
            for t in rule.thresholds:
                if t in names:
                    problems.append(
                        Problem(
                            rule.file,
                            rule.line,
                            f"rule {rule.code}: threshold {t!r} has the name of a fact (expected a different name)",
                        )
                    )
    return problems


def _close(name: str, names: Iterable[str]) -> str:
    import difflib

    best = difflib.get_close_matches(name, sorted(names), n=1)
    return f"; did you mean {best[0]!r}?" if best else ""


# -- resolution: built-ins + user folders ------------------------------------------------------------


def user_files(dirs: Iterable[str | Path]) -> list[Path]:
    out = []
    for d in dirs:
        p = Path(d)
        if p.is_file():
            out.append(p)
            continue
        if not p.is_dir():
            raise InputError(f"{p}: rule-sets folder does not exist (expected a folder of *.yaml files)")
        out += sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml")))
    return out


def resolve(builtin_files: Iterable[str | Path], dirs: Iterable[str | Path] = ()) -> list[RuleSet]:
    """Parse built-in files and the user's folders; a user rule set replaces a built-in of the same name.

    Raises one :class:`InputError` with every problem of every file.
    """
    problems: list[Problem] = []
    by_name: dict[str, RuleSet] = {}
    origin: dict[str, str] = {}

    def load(path: str | Path, builtin: bool) -> None:
        try:
            rs = parse_ruleset(path, builtin=builtin)
        except InputError as e:
            problems.extend(e.problems or [Problem(str(path), None, str(e))])
            return
        if rs.name in by_name and (builtin or not by_name[rs.name].builtin):
            problems.append(
                Problem(
                    rs.path,
                    1,
                    f"rule set {rs.name!r} is also defined in {origin[rs.name]} (expected one file per rule set name)",
                )
            )
            return
        by_name[rs.name] = rs
        origin[rs.name] = rs.path

    for path in builtin_files:
        load(path, True)
    for path in user_files(dirs):
        load(path, False)
    codes: dict[str, Rule] = {}
    for rs in by_name.values():
        for rule in rs.rules:
            if rule.code in codes:
                first = codes[rule.code]
                problems.append(
                    Problem(
                        rule.file,
                        rule.line,
                        f"rule code {rule.code} is also used in {first.file}:{first.line} (expected codes unique across rule sets)",
                    )
                )
            else:
                codes[rule.code] = rule
    if problems:
        raise InputError(f"rule-set files have {len(problems)} problem{'s' if len(problems) > 1 else ''}", problems)
    return sorted(by_name.values(), key=lambda r: r.name)


# -- Python evaluation (kamrules explain; the engine must agree) ------------------------------------


@dataclass(frozen=True)
class Verdict:
    """How one rule came out on one fact set."""

    code: str
    fired: bool
    severity: str | None = None
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    failed: Condition | AnyOf | None = None  # the first condition that was false (lowest severity tried)
    actual: Any = None  # that condition's fact value (None = missing)

    def reason(self) -> str:
        """Why the rule fired or not, in the current language (kamrules.i18n; explain's JSON asks for en)."""
        if self.fired:
            shown = [
                f"`{c.describe(self.thresholds)}`: {c.fact} = {_show(self.facts_seen.get(c.fact))}"
                for c in self.conditions
                if c.ref_kind
            ]
            head = gettext("fired: {severity}").format(severity=label("severity", self.severity))
            return head + (gettext(" ({details})").format(details=gettext("; ").join(shown)) if shown else "")
        if self.failed is None:
            return gettext("not fired")
        c = self.failed
        cond = c.describe(self.thresholds)
        if c.op == "any":
            return gettext("not fired: `{condition}` is false").format(condition=cond)
        if self.actual is None and c.op not in ("is missing", "is present"):
            return gettext("not fired: `{condition}` is false: {fact} has no value").format(condition=cond, fact=c.fact)
        detail = _value_of(c.fact, self.actual)
        if c.ref_kind == "fact":
            detail += gettext(", ") + _value_of(str(c.ref), self.other)
        return gettext("not fired: `{condition}` is false ({detail})").format(condition=cond, detail=detail)

    other: Any = None
    conditions: tuple[Condition | AnyOf, ...] = ()
    facts_seen: Mapping[str, Any] = field(default_factory=dict)


def _value_of(fact: str, v: Any) -> str:
    """``fact = 12`` or ``fact has no value``, for a verdict's reason."""
    return gettext("{fact} has no value").format(fact=fact) if v is None else f"{fact} = {_show(v)}"


def _show(v: Any) -> str:
    """A fact's value in a verdict: numbers for people (kamrules.messages.human), text quoted."""
    if v is None:
        return gettext("no value")
    return repr(v) if isinstance(v, str) else human(v)


def evaluate(rule: Rule, facts: Mapping[str, Any]) -> Verdict:
    """Evaluate ``rule`` on ``facts`` in Python: the highest severity whose conditions all hold."""
    variants = rule.variants_for(facts) if rule.scope == "account" else rule.variants()
    last = None
    for v in variants:  # highest severity first
        failed = next((c for c in rule.when if not c.holds(facts, v.thresholds)), None)
        if failed is None:
            return Verdict(
                rule.code,
                True,
                v.severity,
                v.thresholds,
                conditions=rule.when,
                facts_seen={f: facts.get(f) for f in rule.facts},
            )
        last = (v, failed)
    if last is None:
        return Verdict(rule.code, False)
    v, c = last
    ref = facts.get(c.ref) if c.ref_kind == "fact" and c.ref is not None else None
    return Verdict(rule.code, False, None, v.thresholds, c, facts.get(c.fact), ref)
