"""Defect recipes of concentration_risk for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

from kamrules.bookgen import Defect

LONG = (760, 1800)  # two years of history: the days before the current commitment are within the relationship


class RevenueConcentration(Defect):
    """One key account per book, 600-900 million a year: most of its owner's book (KAM602; on a small
    book also of the whole book, KAM601). Only one per book (``once``): two in one owner's book would
    share it. A big buyer on a thin margin and modest rebates, so that the rest of the book's margin
    shares (support_share) stay as they were."""

    kind, tiers, won_days_ago, once = "revenue_concentration", ("key",), LONG, True

    def yearly_revenue(self, acc, yearly):
        return acc.rng.uniform(6e8, 9e8)

    def margin_rate(self, acc):
        return acc.rng.uniform(0.05, 0.06)

    def concession_rate(self, acc, healthy, drawn):
        return min(healthy, 0.02)


class RelaxedAfterSigning(Defect):
    """Contacts thin out to one in five once the current commitment has started."""

    kind, tiers, won_days_ago = "relaxed_after_signing", ("key", "mid"), LONG

    def extra_concessions(self, acc, last_year, commitment):
        # the commitments are drawn after the activities: thin the written activity rows now
        start = max(row[2] for row in acc.rows["commitments"])
        rows = acc.rows["activities"]
        after = [i for i, row in enumerate(rows) if row[2] >= start]
        drop = {i for n, i in enumerate(after) if n % 5}
        acc.rows["activities"] = [row for i, row in enumerate(rows) if i not in drop]


class MixedBook(Defect):
    """A key account in the book of an owner of mid and small accounts (a portfolio rule, per owner)."""

    kind, tiers, won_days_ago, mixed_owner = "mixed_book", ("key",), LONG, True


RECIPES = (RevenueConcentration(), RelaxedAfterSigning(), MixedBook())
