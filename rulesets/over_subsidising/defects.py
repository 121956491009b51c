"""Defect recipes of over_subsidising for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

from kamrules.bookgen import Defect, iso

LONG = (760, 1800)  # two years of trade at least: the 12 months before need orders and concessions


class ConcessionRatio(Defect):
    kind, tiers, won_days_ago = "concession_ratio", ("key",), LONG

    def concession_rate(self, acc, healthy, drawn):
        return drawn


class UncommittedConcessions(Defect):
    kind, tiers, won_days_ago = "uncommitted_concessions", ("key",), LONG

    def extra_concessions(self, acc, last_year, commitment):
        rng, as_of = acc.rng, acc.as_of
        for _ in range(rng.randint(1, 3)):
            day = as_of - rng.randint(10, 300)
            acc.rows["concessions"].append(
                (
                    acc.next_id("R"),
                    acc.id,
                    iso(day),
                    rng.choice(("marketing_support", "free_service")),
                    round(last_year * rng.uniform(0.005, 0.02), 2),
                    None,
                )
            )


class CommitmentShortfall(Defect):
    kind, tiers, won_days_ago = "commitment_shortfall", ("key",), LONG
    commitment_target = 2.5

    def extra_concessions(self, acc, last_year, commitment):
        day = acc.as_of - acc.rng.randint(5, 40)
        acc.rows["concessions"].append(
            (acc.next_id("R"), acc.id, iso(day), "rebate", round(last_year * 0.01, 2), commitment(day))
        )


class ConcessionsOutpacingRevenue(Defect):
    kind, tiers, won_days_ago = "concessions_outpacing_revenue", ("key",), LONG

    def growth(self, acc, growth):
        return -0.25

    def quarter_rate(self, acc, end, rate):
        return 0.05 if end > acc.as_of - 365 else 0.03


class CostToServe(Defect):
    kind, tiers, won_days_ago = "cost_to_serve", ("small",), LONG

    def buyer(self, acc, buyer):
        return "transactional"

    def after_orders(self, acc, orders, margin_rate):
        as_of = acc.as_of
        margin_12m = sum(a for o, a in orders if o > as_of - 365) * margin_rate
        recent = [a for a in acc.acts if a[0] > as_of - 365] or acc.acts
        each = round(margin_12m * acc.rng.uniform(0.6, 0.9) / max(len(recent), 1), 2)
        acc.recost(lambda a: each if a[0] > as_of - 365 else a[6])
        return False


class NegativeNetMargin(Defect):
    kind, tiers, won_days_ago = "negative_net_margin", ("key",), LONG

    def margin_rate(self, acc):
        return acc.rng.uniform(0.02, 0.04)

    def concession_rate(self, acc, healthy, drawn):
        return 0.07


RECIPES = (
    ConcessionRatio(),
    UncommittedConcessions(),
    CommitmentShortfall(),
    ConcessionsOutpacingRevenue(),
    CostToServe(),
    NegativeNetMargin(),
)
