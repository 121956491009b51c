"""Account health scores (0-100) from alerts: the scoring model, trends and the explain section.

The formula (docs/health.md): the rule sets that ran share 100 points in proportion to their
weights (a rule set that did not run, e.g. every rule skipped for missing data, gets none: its
weight is redistributed). In a rule set with budget B, the account's alerts get values
a = min(1, penalty[severity] x rule factor), sorted from the largest; the rule set costs
B x min(1, a1 + a2·d + a3·d² + ...) with d = extra_alerts < 1. The score is 100 minus the points
lost, rounded. Each alert's share of its rule set's cost is its driver points.

Adding an alert never raises a score (sorted descending, each new term pays for the discount it
causes below it) and a worse severity never raises it (the sorted sum is the maximum over orders).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kamrules.scorecard import Model, Scorecard, load_scorecard

STEADY = 2  # |change| <= this many points: steady
MONTH_DAYS = 30  # the second trend: a run about 30 days earlier ...
MONTH_WINDOW = 7  # ... within this many days of it


@lru_cache(maxsize=1)
def default_scorecard() -> Scorecard:
    return load_scorecard()


@dataclass(frozen=True)
class Hit:
    """One alert, as far as the score is concerned."""

    ruleset: str
    code: str
    rule: str
    severity: str


@dataclass(frozen=True)
class Driver:
    code: str
    ruleset: str
    rule: str
    severity: str
    points: float  # points this alert cost the account

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "ruleset": self.ruleset,
            "rule": self.rule,
            "severity": self.severity,
            "points": self.points,
        }


@dataclass(frozen=True)
class AccountScore:
    account_id: str
    score: int
    grade: str
    profile: str
    drivers: tuple[Driver, ...] = ()  # most points first
    budgets: Mapping[str, float] = field(default_factory=dict)  # rule set -> points it can cost
    lost: Mapping[str, float] = field(default_factory=dict)  # rule set -> points it cost


def _hit(a) -> Hit:
    if isinstance(a, Hit):
        return a
    get: Callable[[str], Any] = a.get if isinstance(a, Mapping) else (lambda k: getattr(a, k))
    return Hit(get("ruleset"), get("code"), get("rule"), get("severity"))


def compute(hits: Sequence[Hit], model: Model, ran: Iterable[str] | None = None):
    """(score as a float, drivers, budgets, lost) for one account's alerts under ``model``.

    ``ran``: the rule sets that ran (None: those the model names); a rule set with an alert always counts."""
    considered = set(model.weights if ran is None else ran) | {h.ruleset for h in hits}
    total = sum(model.weight(r) for r in considered)
    budgets = {r: (100.0 * model.weight(r) / total if total > 0 else 0.0) for r in sorted(considered)}
    by_rs: dict[str, list[tuple[float, Hit]]] = {}
    for h in hits:
        a = min(1.0, model.penalties.get(h.severity, 1.0) * model.factor(h.code))
        by_rs.setdefault(h.ruleset, []).append((a, h))
    drivers, lost = [], {}
    for rs, items in by_rs.items():
        items.sort(key=lambda x: (-x[0], x[1].code))
        terms = [a * model.extra_alerts**k for k, (a, _) in enumerate(items)]
        s = sum(terms)
        cost = budgets[rs] * min(1.0, s)
        lost[rs] = cost
        for t, (_, h) in zip(terms, items, strict=True):
            drivers.append(Driver(h.code, h.ruleset, h.rule, h.severity, round(cost * t / s, 1) if s > 0 else 0.0))
    drivers.sort(key=lambda d: (-d.points, d.code))
    return 100.0 - sum(lost.values()), tuple(drivers), budgets, lost


def to_int(score: float) -> int:
    """Round half up and clamp to 0..100 (monotone, unlike round())."""
    return max(0, min(100, math.floor(score + 0.5 + 1e-9)))


def score_account(
    account_id: str,
    alerts: Iterable,
    scorecard: Scorecard | None = None,
    tier=None,
    segment=None,
    ran: Iterable[str] | None = None,
) -> AccountScore:
    """The health of one account from its alerts (Alert objects or dicts with ruleset, code, rule, severity)."""
    sc = scorecard or default_scorecard()
    model = sc.model_for(tier, segment)
    raw, drivers, budgets, lost = compute([_hit(a) for a in alerts], model, ran)
    score = to_int(raw)
    return AccountScore(account_id, score, sc.grade_of(score).grade, model.name, drivers, budgets, lost)


def ran_from(rulesets, skipped=(), chosen: Iterable[str] | None = None) -> set[str]:
    """Rule sets (RuleSet objects) with an enabled rule not skipped (``skipped``: codes or (code, reason))."""
    skip = {s[0] if isinstance(s, (tuple, list)) else s for s in skipped}
    want = set(chosen) if chosen is not None else None
    return {
        rs.name
        for rs in rulesets
        if (want is None or rs.name in want) and any(r.enabled and r.code not in skip for r in rs.rules)
    }


def score_accounts(
    alerts: Iterable,
    accounts: Iterable[Mapping],
    scorecard: Scorecard | None = None,
    skipped=(),
    rulesets=None,
    ran: Iterable[str] | None = None,
) -> list[AccountScore]:
    """Every account's score. ``accounts``: mappings with id (and tier, segment). Rules ``skipped`` for
    missing data cost nothing; a rule set all of whose rules were skipped (needs ``rulesets``, the
    RuleSet objects, to tell) is left out and its weight shared among the others. Portfolio alerts
    (no account) do not count."""
    sc = scorecard or default_scorecard()
    if ran is None and rulesets is not None:
        ran = ran_from(rulesets, skipped)
    by_account: dict[str, list[Hit]] = {}
    for a in alerts:
        h, acc = _hit(a), (a.get("account_id") if isinstance(a, Mapping) else a.account_id)
        if acc:
            by_account.setdefault(acc, []).append(h)
    ran = None if ran is None else set(ran)
    return [
        score_account(acc["id"], by_account.get(acc["id"], ()), sc, acc.get("tier"), acc.get("segment"), ran)
        for acc in accounts
    ]


def score_alerts(conn, alerts: Iterable, scorecard: Scorecard, ran: Iterable[str] | None) -> list[AccountScore]:
    """Scores of the accounts that have alerts (the others score 100), their tier read from ``conn``."""
    by_account: dict[str, list[Hit]] = {}
    for a in alerts:
        if a.account_id:
            by_account.setdefault(a.account_id, []).append(_hit(a))
    ids = sorted(by_account)
    tiers: dict[str, tuple[Any, Any]] = {}  # account id -> (tier, segment)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for acc, tier, segment in conn.execute(
            f"SELECT id, tier, segment FROM accounts WHERE id IN ({', '.join('?' * len(chunk))})", chunk
        ):
            tiers[acc] = (tier, segment)
    ran = None if ran is None else set(ran)
    return [score_account(acc, by_account[acc], scorecard, *tiers.get(acc, (None, None)), ran=ran) for acc in ids]


def trend(score: int | None, previous: int | None) -> dict[str, Any] | None:
    """{direction: up|down|steady, change: points} against an earlier score (None: no earlier score)."""
    if score is None or previous is None:
        return None
    change = score - previous
    return {
        "direction": "steady" if abs(change) <= STEADY else ("up" if change > 0 else "down"),
        "change": change,
        "previous": previous,
    }


def explain_section(explanation, scorecard: Scorecard | None = None) -> dict[str, Any]:
    """How ``explain``'s account would score: profile, budgets, each fired rule's points, the grade."""
    sc = scorecard or default_scorecard()
    facts = explanation.facts
    fired = [v for v in explanation.verdicts if v.status == "fired" and v.severity]
    ran = {v.ruleset for v in explanation.verdicts if v.status in ("fired", "not_fired")}
    s = score_account(
        explanation.account_id,
        [Hit(v.ruleset, v.code, v.rule, v.severity) for v in fired],
        sc,
        facts.get("tier"),
        facts.get("segment"),
        ran=ran,
    )
    skipped_sets = sorted({v.ruleset for v in explanation.verdicts if v.status == "skipped"} - ran)
    model = sc.model_for(facts.get("tier"), facts.get("segment"))
    g = sc.grade_of(s.score)
    return {
        "score": s.score,
        "grade": s.grade,
        "grade_en": g.en,
        "grade_zh": g.zh,
        "profile": s.profile,
        "scorecard": sc.name,
        "budgets": {k: round(v, 1) for k, v in s.budgets.items()},
        "lost": {k: round(v, 1) for k, v in s.lost.items()},
        "drivers": [d.to_dict() for d in s.drivers],
        "penalties": dict(model.penalties),
        "extra_alerts": model.extra_alerts,
        "redistributed": skipped_sets,
    }


def render_explain_section(section: Mapping[str, Any]) -> list[str]:
    """The text lines of :func:`explain_section` for explain's table output, in the run's language."""
    from kamrules.i18n import _, get_lang, label

    zh = get_lang() == "zh"
    pen = _(", ").join(f"{label('severity', k)} {v:g}" for k, v in section["penalties"].items())
    grade = section["grade_zh"] if zh else f"{section['grade_en']} ({section['grade_zh']})"
    out = [
        _("health: {score}/100, {grade}; scorecard {scorecard}, profile {profile}").format(
            score=section["score"], grade=grade, scorecard=section["scorecard"], profile=section["profile"]
        ),
        _("  penalties {penalties}; each further alert in a rule set x{factor}").format(
            penalties=pen, factor=f"{section['extra_alerts']:g}"
        ),
    ]
    for rs, budget in section["budgets"].items():
        out.append(
            _("  {ruleset} budget {budget}  lost {lost}").format(
                ruleset=f"{rs:<30}", budget=f"{budget:5.1f}", lost=f"{section['lost'].get(rs, 0.0):5.1f}"
            )
        )
    for d in section["drivers"]:
        out.append(
            _("   {points}  {code}  {rule} ({severity})").format(
                points=f"{-d['points']:6.1f}", code=d["code"], rule=d["rule"], severity=label("severity", d["severity"])
            )
        )
    if section["redistributed"]:
        out.append(
            _("  no rule ran (data missing): {rulesets}; their weight is shared by the others").format(
                rulesets=_(", ").join(section["redistributed"])
            )
        )
    return out
