"""report_data(): what the portfolio report shows, gathered from the store at a date (no HTML here)."""

from __future__ import annotations

import datetime as dt
import difflib
from collections import Counter, defaultdict
from collections.abc import Iterable

from kamrules.alerts import SEVERITY_RANK
from kamrules.errors import InputError
from kamrules.vocab import SEVERITIES, STAGES

PIPELINE = STAGES[:-1]  # the stages a prospect can stall in ("won" is the end)
PARETO_POINTS = 200  # the Pareto curve is drawn through at most this many points, whatever the book's size
TOP_OWNERS_CHART = 30  # the alerts-by-owner chart shows the owners with the most alerts; the table lists all
DEFAULT_STAGE_DAYS = {
    "research": 30,
    "analysis": 30,
    "contact": 30,
    "visit": 45,
    "presentation": 45,
    "proposal": 30,
    "negotiation": 60,
}  # the domain's defaults, used when stalled_stages is not loaded


def _table(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def check_owners(conn, owners: Iterable[str]) -> list[str]:
    """The owners asked for, each known; InputError (exit 2) with a did-you-mean for one that is not."""
    wanted = list(dict.fromkeys(owners))
    if not wanted:
        return []
    known = sorted(
        r[0] for r in conn.execute("SELECT DISTINCT owner FROM accounts WHERE owner IS NOT NULL AND owner != ''")
    )
    for o in wanted:
        if o not in known:
            near = difflib.get_close_matches(o, known, n=3, cutoff=0.5)  # Chinese names are two or three characters
            hint = (
                f"; did you mean {', '.join(map(repr, near))}?"
                if near
                else f" (owners: {', '.join(known[:10])}{' ...' if len(known) > 10 else ''})"
            )
            raise InputError(f"--owner {o!r}: no account has this owner{hint}")
    return wanted


def _last_contacts(conn, as_of: str) -> dict[str, str]:
    if not _table(conn, "activities"):
        return {}
    return dict(
        conn.execute("SELECT account_id, MAX(date) FROM activities WHERE date <= ? GROUP BY account_id", (as_of,))
    )


def _revenue(conn, as_of: str) -> dict[str, float]:
    if not _table(conn, "orders"):
        return {}
    start = (dt.date.fromisoformat(as_of) - dt.timedelta(days=365)).isoformat()
    return {
        a: float(s or 0)
        for a, s in conn.execute(
            "SELECT account_id, SUM(amount) FROM orders WHERE date > ? AND date <= ? GROUP BY account_id",
            (start, as_of),
        )
    }


def _stage_limits(pm, rulesets_dirs) -> dict[tuple[str, str | None], int]:
    """{(stage, tier): days} from the stalled_stages rules KAM411-KAM417 (tier None: the default)."""
    out: dict[tuple[str, str | None], int] = {(s, None): d for s, d in DEFAULT_STAGE_DAYS.items()}
    try:
        from kamrules.check import builtin_ruleset_files
        from kamrules.ruleset import resolve

        sets = resolve(builtin_ruleset_files(pm, list(rulesets_dirs)), ())
    except Exception:  # noqa: BLE001 - the domain defaults stand in; the check itself reports broken rule sets
        return out
    for rs in sets:
        for r in rs.rules:
            if r.name != "stage_dwell" or not r.enabled:
                continue
            stage = next((c.value for c in r.when if c.fact == "pipeline_stage" and c.op == "=="), None)
            if stage in DEFAULT_STAGE_DAYS and "days" in r.thresholds:
                out[(stage, None)] = int(r.thresholds["days"])
                for tier in ("key", "mid", "small"):
                    out[(stage, tier)] = int(r.thresholds_for(tier).get("days", r.thresholds["days"]))
    return out


def _pipeline(conn, as_of: str, limits) -> list[dict]:
    """Per pipeline stage: prospects, days in stage (median, 90th percentile, max), how many over their limit."""
    if not _table(conn, "accounts"):
        return []
    entered: dict[str, tuple[str, str]] = {}
    if _table(conn, "stage_history"):  # the authority on stages when present
        for acc, stage, on in conn.execute(
            "SELECT account_id, stage, MAX(entered_on) FROM stage_history WHERE entered_on <= ? GROUP BY account_id",
            (as_of,),
        ):
            entered[acc] = (stage, on)
    day = dt.date.fromisoformat(as_of)
    per: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for acc, tier, stage, since in conn.execute(
        "SELECT id, tier, stage, stage_since FROM accounts WHERE COALESCE(status, 'active') = 'prospect'"
    ):
        stage, since = entered.get(acc, (stage, since))
        if stage not in PIPELINE or not since:
            continue
        try:
            days = (day - dt.date.fromisoformat(str(since)[:10])).days
        except ValueError:
            continue
        limit = limits.get((stage, tier), limits.get((stage, None), 0))
        per[stage].append((days, days > limit))
    out = []
    for stage in PIPELINE:
        xs = sorted(d for d, _ in per[stage])
        q = lambda p, xs=xs: xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))] if xs else None  # noqa: E731
        out.append(
            {
                "stage": stage,
                "prospects": len(xs),
                "over": sum(o for _, o in per[stage]),
                "median_days": q(0.5),
                "p90_days": q(0.9),
                "max_days": xs[-1] if xs else None,
                "limit": limits.get((stage, None)),
                "limit_key": limits.get((stage, "key")),
            }
        )
    return out


def _trend(conn, as_of: str) -> list[dict]:
    """One point per recorded as-of date up to ``as_of`` (its newest complete run): alerts by severity, average score."""
    if not _table(conn, "runs"):
        return []
    found = conn.execute(
        "SELECT r.id, r.as_of, r.info, r.warning, r.critical, (SELECT AVG(score) FROM health_scores h WHERE h.run_id = r.id) "
        "FROM runs r WHERE r.complete = 1 AND r.as_of <= ? AND r.id = (SELECT MAX(id) FROM runs x WHERE x.as_of = r.as_of "
        "AND x.complete = 1) ORDER BY r.as_of",
        (as_of,),
    ).fetchall()
    return [
        {
            "run": i,
            "as_of": d,
            "info": a,
            "warning": b,
            "critical": c,
            "average": round(avg, 1) if avg is not None else None,
        }
        for i, d, a, b, c, avg in found
    ]


def _pareto(revenue: dict[str, float], n_accounts: int) -> dict:
    """The share of revenue held by the top x% of accounts, sampled to at most PARETO_POINTS points."""
    values = sorted((v for v in revenue.values() if v > 0), reverse=True)
    total = sum(values)
    n = max(n_accounts, len(values))
    if not total or not n:
        return {"points": [], "top20_share": None, "total": 0.0, "accounts": n}
    cum, points, step = 0.0, [{"accounts_pct": 0.0, "revenue_pct": 0.0}], max(1, len(values) // PARETO_POINTS)
    for i, v in enumerate(values, 1):
        cum += v
        if i % step == 0 or i == len(values):
            points.append({"accounts_pct": round(100 * i / n, 2), "revenue_pct": round(100 * cum / total, 2)})
    if len(values) < n:
        points.append({"accounts_pct": 100.0, "revenue_pct": 100.0})  # accounts without revenue close the curve
    k = max(1, round(0.2 * n))
    return {
        "points": points,
        "top20_share": round(100 * sum(values[:k]) / total, 1),
        "top20_accounts": k,
        "total": round(total, 2),
        "accounts": n,
    }


def report_data(
    store, as_of: str, owners: Iterable[str] = (), top: int = 20, scorecard=None, rulesets_dirs: Iterable = (), pm=None
) -> dict:
    """Everything the report shows at ``as_of``: the book, health, alerts, concentration, pipeline, trend, owners.

    The alerts come from a check run now (recording nothing); the scores from the run recorded at
    ``as_of`` when there is one (as ``kamrules health``), else from that same check. Raises
    InputError for an empty store or an unknown owner (with a did-you-mean)."""
    from kamrules.check import run_check
    from kamrules.health import default_scorecard
    from kamrules.health_report import health_report
    from kamrules.runs import newest_dates

    if top < 1:
        raise InputError(f"--top {top}: expected a number of accounts of at least 1")
    sc = scorecard or default_scorecard()
    conn = store.conn
    if not store.table_exists("accounts") or not store.count("accounts"):
        raise InputError(f"{getattr(store, 'path', 'store')}: no accounts (run `kamrules import` first)")
    wanted = check_owners(conn, owners)
    pm = pm or store.pm
    result = run_check(store, as_of=as_of, rulesets_dirs=rulesets_dirs, pm=pm)
    health = health_report(store, as_of, sc, rulesets_dirs=rulesets_dirs, pm=pm, check_result=result)
    alerts = sorted(result.alerts, key=lambda a: (-SEVERITY_RANK[a.severity], a.sort_key()))
    by_account: dict[str, list] = defaultdict(list)
    for a in alerts:
        if a.account_id:
            by_account[a.account_id].append(
                {"severity": a.severity, "code": a.code, "rule": a.rule, "message": a.message_in()}
            )
    revenue = _revenue(conn, as_of)
    contacts = _last_contacts(conn, as_of)
    accounts = health.accounts  # worst score first, then the largest revenue
    for acc in accounts:
        acc["last_contact"] = contacts.get(acc["account_id"])
        acc["alerts"] = by_account.get(acc["account_id"], [])
        acc["worst"] = max((SEVERITY_RANK[x["severity"]] for x in acc["alerts"]), default=-1)
    counts = Counter(a.severity for a in alerts)
    by_owner_sev: dict[str, Counter] = defaultdict(Counter)
    by_ruleset_sev: dict[str, Counter] = defaultdict(Counter)
    for a in alerts:
        by_owner_sev[a.owner or ""][a.severity] += 1
        by_ruleset_sev[a.ruleset][a.severity] += 1
    all_owners = sorted({a["owner"] or "" for a in accounts} | set(by_owner_sev), key=lambda o: (o == "", o))
    anchors = {o: f"owner-{i}" for i, o in enumerate(all_owners)}
    shown = wanted or all_owners
    sections = []
    by_owner: dict[str, list] = defaultdict(list)  # one pass: a 100k book has thousands of owners
    for a in accounts:
        by_owner[a["owner"] or ""].append(a)
    portfolio_of: dict[str, list] = defaultdict(list)
    for a in alerts:
        if not a.account_id:
            portfolio_of[a.owner or ""].append(
                {"severity": a.severity, "code": a.code, "rule": a.rule, "message": a.message_in()}
            )
    for o in shown:
        mine = by_owner.get(o, [])
        mine.sort(key=lambda a: (-a["worst"], a["score"], -a["revenue_12m"], a["account_id"]))  # most urgent first
        summary = health.owners.get(o or "(no owner)", {})
        portfolio = portfolio_of.get(o, [])
        sections.append(
            {
                "owner": o,
                "anchor": anchors[o],
                "accounts": mine[:top],
                "total": len(mine),
                "with_alerts": sum(1 for a in mine if a["alerts"]),
                "average": summary.get("average"),
                "counts": {s: by_owner_sev[o][s] for s in SEVERITIES},
                "portfolio": portfolio,
            }
        )
    owner_rows = sorted(
        (
            {
                "owner": o,
                "anchor": anchors[o] if o in shown else None,
                **{s: by_owner_sev[o][s] for s in SEVERITIES},
                "total": sum(by_owner_sev[o].values()),
            }
            for o in all_owners
        ),
        key=lambda r: (-r["critical"], -r["total"], r["owner"]),
    )
    freshness = newest_dates(conn, as_of)
    stale = {t: (dt.date.fromisoformat(as_of) - dt.date.fromisoformat(d[:10])).days for t, d in freshness.items() if d}
    return {
        "as_of": as_of,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "top": top,
        "scorecard": health.scorecard,
        "scores_from_run": health.run["id"] if health.run else None,
        "book": {
            "accounts": len(accounts),
            "revenue_12m": round(sum(revenue.values()), 2),
            "alerts": {s: counts.get(s, 0) for s in SEVERITIES},
            "total_alerts": len(alerts),
            "average": health.book["average"],
            "revenue_at_risk": health.book["revenue_at_risk"],
            "freshness": freshness,
            "age_days": stale,
            "oldest_age": max(stale.values(), default=None),
            "skipped": [list(x) for x in result.summary.skipped],
            "failures": [list(x) for x in result.summary.failures],
        },
        "grades": [
            {"grade": g, "en": v["en"], "zh": v["zh"], "accounts": v["accounts"], "revenue_12m": v["revenue_12m"]}
            for g, v in health.book["by_grade"].items()
        ],
        "owner_rows": owner_rows,
        "owners_total": len(all_owners),
        "rulesets": [{"ruleset": r, **{s: c[s] for s in SEVERITIES}} for r, c in sorted(by_ruleset_sev.items())],
        "pareto": _pareto(revenue, len(accounts)),
        "pipeline": _pipeline(conn, as_of, _stage_limits(pm, rulesets_dirs)),
        "trend": _trend(conn, as_of),
        "at_risk": [a for a in accounts if a["score"] < 100 or a["alerts"]][:top],
        "sections": sections,
        "owners_selected": bool(wanted),
        "complete": result.summary.complete,
    }
