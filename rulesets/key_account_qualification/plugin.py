"""Built-in plugin: the key_account_qualification rule set (who is really a key account) and its facts."""

from __future__ import annotations

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules_plugins.core_facts import M12

# Calendar months: "the last 12 months" are the as-of date's month and the 11 before it (the
# current month counts even if it has only begun), "the last 24" the same with 23 before.
MONTH0_12 = "date(:as_of, 'start of month', '-11 months')"
MONTH0_24 = "date(:as_of, 'start of month', '-23 months')"

# Months with orders of active accounts (the only ones judged here), from the (account_id, date)
# index alone: no table rows are read. Accounts with no order on or before the as-of date get no
# row, so no facts: they are never judged (an account still in a long tender has bought nothing).
# The accounts come first (x, MATERIALIZED): two index seeks each for the first and last order, then
# one index range per window; a scan of every order joined to its account, with both DISTINCT
# counts in one GROUP BY, cost twice as much (0.30 s against 0.15 s CPU at 10k).
ORDER_MONTHS = FactProvider(
    name="order_months",
    description="Calendar months with orders in the last 12 and 24 months (the as-of month included), the first order, the month of the last (active accounts with orders).",
    requires=("orders",),
    facts=("months_with_orders_12m", "months_with_orders_24m", "first_order_on", "last_order_month"),
    sql=f"""
WITH x AS MATERIALIZED (
    SELECT a.id AS account_id,
           (SELECT MIN(o.date) FROM orders o WHERE o.account_id = a.id AND o.date <= :as_of) AS first_on,
           (SELECT MAX(o.date) FROM orders o WHERE o.account_id = a.id AND o.date <= :as_of) AS last_on
    FROM accounts a WHERE +a.status = 'active')
SELECT x.account_id,
       (SELECT COUNT(DISTINCT substr(o.date, 1, 7)) FROM orders o
         WHERE o.account_id = x.account_id AND o.date >= {MONTH0_12} AND o.date <= :as_of) AS months_with_orders_12m,
       (SELECT COUNT(DISTINCT substr(o.date, 1, 7)) FROM orders o
         WHERE o.account_id = x.account_id AND o.date >= {MONTH0_24} AND o.date <= :as_of) AS months_with_orders_24m,
       x.first_on                                                                        AS first_order_on,
       substr(x.last_on, 1, 7)                                                           AS last_order_month
FROM x WHERE x.first_on IS NOT NULL
""",
)

# The book's top decile of trailing 12-month revenue: a whole-book fact (scope="book"), computed once
# per check over the whole store before the accounts, never from one worker's part. The book is the
# active accounts with revenue in the 12 months (the window of the core fact revenue_12m, which each
# account's own revenue is compared with); its top decile is its ceil(n / 10) highest earners, and
# the line is the revenue of the last of them (ties with it are in). It runs in the parent before the
# workers start (its time is not shared): one index range per active account over (account_id, date),
# not a scan of every order joined to its account (0.065 s against 0.17 s CPU at 10k).
BOOK_REVENUE_DECILE = FactProvider(
    name="book_revenue_decile",
    scope="book",
    description="The book's trailing 12-month revenue line of its top decile and the number of active accounts with revenue (whole book, once per check).",
    requires=("orders",),
    facts=("book_top_decile_revenue_12m", "book_buyers_12m"),
    sql=f"""
WITH buyers AS MATERIALIZED (
    SELECT TOTAL(o.amount) AS revenue
    FROM accounts a JOIN orders o ON o.account_id = a.id AND o.date > {M12} AND o.date <= :as_of
    WHERE +a.status = 'active'
    GROUP BY a.id
    HAVING revenue > 0),
n AS (SELECT COUNT(*) AS n FROM buyers)
SELECT (SELECT revenue FROM buyers ORDER BY revenue DESC LIMIT 1 OFFSET (SELECT (n + 9) / 10 - 1 FROM n)) AS book_top_decile_revenue_12m,
       (SELECT n FROM n)                                                                                  AS book_buyers_12m
""",
)

PROVIDERS = (ORDER_MONTHS, BOOK_REVENUE_DECILE)


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)

# The buying centre of a key account or key prospect (seed 003, 集体决策: technical experts, production,
# finance and purchasing all take part in a key account's decision): which of the four roles decision
# maker, technical, procurement and user its active contacts cover. One index range over contacts'
# account_id per key account that is not lost (a few rows each); the stage is the core fact pipeline_stage.
BUYING_ROLES = ("decision_maker", "technical", "procurement", "user")
_HAS = {
    r: f"EXISTS (SELECT 1 FROM contacts c WHERE c.account_id = a.id AND c.role = '{r}' AND COALESCE(c.active, 1) = 1)"
    for r in BUYING_ROLES
}
_MISSING = " || ".join(f"CASE WHEN NOT x.{r} THEN ', {r.replace('_', ' ')}' ELSE '' END" for r in BUYING_ROLES)

BUYING_CENTRE = FactProvider(
    name="buying_centre",
    description="Key accounts and key prospects (not lost): how many of the buying roles decision maker, technical, procurement and user their active contacts cover, and which are missing.",
    requires=("contacts",),
    facts=("buying_roles_covered", "buying_roles_missing", "active_contacts"),
    sql=f"""
WITH x AS MATERIALIZED (
    SELECT a.id AS account_id, {", ".join(f"{sql} AS {r}" for r, sql in _HAS.items())},
           (SELECT COUNT(*) FROM contacts c WHERE c.account_id = a.id AND COALESCE(c.active, 1) = 1) AS n
    FROM accounts a WHERE +a.tier = 'key' AND +a.status <> 'lost')
SELECT x.account_id,
       {" + ".join(f"x.{r}" for r in BUYING_ROLES)}       AS buying_roles_covered,
       NULLIF(substr({_MISSING}, 3), '')                  AS buying_roles_missing,
       x.n                                                AS active_contacts
FROM x
""",
)

ALL_PROVIDERS = (*PROVIDERS, BUYING_CENTRE)

# bound again with the providers added above (the binding before them saw only the first ones)
register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, ALL_PROVIDERS)
