"""The domain's enumerations, defined once: tiers, severities, statuses, stages, kinds (see docs/data-contract.md)."""

from __future__ import annotations

TIERS = ("key", "mid", "small")
SEVERITIES = ("info", "warning", "critical")  # in rising order: a rank is an index
STATUSES = ("prospect", "active", "lost")
STAGES = ("research", "analysis", "contact", "visit", "presentation", "proposal", "negotiation", "won")  # pipeline order
RELATIONSHIP_STAGES = ("establish", "stabilize", "strengthen")
BUYER_TYPES = ("transactional", "consultative", "strategic")
PURCHASING = ("centralized", "distributed")
CONTACT_ROLES = ("decision_maker", "executive", "technical", "procurement", "user", "other")
CHANNEL_KINDS = ("ka_manager", "technical", "management", "complaint", "executive")
ACTIVITY_KINDS = ("visit", "call", "email", "meeting", "executive_meeting", "presentation", "proposal", "event", "survey", "other")
ACTIVITY_LEVELS = ("executive", "management", "operational")
ATTITUDES = ("warm", "neutral", "cold")
CONCESSION_KINDS = ("rebate", "discount", "marketing_support", "free_service", "extended_credit", "other")
COMPLAINT_SEVERITIES = ("low", "medium", "high")

