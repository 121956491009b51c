"""Defect recipes of neglected_small_clients for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

import datetime as dt

from kamrules.bookgen import BRAND, CITIES, Defect, Trap

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
    """A mis-tiered big earner that gets no support at all, in the book of one owner (a portfolio rule).
    Big enough (60-120 million a year) that the few a book of 200 carries at the default defect share
    lift the small and mid accounts' margin share past the limit."""

    kind, tiers, reserved_owner = "support_share", TIERS, True

    def yearly_revenue(self, acc, yearly):
        return acc.rng.uniform(6e7, 1.2e8)

    def margin_rate(self, acc):
        return acc.rng.uniform(0.25, 0.35)

    def after_orders(self, acc, orders, margin_rate):
        acc.recost(lambda a: None)
        return True


RECIPES = (NoRecentContact(), ContactDecay(), SilentChurn(), RisingStarUnattended(), SupportShare())


# -- healthy traps: accounts that look like trouble to a naive rule, and are not --------------------------


class SeasonalDealer(Trap):
    """A building-materials dealer that orders from March to November every year and goes quiet in winter
    (no orders; a call or an email now and then). Checked in January it is as silent as it was last January:
    not churning (the seasonal baseline compares with the same months a year earlier)."""

    kind, tiers, won_days_ago = "seasonal_dealer", TIERS, (800, 1800)
    quiet = (
        "silent_churn",
        "contact_decay",
        "no_recent_contact",
        "commitment_shortfall",
        "revenue_decline",
        "rising_star_unattended",
        "promotion_candidate",
    )

    def segment(self, acc, segment):
        rng = acc.rng
        acc.name = f"{rng.choice(CITIES)}{rng.choice(BRAND)}{rng.choice(BRAND)}建材经销有限公司"
        return "retail"

    def decaying(self, acc, day):
        return dt.date.fromordinal(day).month in (12, 1, 2)

    def extra_activities(self, acc, acts):
        # a call in mid-December and at the end of January: never longer without contact than its tier allows
        first = min((a[0] for a in acts), default=acc.as_of)
        for year in range(dt.date.fromordinal(first).year, dt.date.fromordinal(acc.as_of).year + 1):
            for day in (dt.date(year, 1, 31).toordinal(), dt.date(year, 12, 15).toordinal()):
                if first <= day <= acc.as_of:
                    acts.append([day, "call", "operational", acc.contacts[0][0], 15, None, 10.0, "淡季电话回访"])

    def after_orders(self, acc, orders, margin_rate):
        # no orders from December to February; the commitments and rebates follow the orders that remain
        orders[:] = [o for o in orders if dt.date.fromordinal(o[0]).month not in (12, 1, 2)]
        acc.rows["orders"] = [r for r in acc.rows["orders"] if r[2][5:7] not in ("12", "01", "02")]
        return False


TRAPS = (SeasonalDealer(),)
