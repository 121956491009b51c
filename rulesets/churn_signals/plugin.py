"""Built-in plugin: the churn_signals rule set (a key or mid account's own decline) and its facts."""

from __future__ import annotations

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules_plugins.core_facts import M6, M12, WON_ON, count_days, days_since

# revenue_6m, revenue_6m_year_ago and revenue_6m_decline (KAM501) are core facts of
# orders_summary (plugins/core_facts.py), computed in its one pass over the orders.

# The last satisfaction survey of an active key account (an index range over its
# activities, filtered on kind). With none ever, the days count from the date
# the account was won (core fact won_on's expression): never surveyed since, but
# never counted from before the activity records start (count_days, a book fact).
# MATERIALIZED: inlined, both seeks ran once per use of their result (three).
SURVEYS = FactProvider(
    name="surveys",
    description="The last `survey` activity of an active key account and the days since (since it was won, when never surveyed).",
    requires=("activities",),
    facts=("last_survey",),
    inputs=("survey_days", "survey_won_on"),
    sql=f"""
WITH s AS MATERIALIZED (
    SELECT a.id AS account_id, {WON_ON} AS won_on,
           (SELECT MAX(x.date) FROM activities x
             WHERE x.account_id = a.id AND x.kind = 'survey' AND x.date <= :as_of) AS survey_on
    FROM accounts a
    WHERE +a.status = 'active' AND +a.tier = 'key')
SELECT account_id, COALESCE(survey_on, 'never') AS last_survey,
       {days_since("survey_on")} AS survey_days, won_on AS survey_won_on
FROM s WHERE COALESCE(survey_on, won_on) IS NOT NULL
""",
    after=("activities_start",),
    derive=lambda f: _survey_days(f),
    derived=("days_since_survey", "survey_counted_from"),
)


def _survey_days(f):
    if "last_survey" not in f:  # not an active key account
        return None
    days, since = count_days(f, f["last_survey"], f.get("survey_days"), f.get("survey_won_on"), what="it was won")
    return {"days_since_survey": days, "survey_counted_from": since}


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

PROVIDERS = (SURVEYS, COMPLAINT_TREND)


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)
