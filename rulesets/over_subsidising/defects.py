"""Defect recipes of over_subsidising for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

import datetime as dt

from kamrules.bookgen import Defect, Trap, iso

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


# -- healthy traps: accounts that look like trouble to a naive rule, and are not --------------------------


class NewlyWonListingFee(Trap):
    """A key chain won 2-8 months ago: a one-off listing fee (进场费) paid at the start of a signed two-year
    volume commitment, which the account is ahead of (its pace is 1.25 times the pro-rated target), and
    quarterly rebates tied to the same commitment. Over its few months of trade the concessions are a large
    share of revenue (often more than the margin), but seed 000: the cost of developing a key account is spread
    over the purchases that follow. Quiet while the commitment is on track."""

    kind, tiers, won_days_ago = "newly_won_listing_fee", ("key",), (60, 240)
    quiet = (
        "concession_ratio",
        "negative_net_margin",
        "uncommitted_concessions",
        "commitment_shortfall",
        "concessions_outpacing_revenue",
        "satisfaction_overdue",
        "relationship_stuck",
        "relaxed_after_signing",
        "revenue_decline",
        "one_off_buyer",
    )

    def segment(self, acc, segment):
        return "retail"

    def after_orders(self, acc, orders, margin_rate):
        rng, as_of, start = acc.rng, acc.as_of, acc.won
        so_far = sum(a for o, a in orders)
        target = so_far / max(as_of - start, 1) * 730 * 0.8  # two years at 80 % of the pace so far
        cid = acc.next_id("K")
        acc.rows["commitments"].append(
            (
                cid,
                acc.id,
                iso(start),
                iso(start + 729),
                round(target, 2),
                True,
                f"进场协议{iso(start)[:4]}-{cid[-3:]}.pdf",
            )
        )
        fee = round(target * rng.uniform(0.05, 0.08), -3)
        acc.rows["concessions"].append(
            (acc.next_id("R"), acc.id, iso(start + rng.randint(0, 10)), "marketing_support", fee, cid)
        )
        rate = rng.uniform(0.02, 0.04)
        d = dt.date.fromordinal(start)
        y, q = d.year, (d.month - 1) // 3
        while True:  # the calendar quarter ends since the start
            q += 1
            if q == 4:
                y, q = y + 1, 0
            end = dt.date(y, 3 * q + 1, 1).toordinal() - 1
            if end > as_of:
                break
            revenue = sum(a for o, a in orders if end - 91 < o <= end)
            if revenue > 0:
                acc.rows["concessions"].append(
                    (acc.next_id("R"), acc.id, iso(end), "rebate", round(revenue * rate, 2), cid)
                )
        return True


TRAPS = (NewlyWonListingFee(),)
