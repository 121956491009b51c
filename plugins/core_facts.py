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
  none counts from its ``created_on``, but never from before the first record of
  the activities table (the book fact ``activities_start``: an export that starts
  two years after the account was created says nothing about the years before
  it), and, for visits and executive meetings, from its first recorded activity
  when ``created_on`` is blank. With neither, the fact is missing and rules on it
  stay silent. The ``*_counted_from`` facts say which ("last: 2026-08-01", "none
  on record since the records start on 2024-11-01").
* ``days_unattended`` is ``days_since_visit`` for an account with an owner; an
  account with no owner has been unattended since it was first known
  (``created_on``, else its first activity).
* ``margin_12m`` is 0 for an account with no orders in the window, and missing
  (unknown) when it has orders but none of them carries a margin.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

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


_DAYS_FACT: dict[str, str] = {}  # start fact -> its days fact (records_start)


def records_start(table: str, start_fact: str, days_fact: str, date: str = "date") -> FactProvider:
    """A book provider: the first record of ``table`` (its ``date`` column) on or before the as-of date over
    the whole store (``start_fact``) and the days from it to the as-of date (``days_fact``). Once per check,
    in the parent, never from one worker's part (scope="book"); one seek of the ``(account_id, date)``
    index per account instead of a scan of the table (MATERIALIZED: inlined, the seeks ran twice). A day
    count of a table's records never starts before this date (see :func:`counted_since`)."""
    _DAYS_FACT[start_fact] = days_fact
    return FactProvider(
        name=start_fact,
        scope="book",
        description=f"The first {table} record of the whole store on or before the as-of date, and the days from it to the as-of date.",
        requires=(table,),
        facts=(start_fact, days_fact),
        sql=f"""
WITH s AS MATERIALIZED (SELECT MIN((SELECT MIN(x.{date}) FROM {table} x WHERE x.account_id = a.id AND x.{date} <= :as_of)) AS start
           FROM accounts a)
SELECT start AS {start_fact}, {days_since("start")} AS {days_fact} FROM s WHERE start IS NOT NULL
""",
    )


# Where the activity records start (KAM201, KAM204, KAM304, KAM305, KAM502, resource_mismatch).
ACTIVITIES_START = records_start("activities", "activities_start", "activity_record_days")

_ORDINALS: dict[str, int] = {}  # ISO date -> proleptic ordinal (a book has a few thousand distinct dates)


def _ordinal(day: str) -> int:
    n = _ORDINALS.get(day)
    if n is None:
        n = _ORDINALS[day] = datetime.date.fromisoformat(day).toordinal()
    return n


def counted_since(
    f: Mapping[str, Any], since: str | None, what: str = "it was created", start: str = "activities_start"
) -> tuple[int, str] | None:
    """For an account with no record of some kind in a table (no visit, say): the days to count and what
    they count from, ``(days, "since it was created on 2025-03-01")`` or ``(days, "since the records start
    on 2024-11-01")``: from ``since`` (its created_on, the date it was won), but never from before the
    table's first record (the book facts ``start`` and its days, from :func:`records_start`). None when
    ``since`` is unknown or the table has no record by the as-of date."""
    first = f.get(start)
    span = f.get(_DAYS_FACT.get(start, ""))
    if since is None or first is None or span is None:
        return None
    try:
        days = span - (_ordinal(since) - _ordinal(first))
    except ValueError:  # not an ISO date: don't guess
        return None
    if days < span:
        return days, f"since {what} on {since}"
    return span, f"since the records start on {first}"


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

# Per account, one pass over its activities. Days since the last activity, visit and executive meeting
# are SQL (inputs); an account with none counts from created_on but never from before the activity
# records start (counted_since, in _activity_days: a book fact, so Python). contact_decay's baseline:
# the same 6 months a year earlier for an account whose first activity is at least 18 months old
# (a seasonal client's winter is compared with last winter), else the 6 months just before.
ACTIVITY_SUMMARY = FactProvider(
    name="activity_summary",
    description="Contact recency and volume (the last 6 months against the same 6 a year earlier, or the 6 before), visits, executive meetings and service cost (activities.cost, 12 months).",
    requires=("activities",),
    # a book exported without activity costs: its service cost is unknown, not zero (cost_to_serve is skipped)
    requires_columns={"activities.cost": ("service_cost_12m",)},
    facts=(
        "last_activity",
        "activities_6m",
        "activities_prev_6m",
        "activities_6m_year_ago",
        "activity_baseline",
        "activity_baseline_span",
        "activity_ratio",
        "last_visit",
        "last_executive_meeting",
        "service_cost_12m",
    ),
    inputs=("act_last_days", "act_visit_days", "act_exec_days", "act_first_days", "act_first_on", "act_unowned_days"),
    sql=f"""
WITH x AS (
    SELECT account_id,
           MIN(date)                                                          AS first_on,
           MAX(date)                                                          AS last_on,
           SUM(date > {M6})                                                   AS n6,
           SUM(date <= {M6} AND date > {M12})                                 AS nprev6,
           SUM(date <= {M12} AND date > {M18})                                AS nago6,
           MAX(CASE WHEN kind = 'visit' THEN date END)                        AS visit_on,
           MAX(CASE WHEN kind = 'executive_meeting' OR level = 'executive' THEN date END) AS exec_on,
           TOTAL(CASE WHEN date > {M12} THEN cost END)                        AS cost_12m
    FROM activities
    WHERE date <= :as_of
    GROUP BY account_id),
y AS (
    SELECT x.*, CASE WHEN x.first_on <= {M18} THEN x.nago6 ELSE x.nprev6 END AS base
    FROM x)
SELECT a.id AS account_id,
       COALESCE(y.last_on, 'never')                                     AS last_activity,
       COALESCE(y.n6, 0)                                                AS activities_6m,
       COALESCE(y.nprev6, 0)                                            AS activities_prev_6m,
       CASE WHEN y.first_on <= {M18} THEN y.nago6 END                   AS activities_6m_year_ago,
       COALESCE(y.base, 0)                                              AS activity_baseline,
       CASE WHEN y.first_on <= {M18} THEN 'the same 6 months a year earlier'
            ELSE 'the 6 months before' END                              AS activity_baseline_span,
       CASE WHEN y.base > 0 THEN CAST(y.n6 AS REAL) / y.base END        AS activity_ratio,
       COALESCE(y.visit_on, 'never')                                    AS last_visit,
       COALESCE(y.exec_on, 'never')                                     AS last_executive_meeting,
       COALESCE(y.cost_12m, 0.0)                                        AS service_cost_12m,
       {days_since("y.last_on")}                                        AS act_last_days,
       {days_since("y.visit_on")}                                       AS act_visit_days,
       {days_since("y.exec_on")}                                        AS act_exec_days,
       {days_since("y.first_on")}                                       AS act_first_days,
       y.first_on                                                       AS act_first_on,
       CASE WHEN NULLIF(TRIM(a.owner), '') IS NULL
            THEN {days_since("COALESCE(a.created_on, y.first_on)")} END AS act_unowned_days
FROM accounts a LEFT JOIN y ON y.account_id = a.id
""",
    after=("activities_start",),
    derive=lambda f: _activity_days(f),
    derived=(
        "days_since_activity",
        "activity_counted_from",
        "days_since_visit",
        "days_since_executive_meeting",
        "executive_meeting_counted_from",
        "days_unattended",
        "attention",
    ),
)


def count_days(
    f: Mapping[str, Any],
    last_on: str,
    days: int | None,
    since: str | None,
    first_days: int | None = None,
    what: str = "it was created",
) -> tuple[int | None, str]:
    """(days, what they count from) for a "days since the last record" fact: from the last record
    (``days``, ``last_on``), else from ``since`` but never before the records start (:func:`counted_since`),
    else from the account's first activity (``first_days``, when ``since`` is unknown)."""
    if days is not None:
        return days, f"last: {last_on}"
    c = counted_since(f, since, what)
    if c is not None:
        return c[0], f"none on record {c[1]}"
    if first_days is not None:
        return first_days, f"none on record since its first activity on {f.get('act_first_on')}"
    return None, "none on record"


def _activity_days(f: Mapping[str, Any]) -> dict[str, Any]:
    created, first = f.get("created_on"), f.get("act_first_days")
    act_days, act_from = count_days(f, f["last_activity"], f.get("act_last_days"), created)
    visit_days, visit_from = count_days(f, f["last_visit"], f.get("act_visit_days"), created, first)
    exec_days, exec_from = count_days(f, f["last_executive_meeting"], f.get("act_exec_days"), created, first)
    unowned = f.get("act_unowned_days")
    if unowned is not None or (not f.get("owner") or not str(f["owner"]).strip()):
        unattended, attention = unowned, "it has no owner"
    elif f.get("act_visit_days") is not None:
        unattended, attention = visit_days, f"its last visit was on {f['last_visit']}"
    else:
        unattended, attention = visit_days, "it has " + visit_from.replace("none on record", "no visit on record", 1)
    return {
        "days_since_activity": act_days,
        "activity_counted_from": act_from,
        "days_since_visit": visit_days,
        "days_since_executive_meeting": exec_days,
        "executive_meeting_counted_from": exec_from,
        "days_unattended": unattended,
        "attention": attention,
    }


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
    # every date of a backtest in one statement: the accounts are read once, each date one index seek per account
    multi_date_sql=f"""
WITH w AS MATERIALIZED (
    SELECT d.as_of, a.id AS account_id, {WON_ON.replace(":as_of", "d.as_of")} AS won_on
    FROM accounts a CROSS JOIN as_of_dates d WHERE +a.status = 'active')
SELECT as_of, account_id, won_on, CAST(julianday(as_of) - julianday(won_on) AS INTEGER) AS days_since_won
FROM w
WHERE won_on IS NOT NULL
""",
)

PROVIDERS = (ACTIVITIES_START, ORDERS_SUMMARY, CONCESSIONS_SUMMARY, ACTIVITY_SUMMARY, WON_DATE)


@hookimpl
def register_facts():
    return list(PROVIDERS)
