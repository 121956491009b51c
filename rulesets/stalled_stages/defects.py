"""Defect recipes of stalled_stages for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

from kamrules.bookgen import BRAND, CITIES, LOST_REASONS, Defect, Trap
from kamrules.vocab import STAGES

PROSPECT = ("prospect",)
ANY = ("active", "prospect")


class StageDwell(Defect):
    kind, statuses = "stage_dwell", PROSPECT

    def days_in_stage(self, acc, limit):
        return int(limit * acc.rng.uniform(1.5, 3))


class NoFollowUp(Defect):
    kind, statuses = "no_follow_up", PROSPECT  # the rule is for prospects and key accounts

    def edit_activities(self, acc, acts, stage_entered, end):
        rng = acc.rng
        v = acc.as_of - rng.randint(15, 60)
        acts = [a for a in acts if not v <= a[0] <= v + 7]
        acts.append(
            [v, "visit", "management", rng.choice(acc.contacts)[0], rng.randint(30, 90), "neutral", 400.0, None]
        )
        return acts


class IncompleteVisitRecord(Defect):
    kind, statuses = "incomplete_visit_record", PROSPECT  # the rule is for prospects and key accounts

    def edit_activities(self, acc, acts, stage_entered, end):
        rng = acc.rng
        v = acc.as_of - rng.randint(10, 50)
        acc.visit(v, acts, end, "neutral")
        visit = next(a for a in acts if a[0] == v and a[1] == "visit")
        visit[rng.choice((3, 4, 5))] = None
        return acts


class StageRegression(Defect):
    kind, statuses = "stage_regression", PROSPECT

    def prospect_path(self, acc, stages, entered, current, limit):
        return list(STAGES[:6]) + ["presentation"], acc.as_of - acc.rng.randint(10, 40), "presentation"


class StageSkipped(Defect):
    kind, statuses = "stage_skipped", PROSPECT

    def prospect_stages(self, acc):
        return ["research", "contact", acc.rng.choice(("proposal", "negotiation"))]

    def visits_prospect(self, acc, stages):
        return False


class ColdStreak(Defect):
    kind, statuses, ends_cold = "cold_streak", PROSPECT, True

    def prospect_path(self, acc, stages, entered, current, limit):
        entered = acc.as_of - acc.rng.randint(22, min(28, limit - 2) if limit > 24 else 24)
        return stages, entered, current

    def edit_activities(self, acc, acts, stage_entered, end):
        acts = [a for a in acts if a[0] <= stage_entered or a[5] is None]
        for k in range(acc.rng.randint(3, 4)):
            acc.visit(stage_entered + 3 + k * 5, acts, end, "cold")
        return acts


class LostWithoutReason(Defect):
    kind, statuses = "lost_without_reason", ("lost",)

    def lost_reason(self, acc):
        return None


class RelationshipStuck(Defect):
    kind, tiers, won_days_ago = "relationship_stuck", ("key",), (420, 900)

    def relationship(self, acc, age):
        return "establish"


class LostReasonPattern(Defect):
    """One owner (the reserved one) lost this account and every other healthy lost account of the book
    (``claims_lost``), all for the same reason: a portfolio rule, per owner."""

    kind, statuses, reserved_owner, once, claims_lost = "lost_reason_pattern", ("lost",), True, True, True
    REASON = "价格不具竞争力"

    def lost_reason(self, acc):
        acc.rng.choice(LOST_REASONS)  # drawn as the default draws it: the account's later rows stay as they were
        return self.REASON


RECIPES = (
    StageDwell(),
    NoFollowUp(),
    IncompleteVisitRecord(),
    StageRegression(),
    StageSkipped(),
    ColdStreak(),
    LostWithoutReason(),
    RelationshipStuck(),
    LostReasonPattern(),
)


# -- healthy traps: accounts that look like trouble to a naive rule, and are not --------------------------

FOLLOW_UP_NOTE = "拜访后电话跟进"  # the builder's follow-up calls after a visit


class LongKeyTender(Trap):
    """A bank head office's tender, 70-95 days into negotiation. Seeds 002 and 003: the bigger the purchase,
    the longer the decision; a key account's stage limits are twice the others' (negotiation: 120 days)."""

    kind, tiers, statuses = "long_key_tender", ("key",), PROSPECT
    quiet = (
        "stage_dwell",
        "no_follow_up",
        "incomplete_visit_record",
        "cold_streak",
        "stage_regression",
        "stage_skipped",
    )

    def segment(self, acc, segment):
        rng = acc.rng
        acc.name = f"{rng.choice(CITIES)}{rng.choice(BRAND)}{rng.choice(BRAND)}银行总行"
        return "finance"

    def prospect_stages(self, acc):
        return list(STAGES[:7])  # research ... negotiation

    def days_in_stage(self, acc, limit):
        return acc.rng.randint(70, 95)


class ServedMidAccount(Trap):
    """An established mid or small client on a routine round of visits: no follow-up call within a week of
    any visit, and the latest visit's record lacks the attitude. Seed 002's one-week follow-up (and its visit
    record form) are for development visits: prospects and key accounts."""

    kind, tiers = "served_mid_account", ("mid", "small")
    quiet = ("no_follow_up", "incomplete_visit_record", "no_recent_contact", "contact_decay", "consultative_unvisited")

    def edit_activities(self, acc, acts, stage_entered, end):
        rng = acc.rng
        v = acc.as_of - rng.randint(15, 60)
        acts = [a for a in acts if a[7] != FOLLOW_UP_NOTE and not v <= a[0] <= v + 7]
        acts.append(
            [v, "visit", "operational", rng.choice(acc.contacts)[0], rng.randint(30, 90), None, 300.0, "例行拜访"]
        )
        return acts


TRAPS = (LongKeyTender(), ServedMidAccount())
