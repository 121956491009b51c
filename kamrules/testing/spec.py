"""Loading test files: YAML with line numbers, strict validation (FILE:LINE: message), rule-code checks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

import yaml

from kamrules.errors import InputError, Problem
from kamrules.testing.model import ABSENT, Case, Expect, Quiet, TestFile  # noqa: F401

FILE_KEYS = {"as_of", "rulesets", "select", "ignore", "min_severity", "book", "cases"}
CASE_KEYS = {"name", "as_of", "rulesets", "select", "ignore", "min_severity", "book", "expect", "quiet", "exhaustive"}
EXPECT_KEYS = {"code", "account", "scope", "severity", "message", "evidence"}
QUIET_KEYS = {"account", "code"}
from kamrules.vocab import SEVERITIES  # noqa: E402


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
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", knode.start_mark
            ) from None
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
            self.err(
                m.lines[key],
                f"{what}: expected a plain value, not a {'mapping' if isinstance(value, dict) else 'list'}",
            )
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
                    self.err(
                        m.lines["rulesets"], f"rulesets: {d}: no such folder (paths are relative to the test file)"
                    )
                dirs.append(str(p))
            out["rulesets"] = tuple(dirs)
        for key in ("select", "ignore"):
            if key in m:
                out[key] = self.strings(m, key)
        if "min_severity" in m:
            if m["min_severity"] not in SEVERITIES:
                self.err(
                    m.lines["min_severity"],
                    f"min_severity: {m['min_severity']!r} (expected one of: {', '.join(SEVERITIES)})",
                )
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
                self.err(
                    line, f"book: {value}: no such folder (expected a folder of data files, relative to the test file)"
                )
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
                account = self.text(q, "account", "account") if "account" in q else None
                code = str(q.get("code") or "")
                if account is None and not code:
                    self.err(q.line, "quiet: needs `account:`, `code:` or both")
                    continue
                out.append(Quiet(account, code, q.line))
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
                self.err(
                    m.lines["expect"], "expect: expected a list of alerts ({code: ..., account: ..., severity: ...})"
                )
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
            name=name.strip(),
            line=m.line,
            as_of=opts.get("as_of", ""),
            book=opts.get("book", (None, {})),
            rulesets=opts.get("rulesets", ()),
            select=opts.get("select", ()),
            ignore=opts.get("ignore", ()),
            min_severity=opts.get("min_severity", "info"),
            expect=tuple(expect),
            quiet=quiet,
            exhaustive=exhaustive is True,
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
        raise InputError(f"{path}: no such test file") from None
    except (UnicodeDecodeError, IsADirectoryError) as e:
        raise InputError(f"{path}: not a UTF-8 text file ({e.__class__.__name__})") from e
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise InputError(
            f"{path}: invalid test file",
            [Problem(str(path), mark.line + 1 if mark else None, f"{e.problem or e.context} (expected valid YAML)")],
        ) from e
    p = _Parser(path, tables)
    if not isinstance(data, LMap):
        raise InputError(
            f"{path}: invalid test file",
            [
                Problem(
                    str(path),
                    1,
                    "expected a mapping with a `cases:` list (see docs/plugins.md#testing-rules-kamrules-test)",
                )
            ],
        )
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


def check_codes(tf: TestFile, codes: Iterable[str], for_case=None) -> list[Problem]:
    """Problems for expected codes no loaded rule has, and quiet codes no rule starts with.

    ``codes`` are the loaded rules' codes; ``for_case(case)``, if given, returns them per case.
    """
    problems = []
    for case in tf.cases:
        known = for_case(case) if for_case else codes
        if known is None:  # the rule sets do not load: running the case reports why
            continue
        known = sorted(known)
        for e in case.expect:
            if e.code not in known:
                near = difflib.get_close_matches(e.code, known, n=5)
                near.sort(
                    key=lambda k: (-sum(a == b for a, b in zip(k, e.code, strict=False)), k)
                )  # typos keep positions
                hint = f"; did you mean {near[0]}?" if near else ""
                problems.append(
                    Problem(
                        tf.path,
                        e.line,
                        f"expect: no loaded rule has the code {e.code!r}{hint} (rule sets: the registered ones plus this case's rulesets:)",
                    )
                )
        for q in case.quiet:
            if q.code and not any(k.startswith(q.code) for k in known):
                problems.append(Problem(tf.path, q.line, f"quiet: no loaded rule code starts with {q.code!r}"))
    return problems
