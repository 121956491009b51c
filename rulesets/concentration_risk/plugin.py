"""Built-in plugin: the concentration_risk rule set (a book hanging on one account) and its facts."""

from __future__ import annotations

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules_plugins.core_facts import JD, M12, WON_ON

# Accounts reported by REVENUE_SHARES: those holding at least this share of the
# book's or of their owner's trailing 12-month revenue. At most 1/FLOOR accounts
# per book, so the rows stay few on any book; a threshold below it cannot fire.
FLOOR = 0.10

# Each account's share of the whole book's trailing 12-month revenue (active
# accounts) and of its owner's book, computed once per check over the whole
# store (a portfolio provider: the parent runs it, never a worker that sees only
# its part of the accounts). One row per account at or above FLOOR in either
# book, keyed by the account (scope_key) and carrying account_id, so that the
# alert is on that account and reaches its owner. The revenue is one index range
# per active account over (account_id, date); the book and owner totals are window
# sums over those few thousand rows (no join back).
REVENUE_SHARES = FactProvider(
    name="revenue_shares",
    description=f"Accounts holding at least {FLOOR:.0%} of the book's or of their owner's trailing 12-month revenue (active accounts), with both shares.",
    scope="portfolio",
    requires=("orders",),
    facts=(
        "account_tier",
        "account_revenue_12m",
        "book_revenue_12m",
        "book_accounts",
        "book_share",
        "owner_revenue_12m",
        "owner_accounts",
        "owner_share",
    ),
    sql=f"""
WITH r AS (
    SELECT a.id, a.name, a.tier, a.owner, a.owner_email, NULLIF(TRIM(a.owner), '') AS owned_by,
           TOTAL(o.amount) AS rev
    FROM accounts a JOIN orders o ON o.account_id = a.id AND o.date > {M12} AND o.date <= :as_of
    WHERE +a.status = 'active'
    GROUP BY a.id HAVING rev > 0),
s AS (
    SELECT r.*, SUM(rev) OVER () AS book_total, COUNT(*) OVER () AS book_n,
           CASE WHEN owned_by IS NOT NULL THEN SUM(rev) OVER (PARTITION BY owned_by) END   AS owner_total,
           CASE WHEN owned_by IS NOT NULL THEN COUNT(*) OVER (PARTITION BY owned_by) END   AS owner_n
    FROM r)
SELECT id AS scope_key, id AS account_id, name AS account_name, owner, owner_email,
       tier AS account_tier, rev AS account_revenue_12m,
       book_total AS book_revenue_12m, book_n AS book_accounts, rev / book_total AS book_share,
       owner_total AS owner_revenue_12m, owner_n AS owner_accounts, rev / owner_total AS owner_share
FROM s
WHERE rev >= {FLOOR} * book_total OR rev >= {FLOOR} * owner_total
ORDER BY id
""",
)

# The latest signed commitment of an active account that had started by the
# as-of date, and the account's activities in the D days since its start against
# the D days just before it (D = its age in days, the start day counted). The
# earlier span must lie within the relationship (won on or before its first
# day; won date as the core fact won_on): otherwise the courting before the win
# would be compared with the routine after it, and the ratio is left out.
# m, s and n are MATERIALIZED: inlined, SQLite repeats each seek once per use of its result. The won
# date is looked up in s, only for the accounts with a signed commitment (not every active account).
SIGNING_ACTIVITY = FactProvider(
    name="signing_activity",
    description="The latest signed commitment that has started, its age, and the activities in the days since its start against as many days before it.",
    requires=("commitments", "activities"),
    facts=(
        "signed_commitment",
        "signed_commitment_start",
        "days_since_signing",
        "activities_since_signing",
        "activities_before_signing",
        "signing_activity_ratio",
    ),
    sql=f"""
WITH m AS MATERIALIZED (
    SELECT a.id AS account_id,
           (SELECT c.rowid FROM commitments c
             WHERE c.account_id = a.id AND c.signed = 1 AND c.start <= :as_of
             ORDER BY c.start DESC, c.id DESC LIMIT 1) AS cref
    FROM accounts a WHERE +a.status = 'active'),
s AS MATERIALIZED (
    SELECT m.account_id, {WON_ON} AS won_on, c.id, c.start,
           CAST({JD} - julianday(c.start) AS INTEGER) AS age,
           date(c.start, '-' || (CAST({JD} - julianday(c.start) AS INTEGER) + 1) || ' days') AS before_from
    FROM m JOIN commitments c ON c.rowid = m.cref JOIN accounts a ON a.id = m.account_id),
n AS MATERIALIZED (
    SELECT s.*,
           (SELECT COUNT(*) FROM activities x
             WHERE x.account_id = s.account_id AND x.date >= s.start AND x.date <= :as_of) AS since,
           (SELECT COUNT(*) FROM activities x
             WHERE x.account_id = s.account_id AND x.date >= s.before_from AND x.date < s.start) AS prior
    FROM s)
SELECT account_id, id AS signed_commitment, start AS signed_commitment_start, age AS days_since_signing,
       since AS activities_since_signing, prior AS activities_before_signing,
       CASE WHEN prior > 0 AND won_on <= before_from THEN CAST(since AS REAL) / prior END AS signing_activity_ratio
FROM n
""",
)

PROVIDERS = (REVENUE_SHARES, SIGNING_ACTIVITY)


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)

# Each owner's book of active accounts by tier (seed 000: one person cannot manage key accounts and
# small and mid clients at once), computed once per check over the whole store (a portfolio provider:
# the parent runs it, never a worker that sees only its part). One row per owner (trimmed name) that
# holds both a key account and a small one; the alert goes to that owner. One pass over accounts.
OWNER_MIX = FactProvider(
    name="owner_mix",
    description="Per owner holding both: active key, mid and small accounts in the book, and the small ones' share.",
    scope="portfolio",
    requires=(),
    facts=(
        "owner_key_accounts",
        "owner_mid_accounts",
        "owner_small_accounts",
        "owner_active_accounts",
        "owner_small_share",
    ),
    sql="""
WITH b AS (
    SELECT NULLIF(TRIM(owner), '') AS owned_by, owner, owner_email, tier
    FROM accounts WHERE +status = 'active')
SELECT 'owner:' || owned_by AS scope_key, MIN(owner) AS owner, MAX(owner_email) AS owner_email,
       SUM(tier = 'key')   AS owner_key_accounts,
       SUM(tier = 'mid')   AS owner_mid_accounts,
       SUM(tier = 'small') AS owner_small_accounts,
       COUNT(*)            AS owner_active_accounts,
       CAST(SUM(tier = 'small') AS REAL) / COUNT(*) AS owner_small_share
FROM b WHERE owned_by IS NOT NULL
GROUP BY owned_by
HAVING SUM(tier = 'key') > 0 AND SUM(tier = 'small') > 0
ORDER BY owned_by
""",
)

ALL_PROVIDERS = (*PROVIDERS, OWNER_MIX)

# bound again with the providers added above (the binding before them saw only the first ones)
register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, ALL_PROVIDERS)
