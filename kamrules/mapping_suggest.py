"""`kamrules import --suggest-mapping`: a starting mapping file written from a CRM export's headers and values."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kamrules.contract import Table
from kamrules.crm_synonyms import BOOLEAN_WORDS, HEADERS, value_synonyms
from kamrules.errors import InputError
from kamrules.mapping import compile_date_format
from kamrules.readers import FORMATS, FileProblem, detect_encoding, open_reader, split_name
from kamrules.validate import BOOLS

# Date formats tried on a date column's values, most usual in Chinese exports first.
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y")
TIMES = ("", " %H:%M", " %H:%M:%S")
CURRENCY = ("￥", "¥", "RMB", "CNY", "元", "$", "US$")
MAX_VALUES = 200  # distinct values listed per enumeration column; more: probably not an enumeration
SAMPLE = 2000  # values per date / amount column looked at


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.strip().lstrip("\ufeff")).casefold()


@dataclass
class FileFacts:
    path: Path
    table: str
    columns: dict[str, str]  # header -> column
    unmatched: list[str]
    values: dict[str, dict[str, None]] = field(default_factory=dict)  # enumeration column -> distinct values
    samples: dict[str, list[str]] = field(default_factory=dict)  # date / amount / bool column -> values
    encoding: str = ""  # the codec the file was read with


def header_matches(table: Table, header: list[str]) -> tuple[dict[str, str], list[str]]:
    """{header: column} matched through the synonyms (and the columns' own names), and the headers left."""
    lookup: dict[str, str] = {}
    for column in table.columns:  # a column's own name first, then the table's synonyms, then the shared ones
        lookup.setdefault(_key(column.name), column.name)
    for name, words in HEADERS.get(table.name, {}).items():
        for w in words:
            lookup.setdefault(_key(w), name)
    for name, words in HEADERS.get("*", {}).items():
        if table.column(name) is not None:
            for w in words:
                lookup.setdefault(_key(w), name)
    out: dict[str, str] = {}
    left: list[str] = []
    used: set[str] = set()
    for h in header:
        target = lookup.get(_key(h))
        if target is not None and target not in used:
            out[h] = target
            used.add(target)
        elif h.strip():
            left.append(h)
    return out, left


def guess_table(path: Path, header: list[str], tables: dict[str, Table]) -> str | None:
    """The file's table: by its name, else the table whose required columns its headers cover best."""
    name, _ = split_name(path)
    if name in tables or name.lower() in tables:
        return name if name in tables else name.lower()
    best, score = None, 0.0
    for t in tables.values():
        matched = set(header_matches(t, header)[0].values())
        required = set(t.required) | set(t.primary_key)
        if not required <= matched:
            continue
        s = len(matched) / len(t.columns)
        if s > score:
            best, score = t.name, s
    return best


def scan(path: Path, tables: dict[str, Table], encoding: str | None, notes: list[str]) -> FileFacts | None:
    """Read one file as import does (its encoding, its format) and collect what a mapping needs."""
    name, fmt = split_name(path)
    if fmt is None:
        notes.append(f"{path}: unknown file type (expected one of: {', '.join(FORMATS)}); skipped")
        return None
    try:
        codec = detect_encoding(path, encoding)
        reader = open_reader(path, fmt, codec)
    except FileProblem as e:
        raise InputError(f"{path}: cannot be read", [e.problem]) from None
    try:
        rows = iter(reader)
        if reader.header is not None:
            header = list(reader.header)
        else:  # JSON: the keys of the first objects
            first = [next(rows, None) for _ in range(50)]
            keys: dict[str, None] = {}
            for r in first:
                if r is not None:
                    keys.update(dict.fromkeys(r[1]))
            header = list(keys)
            rows = iter([r for r in first if r is not None] + list(rows))
        table = guess_table(path, header, tables)
        if table is None:
            notes.append(f"{path}: could not tell which table it holds (headers: {', '.join(header)}); skipped")
            return None
        tdef = tables[table]
        columns, unmatched = header_matches(tdef, header)
        facts = FileFacts(path, table, columns, unmatched, encoding=codec)
        watch: list[tuple[int, Any, bool]] = []
        for i, h in enumerate(header):
            col = tdef.column(columns.get(h, ""))
            if col is None:
                continue
            if col.choices:
                facts.values[col.name] = {}
                watch.append((i, facts.values[col.name], True))
            elif col.kind in ("date", "float", "bool"):
                facts.samples[col.name] = []
                watch.append((i, facts.samples[col.name], False))
        for _, keys_, values in rows:
            if reader.header is None:  # JSON objects: values by key
                values = [values[keys_.index(h)] if h in keys_ else "" for h in header]
            for i, seen, enum in watch:
                v = values[i].strip() if i < len(values) and isinstance(values[i], str) else ""
                if not v:
                    continue
                if enum:
                    if len(seen) <= MAX_VALUES:
                        seen[v] = None
                elif len(seen) < SAMPLE:
                    seen.append(v)
    except FileProblem as e:
        raise InputError(f"{path}: cannot be read", [e.problem]) from None
    finally:
        reader.close()
    return facts


def date_formats(values: list[str]) -> tuple[list[str], list[str]]:
    """The formats that read ``values`` (in the order first needed), and the values none reads."""
    compiled = [(f + t, compile_date_format(f + t)) for f in DATE_FORMATS for t in TIMES]
    used: list[str] = []
    failed = []
    for v in values:
        for f, p in compiled:
            if p.match(v):
                if f not in used:
                    used.append(f)
                break
        else:
            failed.append(v)
    return used, failed


def suggest_mapping(paths, tables: dict[str, Table], encoding: str | None = None) -> tuple[str, list[str]]:
    """A mapping file (YAML text) for the data files in ``paths``, and notes on what was not matched."""
    notes: list[str] = []
    files: list[Path] = []
    for p in (Path(p) for p in paths):
        if p.is_dir():
            files += sorted(x for x in p.iterdir() if x.suffix.lower() in FORMATS and not x.name.startswith("."))
        elif p.exists():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    facts = [f for f in (scan(p, tables, encoding, notes) for p in files) if f is not None]
    if not facts:
        raise InputError("\n".join(["no file could be matched to a table; nothing to suggest", *notes]))
    dates: list[str] = []
    currency: set[str] = set()
    units: set[str] = set()
    bool_words: dict[str, bool | None] = {}
    for f in facts:
        tdef = tables[f.table]
        for col, values in f.samples.items():
            kind = tdef.column(col).kind  # type: ignore[union-attr]
            if kind == "date":
                used, failed = date_formats(values)
                dates += [d for d in used if d not in dates]
                if failed:
                    notes.append(
                        f"{f.path}: {col}: no known date format reads {failed[0]!r} (add its format under dates:)"
                    )
                if "%d/%m/%Y" in used and "%m/%d/%Y" not in used:
                    notes.append(f"{f.path}: {col}: dates read as day/month/year: check that they are not month/day")
            elif kind == "float":
                for v in values:
                    currency.update(c for c in CURRENCY if c in v)
                    units.update(u for u in ("万", "亿") if v.endswith(u))
            else:
                for v in values:
                    if v.lower() not in BOOLS:
                        bool_words.setdefault(v, BOOLEAN_WORDS.get(v))
        for col, seen in f.values.items():
            if len(seen) > MAX_VALUES:
                notes.append(f"{f.path}: {col}: more than {MAX_VALUES} distinct values: is it the right column?")
        for h in f.unmatched:
            notes.append(f"{f.path}: header {h!r} matches no column of {f.table}: listed under drop:")
        if dates and "%Y-%m-%d" in dates:
            dates.remove("%Y-%m-%d")  # the contract's own form is always read
    return render(facts, tables, dates, currency, units, bool_words, notes), notes


def q(text: str) -> str:
    """A YAML scalar for ``text``: plain where YAML reads it back as the same text, else double-quoted."""
    if re.fullmatch(r"[\w\u3000-\u9fff\uff00-\uffef()（）]+", text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def render(facts, tables, dates, currency, units, bool_words, notes) -> str:
    out = [
        "# kamrules import mapping: see docs/data-contract.md (From a CRM export to a checked book).",
        "# Written by `kamrules import --suggest-mapping`: check it, fill every `null`, then",
        "#   kamrules import FILES --mapping THIS_FILE",
    ]
    codecs = {f.encoding for f in facts}
    if len(codecs) == 1 and next(iter(codecs)) not in ("", "utf-8", "utf-8-sig"):
        # said once here, the import reads the files without guessing their encoding again
        out.append(f"encoding: {next(iter(codecs))}")
    if dates:
        out.append("dates: [" + ", ".join(q(d) for d in dates) + "]")
    if currency or units:
        parts = []
        if currency:
            parts.append("currency: [" + ", ".join(q(c) for c in sorted(currency)) + "]")
        if units:
            parts.append(
                "units: {" + ", ".join(f"{q(u)}: {10000 if u == '万' else 100000000}" for u in sorted(units)) + "}"
            )
        out.append("amounts: {" + ", ".join(parts) + "}")
    if bool_words:
        out.append("booleans:")
        for w, v in bool_words.items():
            out.append(f"  {q(w)}: {'null  # TODO: true or false' if v is None else str(v).lower()}")
    out.append("tables:")
    by_table: dict[str, list[FileFacts]] = {}
    for f in facts:
        by_table.setdefault(f.table, []).append(f)
    for table, group in by_table.items():
        tdef = tables[table]
        out.append(f"  {table}:")
        out.append("    files: [" + ", ".join(q(f.path.name) for f in group) + "]")
        columns: dict[str, str] = {}
        for f in group:
            columns.update((h, c) for h, c in f.columns.items() if h != c)
        if columns:
            out.append("    columns:")
            out += [f"      {q(h)}: {c}" for h, c in columns.items()]
        values: dict[str, dict[str, None]] = {}
        for f in group:
            for col, seen in f.values.items():
                values.setdefault(col, {}).update(seen)
        if values:
            out.append("    values:")
            for col, seen in values.items():
                choices = tdef.column(col).choices
                known = value_synonyms(table, col)
                out.append(f"      {col}:" + ("" if seen else " {}"))
                for v in list(seen)[:MAX_VALUES]:
                    target = v.lower() if v.lower() in choices else known.get(v)
                    if target is None:
                        notes.append(
                            f"{group[0].path}: {col}: value {v!r} is not mapped yet (fill in one of: {', '.join(choices)})"
                        )
                        out.append(f"        {q(v)}: null  # TODO: one of {', '.join(choices)}")
                    else:
                        out.append(f"        {q(v)}: {target}")
        drop = [h for f in group for h in f.unmatched]
        if drop:
            out.append("    # not in the contract: dropped (delete a line to keep that column as an extra TEXT column)")
            out.append("    drop: [" + ", ".join(q(h) for h in dict.fromkeys(drop)) + "]")
    return "\n".join(out) + "\n"
