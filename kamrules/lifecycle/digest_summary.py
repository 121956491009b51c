"""The opening of a digest: new, resolved, still firing, the recipient's book health, and its chart (PNG)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from kamrules.i18n import get_lang


def book_health(conn, run_id: int, owners: Sequence[str]) -> dict | None:
    """Average score and accounts per grade of these owners' accounts at the run (None: nothing scored)."""
    from kamrules.health import default_scorecard

    if not owners:
        return None
    marks = ",".join("?" * len(owners))
    found = conn.execute(
        f"SELECT h.score FROM health_scores h JOIN accounts a ON a.id = h.account_id "
        f"WHERE h.run_id = ? AND a.owner IN ({marks})",
        [run_id, *owners],
    ).fetchall()
    if not found:
        return None
    sc = default_scorecard()
    per = Counter(sc.grade_of(s).grade for (s,) in found)
    grades = [{"grade": g.grade, "en": g.en, "zh": g.zh, "accounts": per.get(g.grade, 0)} for g in sc.grades]
    return {
        "accounts": len(found),
        "average": round(sum(s for (s,) in found) / len(found), 1),
        "grades": grades,
        "grades_text": _grades_text(grades),
    }


def still_firing(conn, owners: Sequence[str]) -> int:
    """Alerts of these owners firing now (not silenced), told in this digest or before."""
    if not owners:
        return 0
    marks = ",".join("?" * len(owners))
    return conn.execute(
        f"SELECT COUNT(*) FROM alert_history WHERE status = 'firing' AND silenced = 0 "
        f"AND json_extract(alert_json, '$.owner') IN ({marks})",
        list(owners),
    ).fetchone()[0]


def summary(items, owners: Sequence[str], resolved_notices: bool) -> dict:
    """What the digest opens with. Book health only while a recorded run's digests are rendered."""
    from kamrules.runs import digest_run

    at = digest_run()
    out = {
        "new": sum(1 for i in items if i.reason == "new"),
        "changed": sum(1 for i in items if i.reason == "changed"),
        "resolved": sum(1 for i in items if i.status == "resolved") if resolved_notices else None,
        "still_firing": None,
        "health": None,
    }
    if at is not None:
        conn, run_id = at
        out["still_firing"] = still_firing(conn, owners)
        out["health"] = book_health(conn, run_id, owners)
    return out


def chart_png(health: dict) -> bytes:
    """Accounts per grade as a small PNG (vl-convert): mail clients run no scripts, so a picture."""
    from kamrules.report import labels
    from kamrules.report_charts import grade_bars_small, to_png

    return to_png(grade_bars_small(health["grades"], labels(get_lang())))


def _grades_text(grades: list) -> str:
    """Accounts per grade for people: en ``3 good, 1 poor``; zh ``良好3个, 差1个`` (the grade's own zh name)."""
    lang = get_lang()
    if lang == "zh":
        return "，".join(f"{g['zh']}{g['accounts']}个" for g in grades if g["accounts"])
    return ", ".join(f"{g['accounts']} {g['en']}" for g in grades if g["accounts"])
