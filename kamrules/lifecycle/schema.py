"""Tables of the alert lifecycle (history, events, silences, outbox) and transactions."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import contextmanager

DDL = """
CREATE TABLE IF NOT EXISTS alert_history (
    fingerprint TEXT PRIMARY KEY,
    ruleset TEXT NOT NULL,
    code TEXT NOT NULL,
    rule TEXT NOT NULL,
    account_id TEXT,
    account_name TEXT,
    owner TEXT,
    owner_email TEXT,
    severity TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    message TEXT NOT NULL,
    alert_json TEXT NOT NULL,          -- the last Alert.to_dict() seen
    first_seen TEXT NOT NULL,          -- UTC timestamps (ISO 8601, Z)
    last_seen TEXT NOT NULL,
    first_as_of TEXT,
    last_as_of TEXT,
    resolved_at TEXT,
    episode INTEGER NOT NULL DEFAULT 1,  -- +1 each time it fires again after resolving
    silenced INTEGER NOT NULL DEFAULT 0, -- silenced in the last run that saw it
    last_notified TEXT,                -- when a message covering it was last delivered
    scope TEXT                         -- the scope key of the last check that fired it
);
CREATE TABLE IF NOT EXISTS notify_state (  -- per alert and notifier: the state last queued
    fingerprint TEXT NOT NULL,
    notifier TEXT NOT NULL,
    episode INTEGER NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,    -- how many messages covered it (reminders differ by seq)
    last_queued TEXT,
    last_notified TEXT,
    PRIMARY KEY (fingerprint, notifier)
);
CREATE INDEX IF NOT EXISTS alert_history_status ON alert_history (status);
CREATE INDEX IF NOT EXISTS alert_history_owner ON alert_history (owner);
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,               -- fired, changed, resolved, silenced, queued, sent
    detail TEXT
);
CREATE INDEX IF NOT EXISTS alert_events_fp ON alert_events (fingerprint, id);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY,
    rules TEXT NOT NULL DEFAULT '[]',  -- JSON lists; kinds AND together, values within a kind OR
    rulesets TEXT NOT NULL DEFAULT '[]',
    accounts TEXT NOT NULL DEFAULT '[]',
    owners TEXT NOT NULL DEFAULT '[]',
    until TEXT NOT NULL,               -- UTC timestamp; silent while now < until
    comment TEXT NOT NULL,
    author TEXT,
    created_at TEXT NOT NULL,
    expired_at TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,          -- idempotency key: hash(notifier, recipient, alert states)
    notifier TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,             -- exactly what is sent (RFC 5322 bytes, JSON, ...)
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'superseded')),  -- + 'rejected': step 4
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    next_attempt TEXT NOT NULL,
    sending_since TEXT,
    claimed_by TEXT,                   -- host:pid of the process sending it
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status, next_attempt);
CREATE TABLE IF NOT EXISTS outbox_items (
    outbox_id INTEGER NOT NULL REFERENCES outbox (id),
    fingerprint TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (outbox_id, fingerprint)
);
CREATE INDEX IF NOT EXISTS outbox_items_fp ON outbox_items (fingerprint);
"""


def connection_of(store) -> sqlite3.Connection:
    """The sqlite3 connection of a Store, a sqlite_utils Database or a connection."""
    if isinstance(store, sqlite3.Connection):
        return store
    conn = getattr(store, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        return conn
    raise TypeError(f"expected a Store or sqlite3.Connection, got {type(store).__name__}")


def _statements() -> list[str]:
    lines = [line.split("--", 1)[0] for line in DDL.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(store) -> None:
    """Migration step 2 (kamrules.migrations): create the lifecycle tables; runs inside the caller's transaction."""
    conn = connection_of(store)
    for statement in _statements():
        conn.execute(statement)


OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "superseded", "rejected")

# Step 4's outbox: step 2's plus the terminal status 'rejected' (refused for good: 5xx, HTTP 4xx).
OUTBOX_DDL = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    notifier TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({})),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    next_attempt TEXT NOT NULL,
    sending_since TEXT,
    claimed_by TEXT,
    sent_at TEXT
)""".format(", ".join(f"'{s}'" for s in OUTBOX_STATUSES))
OUTBOX_COLUMNS = "id, key, notifier, recipient, subject, payload, status, attempts, last_error, created_at, next_attempt, sending_since, claimed_by, sent_at"


def _outbox_has_rejected(conn) -> bool:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").fetchone()
    return sql is not None and "'rejected'" in sql[0]


def migrate_rejected(store) -> None:
    """Migration step 4: the outbox status CHECK accepts 'rejected'; runs inside the caller's transaction.

    SQLite cannot alter a CHECK constraint: the table is rebuilt. ``outbox_items``
    references ``outbox`` (foreign keys are on), so it is set aside first and rebuilt
    after: renaming ``outbox`` also renames the reference in the set-aside copy, and
    dropping the old tables child first never breaks a foreign key. Ids, keys and
    every row are kept; the indexes are recreated under their names.
    """
    conn = connection_of(store)
    if _outbox_has_rejected(conn):
        return  # already rebuilt (a store brought up by ensure_schema)
    conn.execute("ALTER TABLE outbox_items RENAME TO _old_outbox_items")
    conn.execute("ALTER TABLE outbox RENAME TO _old_outbox")
    conn.execute(OUTBOX_DDL)
    conn.execute(f"INSERT INTO outbox ({OUTBOX_COLUMNS}) SELECT {OUTBOX_COLUMNS} FROM _old_outbox")
    items = next(s for s in _statements() if s.startswith("CREATE TABLE IF NOT EXISTS outbox_items"))
    conn.execute(items)
    conn.execute(
        "INSERT INTO outbox_items (outbox_id, fingerprint, severity, status) SELECT outbox_id, fingerprint, severity, status FROM _old_outbox_items"
    )
    conn.execute("DROP TABLE _old_outbox_items")  # takes its index outbox_items_fp along
    conn.execute("DROP TABLE _old_outbox")  # and outbox_status
    for statement in _statements():
        if statement.startswith("CREATE INDEX IF NOT EXISTS outbox"):
            conn.execute(statement)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the lifecycle tables if missing (idempotent; for stores opened without migrations)."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if {
        "alert_history",
        "alert_events",
        "notify_state",
        "silences",
        "outbox",
        "outbox_items",
    } <= have and _outbox_has_rejected(conn):
        return
    with transaction(conn):
        migrate(conn)
        migrate_rejected(conn)


_OPEN: set[int] = set()  # ids of the connections inside a transaction() now


@contextmanager
def transaction(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the unit of durability.

    Inside another transaction() on the same connection it is a SAVEPOINT: its writes commit or
    roll back with the outer one (a check's history and its run are one unit, issue 16)."""
    if id(conn) in _OPEN:
        conn.execute("SAVEPOINT kamrules_nested")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO kamrules_nested")
            conn.execute("RELEASE kamrules_nested")
            raise
        conn.execute("RELEASE kamrules_nested")
        return
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    _OPEN.add(id(conn))
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    finally:
        _OPEN.discard(id(conn))
    conn.commit()


def rows(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    """Run a query and return dict rows, whatever the connection's row_factory is."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return [dict(r) for r in cur.execute(sql, params).fetchall()]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ts(when: dt.datetime) -> str:
    """A sortable UTC timestamp text, e.g. 2026-10-31T08:00:00Z."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
