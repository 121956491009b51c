"""Hand-written SQL for the four core rule sets: the speed limit `kamrules check` is measured against.

What a skilled analyst would write against the store, with the defaults of
/work/shared/domain.md (thresholds inline, no rule engine, no plugins):
first one pass over each event table into per-account aggregates (TEMP tables),
then one short SELECT per rule returning ``account_id, severity`` plus the
numbers that made it fire.  Portfolio rules return ``account_id = NULL``.

Run:  python benchmarks/reference_sql.py --db STORE.db --as-of 2026-10-31 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections import Counter

# Window bounds, computed once by SQLite from :as_of (records after :as_of are ignored).
WINDOWS = """
SELECT :as_of AS as_of,
       date(:as_of, '-6 months')  AS m6,
       date(:as_of, '-12 months') AS m12,
       date(:as_of, '-24 months') AS m24,
       julianday(:as_of)          AS jd
"""

STAGE_RANK = "CASE {s} WHEN 'research' THEN 1 WHEN 'analysis' THEN 2 WHEN 'contact' THEN 3 WHEN 'visit' THEN 4 " \
             "WHEN 'presentation' THEN 5 WHEN 'proposal' THEN 6 WHEN 'negotiation' THEN 7 WHEN 'won' THEN 8 END"

# ---------------------------------------------------------------------------
# Shared per-account aggregates: one scan of each table.
# ---------------------------------------------------------------------------
AGGREGATES: dict[str, str] = {
    "w": WINDOWS,
    # revenue / margin: last 12 months and the 12 before; last order; order count
    "ord": """
        SELECT account_id,
               SUM(CASE WHEN date >  :m12 THEN amount END)                   AS rev_12m,
               SUM(CASE WHEN date <= :m12 AND date > :m24 THEN amount END)   AS rev_prev12m,
               SUM(CASE WHEN date >  :m12 THEN margin END)                   AS margin_12m,
               MAX(date)                                                     AS last_order,
               COUNT(*)                                                      AS n_orders
        FROM orders WHERE date <= :as_of
        GROUP BY account_id""",
    # concessions: last 12 months, the 12 before, and the part not backed by a signed commitment
    "con": """
        SELECT c.account_id,
               SUM(CASE WHEN c.date > :m12 THEN c.amount END)                      AS conc_12m,
               SUM(CASE WHEN c.date <= :m12 AND c.date > :m24 THEN c.amount END)   AS conc_prev12m,
               SUM(CASE WHEN c.date > :m12
                         AND (m.id IS NULL OR COALESCE(m.signed, 0) = 0 OR COALESCE(m.target_amount, 0) <= 0)
                        THEN c.amount ELSE 0 END)                                  AS uncommitted_12m
        FROM concessions c LEFT JOIN commitments m ON m.id = c.commitment_id
        WHERE c.date <= :as_of AND c.date > :m24
        GROUP BY c.account_id""",
    # activities: service cost, contact counts, last contact / visit / executive meeting
    "act": """
        SELECT account_id,
               SUM(CASE WHEN date > :m12 THEN cost END)                      AS cost_12m,
               SUM(date > :m6)                                               AS acts_6m,
               SUM(date <= :m6 AND date > :m12)                              AS acts_prev6m,
               MAX(date)                                                     AS last_activity,
               MAX(CASE WHEN kind = 'visit' THEN date END)                   AS last_visit,
               MAX(CASE WHEN kind = 'executive_meeting' OR level = 'executive' THEN date END) AS last_exec
        FROM activities WHERE date <= :as_of
        GROUP BY account_id""",
    # current pipeline stage: stage_history is the authority when it has rows for the account
    "cur": f"""
        WITH h AS (
            SELECT account_id, stage, entered_on,
                   ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY entered_on DESC, {STAGE_RANK.format(s='stage')} DESC) AS rn
            FROM stage_history WHERE entered_on <= :as_of)
        SELECT a.id AS account_id,
               COALESCE(h.stage, a.stage)            AS stage,
               COALESCE(h.entered_on, a.stage_since) AS stage_since
        FROM accounts a LEFT JOIN h ON h.account_id = a.id AND h.rn = 1""",
}

# ---------------------------------------------------------------------------
# The rules: (ruleset, rule, scope, sql).  Each SELECT reads the aggregates above.
# ---------------------------------------------------------------------------
RULES: list[tuple[str, str, str, str]] = [
    # ---- over_subsidising -------------------------------------------------
    ("over_subsidising", "concession_ratio", "account", """
        SELECT a.id AS account_id,
               CASE WHEN c.conc_12m > 0.20 * o.rev_12m THEN 'critical' ELSE 'warning' END AS severity,
               c.conc_12m, o.rev_12m
        FROM accounts a JOIN ord o ON o.account_id = a.id JOIN con c ON c.account_id = a.id
        WHERE a.status = 'active' AND o.rev_12m > 0 AND c.conc_12m > 0.10 * o.rev_12m"""),
    ("over_subsidising", "uncommitted_concessions", "account", """
        SELECT a.id AS account_id,
               CASE WHEN c.uncommitted_12m > 0.05 * COALESCE(o.rev_12m, 0) THEN 'critical' ELSE 'warning' END AS severity,
               c.uncommitted_12m, o.rev_12m
        FROM accounts a JOIN con c ON c.account_id = a.id LEFT JOIN ord o ON o.account_id = a.id
        WHERE c.uncommitted_12m > 0"""),
    ("over_subsidising", "commitment_shortfall", "account", """
        WITH live AS (   -- active signed commitments, pro-rated target to date
            SELECT m.id, m.account_id, m.start, m.target_amount * (w.jd - julianday(m.start))
                                                   / MAX(julianday(m."end") - julianday(m.start), 1) AS target_to_date
            FROM commitments m, w
            WHERE m.signed = 1 AND m.start <= :as_of AND m."end" >= :as_of AND m.target_amount > 0),
        done AS (
            SELECT l.id, l.account_id, l.target_to_date,
                   (SELECT COALESCE(SUM(amount), 0) FROM orders x
                     WHERE x.account_id = l.account_id AND x.date >= l.start AND x.date <= :as_of) AS actual,
                   (SELECT COALESCE(SUM(amount), 0) FROM concessions x
                     WHERE x.account_id = l.account_id AND x.date >= l.start AND x.date <= :as_of) AS conc_since
            FROM live l)
        SELECT account_id, 'warning' AS severity, MIN(actual / target_to_date) AS achieved
        FROM done
        WHERE target_to_date > 0 AND actual < 0.80 * target_to_date AND conc_since > 0
        GROUP BY account_id"""),
    ("over_subsidising", "concessions_outpacing_revenue", "account", """
        SELECT a.id AS account_id, 'warning' AS severity,
               c.conc_12m, c.conc_prev12m, o.rev_12m, o.rev_prev12m
        FROM accounts a JOIN con c ON c.account_id = a.id JOIN ord o ON o.account_id = a.id
        WHERE c.conc_prev12m > 0 AND c.conc_12m >= 1.25 * c.conc_prev12m
          AND o.rev_prev12m > 0 AND COALESCE(o.rev_12m, 0) <= o.rev_prev12m"""),
    ("over_subsidising", "cost_to_serve", "account", """
        SELECT a.id AS account_id, 'warning' AS severity, act.cost_12m, o.margin_12m
        FROM accounts a JOIN act ON act.account_id = a.id JOIN ord o ON o.account_id = a.id
        WHERE a.buyer_type = 'transactional' AND o.margin_12m > 0 AND act.cost_12m > 0.50 * o.margin_12m"""),
    ("over_subsidising", "negative_net_margin", "account", """
        SELECT a.id AS account_id, 'warning' AS severity,
               o.margin_12m - COALESCE(c.conc_12m, 0) - COALESCE(act.cost_12m, 0) AS net_margin_12m
        FROM accounts a JOIN ord o ON o.account_id = a.id
             LEFT JOIN con c ON c.account_id = a.id LEFT JOIN act ON act.account_id = a.id
        WHERE a.status = 'active' AND o.margin_12m IS NOT NULL
          AND o.margin_12m - COALESCE(c.conc_12m, 0) - COALESCE(act.cost_12m, 0) < 0"""),
    # ---- neglected_small_clients -------------------------------------------
    ("neglected_small_clients", "no_recent_contact", "account", """
        SELECT a.id AS account_id, 'warning' AS severity, act.last_activity
        FROM accounts a JOIN act ON act.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier IN ('mid', 'small')
          AND w.jd - julianday(act.last_activity) > CASE a.tier WHEN 'mid' THEN 60 ELSE 120 END"""),
    ("neglected_small_clients", "contact_decay", "account", """
        SELECT a.id AS account_id, 'warning' AS severity, act.acts_6m, act.acts_prev6m
        FROM accounts a JOIN act ON act.account_id = a.id
        WHERE a.status = 'active' AND a.tier IN ('mid', 'small')
          AND act.acts_prev6m > 0 AND act.acts_6m < 0.50 * act.acts_prev6m"""),
    ("neglected_small_clients", "silent_churn", "account", """
        WITH g AS (      -- gaps between consecutive orders of small/mid accounts
            SELECT x.account_id,
                   julianday(x.date) - julianday(LAG(x.date) OVER (PARTITION BY x.account_id ORDER BY x.date)) AS gap
            FROM orders x JOIN accounts a ON a.id = x.account_id
            WHERE a.status = 'active' AND a.tier IN ('mid', 'small') AND x.date <= :as_of),
        r AS (
            SELECT account_id, gap,
                   ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY gap) AS rn,
                   COUNT(*)     OVER (PARTITION BY account_id)              AS n
            FROM g WHERE gap IS NOT NULL),
        med AS (SELECT account_id, AVG(gap) AS median_gap FROM r
                WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY account_id)
        SELECT o.account_id, 'warning' AS severity, med.median_gap, w.jd - julianday(o.last_order) AS days_since_order
        FROM ord o JOIN med ON med.account_id = o.account_id, w
        WHERE o.n_orders >= 3 AND w.jd - julianday(o.last_order) > 2 * med.median_gap"""),
    ("neglected_small_clients", "rising_star_unattended", "account", """
        SELECT a.id AS account_id, 'warning' AS severity, o.rev_12m, o.rev_prev12m, act.last_visit
        FROM accounts a JOIN ord o ON o.account_id = a.id LEFT JOIN act ON act.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier IN ('mid', 'small')
          AND o.rev_prev12m > 0 AND o.rev_12m >= 1.50 * o.rev_prev12m
          AND (NULLIF(TRIM(a.owner), '') IS NULL OR act.last_visit IS NULL OR w.jd - julianday(act.last_visit) > 90)"""),
    ("neglected_small_clients", "support_share", "portfolio", """
        WITH per AS (
            SELECT a.tier IN ('mid', 'small')                              AS small,
                   COALESCE(o.margin_12m, 0)                               AS margin,
                   COALESCE(c.conc_12m, 0) + COALESCE(act.cost_12m, 0)     AS support
            FROM accounts a LEFT JOIN ord o ON o.account_id = a.id
                 LEFT JOIN con c ON c.account_id = a.id LEFT JOIN act ON act.account_id = a.id
            WHERE a.status = 'active'),
        tot AS (SELECT SUM(CASE WHEN small THEN margin END) / SUM(margin)   AS margin_share,
                       SUM(CASE WHEN small THEN support END) / SUM(support) AS support_share
                FROM per)
        SELECT NULL AS account_id, 'warning' AS severity, margin_share, support_share FROM tot
        WHERE margin_share > 0.30 AND support_share < 0.10"""),
    # ---- missing_escalation_channels (key accounts) -------------------------
    ("missing_escalation_channels", "no_ka_manager", "account", """
        SELECT id AS account_id, 'warning' AS severity FROM accounts
        WHERE tier = 'key' AND status = 'active' AND NULLIF(TRIM(owner), '') IS NULL"""),
    ("missing_escalation_channels", "single_threaded", "account", """
        SELECT a.id AS account_id, 'warning' AS severity FROM accounts a
        WHERE a.tier = 'key' AND a.status = 'active'
          AND (NOT EXISTS (SELECT 1 FROM channels ch WHERE ch.account_id = a.id AND ch.kind = 'technical')
               OR NOT EXISTS (SELECT 1 FROM channels ch WHERE ch.account_id = a.id AND ch.kind = 'management'))"""),
    ("missing_escalation_channels", "no_complaint_channel", "account", """
        SELECT a.id AS account_id, 'warning' AS severity FROM accounts a
        WHERE a.tier = 'key' AND a.status = 'active'
          AND NOT EXISTS (SELECT 1 FROM channels ch
                          WHERE ch.account_id = a.id AND ch.kind = 'complaint' AND ch.client_informed = 1)"""),
    ("missing_escalation_channels", "no_executive_meeting", "account", """
        SELECT a.id AS account_id, 'warning' AS severity, act.last_exec
        FROM accounts a LEFT JOIN act ON act.account_id = a.id, w
        WHERE a.tier = 'key' AND a.status = 'active'
          AND (act.last_exec IS NULL OR w.jd - julianday(act.last_exec) > 180)"""),
    ("missing_escalation_channels", "no_decision_maker", "account", """
        WITH dm AS (     -- active decision makers and when each was last met
            SELECT p.account_id, MAX(x.date) AS last_met
            FROM contacts p LEFT JOIN activities x ON x.contact_id = p.id AND x.date <= :as_of
            WHERE p.role = 'decision_maker' AND COALESCE(p.active, 1) = 1
            GROUP BY p.account_id)
        SELECT a.id AS account_id, 'warning' AS severity, dm.last_met
        FROM accounts a LEFT JOIN dm ON dm.account_id = a.id, w
        WHERE a.tier = 'key' AND a.status = 'active'
          AND (dm.account_id IS NULL OR dm.last_met IS NULL OR w.jd - julianday(dm.last_met) > 180)"""),
    ("missing_escalation_channels", "complaint_unresolved", "account", """
        SELECT k.account_id, 'warning' AS severity, MAX(w.jd - julianday(k.opened_on)) AS days_open
        FROM complaints k JOIN accounts a ON a.id = k.account_id, w
        WHERE k.opened_on <= :as_of AND (k.closed_on IS NULL OR k.closed_on > :as_of)
          AND COALESCE(k.escalated, 0) = 0
          AND w.jd - julianday(k.opened_on) > CASE a.tier WHEN 'key' THEN 14 ELSE 30 END
        GROUP BY k.account_id"""),
    # ---- stalled_stages ----------------------------------------------------
    ("stalled_stages", "stage_dwell", "account", """
        SELECT a.id AS account_id, 'warning' AS severity, st.stage, w.jd - julianday(st.stage_since) AS days_in_stage
        FROM accounts a JOIN cur st ON st.account_id = a.id, w
        WHERE a.status <> 'lost' AND st.stage <> 'won'
          AND w.jd - julianday(st.stage_since) > CASE st.stage
                WHEN 'research' THEN 30 WHEN 'analysis' THEN 30 WHEN 'contact' THEN 30 WHEN 'visit' THEN 45
                WHEN 'presentation' THEN 45 WHEN 'proposal' THEN 30 WHEN 'negotiation' THEN 60 END"""),
    ("stalled_stages", "no_follow_up", "account", """
        SELECT v.account_id, 'warning' AS severity, MAX(v.date) AS visit_without_follow_up
        FROM activities v, w
        WHERE v.kind = 'visit' AND v.date > :m6 AND v.date <= date(:as_of, '-7 days')
          AND NOT EXISTS (SELECT 1 FROM activities f
                          WHERE f.account_id = v.account_id AND f.date > v.date AND f.date <= date(v.date, '+7 days')
                            AND f.kind IN ('call', 'visit', 'meeting'))
        GROUP BY v.account_id"""),
    ("stalled_stages", "incomplete_visit_record", "account", """
        SELECT account_id, 'warning' AS severity, COUNT(*) AS incomplete_visits
        FROM activities
        WHERE kind = 'visit' AND date > :m6 AND date <= :as_of
          AND (contact_id IS NULL OR duration_minutes IS NULL OR attitude IS NULL)
        GROUP BY account_id"""),
    ("stalled_stages", "stage_regression", "account", f"""
        WITH h AS (
            SELECT account_id, entered_on, {STAGE_RANK.format(s='stage')} AS r,
                   LAG({STAGE_RANK.format(s='stage')}) OVER (PARTITION BY account_id ORDER BY entered_on) AS prev_r
            FROM stage_history WHERE entered_on <= :as_of)
        SELECT account_id, 'warning' AS severity, MAX(entered_on) AS regressed_on
        FROM h WHERE r < prev_r AND entered_on > date(:as_of, '-90 days')
        GROUP BY account_id"""),
    ("stalled_stages", "stage_skipped", "account", """
        SELECT account_id, 'warning' AS severity
        FROM stage_history WHERE entered_on <= :as_of
        GROUP BY account_id
        HAVING SUM(stage IN ('proposal', 'negotiation', 'won')) > 0
           AND (SUM(stage = 'analysis') = 0 OR SUM(stage = 'visit') = 0)"""),
    ("stalled_stages", "cold_streak", "account", """
        WITH last3 AS (
            SELECT account_id, attitude, date,
                   ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY date DESC, id DESC) AS rn
            FROM activities WHERE attitude IS NOT NULL AND date <= :as_of),
        streak AS (
            SELECT account_id, MIN(date) AS since FROM last3 WHERE rn <= 3
            GROUP BY account_id HAVING COUNT(*) = 3 AND SUM(attitude = 'cold') = 3)
        SELECT s.account_id, 'warning' AS severity, s.since, st.stage
        FROM streak s JOIN cur st ON st.account_id = s.account_id JOIN accounts a ON a.id = s.account_id
        WHERE a.status <> 'lost' AND st.stage <> 'won' AND st.stage_since <= s.since"""),
    ("stalled_stages", "lost_without_reason", "account", """
        SELECT id AS account_id, 'warning' AS severity FROM accounts
        WHERE status = 'lost' AND NULLIF(TRIM(lost_reason), '') IS NULL"""),
    ("stalled_stages", "relationship_stuck", "account", """
        SELECT a.id AS account_id, 'warning' AS severity, st.stage_since AS won_on
        FROM accounts a JOIN cur st ON st.account_id = a.id, w
        WHERE a.tier = 'key' AND a.status = 'active' AND st.stage = 'won'
          AND a.relationship_stage = 'establish' AND w.jd - julianday(st.stage_since) > 365"""),
]


def _params(conn: sqlite3.Connection, as_of: str) -> dict:
    row = conn.execute(WINDOWS, {"as_of": as_of}).fetchone()
    return dict(zip(("as_of", "m6", "m12", "m24", "jd"), row))


def run(db: str, as_of: str) -> dict:
    """Run every rule; return {'seconds': ..., 'rules': {rule: {ruleset, scope, rows, severity, accounts}}}."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA temp_store = MEMORY")
    p = _params(conn, as_of)
    timings: dict[str, float] = {}
    for name, sql in AGGREGATES.items():
        t = time.perf_counter()
        conn.execute(f"CREATE TEMP TABLE {name} AS {sql}", p)
        if name not in ("w",):
            conn.execute(f"CREATE INDEX temp.{name}_account ON {name}(account_id)")
        timings[f"aggregate:{name}"] = time.perf_counter() - t
    out: dict[str, dict] = {}
    for ruleset, rule, scope, sql in RULES:
        t = time.perf_counter()
        rows = conn.execute(sql, p).fetchall()
        timings[rule] = time.perf_counter() - t
        out[rule] = {
            "ruleset": ruleset,
            "scope": scope,
            "rows": len(rows),
            "severity": dict(Counter(r[1] for r in rows)),
            "accounts": sorted({r[0] for r in rows if r[0] is not None}),
        }
    conn.close()
    return {"seconds": time.perf_counter() - t0, "timings": timings, "rules": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--json", help="write the result (with account lists) here")
    args = ap.parse_args(argv)
    res = run(args.db, args.as_of)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, ensure_ascii=False)
    print(f"{res['seconds']:.3f}s", file=sys.stderr)
    for rule, r in res["rules"].items():
        print(f"{r['ruleset']:<28} {rule:<30} {r['rows']:>8}  {r['severity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
