"""Built-in plugin: the neglected_small_clients rule set (the book abandoned for the big names) and its facts."""

from __future__ import annotations

import datetime
from bisect import bisect_right
from itertools import pairwise

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules_plugins.core_facts import JD

# Gaps between consecutive order days of active mid and small accounts (the
# accounts the rules here look at; it keeps the work down on big books).
# Several orders on one day are one purchase. SQL lists each account's order
# dates (one pass over the (account_id, date) index, in account order: no sort,
# no DISTINCT); the distinct days, the gaps between them, in date order, and
# their median are computed in Python. Accounts with a single order day have no
# gap and get no facts. Seasonal buyers: order_gap_year_ago is the gap between the
# order days either side of the same date a year earlier (a dealer's winter
# break last year), missing without an order day on or before that date (less
# than a year of orders) or after it (silent for over a year).
ORDER_RHYTHM = FactProvider(
    name="order_rhythm",
    description="Order days, the median gap between them, and the days since the last (active mid/small accounts).",
    requires=("orders",),
    facts=("days_since_order", "last_order_on"),
    inputs=("order_dates",),
    sql=f"""
SELECT a.id                                                  AS account_id,
       CAST({JD} - julianday(MAX(o.date)) AS INTEGER)        AS days_since_order,
       MAX(o.date)                                           AS last_order_on,
       group_concat(o.date)                                  AS order_dates
FROM accounts a JOIN orders o ON o.account_id = a.id AND o.date <= :as_of
WHERE +a.status = 'active' AND +a.tier IN ('mid', 'small')
GROUP BY a.id
HAVING MIN(o.date) < MAX(o.date)
""",
    derive=lambda f: _gaps(f),
    derived=(
        "order_count",
        "order_gaps",
        "median_order_gap_days",
        "order_gap_ratio",
        "order_gap_year_ago",
        "order_season",
    ),
)


class _Days(dict):
    """ISO date -> proleptic ordinal, filled on first sight (a book has a few thousand distinct days)."""

    def __missing__(self, day: str) -> int:
        n = self[day] = datetime.date.fromisoformat(day).toordinal()
        return n


_DAY = _Days()


class _YearAgo(dict):
    """Ordinal of a date -> ordinal of the same date a year earlier (29 February -> 28 February)."""

    def __missing__(self, n: int) -> int:
        d = datetime.date.fromordinal(n)
        y = self[n] = d.replace(year=d.year - 1, day=min(d.day, 28) if d.month == 2 else d.day).toordinal()
        return y


_YEAR_AGO = _YearAgo()


def _gaps(f):
    dates = f.get("order_dates")
    if not dates:
        return {}
    ords = sorted(set(map(_DAY.__getitem__, dates.split(","))))  # distinct days, in order
    gaps = [b - a for a, b in pairwise(ords)]
    g = sorted(gaps)
    n = len(g)
    median = g[n // 2] if n % 2 else (g[n // 2 - 1] + g[n // 2]) / 2
    since = f["days_since_order"]
    k = bisect_right(ords, _YEAR_AGO[ords[-1] + since])  # order days on or before the date a year earlier
    year_ago = ords[k] - ords[k - 1] if 0 < k < len(ords) else None
    return {
        "order_count": len(ords),
        "order_gaps": " ".join(map(str, gaps)),
        "median_order_gap_days": median,
        "order_gap_ratio": since / median,
        "order_gap_year_ago": year_ago,
        "order_season": (
            "no year of orders to compare with"
            if year_ago is None
            else f"{'longer than' if since > year_ago else 'within'} the {year_ago}-day break over the same date a year earlier"
        ),
    }


# The whole book (active accounts): small and mid accounts' share of 12-month
# margin against their share of support (concessions + service cost). The
# per-account figures are the core facts (margin_12m, concessions_12m,
# service_cost_12m over the same trailing 12 months), so the totals are summed
# over them (over="account_facts") instead of rescanning three event tables; an
# account with orders that carry no margin counts 0, as does an empty table.
SUPPORT_SHARE = FactProvider(
    name="support_share",
    description="Small and mid accounts' share of the book's 12-month margin and of its support (concessions + service cost).",
    scope="portfolio",
    over="account_facts",
    requires=("orders", "concessions"),
    facts=(
        "smallmid_margin_12m",
        "book_margin_12m",
        "smallmid_support_12m",
        "book_support_12m",
    ),
    sql="""
SELECT CASE WHEN tier IN ('mid', 'small') THEN COALESCE(margin_12m, 0.0) END            AS smallmid_margin_12m,
       COALESCE(margin_12m, 0.0)                                                          AS book_margin_12m,
       CASE WHEN tier IN ('mid', 'small')
            THEN COALESCE(concessions_12m, 0.0) + COALESCE(service_cost_12m, 0.0) END     AS smallmid_support_12m,
       COALESCE(concessions_12m, 0.0) + COALESCE(service_cost_12m, 0.0)                   AS book_support_12m
FROM account_facts
WHERE status = 'active'
""",
    derive=lambda f: _shares(f),
    derived=("smallmid_margin_share", "smallmid_support_share"),
)


def _shares(f):
    out = {}
    if f["book_margin_12m"] > 0:
        out["smallmid_margin_share"] = f["smallmid_margin_12m"] / f["book_margin_12m"]
    if f["book_support_12m"] > 0:
        out["smallmid_support_share"] = f["smallmid_support_12m"] / f["book_support_12m"]
    return out


PROVIDERS = (ORDER_RHYTHM, SUPPORT_SHARE)


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)
