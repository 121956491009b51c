"""Built-in plugin: the neglected_small_clients rule set (the book abandoned for the big names) and its facts."""

from __future__ import annotations

import importlib.resources

from kamrules import hookimpl
from kamrules.facts import FactProvider
from kamrules_plugins.core_facts import JD, M12

# Gaps between consecutive order days of active mid and small accounts (the
# accounts the rules here look at; it keeps the window work down on big books).
# Orders are read in (account_id, date) index order; several orders on one day
# are one purchase, so same-day gaps (0) are dropped. Accounts with a single
# order day have no gap and get no facts.
ORDER_RHYTHM = FactProvider(
    name="order_rhythm",
    description="Order days, the median gap between them, and the days since the last (active mid/small accounts).",
    requires=("orders",),
    facts=("order_count", "median_order_gap_days", "days_since_order", "last_order_on", "order_gap_ratio"),
    sql=f"""
WITH g AS (
    SELECT account_id, date,
           julianday(date) - julianday(LAG(date) OVER (PARTITION BY account_id ORDER BY date)) AS gap
    FROM orders
    WHERE date <= :as_of
      AND account_id IN (SELECT id FROM accounts WHERE status = 'active' AND tier IN ('mid', 'small'))),
r AS (
    SELECT account_id, date, gap,
           ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY gap) AS rn,
           COUNT(*)     OVER (PARTITION BY account_id)              AS n
    FROM g WHERE gap > 0),
m AS (
    SELECT account_id, MAX(n) + 1 AS order_count, MAX(date) AS last_on,
           AVG(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN gap END) AS median_gap
    FROM r GROUP BY account_id)
SELECT account_id,
       order_count,
       median_gap                                      AS median_order_gap_days,
       CAST({JD} - julianday(last_on) AS INTEGER)      AS days_since_order,
       last_on                                         AS last_order_on,
       ({JD} - julianday(last_on)) / median_gap        AS order_gap_ratio
FROM m
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
