"""Built-in plugin: per-account facts shared by several rule sets (orders, concessions, activities).

Every provider is one SELECT with the parameter ``:as_of``; records dated after
it are ignored. Trailing windows are half-open: "the 12 months to 2026-10-31"
means ``date(:as_of, '-12 months') < date <= :as_of``; "the 12 before" is the
same window shifted back by 12 months. Each event table is scanned once per
provider, grouped by ``account_id`` (the tables' ``(account_id, date)`` index),
and joined to ``accounts`` so that an account with no records still gets facts
(zero revenue, zero activities) rather than no facts.

Missing data, decided here once:

* ``days_since_*`` counts from the last matching activity; an account that has
  none counts from its ``created_on`` (and, for visits and executive meetings,
  from its first recorded activity when ``created_on`` is blank). With neither,
  the fact is missing and rules on it stay silent.
* ``days_unattended`` is ``days_since_visit`` for an account with an owner; an
  account with no owner has been unattended since it was first known
  (``created_on``, else its first activity).
* ``margin_12m`` is 0 for an account with no orders in the window, and missing
  (unknown) when it has orders but none of them carries a margin.
"""

from __future__ import annotations

from kamrules import hookimpl
from kamrules.facts import FactProvider
from kamrules.vocab import CONCESSION_KINDS

# Window bounds as SQL expressions over the :as_of parameter.
M6 = "date(:as_of, '-6 months')"
M12 = "date(:as_of, '-12 months')"
M18 = "date(:as_of, '-18 months')"
M24 = "date(:as_of, '-24 months')"
JD = "julianday(:as_of)"

# A concession is "committed" when it points to a signed commitment of the same
# account with a quantified (positive) target that had started by the as-of date.
COMMITTED = "(m.id IS NOT NULL AND m.signed = 1 AND m.target_amount > 0)"
CONCESSION_JOIN = (
    "LEFT JOIN commitments m ON m.id = c.commitment_id AND m.account_id = c.account_id AND m.start <= :as_of"
)


def days_since(expr: str) -> str:
    """SQL: whole days from the date ``expr`` to the as-of date (NULL when ``expr`` is NULL)."""
    return f"CAST({JD} - julianday({expr}) AS INTEGER)"


# Also, for churn_signals (KAM501): revenue of the last 6 months against the SAME 6
# months a year earlier (not the 6 months just before: a seasonal dealer's January is
# compared with last January), for active key and mid accounts (the accounts the rule
# judges) with an order in the last 18 months. An account with no order a year earlier
# has no decline (nothing to fall from). Computed in this scan of the orders rather
# than in a provider of its own: a second pass over the same rows cost 0.06 s CPU at
# 10k, the two extra sums here next to nothing.
ORDERS_SUMMARY = FactProvider(
    name="orders_summary",
    description="Revenue and margin over the trailing 12 months and the 12 before; for active key and mid accounts, revenue of the last 6 months, of the same 6 months a year earlier, and the fall between them.",
    requires=("orders",),
    facts=(
        "revenue_12m",
        "revenue_prev_12m",
        "revenue_growth",
        "margin_12m",
        "orders_12m",
        "revenue_6m",
        "revenue_6m_year_ago",
        "revenue_6m_decline",
    ),
    sql=f"""
WITH o AS (
    SELECT account_id,
           TOTAL(CASE WHEN date > {M12} THEN amount END)  AS revenue_12m,
           TOTAL(CASE WHEN date <= {M12} THEN amount END) AS revenue_prev_12m,
           SUM(CASE WHEN date > {M12} THEN margin END)    AS margin_12m,
           SUM(date > {M12})                              AS orders_12m,
           TOTAL(CASE WHEN date > {M6} THEN amount END)                    AS now6,
           TOTAL(CASE WHEN date > {M18} AND date <= {M12} THEN amount END) AS ago6,
           SUM(date > {M18})                                               AS orders_18m
    FROM orders
    WHERE date <= :as_of AND date > {M24}
    GROUP BY account_id)
SELECT a.id AS account_id,
       COALESCE(o.revenue_12m, 0.0)      AS revenue_12m,
       COALESCE(o.revenue_prev_12m, 0.0) AS revenue_prev_12m,
       CASE WHEN o.revenue_prev_12m > 0
            THEN (o.revenue_12m - o.revenue_prev_12m) / o.revenue_prev_12m END AS revenue_growth,
       CASE WHEN COALESCE(o.orders_12m, 0) = 0 THEN 0.0 ELSE o.margin_12m END AS margin_12m,
       COALESCE(o.orders_12m, 0)         AS orders_12m,
       CASE WHEN o.orders_18m > 0 AND +a.status = 'active' AND +a.tier IN ('key', 'mid') THEN o.now6 END AS revenue_6m,
       CASE WHEN o.orders_18m > 0 AND +a.status = 'active' AND +a.tier IN ('key', 'mid') THEN o.ago6 END AS revenue_6m_year_ago,
       CASE WHEN o.orders_18m > 0 AND +a.status = 'active' AND +a.tier IN ('key', 'mid') AND o.ago6 > 0
            THEN 1.0 - o.now6 / o.ago6 END                               AS revenue_6m_decline
FROM accounts a LEFT JOIN o ON o.account_id = a.id
""",
)

# uncommitted_deal_concessions_12m leaves out the kinds that need no volume deal (a free
# service to settle a complaint): :excluded_kinds, comma-separated, set by KAM102's
# threshold of that name (FactProvider params).
CONCESSIONS_SUMMARY = FactProvider(
    name="concessions_summary",
    description="Concessions over the trailing 12 months, the 12 before, the last 90 days, and the part not backed by a signed commitment (all kinds; and of the kinds not in :excluded_kinds).",
    requires=("concessions",),
    facts=(
        "concessions_12m",
        "concessions_prev_12m",
        "concessions_90d",
        "uncommitted_concessions_12m",
        "uncommitted_deal_concessions_12m",
    ),
    params={"excluded_kinds": "free_service"},
    param_choices={"excluded_kinds": CONCESSION_KINDS},
    sql=f"""
WITH s AS (
    SELECT c.account_id,
           TOTAL(CASE WHEN c.date > {M12} THEN c.amount END)                         AS concessions_12m,
           TOTAL(CASE WHEN c.date <= {M12} THEN c.amount END)                        AS concessions_prev_12m,
           TOTAL(CASE WHEN c.date > date(:as_of, '-90 days') THEN c.amount END)      AS concessions_90d,
           TOTAL(CASE WHEN c.date > {M12} AND NOT {COMMITTED} THEN c.amount END)     AS uncommitted_concessions_12m,
           TOTAL(CASE WHEN c.date > {M12} AND NOT {COMMITTED}
                           AND instr(',' || :excluded_kinds || ',', ',' || c.kind || ',') = 0
                      THEN c.amount END)                                             AS uncommitted_deal_concessions_12m
    FROM concessions c {CONCESSION_JOIN}
    WHERE c.date <= :as_of AND c.date > {M24}
    GROUP BY c.account_id)
SELECT a.id AS account_id,
       COALESCE(s.concessions_12m, 0.0)             AS concessions_12m,
       COALESCE(s.concessions_prev_12m, 0.0)        AS concessions_prev_12m,
       COALESCE(s.concessions_90d, 0.0)             AS concessions_90d,
       COALESCE(s.uncommitted_concessions_12m, 0.0) AS uncommitted_concessions_12m,
       COALESCE(s.uncommitted_deal_concessions_12m, 0.0) AS uncommitted_deal_concessions_12m
FROM accounts a LEFT JOIN s ON s.account_id = a.id
""",
)

ACTIVITY_SUMMARY = FactProvider(
    name="activity_summary",
    description="Contact recency and volume, visits, executive meetings and service cost (activities.cost, 12 months).",
    requires=("activities",),
    # a book exported without activity costs: its service cost is unknown, not zero (cost_to_serve is skipped)
    requires_columns={"activities.cost": ("service_cost_12m",)},
    facts=(
        "days_since_activity",
        "last_activity",
        "activities_6m",
        "activities_prev_6m",
        "activity_ratio",
        "days_since_visit",
        "last_visit",
        "days_since_executive_meeting",
        "last_executive_meeting",
        "service_cost_12m",
        "days_unattended",
        "attention",
    ),
    sql=f"""
WITH x AS (
    SELECT account_id,
           MIN(date)                                                          AS first_on,
           MAX(date)                                                          AS last_on,
           SUM(date > {M6})                                                   AS n6,
           SUM(date <= {M6} AND date > {M12})                                 AS nprev6,
           MAX(CASE WHEN kind = 'visit' THEN date END)                        AS visit_on,
           MAX(CASE WHEN kind = 'executive_meeting' OR level = 'executive' THEN date END) AS exec_on,
           TOTAL(CASE WHEN date > {M12} THEN cost END)                        AS cost_12m
    FROM activities
    WHERE date <= :as_of
    GROUP BY account_id)
SELECT a.id AS account_id,
       {days_since("COALESCE(x.last_on, a.created_on)")}               AS days_since_activity,
       COALESCE(x.last_on, 'never')                                     AS last_activity,
       COALESCE(x.n6, 0)                                                AS activities_6m,
       COALESCE(x.nprev6, 0)                                            AS activities_prev_6m,
       CASE WHEN x.nprev6 > 0 THEN CAST(x.n6 AS REAL) / x.nprev6 END    AS activity_ratio,
       {days_since("COALESCE(x.visit_on, a.created_on, x.first_on)")}  AS days_since_visit,
       COALESCE(x.visit_on, 'never')                                    AS last_visit,
       {days_since("COALESCE(x.exec_on, a.created_on, x.first_on)")}   AS days_since_executive_meeting,
       COALESCE(x.exec_on, 'never')                                     AS last_executive_meeting,
       COALESCE(x.cost_12m, 0.0)                                        AS service_cost_12m,
       CASE WHEN NULLIF(TRIM(a.owner), '') IS NULL
            THEN {days_since("COALESCE(a.created_on, x.first_on)")}
            ELSE {days_since("COALESCE(x.visit_on, a.created_on, x.first_on)")} END AS days_unattended,
       CASE WHEN NULLIF(TRIM(a.owner), '') IS NULL THEN 'it has no owner'
            WHEN x.visit_on IS NULL THEN 'it has never been visited'
            ELSE 'its last visit was on ' || x.visit_on END              AS attention
FROM accounts a LEFT JOIN x ON x.account_id = a.id
""",
)

# The date an active account was won: its latest `won` entry in stage_history on
# or before the as-of date (one index seek per account), else its created_on
# (an account known without a stage history). Used by rules that must not judge
# a relationship younger than the windows they compare (churn_signals,
# concentration_risk); WON_ON is the same expression for providers' own SQL.
# MATERIALIZED: inlined, SQLite runs the seek once per use of won_on (three).
WON_ON = (
    "COALESCE((SELECT MAX(h.entered_on) FROM stage_history h WHERE h.account_id = a.id AND h.stage = 'won'"
    " AND h.entered_on <= :as_of), a.created_on)"
)

WON_DATE = FactProvider(
    name="won_date",
    description="When an active account was won (stage_history's latest `won` entry, else created_on), and how many days ago.",
    requires=(),
    facts=("won_on", "days_since_won"),
    sql=f"""
WITH w AS MATERIALIZED (SELECT a.id AS account_id, {WON_ON} AS won_on FROM accounts a WHERE +a.status = 'active')
SELECT account_id, won_on, {days_since("won_on")} AS days_since_won
FROM w
WHERE won_on IS NOT NULL
""",
)

PROVIDERS = (ORDERS_SUMMARY, CONCESSIONS_SUMMARY, ACTIVITY_SUMMARY, WON_DATE)


@hookimpl
def register_facts():
    return list(PROVIDERS)
