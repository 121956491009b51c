"""Defect recipes of churn_signals for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

from kamrules.bookgen import Defect, iso

LONG = (760, 1800)  # two years of history: the year-earlier half-year is the account's own


class RevenueDecline(Defect):
    """Orders of the last 6 months at 30-45% of the year before's level (the year before grows as usual)."""

    kind, tiers, won_days_ago = "revenue_decline", ("key", "mid"), LONG

    def order_factor(self, acc, day, growth):
        factor = (1 + growth) ** ((day - acc.as_of) / 365)
        return factor * 0.38 if day > acc.as_of - 183 else factor


class SatisfactionOverdue(Defect):
    """A long-standing key account never surveyed (its survey-like contacts are events)."""

    kind, tiers, won_days_ago = "satisfaction_overdue", ("key",), LONG
    surveyed = False

    def edit_activities(self, acc, acts, stage_entered, end):
        for a in acts:
            if a[1] == "survey":
                a[1] = "event"
        return acts


class ComplaintsRising(Defect):
    """Four complaints in the last 6 months on top of the usual ones, none of them left open."""

    kind, tiers, won_days_ago = "complaints_rising", ("key", "mid"), LONG

    def extra_complaints(self, acc):
        rng, as_of = acc.rng, acc.as_of
        for _ in range(4):
            opened = as_of - rng.randint(20, 170)
            acc.rows["complaints"].append(
                (
                    acc.next_id("Q"),
                    acc.id,
                    iso(opened),
                    iso(opened + rng.randint(1, 10)),
                    rng.choice(("low", "medium")),
                    False,
                )
            )


RECIPES = (RevenueDecline(), SatisfactionOverdue(), ComplaintsRising())
