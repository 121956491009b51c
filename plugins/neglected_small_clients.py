"""Built-in plugin: the neglected_small_clients rule set (the book abandoned for the big names) and its facts."""

from __future__ import annotations

import importlib.resources

from kamrules import hookimpl
from kamrules.facts import FactProvider
from kamrules_plugins.core_facts import JD, M12

# Gaps between consecutive order days of active mid and small accounts (the
# accounts the rules here look at; it keeps the window work down on big books).
# Orders are read in (account_id, date) index order; several orders on one day
# are one purchase, so same-day gaps (0) are dropped. SQL lists the gaps; the
# median is taken in Python (cheaper than a second, sorting window in SQLite).
# Accounts with a single order day have no gap and get no facts.
ORDER_RHYTHM = FactProvider(
    name="order_rhythm",
    description="Order days, the median gap between them, and the days since the last (active mid/small accounts).",
    requires=("orders",),
    facts=("order_count", "days_since_order", "last_order_on", "order_gaps"),
    sql=f"""
WITH g AS (
    SELECT account_id, date,
           CAST(julianday(date) - julianday(LAG(date) OVER (PARTITION BY account_id ORDER BY date)) AS INTEGER) AS gap
    FROM orders
    WHERE date <= :as_of
      AND account_id IN (SELECT id FROM accounts WHERE status = 'active' AND tier IN ('mid', 'small')))
SELECT account_id,
       COUNT(*) + 1                                          AS order_count,
       CAST({JD} - julianday(MAX(date)) AS INTEGER)          AS days_since_order,
       MAX(date)                                             AS last_order_on,
       group_concat(gap, ' ')                                AS order_gaps
FROM g WHERE gap > 0
GROUP BY account_id
""",
    derive=lambda f: _median_gap(f),
    derived=("median_order_gap_days", "order_gap_ratio"),
)


def _median_gap(f):
    gaps = f.get("order_gaps")
    if not gaps:
        return {}
    g = sorted(int(x) for x in gaps.split())
    n = len(g)
    median = g[n // 2] if n % 2 else (g[n // 2 - 1] + g[n // 2]) / 2
    return {"median_order_gap_days": median, "order_gap_ratio": f["days_since_order"] / median}


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
