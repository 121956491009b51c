"""Defect recipes of key_account_qualification for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

import datetime as dt

from kamrules.bookgen import Defect, iso
from kamrules.vocab import STAGES


class OneOffBuyer(Defect):
    """A key account that bought in one calendar month 14-19 months ago and never again."""

    kind, tiers, won_days_ago = "one_off_buyer", ("key",), (620, 900)

    def after_orders(self, acc, orders, margin_rate):
        month = dt.date.fromordinal(acc.as_of - acc.rng.randint(430, 580)).replace(day=1).toordinal()
        rows = acc.rows["orders"]
        rows.clear()  # this account's rows only
        for day in (month + 2, month + 19):
            amount = round(acc.rng.uniform(5e6, 2e7), 2)
            rows.append((acc.next_id("O"), acc.id, iso(day), amount, round(amount * margin_rate, 2)))
        return True


class DistributedPurchasing(Defect):
    kind, tiers = "distributed_purchasing", ("key",)

    def purchasing(self, acc, purchasing):
        return "distributed"


class PromotionCandidate(Defect):
    """A mid account that earns more than most key accounts and orders every month."""

    kind, tiers, won_days_ago = "promotion_candidate", ("mid",), (500, 1800)

    def yearly_revenue(self, acc, yearly):
        return acc.rng.uniform(7e7, 9e7)


class BuyingCentreCoverage(Defect):
    """A key prospect in proposal or negotiation whose contacts are its decision maker, an executive and
    someone else: one of the four buying roles."""

    kind, tiers, statuses = "buying_centre_coverage", ("key",), ("prospect",)

    def contact_roles(self, acc, roles):
        return ["decision_maker", "executive", "other"]

    def prospect_stages(self, acc):
        return list(STAGES[: acc.rng.randint(6, 7)])


RECIPES = (OneOffBuyer(), DistributedPurchasing(), PromotionCandidate(), BuyingCentreCoverage())
