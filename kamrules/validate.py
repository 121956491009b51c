"""Validation of imported values: precompiled per-column converters and per-file column plans."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

from kamrules.contract import Column, Table
from kamrules.migrations import quote


class Bad(ValueError):
    """A value that does not fit its column; the message says what was expected."""


EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-\u0080-\uffff]+@[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\-\u0080-\uffff]*[A-Za-z0-9\u0080-\uffff])?(?:\.[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\-\u0080-\uffff]*[A-Za-z0-9\u0080-\uffff])?)+$"
)
_DATE = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_CN_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
BOOLS = {"true": 1, "false": 0, "yes": 1, "no": 0, "1": 1, "0": 0, "y": 1, "n": 0, "t": 1, "f": 0, "是": 1, "否": 0}
# Columns whose values end up in e-mail headers or one-line reports: no line breaks allowed.
SINGLE_LINE = {"name", "owner", "by", "contact"}
# Names SQLite gives every table's row number: a column so named would hide it (and the importer
# tells new rows from updated ones by it).
RESERVED = frozenset({"rowid", "oid", "_rowid_"})
MISSING = "required column is missing"
# Columns of a header, and of a table with the extra columns an import adds (SQLite's limit is 2000).
MAX_COLUMNS = 1000


def show(value: str, limit: int = 40) -> str:
    """A value quoted for a message, shortened if long."""
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return "'" + text.replace("\n", "\\n").replace("\r", "\\r") + "'"


def make_converter(col: Column, strip: bool = False, required: bool = False):
    """A function text -> stored value for ``col``; raises :class:`Bad` with what was expected.

    ``strip``: surrounding blanks are removed (ids, references); ``required``: also required.
    """
    required, kind = col.required or required, col.kind
    default = col.default if col.default is not None else ""  # '' is stored as NULL (NULLIF in the SQL)

    def blank():
        if required:
            raise Bad("missing value (expected a value: the column is required)")
        return default

    if col.choices:
        lookup = {}
        for c in col.choices:
            lookup[c] = c
            lookup[c.upper()] = c
            lookup[c.title()] = c
        expected = ", ".join(col.choices)

        def conv(v):
            try:
                return lookup[v]
            except KeyError:
                s = v.strip()
                if not s:
                    return blank()
                if s.lower() in lookup:
                    return lookup[s.lower()]
                raise Bad(f"{show(v)} is not allowed (expected one of: {expected})") from None

        return conv
    if kind == "int":

        def conv(v):
            try:
                return int(v)
            except ValueError:
                s = v.strip()
                if not s:
                    return blank()
                try:
                    f = float(s)
                except ValueError:
                    f = math.nan
                if f.is_integer():
                    return int(f)
                raise Bad(f"{show(v)} is not a whole number (expected an integer such as 45)") from None

        return conv
    if kind == "float":

        def conv(v):
            try:
                f = float(v)
            except ValueError:
                s = v.strip()
                if not s:
                    return blank()
                if _THOUSANDS.match(s):
                    return float(s.replace(",", ""))
                raise Bad(f"{show(v)} is not a number (expected a decimal number such as 1234.5)") from None
            if math.isfinite(f):
                return f
            raise Bad(f"{show(v)} is not a finite number (expected a decimal number such as 1234.5)")

        return conv
    if kind == "bool":

        def conv(v):
            try:
                return BOOLS[v]
            except KeyError:
                s = v.strip().lower()
                if not s:
                    return blank()
                if s in BOOLS:
                    return BOOLS[s]
                raise Bad(f"{show(v)} is not a boolean (expected true/false, yes/no, 1/0 or 是/否)") from None

        return conv
    if kind == "date":
        fromiso = dt.date.fromisoformat

        def conv(v):
            if len(v) == 10 and v[4] == "-" and v[7] == "-":
                try:
                    fromiso(v)
                    return v
                except ValueError:
                    raise Bad(f"{show(v)} is not a valid date (expected YYYY-MM-DD)") from None
            s = v.strip()
            if not s:
                return blank()
            m = _DATE.match(s) or _CN_DATE.match(s)
            if m:
                try:
                    return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
                except ValueError:
                    pass
            raise Bad(f"{show(v)} is not a date (expected YYYY-MM-DD)")

        return conv
    if kind == "email":

        def conv(v):
            if "\n" in v or "\r" in v:
                raise Bad(f"{show(v)} contains a line break (expected one e-mail address on one line)")
            s = v.strip()
            if not s:
                return blank()
            if EMAIL.match(s):
                return s
            raise Bad(f"{show(v)} is not an e-mail address (expected one address such as li.na@example.com)")

        return conv
    single_line = col.name in SINGLE_LINE
    if strip:

        def conv(v):
            s = v.strip()
            if s:
                return s
            return blank()

        return conv

    def conv(v):
        if v:
            if single_line and ("\n" in v or "\r" in v):
                raise Bad(f"{show(v)} contains a line break (expected a single line)")
            return v
        return blank()

    return conv


def make_reference_converter(col: Column, ids: set, required: bool = False):
    """Like :func:`make_converter` for a reference column: the value must be in ``ids``."""
    required = col.required or required
    target, _, target_col = (col.references or "").partition(".")

    def conv(v):
        if v in ids:
            return v
        s = v.strip()
        if not s:
            if required:
                raise Bad("missing value (expected a value: the column is required)")
            return ""  # stored as NULL
        if s in ids:
            return s
        raise Bad(
            f"{show(s)} is not a known {target}.{target_col} (expected an id in {target}, in the store or in this import)"
        )

    return conv


@dataclass
class Plan:
    """How one header (a CSV header or a JSON object's keys) maps onto a table."""

    table: Table
    columns: list[str]  # target column name per position (None = ignored blank-named column)
    convs: list  # (position, converter) in insert order
    insert_columns: list[str]
    extra: list[str]  # unknown columns to keep (added as TEXT)
    problems: list[tuple[str | None, str]] = field(default_factory=list)  # (column, message) file-level
    absent_required: list[str] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    width: int = 0
    sql: str = ""
    convert: object = None  # compiled in-place row converter (see compile_row)
    insert_sql: str = ""  # plain INSERT: used until the first key conflict, then ``sql`` (the upsert)
    upserting: bool = False
    converted: frozenset = frozenset()  # insert columns whose values come from a converter ('' = NULL)
    positions: list = field(
        default_factory=list
    )  # header position of each insert column  # (column, (table, column)) enforced by SQLite
    nullable: frozenset = frozenset()  # insert columns where '' is stored as NULL

    def many_sql(self, rows: int) -> str:
        """The current statement (``insert_sql``, or ``sql`` once upserting) for ``rows`` rows at once."""
        key = (rows, self.upserting)
        cache = self.__dict__.setdefault("_many", {})
        if key not in cache:
            cache[key] = upsert_sql(self.table, self.insert_columns, self.nullable, upsert=self.upserting, rows=rows)
        return cache[key]

    @property
    def key_positions(self) -> list[int]:
        return [self.insert_columns.index(k) for k in self.table.primary_key if k in self.insert_columns]


def make_plan(
    table: Table,
    header: list[str],
    renames: dict[str, str] | None = None,
    per_row_required: bool = False,
    id_set=None,
    adapt=None,
) -> Plan:
    """Map ``header`` onto ``table``: converters, extra columns, file-level problems, the SQL.

    ``id_set(table, column)`` returns the set of known ids a reference column is checked against.
    ``adapt``: an import mapping's table (:class:`kamrules.mapping.TableMap`): the headers it drops,
    and the converters of the columns whose values it maps.
    """
    renames = renames or {}
    if len(header) > MAX_COLUMNS:
        problem = (None, f"the header has {len(header)} columns (expected at most {MAX_COLUMNS})")
        return Plan(table, [], [], [], [], [problem], width=len(header))
    by_lower = {c.name.lower(): c.name for c in table.columns}
    targets: list[str | None] = []
    seen: dict[str, int] = {}
    problems: list[tuple[str | None, str]] = []
    ignored = []
    for i, raw in enumerate(header):
        name = renames.get(raw, raw)
        name = name.strip().lstrip("\ufeff")
        if not name:
            targets.append(None)
            ignored.append(i)
            continue
        name = by_lower.get(name.lower(), name)
        if adapt is not None and adapt.drops(name):
            targets.append(None)  # not in ``ignored``: its values are dropped, not refused
            continue
        if name.lower() in RESERVED:
            problems.append(
                (
                    name,
                    f"column name {name!r} is reserved: SQLite names the row number so (expected another name for this column)",
                )
            )
        if name in seen:
            problems.append(
                (
                    name,
                    f"column appears twice in the header (columns {seen[name] + 1} and {i + 1}; expected each column once)",
                )
            )
        seen[name] = i
        targets.append(name)
    strip_cols = set(table.primary_key) | set(table.references)
    convs, insert_columns, extra, positions, raw, fast = [], [], [], [], [], []
    for i, name in enumerate(targets):
        if name is None or seen.get(name) != i:
            continue
        col = table.column(name)
        if col is None:
            extra.append(name)
            raw.append(name)
        elif col.references and id_set is not None:
            target, _, target_col = col.references.partition(".")
            ids = id_set(target, target_col)
            convs.append((i, make_reference_converter(col, ids, required=name in table.primary_key)))
            fast.append(("in", ids) if (col.required or name in table.primary_key) else ("in?", ids))
        elif needs_check(col, table):
            conv = make_converter(col, strip=name in strip_cols, required=name in table.primary_key)
            kind = fast_kind(col, name in strip_cols)
            if adapt is not None:
                conv, kind = adapt.adapt(col, conv, kind)
            convs.append((i, conv))
            fast.append(kind)
        else:
            raw.append(name)  # plain optional text: '' -> NULL in SQL, no Python call per value
        insert_columns.append(name)
        positions.append(i)
    required = [c.name for c in table.columns if c.required or c.name in table.primary_key]
    absent = [name for name in required if name not in seen]
    if absent and not per_row_required:
        for name in absent:
            problems.append((name, f"{MISSING} (expected a header with {', '.join(required)})"))
    plan = Plan(
        table, targets, convs, insert_columns, extra, problems, absent if per_row_required else [], ignored, len(header)
    )
    plan.positions = positions
    plan.converted = frozenset(insert_columns) - set(raw)
    # Values that are never '' (required, key, or with a default) go in as they are: NULLIF costs
    # a function call per value in SQLite (4 such columns of activities: 0.3 s per 450k rows).
    never_blank = {
        c.name for c in table.columns if c.required or c.name in table.primary_key or c.default not in (None, "")
    }
    nullable = set(insert_columns) - (plan.converted & never_blank)
    plan.nullable = frozenset(nullable)
    plan.sql = upsert_sql(table, insert_columns, nullable)
    plan.insert_sql = upsert_sql(table, insert_columns, nullable, upsert=False)
    plan.convert = compile_row(convs, fast)
    return plan


def fast_kind(col: Column, strip: bool) -> tuple:
    """How the compiled row converter checks a valid value inline (no call)."""
    optional = not col.required and col.default is None and not strip
    if col.choices:
        return ("in?" if optional else "in", frozenset(col.choices))
    if col.kind in ("float", "int", "date", "bool"):
        return (col.kind, None)
    if strip and col.kind == "text":  # an e-mail key or reference still gets the e-mail check
        return ("id", None)
    if col.kind == "text":
        return ("line", None)
    return ("call", None)


# Every character str.strip() removes (str.isspace): the fast path keeps a value only if strip() would.
_WS = frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _blank(env: dict, pos: int, conv) -> str:
    """The expression for an empty value: the converter's result for '' (computed once), or a
    call that raises its :class:`Bad` (a required column)."""
    try:
        env[f"b{pos}"] = conv("")
    except Bad:
        return f"c{pos}(v)"
    return f"b{pos}"


def compile_row(convs, fast):
    """One generated function converting a row in place: inline checks for valid values; a
    column's converter is called only for blanks, odd forms and errors (it raises :class:`Bad`)."""
    env = {"fromiso": dt.date.fromisoformat, "BOOLS": BOOLS, "WS": _WS, "Bad": Bad}
    body = []
    for (pos, conv), (kind, data) in zip(convs, fast, strict=True):
        c = f"c{pos}"
        env[c] = conv
        v = f"values[{pos}]"
        if kind in ("in", "in?"):
            env[f"s{pos}"] = data
            body += [f"    v = {v}", f"    if v not in s{pos}:"]
            body += [f"        {v} = '' if not v else {c}(v)"] if kind == "in?" else [f"        {v} = {c}(v)"]
        elif kind == "line":  # text that must be present and/or on one line: only such cases reach the converter
            body += [f"    v = {v}", "    if not v or '\\n' in v or '\\r' in v:", f"        {v} = {c}(v)"]
        elif kind in ("float", "int"):
            fn = "float" if kind == "float" else "int"
            body += [
                f"    v = {v}",
                "    if v:",
                "        try:",
                f"            x = {fn}(v)",
                "        except ValueError:",
                f"            x = {c}(v)",
            ]
            if kind == "float":
                body += ["        else:", "            if x - x != 0:", f"                x = {c}(v)"]
            body += [f"        {v} = x", "    else:", f"        {v} = {_blank(env, pos, conv)}"]
        elif kind == "date":
            body += [
                f"    v = {v}",
                "    if len(v) == 10 and v[4] == '-' and v[7] == '-':",
                "        try:",
                "            fromiso(v)",
                "        except ValueError:",
                f"            {c}(v)",
                "    elif not v:",
                f"        {v} = {_blank(env, pos, conv)}",
                "    else:",
                f"        {v} = {c}(v)",
            ]
        elif kind == "bool":
            body += [f"    v = {v}", "    x = BOOLS.get(v)", f"    {v} = x if x is not None else {c}(v)"]
        elif kind == "amount":  # a mapping's amounts: currency signs deleted, a grouped number's separator dropped
            signs, env[f"g{pos}"], env[f"p{pos}"] = data
            sep = f"p{pos}"
            # signs only at either end (strip): one in the middle ("9￥0") goes to the full parser, which refuses it
            body += [f"    v = {v}", "    if v:", f"        t = v.strip({''.join(signs)!r})"]
            if data[2]:
                body += [f"        if {sep} in t:", f"            t = t.replace({sep}, '') if g{pos}(t) else 'x'"]
            body += [
                "        try:",
                "            x = float(t)",
                "        except ValueError:",
                f"            x = {c}(v)",
                "        else:",
                "            if x - x != 0:",
                f"                x = {c}(v)",
                f"        {v} = x",
                "    else:",  # blanks (an optional amount) without a call
                f"        {v} = {_blank(env, pos, conv)}",
            ]
        elif kind == "map":  # a mapped column (kamrules.mapping): a dict of known values, else the converter
            # ``in`` and a subscript rather than dict.get(): no call per value; blanks without a call
            env[f"s{pos}"] = data
            body += [
                f"    v = {v}",
                f"    if v in s{pos}:",
                f"        {v} = s{pos}[v]",
                "    elif v:",
                f"        {v} = {c}(v)",
                "    else:",
                f"        {v} = {_blank(env, pos, conv)}",
            ]
        elif kind == "id":
            body += [f"    v = {v}", "    if not v or v[0] in WS or v[-1] in WS:", f"        {v} = {c}(v)"]
        else:
            body += [f"    {v} = {c}({v})"]
    src = "def convert(values):\n" + ("\n".join(body) if body else "    pass") + "\n"
    exec(compile(src, "<kamrules row converter>", "exec"), env)
    return env["convert"]


def needs_check(col: Column, table: Table) -> bool:
    """False for plain optional text (no enumeration, default, reference, key or line-break rule)."""
    return not (
        col.kind == "text"
        and not col.choices
        and not col.required
        and col.default is None
        and not col.references
        and col.name not in table.primary_key
        and col.name not in SINGLE_LINE
    )


def upsert_sql(
    table: Table, columns: list[str], nullable: set[str] = frozenset(), upsert: bool = True, rows: int = 1
) -> str:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE: re-importing a row updates it.

    In columns in ``nullable`` a value '' is stored as NULL: raw text columns and blank optional
    values alike (the converters return '' for NULL, as binding None costs sqlite3 an adapter
    lookup per value). ``rows`` > 1: a multi-row VALUES list (one statement for that many rows).
    """
    cols = ", ".join(quote(c) for c in columns)
    marks = ", ".join("NULLIF(?, '')" if c in nullable else "?" for c in columns)
    keys = [k for k in table.primary_key if k in columns]
    sets = [c for c in columns if c not in table.primary_key] or keys[:1]
    sql = f"INSERT INTO {quote(table.name)} ({cols}) VALUES " + ", ".join([f"({marks})"] * rows)
    if upsert and keys and len(keys) == len(table.primary_key):
        sql += f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET " + ", ".join(
            f"{quote(c)} = excluded.{quote(c)}" for c in sets
        )
    return sql
