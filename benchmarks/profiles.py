"""Where the time goes: run a kamrules command under py-spy (native frames) or cProfile and sum by category."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

# durable_rules = the Python package `durable` + its C extension `rules` (rete.c, state.c, ...)
DURABLE_C = ("rules.cpython", "rete.c", "state.c", "events.c", "json.c", "regex.c", "rules.c", "/durable/", "durable/")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<where>[^()]*)\)$")


def category(frames: list[str]) -> str:
    """Category of one sampled stack (root first): the innermost frame we can name decides."""
    for fr in reversed(frames):
        m = FRAME.match(fr)
        func, where = (m.group("func"), m.group("where")) if m else (fr, "")
        if (
            "libsqlite3" in where
            or func.startswith(("pysqlite_", "_pysqlite", "stmt_step", "sqlite3"))
            or "sqlite_utils" in where
        ):
            return "SQL (sqlite3 / sqlite-utils)"
        if any(k in where for k in DURABLE_C) or "durable" in where:
            return "durable_rules"
        if "_csv" in where or where.startswith("csv.py") or func.startswith("Reader_iternext"):
            return "CSV parsing"
        if where.startswith(("json/", "encoder.py", "decoder.py")) or "_json" in where:
            return "JSON encode/decode"
    for fr in reversed(frames):
        m = FRAME.match(fr)
        where = m.group("where") if m else ""
        if "importlib" in where or "<frozen" in where:
            return "startup (imports)"
        if re.match(r"^[\w/.-]*\.py:\d+$", where) and (
            "kamrules" in where or "plugins" in where or where.split(":")[0] in KAMRULES_FILES
        ):
            return "python: " + where.split(":")[0]
    return "other (interpreter, libc, GC)"


KAMRULES_FILES: set[str] = set()


def _our_files() -> set[str]:
    root = Path(__file__).resolve().parent.parent
    return {p.name for d in ("kamrules", "plugins") for p in (root / d).rglob("*.py")} - {"__init__.py"}


def py_spy_available() -> bool:
    return shutil.which("py-spy") is not None


def record(cmd: list[str], out_raw: Path, stdout: Path | None = None, rate: int = 250) -> None:
    """Sample ``cmd`` with py-spy (native frames, collapsed stacks) into ``out_raw``."""
    spy = ["py-spy", "record", "--native", "--format", "raw", "--rate", str(rate), "-o", str(out_raw), "--"]
    with open(stdout or "/dev/null", "wb") as f:
        subprocess.run(spy + cmd, stdout=f, stderr=subprocess.DEVNULL, check=False)


def summarize_raw(raw: Path, top: int = 20) -> dict:
    """Categories (share of samples) and the hottest kamrules functions (inclusive samples)."""
    KAMRULES_FILES.update(_our_files())
    cats: Counter = Counter()
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        frames = stack.split(";")
        total += n
        cats[category(frames)] += n
        seen = set()
        for fr in frames:
            m = FRAME.match(fr)
            if (
                m
                and re.search(r"(kamrules|plugins)/[\w/]+\.py:\d+$", m.group("where"))
                or (m and m.group("where").split(":")[0] in KAMRULES_FILES)
            ):
                key = f"{m.group('func')} ({m.group('where').rsplit(':', 1)[0]})"
                if key not in seen:
                    inclusive[key] += n
                    seen.add(key)
        leaf[frames[-1] if frames else "?"] += n
    share = lambda c: {k: round(v / total, 3) for k, v in c.most_common(top)} if total else {}  # noqa: E731
    return {
        "tool": "py-spy --native",
        "samples": total,
        "categories": share(cats),
        "inclusive_kamrules_functions": share(inclusive),
        "leaf_frames": share(leaf),
    }


def cprofile(cmd_args: list[str], out: Path, stdout: Path | None, cwd: Path) -> dict:
    """Fallback: cProfile `python -m kamrules ARGS`, tottime summed per category."""
    import pstats

    with open(stdout or "/dev/null", "wb") as f:
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "kamrules"] + cmd_args,
            stdout=f,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            check=False,
        )
    st = pstats.Stats(str(out))
    cats: dict[str, float] = defaultdict(float)
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():
        cats[_cprofile_category(file, func)] += tt
        rows.append((tt, ct, nc, func if file == "~" else f"{func} ({Path(file).name}:{line})"))
    rows.sort(reverse=True)
    total = st.total_tt or 1
    return {
        "tool": "cProfile",
        "total_s": round(st.total_tt, 3),
        "categories": {k: round(v / total, 3) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
        "top_tottime": [
            {"tottime": round(r[0], 3), "cumtime": round(r[1], 3), "calls": r[2], "where": r[3]} for r in rows[:20]
        ],
        "top_cumtime": [
            {"tottime": round(r[0], 3), "cumtime": round(r[1], 3), "calls": r[2], "where": r[3]}
            for r in sorted(rows, key=lambda r: -r[1])[:20]
        ],
    }


def _cprofile_category(file: str, func: str) -> str:
    f = file.replace("\\", "/")
    if (
        file == "~"
    ):  # built-ins: "<method 'execute' of 'sqlite3.Connection' objects>", "<built-in method rules.assert_fact>"
        if "sqlite3" in func:
            return "SQL (sqlite3 / sqlite-utils)"
        if "rules." in func:
            return "durable_rules"
        if "_csv" in func:
            return "CSV parsing"
        if "json" in func:
            return "JSON encode/decode"
        if "format" in func:
            return "str.format (messages)"
        return "other (builtins)"
    if "sqlite_utils" in f:
        return "SQL (sqlite3 / sqlite-utils)"
    if "/durable/" in f:
        return "durable_rules"
    if f.endswith("/csv.py"):
        return "CSV parsing"
    if "/json/" in f:
        return "JSON encode/decode"
    if "importlib" in f or "<frozen" in f:
        return "startup (imports)"
    if "/kamrules/" in f or "/plugins/" in f:
        return "python: " + f.split("/main/", 1)[-1]
    return "other Python (stdlib, pluggy, click, ...)"
