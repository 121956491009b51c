"""Built-in plugin: the over_subsidising rule set (concessions that buy nothing back) and its facts."""

from __future__ import annotations

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules_plugins.core_facts import JD

# Ratios across tables are derived in Python from the facts the core providers
# already computed (one scan per table), not by scanning the tables again.


def _ratios(f):
    revenue, given = f.get("revenue_12m"), f.get("concessions_12m")
    before = f.get("concessions_prev_12m")
    out = {}
    if revenue and revenue > 0 and given is not None:
        out["concession_ratio"] = given / revenue
        out["uncommitted_ratio"] = f.get("uncommitted_concessions_12m", 0.0) / revenue
    if before and before > 0 and given is not None:
        out["concessions_growth"] = (given - before) / before
    return out


SUBSIDY_RATIOS = FactProvider(
    name="subsidy_ratios",
    description="Concessions relative to revenue (12 months), and their growth on the 12 months before.",
    requires=("orders", "concessions"),
    after=("orders_summary", "concessions_summary"),
    derive=_ratios,
    derived=("concession_ratio", "uncommitted_ratio", "concessions_growth"),
)


def _net_margin(f):
    # margin_12m: 0 without orders in the window, missing when orders carry no margin (unknown)
    margin = f.get("margin_12m")
    if margin is None:
        return {}
    given = f.get("concessions_12m") or 0.0  # no concessions data: none given
    cost = f.get("service_cost_12m") or 0.0  # no activities data: no recorded cost
    return {
        "net_margin_12m": margin - given - cost,
        "net_margin_breakdown": f"margin {margin:,.0f} - concessions {given:,.0f} - service cost {cost:,.0f}",
        "cost_to_margin": cost / margin if margin > 0 else None,
    }


NET_MARGIN = FactProvider(
    name="net_margin",
    description="Margin minus concessions minus service cost over 12 months; service cost against margin.",
    requires=("orders",),
    after=("orders_summary", "concessions_summary", "activity_summary"),
    derive=_net_margin,
    derived=("net_margin_12m", "net_margin_breakdown", "cost_to_margin"),
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


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)
