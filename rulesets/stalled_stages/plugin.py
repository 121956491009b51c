"""Built-in plugin: the stalled_stages rule set (development that stopped moving) and its facts."""

from __future__ import annotations

import datetime

from kamrules.facts import FactProvider
from kamrules.rulesetpkg import package_hooks
from kamrules.vocab import STAGES  # noqa: E402
from kamrules_plugins.core_facts import JD

# The visits' look-back window: the rules' threshold visit_window_months (FactProvider params)
VISIT_WINDOW = "date(:as_of, '-' || :visit_window_months || ' months')"


def stage_rank(expr: str) -> str:
    """SQL: the position (1..8) of the pipeline stage ``expr``."""
    whens = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STAGES, 1))
    return f"(CASE {expr} {whens} END)"


# The pipeline stage on the as-of date. stage_history is the authority for an
# account that has rows in it: the latest entry on or before the as-of date
# (ties on one day: the later stage), none if all entries are later. Other
# accounts fall back on accounts.stage / stage_since, unless stage_since is
# after the as-of date (then the stage on that date is unknown).
# Two index seeks per account on (account_id, entered_on), no sort of the table.
CURRENT_STAGE_CTES = f"""
x AS (
    SELECT a.id, a.stage, a.stage_since,
           EXISTS (SELECT 1 FROM stage_history h WHERE h.account_id = a.id) AS has_history,
           (SELECT h.rowid FROM stage_history h WHERE h.account_id = a.id AND h.entered_on <= :as_of
             ORDER BY h.entered_on DESC, {stage_rank("h.stage")} DESC LIMIT 1) AS latest
    FROM accounts a),
cur AS (
    SELECT x.id AS account_id,
           CASE WHEN x.has_history THEN h.stage WHEN x.stage_since > :as_of THEN NULL ELSE x.stage END AS stage,
           CASE WHEN x.has_history THEN h.entered_on WHEN x.stage_since > :as_of THEN NULL ELSE x.stage_since END
               AS stage_since
    FROM x LEFT JOIN stage_history h ON h.rowid = x.latest)
"""

PIPELINE_STAGE = FactProvider(
    name="pipeline_stage",
    description="The pipeline stage on the as-of date, since when, and for how many days.",
    requires=(),
    facts=("pipeline_stage", "pipeline_stage_since", "stage_dwell_days"),
    sql=f"""
WITH {CURRENT_STAGE_CTES}
SELECT account_id,
       stage                                              AS pipeline_stage,
       stage_since                                        AS pipeline_stage_since,
       CAST({JD} - julianday(stage_since) AS INTEGER)     AS stage_dwell_days
FROM cur WHERE stage IS NOT NULL
""",
)

# Visits in the last 6 months, in one pass (seed 002 六.5, 《目标客户访问记录表》):
# * for each visit, the wait until the next follow-up (call, visit, meeting or
#   executive meeting on a LATER day), or, with none yet, the days elapsed to the
#   as-of date; the longest wait is kept (ties: the later visit). A visit whose
#   follow-up week is not over has waited at most 7 days, so a 7-day limit cannot
#   fire on it. The follow-up is an index seek on (account_id, date) per visit;
# * how many visit records lack who was met (contact_id), how long
#   (duration_minutes > 0) or the attitude.
# The visits are found by one index range seek per account (the last 6 months,
# not a scan of every activity), and f is MATERIALIZED so that the follow-up
# seek runs once per visit (inlined, SQLite repeats it for each use of next_jd).
# The longest wait is picked with SQLite's bare-column MAX(): one aggregate, no
# window sort. Waits are whole days (both ends are dates), so the key
# wait * 100000 + (julian day - 2400000) orders by wait, then by visit day.
VISITS = FactProvider(
    name="visits",
    description="Visits of the look-back window (:visit_window_months, default 6): the longest wait for a follow-up, "
    "and the records lacking a contact, duration or attitude (the latest such visit: when, by whom, what).",
    requires=("activities",),
    facts=(
        "follow_up_gap_days",
        "unfollowed_visit_on",
        "follow_up_note",
        "visits_6m",
        "incomplete_visits_6m",
        "incomplete_visit_fields",
        "incomplete_visit_on",
        "incomplete_visit_by",
    ),
    params={"visit_window_months": 6},
    sql=f"""
WITH f AS MATERIALIZED (
    SELECT v.account_id, v.date, julianday(v.date) AS jd, v.by,
           julianday((SELECT n.date FROM activities n
                      WHERE n.account_id = v.account_id AND n.date > v.date AND n.date <= :as_of
                        AND n.kind IN ('visit', 'call', 'meeting', 'executive_meeting')
                      ORDER BY n.date LIMIT 1)) AS next_jd,
           NULLIF(TRIM(v.contact_id), '') IS NULL   AS no_contact,
           COALESCE(v.duration_minutes, 0) <= 0     AS no_duration,
           NULLIF(TRIM(v.attitude), '') IS NULL     AS no_attitude
    FROM accounts a CROSS JOIN activities v
         ON v.account_id = a.id AND v.date <= :as_of AND v.date > {VISIT_WINDOW}
    WHERE v.kind = 'visit'),
g AS (
    SELECT account_id,
           MAX((COALESCE(next_jd, {JD}) - jd) * 100000 + (jd - 2400000)) AS longest,
           date, next_jd, COALESCE(next_jd, {JD}) - jd AS gap,
           COUNT(*)                                       AS visits,
           SUM(no_contact OR no_duration OR no_attitude)  AS incomplete
    FROM f GROUP BY account_id),
h AS (  -- the latest incomplete visit (ties on a day: any one of them)
    SELECT account_id, MAX(jd), date, by, no_contact, no_duration, no_attitude
    FROM f WHERE no_contact OR no_duration OR no_attitude GROUP BY account_id)
SELECT g.account_id,
       CAST(gap AS INTEGER) AS follow_up_gap_days,
       g.date               AS unfollowed_visit_on,
       CASE WHEN next_jd IS NULL THEN 'no follow-up yet'
            ELSE 'the first follow-up came on ' || date(next_jd) END AS follow_up_note,
       visits               AS visits_6m,
       incomplete           AS incomplete_visits_6m,
       h.date               AS incomplete_visit_on,
       COALESCE(NULLIF(TRIM(h.by), ''), 'someone unrecorded') AS incomplete_visit_by,
       CASE h.no_contact * 4 + h.no_duration * 2 + h.no_attitude
            WHEN 7 THEN 'contact, duration or attitude' WHEN 6 THEN 'contact or duration'
            WHEN 5 THEN 'contact or attitude' WHEN 4 THEN 'contact' WHEN 3 THEN 'duration or attitude'
            WHEN 2 THEN 'duration' WHEN 1 THEN 'attitude'
       END AS incomplete_visit_fields
FROM g LEFT JOIN h ON h.account_id = g.account_id
""",
)

# Moves in stage_history up to the as-of date: the latest move back to an
# earlier stage, and the stages missing before the account first reached
# proposal or later (analysis and visit must come first, seed 001).
# SQL lists each account's entries (one pass over the (account_id, entered_on)
# index); the moves are followed in Python, in (entered_on, stage order) order,
# which costs less than two window sorts over the whole history.
STAGE_MOVES = FactProvider(
    name="stage_moves",
    description="The latest move back to an earlier stage, and analysis/visit skipped before the proposal.",
    requires=("stage_history",),
    facts=(),
    inputs=("stage_path", "stage_path_as_of"),
    sql=f"""
SELECT account_id, group_concat(entered_on || ' ' || COALESCE({stage_rank("stage")}, 0) || stage, ',') AS stage_path,
       :as_of AS stage_path_as_of
FROM stage_history WHERE entered_on <= :as_of
GROUP BY account_id
""",
    derive=lambda f: _stage_moves(f),
    derived=("days_since_regression", "regressed_on", "regressed_from", "regressed_to", "skipped_stages"),
)


def _stage_moves(f):
    path = f.get("stage_path")
    if not path:
        return {}
    # "entered_on RANKstage" (rank 1-8, 0 for an unknown stage): in text order by day, then by
    # stage order within the day (an unknown stage first)
    back = None
    prev_r = prev_st = None
    proposal_on = analysis_on = visit_on = None
    for e in sorted(path.split(",")):
        d, _, st = e.partition(" ")
        r, st = st[:1], st[1:]
        if r != "0":
            r = int(r)
            if prev_r is not None and r < prev_r:
                back = (d, prev_st, st)  # the latest move back wins
            if r >= 6 and proposal_on is None:
                proposal_on = d
            if r == 2 and analysis_on is None:
                analysis_on = d
            elif r == 4 and visit_on is None:
                visit_on = d
        else:
            r = None
        prev_r, prev_st = r, st
    out = {}
    if proposal_on is not None:
        no_analysis = not (analysis_on is not None and analysis_on <= proposal_on)
        no_visit = not (visit_on is not None and visit_on <= proposal_on)
        skipped = (
            "analysis and visit"
            if no_analysis and no_visit
            else "analysis"
            if no_analysis
            else "visit"
            if no_visit
            else None
        )
        if skipped:
            out["skipped_stages"] = skipped
    if back is not None:
        as_of = datetime.date.fromisoformat(f["stage_path_as_of"])
        out["days_since_regression"] = (as_of - datetime.date.fromisoformat(back[0])).days
        out["regressed_on"], out["regressed_from"], out["regressed_to"] = back
    return out


# The run of most recent recorded attitudes that are all cold, counting only
# those in the current pipeline stage (so the stage has not advanced during it).
# c: the accounts whose latest recorded attitude is cold, by one backward index
# seek per account (a few rows each, not every activity of the book); w: of
# those, the ones whose latest cold day is after their latest other attitude
# (several attitudes on that day: not a streak), and that day. Only for those
# are the cold ones counted and the stage start looked up (index seeks), with the
# same rules as CURRENT_STAGE_CTES. MATERIALIZED and CROSS JOIN keep SQLite from
# turning this back into a scan of all activities (0.2 s instead of 0.04 s at 10k).
COLD_STREAK = FactProvider(
    name="cold_streak",
    description="How many of the latest recorded attitudes in the current stage are cold in a row.",
    requires=("activities",),
    facts=("cold_streak", "cold_since"),
    sql="""
WITH c AS MATERIALIZED (
    SELECT a.id FROM accounts a
    WHERE (SELECT x.attitude FROM activities x
           WHERE x.account_id = a.id AND x.date <= :as_of AND x.attitude IS NOT NULL
           ORDER BY x.date DESC LIMIT 1) = 'cold'),
w AS (
    SELECT account_id, MAX(CASE WHEN attitude <> 'cold' THEN date END) AS warm_on
    FROM c CROSS JOIN activities ON account_id = c.id
    WHERE attitude IS NOT NULL AND date <= :as_of
    GROUP BY account_id
    HAVING MAX(CASE WHEN attitude = 'cold' THEN date END) > COALESCE(MAX(CASE WHEN attitude <> 'cold' THEN date END), '')),
since AS (
    SELECT w.account_id, w.warm_on,
           CASE WHEN EXISTS (SELECT 1 FROM stage_history x WHERE x.account_id = w.account_id)
                THEN (SELECT MAX(x.entered_on) FROM stage_history x
                      WHERE x.account_id = w.account_id AND x.entered_on <= :as_of)
                ELSE (SELECT CASE WHEN a.stage_since <= :as_of THEN a.stage_since END
                      FROM accounts a WHERE a.id = w.account_id) END AS stage_since
    FROM w)
SELECT s.account_id,
       COUNT(*)    AS cold_streak,
       MIN(x.date) AS cold_since
FROM since s JOIN activities x ON x.account_id = s.account_id AND x.date <= :as_of
WHERE x.attitude = 'cold' AND (s.warm_on IS NULL OR x.date > s.warm_on)
  AND (s.stage_since IS NULL OR x.date >= s.stage_since)
GROUP BY s.account_id
""",
)

PROVIDERS = (PIPELINE_STAGE, VISITS, STAGE_MOVES, COLD_STREAK)


register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, PROVIDERS)

# Lost accounts per owner in the look-back window (the rule threshold lost_window_months, default 12),
# and their loss reasons (seed 002 七.2: the reasons a development failed are analysed, summarised and
# filed by kind). The store has no date of loss: an account counts as lost on its last dated record on
# or before the as-of date (its stage_since, its latest stage_history entry, its latest activity; a lost
# account has none after it was lost), and one with no dated record at all is not counted. Computed once
# per check over the whole store (portfolio: the parent runs it), two index seeks per lost account; one
# row per owner with a loss in the window, addressed to that owner. The top reason is the commonest
# (ties: the first in text order); shares are of all the owner's losses in the window.
LOST_REASONS = FactProvider(
    name="lost_reasons",
    description="Per owner: accounts lost in the look-back window (:lost_window_months, default 12; lost on their last dated record), the commonest loss reason and its share, and the losses with no reason.",
    scope="portfolio",
    requires=(),
    facts=(
        "owner_lost",
        "owner_lost_no_reason",
        "lost_no_reason_share",
        "top_lost_reason",
        "top_lost_reason_count",
        "top_lost_reason_share",
    ),
    params={"lost_window_months": 12},
    sql="""
WITH l AS MATERIALIZED (
    SELECT NULLIF(TRIM(a.owner), '') AS owned_by, a.owner, a.owner_email, NULLIF(TRIM(a.lost_reason), '') AS reason,
           NULLIF(MAX(COALESCE(CASE WHEN a.stage_since <= :as_of THEN a.stage_since END, ''),
                      COALESCE((SELECT MAX(h.entered_on) FROM stage_history h
                                 WHERE h.account_id = a.id AND h.entered_on <= :as_of), ''),
                      COALESCE((SELECT MAX(v.date) FROM activities v
                                 WHERE v.account_id = a.id AND v.date <= :as_of), '')), '') AS lost_on
    FROM accounts a WHERE +a.status = 'lost'),
w AS MATERIALIZED (
    SELECT * FROM l
    WHERE owned_by IS NOT NULL AND lost_on > date(:as_of, '-' || :lost_window_months || ' months')),
r AS MATERIALIZED (SELECT owned_by, reason, COUNT(*) AS n FROM w WHERE reason IS NOT NULL GROUP BY owned_by, reason),
g AS (
    SELECT owned_by, MIN(owner) AS owner, MAX(owner_email) AS owner_email, COUNT(*) AS lost,
           SUM(reason IS NULL) AS no_reason,
           (SELECT r.reason FROM r WHERE r.owned_by = w.owned_by ORDER BY r.n DESC, r.reason LIMIT 1) AS top
    FROM w GROUP BY owned_by)
SELECT 'owner:' || g.owned_by AS scope_key, g.owner, g.owner_email,
       g.lost                                       AS owner_lost,
       g.no_reason                                  AS owner_lost_no_reason,
       CAST(g.no_reason AS REAL) / g.lost           AS lost_no_reason_share,
       g.top                                        AS top_lost_reason,
       COALESCE(r.n, 0)                             AS top_lost_reason_count,
       CAST(COALESCE(r.n, 0) AS REAL) / g.lost      AS top_lost_reason_share
FROM g LEFT JOIN r ON r.owned_by = g.owned_by AND r.reason = g.top
ORDER BY g.owned_by
""",
)

ALL_PROVIDERS = (*PROVIDERS, LOST_REASONS)

# bound again with the providers added above (the binding before them saw only the first ones)
register_rulesets, register_facts, register_defect_recipes = package_hooks(__package__, ALL_PROVIDERS)
