"""Reference load: the book's CSVs into the contract's schema with csv + executemany, no validation.

The floor for `kamrules import`: same tables, one transaction, no checking of
anything (foreign keys off, values inserted as the CSV text).  If OUT.db already
holds the tables (run.py makes it with `kamrules init`, so the schema, keys and
indexes are exactly the store's) they are loaded as they are; otherwise the
contract's tables are created here and their indexes built after the load.

Run:  python benchmarks/raw_load.py CSV_DIR OUT.db      (prints rows loaded as JSON)
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import time
from pathlib import Path

from kamrules.contract import CORE_TABLES, load_order


def create_schema(conn: sqlite3.Connection) -> None:
    for t in CORE_TABLES:
        cols = ", ".join(f'"{c.name}" {c.sql_type}' for c in t.columns)
        pk = ", ".join(f'"{c}"' for c in t.primary_key)
        conn.execute(f'CREATE TABLE "{t.name}" ({cols}, PRIMARY KEY ({pk}))')


def create_indexes(conn: sqlite3.Connection) -> None:
    for t in CORE_TABLES:
        for idx in t.indexes:
            cols = ", ".join(f'"{c}"' for c in idx)
            conn.execute(f'CREATE INDEX "idx_{t.name}_{"_".join(idx)}" ON "{t.name}" ({cols})')


def _open_csv(path: Path):
    try:
        with open(path, encoding="utf-8-sig") as f:
            f.read(1 << 16)
        return open(path, encoding="utf-8-sig", newline="")
    except UnicodeDecodeError:
        return open(path, encoding="gbk", newline="")


def load(csv_dir: str, db: str) -> dict:
    t0 = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    fresh = not have
    if fresh:
        create_schema(conn)
    tables = {t.name: t for t in CORE_TABLES}
    counts: dict[str, int] = {}
    conn.execute("BEGIN")
    for name in load_order(tables):
        path = Path(csv_dir) / f"{name}.csv"
        if not path.exists():
            continue
        known = {c.name for c in tables[name].columns}
        with _open_csv(path) as f:
            reader = csv.reader(f)
            header = next(reader)
            keep = [i for i, h in enumerate(header) if h in known]
            cols = ", ".join(f'"{header[i]}"' for i in keep)
            marks = ", ".join("NULLIF(?, '')" for _ in keep)  # a blank cell is NULL; nothing else is checked
            rows = reader if len(keep) == len(header) else ([r[i] for i in keep] for r in reader)
            cur = conn.executemany(f'INSERT INTO "{name}" ({cols}) VALUES ({marks})', rows)
            counts[name] = cur.rowcount
    if fresh:
        create_indexes(conn)
    conn.execute("COMMIT")
    conn.close()
    return {"seconds": time.perf_counter() - t0, "rows": sum(counts.values()), "tables": counts}


if __name__ == "__main__":
    print(json.dumps(load(sys.argv[1], sys.argv[2])))
