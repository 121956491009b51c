"""Defect recipes of neglected_small_clients for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

from kamrules.bookgen import Defect

LONG = (760, 1800)  # two years of history: the trailing windows compare with the ones before
TIERS = ("mid", "small")


class NoRecentContact(Defect):
    kind, tiers, attended = "no_recent_contact", TIERS, False

    def activity_stop(self, acc, end):
        limit = 60 if acc.tier == "mid" else 120
        return acc.as_of - acc.rng.randint(limit + 30, limit + 200)


class ContactDecay(Defect):
    kind, tiers, won_days_ago, attended = "contact_decay", TIERS, LONG, False

    def decaying(self, acc, day):
        return day > acc.as_of - 183

    def extra_activities(self, acc, acts):
        acts.append(
            [acc.as_of - acc.rng.randint(1, 25), "call", "operational", acc.contacts[0][0], 15, None, 10.0, None]
        )


class SilentChurn(Defect):
    kind, tiers, won_days_ago = "silent_churn", TIERS, LONG

    def last_order(self, acc, gap):
        return acc.as_of - gap * acc.rng.randint(4, 8)


class RisingStarUnattended(Defect):
    kind, tiers, won_days_ago, attended = "rising_star_unattended", TIERS, LONG, False

    def no_visit(self, acc, day):
        return day > acc.as_of - 130

    def growth(self, acc, growth):
        return acc.rng.uniform(1.0, 1.6)

    def order_factor(self, acc, day, growth):
        return 1.0 if day <= acc.as_of - 365 else 1 + growth


class SupportShare(Defect):
    """A mis-tiered big earner that gets no support at all, in the book of one owner (a portfolio rule)."""

    kind, tiers, reserved_owner = "support_share", TIERS, True

    def yearly_revenue(self, acc, yearly):
        return acc.rng.uniform(2.5e7, 6e7)

    def margin_rate(self, acc):
        return acc.rng.uniform(0.25, 0.35)

    def after_orders(self, acc, orders, margin_rate):
        acc.recost(lambda a: None)
        return True


RECIPES = (NoRecentContact(), ContactDecay(), SilentChurn(), RisingStarUnattended(), SupportShare())
