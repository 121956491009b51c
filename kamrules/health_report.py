"""health_report(): every account's score, grade, trend and drivers at a date, with owner and book summaries."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kamrules import runs
from kamrules.errors import InputError
from kamrules.health import MONTH_DAYS, MONTH_WINDOW, Hit, default_scorecard, score_account, trend
from kamrules.lifecycle.schema import rows
from kamrules.scorecard import Scorecard

SORTS = ("score", "change", "revenue")


@dataclass
class HealthReport:
    as_of: str
    scorecard: str
    run: dict | None  # the recorded run the scores come from (None: computed on the fly)
    previous: dict | None  # the run the trend compares with
    month: dict | None  # the run about 30 days earlier
    accounts: list[dict]
    book: dict
    owners: dict[str, dict]
    grades: list[dict]
    skipped: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    @property
    def computed(self) -> bool:
        return self.run is None

    @property
    def complete(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        brief = lambda r: {"id": r["id"], "as_of": r["as_of"]} if r else None  # noqa: E731
        return {
            "as_of": self.as_of,
            "scorecard": self.scorecard,
            "computed": self.computed,
            "run": brief(self.run),
            "previous_run": brief(self.previous),
            "month_run": brief(self.month),
            "book": self.book,
            "owners": self.owners,
            "accounts": self.accounts,
            "skipped": self.skipped,
            "failures": self.failures,
        }


def _accounts(conn) -> list[dict]:
    return rows(conn, "SELECT id, name, owner, tier, segment FROM accounts ORDER BY id")


def _revenue(conn, as_of: str) -> dict[str, float]:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'orders'").fetchone():
        return {}
    start = (dt.date.fromisoformat(as_of) - dt.timedelta(days=365)).isoformat()
    return {
        a: float(s or 0)
        for a, s in conn.execute(
            "SELECT account_id, SUM(amount) FROM orders WHERE date > ? AND date <= ? GROUP BY account_id",
            (start, as_of),
        )
    }


def _rescored(stored: dict[str, dict], accounts: list[dict], sc: Scorecard, ran) -> dict[str, tuple[int, list[dict]]]:
    """{account: (score, drivers)} from a run's stored alerts (drivers) under ``sc``."""
    out = {}
    for acc in accounts:
        hits = [
            Hit(d["ruleset"], d["code"], d["rule"], d["severity"]) for d in stored.get(acc["id"], {}).get("drivers", [])
        ]
        if acc["id"] not in stored:
            continue
        s = score_account(acc["id"], hits, sc, acc.get("tier"), acc.get("segment"), ran)
        out[acc["id"]] = (s.score, [d.to_dict() for d in s.drivers])
    return out


def _run_scores(conn, run: dict | None, accounts, sc: Scorecard) -> dict[str, tuple[int, list[dict]]]:
    if run is None:
        return {}
    stored = runs.scores_of(conn, run["id"])
    if run.get("scorecard") == sc.digest:
        return {a: (r["score"], r["drivers"]) for a, r in stored.items()}
    return _rescored(stored, accounts, sc, run.get("ran"))


def _computed(store, as_of, accounts, sc, rulesets_dirs, pm, result=None):
    """Scores from a check run now (or ``result``, one already run at ``as_of``), recording nothing."""
    from kamrules.check import load_rulesets, run_check
    from kamrules.health import ran_from

    if result is None:
        result = run_check(store, as_of=as_of, rulesets_dirs=rulesets_dirs, pm=pm)
    s = result.summary
    sets = load_rulesets(store, pm or store.pm, rulesets_dirs)
    ran = ran_from(sets, s.skipped, s.rulesets)
    by_account: dict[str, list] = {}
    for a in result.alerts:
        if a.account_id:
            by_account.setdefault(a.account_id, []).append(a)
    out = {}
    for acc in accounts:
        r = score_account(acc["id"], by_account.get(acc["id"], ()), sc, acc.get("tier"), acc.get("segment"), ran)
        out[acc["id"]] = (r.score, [d.to_dict() for d in r.drivers])
    return out, [list(x) for x in s.skipped], [list(x) for x in s.failures]


def _summary(accounts: list[dict], sc: Scorecard) -> dict:
    by_grade = {g.grade: {"en": g.en, "zh": g.zh, "accounts": 0, "revenue_12m": 0.0} for g in sc.grades}
    for a in accounts:
        by_grade[a["grade"]]["accounts"] += 1
        by_grade[a["grade"]]["revenue_12m"] += a["revenue_12m"]
    for g in by_grade.values():
        g["revenue_12m"] = round(g["revenue_12m"], 2)
    n = len(accounts)
    at_risk = [g.grade for g in sc.grades[2:]]  # the grades below the top two: "revenue at risk"
    return {
        "accounts": n,
        "average": round(sum(a["score"] for a in accounts) / n, 1) if n else None,
        "by_grade": by_grade,
        "revenue_at_risk": round(sum(by_grade[g]["revenue_12m"] for g in at_risk), 2),
    }


def _sort(accounts: list[dict], sort: str) -> None:
    if sort == "change":
        accounts.sort(
            key=lambda a: (
                a["change"] is None,
                a["change"] if a["change"] is not None else 0,
                a["score"],
                a["account_id"],
            )
        )
    elif sort == "revenue":
        accounts.sort(key=lambda a: (-a["revenue_12m"], a["score"], a["account_id"]))
    else:
        accounts.sort(key=lambda a: (a["score"], -a["revenue_12m"], a["account_id"]))


def health_report(
    store,
    as_of: str,
    scorecard: Scorecard | None = None,
    owner: str | None = None,
    tiers: Iterable[str] = (),
    grades: Iterable[str] = (),
    sort: str = "score",
    rulesets_dirs: Iterable = (),
    pm=None,
    check_result=None,
) -> HealthReport:
    """Scores of the recorded run at ``as_of`` (the newest complete one), or computed now without
    recording anything when there is none; trends against the previous run and one ~30 days before.

    Raises InputError for an empty store, an unknown owner (with a did-you-mean), an unknown grade
    or sort, or filters that match no account. ``check_result``: a check already run at ``as_of`` (the
    report's), used instead of running one again when no run is recorded."""
    sc = scorecard or default_scorecard()
    if sort not in SORTS:
        raise InputError(f"unknown sort {sort!r} (expected {', '.join(SORTS)})")
    grades, tiers = list(grades), list(tiers)
    bad = [g for g in grades if g not in sc.grade_names()]
    if bad:
        raise InputError(f"unknown grade {', '.join(map(repr, bad))} (expected one of {', '.join(sc.grade_names())})")
    conn = store.conn
    if not store.table_exists("accounts") or not store.count("accounts"):
        raise InputError(f"{getattr(store, 'path', 'store')}: no accounts (run `kamrules import` first)")
    accounts = _accounts(conn)
    if owner is not None:
        owners = sorted({a["owner"] for a in accounts if a["owner"]})
        if owner not in owners:
            near = difflib.get_close_matches(owner, owners, n=3)
            hint = (
                f"; did you mean {', '.join(map(repr, near))}?"
                if near
                else f" (owners: {', '.join(owners[:10])}{' ...' if len(owners) > 10 else ''})"
            )
            raise InputError(f"no account has owner {owner!r}{hint}")
    run = runs.run_at(conn, as_of)
    skipped: list[Any] = []
    failures: list[Any] = []
    if run is not None:
        current = _run_scores(conn, run, accounts, sc)
        skipped = run["skipped"] or []
    else:
        current, skipped, failures = _computed(store, as_of, accounts, sc, rulesets_dirs, pm, check_result)
    previous = runs.run_before(conn, as_of)
    day = dt.date.fromisoformat(as_of)
    month = runs.run_before(
        conn,
        as_of,
        oldest=(day - dt.timedelta(days=MONTH_DAYS + MONTH_WINDOW)).isoformat(),
        target=(day - dt.timedelta(days=MONTH_DAYS)).isoformat(),
    )
    if month is not None and month["as_of"] > (day - dt.timedelta(days=MONTH_DAYS - MONTH_WINDOW)).isoformat():
        month = None
    before = _run_scores(conn, previous, accounts, sc)
    earlier = _run_scores(conn, month, accounts, sc)
    revenue = _revenue(conn, as_of)
    out = []
    for acc in accounts:
        if acc["id"] not in current:
            continue  # an account added after the run
        if owner is not None and acc["owner"] != owner or tiers and acc["tier"] not in tiers:
            continue
        score, drivers = current[acc["id"]]
        g = sc.grade_of(score)
        if grades and g.grade not in grades:
            continue
        t = trend(score, before.get(acc["id"], (None,))[0])
        t30 = trend(score, earlier.get(acc["id"], (None,))[0])
        out.append(
            {
                "account_id": acc["id"],
                "account_name": acc["name"],
                "owner": acc["owner"],
                "tier": acc["tier"],
                "segment": acc["segment"],
                "score": score,
                "grade": g.grade,
                "grade_en": g.en,
                "grade_zh": g.zh,
                "trend": t["direction"] if t else None,
                "change": t["change"] if t else None,
                "trend_30d": t30["direction"] if t30 else None,
                "change_30d": t30["change"] if t30 else None,
                "revenue_12m": round(revenue.get(acc["id"], 0.0), 2),
                "main_driver": drivers[0] if drivers else None,
                "drivers": drivers,
            }
        )
    if not out:
        what = ", ".join(
            x
            for x in (
                f"owner {owner}" if owner else "",
                f"tier {'/'.join(tiers)}" if tiers else "",
                f"grade {'/'.join(grades)}" if grades else "",
            )
            if x
        )
        raise InputError(f"no account matches {what or 'the selection'} as of {as_of}")
    _sort(out, sort)
    by_owner: dict[str, list] = {}
    for a in out:
        by_owner.setdefault(a["owner"] or "(no owner)", []).append(a)
    return HealthReport(
        as_of,
        sc.name,
        run,
        previous,
        month,
        out,
        _summary(out, sc),
        {o: _summary(v, sc) for o, v in sorted(by_owner.items())},
        [{"grade": g.grade, "en": g.en, "zh": g.zh, "min": g.min} for g in sc.grades],
        skipped,
        failures,
    )
