"""Hand-written SQL for the built-in rule sets: the speed limit `kamrules check` is measured against.

What a skilled analyst would write against the store, with the defaults of
/work/shared/domain.md (thresholds inline, no rule engine, no plugins):
first one pass over each event table into per-account aggregates (TEMP tables),
then one short SELECT per rule returning ``account_id, severity`` plus the
numbers that made it fire.  Portfolio rules return ``account_id = NULL``.

Run:  python benchmarks/reference_sql.py --db STORE.db --as-of 2026-10-31 [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import time
from bisect import bisect_right
from collections import Counter
from itertools import pairwise

# Window bounds, computed once by SQLite from :as_of (records after :as_of are ignored).
WINDOWS = """
SELECT :as_of AS as_of,
       date(:as_of, '-6 months')  AS m6,
       date(:as_of, '-12 months') AS m12,
       date(:as_of, '-18 months') AS m18,
       date(:as_of, '-24 months') AS m24,
       date(:as_of, '-90 days')   AS d90,
       julianday(:as_of)          AS jd
"""

# Position (1..8) of a pipeline stage.
RANK = (
    "(CASE stage WHEN 'research' THEN 1 WHEN 'analysis' THEN 2 WHEN 'contact' THEN 3 WHEN 'visit' THEN 4 "
    "WHEN 'presentation' THEN 5 WHEN 'proposal' THEN 6 WHEN 'negotiation' THEN 7 WHEN 'won' THEN 8 END)"
)

# ---------------------------------------------------------------------------
# Shared per-account aggregates: one pass over each table (TEMP tables).
# Windows are half-open: "the 12 months to D" is m12 < date <= D.
# ---------------------------------------------------------------------------
AGGREGATES: dict[str, str] = {
    "w": WINDOWS,
    # revenue and margin, last 12 months and the 12 before
    "ord": """
        SELECT account_id,
               TOTAL(CASE WHEN date > :m12 THEN amount END)  AS rev_12m,
               TOTAL(CASE WHEN date <= :m12 THEN amount END) AS rev_prev12m,
               SUM(CASE WHEN date > :m12 THEN margin END)    AS margin_12m,   -- NULL: orders without margins
               TOTAL(CASE WHEN date > :m12 THEN margin END)  AS margin_total_12m,
               SUM(date > :m12)                              AS n_12m,
               TOTAL(CASE WHEN date > :m6 THEN amount END)   AS rev_6m,
               TOTAL(CASE WHEN date > :m18 AND date <= :m12 THEN amount END) AS rev_6m_ya  -- the same 6 months a year earlier
        FROM orders WHERE date <= :as_of AND date > :m24
        GROUP BY account_id""",
    # concessions; "committed" = tied to a signed commitment of the same account with a target > 0
    "con": """
        SELECT c.account_id,
               TOTAL(CASE WHEN c.date > :m12 THEN c.amount END)  AS conc_12m,
               TOTAL(CASE WHEN c.date <= :m12 THEN c.amount END) AS conc_prev12m,
               TOTAL(CASE WHEN c.date > :d90 THEN c.amount END)  AS conc_90d,
               TOTAL(CASE WHEN c.date > :m12 AND NOT (m.id IS NOT NULL AND m.signed = 1 AND m.target_amount > 0)
                          THEN c.amount END)                     AS uncommitted_12m,
               TOTAL(CASE WHEN c.date > :m12 AND NOT (m.id IS NOT NULL AND m.signed = 1 AND m.target_amount > 0)
                           AND c.kind <> 'free_service' THEN c.amount END) AS uncommitted_deal_12m  -- needs a volume deal
        FROM concessions c
             LEFT JOIN commitments m ON m.id = c.commitment_id AND m.account_id = c.account_id AND m.start <= :as_of
        WHERE c.date <= :as_of AND c.date > :m24
        GROUP BY c.account_id""",
    # activities: recency, volume, visits, executive meetings, service cost, attitudes
    "act": """
        SELECT account_id,
               MIN(date)                                           AS first_on,
               MAX(date)                                           AS last_on,
               SUM(date > :m6)                                     AS n_6m,
               SUM(date <= :m6 AND date > :m12)                    AS n_prev6m,
               SUM(date <= :m12 AND date > :m18)                   AS n_ago6m,   -- the same 6 months a year earlier
               MAX(CASE WHEN kind = 'visit' THEN date END)         AS visit_on,
               MAX(CASE WHEN kind = 'executive_meeting' OR level = 'executive' THEN date END) AS exec_on,
               TOTAL(CASE WHEN date > :m12 THEN cost END)          AS cost_12m,
               MAX(CASE WHEN attitude <> 'cold' THEN date END)     AS warm_on,  -- last attitude that was not cold
               MAX(CASE WHEN kind = 'survey' THEN date END)        AS survey_on
        FROM activities WHERE date <= :as_of
        GROUP BY account_id""",
    # the pipeline stage on the as-of date: stage_history is the authority for accounts it has rows for
    # (its latest entry on or before the as-of date: one index seek per account)
    "cur": f"""
        WITH x AS (
            SELECT a.id, a.stage, a.stage_since,
                   EXISTS (SELECT 1 FROM stage_history h WHERE h.account_id = a.id) AS has_history,
                   (SELECT h.rowid FROM stage_history h WHERE h.account_id = a.id AND h.entered_on <= :as_of
                     ORDER BY h.entered_on DESC, {RANK.replace("stage", "h.stage")} DESC LIMIT 1) AS latest
            FROM accounts a)
        SELECT x.id AS account_id,
               CASE WHEN x.has_history THEN h.stage WHEN x.stage_since > :as_of THEN NULL ELSE x.stage END            AS stage,
               CASE WHEN x.has_history THEN h.entered_on WHEN x.stage_since > :as_of THEN NULL ELSE x.stage_since END AS since
        FROM x LEFT JOIN stage_history h ON h.rowid = x.latest""",
    # signed commitments in force: orders since the start against the target pro-rated to the as-of date,
    # seasonally (by the 12 months before the start) when the account ordered a year before the start, else
    # linearly; dev = concessions of the 12 months tied to one on track at an account won within 12 months
    "prog": """
        WITH live AS (
            SELECT m.id, m.account_id, m.start, m.target_amount,
                   w.jd - julianday(m.start) + 1 AS elapsed, julianday(m."end") - julianday(m.start) + 1 AS span,
                   date(m.start, '-12 months') AS y0,
                   (SELECT MIN(f.date) FROM orders f WHERE f.account_id = m.account_id) AS first_on,
                   COALESCE((SELECT MAX(h.entered_on) FROM stage_history h WHERE h.account_id = a.id AND h.stage = 'won'
                              AND h.entered_on <= :as_of), a.created_on) > :m12 AS newly_won,
                   date(:as_of, '+1 day') AS zx, date(m."end", '+1 day') AS ze
            FROM commitments m JOIN accounts a ON a.id = m.account_id, w
            WHERE m.signed = 1 AND m.target_amount > 0 AND m.start <= :as_of AND m."end" >= :as_of),
        k AS (
            SELECT *, yx - (date(start, '+' || yx || ' years') > zx) AS kx, ye - (date(start, '+' || ye || ' years') > ze) AS ke
            FROM (SELECT *, strftime('%Y', zx) - strftime('%Y', start) AS yx, strftime('%Y', ze) - strftime('%Y', start) AS ye
                  FROM live)),
        s AS (
            SELECT k.id, k.account_id, k.target_amount, k.elapsed, k.span, k.kx, k.ke, k.newly_won, k.first_on <= k.y0 AS has_year,
                   TOTAL(CASE WHEN o.date >= k.start THEN o.amount END) AS actual,
                   TOTAL(CASE WHEN o.date < k.start THEN o.amount END) AS p,
                   TOTAL(CASE WHEN o.date < k.start AND o.date < date(k.zx, '-' || (k.kx + 1) || ' years') THEN o.amount END) AS px,
                   TOTAL(CASE WHEN o.date < k.start AND o.date < date(k.ze, '-' || (k.ke + 1) || ' years') THEN o.amount END) AS pe
            FROM k LEFT JOIN orders o ON o.account_id = k.account_id AND o.date >= k.y0 AND o.date <= :as_of
            GROUP BY k.id, k.account_id),
        e AS (
            SELECT *, target_amount * IIF(has_year AND p > 0 AND ke * p + pe > 0, (kx * p + px) / (ke * p + pe),
                                          elapsed / span) AS expected
            FROM s)
        SELECT e.account_id,
               MAX(IIF(e.elapsed >= 30 AND e.expected > 0, 1.0 - e.actual / e.expected, NULL)) AS behind,
               TOTAL(IIF(e.newly_won AND e.actual >= e.expected,
                         (SELECT TOTAL(c.amount) FROM concessions c WHERE c.account_id = e.account_id
                           AND c.date > :m12 AND c.date <= :as_of AND c.commitment_id = e.id), 0)) AS dev
        FROM e GROUP BY e.account_id""",
    # when an active account was won: its latest `won` entry on or before the as-of date, else created_on
    "won": """
        SELECT a.id AS account_id,
               COALESCE((SELECT MAX(h.entered_on) FROM stage_history h
                          WHERE h.account_id = a.id AND h.stage = 'won' AND h.entered_on <= :as_of), a.created_on) AS won_on
        FROM accounts a WHERE a.status = 'active'""",
}


def days(expr: str) -> str:
    """Whole days from the date ``expr`` to the as-of date."""
    return f"CAST(w.jd - julianday({expr}) AS INTEGER)"


NO_OWNER = "NULLIF(TRIM(a.owner), '') IS NULL"
# A count of days without some activity starts at the last one, else at created_on (or the date won), but never
# before the store's first activity record (the earliest first_on of any account).
START = "(SELECT MIN(first_on) FROM act)"


def _from(day: str) -> str:
    """``day`` (created_on, won_on), but not before the first activity record (NULL stays NULL)."""
    return f"MAX({day}, {START})"


# ---------------------------------------------------------------------------
# The rules: (ruleset, rule, scope, sql).  Each returns account_id, severity, evidence...
# A query may return a `rule` column to report several rules at once.
# ---------------------------------------------------------------------------
RULES: list[tuple[str, str, str, str]] = [
    # ---- over_subsidising (KAM1xx) ------------------------------------------
    (
        "over_subsidising",
        "concession_ratio",
        "account",
        """
        WITH n AS (      -- development investment of a newly won account (prog.dev) is not counted
            SELECT a.id, c.conc_12m - MIN(COALESCE(p.dev, 0), c.conc_12m) AS counted, o.rev_12m
            FROM accounts a JOIN ord o ON o.account_id = a.id JOIN con c ON c.account_id = a.id
                 LEFT JOIN prog p ON p.account_id = a.id
            WHERE a.status = 'active' AND o.rev_12m > 0)
        SELECT id AS account_id, IIF(counted / rev_12m > 0.20, 'critical', 'warning') AS severity, counted, rev_12m
        FROM n WHERE counted > 0 AND counted / rev_12m > 0.10""",
    ),
    (
        "over_subsidising",
        "uncommitted_concessions",
        "account",
        """
        SELECT a.id AS account_id,
               IIF(c.uncommitted_deal_12m / o.rev_12m > 0.05, 'critical', 'warning') AS severity,
               c.uncommitted_deal_12m, o.rev_12m
        FROM accounts a JOIN ord o ON o.account_id = a.id JOIN con c ON c.account_id = a.id
        WHERE a.status = 'active' AND o.rev_12m > 0 AND c.uncommitted_deal_12m / o.rev_12m > 0.01""",
    ),
    (
        "over_subsidising",
        "commitment_shortfall",
        "account",
        """
        SELECT p.account_id, 'warning' AS severity, p.behind, c.conc_90d
        FROM prog p JOIN accounts a ON a.id = p.account_id JOIN con c ON c.account_id = p.account_id
        WHERE a.status = 'active' AND p.behind > 0.20 AND c.conc_90d > 0""",
    ),
    (
        "over_subsidising",
        "concessions_outpacing_revenue",
        "account",
        """
        SELECT a.id AS account_id, 'warning' AS severity, c.conc_prev12m, c.conc_12m, o.rev_prev12m, o.rev_12m
        FROM accounts a JOIN con c ON c.account_id = a.id JOIN ord o ON o.account_id = a.id
        WHERE a.status = 'active'
          AND c.conc_prev12m > 0 AND (c.conc_12m - c.conc_prev12m) / c.conc_prev12m > 0.25
          AND o.rev_prev12m > 0 AND (o.rev_12m - o.rev_prev12m) / o.rev_prev12m <= 0""",
    ),
    (
        "over_subsidising",
        "cost_to_serve",
        "account",
        """
        SELECT a.id AS account_id, 'warning' AS severity, x.cost_12m, o.margin_12m
        FROM accounts a JOIN ord o ON o.account_id = a.id JOIN act x ON x.account_id = a.id
        WHERE a.status = 'active' AND a.buyer_type = 'transactional'
          AND o.n_12m > 0 AND o.margin_12m > 0 AND x.cost_12m / o.margin_12m > 0.50""",
    ),
    (
        "over_subsidising",
        "negative_net_margin",
        "account",
        """
        WITH n AS (      -- margin is 0 without orders in the window, unknown (NULL) when no order has one
            SELECT a.id AS account_id, IIF(COALESCE(o.n_12m, 0) = 0, 0.0, o.margin_12m)
                       - (COALESCE(c.conc_12m, 0) - MIN(COALESCE(p.dev, 0), COALESCE(c.conc_12m, 0)))
                       - COALESCE(x.cost_12m, 0) AS net_margin_12m
            FROM accounts a LEFT JOIN ord o ON o.account_id = a.id
                 LEFT JOIN con c ON c.account_id = a.id LEFT JOIN act x ON x.account_id = a.id
                 LEFT JOIN prog p ON p.account_id = a.id
            WHERE a.status = 'active')
        SELECT account_id, 'warning' AS severity, net_margin_12m FROM n WHERE net_margin_12m < 0""",
    ),
    # ---- neglected_small_clients (KAM2xx) -------------------------------------
    (
        "neglected_small_clients",
        "no_recent_contact",
        "account",
        f"""
        SELECT a.id AS account_id, 'warning' AS severity, {days(f"COALESCE(x.last_on, {_from('a.created_on')})")} AS days
        FROM accounts a LEFT JOIN act x ON x.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier IN ('mid', 'small')
          AND {days(f"COALESCE(x.last_on, {_from('a.created_on')})")} > IIF(a.tier = 'mid', 60, 120)""",
    ),
    (
        "neglected_small_clients",
        "contact_decay",
        "account",
        f"""
        WITH b AS (      -- the same 6 months a year earlier with 18 months of history, else the 6 before
            SELECT x.account_id, x.n_6m, x.last_on, IIF(x.first_on <= :m18, x.n_ago6m, x.n_prev6m) AS base FROM act x)
        SELECT a.id AS account_id, 'warning' AS severity, b.n_6m, b.base
        FROM accounts a JOIN b ON b.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier IN ('mid', 'small')
          AND b.base >= 2 AND CAST(b.n_6m AS REAL) / b.base < 0.50
          AND {days("b.last_on")} <= IIF(a.tier = 'mid', 60, 120)   -- else it is no_recent_contact's""",
    ),
    (
        "neglected_small_clients",
        "silent_churn",
        "account",
        """
        WITH d AS (      -- order days of active small/mid accounts; the median gap from a small SQL function
            SELECT o.account_id, COUNT(DISTINCT o.date) AS order_days, MAX(o.date) AS last_on,
                   median_gap(group_concat(DISTINCT o.date)) AS median_gap,
                   year_ago_gap(group_concat(DISTINCT o.date), :as_of) AS year_ago_gap
            FROM accounts a JOIN orders o ON o.account_id = a.id AND o.date <= :as_of
            WHERE a.status = 'active' AND a.tier IN ('mid', 'small')
            GROUP BY o.account_id)
        SELECT d.account_id, 'warning' AS severity, d.order_days, d.median_gap, w.jd - julianday(d.last_on) AS silent_days
        FROM d, w
        WHERE d.order_days >= 3 AND (w.jd - julianday(d.last_on)) / d.median_gap > 2
          AND (d.year_ago_gap IS NULL OR CAST(w.jd - julianday(d.last_on) AS INTEGER) > d.year_ago_gap)""",
    ),
    (
        "neglected_small_clients",
        "rising_star_unattended",
        "account",
        f"""
        SELECT a.id AS account_id, 'warning' AS severity, o.rev_prev12m, o.rev_12m,
               {days(f"IIF({NO_OWNER}, COALESCE(a.created_on, x.first_on), COALESCE(x.visit_on, {_from('a.created_on')}, x.first_on))")}
                   AS days_unattended
        FROM accounts a JOIN ord o ON o.account_id = a.id JOIN mon m ON m.account_id = a.id
             LEFT JOIN act x ON x.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier IN ('mid', 'small')
          AND o.rev_prev12m > 0 AND (o.rev_12m - o.rev_prev12m) / o.rev_prev12m > 0.50
          AND o.rev_12m >= IIF(a.tier = 'mid', 500000, 100000) AND m.m12 >= 6
          AND {days(f"IIF({NO_OWNER}, COALESCE(a.created_on, x.first_on), COALESCE(x.visit_on, {_from('a.created_on')}, x.first_on))")} > 90""",
    ),
    (
        "neglected_small_clients",
        "support_share",
        "portfolio",
        """
        WITH per AS (
            SELECT a.tier IN ('mid', 'small') AS smallmid, COALESCE(o.margin_total_12m, 0) AS margin,
                   COALESCE(c.conc_12m, 0) + COALESCE(x.cost_12m, 0) AS support
            FROM accounts a LEFT JOIN ord o ON o.account_id = a.id
                 LEFT JOIN con c ON c.account_id = a.id LEFT JOIN act x ON x.account_id = a.id
            WHERE a.status = 'active'),
        tot AS (SELECT TOTAL(IIF(smallmid, margin, 0)) AS sm_margin, TOTAL(margin) AS margin,
                       TOTAL(IIF(smallmid, support, 0)) AS sm_support, TOTAL(support) AS support FROM per)
        SELECT NULL AS account_id, 'warning' AS severity, sm_margin / margin AS margin_share, sm_support / support AS support_share
        FROM tot WHERE margin > 0 AND support > 0 AND sm_margin / margin > 0.30 AND sm_support / support < 0.10""",
    ),
    # ---- missing_escalation_channels (KAM3xx): active key accounts -----------
    (
        "missing_escalation_channels",
        "no_ka_manager",
        "account",
        f"""
        SELECT a.id AS account_id, 'critical' AS severity FROM accounts a
        WHERE a.status = 'active' AND a.tier = 'key' AND {NO_OWNER}""",
    ),
    (
        "missing_escalation_channels",
        "single_threaded",
        "account",
        """
        SELECT a.id AS account_id, 'warning' AS severity FROM accounts a
        WHERE a.status = 'active' AND a.tier = 'key'
          AND (SELECT COUNT(DISTINCT kind) FROM channels ch
               WHERE ch.account_id = a.id AND ch.kind IN ('technical', 'management')
                 AND (ch.since IS NULL OR ch.since <= :as_of)) < 2""",
    ),
    (
        "missing_escalation_channels",
        "no_complaint_channel",
        "account",
        """
        SELECT a.id AS account_id, 'warning' AS severity FROM accounts a
        WHERE a.status = 'active' AND a.tier = 'key'
          AND NOT EXISTS (SELECT 1 FROM channels ch
                          WHERE ch.account_id = a.id AND ch.kind = 'complaint' AND ch.client_informed = 1
                            AND (ch.since IS NULL OR ch.since <= :as_of))""",
    ),
    (
        "missing_escalation_channels",
        "no_executive_meeting",
        "account",
        f"""
        SELECT a.id AS account_id, 'warning' AS severity, {days(f"COALESCE(x.exec_on, {_from('a.created_on')}, x.first_on)")} AS days
        FROM accounts a LEFT JOIN act x ON x.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier = 'key'
          AND {days(f"COALESCE(x.exec_on, {_from('a.created_on')}, x.first_on)")} > 180""",
    ),
    (
        "missing_escalation_channels",
        "no_decision_maker",
        "account",
        f"""
        WITH met AS (    -- the last activity with an active decision maker of an active key account
            SELECT p.account_id, MAX(x.date) AS last_on
            FROM accounts a JOIN contacts p ON p.account_id = a.id
                 JOIN activities x ON x.account_id = p.account_id AND x.contact_id = p.id AND x.date <= :as_of
            WHERE a.status = 'active' AND a.tier = 'key' AND p.role = 'decision_maker' AND COALESCE(p.active, 1) = 1
            GROUP BY p.account_id)
        SELECT a.id AS account_id, 'warning' AS severity, {days(f"COALESCE(met.last_on, {_from('a.created_on')}, x.first_on)")} AS days
        FROM accounts a LEFT JOIN met ON met.account_id = a.id LEFT JOIN act x ON x.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier = 'key'
          AND {days(f"COALESCE(met.last_on, {_from('a.created_on')}, x.first_on)")} > 180""",
    ),
    (
        "missing_escalation_channels",
        "complaint_unresolved",
        "account",
        f"""
        WITH k AS (      -- open complaints against the limit of their severity and tier, x3 once escalated
            SELECT a.id AS account_id, {days("k.opened_on")} AS age,
                   CASE COALESCE(NULLIF(k.severity, ''), 'medium') WHEN 'high' THEN 3 WHEN 'low' THEN 1 ELSE 2 END AS rnk,
                   CASE COALESCE(NULLIF(k.severity, ''), 'medium')
                        WHEN 'high' THEN IIF(a.tier = 'key', 3, 7) WHEN 'low' THEN IIF(a.tier = 'key', 28, 60)
                        ELSE IIF(a.tier = 'key', 14, 30) END * IIF(COALESCE(k.escalated, 0) = 1, 3, 1) AS lim
            FROM complaints k JOIN accounts a ON a.id = k.account_id, w
            WHERE a.status <> 'lost' AND k.opened_on <= :as_of AND (k.closed_on IS NULL OR k.closed_on > :as_of))
        SELECT account_id, CASE MAX(rnk) WHEN 3 THEN 'critical' WHEN 2 THEN 'warning' ELSE 'info' END AS severity,
               MAX(age) AS oldest_days
        FROM k WHERE age > lim GROUP BY account_id""",
    ),
    # ---- stalled_stages (KAM4xx) ----------------------------------------------
    (
        "stalled_stages",
        "stage_dwell",
        "account",
        f"""
        SELECT a.id AS account_id, 'warning' AS severity, {days("s.since")} AS days
        FROM accounts a JOIN cur s ON s.account_id = a.id, w
        WHERE a.status <> 'lost'
          AND {days("s.since")} > IIF(a.tier = 'key', 2, 1) * CASE s.stage
                  WHEN 'research' THEN 30 WHEN 'analysis' THEN 30 WHEN 'contact' THEN 30
                  WHEN 'visit' THEN 45 WHEN 'presentation' THEN 45 WHEN 'proposal' THEN 30 WHEN 'negotiation' THEN 60 END""",
    ),
    (
        "stalled_stages",
        "no_follow_up",
        "account",
        """
        WITH v AS (      -- visits of the last 6 months and the first follow-up on a later day
            SELECT v.account_id, v.date,
                   (SELECT f.date FROM activities f
                     WHERE f.account_id = v.account_id AND f.date > v.date AND f.date <= :as_of
                       AND f.kind IN ('visit', 'call', 'meeting', 'executive_meeting')
                     ORDER BY f.date LIMIT 1) AS next_on
            FROM activities v WHERE v.kind = 'visit' AND v.date > :m6 AND v.date <= :as_of)
        SELECT a.id AS account_id, 'warning' AS severity,
               MAX(CAST(COALESCE(julianday(v.next_on), w.jd) - julianday(v.date) AS INTEGER)) AS gap
        FROM v JOIN accounts a ON a.id = v.account_id, w
        WHERE a.status <> 'lost' AND (a.status = 'prospect' OR a.tier = 'key')
        GROUP BY a.id HAVING gap > 7""",
    ),
    (
        "stalled_stages",
        "incomplete_visit_record",
        "account",
        """
        SELECT x.account_id, 'info' AS severity, COUNT(*) AS incomplete_visits
        FROM activities x JOIN accounts a ON a.id = x.account_id
        WHERE x.kind = 'visit' AND x.date > :m6 AND x.date <= :as_of
          AND a.status <> 'lost' AND (a.status = 'prospect' OR a.tier = 'key')
          AND (x.contact_id IS NULL OR x.contact_id = '' OR COALESCE(x.duration_minutes, 0) <= 0 OR x.attitude IS NULL OR x.attitude = '')
        GROUP BY x.account_id""",
    ),
    (
        "stalled_stages",
        "stage_regression",
        "account",
        f"""
        WITH recent AS ( -- stage changes of the last 90 days and the stage held just before each
            SELECT e.account_id, e.entered_on, {RANK.replace("stage", "e.stage")} AS r,
                   (SELECT {RANK.replace("stage", "p.stage")} FROM stage_history p
                     WHERE p.account_id = e.account_id
                       AND (p.entered_on < e.entered_on
                            OR (p.entered_on = e.entered_on AND {RANK.replace("stage", "p.stage")} < {RANK.replace("stage", "e.stage")}))
                     ORDER BY p.entered_on DESC, {RANK.replace("stage", "p.stage")} DESC LIMIT 1) AS prev_r
            FROM stage_history e
            WHERE e.entered_on >= date(:as_of, '-90 days') AND e.entered_on <= :as_of)
        SELECT h.account_id, 'warning' AS severity, MAX(h.entered_on) AS regressed_on
        FROM recent h JOIN accounts a ON a.id = h.account_id
        WHERE a.status <> 'lost' AND h.r < h.prev_r
        GROUP BY h.account_id""",
    ),
    (
        "stalled_stages",
        "stage_skipped",
        "account",
        f"""
        WITH path AS (   -- first time at proposal or later, at analysis, at visit
            SELECT account_id, MIN(IIF({RANK} >= 6, entered_on, NULL)) AS proposal_on,
                   MIN(IIF(stage = 'analysis', entered_on, NULL)) AS analysis_on,
                   MIN(IIF(stage = 'visit', entered_on, NULL)) AS visit_on
            FROM stage_history WHERE entered_on <= :as_of GROUP BY account_id)
        SELECT a.id AS account_id, 'warning' AS severity, p.analysis_on, p.visit_on, p.proposal_on
        FROM path p JOIN accounts a ON a.id = p.account_id JOIN cur s ON s.account_id = a.id
        WHERE a.status <> 'lost' AND s.stage IN ('proposal', 'negotiation') AND p.proposal_on IS NOT NULL
          AND NOT (COALESCE(p.analysis_on <= p.proposal_on, 0) AND COALESCE(p.visit_on <= p.proposal_on, 0))""",
    ),
    (
        "stalled_stages",
        "cold_streak",
        "account",
        """
        WITH streak AS ( -- cold attitudes after the last other one, within the current stage
            SELECT a.id AS account_id,
                   (SELECT COUNT(*) FROM activities x
                     WHERE x.account_id = a.id AND x.date <= :as_of AND x.attitude = 'cold'
                       AND x.date > COALESCE(t.warm_on, '') AND x.date >= COALESCE(s.since, '')) AS cold_streak
            FROM accounts a JOIN cur s ON s.account_id = a.id LEFT JOIN act t ON t.account_id = a.id
            WHERE a.status <> 'lost' AND s.stage <> 'won')
        SELECT account_id, 'warning' AS severity, cold_streak FROM streak WHERE cold_streak >= 3""",
    ),
    (
        "stalled_stages",
        "lost_without_reason",
        "account",
        """
        SELECT id AS account_id, 'info' AS severity FROM accounts
        WHERE status = 'lost' AND NULLIF(TRIM(lost_reason), '') IS NULL""",
    ),
    (
        "stalled_stages",
        "relationship_stuck",
        "account",
        f"""
        SELECT a.id AS account_id, 'warning' AS severity, s.since AS won_on
        FROM accounts a JOIN cur s ON s.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier = 'key' AND s.stage = 'won' AND a.relationship_stage = 'establish'
          AND {days("s.since")} > 365""",
    ),
    # ---- churn_signals (KAM5xx): active key and mid accounts ------------------
    (
        "churn_signals",
        "revenue_decline",
        "account",
        f"""
        SELECT a.id AS account_id, IIF(1.0 - o.rev_6m / o.rev_6m_ya > 0.50, 'critical', 'warning') AS severity,
               o.rev_6m, o.rev_6m_ya
        FROM accounts a JOIN ord o ON o.account_id = a.id JOIN won ON won.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier IN ('key', 'mid') AND {days("won.won_on")} >= 548
          AND o.rev_6m_ya >= IIF(a.tier = 'key', 1000000, 200000) AND 1.0 - o.rev_6m / o.rev_6m_ya > 0.30""",
    ),
    (
        "churn_signals",
        "satisfaction_overdue",
        "account",
        f"""
        SELECT a.id AS account_id, 'warning' AS severity, {days(f"COALESCE(x.survey_on, {_from('won.won_on')})")} AS days
        FROM accounts a JOIN won ON won.account_id = a.id LEFT JOIN act x ON x.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier = 'key' AND {days("won.won_on")} >= 365
          AND {days(f"COALESCE(x.survey_on, {_from('won.won_on')})")} > 365""",
    ),
    (
        "churn_signals",
        "complaints_rising",
        "account",
        f"""
        WITH k AS (
            SELECT account_id, SUM(opened_on > :m6) AS n_6m, SUM(opened_on <= :m6) AS n_prev6m
            FROM complaints WHERE opened_on > :m12 AND opened_on <= :as_of
            GROUP BY account_id)
        SELECT a.id AS account_id, 'warning' AS severity, k.n_6m, k.n_prev6m
        FROM k JOIN accounts a ON a.id = k.account_id JOIN won ON won.account_id = a.id, w
        WHERE a.status = 'active' AND a.tier IN ('key', 'mid') AND {days("won.won_on")} >= 365
          AND k.n_6m >= 3 AND CAST(k.n_prev6m AS REAL) / k.n_6m <= 0.5""",
    ),
    # ---- concentration_risk (KAM6xx) --------------------------------------------
    # KAM601 (the whole book: 30% / 50%) and KAM602 (the owner's book: 50% / 70%), both on the account
    (
        "concentration_risk",
        "revenue_concentration",
        "account",
        """
        WITH r AS MATERIALIZED (
            SELECT a.id, NULLIF(TRIM(a.owner), '') AS owner, o.rev_12m AS rev
            FROM accounts a JOIN ord o ON o.account_id = a.id
            WHERE a.status = 'active' AND o.rev_12m > 0),
        book AS (SELECT TOTAL(rev) AS total, COUNT(*) AS n FROM r),
        own AS (SELECT owner, TOTAL(rev) AS total, COUNT(*) AS n FROM r WHERE owner IS NOT NULL GROUP BY owner)
        SELECT r.id AS account_id, IIF(r.rev / book.total > 0.50, 'critical', 'warning') AS severity, r.rev / book.total AS share
        FROM r, book WHERE book.n >= 5 AND r.rev / book.total > 0.30
        UNION ALL
        SELECT r.id, IIF(r.rev / own.total > 0.70, 'critical', 'warning'), r.rev / own.total
        FROM r JOIN own ON own.owner = r.owner WHERE own.n >= 5 AND r.rev / own.total > 0.50""",
    ),
    (
        "concentration_risk",
        "relaxed_after_signing",
        "account",
        """
        WITH m AS (      -- the latest signed commitment that has started
            SELECT a.id AS account_id,
                   (SELECT c.rowid FROM commitments c WHERE c.account_id = a.id AND c.signed = 1 AND c.start <= :as_of
                     ORDER BY c.start DESC, c.id DESC LIMIT 1) AS cref
            FROM accounts a WHERE a.status = 'active'),
        s AS (
            SELECT m.account_id, c.start, CAST(w.jd - julianday(c.start) AS INTEGER) AS age
            FROM m JOIN commitments c ON c.rowid = m.cref, w),
        n AS (           -- activities since the start and in as many days before it
            SELECT s.account_id, s.age, date(s.start, '-' || (s.age + 1) || ' days') AS before_from,
                   (SELECT COUNT(*) FROM activities x WHERE x.account_id = s.account_id
                      AND x.date >= s.start AND x.date <= :as_of) AS since,
                   (SELECT COUNT(*) FROM activities x WHERE x.account_id = s.account_id
                      AND x.date >= date(s.start, '-' || (s.age + 1) || ' days') AND x.date < s.start) AS prior
            FROM s WHERE s.age BETWEEN 60 AND 365)
        SELECT n.account_id, 'warning' AS severity, n.since, n.prior
        FROM n JOIN won ON won.account_id = n.account_id
        WHERE n.prior >= 4 AND won.won_on <= n.before_from AND CAST(n.since AS REAL) / n.prior < 0.5""",
    ),
]


def median_gap(days: str | None) -> float | None:
    """SQL function: the median number of days between consecutive dates of a comma-separated list.

    SQLite has no MEDIAN; window functions (LAG, ROW_NUMBER) over every order cost several
    times this (an earlier, pure-SQL version of silent_churn took 43% of all the hand SQL)."""
    if not days:
        return None
    ds = sorted(dt.date.fromisoformat(d).toordinal() for d in days.split(","))
    gaps = sorted(b - a for a, b in pairwise(ds))
    if not gaps:
        return None
    n = len(gaps)
    return float(gaps[n // 2]) if n % 2 else (gaps[n // 2 - 1] + gaps[n // 2]) / 2


def year_ago_gap(days: str | None, as_of: str) -> int | None:
    """SQL function: the gap between the order days either side of the same date a year before ``as_of``
    (a seasonal buyer's break last year); NULL without an order day on or before that date or after it."""
    if not days:
        return None
    ds = sorted({dt.date.fromisoformat(d).toordinal() for d in days.split(",")})
    d = dt.date.fromisoformat(as_of)
    y = d.replace(year=d.year - 1, day=min(d.day, 28) if d.month == 2 else d.day).toordinal()
    k = bisect_right(ds, y)
    return ds[k] - ds[k - 1] if 0 < k < len(ds) else None


# ---- key_account_qualification (KAM7xx) and resource_mismatch (KAM8xx) ----------------------
# Calendar months with orders: the as-of month and the 11 (23) before it.
AGGREGATES["mon"] = """
        SELECT account_id,
               COUNT(DISTINCT IIF(date >= date(:as_of, 'start of month', '-11 months'), substr(date, 1, 7), NULL)) AS m12,
               COUNT(DISTINCT IIF(date >= date(:as_of, 'start of month', '-23 months'), substr(date, 1, 7), NULL)) AS m24
        FROM orders WHERE date <= :as_of
        GROUP BY account_id"""


def _since(last: str) -> str:
    return days(f"COALESCE({last}, MAX(COALESCE(a.created_on, {START}), {START}))")


RULES += [
    (
        "key_account_qualification",
        "one_off_buyer",
        "account",
        """
        SELECT a.id AS account_id, 'warning' AS severity, m.m24
        FROM accounts a JOIN mon m ON m.account_id = a.id
        WHERE a.status = 'active' AND a.tier = 'key' AND m.m24 BETWEEN 1 AND 1 AND m.m12 = 0""",
    ),
    (
        "key_account_qualification",
        "distributed_purchasing",
        "account",
        """
        SELECT a.id AS account_id, 'warning' AS severity
        FROM accounts a JOIN mon m ON m.account_id = a.id
        WHERE a.status = 'active' AND a.tier = 'key' AND a.purchasing = 'distributed'""",
    ),
    (
        "key_account_qualification",
        "promotion_candidate",
        "account",
        """
        WITH buyers AS (SELECT a.id, a.tier, o.rev_12m FROM accounts a JOIN ord o ON o.account_id = a.id
                        WHERE a.status = 'active' AND o.rev_12m > 0),
             line AS (SELECT COUNT(*) AS n,
                             (SELECT rev_12m FROM buyers ORDER BY rev_12m DESC
                              LIMIT 1 OFFSET (SELECT (COUNT(*) + 9) / 10 - 1 FROM buyers)) AS line FROM buyers)
        SELECT b.id AS account_id, 'info' AS severity, b.rev_12m, line.line, m.m12
        FROM buyers b JOIN mon m ON m.account_id = b.id, line
        WHERE b.tier IN ('mid', 'small') AND line.n >= 10 AND b.rev_12m >= line.line AND m.m12 >= 10""",
    ),
    (
        "resource_mismatch",
        "consultative_unvisited",
        "account",
        f"""
        WITH x AS (SELECT v.account_id,
                          MAX(IIF(v.kind IN ('visit', 'meeting', 'presentation', 'executive_meeting'), v.date, NULL)) AS met_on
                   FROM activities v JOIN accounts a ON a.id = v.account_id
                   WHERE v.date <= :as_of AND a.status = 'active' AND a.buyer_type = 'consultative'
                   GROUP BY v.account_id)
        SELECT a.id AS account_id, 'warning' AS severity, {_since("x.met_on")} AS days
        FROM accounts a JOIN x ON x.account_id = a.id, w
        WHERE {_since("x.met_on")} > 180
          AND (SELECT COUNT(*) FROM activities r WHERE r.account_id = a.id AND r.date > COALESCE(x.met_on, '')
                 AND r.date <= :as_of AND r.kind IN ('call', 'email')) >= 2""",
    ),
    (
        "resource_mismatch",
        "strategic_no_executive",
        "account",
        f"""
        SELECT a.id AS account_id, 'warning' AS severity, {_since("x.exec_on")} AS days
        FROM accounts a LEFT JOIN act x ON x.account_id = a.id, w
        WHERE a.status = 'active' AND a.buyer_type = 'strategic' AND {_since("x.exec_on")} > 180""",
    ),
]


# ---- issue 14's further rules: KAM803, KAM704, KAM604, KAM418 ----------------------------------
RULES += [
    (
        "resource_mismatch",
        "key_visit_cadence",
        "account",
        f"""
        WITH x AS (SELECT v.account_id,
                          MAX(IIF(v.kind IN ('visit', 'meeting', 'presentation', 'executive_meeting'), v.date, NULL)) AS met_on
                   FROM activities v JOIN accounts a ON a.id = v.account_id
                   WHERE v.date <= :as_of AND a.status = 'active' AND a.tier = 'key'
                   GROUP BY v.account_id)
        SELECT a.id AS account_id, 'warning' AS severity, {_since("x.met_on")} AS days
        FROM accounts a JOIN x ON x.account_id = a.id, w
        WHERE {_since("x.met_on")} > IIF(a.buyer_type IN ('consultative', 'strategic'), 45, 90)""",
    ),
    (
        "key_account_qualification",
        "buying_centre_coverage",
        "account",
        """
        WITH roles AS (SELECT account_id, COUNT(DISTINCT role) AS n FROM contacts
                       WHERE role IN ('decision_maker', 'technical', 'procurement', 'user') AND COALESCE(active, 1) = 1
                       GROUP BY account_id)
        SELECT a.id AS account_id, 'warning' AS severity, COALESCE(r.n, 0) AS covered
        FROM accounts a JOIN cur s ON s.account_id = a.id LEFT JOIN roles r ON r.account_id = a.id
        WHERE a.status <> 'lost' AND a.tier = 'key' AND s.stage IN ('proposal', 'negotiation')
          AND COALESCE(r.n, 0) < 3""",
    ),
    (
        "concentration_risk",
        "mixed_book",
        "portfolio",
        """
        SELECT NULL AS account_id, 'warning' AS severity, TRIM(owner) AS owner,
               SUM(tier = 'key') AS key_n, SUM(tier = 'small') AS small_n
        FROM accounts WHERE status = 'active' AND NULLIF(TRIM(owner), '') IS NOT NULL
        GROUP BY TRIM(owner)
        HAVING SUM(tier = 'key') >= 1 AND (SUM(tier = 'small') > 10 OR CAST(SUM(tier = 'small') AS REAL) / COUNT(*) > 0.75)""",
    ),
    (
        "stalled_stages",
        "lost_reason_pattern",
        "portfolio",
        """
        WITH l AS (      -- lost accounts, lost on their last dated record (stage_since, stage history, activity)
            SELECT TRIM(a.owner) AS owner, NULLIF(TRIM(a.lost_reason), '') AS reason,
                   MAX(COALESCE(IIF(a.stage_since <= :as_of, a.stage_since, NULL), ''),
                       COALESCE((SELECT MAX(h.entered_on) FROM stage_history h
                                  WHERE h.account_id = a.id AND h.entered_on <= :as_of), ''),
                       COALESCE((SELECT MAX(x.date) FROM activities x WHERE x.account_id = a.id AND x.date <= :as_of), '')) AS lost_on
            FROM accounts a WHERE a.status = 'lost' AND NULLIF(TRIM(a.owner), '') IS NOT NULL),
        y AS (SELECT * FROM l WHERE lost_on > :m12),
        top AS (SELECT owner, MAX(n) AS n FROM (SELECT owner, COUNT(*) AS n FROM y WHERE reason IS NOT NULL
                                                GROUP BY owner, reason) GROUP BY owner)
        SELECT NULL AS account_id, 'warning' AS severity, y.owner, COUNT(*) AS lost, top.n AS top_n
        FROM y LEFT JOIN top ON top.owner = y.owner
        GROUP BY y.owner
        HAVING COUNT(*) >= 5 AND (CAST(COALESCE(top.n, 0) AS REAL) / COUNT(*) >= 0.60
                                  OR CAST(SUM(y.reason IS NULL) AS REAL) / COUNT(*) > 0.50)""",
    ),
]


def _params(conn: sqlite3.Connection, as_of: str) -> dict:
    cur = conn.execute(WINDOWS, {"as_of": as_of})
    return dict(zip((d[0] for d in cur.description), cur.fetchone(), strict=True))


def run(db: str, as_of: str) -> dict:
    """Run every rule; {'seconds', 'timings', 'rules': {rule: {ruleset, scope, rows, severity, accounts}}}."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.create_function("median_gap", 1, median_gap, deterministic=True)
    conn.create_function("year_ago_gap", 2, year_ago_gap, deterministic=True)
    p = _params(conn, as_of)
    timings: dict[str, float] = {}
    for name, sql in AGGREGATES.items():
        t = time.perf_counter()
        conn.execute(f"CREATE TEMP TABLE {name} AS {sql}", p)
        if name != "w":
            conn.execute(f"CREATE UNIQUE INDEX temp.{name}_account ON {name}(account_id)")
        timings[f"aggregate:{name}"] = time.perf_counter() - t
    out: dict[str, dict] = {}
    for ruleset, rule, scope, sql in RULES:
        t = time.perf_counter()
        cur = conn.execute(sql, p)
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        timings[rule] = time.perf_counter() - t
        split = names.index("rule") if "rule" in names else None
        for name in sorted({r[split] for r in rows}) if split is not None else [rule]:
            mine = [r for r in rows if split is None or r[split] == name]
            out[name] = {
                "ruleset": ruleset,
                "scope": scope,
                "rows": len(mine),
                "severity": dict(Counter(r[1] for r in mine)),
                "accounts": sorted({r[0] for r in mine if r[0] is not None}),
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
