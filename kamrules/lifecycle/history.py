"""Alert history: first/last seen, firing/resolved per fingerprint, and the event log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from kamrules.alerts import Alert
from kamrules.lifecycle.schema import rows, transaction, ts


@dataclass(frozen=True)
class Scope:
    """What a check looked at, so only alerts it could have fired get resolved.

    ``codes``: rule codes evaluated completely (not skipped, not failed) with no
    severity filter; an alert of such a rule that no longer fires is resolved.
    When ``codes`` is None, alerts are resolved only by a later check with the
    same ``key`` (same rule sets, select/ignore and minimum severity).
    """

    key: str
    codes: frozenset[str] | None = None

    @classmethod
    def of(cls, **parts) -> Scope:
        raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=list)
        return cls(key=hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16])


def alert_to_json(alert: Alert) -> str:
    d = asdict(alert)
    d["evidence"] = dict(alert.evidence)
    return json.dumps(d, ensure_ascii=False, default=str)  # keeps the evidence order


def alert_from_json(text: str) -> Alert:
    return Alert(**json.loads(text))


@dataclass(frozen=True)
class Recorded:
    """What one check changed: fingerprints fired for the first time, changed, resolved."""

    new: tuple[str, ...]
    changed: tuple[str, ...]
    resolved: tuple[str, ...]
    firing: int
    behind: str | None = (
        None  # set when nothing was recorded: the newest recorded check's as-of date, later than this one's
    )


def _event(conn, fp: str, at: str, event: str, detail: str = "") -> None:
    conn.execute(
        "INSERT INTO alert_events (fingerprint, at, event, detail) VALUES (?, ?, ?, ?)", (fp, at, event, detail)
    )


def newest_as_of(conn) -> str | None:
    """The latest as-of date a check was recorded at: the newest run (:mod:`kamrules.runs`), or, in a store
    whose history predates the runs table, the newest ``alert_history.last_as_of``."""
    sqls = ["SELECT max(last_as_of) FROM alert_history"]
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone():
        sqls.append("SELECT max(as_of) FROM runs")
    dates = [conn.execute(sql).fetchone()[0] for sql in sqls]
    return max((d for d in dates if d), default=None)


def record(
    conn,
    alerts: Sequence[Alert],
    scope: Scope,
    now: dt.datetime,
    silenced: Iterable[str] = (),
    as_of: str | None = None,
) -> Recorded:
    """Record one check's alerts in one transaction; resolve what the same scope no longer fires.

    A check ``as_of`` a date before the newest recorded one is back-dated: it records nothing
    (``behind`` says why; the caller then records no run either).
    Back-dated checks would resolve today's alerts, and the next current check fire them again.
    """
    at = ts(now)
    silenced = set(silenced)
    new, changed, resolved = [], [], []
    seen = set()
    with transaction(conn):
        if as_of is not None:
            newest = newest_as_of(conn)
            if newest is not None and str(as_of) < newest:
                return Recorded((), (), (), 0, behind=newest)
        for a in alerts:
            fp = a.fingerprint
            if fp in seen:
                continue
            seen.add(fp)
            old = rows(conn, "SELECT severity, status, episode FROM alert_history WHERE fingerprint = ?", (fp,))
            values = dict(
                ruleset=a.ruleset,
                code=a.code,
                rule=a.rule,
                account_id=a.account_id,
                account_name=a.account_name,
                owner=a.owner,
                owner_email=a.owner_email,
                severity=a.severity,
                message=a.message,
                alert_json=alert_to_json(a),
                last_seen=at,
                last_as_of=a.as_of,
                silenced=int(fp in silenced),
                scope=scope.key,
                status="firing",
            )
            if not old:
                values.update(fingerprint=fp, first_seen=at, first_as_of=a.as_of, episode=1)
                cols = ", ".join(values)
                conn.execute(
                    f"INSERT INTO alert_history ({cols}) VALUES ({', '.join('?' * len(values))})",
                    tuple(values.values()),
                )
                _event(conn, fp, at, "fired", a.severity)
                new.append(fp)
                continue
            o = old[0]
            if o["status"] == "resolved":
                values.update(episode=o["episode"] + 1, resolved_at=None)
                _event(conn, fp, at, "fired", f"{a.severity} (again, episode {o['episode'] + 1})")
                new.append(fp)
            elif o["severity"] != a.severity:
                _event(conn, fp, at, "changed", f"{o['severity']} -> {a.severity}")
                changed.append(fp)
            sets = ", ".join(f"{k} = ?" for k in values)
            conn.execute(f"UPDATE alert_history SET {sets} WHERE fingerprint = ?", (*values.values(), fp))
        for o in rows(conn, "SELECT fingerprint, code, scope FROM alert_history WHERE status = 'firing'"):
            if o["fingerprint"] in seen:
                continue
            same = o["code"] in scope.codes if scope.codes is not None else o["scope"] == scope.key
            if same:
                conn.execute(
                    "UPDATE alert_history SET status = 'resolved', resolved_at = ? WHERE fingerprint = ?",
                    (at, o["fingerprint"]),
                )
                _event(conn, o["fingerprint"], at, "resolved")
                resolved.append(o["fingerprint"])
    return Recorded(tuple(new), tuple(changed), tuple(resolved), len(seen))


def list_history(conn, status: str | None = None, owner: str | None = None) -> list[dict]:
    """History rows (newest first), optionally filtered by status and owner."""
    where, params = [], []
    if status and status != "all":
        where.append("status = ?")
        params.append(status)
    if owner:
        where.append("owner = ?")
        params.append(owner)
    sql = "SELECT * FROM alert_history" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY status, CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, owner, account_name, code"
    return rows(conn, sql, params)


def find(conn, fingerprint: str) -> list[dict]:
    """History rows whose fingerprint starts with ``fingerprint`` (a prefix is enough)."""
    return rows(
        conn, "SELECT * FROM alert_history WHERE fingerprint LIKE ? || '%' ORDER BY fingerprint", (fingerprint,)
    )


def events(conn, fingerprint: str) -> list[dict]:
    return rows(conn, "SELECT at, event, detail FROM alert_events WHERE fingerprint = ? ORDER BY id", (fingerprint,))
