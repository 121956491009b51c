"""Built-in plugin: the neglected_small_clients rule set (the book abandoned for the big names) and its facts."""

from __future__ import annotations

import importlib.resources

from kamrules import hookimpl
from kamrules.facts import FactProvider
from kamrules_plugins.core_facts import JD, M12

# Gaps between consecutive distinct order days of active accounts (several
# orders on one day are one purchase), their median, and the current silence.
ORDER_RHYTHM = FactProvider(
    name="order_rhythm",
    description="Past order days, the median gap between them, and the days since the last one (active accounts).",
    requires=("orders",),
    facts=("order_count", "median_order_gap_days", "days_since_order", "last_order_on", "order_gap_ratio"),
    sql=f"""
WITH d AS (
    SELECT DISTINCT o.account_id, o.date
    FROM orders o JOIN accounts a ON a.id = o.account_id
    WHERE o.date <= :as_of AND a.status = 'active'),
g AS (
    SELECT account_id, date,
           julianday(date) - julianday(LAG(date) OVER (PARTITION BY account_id ORDER BY date)) AS gap
    FROM d),
r AS (
    SELECT account_id, gap,
           ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY gap) AS rn,
           COUNT(*)     OVER (PARTITION BY account_id)              AS n
    FROM g WHERE gap IS NOT NULL),
med AS (
    SELECT account_id, AVG(gap) AS median_gap
    FROM r WHERE rn IN ((n + 1) / 2, (n + 2) / 2)
    GROUP BY account_id),
last AS (
    SELECT account_id, COUNT(*) AS n, MAX(date) AS last_on
    FROM d GROUP BY account_id)
SELECT last.account_id,
       last.n                                         AS order_count,
       med.median_gap                                 AS median_order_gap_days,
       CAST({JD} - julianday(last.last_on) AS INTEGER) AS days_since_order,
       last.last_on                                   AS last_order_on,
       ({JD} - julianday(last.last_on)) / med.median_gap AS order_gap_ratio
FROM last LEFT JOIN med ON med.account_id = last.account_id
""",
)

# The whole book (active accounts): small and mid accounts' share of 12-month
# margin against their share of support (concessions + service cost).
SUPPORT_SHARE = FactProvider(
    name="support_share",
    description="Small and mid accounts' share of the book's 12-month margin and of its support (concessions + service cost).",
    scope="portfolio",
    requires=("orders", "concessions"),
    facts=(
        "smallmid_margin_12m",
        "book_margin_12m",
        "smallmid_margin_share",
        "smallmid_support_12m",
        "book_support_12m",
        "smallmid_support_share",
    ),
    sql=f"""
WITH o AS (
    SELECT account_id, TOTAL(margin) AS margin
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
per AS (
    SELECT a.tier IN ('mid', 'small')                          AS smallmid,
           COALESCE(o.margin, 0.0)                             AS margin,
           COALESCE(s.given, 0.0) + COALESCE(x.cost, 0.0)      AS support
    FROM accounts a
         LEFT JOIN o ON o.account_id = a.id
         LEFT JOIN s ON s.account_id = a.id
         LEFT JOIN x ON x.account_id = a.id
    WHERE a.status = 'active'),
tot AS (
    SELECT TOTAL(CASE WHEN smallmid THEN margin END)  AS sm_margin,
           TOTAL(margin)                              AS margin,
           TOTAL(CASE WHEN smallmid THEN support END) AS sm_support,
           TOTAL(support)                             AS support
    FROM per)
SELECT sm_margin  AS smallmid_margin_12m,
       margin     AS book_margin_12m,
       CASE WHEN margin > 0 THEN sm_margin / margin END    AS smallmid_margin_share,
       sm_support AS smallmid_support_12m,
       support    AS book_support_12m,
       CASE WHEN support > 0 THEN sm_support / support END AS smallmid_support_share
FROM tot
""",
)

PROVIDERS = (ORDER_RHYTHM, SUPPORT_SHARE)


@hookimpl
def register_rulesets():
    return [importlib.resources.files("kamrules_rulesets") / "neglected_small_clients.yaml"]


@hookimpl
def register_facts():
    return list(PROVIDERS)
