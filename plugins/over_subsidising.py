"""Built-in plugin: the over_subsidising rule set (concessions that buy nothing back) and its facts."""

from __future__ import annotations

import importlib.resources

from kamrules import hookimpl
from kamrules.facts import FactProvider
from kamrules_plugins.core_facts import COMMITTED, CONCESSION_JOIN, JD, M12, M24

SUBSIDY_RATIOS = FactProvider(
    name="subsidy_ratios",
    description="Concessions relative to revenue, and their growth year on year.",
    requires=("orders", "concessions"),
    facts=("concession_ratio", "uncommitted_ratio", "concessions_growth"),
    sql=f"""
WITH o AS (
    SELECT account_id, TOTAL(amount) AS revenue
    FROM orders
    WHERE date <= :as_of AND date > {M12}
    GROUP BY account_id),
s AS (
    SELECT c.account_id,
           TOTAL(CASE WHEN c.date > {M12} THEN c.amount END)                     AS given,
           TOTAL(CASE WHEN c.date <= {M12} THEN c.amount END)                    AS given_before,
           TOTAL(CASE WHEN c.date > {M12} AND NOT {COMMITTED} THEN c.amount END) AS uncommitted
    FROM concessions c {CONCESSION_JOIN}
    WHERE c.date <= :as_of AND c.date > {M24}
    GROUP BY c.account_id)
SELECT s.account_id,
       CASE WHEN o.revenue > 0 THEN s.given / o.revenue END                          AS concession_ratio,
       CASE WHEN o.revenue > 0 THEN s.uncommitted / o.revenue END                    AS uncommitted_ratio,
       CASE WHEN s.given_before > 0 THEN (s.given - s.given_before) / s.given_before END AS concessions_growth
FROM s LEFT JOIN o ON o.account_id = s.account_id
""",
)

NET_MARGIN = FactProvider(
    name="net_margin",
    description="Margin minus concessions minus service cost over 12 months; service cost against margin.",
    requires=("orders",),
    facts=("net_margin_12m", "net_margin_breakdown", "cost_to_margin"),
    sql=f"""
WITH o AS (
    SELECT account_id, SUM(margin) AS margin, COUNT(*) AS n
    FROM orders WHERE date <= :as_of AND date > {M12}
    GROUP BY account_id),
s AS (
    SELECT account_id, TOTAL(amount) AS given
    FROM concessions WHERE date <= :as_of AND date > {M12}
    GROUP BY account_id),
x AS (
    SELECT account_id, TOTAL(cost) AS cost
    FROM activities WHERE date <= :as_of AND date > {M12} AND cost IS NOT NULL
    GROUP BY account_id),
n AS (
    SELECT a.id AS account_id,
           CASE WHEN o.account_id IS NULL THEN 0.0 ELSE o.margin END AS margin,
           COALESCE(s.given, 0.0) AS given,
           COALESCE(x.cost, 0.0)  AS cost
    FROM accounts a
         LEFT JOIN o ON o.account_id = a.id
         LEFT JOIN s ON s.account_id = a.id
         LEFT JOIN x ON x.account_id = a.id)
SELECT account_id,
       margin - given - cost AS net_margin_12m,
       printf('margin %,d - concessions %,d - service cost %,d',
              CAST(ROUND(margin) AS INTEGER), CAST(ROUND(given) AS INTEGER), CAST(ROUND(cost) AS INTEGER))
           AS net_margin_breakdown,
       CASE WHEN margin > 0 THEN cost / margin END AS cost_to_margin
FROM n WHERE margin IS NOT NULL
""",
)

COMMITMENT_PROGRESS = FactProvider(
    name="commitment_progress",
    description="The signed commitment in force that is furthest behind its target pro-rated to the as-of date.",
    requires=("commitments", "orders"),
    facts=(
        "commitment_ref",
        "commitment_target",
        "commitment_expected",
        "commitment_actual",
        "commitment_behind",
        "commitment_elapsed_days",
        "commitment_end",
    ),
    sql=f"""
WITH live AS (
    SELECT m.id, m.account_id, m.start, m."end", m.target_amount,
           {JD} - julianday(m.start) + 1                    AS elapsed,
           julianday(m."end") - julianday(m.start) + 1      AS span
    FROM commitments m
    WHERE m.signed = 1 AND m.target_amount > 0 AND m.start <= :as_of AND m."end" >= :as_of),
prog AS (
    SELECT l.id, l.account_id, l."end", l.target_amount, l.elapsed,
           l.target_amount * l.elapsed / l.span AS expected,
           TOTAL(o.amount)                      AS actual
    FROM live l
         LEFT JOIN orders o ON o.account_id = l.account_id AND o.date >= l.start AND o.date <= :as_of
    GROUP BY l.id, l.account_id),
ranked AS (
    SELECT *, 1.0 - actual / expected AS behind,
           ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY 1.0 - actual / expected DESC, id) AS rn
    FROM prog)
SELECT account_id,
       id                        AS commitment_ref,
       target_amount             AS commitment_target,
       expected                  AS commitment_expected,
       actual                    AS commitment_actual,
       behind                    AS commitment_behind,
       CAST(elapsed AS INTEGER)  AS commitment_elapsed_days,
       "end"                     AS commitment_end
FROM ranked WHERE rn = 1
""",
)

PROVIDERS = (SUBSIDY_RATIOS, NET_MARGIN, COMMITMENT_PROGRESS)


@hookimpl
def register_rulesets():
    return [importlib.resources.files("kamrules_rulesets") / "over_subsidising.yaml"]


@hookimpl
def register_facts():
    return list(PROVIDERS)
