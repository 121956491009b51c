"""Silences: matchers (rule code prefix, rule set, account, owner) valid until a time."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from kamrules.alerts import Alert
from kamrules.errors import InputError
from kamrules.lifecycle.schema import parse_ts, rows, transaction, ts


@dataclass(frozen=True)
class Silence:
    """Matches an alert when every kind given matches (values within one kind: any of them).

    Rule codes match by prefix, like ``--select``: ``KAM1`` silences KAM101..KAM199.
    """

    id: int
    rules: tuple[str, ...]
    rulesets: tuple[str, ...]
    accounts: tuple[str, ...]
    owners: tuple[str, ...]
    until: str
    comment: str
    author: str | None
    created_at: str
    expired_at: str | None = None

    def active(self, now: dt.datetime) -> bool:
        return self.expired_at is None and now < parse_ts(self.until)

    def matches(self, alert: Alert) -> bool:
        if self.rules and not any(alert.code.startswith(r) for r in self.rules):
            return False
        if self.rulesets and alert.ruleset not in self.rulesets:
            return False
        if self.accounts and alert.account_id not in self.accounts:
            return False
        if self.owners and alert.owner not in self.owners:
            return False
        return True

    def describe(self) -> str:
        parts = [
            f"{k}={','.join(v)}"
            for k, v in (
                ("rule", self.rules),
                ("ruleset", self.rulesets),
                ("account", self.accounts),
                ("owner", self.owners),
            )
            if v
        ]
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def parse_until(text: str, now: dt.datetime) -> dt.datetime:
    """A date means through the end of that day (UTC); a datetime is taken as given (UTC if naive)."""
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text) + dt.timedelta(days=1), dt.time(), dt.UTC)
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--until {text!r}: not a date (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def add(
    conn,
    *,
    rules=(),
    rulesets=(),
    accounts=(),
    owners=(),
    until: str,
    comment: str,
    author: str | None,
    now: dt.datetime,
) -> Silence:
    """Store a new silence; at least one matcher and a comment are required, ``until`` must be in the future."""
    if not (rules or rulesets or accounts or owners):
        raise InputError("a silence needs at least one of --rule, --ruleset, --account, --owner")
    if not comment or not comment.strip():
        raise InputError("a silence needs a --comment saying why")
    end = parse_until(until, now)
    if end <= now:
        raise InputError(f"--until {until}: already past (now {ts(now)})")
    rules = tuple(dict.fromkeys(str(r).strip().upper() for r in rules))  # codes are capitals: kam1 means KAM1
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO silences (rules, rulesets, accounts, owners, until, comment, author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *(json.dumps(list(x), ensure_ascii=False) for x in (rules, rulesets, accounts, owners)),
                ts(end),
                comment.strip(),
                author,
                ts(now),
            ),
        )
        sid = cur.lastrowid
    return get(conn, sid)


def unknown_targets(conn, rules=(), rulesets=(), accounts=(), owners=(), codes=None, ruleset_names=None) -> list[str]:
    """Warnings for the matchers of a silence that nothing known matches today: no loaded rule (``codes``,
    ``ruleset_names``; None: not judged) and no alert in the history, no account, no owner in the store.
    Such a silence is still valid (the rule, account or owner may appear later), but likely a typo."""

    def known(sql: str) -> set:
        try:
            return {r[0] for r in conn.execute(sql) if r[0] is not None}
        except Exception:  # no accounts table (yet)
            return set()

    out = []
    if codes is not None:
        have = set(codes) | known("SELECT DISTINCT code FROM alert_history")
        out += [
            f"no rule code starts with {r}" for r in rules if not any(str(c).startswith(str(r).upper()) for c in have)
        ]
    if ruleset_names is not None:
        have = set(ruleset_names) | known("SELECT DISTINCT ruleset FROM alert_history")
        out += [f"no rule set named {n!r}" for n in rulesets if n not in have]
    if accounts:
        have = known("SELECT id FROM accounts") | known("SELECT DISTINCT account_id FROM alert_history")
        out += [f"no account {a!r} in the store" for a in accounts if a not in have]
    if owners:
        have = known("SELECT DISTINCT owner FROM accounts") | known("SELECT DISTINCT owner FROM alert_history")
        out += [f"no owner {o!r} in the store" for o in owners if o not in have]
    return out


def _from_row(r: dict) -> Silence:
    return Silence(
        id=r["id"],
        rules=tuple(json.loads(r["rules"])),
        rulesets=tuple(json.loads(r["rulesets"])),
        accounts=tuple(json.loads(r["accounts"])),
        owners=tuple(json.loads(r["owners"])),
        until=r["until"],
        comment=r["comment"],
        author=r["author"],
        created_at=r["created_at"],
        expired_at=r["expired_at"],
    )


def get(conn, silence_id: int) -> Silence:
    found = rows(conn, "SELECT * FROM silences WHERE id = ?", (silence_id,))
    if not found:
        raise InputError(f"no silence with id {silence_id} (see `kamrules silence list --all`)")
    return _from_row(found[0])


def list_silences(conn, now: dt.datetime, include_inactive: bool = False) -> list[Silence]:
    out = [_from_row(r) for r in rows(conn, "SELECT * FROM silences ORDER BY id")]
    return out if include_inactive else [s for s in out if s.active(now)]


def expire(conn, silence_id: int, now: dt.datetime) -> Silence:
    s = get(conn, silence_id)
    if s.active(now):
        with transaction(conn):
            conn.execute("UPDATE silences SET expired_at = ? WHERE id = ?", (ts(now), silence_id))
    return get(conn, silence_id)


def silenced_by(alerts, silences: list[Silence]) -> dict[str, int]:
    """{fingerprint: silence id} for the alerts some active silence matches."""
    out = {}
    for a in alerts:
        for s in silences:
            if s.matches(a):
                out[a.fingerprint] = s.id
                break
    return out
