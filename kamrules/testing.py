"""Rule tests as files (``kamrules test``): load and validate test YAML, run cases, report."""

from __future__ import annotations

import csv
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from kamrules.errors import InputError, KamrulesError, Problem

class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # an expectation field that was not given
FILE_KEYS = {"as_of", "rulesets", "select", "ignore", "min_severity", "book", "cases"}
CASE_KEYS = {"name", "as_of", "rulesets", "select", "ignore", "min_severity", "book", "expect", "quiet", "exhaustive"}
EXPECT_KEYS = {"code", "account", "scope", "severity", "message", "evidence"}
QUIET_KEYS = {"account", "code"}
SEVERITIES = ("info", "warning", "critical")


# -- YAML with line numbers ---------------------------------------------------
class LMap(dict):
    """A mapping from YAML that knows its line, its keys' lines and its scalars' raw text."""

    line = 0
    lines: dict
    raw: dict


class LList(list):
    line = 0
    lines: list
    raw: list


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps (dates stay text) that records lines."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = LMap()
    out.line, out.lines, out.raw = node.start_mark.line + 1, {}, {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value", knode.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", knode.start_mark)
        out[key] = loader.construct_object(vnode, deep=True)
        out.lines[key] = knode.start_mark.line + 1
        if isinstance(vnode, yaml.ScalarNode):
            out.raw[key] = vnode.value
    return out


def _construct_seq(loader, node):
    out = LList(loader.construct_object(n, deep=True) for n in node.value)
    out.line, out.lines = node.start_mark.line + 1, [n.start_mark.line + 1 for n in node.value]
    out.raw = [n.value if isinstance(n, yaml.ScalarNode) else None for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


# -- the test file as immutable objects ---------------------------------------
@dataclass(frozen=True)
class Expect:
    code: str
    line: int
    account: Any = ABSENT  # str, None (portfolio) or ABSENT (any)
    scope: Any = ABSENT
    severity: str | None = None
    message: tuple[str, ...] = ()
    evidence: tuple[tuple[str, Any], ...] = ()

    def mismatches(self, alert) -> list[str]:
        """Why ``alert`` does not match (empty: it matches)."""
        why = []
        if alert.code != self.code:
            why.append(f"code {alert.code} != {self.code}")
        if self.account is not ABSENT and alert.account_id != self.account:
            why.append(f"account {alert.account_id} != {self.account}")
        if self.scope is not ABSENT and (alert.scope_key or "") != self.scope:
            why.append(f"scope {alert.scope_key!r} != {self.scope!r}")
        if self.severity and alert.severity != self.severity:
            why.append(f"severity {alert.severity} != {self.severity}")
        for part in self.message:
            if part not in alert.message:
                why.append(f"message lacks {part!r}")
        for name, want in self.evidence:
            if name not in alert.evidence:
                why.append(f"evidence has no {name}")
            elif not values_match(alert.evidence[name], want):
                why.append(f"evidence {name} = {alert.evidence[name]!r} != {want!r}")
        return why

    def describe(self) -> str:
        text = f"{self.code} on {_where(self.account, self.scope)}"
        if self.severity:
            text += f" {self.severity}"
        if self.message:
            text += ", message contains " + " and ".join(f'"{m}"' for m in self.message)
        if self.evidence:
            text += ", evidence " + ", ".join(f"{k}={v!r}" for k, v in self.evidence)
        return text


@dataclass(frozen=True)
class Quiet:
    account: str
    code: str = ""  # a code or code prefix; empty = any
    line: int = 0

    def hits(self, alert) -> bool:
        return alert.account_id == self.account and alert.code.startswith(self.code)


@dataclass(frozen=True)
class Case:
    name: str
    line: int
    as_of: str
    book: Any  # {table: ((row dict of raw text, line), ...)} or a folder Path, or a pair (folder, tables)
    rulesets: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    min_severity: str = "info"
    expect: tuple[Expect, ...] = ()
    quiet: tuple[Quiet, ...] = ()
    exhaustive: bool = False


@dataclass(frozen=True)
class TestFile:
    path: str
    cases: tuple[Case, ...]


def values_match(got, want) -> bool:
    """Equality; a float ``want`` matches to the precision it was written with."""
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if isinstance(want, int):
            return float(got) == float(want)
        text = repr(want)
        decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 6
        return math.isclose(got, want, abs_tol=0.5 * 10**-decimals + 1e-12)
    return got == want or str(got) == str(want)


def _where(account, scope) -> str:
    if account is ABSENT:
        return "any account" if scope is ABSENT else f"portfolio scope {scope!r}"
    if account is None:
        return "the portfolio" + (f" scope {scope!r}" if scope not in (ABSENT, "", None) else "")
    return str(account)


# -- loading and validating ---------------------------------------------------
class _Parser:
    def __init__(self, path: Path, tables: dict | None):
        self.path, self.base, self.tables = str(path), path.parent, tables
        self.problems: list[Problem] = []

    def err(self, line, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def keys(self, m: LMap, allowed: set, what: str) -> None:
        for k in m:
            if k not in allowed:
                self.err(m.lines[k], f"unknown key {k!r} in {what} (expected one of: {', '.join(sorted(allowed))})")

    def text(self, m: LMap, key: str, what: str):
        """A scalar as the text it was written as (so ids like 007 stay 007); None if null."""
        value = m[key]
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            self.err(m.lines[key], f"{what}: expected a plain value, not a {'mapping' if isinstance(value, dict) else 'list'}")
            return None
        return m.raw.get(key, str(value))

    def strings(self, m: LMap, key: str) -> tuple[str, ...]:
        value = m[key]
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            return tuple(value.raw[i] or str(v) for i, v in enumerate(value))
        self.err(m.lines[key], f"{key}: expected a string or a list of strings")
        return ()

    def common(self, m: LMap, inherit: dict) -> dict:
        out = dict(inherit)
        if "as_of" in m:
            value = self.text(m, "as_of", "as_of")
            try:
                out["as_of"] = _iso_date(value)
            except ValueError:
                self.err(m.lines["as_of"], f"as_of: {value!r} is not a date (expected YYYY-MM-DD)")
        if "rulesets" in m:
            dirs = []
            for d in self.strings(m, "rulesets"):
                p = (self.base / d).resolve()
                if not p.exists():
                    self.err(m.lines["rulesets"], f"rulesets: {d}: no such folder (paths are relative to the test file)")
                dirs.append(str(p))
            out["rulesets"] = tuple(dirs)
        for key in ("select", "ignore"):
            if key in m:
                out[key] = self.strings(m, key)
        if "min_severity" in m:
            if m["min_severity"] not in SEVERITIES:
                self.err(m.lines["min_severity"], f"min_severity: {m['min_severity']!r} (expected one of: {', '.join(SEVERITIES)})")
            else:
                out["min_severity"] = m["min_severity"]
        if "book" in m:
            out["book"] = self.book(m, inherit.get("book"))
        return out

    def book(self, m: LMap, inherit):
        """(folder or None, {table: ((row, line), ...)}); a case's tables replace the file's."""
        value, line = m["book"], m.lines["book"]
        if isinstance(value, str):
            folder = (self.base / value).resolve()
            if not folder.is_dir():
                self.err(line, f"book: {value}: no such folder (expected a folder of data files, relative to the test file)")
            return (folder, {})
        if not isinstance(value, LMap):
            self.err(line, "book: expected a mapping of table name to a list of rows, or a folder name")
            return inherit or (None, {})
        folder, tables = inherit or (None, {})
        tables = dict(tables)
        for name, rows in value.items():
            tables[name] = self.rows(value, name, rows)
        return (folder, tables)

    def rows(self, book: LMap, name: str, rows) -> tuple:
        line = book.lines[name]
        table = None
        if self.tables is not None:
            table = self.tables.get(name)
            if table is None:
                self.err(line, f"book: unknown table {name!r} (expected one of: {', '.join(sorted(self.tables))})")
        if rows is None:
            return ()
        if not isinstance(rows, LList):
            self.err(line, f"book: {name}: expected a list of rows (mappings of column: value)")
            return ()
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, LMap):
                self.err(rows.lines[i], f"book: {name}: a row must be a mapping of column: value")
                continue
            values = {}
            for col in row:
                if table is not None and table.column(col) is None:
                    known = ", ".join(c.name for c in table.columns)
                    self.err(row.lines[col], f"book: {name}: unknown column {col!r} (expected one of: {known})")
                    continue
                text = self.text(row, col, f"{name}.{col}")
                values[str(col)] = "" if text is None else text
            out.append((values, row.line))
        return tuple(out)

    def expect(self, m: LMap) -> Expect | None:
        self.keys(m, EXPECT_KEYS, "an expected alert")
        if not isinstance(m.get("code"), str):
            self.err(m.line, "expect: each alert needs `code:` (a rule code such as KAM101)")
            return None
        kw: dict = {"code": m["code"], "line": m.line}
        if "account" in m:
            kw["account"] = self.text(m, "account", "account")
        if "scope" in m:
            kw["scope"] = "" if m["scope"] is None else self.text(m, "scope", "scope")
        if "severity" in m:
            if m["severity"] not in SEVERITIES:
                self.err(m.lines["severity"], f"severity: {m['severity']!r} (expected one of: {', '.join(SEVERITIES)})")
            kw["severity"] = m["severity"]
        if "message" in m:
            kw["message"] = self.strings(m, "message")
        if "evidence" in m:
            if not isinstance(m["evidence"], LMap):
                self.err(m.lines["evidence"], "evidence: expected a mapping of fact or threshold name: value")
            else:
                kw["evidence"] = tuple((str(k), v) for k, v in m["evidence"].items())
        return Expect(**kw)

    def quiet(self, items: LList) -> tuple[Quiet, ...]:
        out = []
        for i, q in enumerate(items):
            if isinstance(q, LMap):
                self.keys(q, QUIET_KEYS, "a quiet entry")
                if "account" not in q or q["account"] is None:
                    self.err(q.line, "quiet: needs `account:` (and optionally `code:`)")
                    continue
                out.append(Quiet(self.text(q, "account", "account"), str(q.get("code") or ""), q.line))
            elif isinstance(q, (str, int)) and not isinstance(q, bool):
                out.append(Quiet(items.raw[i] or str(q), "", items.lines[i]))
            else:
                self.err(items.lines[i], "quiet: expected an account id or {account: ID, code: CODE}")
        return tuple(out)

    def case(self, m: LMap, defaults: dict) -> Case | None:
        self.keys(m, CASE_KEYS, "a case")
        name = m.get("name")
        if not isinstance(name, str) or not name.strip():
            self.err(m.line, "a case needs `name:` (a short sentence saying what it proves)")
            name = f"case at line {m.line}"
        opts = self.common(m, defaults)
        if "as_of" not in opts:
            self.err(m.line, "no as_of: give `as_of: YYYY-MM-DD` in the case or at the top of the file")
        expect = []
        if "expect" in m:
            items = m["expect"]
            if not isinstance(items, LList):
                self.err(m.lines["expect"], "expect: expected a list of alerts ({code: ..., account: ..., severity: ...})")
            else:
                for i, e in enumerate(items):
                    if not isinstance(e, LMap):
                        self.err(items.lines[i], "expect: each alert must be a mapping ({code: ..., account: ...})")
                    elif (x := self.expect(e)) is not None:
                        expect.append(x)
        quiet = ()
        if "quiet" in m:
            if not isinstance(m["quiet"], LList):
                self.err(m.lines["quiet"], "quiet: expected a list of account ids or {account: ID, code: CODE}")
            else:
                quiet = self.quiet(m["quiet"])
        if not expect and not quiet:
            self.err(m.line, "a case must expect something: give `expect:` alerts and/or `quiet:` accounts")
        exhaustive = m.get("exhaustive", False)
        if not isinstance(exhaustive, bool):
            self.err(m.lines["exhaustive"], "exhaustive: expected true or false")
        return Case(
            name=name.strip(), line=m.line, as_of=opts.get("as_of", ""), book=opts.get("book", (None, {})),
            rulesets=opts.get("rulesets", ()), select=opts.get("select", ()), ignore=opts.get("ignore", ()),
            min_severity=opts.get("min_severity", "info"), expect=tuple(expect), quiet=quiet, exhaustive=exhaustive is True,
        )


def _iso_date(value) -> str:
    import datetime as dt

    return dt.date.fromisoformat(str(value)).isoformat()


def load_test_file(path, tables: dict | None = None) -> TestFile:
    """Parse and validate one test file; :class:`InputError` lists every problem as FILE:LINE: message.

    ``tables`` ({name: Table}, e.g. ``Store.tables``) enables checking table and
    column names of inline rows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such test file")
    except (UnicodeDecodeError, IsADirectoryError) as e:
        raise InputError(f"{path}: not a UTF-8 text file ({e.__class__.__name__})")
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise InputError(f"{path}: invalid test file", [Problem(str(path), mark.line + 1 if mark else None, f"{e.problem or e.context} (expected valid YAML)")])
    p = _Parser(path, tables)
    if not isinstance(data, LMap):
        raise InputError(f"{path}: invalid test file", [Problem(str(path), 1, "expected a mapping with a `cases:` list (see docs/plugins.md#testing-rules-kamrules-test)")])
    p.keys(data, FILE_KEYS, "the test file")
    defaults = p.common(data, {})
    cases: list[Case] = []
    items = data.get("cases")
    if not isinstance(items, LList) or not items:
        p.err(data.lines.get("cases", 1), "expected `cases:` with a list of at least one case")
        items = LList()
    seen: dict[str, int] = {}
    for i, c in enumerate(items):
        if not isinstance(c, LMap):
            p.err(items.lines[i], "a case must be a mapping (name:, book:, expect:, quiet: ...)")
            continue
        case = p.case(c, defaults)
        if case is None:
            continue
        if case.name in seen:
            p.err(c.line, f"duplicate case name {case.name!r} (first at line {seen[case.name]}; expected unique names)")
        seen.setdefault(case.name, c.line)
        cases.append(case)
    if p.problems:
        raise InputError(f"{path}: invalid test file ({len(p.problems)} problem(s))", p.problems)
    return TestFile(str(path), tuple(cases))


def collect_paths(paths: Iterable) -> list[Path]:
    """Test files from files and folders (every *.yaml / *.yml below a folder, sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in (".yaml", ".yml") and q.is_file())
            if not found:
                raise InputError(f"{p}: no test files in this folder (expected *.yaml files)")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


# -- running ------------------------------------------------------------------
@dataclass
class CaseResult:
    name: str
    file: str
    line: int
    status: str = "passed"  # passed | failed | error
    seconds: float = 0.0
    alerts: int = 0
    missing: list = field(default_factory=list)  # [(Expect, closest Alert or None, [reasons], note)]
    unexpected: list = field(default_factory=list)  # [Alert]
    loud: list = field(default_factory=list)  # [(Quiet, Alert)]
    notes: list = field(default_factory=list)  # run failures, import problems

    def to_dict(self) -> dict:
        return {
            "name": self.name, "file": self.file, "line": self.line, "status": self.status,
            "seconds": round(self.seconds, 3), "alerts": self.alerts,
            "missing": [{"expected": e.describe(), "line": e.line, "closest": _alert_dict(a), "why": why, "note": note} for e, a, why, note in self.missing],
            "unexpected": [_alert_dict(a) for a in self.unexpected],
            "not_quiet": [{"quiet": q.account + (f" {q.code}" if q.code else ""), "line": q.line, "alert": _alert_dict(a)} for q, a in self.loud],
            "notes": list(self.notes),
        }


@dataclass
class TestRun:
    cases: list[CaseResult] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)

    @property
    def passed(self) -> int:
        return self.count("passed")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def ok(self) -> bool:
        return self.passed == len(self.cases)

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else (1 if self.failed else 0)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failed": self.failed, "errors": self.errors, "seconds": round(self.seconds, 3),
                "files": self.files, "cases": [c.to_dict() for c in self.cases]}


def _alert_dict(a) -> dict | None:
    if a is None:
        return None
    return {"code": a.code, "account": a.account_id, "scope": a.scope_key, "severity": a.severity, "message": a.message, "evidence": dict(a.evidence)}


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
        header: list[str] = []
        for values, _ in rows:
            header += [c for c in values if c not in header]
        target = folder / f"{name}.csv"
        lines: dict[int, int] = {}
        with open(target, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header or ["id"])
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
    res = CaseResult(case.name, "", case.line, alerts=len(alerts))
    remaining = list(alerts)
    order = sorted(case.expect, key=lambda e: -(len(e.message) + len(e.evidence) + (e.severity is not None) + (e.account is not ABSENT) + (e.scope is not ABSENT)))
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
            result = run_check(store, case.as_of, rulesets_dirs=case.rulesets, select=case.select, ignore=case.ignore, min_severity=case.min_severity, pm=pm)
            res = evaluate(case, result.alerts, result.summary)
        except KamrulesError as e:
            res = CaseResult(case.name, "", case.line, status="error")
            res.notes = [str(e)] + _relocate(e.problems, where, test_file, folder)
        finally:
            store.close()
    res.file = test_file
    res.seconds = time.perf_counter() - started
    return res


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
    for path in collect_paths(paths):
        try:
            files.append(load_test_file(path, tables))
        except InputError as e:
            problems += e.problems or [Problem(str(path), None, str(e))]
    if problems:
        raise InputError(f"invalid test file(s): {len(problems)} problem(s)", problems)
    run = TestRun(files=[f.path for f in files])
    total = sum(len(f.cases) for f in files)
    for f in files:
        for case in f.cases:
            run.cases.append(run_case(case, f.path, pm))
            if progress is not None:
                progress(len(run.cases), total)
    run.seconds = time.perf_counter() - started
    return run


# -- reports ------------------------------------------------------------------
def describe_alert(a, width: int = 160) -> str:
    where = a.account_id if a.account_id is not None else "the portfolio" + (f" scope {a.scope_key!r}" if a.scope_key else "")
    text = f"{a.code} on {where} {a.severity}: {a.message}"
    return text if len(text) <= width else text[: width - 1] + "…"


def case_details(c: CaseResult) -> list[str]:
    """The readable diff of one case: expected vs got."""
    out = []
    if c.missing:
        out.append("missing (expected but did not fire):")
        for e, closest, why, note in c.missing:
            out.append(f"  {e.describe()}  (line {e.line})")
            if closest is not None:
                out.append(f"    closest: {describe_alert(closest)}")
                out.append(f"    differs: {'; '.join(why)}")
            if note:
                out.append(f"    {note}")
            if closest is None and not note:
                out.append(f"    no {e.code} alert fired on {_where(e.account, e.scope)}")
    if c.unexpected:
        out.append("unexpected (fired but not expected):")
        out += [f"  {describe_alert(a)}" for a in c.unexpected]
    if c.loud:
        out.append("not quiet:")
        out += [f"  {q.account}{' ' + q.code if q.code else ''} (line {q.line}): {describe_alert(a)}" for q, a in c.loud]
    out += c.notes
    return out


def render_text(run: TestRun, verbose: bool = False) -> str:
    lines, current = [], None
    for c in run.cases:
        if c.file != current:
            current = c.file
            lines.append(current)
        label = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}[c.status]
        where = "" if c.status == "passed" else f" ({c.file}:{c.line})"
        lines.append(f"  {label:<5} {c.name} [{c.seconds:.2f}s]{where}")
        if c.status != "passed" or verbose:
            lines += [f"        {d}" for d in case_details(c)]
    parts = [f"{run.passed} passed", f"{run.failed} failed"] + ([f"{run.errors} errors"] if run.errors else [])
    lines.append(f"{', '.join(parts)} in {run.seconds:.2f}s")
    return "\n".join(lines) + "\n"


def _headline(c: CaseResult) -> str:
    if c.status == "error":
        return (c.notes or ["error"])[0].splitlines()[0][:200]
    parts = [f"{len(c.missing)} missing", f"{len(c.unexpected)} unexpected", f"{len(c.loud)} not quiet"]
    return ", ".join(parts) + (f", {len(c.notes)} rule failure(s)" if c.notes else "")


def render_junit(run: TestRun) -> str:
    """JUnit XML: one <testsuite> per test file, one <testcase> per case."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="kamrules test", tests=str(len(run.cases)), failures=str(run.failed), errors=str(run.errors), time=f"{run.seconds:.3f}")
    for path in run.files:
        cases = [c for c in run.cases if c.file == path]
        suite = ET.SubElement(
            root, "testsuite", name=path, tests=str(len(cases)), failures=str(sum(c.status == "failed" for c in cases)),
            errors=str(sum(c.status == "error" for c in cases)), time=f"{sum(c.seconds for c in cases):.3f}",
        )
        for c in cases:
            tc = ET.SubElement(suite, "testcase", classname=Path(path).stem, name=c.name, file=path, line=str(c.line), time=f"{c.seconds:.3f}")
            if c.status != "passed":
                detail = "\n".join(case_details(c))
                tag = "failure" if c.status == "failed" else "error"
                el = ET.SubElement(tc, tag, message=_headline(c), type="RuleTest" + tag.title())
                el.text = detail
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
