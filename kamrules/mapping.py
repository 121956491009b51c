"""Import mappings: a YAML file that maps a CRM export (file names, headers, values) onto the contract."""

from __future__ import annotations

import codecs
import datetime as dt
import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kamrules.contract import Column, Table
from kamrules.errors import InputError
from kamrules.ruleset import _Doc, _type_name
from kamrules.validate import BOOLS, Bad, show

TOP_KEYS = ("tables", "encoding", "dates", "amounts", "booleans")
TABLE_KEYS = ("files", "columns", "values", "drop", "other_columns", "dates", "amounts", "booleans")
AMOUNT_KEYS = ("currency", "thousands", "units")
DATE_PARTS = {"Y": r"(?P<Y>\d{4})", "m": r"(?P<m>\d{1,2})", "d": r"(?P<d>\d{1,2})"}
TIME_PARTS = {"H": r"\d{1,2}", "M": r"\d{2}", "S": r"\d{2}(?:\.\d+)?"}
# Dates seen once are converted once: a book's dates repeat (two years are 730 days), so the row
# loop's inline dict lookup hits almost always. Bounded, so that a file of distinct date-times can't grow it.
DATE_CACHE = 100_000


def compile_date_format(fmt: str) -> re.Pattern:
    """A strptime-like format (%Y %m %d, optional %H %M %S, literal text) as a regular expression;
    raises ValueError saying what is wrong."""
    out, i, seen = [], 0, set()
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            d = fmt[i + 1 : i + 2]
            if d in DATE_PARTS:
                if d in seen:
                    raise ValueError(f"%{d} appears twice")
                seen.add(d)
                out.append(DATE_PARTS[d])
            elif d in TIME_PARTS:
                out.append(TIME_PARTS[d])
            elif d == "%":
                out.append("%")
            else:
                raise ValueError(f"unknown directive %{d}")
            i += 2
            continue
        out.append(re.escape(ch))
        i += 1
    if seen != set(DATE_PARTS):
        raise ValueError("a date format needs %Y, %m and %d")
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class Amounts:
    """How amounts are written: currency signs to drop, the thousands separator, unit suffixes."""

    currency: tuple[str, ...] = ("￥", "¥", "RMB", "CNY", "元")
    thousands: str = ","
    units: tuple[tuple[str, float], ...] = ()

    def parser(self):
        """A function text -> float or None: one regular expression (currency before or after the
        number, a checked thousands separator, a unit suffix), as the row loop calls it for every value."""
        signs = "|".join(re.escape(c) for c in sorted(self.currency, key=len, reverse=True))
        cur = rf"(?:{signs})?\s*" if signs else ""
        sep = re.escape(self.thousands) if self.thousands else None
        body = rf"\d{{1,3}}(?:{sep}\d{{3}})+|\d+" if sep else r"\d+"
        units = "|".join(re.escape(u) for u, _ in sorted(self.units, key=lambda u: -len(u[0])))
        pattern = re.compile(
            rf"\s*{cur}([+-]?)\s*{cur}({body})(\.\d+)?\s*({units})?\s*{cur}\Z"
            if units
            else rf"\s*{cur}([+-]?)\s*{cur}({body})(\.\d+)?()\s*{cur}\Z"
        )
        match = pattern.match
        factor = dict(self.units)
        thousands = self.thousands

        def parse(s: str) -> float | None:
            m = match(s)
            if m is None:
                return None
            sign, whole, frac, unit = m.groups()
            if thousands:
                whole = whole.replace(thousands, "")
            f = float(sign + whole + frac if frac else sign + whole)
            return f * factor[unit] if unit else f

        return parse

    def inline(self) -> tuple:
        """What the compiled row converter's inline amount check needs (validate.compile_row): the
        one-character currency signs it deletes, a match for a correctly grouped
        number, the separator. Other forms (units, RMB, errors) go to the converter."""
        signs = tuple(c for c in self.currency if len(c) == 1)
        sep = re.escape(self.thousands) if self.thousands else ","
        grouped = re.compile(rf"\s*[+-]?\d{{1,3}}(?:{sep}\d{{3}})+(?:\.\d+)?\s*\Z").match
        return signs, grouped, self.thousands


def _lookup(words, folded, base, what: str):
    """A converter: the exact word's value, else (spaces and case aside) the folded word's; a blank value goes
    to ``base``; any other value is refused (``Bad``: its value, then ``what``)."""

    def conv(v):
        x = words.get(v)
        if x is not None:
            return x
        s = v.strip()
        if not s:
            return base("")
        x = folded.get(s.casefold())
        if x is None:
            raise Bad(f"{show(v)} {what}")
        return x

    return conv


@dataclass
class TableMap:
    """The mapping of one table: which files, header -> column, value maps, formats."""

    table: Table
    files: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # header (casefolded, stripped) -> column
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {source value: canonical}
    drop: frozenset[str] = frozenset()  # headers (casefolded) whose values are not imported
    keep_other: bool = True  # headers that are neither mapped nor contract columns: kept as extra columns
    dates: tuple[str, ...] = ()
    amounts: Amounts | None = None
    booleans: dict[str, int] = field(default_factory=dict)

    def renames(self, header: list[str]) -> dict[str, str]:
        """{header as in the file: contract column} for the headers this mapping names."""
        out = {}
        for raw in header:
            target = self.columns.get(norm(raw))
            if target is not None:
                out[raw] = target
        return out

    def drops(self, name: str) -> bool:
        """Whether the (renamed) header ``name`` is left out of the import."""
        key = norm(name)
        if key in self.drop:
            return True
        return not self.keep_other and self.table.column(name) is None

    def adapt(self, col: Column, conv, fast: tuple) -> tuple[Any, tuple]:
        """The converter and inline check of ``col`` under this mapping (``conv``/``fast`` unmapped)."""
        if col.name in self.values:
            return self._mapped(col, conv)
        if col.kind == "bool" and self.booleans:
            return self._bool(conv)
        if col.kind == "date" and self.dates:
            return self._date(conv)
        if col.kind == "float" and self.amounts is not None:
            return self._amount(conv), ("amount", self.amounts.inline())  # type: ignore[union-attr]
        return conv, fast

    def _mapped(self, col: Column, base):
        table = dict(self.values[col.name])
        folded = {k.strip().casefold(): v for k, v in table.items()}
        expected = ", ".join(table)

        return _lookup(table, folded, base, f"is not mapped (expected one of: {expected})"), ("map", table)

    def _bool(self, base):
        words = dict(BOOLS)
        words.update(self.booleans)
        folded = {k.strip().casefold(): v for k, v in words.items()}
        trues = "/".join(w for w, x in self.booleans.items() if x) or "true"
        falses = "/".join(w for w, x in self.booleans.items() if not x) or "false"
        expected = f"{trues} or {falses}, or true/false, yes/no, 1/0"

        return _lookup(words, folded, base, f"is not a boolean (expected {expected})"), ("map", words)

    def _date(self, base):
        patterns = [compile_date_format(f) for f in self.dates]
        cache: dict[str, str] = {}
        fromiso = dt.date.fromisoformat
        expected = ", ".join(self.dates)

        def conv(v):
            x = cache.get(v)
            if x is not None:
                return x
            s = v.strip()
            if not s:
                return base("")
            for p in patterns:
                m = p.match(s)
                if m:
                    try:
                        x = dt.date(int(m["Y"]), int(m["m"]), int(m["d"])).isoformat()
                    except ValueError:
                        raise Bad(f"{show(v)} is not a valid date (expected one of the formats {expected})") from None
                    break
            else:
                try:  # the contract's own form is always accepted
                    x = fromiso(s).isoformat() if len(s) == 10 and s[4] == "-" else None
                except ValueError:
                    x = None
                if x is None:
                    raise Bad(f"{show(v)} is not a date (expected one of the formats {expected}, or YYYY-MM-DD)")
            if len(cache) < DATE_CACHE:
                cache[v] = x
            return x

        return conv, ("map", cache)

    def _amount(self, base):
        parse = self.amounts.parser()  # type: ignore[union-attr]

        def conv(v):
            f = parse(v)
            if f is not None and f - f == 0:  # finite (400 digits read as inf)
                return f
            if not v.strip():
                return base("")
            raise Bad(f"{show(v)} is not an amount (expected a number such as 90438.25, ￥90,438.25 or 1.5万)")

        return conv


@dataclass
class Mapping:
    """A loaded mapping file: its tables' mappings, and which file goes into which table."""

    path: str
    tables: dict[str, TableMap]
    encoding: str | None = None  # the export's encoding (``encoding: gbk``): no detection for its files

    def encoding_for(self, path: Path, given: str | None) -> tuple[str | None, str]:
        """The encoding to read ``path`` with (``given``: --encoding, which wins) and where it comes from."""
        if given or not self.encoding or self.table_for(Path(path).name) is None:
            return given, "--encoding"
        return self.encoding, f"encoding: in {self.path}"

    def table_for(self, file_name: str) -> str | None:
        """The table whose ``files`` patterns match ``file_name`` (a name, not a path), or None."""
        for name, tmap in self.tables.items():
            for pattern in tmap.files:
                if fnmatch.fnmatchcase(file_name, pattern) or fnmatch.fnmatchcase(
                    file_name.casefold(), pattern.casefold()
                ):
                    return name
        return None


def norm(header: str) -> str:
    """A header as mappings compare it: without surrounding blanks or a BOM, case folded."""
    return header.strip().lstrip("\ufeff").strip().casefold()


def load_mapping(path, tables: dict[str, Table]) -> Mapping:
    """Read and validate a mapping file; raises InputError listing every problem as FILE:LINE:COL."""
    spath = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{spath}: mapping file not found") from None
    except IsADirectoryError:
        raise InputError(f"{spath}: is a folder (expected a mapping YAML file)") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{spath}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise InputError(f"{spath}: cannot be read: {e.strerror or e}") from None
    return parse_mapping(spath, text, tables)


def parse_mapping(path: str, text: str, tables: dict[str, Table]) -> Mapping:
    doc = _Doc(path, text)
    data = doc.data
    if not isinstance(data, dict) or "tables" not in data:
        doc.problem((), f"the file holds {_type_name(data)} (expected a mapping with tables:)")
        raise InputError(f"{path}: invalid mapping file", doc.problems)
    _known_keys(doc, (), data, TOP_KEYS, "the mapping file")
    encoding = data.get("encoding")
    if encoding is not None and (not isinstance(encoding, str) or not _codec(encoding)):
        doc.problem(
            ("encoding",), f"encoding: {encoding!r} is not a known encoding (expected e.g. gbk, gb18030, utf-8)"
        )
        encoding = None
    dates = _dates(doc, ("dates",), data.get("dates", []))
    amounts = _amounts(doc, ("amounts",), data["amounts"]) if "amounts" in data else None
    booleans = _booleans(doc, ("booleans",), data.get("booleans", {}))
    out: dict[str, TableMap] = {}
    raw_tables = data["tables"]
    if not isinstance(raw_tables, dict):
        doc.problem(("tables",), f"tables: {_type_name(raw_tables)} (expected a mapping of table names)")
        raw_tables = {}
    patterns: dict[str, str] = {}
    for name, raw in raw_tables.items():
        where = ("tables", name)
        if name not in tables:
            doc.problem(where, f"unknown table {name!r} (expected one of: {', '.join(tables)})", key=True)
            continue
        if not isinstance(raw, dict):
            doc.problem(where, f"{name}: {_type_name(raw)} (expected a mapping with {', '.join(TABLE_KEYS)})")
            continue
        _known_keys(doc, where, raw, TABLE_KEYS, f"table {name}")
        tmap = TableMap(tables[name], dates=dates, amounts=amounts, booleans=booleans)
        tmap.files = tuple(_strings(doc, where + ("files",), raw.get("files", []), "files"))
        for i, pattern in enumerate(tmap.files):
            if pattern in patterns and patterns[pattern] != name:
                doc.problem(
                    where + ("files", i), f"file pattern {pattern!r} is also given for table {patterns[pattern]}"
                )
            patterns[pattern] = name
        tmap.columns = _columns(doc, where + ("columns",), raw.get("columns", {}), tables[name])
        tmap.values = _values(doc, where + ("values",), raw.get("values", {}), tables[name])
        tmap.drop = frozenset(norm(h) for h in _strings(doc, where + ("drop",), raw.get("drop", []), "drop"))
        other = raw.get("other_columns", "keep")
        if other not in ("keep", "drop"):
            doc.problem(where + ("other_columns",), f"other_columns: {other!r} (expected keep or drop)")
        tmap.keep_other = other != "drop"
        if "dates" in raw:
            tmap.dates = _dates(doc, where + ("dates",), raw["dates"])
        if "amounts" in raw:
            tmap.amounts = _amounts(doc, where + ("amounts",), raw["amounts"])
        if "booleans" in raw:
            tmap.booleans = _booleans(doc, where + ("booleans",), raw["booleans"])
        out[name] = tmap
    if doc.problems:
        n = len(doc.problems)
        raise InputError(f"{path}: invalid mapping file ({n} problem{'s' if n > 1 else ''})", doc.problems)
    return Mapping(path, out, encoding)


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return ""


def _known_keys(doc: _Doc, path: tuple, data: dict, allowed, what: str) -> None:
    for key in data:
        if key not in allowed:
            doc.problem(
                path + (key,), f"unknown key {key!r} in {what} (expected one of: {', '.join(allowed)})", key=True
            )


def _strings(doc: _Doc, path: tuple, raw: Any, what: str) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        doc.problem(path, f"{what}: {_type_name(raw)} (expected a list of text)")
        return []
    out = []
    for i, v in enumerate(raw):
        if isinstance(v, str) and v.strip():
            out.append(v)
        else:
            doc.problem(path + (i,), f"{what}: {_type_name(v)} {v!r} (expected text)")
    return out


def _dict(doc: _Doc, path: tuple, raw: Any, what: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        doc.problem(path, f"{what}: {_type_name(raw)} (expected a mapping)")
        return {}
    return raw


def _columns(doc: _Doc, path: tuple, raw: Any, table: Table) -> dict[str, str]:
    names = [c.name for c in table.columns]
    out: dict[str, str] = {}
    first: dict[str, str] = {}
    for header, target in _dict(doc, path, raw, "columns").items():
        at = path + (header,)
        if not isinstance(target, str) or table.column(target) is None:
            doc.problem(
                at,
                f"{header}: {target!r} is not a column of {table.name} (expected one of: {', '.join(names)})",
            )
            continue
        if target in first:
            doc.problem(
                at,
                f"{header}: column {target} is already mapped from {first[target]!r} (expected one header per column)",
            )
            continue
        first[target] = header
        out[norm(header)] = target
    return out


def _values(doc: _Doc, path: tuple, raw: Any, table: Table) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for column, vmap in _dict(doc, path, raw, "values").items():
        at = path + (column,)
        col = table.column(column)
        if col is None:
            doc.problem(at, f"values: {column!r} is not a column of {table.name}", key=True)
            continue
        if not col.choices:
            doc.problem(
                at,
                f"values: {column} has no fixed set of values (expected a column with an enumeration: "
                f"{', '.join(c.name for c in table.columns if c.choices)})",
                key=True,
            )
            continue
        allowed = ", ".join(col.choices)
        mapped: dict[str, str] = {}
        for source, target in _dict(doc, at, vmap, f"values of {column}").items():
            if target is None:
                doc.problem(at + (source,), f"{column}: {source!r} is not mapped yet (expected one of: {allowed})")
            elif not isinstance(target, str) or target not in col.choices:
                doc.problem(
                    at + (source,), f"{column}: {source!r} -> {target!r} is not a {column} (expected one of: {allowed})"
                )
            else:
                mapped[source] = target
        out[column] = mapped
    return out


def _dates(doc: _Doc, path: tuple, raw: Any) -> tuple[str, ...]:
    formats = _strings(doc, path, raw, "dates")
    for i, f in enumerate(formats):
        try:
            compile_date_format(f)
        except ValueError as e:
            doc.problem(
                path + (i,) if isinstance(raw, list) else path,
                f"dates: {f!r}: {e} (expected e.g. %Y/%m/%d or %Y年%m月%d日)",
            )
    return tuple(formats)


def _amounts(doc: _Doc, path: tuple, raw: Any) -> Amounts | None:
    raw = _dict(doc, path, raw, "amounts")
    _known_keys(doc, path, raw, AMOUNT_KEYS, "amounts")
    default = Amounts()
    currency = (
        tuple(_strings(doc, path + ("currency",), raw["currency"], "currency"))
        if "currency" in raw
        else default.currency
    )
    thousands = raw.get("thousands", default.thousands)
    if thousands is None:
        thousands = ""
    if not isinstance(thousands, str) or len(thousands) > 1 or thousands in ".0123456789":
        doc.problem(path + ("thousands",), f"thousands: {thousands!r} (expected one character such as , or nothing)")
        thousands = default.thousands
    units = []
    for unit, factor in _dict(doc, path + ("units",), raw.get("units", {}), "units").items():
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not factor > 0
            or not math.isfinite(factor)
        ):
            doc.problem(path + ("units", unit), f"units: {unit}: {factor!r} (expected a positive number such as 10000)")
            continue
        units.append((unit, float(factor)))
    return Amounts(currency, thousands, tuple(units))


def _booleans(doc: _Doc, path: tuple, raw: Any) -> dict[str, int]:
    out = {}
    for word, value in _dict(doc, path, raw, "booleans").items():
        if not isinstance(value, bool):
            doc.problem(path + (word,), f"booleans: {word}: {value!r} (expected true or false)")
            continue
        out[word] = int(value)
    return out


def missing_columns_hint(path, header: list[str]) -> str:
    """What to do when a file's headers are another layout (a CRM export): map them."""
    found = ", ".join(h.strip().lstrip("\ufeff") or "(blank)" for h in header[:30])
    more = f" and {len(header) - 30} more" if len(header) > 30 else ""
    return (
        f"the header has {found}{more} (expected the contract's column names; to import another layout, "
        f"map its headers with --mapping FILE: `kamrules import {path} --suggest-mapping` writes a starting one)"
    )
