"""Benchmark kamrules import/check against a raw sqlite3 load and hand-written SQL, 10k to 1M accounts.

For each size: `kamrules generate` a book (CSV), time `kamrules import` into a fresh
store against benchmarks/raw_load.py (csv + executemany, no validation), then time
`kamrules check --format json` (all rule sets) against benchmarks/reference_sql.py
(the built-in rule sets as hand-written SQL) on the imported store.  Every step is
a subprocess; its peak RSS comes from os.wait4.  Per rule, the accounts the hand SQL
flags are compared with the accounts `kamrules check` alerts on.

Examples:
  python benchmarks/run.py --sizes 10000
  python benchmarks/run.py --sizes 10000,100000 --profile
  python benchmarks/run.py --sizes 1000000 --skip-generate --steps import,raw,check,sql

Results: benchmarks/results/<date>-<commit>.json (merged per size) and a summary
appended to benchmarks/results/summary.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parent
RESULTS = HERE / "results"
KAMRULES = [sys.executable, "-m", "kamrules"]
STEPS = ("generate", "import", "raw", "check", "sql", "backtest")
CORE_RULESETS = ("over_subsidising", "neglected_small_clients", "missing_escalation_channels", "stalled_stages")
GIB = 1 << 30

TARGET_CHECK_RATIO = 1.0  # check <= 1.0 x hand SQL
TARGET_IMPORT_RATE = 150_000  # rows/s
TARGET_RSS = 2 * GIB
TARGET_BACKTEST_RATIO = 4.0  # 13 weekly dates <= 4 x one check (issue 16)
BACKTEST_DATES = 13


# ---------------------------------------------------------------------------
# running and measuring one child
# ---------------------------------------------------------------------------
def measure(cmd: list[str], stdout=None, ok_codes=(0,)) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds (user + sys, waited-for worker processes included),
    the peak RSS of its largest process (bytes, via wait4) and the peak of the RSS summed over the
    whole process tree (``kamrules check`` forks workers), sampled every 50 ms from /proc."""
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL
    tree_peak = 0
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, tree_rss(p.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if stdout:
            out.close()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if p.returncode not in ok_codes:
        raise SystemExit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{stderr[-3000:]}")
    peak = ru.ru_maxrss * 1024
    return {
        "seconds": seconds,
        "cpu_seconds": ru.ru_utime + ru.ru_stime,
        "peak_rss": peak,
        "peak_rss_tree": max(tree_peak, peak),
        "exit": p.returncode,
        "stderr": stderr[-1000:],
        "cmd": " ".join(cmd),
    }


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants now (pages shared after fork counted in
    each process: an upper bound)."""
    total, todo = 0, [pid]
    while todo:
        q = todo.pop()
        try:
            with open(f"/proc/{q}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{q}/task"):
                with open(f"/proc/{q}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def kamrules_help(*args: str) -> str:
    r = subprocess.run(KAMRULES + list(args) + ["--help"], capture_output=True, text=True, cwd=ROOT)
    return r.stdout + r.stderr


_COMMANDS: set[str] | None = None


def has_command(name: str) -> bool:
    """Whether `kamrules --help` lists ``name`` under Commands (plugins register them)."""
    global _COMMANDS
    if _COMMANDS is None:
        text = kamrules_help()
        body = text.split("Commands:", 1)[1] if "Commands:" in text else ""
        _COMMANDS = {line.split()[0] for line in body.splitlines() if line.startswith("  ") and line.split()}
    return name in _COMMANDS


def store_rows(db: Path) -> dict[str, int]:
    from kamrules.contract import CORE_TABLES

    conn = sqlite3.connect(db)
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    counts = {
        t.name: conn.execute(f'SELECT COUNT(*) FROM "{t.name}"').fetchone()[0] for t in CORE_TABLES if t.name in have
    }
    conn.close()
    return counts


# ---------------------------------------------------------------------------
# comparing what fires
# ---------------------------------------------------------------------------
def rule_key(alert: dict) -> str:
    """The rule name (stage_dwell is one rule, KAM411, since issue 13)."""
    return alert.get("rule") or alert.get("code")


def alerts_by_rule(check_json: Path) -> tuple[dict[str, set], dict[str, int], dict]:
    """{rule: accounts}, {rule: alert count}, summary from `kamrules check --format json`."""
    data = json.loads(check_json.read_text(encoding="utf-8") or "[]")
    alerts = data.get("alerts", []) if isinstance(data, dict) else data
    summary = data.get("summary", {}) if isinstance(data, dict) else {}
    accounts: dict[str, set] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for a in alerts:
        key = rule_key(a)
        counts[key] += 1
        if a.get("account_id") is not None:
            accounts[key].add(a["account_id"])
    return accounts, counts, summary


def compare(ref: dict, check_json: Path) -> list[dict]:
    accounts, counts, _ = alerts_by_rule(check_json)
    severities: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    data = json.loads(check_json.read_text(encoding="utf-8") or "[]")
    for a in data.get("alerts", []) if isinstance(data, dict) else data:
        severities[rule_key(a)][a.get("severity")] += 1
    severities = {k: dict(v) for k, v in severities.items()}
    rows = []
    for rule, r in ref["rules"].items():
        mine = set(r["accounts"])
        theirs = accounts.get(rule, set())
        n_ref = r["rows"] if r["scope"] == "portfolio" else len(mine)
        n_chk = counts.get(rule, 0) if r["scope"] == "portfolio" else len(theirs)
        rows.append(
            {
                "ruleset": r["ruleset"],
                "rule": rule,
                "hand_sql": n_ref,
                "check": n_chk,
                "both": len(mine & theirs),
                "only_sql": sorted(mine - theirs)[:5],
                "only_check": sorted(theirs - mine)[:5],
                "severity_sql": r["severity"],
                "severity_check": severities.get(rule, {}),
                "severity_match": r["severity"] == severities.get(rule, {}),
                "match": n_ref == n_chk and (r["scope"] == "portfolio" or mine == theirs),
            }
        )
    return rows


# ---------------------------------------------------------------------------
# one size
# ---------------------------------------------------------------------------
def profile_size(wd: Path, csv_dir: Path, db: Path, args, check_extra: list[str], log) -> dict:
    """Profile `kamrules import` (fresh store) and `kamrules check`: py-spy --native if installed, else cProfile."""
    import profiles

    pdb = wd / "profile.db"
    for p in (pdb, Path(str(pdb) + "-wal"), Path(str(pdb) + "-shm")):
        p.unlink(missing_ok=True)
    if has_command("init"):
        measure(KAMRULES + ["--db", str(pdb), "init"])
    jobs = {
        "import": (["--db", str(pdb), "import", str(csv_dir)], None),
        # one process: the profiler sees every sample (the parallel check's parent mostly waits)
        "check": (
            ["--db", str(db), "check", "--as-of", args.as_of, "--format", "json"]
            + check_extra
            + (["--jobs", "1"] if "--jobs" in kamrules_help("check") else []),
            wd / "check-profiled.json",
        ),
    }
    out = {}
    for step, (cmd, stdout) in jobs.items():
        log(f"profile {step} ...")
        if profiles.py_spy_available() and not args.cprofile:
            raw = wd / f"{step}.pyspy.txt"
            profiles.record(KAMRULES + cmd, raw, stdout)
            out[step] = profiles.summarize_raw(raw)
        else:
            out[step] = profiles.cprofile(cmd, wd / f"{step}.prof", stdout, ROOT)
    pdb.unlink(missing_ok=True)
    return out


def bench_size(n: int, args, steps: set[str], check_extra: list[str]) -> dict:
    wd = Path(args.workdir) / str(n)
    csv_dir, db, raw_db = wd / "csv", wd / "kamrules.db", wd / "raw.db"
    wd.mkdir(parents=True, exist_ok=True)
    res: dict = {"accounts": n}
    log = lambda *a: print(f"[{n:>9,}]", *a, file=sys.stderr, flush=True)  # noqa: E731

    if "generate" in steps and not (args.skip_generate and (csv_dir / "accounts.csv").exists()):
        shutil.rmtree(csv_dir, ignore_errors=True)
        log("generate ...")
        g = measure(
            KAMRULES
            + ["generate", "--accounts", str(n), "--out", str(csv_dir), "--seed", str(args.seed), "--as-of", args.as_of]
        )
        res["generate"] = g
        log(f"generate {g['seconds']:.1f}s")
    res["csv_bytes"] = sum(p.stat().st_size for p in csv_dir.glob("*") if p.is_file())

    if "raw" in steps:
        log("raw load ...")
        out = wd / "raw.json"
        for p in (raw_db, Path(str(raw_db) + "-wal"), Path(str(raw_db) + "-shm")):
            p.unlink(missing_ok=True)
        if has_command("init"):  # the store's own schema, keys and indexes
            measure(KAMRULES + ["--db", str(raw_db), "init"])
        r = measure([sys.executable, str(HERE / "raw_load.py"), str(csv_dir), str(raw_db)], stdout=out)
        r.update(json.loads(out.read_text()))
        res["raw_load"] = r
        res["rows"] = r["rows"]
        log(f"raw load {r['seconds']:.2f}s rows={r['rows']:,}")
        raw_db.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(raw_db) + suffix).unlink(missing_ok=True)

    if "import" in steps:
        for p in (db, Path(str(db) + "-wal"), Path(str(db) + "-shm")):
            p.unlink(missing_ok=True)
        if has_command("init"):
            measure(KAMRULES + ["--db", str(db), "init"])
        log("import ...")
        best = None
        for _ in range(args.repeat if args.repeat > 1 else 1):
            if best is not None:  # repeat on a fresh store
                db.unlink()
                if has_command("init"):
                    measure(KAMRULES + ["--db", str(db), "init"])
            m = measure(KAMRULES + ["--db", str(db), "import", str(csv_dir)])
            best = m if best is None or m["seconds"] < best["seconds"] else best
        res["import"] = best
        res["store_rows"] = store_rows(db)
        res.setdefault("rows", sum(res["store_rows"].values()))
        res["import"]["rows_per_s"] = res["rows"] / best["seconds"]
        log(
            f"import {best['seconds']:.2f}s  {res['import']['rows_per_s']:,.0f} rows/s  rss {_rss(best) / 2**20:.0f} MiB"
        )

    if "rows" not in res and db.exists():
        res["store_rows"] = store_rows(db)
        res["rows"] = sum(res["store_rows"].values())

    # check and hand SQL alternate (check, SQL, check, SQL, ...): this machine's speed drifts by 10-20%
    # over minutes, so back-to-back pairs compare like with like; the fastest of each is kept
    rounds = max(args.repeat, 1)
    best_chk = best_sql = ref = None
    for i in range(rounds):
        if "check" in steps:
            log("check ..." if i == 0 else f"check (round {i + 1}) ...")
            m = measure(
                KAMRULES + ["--db", str(db), "check", "--as-of", args.as_of, "--format", "json"] + check_extra,
                stdout=wd / "check.json",
                ok_codes=(0, 1),
            )
            log(f"check {m['seconds']:.2f}s cpu {m['cpu_seconds']:.2f}s rss {_rss(m) / 2**20:.0f} MiB")
            best_chk = m if best_chk is None or m["seconds"] < best_chk["seconds"] else best_chk
        if "sql" in steps:
            out = wd / "hand_sql.json"
            log("hand SQL ..." if i == 0 else f"hand SQL (round {i + 1}) ...")
            m = measure(
                [
                    sys.executable,
                    str(HERE / "reference_sql.py"),
                    "--db",
                    str(db),
                    "--as-of",
                    args.as_of,
                    "--json",
                    str(out),
                ]
            )
            log(f"hand SQL {m['seconds']:.2f}s")
            if best_sql is None or m["seconds"] < best_sql["seconds"]:
                best_sql, ref = m, json.loads(out.read_text(encoding="utf-8"))
    if best_chk is not None:
        _, counts, summary = alerts_by_rule(wd / "check.json")
        best_chk["alerts"] = sum(counts.values())
        best_chk["summary"] = summary
        res["check"] = best_chk
        log(
            f"check best {best_chk['seconds']:.2f}s cpu {best_chk['cpu_seconds']:.2f}s alerts={best_chk['alerts']:,} "
            f"rss {_rss(best_chk) / 2**20:.0f} MiB"
        )
    if best_sql is not None:
        best_sql["inner_seconds"] = ref["seconds"]
        best_sql["timings"] = {k: round(v, 4) for k, v in ref["timings"].items()}
        res["hand_sql"] = best_sql
        log(f"hand SQL best {best_sql['seconds']:.2f}s (queries {ref['seconds']:.2f}s)")
        if (wd / "check.json").exists():
            res["fires"] = compare(ref, wd / "check.json")

    if "backtest" in steps:
        res["backtest"] = bench_backtest(db, wd, args, log)

    if args.profile:
        res["profile"] = profile_size(wd, csv_dir, db, args, check_extra, log)
    return res


def bench_backtest(db: Path, wd: Path, args, log) -> dict:
    """``kamrules backtest`` over 13 weekly dates ending at --as-of against one ``check --as-of`` that date,
    alternating (check, backtest, check, ...: the machine's speed drifts); the fastest of each and the ratios."""
    end = dt.date.fromisoformat(args.as_of)
    start = end - dt.timedelta(weeks=BACKTEST_DATES - 1)
    check = KAMRULES + ["--db", str(db), "check", "--as-of", args.as_of, "--no-history", "--format", "jsonl"]
    bt = KAMRULES + ["--db", str(db), "backtest", "--from", start.isoformat(), "--to", args.as_of]
    bt += ["--every", "week", "--format", "jsonl"]
    best_chk = best_bt = None
    for _ in range(max(args.repeat, 1)):
        c = measure(check + ["-o", str(wd / "bt_check.jsonl")], ok_codes=(0, 1))
        log(f"check (for backtest) {c['seconds']:.2f}s cpu {c['cpu_seconds']:.2f}s")
        b = measure(bt + ["-o", str(wd / "backtest.jsonl")], ok_codes=(0, 1))
        log(
            f"backtest {BACKTEST_DATES} dates {b['seconds']:.2f}s cpu {b['cpu_seconds']:.2f}s rss {_rss(b) / 2**20:.0f} MiB"
        )
        best_chk = c if best_chk is None or c["seconds"] < best_chk["seconds"] else best_chk
        best_bt = b if best_bt is None or b["seconds"] < best_bt["seconds"] else best_bt
    out = {
        "dates": BACKTEST_DATES,
        "check": best_chk,
        "backtest": best_bt,
        "ratio": best_bt["seconds"] / best_chk["seconds"],
        "cpu_ratio": best_bt["cpu_seconds"] / max(best_chk["cpu_seconds"], 1e-9),
    }
    log(f"backtest / check: {out['ratio']:.2f}x wall, {out['cpu_ratio']:.2f}x cpu")
    return out


# ---------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------
def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    except OSError:
        mem = 0
    try:
        from importlib.metadata import version

        dr = version("durable_rules")
    except Exception:
        dr = "?"
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / GIB, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "durable_rules": dr,
        "platform": platform.platform(),
    }


def git_commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "kamrules", "plugins", "rulesets"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    return (r.stdout.strip() or "unknown") + ("+dirty" if dirty else "")


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares seconds per 100k accounts."""
    if len(points) < 2:
        return None
    xs = [p[0] / 100_000 for p in points]
    ys = [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def fmt(v, spec=".2f", unit=""):
    return "-" if v is None else f"{v:{spec}}{unit}"


def table(sizes: list[dict]) -> str:
    head = (
        "accounts",
        "rows",
        "import s",
        "raw load s",
        "ratio",
        "import rows/s",
        "check s",
        "hand SQL s",
        "ratio",
        "check CPU s",
        "hand SQL CPU s",
        "RSS import",
        "RSS check (all processes)",
        "alerts",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sizes:
        imp, raw, chk, sql = (r.get(k) or {} for k in ("import", "raw_load", "check", "hand_sql"))
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['accounts']:,}",
                    fmt(r.get("rows"), ","),
                    fmt(imp.get("seconds")),
                    fmt(raw.get("seconds")),
                    fmt(imp["seconds"] / raw["seconds"] if imp and raw else None, ".1f", "x"),
                    fmt(imp.get("rows_per_s"), ",.0f"),
                    fmt(chk.get("seconds")),
                    fmt(sql.get("seconds")),
                    fmt(chk["seconds"] / sql["seconds"] if chk and sql else None, ".2f", "x"),
                    fmt(chk.get("cpu_seconds")),
                    fmt(sql.get("cpu_seconds")),
                    fmt(_rss(imp) / 2**20 if imp else None, ".0f", " MiB"),
                    fmt(_rss(chk) / 2**20 if chk else None, ".0f", " MiB"),
                    fmt(chk.get("alerts"), ","),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _rss(m: dict) -> int:
    return m.get("peak_rss_tree", m["peak_rss"])


def fires_table(r: dict) -> str:
    lines = [
        f"Accounts flagged per rule at {r['accounts']:,} accounts (hand SQL vs kamrules check):",
        "",
        "| rule set | rule | hand SQL | check | both | same accounts | same severities |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in r.get("fires", []):
        lines.append(
            f"| {f['ruleset']} | {f['rule']} | {f['hand_sql']:,} | {f['check']:,} | {f['both']:,} | {'yes' if f['match'] else '**no**'} | {'yes' if f.get('severity_match') else '**no**'} |"
        )
    return "\n".join(lines)


def targets(sizes: list[dict], slopes: dict) -> list[str]:
    out = []
    for r in sizes:
        n = r["accounts"]
        if r.get("check") and r.get("hand_sql"):
            ratio = r["check"]["seconds"] / r["hand_sql"]["seconds"]
            out.append(
                f"{'PASS' if ratio <= TARGET_CHECK_RATIO else 'FAIL'} check <= 1.0x hand SQL at {n:,}: {ratio:.2f}x"
            )
        if r.get("import"):
            rate = r["import"]["rows_per_s"]
            out.append(
                f"{'PASS' if rate >= TARGET_IMPORT_RATE else 'FAIL'} import >= 150k rows/s at {n:,}: {rate:,.0f} rows/s"
            )
        for step in ("import", "check"):
            if r.get(step):
                rss = _rss(r[step])
                tag = "PASS" if rss <= TARGET_RSS else "FAIL"
                scope = "" if n >= 1_000_000 else " (target is for 1M)"
                out.append(
                    f"{tag} peak RSS {step} <= 2 GiB at {n:,} ({r.get('rows', 0):,} rows){scope}: {rss / 2**20:,.0f} MiB"
                )
        if r.get("backtest"):
            b = r["backtest"]
            out.append(
                f"{'PASS' if b['ratio'] <= TARGET_BACKTEST_RATIO else 'FAIL'} backtest of {b['dates']} weekly dates "
                f"<= 4x one check at {n:,}: {b['ratio']:.2f}x wall ({b['backtest']['seconds']:.2f}s vs "
                f"{b['check']['seconds']:.2f}s), {b['cpu_ratio']:.2f}x CPU; peak RSS {_rss(b['backtest']) / 2**20:,.0f} MiB "
                f"vs check {_rss(b['check']) / 2**20:,.0f} MiB"
            )
    for k, v in slopes.items():
        if v is not None:
            out.append(f"slope {k}: {v:.3f} s per 100k accounts")
    return out


def render(results: list[dict], title: str, how: str) -> tuple[str, dict]:
    """The markdown report (table, targets, per-rule comparison, profile shares) and the slopes."""
    slopes = {
        "import": slope([(r["accounts"], r["import"]["seconds"]) for r in results if r.get("import")]),
        "raw load": slope([(r["accounts"], r["raw_load"]["seconds"]) for r in results if r.get("raw_load")]),
        "check": slope([(r["accounts"], r["check"]["seconds"]) for r in results if r.get("check")]),
        "hand SQL": slope([(r["accounts"], r["hand_sql"]["seconds"]) for r in results if r.get("hand_sql")]),
    }
    report = [f"## {title}", "", f"Machine: {machine()['cpu']}, {os.cpu_count()} cores; {how}", "", table(results), ""]
    report += ["Targets:", ""] + [f"- {t}" for t in targets(results, slopes)] + [""]
    for r in results:
        if r.get("fires"):
            report += [fires_table(r), ""]
    for r in results:
        for step, p in (r.get("profile") or {}).items():
            report += [f"Profile `kamrules {step}` at {r['accounts']:,} accounts ({p['tool']}), share of time:", ""]
            report += [f"- {k}: {v:.0%}" for k, v in list(p["categories"].items())[:8]] + [""]
    return "\n".join(report), slopes


def combine(paths: list[str], workdir: str, save: bool = True) -> int:
    """Rebuild one report from saved result files (newest figure per size); per-rule comparison recomputed."""
    by_size: dict[int, dict] = {}
    for p in paths:
        doc = json.loads(Path(p).read_text())
        for r in doc["sizes"]:  # later files add or replace steps of earlier ones
            steps = [k for k in ("import", "raw_load", "check", "hand_sql", "profile") if r.get(k)]
            r.update({f"commit_{k}": doc["commit"] for k in steps})
            by_size.setdefault(r["accounts"], {}).update(r)
    results = [by_size[k] for k in sorted(by_size)]
    for r in results:
        wd = Path(workdir) / str(r["accounts"])
        if (wd / "hand_sql.json").exists() and (wd / "check.json").exists():
            r["fires"] = compare(json.loads((wd / "hand_sql.json").read_text()), wd / "check.json")
    commits = "; ".join(
        f"{r['accounts']:,}: " + ", ".join(f"{k[7:]} {v}" for k, v in r.items() if k.startswith("commit_"))
        for r in results
    )
    text, slopes = render(results, f"Combined {dt.date.today()} (commits {commits})", "sizes from " + ", ".join(paths))
    print(text)
    if not save:
        return 0
    with open(RESULTS / "summary.md", "a", encoding="utf-8") as f:
        f.write(text + "\n\n")
    out = RESULTS / f"{dt.date.today()}-combined.json"
    out.write_text(
        json.dumps(
            {"sources": paths, "sizes": results, "slopes_s_per_100k": slopes, "machine": machine()},
            indent=1,
            ensure_ascii=False,
            default=str,
        )
    )
    print(f"\nwrote {out.relative_to(ROOT)} and benchmarks/results/summary.md", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("Results:")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000,1000000", help="accounts per book, comma-separated")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--as-of", default="2026-10-31")
    ap.add_argument("--workdir", default=str(HERE / "work"))
    ap.add_argument("--skip-generate", action="store_true", help="reuse a book already generated in the workdir")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"subset of {','.join(STEPS)}")
    ap.add_argument("--repeat", type=int, default=1, help="repeat check / hand SQL / import, keep the fastest")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also profile `kamrules import` and `kamrules check` (py-spy if installed)",
    )
    ap.add_argument("--cprofile", action="store_true", help="profile with cProfile even if py-spy is installed")
    ap.add_argument("--no-save", action="store_true", help="don't write benchmarks/results/")
    ap.add_argument("--combine", metavar="JSON,...", help="only rebuild one report from saved results/*.json files")
    args = ap.parse_args(argv)
    if args.combine:
        return combine(args.combine.split(","), args.workdir, save=not args.no_save)
    steps = set(args.steps.split(","))
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]

    check_extra = []
    if "check" in steps:
        h = kamrules_help("check")
        if "--no-history" in h:
            check_extra.append("--no-history")

    # Byte-compile the tool first, as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on some
    # CI machines) an editable checkout would otherwise recompile every changed module on every run.
    import compileall

    for pkg in ("kamrules", "plugins"):
        compileall.compile_dir(str(ROOT / pkg), quiet=1)
    started = dt.datetime.now(dt.UTC)
    commit = git_commit()
    results = [bench_size(n, args, steps, check_extra) for n in sizes]

    text, slopes = render(
        results,
        f"{started:%Y-%m-%d %H:%M} UTC, commit {commit}",
        f"seed {args.seed}, as of {args.as_of}; check {' '.join(check_extra) or '(all rule sets)'}",
    )
    print(text)

    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{started:%Y-%m-%d}-{commit}.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        by_size = {r["accounts"]: r for r in old.get("sizes", [])}
        by_size.update({r["accounts"]: r for r in results})
        doc = {
            "date": started.isoformat(timespec="seconds"),
            "commit": commit,
            "machine": machine(),
            "args": {k: v for k, v in vars(args).items()},
            "check_options": check_extra,
            "sizes": [by_size[k] for k in sorted(by_size)],
            "slopes_s_per_100k": slopes,
        }
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=str))
        with open(RESULTS / "summary.md", "a", encoding="utf-8") as f:
            f.write(text + "\n\n")
        print(f"\nwrote {path.relative_to(ROOT)} and benchmarks/results/summary.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
