"""Input files for import: format and encoding detection, streaming CSV/TSV/JSON/JSON Lines readers."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from kamrules.charsets import NAMES, gbk_verdict, guess_encodings, likely_encoding
from kamrules.errors import Problem

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CHUNK = 1 << 20
TEXT_CHUNK = 1 << 16

# A quoted CSV value may hold line breaks (notes over a few lines); a record running over more
# than this many is a quote opened and never closed, swallowing the rows after it.
MAX_LINE_BREAKS = 100
# JSON objects and arrays inside a record's value may nest this deep (kept as JSON text).
MAX_DEPTH = 32
# Bytes of non-ASCII lines read to judge an encoding that is not UTF-8.
SAMPLE = 256 << 10

csv.field_size_limit(1 << 24)

_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive or an Excel .xlsx workbook (save it as CSV UTF-8)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook (save it as CSV UTF-8)"),
    (b"SQLite format 3\x00", "a SQLite database, not a data file"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class FileProblem(Exception):
    """The whole file is unusable (cannot be decoded, binary, empty, malformed JSON ...)."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


def split_name(path: Path) -> tuple[str, str | None]:
    """(table name, format) from a file name such as ``orders.csv`` or ``Orders.JSONL``."""
    suffix = path.suffix.lower()
    return path.name[: -len(path.suffix)] if suffix else path.name, FORMATS.get(suffix)


def _codec_name(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return ""


def detect_encoding(path: Path, encoding: str | None = None, origin: str = "--encoding") -> str:
    """The codec to read ``path`` with; raises FileProblem for binary, undecodable, unreadable or empty files.

    UTF-8 (with or without BOM) is tried first, strictly; then GB18030 (a superset
    of GBK, what Chinese Excel writes), only if it decodes strictly and reads as Chinese
    (see :func:`guess_encodings`). A given ``encoding`` is used as it is, strictly (``origin``: where
    it was given, for the messages: --encoding or a mapping file's encoding: key).
    """
    try:
        return _detect_encoding(path, encoding, origin)
    except OSError as e:  # gone or unreadable since the folder was listed
        raise FileProblem(
            Problem(str(path), None, f"cannot be read: {e.strerror or e} (expected a readable data file)")
        ) from None


def _detect_encoding(path: Path, encoding: str | None, origin: str = "--encoding") -> str:
    name = str(path)
    with open(path, "rb") as f:
        head = f.read(4096)
        if not head.strip():
            raise FileProblem(
                Problem(name, None, "empty file (expected a header line with column names, or JSON data)")
            )
        for magic, what in _MAGIC:
            if head.startswith(magic):
                raise FileProblem(Problem(name, None, f"binary file: this looks like {what}"))
        for bom, what in _BOMS:
            if head.startswith(bom):
                raise FileProblem(
                    Problem(
                        name,
                        None,
                        f"{what} text is not supported (expected UTF-8 or GBK/GB18030; save the file as UTF-8)",
                    )
                )
        has_bom = head.startswith(codecs.BOM_UTF8)
    if encoding:
        codec = _codec_name(encoding)
        if not codec:
            raise FileProblem(Problem(name, None, f"unknown encoding {encoding!r} (expected e.g. utf-8, gbk, gb18030)"))
        if has_bom and codec not in ("utf-8", "utf-8-sig"):
            raise FileProblem(
                Problem(
                    name,
                    1,
                    f"the file starts with a UTF-8 byte order mark but {origin} {encoding} was given (expected {origin} utf-8, or none)",
                )
            )
        codec = "utf-8-sig" if codec in ("utf-8", "utf-8-sig") else codec
        bad = _scan(path, codec)
        if bad:
            raise FileProblem(
                Problem(
                    name,
                    bad[1],
                    f"cannot be decoded as {encoding}: {bad[2]} at byte offset {bad[0]} (expected text in {encoding}; check {origin})",
                )
            )
        return codec
    bad = _scan(path, "utf-8-sig")
    if not bad:
        return "utf-8-sig"
    offset, line, what, ascii_before = bad
    # Non-ASCII UTF-8 before the bad byte: a file that mixes encodings, unless all of it reads as
    # Chinese GBK (whose first bytes may happen to form UTF-8: 协议 is D0 AD D2 E9, and D0 AD is UTF-8)
    if (
        not has_bom
        and not ascii_before
        and not _scan(path, "gb18030")
        and gbk_verdict(guess_encodings(_sample(path))) is None
    ):
        return "gb18030"
    if has_bom or not ascii_before:
        raise FileProblem(
            Problem(
                name,
                line,
                f"not valid UTF-8: {what} at byte offset {offset}, although the text before it is UTF-8 (the file mixes encodings or is damaged; expected UTF-8 throughout)",
            )
        )
    bad2 = _scan(path, "gb18030")
    scores = guess_encodings(_sample(path))
    message = f"unknown text encoding: not UTF-8 ({what} at byte offset {offset})"
    if not bad2:
        verdict = gbk_verdict(scores)
        if verdict is None:
            return "gb18030"
        message += f", and read as GBK it gives {verdict}"
    else:
        message += f" and not GBK/GB18030 ({bad2[2]} at byte offset {bad2[0]}, line {bad2[1]})"
    likely = likely_encoding(scores)
    if likely:
        message += f"; it looks like {NAMES[likely]}: {scores[likely][2]!r} ..."
    example = likely or ("gbk" if not bad2 else "cp1252")
    message += f" (expected UTF-8 or GBK; pass --encoding ENC with the file's real encoding, e.g. --encoding {example})"
    raise FileProblem(Problem(name, line, message))


def _sample(path: Path) -> bytes:
    """Up to SAMPLE bytes of the file's lines that hold non-ASCII bytes (whole lines, never cut)."""
    found, size, rest = [], 0, b""
    with open(path, "rb") as f:
        while size < SAMPLE:
            chunk = f.read(CHUNK)
            data = rest + chunk
            if chunk:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
            for m in re.finditer(rb"[^\n]*[\x80-\xff][^\n]*", data):
                found.append(m.group())
                size += len(m.group())
                if size >= SAMPLE:  # not the rest of the chunk: judging 1 MB costs 4 times 256 KB
                    break
            if not chunk:
                break
    return b"\n".join(found)


def _scan(path: Path, codec: str):
    """None if ``path`` decodes with ``codec``; else (offset, line, what, ascii_before). Also refuses NUL bytes."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    consumed = 0
    newlines = 0
    ascii_before = True
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            final = not chunk
            nul = chunk.find(b"\x00")
            if nul >= 0:
                line = newlines + chunk.count(b"\n", 0, nul) + 1
                raise FileProblem(
                    Problem(
                        str(path),
                        line,
                        f"binary data: a NUL byte at byte offset {consumed + nul} (expected a text file: CSV, TSV, JSON or JSON Lines)",
                    )
                )
            try:
                decoder.decode(chunk, final)
            except UnicodeDecodeError as e:
                # e.object = bytes held back from the previous chunk + this chunk
                pos = e.start - (len(e.object) - len(chunk))
                bad = e.object[e.start : e.start + 1]
                what = f"byte 0x{bad.hex().upper()} ({e.reason})"
                line = newlines + chunk.count(b"\n", 0, max(pos, 0)) + 1
                return consumed + pos, line, what, ascii_before and chunk[: max(pos, 0)].isascii()
            if final:
                return None
            ascii_before = ascii_before and chunk.isascii()
            consumed += len(chunk)
            newlines += chunk.count(b"\n")


def unclosed_quote(file_name: str, line: int, error: csv.Error) -> FileProblem:
    """The csv module's error for the record starting on ``line``, as a FileProblem."""
    if "unexpected end of data" in str(error):
        return FileProblem(
            Problem(
                file_name,
                line,
                'a quoted value opened on this line is not closed before the end of the file (expected a closing quote ")',
            )
        )
    return FileProblem(Problem(file_name, line, f"malformed CSV: {error} (expected quotes to be balanced)"))


def runaway_quote(file_name: str, line: int, last: int) -> FileProblem:
    """A record from ``line`` to ``last``: more line breaks than a quoted value may hold."""
    return FileProblem(
        Problem(
            file_name,
            line,
            f"a quoted value opened on this line runs over {last - line} line breaks, to line {last} "
            f'(expected at most {MAX_LINE_BREAKS} line breaks in one record: is a closing quote " missing?)',
        )
    )


def check_span(file_name: str, line: int, last: int, values: list, delimiter: str) -> None:
    """A record from ``line`` to ``last`` (called only when it spans line breaks): refused when it runs over
    more than MAX_LINE_BREAKS line breaks, or when its values hold two or more lines that look like whole
    records of the file (as many delimiters as the record has columns, less one, and most of the lines it
    holds): a quote opened and closed again rows later by a stray quote, swallowing the rows between."""
    if last - line > MAX_LINE_BREAKS:
        raise runaway_quote(file_name, line, last)
    width = len(values)
    if width < 3:  # too few columns to tell a record from a note with a comma in it
        return
    held = looks = 0
    for v in values:
        if "\n" in v or "\r" in v:
            for part in v.splitlines()[1:]:
                held += 1
                if part.count(delimiter) >= width - 1:
                    looks += 1
    if looks >= 2 and looks * 2 >= held:
        raise FileProblem(
            Problem(
                file_name,
                line,
                f"a quoted value opened on this line runs to line {last} and holds {looks} lines that look like records "
                f'of this file (expected a closing quote " before them: is one missing?)',
            )
        )


class CsvReader:
    """Rows of a CSV/TSV file: ``header`` (list) then (line, None, values) from iteration.

    Strict about quotes: a quoted value must end with a quote followed by the delimiter or the end
    of the line, and be closed before the end of the file; a record over more than
    MAX_LINE_BREAKS line breaks is refused (the readers of the rows check ``line_num``).
    """

    def __init__(self, path: Path, encoding: str, delimiter: str = ","):
        self.path = path
        self._raw = open(path, "rb", buffering=TEXT_CHUNK)
        self._text = io.TextIOWrapper(self._raw, encoding=encoding, errors="strict", newline="")
        self._text._CHUNK_SIZE = TEXT_CHUNK  # type: ignore[attr-defined]  # CPython's private knob: fewer, larger decode calls than the default 8 KiB (-9% read time)
        self._reader = csv.reader(self._text, delimiter=delimiter, strict=True)
        try:
            self.header = next(self._reader)
        except StopIteration:
            self.close()
            raise FileProblem(
                Problem(str(path), None, "empty file (expected a header line with column names)")
            ) from None
        except csv.Error as e:
            self.close()
            raise unclosed_quote(str(path), 1, e) from e
        self._line = self._reader.line_num
        if self._line - 1 > MAX_LINE_BREAKS:
            self.close()
            raise runaway_quote(str(path), 1, self._line)

    @property
    def reader(self):
        """The underlying csv reader (``line_num`` = physical lines read so far)."""
        return self._reader

    @property
    def line(self) -> int:
        """Lines taken by the header."""
        return self._line

    def position(self) -> int:
        return self._raw.tell() if not self._raw.closed else 0

    def __iter__(self) -> Iterator[tuple[int, None, list]]:
        reader = self._reader
        prev = self._line
        try:
            for row in reader:
                line = prev + 1
                prev = reader.line_num
                if prev != line:
                    check_span(str(self.path), line, prev, row, reader.dialect.delimiter)
                if row:
                    yield line, None, row
        except csv.Error as e:
            raise unclosed_quote(str(self.path), prev + 1, e) from e

    def close(self) -> None:
        self._text.close()


class TooDeep(ValueError):
    """A JSON value nested more than MAX_DEPTH levels."""


def _depth_over(value, limit: int = MAX_DEPTH) -> bool:
    """True if objects/arrays nest more than ``limit`` levels in ``value`` (no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return False


class BadJson(ValueError):
    """A JSON text Python's parser accepts but JSON does not mean: NaN/Infinity, a key given twice."""


def _pairs(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # the last value would silently win
        seen: set[str] = set()
        for dup, _ in pairs:
            if dup in seen:
                break
            seen.add(dup)
        raise BadJson(f"key {dup!r} appears twice in one object (expected each key once)")
    return obj


def _constant(name: str):
    raise BadJson(f"{name} is not a JSON number (expected a finite number, or null)")


# Python's json reads NaN, Infinity and duplicate keys (the last one wins) without a word: not here.
DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant)
_INFINITIES = (float("inf"), float("-inf"))


def _scalar(value):
    """JSON value -> the text the converters expect (objects/lists kept as JSON text)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if value in _INFINITIES:  # 1e400: beyond a float, read as infinity
            raise BadJson("a number too large (it reads as infinity; expected at most about 1.8e308)")
        return repr(value)
    if _depth_over(value):
        raise TooDeep()
    return json.dumps(value, ensure_ascii=False)


def _json_error(e: BaseException) -> str:
    """What is wrong, for a JSON error that is not a syntax error (a huge number, deep nesting)."""
    if isinstance(e, BadJson):
        return f"invalid JSON: {e}"
    if isinstance(e, RecursionError):
        return f"invalid JSON: objects or arrays nested too deeply (expected at most {MAX_DEPTH} levels)"
    if "digits" in str(e):
        return f"invalid JSON: a number with too many digits (expected at most {sys.get_int_max_str_digits()} digits)"
    return f"invalid JSON: {e}"


class JsonReader:
    """Objects of a JSON array or a JSON Lines file, streamed: (line, keys, values)."""

    header = None

    def __init__(self, path: Path, encoding: str, lines: bool):
        self.path = path
        self.lines = lines
        self._raw = open(path, "rb")
        self._text = io.TextIOWrapper(self._raw, encoding=encoding, errors="strict", newline="")

    def position(self) -> int:
        return self._raw.tell() if not self._raw.closed else 0

    def _problem(self, line, message):
        return FileProblem(Problem(str(self.path), line, message))

    def _row(self, line, obj):
        if not isinstance(obj, dict):
            raise self._problem(line, f"expected a JSON object per record, got {type(obj).__name__}")
        try:
            return line, tuple(obj), [_scalar(v) for v in obj.values()]
        except BadJson as e:
            raise self._problem(line, f"invalid JSON: {e}") from None
        except TooDeep:
            raise self._problem(
                line,
                f"a value nested more than {MAX_DEPTH} levels deep (expected plain values, or objects and arrays at most {MAX_DEPTH} levels deep)",
            ) from None

    def __iter__(self):
        return self._iter_lines() if self.lines else self._iter_array()

    def _iter_lines(self):
        for line, text in enumerate(self._text, 1):
            if not text.strip():
                continue
            try:
                obj = DECODER.decode(text.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                raise self._problem(
                    line, f"invalid JSON: {e.msg} (column {e.colno}; expected one JSON object per line)"
                ) from e
            except (ValueError, RecursionError) as e:  # a number over the digits limit, deep nesting
                raise self._problem(line, _json_error(e)) from None
            yield self._row(line, obj)

    def _iter_array(self):
        decoder = DECODER
        buf = ""
        pos = 0
        line = 1
        state = "start"  # start -> item -> sep -> item ... -> end
        eof = False

        def more():
            nonlocal buf, pos, eof, line
            line += buf.count("\n", 0, pos)
            chunk = self._text.read(CHUNK)
            if not chunk:
                eof = True
            buf = buf[pos:] + chunk
            pos = 0

        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos >= len(buf):
                if eof:
                    break
                more()
                continue
            ch = buf[pos]
            here = line + buf.count("\n", 0, pos)
            if state == "start":
                if ch != "[":
                    raise self._problem(
                        here, "expected a JSON array of objects ([{...}, ...]) or use .jsonl for JSON Lines"
                    )
                pos += 1
                state = "first"
            elif state in ("first", "item"):
                if ch == "]" and state == "first":
                    pos += 1
                    state = "end"
                    continue
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as e:
                    if not eof:
                        more()
                        continue
                    raise self._problem(line + buf.count("\n", 0, e.pos), f"invalid JSON: {e.msg}") from e
                except (ValueError, RecursionError) as e:  # a number over the digits limit, deep nesting
                    raise self._problem(here, _json_error(e)) from None
                if end >= len(buf) and not eof and not isinstance(obj, (dict, list)):
                    more()  # a number might continue in the next chunk
                    continue
                yield self._row(here, obj)
                pos = end
                state = "sep"
            elif state == "sep":
                if ch == ",":
                    pos += 1
                    state = "item"
                elif ch == "]":
                    pos += 1
                    state = "end"
                else:
                    raise self._problem(here, f"invalid JSON: unexpected {ch!r} (expected ',' or ']')")
            else:  # end
                raise self._problem(here, "invalid JSON: data after the closing ']'")
        if state != "end":
            raise self._problem(line + buf.count("\n", 0, pos), "invalid JSON: the array is not closed (expected ']')")

    def close(self) -> None:
        self._text.close()


def open_reader(path: Path, fmt: str, encoding: str):
    if fmt == "csv":
        return CsvReader(path, encoding, ",")
    if fmt == "tsv":
        return CsvReader(path, encoding, "\t")
    return JsonReader(path, encoding, lines=(fmt == "jsonl"))
