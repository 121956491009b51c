"""Defect recipes of resource_mismatch for `kamrules generate`: one per rule, each makes its rule fire."""

from __future__ import annotations

from kamrules.bookgen import Defect, Trap

IN_PERSON = ("visit", "meeting", "presentation", "executive_meeting")
TIERS = ("mid", "small")
LONG = (400, 1800)


class ConsultativeUnvisited(Defect):
    """A consultative client served by phone and email only for 200-300 days."""

    kind, tiers, won_days_ago, attended = "consultative_unvisited", TIERS, LONG, False

    def buyer(self, acc, buyer):
        return "consultative"

    def edit_activities(self, acc, acts, stage_entered, end):
        since = acc.as_of - acc.rng.randint(200, 300)
        return [a for a in acts if not (a[0] > since and a[1] in IN_PERSON)]


class StrategicNoExecutive(Defect):
    """A strategic buyer whose executives last met ours 200-400 days ago."""

    kind, tiers, won_days_ago = "strategic_no_executive", TIERS, LONG

    def buyer(self, acc, buyer):
        return "strategic"

    def last_executive_meeting(self, acc):
        return acc.as_of - acc.rng.randint(200, 400)


class KeyVisitCadence(Defect):
    """A key account nobody has visited or met for 100-130 days (over every buyer type's cadence)."""

    kind, tiers, won_days_ago, key_visited = "key_visit_cadence", ("key",), LONG, False

    def edit_activities(self, acc, acts, stage_entered, end):
        since = acc.as_of - acc.rng.randint(100, 130)
        return [a for a in acts if not (a[0] > since and a[1] in IN_PERSON)]


RECIPES = (ConsultativeUnvisited(), StrategicNoExecutive(), KeyVisitCadence())


# -- healthy traps: accounts that look like trouble to a naive rule, and are not --------------------------


class RecordsStartLate(Trap):
    """A client on the books for 7-11 years whose records (stage history, activities, orders) start much
    later, as a CRM export does: no day count may start from created_on when it is years before the first
    record of the table it counts in. A consultative (key: strategic) buyer, served as it should be."""

    kind, won_days_ago = "records_start_late", (760, 1500)
    quiet = (
        "consultative_unvisited",
        "strategic_no_executive",
        "no_decision_maker",
        "no_executive_meeting",
        "no_recent_contact",
        "satisfaction_overdue",
        "relationship_stuck",
    )

    def buyer(self, acc, buyer):
        return "strategic" if acc.tier == "key" else "consultative"

    def created_on(self, acc, created):
        return acc.as_of - acc.rng.randint(2500, 4000)


TRAPS = (RecordsStartLate(),)
