"""Built-in plugin: the over_subsidising rule set (concessions that buy nothing back) and its facts."""

from __future__ import annotations

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules_plugins.core_facts import JD, M12, WON_ON

# Ratios across tables are derived in Python from the facts the core providers
# already computed (one scan per table), not by scanning the tables again.


def _ratios(f):
    revenue, given = f.get("revenue_12m"), f.get("concessions_12m")
    before = f.get("concessions_prev_12m")
    out = {}
    if given is not None:
        # development investment (a newly won account's concessions tied to a commitment on track) is not judged
        invested = min(f.get("development_concessions_12m") or 0.0, given)
        out["counted_concessions_12m"] = given - invested
        out["development_note"] = (
            f" (not counting {invested:,.0f} of development investment: tied to a commitment on track"
            f" at an account won on {f.get('won_on')})"
            if invested > 0
            else ""
        )
        if revenue and revenue > 0:
            out["concession_ratio"] = (given - invested) / revenue
    if revenue and revenue > 0 and f.get("uncommitted_deal_concessions_12m") is not None:
        out["uncommitted_ratio"] = f["uncommitted_deal_concessions_12m"] / revenue
    if before and before > 0 and given is not None:
        out["concessions_growth"] = (given - before) / before
    return out


SUBSIDY_RATIOS = FactProvider(
    name="subsidy_ratios",
    description="Concessions relative to revenue (12 months; a newly won account's development investment left out), "
    "and their growth on the 12 months before.",
    requires=("orders", "concessions"),
    after=("orders_summary", "concessions_summary", "commitment_progress", "won_date"),
    derive=_ratios,
    derived=(
        "counted_concessions_12m",
        "development_note",
        "concession_ratio",
        "uncommitted_ratio",
        "concessions_growth",
    ),
)


def _net_margin(f):
    # margin_12m: 0 without orders in the window, missing when orders carry no margin (unknown)
    margin = f.get("margin_12m")
    if margin is None:
        return {}
    given = f.get("concessions_12m") or 0.0  # no concessions data: none given
    invested = min(f.get("development_concessions_12m") or 0.0, given)
    cost = f.get("service_cost_12m") or 0.0  # no activities data: no recorded cost
    note = f" (not counting {invested:,.0f} of development investment)" if invested > 0 else ""
    return {
        "net_margin_12m": margin - (given - invested) - cost,
        "net_margin_breakdown": f"margin {margin:,.0f} - concessions {given - invested:,.0f}{note}"
        f" - service cost {cost:,.0f}",
        "cost_to_margin": cost / margin if margin > 0 else None,
    }


NET_MARGIN = FactProvider(
    name="net_margin",
    description="Margin minus concessions (less a newly won account's development investment) minus service cost "
    "over 12 months; service cost against margin.",
    requires=("orders",),
    after=("orders_summary", "concessions_summary", "activity_summary", "commitment_progress"),
    derive=_net_margin,
    derived=("net_margin_12m", "net_margin_breakdown", "cost_to_margin"),
)

# Progress of each signed commitment in force (target > 0, start <= as-of date <= end): orders since
# its start against its target pro-rated to the as-of date. The share of the target due is
#   seasonal, when the account has a year of order history before the start (its first order at
#   least 12 months before it, and revenue P in those 12 months): (whole years elapsed x P + P's
#   part up to the same day a year before the start) / (the same for the whole commitment), i.e.
#   for a one-year commitment the share of last year's revenue that fell in the span elapsed
#   (a dealer ordering March-November owes nothing in January);
#   linear otherwise (or when last year's same span had no revenue at all): days elapsed / days
#   in the commitment, both counted inclusive.
# Nothing due (a seasonal share of 0) is not behind. Anniversaries: k = whole years from the start to
# the day after the date (z); P's part runs from a year before the start to z shifted back k+1 years.
# Per account: the commitment furthest behind (KAM103) and, for an account won within
# :won_within_months, the concessions of the last 12 months tied to commitments on track
# (development investment, seed 000: KAM101, KAM106 do not count them).
COMMITMENT_PROGRESS = FactProvider(
    name="commitment_progress",
    description="The signed commitment in force that is furthest behind its target pro-rated to the as-of date "
    "(seasonally, by last year's orders, when the account has that much history); the concessions tied to "
    "commitments on track at an account won within :won_within_months (development investment).",
    requires=("commitments", "orders"),
    facts=(
        "commitment_ref",
        "commitment_target",
        "commitment_expected",
        "commitment_actual",
        "commitment_behind",
        "commitment_elapsed_days",
        "commitment_end",
        "commitment_pro_rating",
        "development_concessions_12m",
    ),
    params={"won_within_months": 12},
    sql=f"""
WITH live AS (
    SELECT m.id, m.account_id, m.start, m."end", m.target_amount,
           {JD} - julianday(m.start) + 1                    AS elapsed,
           julianday(m."end") - julianday(m.start) + 1      AS span,
           date(m.start, '-12 months')                      AS year_before,
           (SELECT MIN(f.date) FROM orders f WHERE f.account_id = m.account_id) AS first_order,
           {WON_ON} > date(:as_of, '-' || :won_within_months || ' months') AS newly_won,
           date(:as_of, '+1 day')                           AS zx,
           date(m."end", '+1 day')                          AS ze
    FROM commitments m JOIN accounts a ON a.id = m.account_id
    WHERE m.signed = 1 AND m.target_amount > 0 AND m.start <= :as_of AND m."end" >= :as_of),
years AS (
    SELECT *, yx - (date(start, '+' || yx || ' years') > zx) AS kx,
              ye - (date(start, '+' || ye || ' years') > ze) AS ke
    FROM (SELECT *, CAST(strftime('%Y', zx) AS INTEGER) - CAST(strftime('%Y', start) AS INTEGER) AS yx,
                    CAST(strftime('%Y', ze) AS INTEGER) - CAST(strftime('%Y', start) AS INTEGER) AS ye
          FROM live)),
cut AS (
    SELECT *, date(zx, '-' || (kx + 1) || ' years') AS cx, date(ze, '-' || (ke + 1) || ' years') AS ce FROM years),
sums AS (
    -- one index range per sum and commitment (a join of the orders grouped by commitment sorted them all)
    SELECT c.id, c.account_id, c."end", c.target_amount, c.elapsed, c.span, c.kx, c.ke, c.newly_won,
           c.first_order <= c.year_before                                    AS has_year,
           (SELECT TOTAL(o.amount) FROM orders o
            WHERE o.account_id = c.account_id AND o.date >= c.start AND o.date <= :as_of) AS actual,
           (SELECT TOTAL(o.amount) FROM orders o
            WHERE o.account_id = c.account_id AND o.date >= c.year_before AND o.date < c.start) AS last_year,
           (SELECT TOTAL(o.amount) FROM orders o
            WHERE o.account_id = c.account_id AND o.date >= c.year_before AND o.date < min(c.start, c.cx)) AS part_x,
           (SELECT TOTAL(o.amount) FROM orders o
            WHERE o.account_id = c.account_id AND o.date >= c.year_before AND o.date < min(c.start, c.ce)) AS part_e
    FROM cut c),
prog AS (
    SELECT *, CASE WHEN seasonal THEN (kx * last_year + part_x) / (ke * last_year + part_e)
                   ELSE elapsed / span END                                   AS share
    FROM (SELECT *, has_year AND last_year > 0 AND ke * last_year + part_e > 0 AS seasonal FROM sums)),
ranked AS (
    SELECT *, target_amount * share AS expected,
           CASE WHEN share > 0 THEN 1.0 - actual / (target_amount * share) END AS behind,
           ROW_NUMBER() OVER (PARTITION BY account_id
                              ORDER BY CASE WHEN share > 0 THEN 1.0 - actual / (target_amount * share) END DESC, id) AS rn
    FROM prog),
invested AS (
    SELECT r.account_id, TOTAL(c.amount) AS development
    FROM ranked r JOIN concessions c ON c.account_id = r.account_id AND c.date > {M12} AND c.date <= :as_of
                                        AND c.commitment_id = r.id
    WHERE r.newly_won AND r.actual >= r.expected
    GROUP BY r.account_id)
SELECT r.account_id,
       r.id                        AS commitment_ref,
       r.target_amount             AS commitment_target,
       r.expected                  AS commitment_expected,
       r.actual                    AS commitment_actual,
       r.behind                    AS commitment_behind,
       CAST(r.elapsed AS INTEGER)  AS commitment_elapsed_days,
       r."end"                     AS commitment_end,
       CASE WHEN r.seasonal
            THEN printf('pro-rated seasonally: %.0f%% of the target due, as in last year''s orders', 100.0 * r.share)
            ELSE printf('pro-rated linearly: %d of %d days', CAST(r.elapsed AS INTEGER), CAST(r.span AS INTEGER))
       END                         AS commitment_pro_rating,
       COALESCE(i.development, 0.0) AS development_concessions_12m
FROM ranked r LEFT JOIN invested i ON i.account_id = r.account_id
WHERE r.rn = 1
""",
)

PROVIDERS = (SUBSIDY_RATIOS, NET_MARGIN, COMMITMENT_PROGRESS)


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)
