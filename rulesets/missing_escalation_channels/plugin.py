"""Built-in plugin: the missing_escalation_channels rule set (one thread to the account) and its facts."""

from __future__ import annotations

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules_plugins.core_facts import JD, count_days, days_since

# Channels count from their `since` date (a channel set up after the as-of date
# did not exist yet); one without a date counts as always there.
# Key accounts only, like the rules here (KAM301-KAM305): on a big book the
# other 90% of the accounts would cost the scan and give facts no rule reads.
# +tier: the accounts are read by id (a check worker's range), not through the
# tier index, which would list the key accounts of the whole book in every part.
CHANNEL_COVERAGE = FactProvider(
    name="channel_coverage",
    description="Which standing channels (technical, management, complaint told to the client) a key account has.",
    requires=("channels",),
    facts=("missing_channels", "informed_complaint_channel", "complaint_channel_state"),
    sql="""
WITH ch AS (
    SELECT account_id,
           MAX(kind = 'technical')                              AS technical,
           MAX(kind = 'management')                             AS management,
           MAX(kind = 'complaint')                              AS complaint,
           MAX(kind = 'complaint' AND client_informed = 1)      AS informed
    FROM channels
    WHERE (since IS NULL OR since <= :as_of)
      AND account_id IN (SELECT id FROM accounts WHERE +tier = 'key')
    GROUP BY account_id)
SELECT a.id AS account_id,
       CASE WHEN ch.technical AND ch.management THEN NULL
            WHEN ch.technical THEN 'management'
            WHEN ch.management THEN 'technical'
            ELSE 'technical and management' END                 AS missing_channels,
       COALESCE(ch.informed, 0)                                 AS informed_complaint_channel,
       CASE WHEN ch.informed THEN 'a complaint channel the client knows of'
            WHEN ch.complaint THEN 'a complaint channel the client has not been told of'
            ELSE 'no complaint channel' END                     AS complaint_channel_state
FROM accounts a LEFT JOIN ch ON ch.account_id = a.id
WHERE +a.tier = 'key'
""",
)

# "Met" = an activity on or before the as-of date with an active decision-maker
# contact of the account. Never met: counted from created_on but never from before
# the activity records start (the book fact activities_start, in Python:
# count_days), else from the account's first activity (activity_summary's). A contact's
# activities are found through the contact_id index (the unary + keeps SQLite
# from scanning every activity of the account per decision maker instead).
# Key accounts only, like the rules here (see CHANNEL_COVERAGE).
DECISION_MAKERS = FactProvider(
    name="decision_makers",
    description="Active decision-maker contacts of a key account and the days since one of them was last met.",
    requires=("contacts", "activities"),
    facts=("decision_makers", "last_decision_maker_meeting"),
    inputs=("dm_met_days",),
    sql=f"""
WITH dm AS (
    SELECT c.id, c.account_id FROM accounts k JOIN contacts c ON c.account_id = k.id
    WHERE +k.tier = 'key' AND c.role = 'decision_maker' AND COALESCE(c.active, 1) = 1),
n AS (
    SELECT account_id, COUNT(*) AS n FROM dm GROUP BY account_id),
met AS (
    SELECT dm.account_id, MAX(x.date) AS last_on
    FROM dm CROSS JOIN activities x ON x.contact_id = dm.id AND +x.account_id = dm.account_id AND +x.date <= :as_of
    GROUP BY dm.account_id)
SELECT a.id AS account_id,
       COALESCE(n.n, 0) AS decision_makers,
       {days_since("met.last_on")} AS dm_met_days,
       COALESCE(met.last_on, 'never') AS last_decision_maker_meeting
FROM accounts a LEFT JOIN n ON n.account_id = a.id LEFT JOIN met ON met.account_id = a.id
WHERE +a.tier = 'key'
""",
    after=("activities_start", "activity_summary"),
    derive=lambda f: _decision_maker_days(f),
    derived=("days_since_decision_maker", "decision_maker_counted_from"),
)


def _decision_maker_days(f):
    if "last_decision_maker_meeting" not in f:  # not a key account
        return None
    # the account's first activity (no created_on): activity_summary's input act_first_days
    days, since = count_days(
        f, f["last_decision_maker_meeting"], f.get("dm_met_days"), f.get("created_on"), f.get("act_first_days")
    )
    return {
        "days_since_decision_maker": days,
        "decision_maker_counted_from": since.replace("none on record", "no meeting on record", 1),
    }


# Open complaints on the as-of date (opened by then, not closed by then), each judged against the
# limit of its severity (no severity: medium) and the account's tier, times escalated_factor once
# escalated. The limits are KAM306's thresholds (FactProvider params). Per account, the complaint
# to report: past its limit first, then the most severe, the furthest past its limit, the oldest.
OPEN_COMPLAINTS = FactProvider(
    name="open_complaints",
    description="Open complaints, each against the limit of its severity and the account's tier (longer once "
    "escalated), and the most urgent of them (severity, opened date, age, limit, escalated).",
    requires=("complaints",),
    facts=(
        "open_complaints",
        "overdue_complaints",
        "complaint_ref",
        "complaint_opened_on",
        "complaint_severity",
        "complaint_rank",
        "complaint_days",
        "complaint_limit_days",
        "complaint_overdue_days",
        "complaint_escalated",
        "complaint_state",
    ),
    params={
        "high_days_key": 3,
        "high_days": 7,
        "medium_days_key": 14,
        "medium_days": 30,
        "low_days_key": 28,
        "low_days": 60,
        "escalated_factor": 3,
    },
    sql=f"""
WITH k AS (
    SELECT c.account_id, c.id, c.opened_on, COALESCE(NULLIF(c.severity, ''), 'medium') AS sev,
           COALESCE(c.escalated, 0) = 1 AS esc, +a.tier = 'key' AS is_key,
           CAST({JD} - julianday(c.opened_on) AS INTEGER) AS age
    FROM complaints c JOIN accounts a ON a.id = c.account_id
    WHERE c.opened_on <= :as_of AND (c.closed_on IS NULL OR c.closed_on > :as_of)),
l AS (
    SELECT *, CASE sev WHEN 'high' THEN 3 WHEN 'low' THEN 1 ELSE 2 END AS rnk,
           CASE sev WHEN 'high' THEN IIF(is_key, :high_days_key, :high_days)
                    WHEN 'low'  THEN IIF(is_key, :low_days_key, :low_days)
                    ELSE IIF(is_key, :medium_days_key, :medium_days) END * IIF(esc, :escalated_factor, 1) AS lim
    FROM k),
r AS (
    SELECT *, COUNT(*) OVER acc AS n_open, SUM(age > lim) OVER acc AS n_over,
           ROW_NUMBER() OVER (PARTITION BY account_id
                              ORDER BY age > lim DESC, rnk DESC, CAST(age AS REAL) / lim DESC, opened_on, id) AS rn
    FROM l WINDOW acc AS (PARTITION BY account_id))
SELECT account_id,
       n_open    AS open_complaints,
       n_over    AS overdue_complaints,
       id        AS complaint_ref,
       opened_on AS complaint_opened_on,
       sev       AS complaint_severity,
       rnk       AS complaint_rank,
       age       AS complaint_days,
       lim       AS complaint_limit_days,
       age - lim AS complaint_overdue_days,
       esc       AS complaint_escalated,
       IIF(esc, 'escalated and still open', 'not escalated') AS complaint_state
FROM r WHERE rn = 1
""",
)

PROVIDERS = (CHANNEL_COVERAGE, DECISION_MAKERS, OPEN_COMPLAINTS)


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)
