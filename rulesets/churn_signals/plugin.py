"""Built-in plugin: the churn_signals rule set (a key or mid account's own decline) and its facts."""

from __future__ import annotations

import importlib.resources

from kamrules import hookimpl
from kamrules.facts import FactProvider
from kamrules_plugins.core_facts import M6, M12, WON_ON, days_since

M18 = "date(:as_of, '-18 months')"

# Revenue of the last 6 months against the SAME 6 months a year earlier (not the
# 6 months just before: a seasonal dealer's January is compared with last
# January). Active key and mid accounts only (the accounts the rule judges),
# one index range per account over (account_id, date) for 18 months. An account
# with no order a year earlier has no decline (nothing to fall from).
REVENUE_YEAR_ON_YEAR = FactProvider(
    name="revenue_year_on_year",
    description="Revenue of the last 6 months, of the same 6 months a year earlier, and the fall between them (active key/mid accounts).",
    requires=("orders",),
    facts=("revenue_6m", "revenue_6m_year_ago", "revenue_6m_decline"),
    sql=f"""
WITH r AS (
    SELECT a.id AS account_id,
           TOTAL(CASE WHEN o.date > {M6} THEN o.amount END)                       AS now6,
           TOTAL(CASE WHEN o.date > {M18} AND o.date <= {M12} THEN o.amount END)  AS ago6
    FROM accounts a JOIN orders o ON o.account_id = a.id AND o.date > {M18} AND o.date <= :as_of
    WHERE +a.status = 'active' AND +a.tier IN ('key', 'mid')
    GROUP BY a.id)
SELECT account_id, now6 AS revenue_6m, ago6 AS revenue_6m_year_ago,
       CASE WHEN ago6 > 0 THEN 1.0 - now6 / ago6 END AS revenue_6m_decline
FROM r
""",
)

# The last satisfaction survey of an active key account (an index range over its
# activities, filtered on kind). With none ever, the days count from the date
# the account was won (core fact won_on's expression): never surveyed since.
# MATERIALIZED: inlined, both seeks ran once per use of their result (three).
SURVEYS = FactProvider(
    name="surveys",
    description="The last `survey` activity of an active key account and the days since (since it was won, when never surveyed).",
    requires=("activities",),
    facts=("last_survey", "days_since_survey"),
    sql=f"""
WITH s AS MATERIALIZED (
    SELECT a.id AS account_id, {WON_ON} AS won_on,
           (SELECT MAX(x.date) FROM activities x
             WHERE x.account_id = a.id AND x.kind = 'survey' AND x.date <= :as_of) AS survey_on
    FROM accounts a
    WHERE +a.status = 'active' AND +a.tier = 'key')
SELECT account_id, COALESCE(survey_on, 'never') AS last_survey,
       {days_since("COALESCE(survey_on, won_on)")} AS days_since_survey
FROM s WHERE COALESCE(survey_on, won_on) IS NOT NULL
""",
)

# Complaints opened in the last 6 months and in the 6 before (active accounts
# with a complaint in the last 12 months). complaints_prev_ratio = the 6 months
# before / the last 6 ("at least twice as many as before" is a ratio <= 0.5;
# none before is 0): defined whenever there is a recent complaint.
COMPLAINT_TREND = FactProvider(
    name="complaint_trend",
    description="Complaints opened in the last 6 months and in the 6 before, and the earlier count as a share of the recent one.",
    requires=("complaints",),
    facts=("complaints_6m", "complaints_prev_6m", "complaints_prev_ratio"),
    sql=f"""
WITH k AS (
    SELECT a.id AS account_id,
           SUM(c.opened_on > {M6})  AS n6,
           SUM(c.opened_on <= {M6}) AS prev6
    FROM accounts a JOIN complaints c ON c.account_id = a.id AND c.opened_on > {M12} AND c.opened_on <= :as_of
    WHERE +a.status = 'active'
    GROUP BY a.id)
SELECT account_id, n6 AS complaints_6m, prev6 AS complaints_prev_6m,
       CASE WHEN n6 > 0 THEN CAST(prev6 AS REAL) / n6 END AS complaints_prev_ratio
FROM k
""",
)

PROVIDERS = (REVENUE_YEAR_ON_YEAR, SURVEYS, COMPLAINT_TREND)


@hookimpl
def register_rulesets():
    return [importlib.resources.files(__package__) / "rules.yaml"]


@hookimpl
def register_facts():
    return list(PROVIDERS)


@hookimpl
def register_defect_recipes():
    from kamrules_rulesets.churn_signals.defects import RECIPES

    return list(RECIPES)
