"""Defect recipes of missing_escalation_channels for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

from kamrules.bookgen import Defect, iso


class NoKaManager(Defect):
    kind, tiers, no_owner = "no_ka_manager", ("key",), True


class SingleThreaded(Defect):
    kind, tiers = "single_threaded", ("key",)

    def channel_kinds(self, acc, kinds):
        return [k for k in kinds if k != acc.rng.choice(("technical", "management"))]


class NoComplaintChannel(Defect):
    """No complaint channel, or one the customer was never told about (half and half)."""

    kind, tiers = "no_complaint_channel", ("key",)

    def channel_kinds(self, acc, kinds):
        if acc.rng.random() < 0.5:
            kinds.remove("complaint")
        return kinds

    def channel_informed(self, acc, kind):
        return kind != "complaint"


class NoExecutiveMeeting(Defect):
    kind, tiers = "no_executive_meeting", ("key",)

    def last_executive_meeting(self, acc):
        return acc.as_of - 250


class NoDecisionMaker(Defect):
    kind, tiers = "no_decision_maker", ("key",)

    def contact_roles(self, acc, roles):
        return ["executive" if r == "decision_maker" else r for r in roles]


class ComplaintUnresolved(Defect):
    kind = "complaint_unresolved"

    def extra_complaints(self, acc):
        rng = acc.rng
        acc.rows["complaints"].append(
            (
                acc.next_id("Q"),
                acc.id,
                iso(acc.as_of - rng.randint(35, 120)),
                None,
                rng.choice(("medium", "high")),
                False,
            )
        )


RECIPES = (
    NoKaManager(),
    SingleThreaded(),
    NoComplaintChannel(),
    NoExecutiveMeeting(),
    NoDecisionMaker(),
    ComplaintUnresolved(),
)
