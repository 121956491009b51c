"""A rule's texts per language: `message`, `action` and `description` as text (English) or {en: ..., zh: ...}."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kamrules.i18n import DEFAULT, LANGS
from kamrules.messages import NO_PLURAL, control_problem, split_plural, template_problems

if TYPE_CHECKING:
    from kamrules.ruleset import NodePath, _Doc


@dataclass(frozen=True)
class Texts:
    """A rule's texts in one language other than English ("" where it has none: English is used)."""

    message: str = ""
    action: str = ""  # the default action
    actions: tuple[str, ...] = ()  # the conditional actions' texts, in the rule's order ("" = none)
    description: str = ""

    def complete(self, n_actions: int, has_description: bool) -> bool:
        """True if every text the rule has in English is in this language too."""
        return bool(
            self.message
            and self.action
            and len(self.actions) == n_actions
            and all(self.actions)
            and (self.description or not has_description)
        )


def _type_name(v: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "a mapping"}.get(
        type(v), "nothing" if v is None else type(v).__name__
    )


def parse_text(
    doc: _Doc, r: Mapping[str, Any], key: str, path: NodePath, required: bool = False
) -> tuple[str, dict[str, str]]:
    """``r[key]`` as (English text, {language: text}): plain text is English; a mapping {en: ..., zh: ...} gives
    each language (en required, codes from kamrules.i18n.LANGS). Problems go to ``doc`` at FILE:LINE:COL."""
    if key not in r:
        if required:
            doc.problem(path, f"missing key {key!r} (expected {key}: text)")
        return "", {}
    raw = r[key]
    p = path + (key,)
    if not isinstance(raw, dict):
        return _one(doc, raw, key, p, required, key), {}
    for lang in raw:
        if lang not in LANGS:
            doc.problem(
                p + (lang,),
                f"{key}: unknown language {lang!r} (expected one of: {', '.join(LANGS)})",
                key=True,
            )
    if DEFAULT not in raw:
        doc.problem(p, f"{key}: no {DEFAULT!r} text (expected {{{DEFAULT}: text, ...}}: English is the fallback)")
        return "", {}
    en = _one(doc, raw[DEFAULT], key, p + (DEFAULT,), required, f"{key}.{DEFAULT}")
    out = {
        lang: _one(doc, v, key, p + (lang,), True, f"{key}.{lang}")
        for lang, v in raw.items()
        if lang != DEFAULT and lang in LANGS
    }
    return en, {k: v for k, v in out.items() if v}


def _one(doc: _Doc, v: Any, key: str, p: NodePath, required: bool, what: str) -> str:
    if not isinstance(v, str) or (required and not v.strip()):
        doc.problem(p, f"{what}: {_type_name(v)} (expected non-empty text)")
        return ""
    if key == "message":  # a message's problems are reported with its template's (message_problems)
        return v
    # descriptions may span lines (they are joined with spaces); every other text is one line
    bad = control_problem(" ".join(v.split()) if key == "description" else v)
    if bad:
        doc.problem(p, f"{what}: {bad}")
        return ""
    return v.strip()


def message_problems(doc: _Doc, path: NodePath, en: str, others: Mapping[str, str]) -> None:
    """Template problems of every language's message; a translation must use the same fields as the English
    one (the evidence and the checks at load time are the English message's), plural fields one word in zh."""
    from kamrules.ruleset import message_fields

    en_problems = template_problems(en) if en else []
    for bad in en_problems:
        doc.problem(path + ("message",) + ((DEFAULT,) if others else ()), f"message: {bad}")
    if en_problems or not others:
        return
    want = set(message_fields(en))
    for lang, text in others.items():
        lp = path + ("message", lang)
        problems = template_problems(text)
        for bad in problems:
            doc.problem(lp, f"message.{lang}: {bad}")
        if problems or not en:
            continue
        # a translation may leave a field out (a fact holding an English phrase, said otherwise) but may not add
        # one: the alert's evidence and the load-time fact checks come from the English message
        extra = sorted(set(message_fields(text)) - want)
        if extra:
            doc.problem(
                lp,
                f"message.{lang} uses fields the {DEFAULT} message does not: {', '.join('{' + f + '}' for f in extra)} "
                f"(expected only fields of message.{DEFAULT})",
            )
        if lang in NO_PLURAL:
            import string

            for _, name, spec, _ in string.Formatter().parse(text):
                if name is None:
                    continue
                base, _, forms = split_plural(name, spec or "")
                if forms is not None and len(forms) != 1:
                    doc.problem(
                        lp,
                        f"message.{lang}: field {{{base}|{'|'.join(forms)}}}: {lang} has no plural "
                        f"(expected one word, e.g. {{{base}|天}} -> 30天)",
                    )


def description_of(description: str, translations: Mapping[str, Texts], lang: str) -> str:
    """The description in ``lang`` (English if it has none)."""
    tr = translations.get(lang)
    return (tr.description if tr else "") or description


# Facts whose values are enumeration values: in another language they print as their label (拜访, 大客户)
FACT_KINDS = {
    "pipeline_stage": "stage",
    "regressed_from": "stage",
    "regressed_to": "stage",
    "complaint_severity": "complaint_severity",
    "tier": "tier",
    "status": "status",
    "buyer_type": "buyer_type",
    "purchasing": "purchasing",
    "relationship_stage": "relationship_stage",
}
# Facts whose values are fixed English phrases (built-in providers' SQL): their zh wording. A fact with a
# free English phrase (follow_up_note, attention, ...) is one a zh message leaves out (its numbers remain
# in the alert's evidence).
VALUES = {
    "zh": {
        "never": "从未",
        "analysis and visit": "客户分析和拜访",
        "analysis": "客户分析",
        "visit": "拜访",
        "technical": "技术",
        "management": "管理层",
        "technical and management": "技术和管理层",
        "a complaint channel the client knows of": "客户知晓的投诉渠道",
        "a complaint channel the client has not been told of": "投诉渠道但未告知客户",
        "no complaint channel": "没有投诉渠道",
        "someone unrecorded": "(未登记拜访人)",
        "contact, duration or attitude": "拜访对象、时长和客户态度",
        "contact or duration": "拜访对象和时长",
        "contact or attitude": "拜访对象和客户态度",
        "contact": "拜访对象",
        "duration or attitude": "时长和客户态度",
        "duration": "时长",
        "attitude": "客户态度",
        "the same 6 months a year earlier": "去年同期6个月",
        "the 6 months before": "之前6个月",
        "no year of orders to compare with": "不足一年订单，无去年同期可比",
        "escalated and still open": "已升级但仍未解决",
        "not escalated": "未升级",
    }
}


# Facts that say where a day count starts (``*_counted_from``, ``order_season``: plugins/core_facts.py's
# count_days and the seasonal comparison) hold an English phrase around a date or a number.
_SINCE = {
    "the records start": "记录开始",
    "it was created": "建档",
    "it was won": "签约",
    "its first activity": "首次活动",
}
PATTERNS: dict[str, list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]] = {
    "zh": [
        (re.compile(r"last(?::| on) (\S+)"), lambda m: f"上次：{m[1]}"),
        (
            re.compile(
                r"(?:none|no meeting|no visit|no survey) (?:on record|recorded),? since ("
                + "|".join(_SINCE)
                + r") on (\S+)"
            ),
            lambda m: f"自{_SINCE[m[1]]}（{m[2]}）起无记录",
        ),
        (re.compile(r"none (?:on record|recorded)"), lambda m: "无记录"),
        (
            re.compile(r"pro-rated seasonally: (\d+)% of the target due, as in last year's orders"),
            lambda m: f"按季节折算：参照去年订单，应完成目标的{m[1]}%",
        ),
        (re.compile(r"pro-rated linearly: (\d+) of (\d+) days"), lambda m: f"按时间折算：{m[2]}天中已过{m[1]}天"),
        (
            re.compile(r"(longer than|within) the (\d+)-day break over the same date a year earlier"),
            lambda m: f"{'超过' if m[1] == 'longer than' else '未超过'}去年同期{m[2]}天的断档",
        ),
    ]
}


def _phrase(v: str, lang: str) -> str | None:
    for pattern, zh in PATTERNS.get(lang, ()):
        m = pattern.fullmatch(v)
        if m:
            return zh(m)
    return None


# Facts holding a comma-separated list of enumeration values (with spaces for underscores)
FACT_LISTS = {"buying_roles_missing": "contact_role"}


def localized(facts: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """``facts`` for a message in ``lang``: enumeration values as their labels, known phrases translated."""
    from kamrules.vocab import LABELS

    out = dict(facts)
    words = VALUES.get(lang, {})
    for name, v in facts.items():
        if type(v) is not str:
            continue
        kind = FACT_KINDS.get(name)
        entry = LABELS.get(kind, {}).get(v) if kind else None
        if entry and lang in entry:
            out[name] = entry[lang]
        elif v in words:
            out[name] = words[v]
        elif (phrase := _phrase(v, lang)) is not None:
            out[name] = phrase
        elif name in FACT_LISTS:
            labels = LABELS.get(FACT_LISTS[name], {})
            items = [labels.get(w.replace(" ", "_"), {}).get(lang, w) for w in v.split(", ")]
            out[name] = "、".join(items) if lang == "zh" else ", ".join(items)
    return out
