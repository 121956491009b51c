"""Time each registered fact provider's SQL on its own (CPU and wall), as `kamrules check` runs it (one TEMP table each).

Run:  python benchmarks/providers.py STORE.db [--as-of 2026-10-31]
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from kamrules.facts import collect_providers
from kamrules.plugins import default_plugin_manager


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--as-of", default="2026-10-31")
    args = ap.parse_args(argv)
    conn = sqlite3.connect(args.db)
    rows = []
    providers = collect_providers(default_plugin_manager())
    # the providers' own SQL parameters at their defaults (a rule threshold may set them in a check)
    params = {"as_of": args.as_of, **{k: v for p in providers for k, v in p.params.items()}}
    for p in providers:
        t, c = time.perf_counter(), time.process_time()
        if not p.sql:  # derives from other providers' facts: no query of its own
            continue
        if p.scope == "account":
            conn.execute(f"CREATE TEMP TABLE t AS {p.sql}", params)
            n = conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]
            conn.execute("DROP TABLE t")
        elif p.over == "account_facts":  # reads the check's own view of the account facts: not on its own
            continue
        else:
            n = len(conn.execute(p.sql, params).fetchall())
        rows.append((time.process_time() - c, time.perf_counter() - t, p.name, p.scope, n))
    total = sum(r[0] for r in rows)
    print("     CPU s share  wall s")
    for s, w, name, scope, n in sorted(rows, reverse=True):
        print(f"{s:8.3f}s {s / total:5.0%} {w:7.3f}s  {name:<24} {scope:<9} {n:>9,} rows")
    print(f"{total:8.3f}s total CPU, {sum(r[1] for r in rows):.3f}s wall")


if __name__ == "__main__":
    main()
