"""Running rule tests: each case's book in a temporary store (real importer), run_check, evaluate."""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from kamrules.errors import InputError, KamrulesError, Problem
from kamrules.testing.model import ABSENT, Case, CaseResult, TestRun
from kamrules.testing.spec import check_codes, collect_paths, load_test_file


def write_book(book, folder: Path) -> dict[str, dict[int, int]]:
    """Write a case's book into ``folder``: a copied folder and/or one CSV per inline table.

    Returns {csv file name: {csv line: test file line}} to place import problems.
    """
    source, tables = book
    if source is not None:
        shutil.copytree(source, folder, dirs_exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    where: dict[str, dict[int, int]] = {}
    for name, rows in tables.items():
        for old in folder.iterdir():
            if old.is_file() and old.stem.lower() == name.lower():
                old.unlink()
        if not rows:  # `table: []`: the table is empty in this case
            continue
        header: list[str] = []
        for values, _ in rows:
            header += [c for c in values if c not in header]
        target = folder / f"{name}.csv"
        lines: dict[int, int] = {}
        with open(target, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            at = 2
            for values, line in rows:
                row = [values.get(c, "") for c in header]
                w.writerow(row)
                lines[at] = line
                at += 1 + sum(v.count("\n") for v in row)
        where[str(target)] = lines
    return where


def _relocate(problems: Sequence[Problem], where: dict, test_file: str, folder: Path) -> list[str]:
    out = []
    for p in problems:
        lines = where.get(p.file)
        if lines is not None and p.line in lines:
            table = Path(p.file).stem
            col = f"{p.column}: " if p.column else ""
            out.append(f"{test_file}:{lines[p.line]}: book: {table}: {col}{p.message}")
        else:
            text = str(p)
            out.append(text.replace(str(folder), "book") if str(folder) in text else text)
    return out


def evaluate(case: Case, alerts: Sequence, summary=None) -> CaseResult:
    """Compare fired ``alerts`` with a case: missing expectations, unexpected alerts, loud quiet accounts."""
    res = CaseResult(case.name, "", case.line, alerts=len(alerts), fired=list(alerts))
    remaining = list(alerts)
    order = sorted(
        case.expect,
        key=lambda e: (
            -(
                len(e.message)
                + len(e.evidence)
                + (e.severity is not None)
                + (e.account is not ABSENT)
                + (e.scope is not ABSENT)
            )
        ),
    )
    skipped = dict(getattr(summary, "skipped", None) or [])
    for e in order:
        hit = next((a for a in remaining if not e.mismatches(a)), None)
        if hit is not None:
            remaining.remove(hit)
            continue
        near = [a for a in alerts if a.code == e.code and (e.account is ABSENT or a.account_id == e.account)]
        closest = min(near, key=lambda a: len(e.mismatches(a)), default=None)
        note = f"{e.code} was skipped: {skipped[e.code]}" if e.code in skipped else ""
        res.missing.append((e, closest, e.mismatches(closest) if closest else [], note))
    res.missing.sort(key=lambda m: m[0].line)
    named = {e.code for e in case.expect}
    shown = {id(m[1]) for m in res.missing if m[1] is not None}  # already shown as 'closest'
    res.unexpected = [a for a in remaining if (case.exhaustive or a.code in named) and id(a) not in shown]
    for a in alerts:
        for q in case.quiet:
            if q.hits(a):
                res.loud.append((q, a))
                break
    failures = list(getattr(summary, "failures", None) or [])
    res.notes += [f"rule failed: {where}: {msg}" for where, msg in failures]
    if res.missing or res.unexpected or res.loud or failures:
        res.status = "failed"
    return res


def run_case(case: Case, test_file: str, pm) -> CaseResult:
    """Build the case's book in a temporary store with the real importer, run the check, evaluate."""
    from kamrules.check import run_check
    from kamrules.store import Store

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kamrules-test-") as tmp:
        folder = Path(tmp) / "book"
        where = write_book(case.book, folder)
        store = Store.open(Path(tmp) / "book.db", pm=pm)
        try:
            if any(folder.iterdir()):
                store.import_paths([folder])
            result = run_check(
                store,
                case.as_of,
                rulesets_dirs=case.rulesets,
                select=case.select,
                ignore=case.ignore,
                min_severity=case.min_severity,
                pm=pm,
            )
            res = evaluate(case, result.alerts, result.summary)
        except KamrulesError as e:
            res = CaseResult(case.name, "", case.line, status="error")
            res.notes = [str(e)] + _relocate(e.problems, where, test_file, folder)
        finally:
            store.close()
    res.file = test_file
    res.seconds = time.perf_counter() - started
    return res


def rule_codes(pm):
    """``codes(rulesets_dirs)``: the codes of the registered rule sets plus those folders (None if they do not load)."""
    from kamrules.check import builtin_ruleset_files
    from kamrules.ruleset import resolve

    cache: dict = {}

    def codes(dirs):
        if dirs not in cache:
            try:
                cache[dirs] = {r.code for rs in resolve(builtin_ruleset_files(pm, []), dirs) for r in rs.rules}
            except InputError:
                cache[dirs] = None
        return cache[dirs]

    return codes


def run_tests(paths: Iterable, pm=None, progress=None) -> TestRun:
    """Load every test file (all validated before any case runs), then run every case.

    Raises :class:`InputError` (exit 2) listing the problems of every invalid file.
    ``progress(done, total)`` is called after each case.
    """
    from kamrules.store import collect_tables

    if pm is None:
        from kamrules.plugins import default_plugin_manager

        pm = default_plugin_manager()
    started = time.perf_counter()
    tables = collect_tables(pm)
    files, problems = [], []
    codes = rule_codes(pm)
    for path in collect_paths(paths):
        try:
            tf = load_test_file(path, tables)
        except InputError as e:
            problems += e.problems or [Problem(str(path), None, str(e))]
            continue
        problems += check_codes(tf, (), for_case=lambda case: codes(case.rulesets))
        files.append(tf)
    if problems:
        raise InputError(f"invalid test file(s): {len(problems)} problem(s)", problems)
    run = TestRun(files=[f.path for f in files])
    for f in files:
        for case in f.cases:
            book = case.book[0] if isinstance(case.book, tuple) else case.book
            run.inputs += [*map(str, case.rulesets), *([str(book)] if isinstance(book, Path) else [])]
    total = sum(len(f.cases) for f in files)
    for f in files:
        for case in f.cases:
            run.cases.append(run_case(case, f.path, pm))
            if progress is not None:
                progress(len(run.cases), total)
    run.seconds = time.perf_counter() - started
    return run
