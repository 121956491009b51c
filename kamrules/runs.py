"""The runs table: one row per recorded check, with the health scores of every account at that run."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import contextmanager
from contextvars import ContextVar

from kamrules.alerts import SEVERITIES
from kamrules.i18n import get_lang
from kamrules.lifecycle.schema import rows, transaction, ts

DDL = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    as_of TEXT NOT NULL,               -- the check's as-of date
    started TEXT NOT NULL,             -- UTC timestamps (ISO 8601, Z)
    finished TEXT NOT NULL,
    rulesets TEXT NOT NULL DEFAULT '[]',   -- JSON: rule sets chosen
    selection TEXT NOT NULL DEFAULT '{}',  -- JSON: select, ignore, min_severity
    ran TEXT NOT NULL DEFAULT '[]',        -- JSON: rule sets with at least one rule run (not skipped)
    accounts_checked INTEGER NOT NULL DEFAULT 0,
    alerts INTEGER NOT NULL DEFAULT 0,
    info INTEGER NOT NULL DEFAULT 0,
    warning INTEGER NOT NULL DEFAULT 0,
    critical INTEGER NOT NULL DEFAULT 0,
    skipped TEXT NOT NULL DEFAULT '[]',    -- JSON: [code, reason] of rules skipped for missing data
    failures TEXT NOT NULL DEFAULT '[]',   -- JSON: [where, message]
    newest TEXT NOT NULL DEFAULT '{}',     -- JSON: {table: newest record date on or before as_of}
    complete INTEGER NOT NULL,
    scorecard TEXT                         -- digest of the scorecard the stored scores used
);
CREATE INDEX IF NOT EXISTS runs_as_of ON runs (as_of, id);
CREATE TABLE IF NOT EXISTS health_scores (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    account_id TEXT NOT NULL,
    score INTEGER NOT NULL,
    grade TEXT NOT NULL,
    drivers TEXT NOT NULL DEFAULT '[]',    -- JSON: every alert of the account with the points it cost
    PRIMARY KEY (run_id, account_id)
);
"""

# (table, date column) whose newest record each run notes; each has an (account_id, date) index.
DATED = (
    ("activities", "date"),
    ("orders", "date"),
    ("concessions", "date"),
    ("complaints", "opened_on"),
    ("stage_history", "entered_on"),
)


def _statements() -> list[str]:
    lines = [line.split("--", 1)[0] for line in DDL.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def migrate(store) -> None:
    """Migration step 3 (kamrules.migrations): runs, health_scores, alert_events.run_id; inside the caller's transaction."""
    from kamrules.lifecycle.schema import connection_of
    from kamrules.lifecycle.schema import migrate as lifecycle_migrate

    conn = connection_of(store)
    lifecycle_migrate(conn)  # idempotent: a store opened without step 2 still gets alert_events
    for statement in _statements():
        conn.execute(statement)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(alert_events)")}
    if "run_id" not in cols:  # events recorded before runs existed keep run_id NULL
        conn.execute("ALTER TABLE alert_events ADD COLUMN run_id INTEGER")
    conn.execute("CREATE INDEX IF NOT EXISTS alert_events_run ON alert_events (run_id)")


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the run tables if missing (stores opened without migrations)."""
    if {"runs", "health_scores"} <= _tables(conn) and "run_id" in {
        r[1] for r in conn.execute("PRAGMA table_info(alert_events)")
    }:
        return
    with transaction(conn):
        migrate(conn)


def last_event_id(conn) -> int:
    return conn.execute("SELECT COALESCE(MAX(id), 0) FROM alert_events").fetchone()[0]


def newest_dates(conn, as_of: str, tables=None) -> dict[str, str | None]:
    """Per dated table (of ``tables``, default all), the newest record on or before ``as_of``: one index
    seek per account. Recorded with each run, and the freshness of a check (kamrules.check.Summary)."""
    have = _tables(conn)
    out: dict[str, str | None] = {}
    if "accounts" not in have:
        return out
    for table, col in DATED:
        if table not in have or (tables is not None and table not in tables):
            continue
        sql = (
            f'SELECT MAX(m) FROM (SELECT (SELECT MAX(t."{col}") FROM "{table}" t WHERE t.account_id = a.id '
            f'AND t."{col}" <= ?) AS m FROM accounts a)'
        )
        out[table] = conn.execute(sql, (as_of,)).fetchone()[0]
    return out


def stale_warnings(conn, as_of: str, days: int) -> list[str]:
    """The stale-data warning of a check (:meth:`kamrules.check.Summary.warnings`, same words) for every dated
    table whose newest record on or before ``as_of`` is more than ``days`` days older (0: none), for the
    commands that read the store without a check of their own (``kamrules health``)."""
    from kamrules.check import Summary, stale_tables

    stale = stale_tables(newest_dates(conn, as_of), as_of, days)
    return Summary(as_of=as_of, stale_after_days=days, stale=tuple(stale)).warnings()


def _newest(conn, as_of: str, known) -> dict[str, str | None]:
    """Every dated table's newest record (:func:`newest_dates`), reusing those the check already found
    (``summary.newest``: the tables its rules read), so that a recorded check reads each table once."""
    known = dict(known)
    rest = newest_dates(conn, as_of, {t for t, _ in DATED} - set(known))
    return {t: known[t] if t in known else rest[t] for t, _ in DATED if t in known or t in rest}


def ran_rulesets(summary, code_ruleset: dict[str, str] | None) -> list[str]:
    """The chosen rule sets with at least one rule run; without a code->rule set map, those with a run
    code unless every chosen rule set plainly ran (nothing skipped, nothing selected away)."""
    chosen = list(getattr(summary, "rulesets", ()) or ())
    codes = set(getattr(summary, "codes", ()) or ())
    if code_ruleset is None:
        return chosen
    return [rs for rs in chosen if any(code_ruleset.get(c) == rs for c in codes) or rs not in code_ruleset.values()]


def record_run(
    conn, result, now: dt.datetime, first_event: int, code_ruleset: dict[str, str] | None = None, scorecard=None
) -> int:
    """Insert the run of ``result`` (a CheckResult), tag the alert events it recorded, store every
    account's health score. Returns the run id."""
    from kamrules import health

    s = getattr(result, "summary", None)
    get = lambda name, default=(): getattr(s, name, default) if s is not None else default  # noqa: E731
    alerts = list(result.alerts)
    as_of = str(
        get("as_of", None)
        or getattr(result, "as_of", None)
        or max((a.as_of for a in alerts), default=now.date().isoformat())
    )
    sc = scorecard or health.default_scorecard()
    ran = ran_rulesets(s, code_ruleset) if s is not None else None
    started = now - dt.timedelta(seconds=float(get("seconds", 0.0) or 0.0))
    by_sev = dict(get("by_severity", {}) or {}) or {sev: sum(a.severity == sev for a in alerts) for sev in SEVERITIES}
    failures = [list(x) for x in get("failures")]
    values = dict(
        as_of=as_of,
        started=ts(started),
        finished=ts(now),
        rulesets=json.dumps(list(get("rulesets")), ensure_ascii=False),
        selection=json.dumps(
            {"select": list(get("select")), "ignore": list(get("ignore")), "min_severity": get("min_severity", "info")},
            ensure_ascii=False,
        ),
        ran=json.dumps(sorted(ran) if ran is not None else sorted({a.ruleset for a in alerts}), ensure_ascii=False),
        accounts_checked=int(get("accounts_checked", 0) or 0),
        alerts=len(alerts),
        **{sev: int(by_sev.get(sev, 0)) for sev in SEVERITIES},
        skipped=json.dumps([list(x) for x in get("skipped")], ensure_ascii=False),
        failures=json.dumps(failures, ensure_ascii=False),
        newest=json.dumps(_newest(conn, as_of, get("newest", {}) or {})),
        complete=int(not failures),
        scorecard=sc.digest,
    )
    with transaction(conn):
        cur = conn.execute(
            f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", tuple(values.values())
        )
        run_id = cur.lastrowid
        conn.execute("UPDATE alert_events SET run_id = ? WHERE id > ? AND run_id IS NULL", (run_id, first_event))
        # every account starts at 100 (in SQL: most have no alert); those with alerts are scored below
        if "accounts" in _tables(conn):
            conn.execute(
                "INSERT INTO health_scores (run_id, account_id, score, grade) SELECT ?, id, 100, ? FROM accounts",
                (run_id, sc.grade_of(100).grade),
            )
        scored = health.score_alerts(conn, alerts, sc, ran)
        conn.executemany(
            "INSERT OR REPLACE INTO health_scores (score, grade, drivers, run_id, account_id) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    a.score,
                    a.grade,
                    json.dumps([d.to_dict() for d in a.drivers], ensure_ascii=False),
                    run_id,
                    a.account_id,
                )
                for a in scored
            ],
        )
    return run_id


def _run(r: dict | None) -> dict | None:
    if r is None:
        return None
    for key in ("rulesets", "selection", "ran", "skipped", "failures", "newest"):
        r[key] = json.loads(r[key]) if r.get(key) else None
    r["complete"] = bool(r["complete"])
    return r


def list_runs(conn, limit: int | None = None) -> list[dict]:
    """Runs, newest first."""
    if "runs" not in _tables(conn):
        return []
    sql = "SELECT * FROM runs ORDER BY as_of DESC, id DESC" + (f" LIMIT {int(limit)}" if limit else "")
    return [_run(r) for r in rows(conn, sql)]


def run_at(conn, as_of: str) -> dict | None:
    """The newest complete run of exactly ``as_of``."""
    if "runs" not in _tables(conn):
        return None
    found = rows(conn, "SELECT * FROM runs WHERE as_of = ? AND complete = 1 ORDER BY id DESC LIMIT 1", (as_of,))
    return _run(found[0]) if found else None


def run_before(conn, as_of: str, oldest: str | None = None, target: str | None = None) -> dict | None:
    """The newest complete run before ``as_of`` (on or after ``oldest``); with ``target``, the one closest to it."""
    if "runs" not in _tables(conn):
        return None
    sql, params = "SELECT * FROM runs WHERE as_of < ? AND complete = 1", [as_of]
    if oldest:
        sql += " AND as_of >= ?"
        params.append(oldest)
    order = " ORDER BY as_of DESC, id DESC"
    if target:
        order = " ORDER BY ABS(julianday(as_of) - julianday(?)), as_of DESC, id DESC"
        params.append(target)
    found = rows(conn, sql + order + " LIMIT 1", params)
    return _run(found[0]) if found else None


def scores_of(conn, run_id: int) -> dict[str, dict]:
    """{account_id: {score, grade, drivers}} stored for a run."""
    out = {}
    for r in rows(conn, "SELECT account_id, score, grade, drivers FROM health_scores WHERE run_id = ?", (run_id,)):
        r["drivers"] = json.loads(r["drivers"] or "[]")
        out[r["account_id"]] = r
    return out


def code_rulesets(result, pm, settings) -> dict[str, str] | None:
    """{code: rule set} of the built-in and configured rule sets, only when a run skipped or selected
    rules (else every chosen rule set ran, and the rule files are not read again)."""
    s = getattr(result, "summary", None)
    if s is None or not (getattr(s, "skipped", ()) or getattr(s, "select", ()) or getattr(s, "ignore", ())):
        return None
    from kamrules.check import builtin_ruleset_files, user_rulesets
    from kamrules.errors import KamrulesError
    from kamrules.ruleset import resolve

    if pm is None:
        from kamrules.plugins import default_plugin_manager

        pm = default_plugin_manager()
    try:
        # the configured folders relative to the config file, as the check resolved them (not the current directory)
        sets = resolve(builtin_ruleset_files(pm, []), user_rulesets(settings))
    except KamrulesError:
        return None
    return {r.code: rs.name for rs in sets for r in rs.rules if r.enabled}


# -- scores beside alerts: the digest and check's table (issue 16) -------------------------------------

_DIGEST_RUN: ContextVar[tuple | None] = ContextVar("kamrules_digest_run", default=None)


@contextmanager
def scores_for_digests(conn, run_id: int | None):
    """While rendering this run's digests, :func:`digest_health` finds its scores (the notifier hook's
    signature stays as it is)."""
    token = _DIGEST_RUN.set((conn, run_id) if run_id is not None else None)
    try:
        yield
    finally:
        _DIGEST_RUN.reset(token)


def _scores(conn, run_id: int, ids: list[str]) -> dict[str, tuple[int, str]]:
    out = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        out.update(
            {
                a: (s, g)
                for a, s, g in conn.execute(
                    f"SELECT account_id, score, grade FROM health_scores WHERE run_id = ? AND account_id IN ({', '.join('?' * len(chunk))})",
                    [run_id, *chunk],
                )
            }
        )
    return out


def labelled(scores: dict[str, int], before: dict[str, int], scorecard=None) -> dict[str, dict]:
    """{account: {score, grade, grade_en, grade_zh, trend, change}} (trend None: no earlier score)."""
    from kamrules.health import default_scorecard, trend

    sc = scorecard or default_scorecard()
    out = {}
    for acc, score in scores.items():
        g, t = sc.grade_of(score), trend(score, before.get(acc))
        out[acc] = {
            "score": score,
            "grade": g.grade,
            "grade_en": g.en,
            "grade_zh": g.zh,
            "trend": t["direction"] if t else None,
            "change": t["change"] if t else None,
        }
    return out


def digest_health(account_ids) -> dict[str, dict]:
    """The scores (and trend against the previous complete run) of these accounts at the run whose digests
    are being rendered; {} outside :func:`scores_for_digests`."""
    at = _DIGEST_RUN.get()
    ids = sorted({a for a in account_ids if a})
    if at is None or not ids:
        return {}
    conn, run_id = at
    run = rows(conn, "SELECT as_of FROM runs WHERE id = ?", (run_id,))
    if not run:
        return {}
    now = {a: s for a, (s, _) in _scores(conn, run_id, ids).items()}
    prev = run_before(conn, run[0]["as_of"])
    before = {a: s for a, (s, _) in _scores(conn, prev["id"], ids).items()} if prev else {}
    return labelled(now, before)


def trend_text(h: dict | None) -> str:
    """``62 watch ↓-12`` (score, grade, trend against the previous run); zh ``62 关注 ↓-12``."""
    if not h:
        return ""
    arrow = {"up": "↑", "down": "↓", "steady": "→"}.get(h["trend"] or "", "")
    change = f"{arrow}{h['change']:+d}" if h["change"] else arrow
    grade = h.get("grade_zh") or h["grade_en"] if get_lang() == "zh" else h["grade_en"]
    return f"{h['score']} {grade}" + (f" {change}" if change else "")


def check_health(conn, result, pm=None, settings=None, scorecard=None) -> dict[str, dict]:
    """The score each alerting account of ``result`` gets when the check is recorded (as record_run computes
    it), with the trend against the newest complete run before its date: for check's table."""
    from kamrules import health

    sc = scorecard or health.default_scorecard()
    s = getattr(result, "summary", None)
    ran = ran_rulesets(s, code_rulesets(result, pm, settings)) if s is not None else None
    scores = {a.account_id: a.score for a in health.score_alerts(conn, result.alerts, sc, ran)}
    prev = run_before(conn, str(result.as_of)) if "runs" in _tables(conn) else None
    before = {a: s for a, (s, _) in _scores(conn, prev["id"], sorted(scores)).items()} if prev else {}
    return labelled(scores, before, sc)


def digest_run() -> tuple | None:
    """(conn, run id) of the run whose digests are being rendered (None outside :func:`scores_for_digests`)."""
    return _DIGEST_RUN.get()
