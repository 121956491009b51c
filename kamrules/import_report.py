"""What an import reports: counts per table, problems (capped), the refused-rows file."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from kamrules.errors import InputError, Problem
from kamrules.textsafe import csv_cell

MAX_PROBLEMS = 100


class ImportRefused(InputError):
    """The import was refused; the store is unchanged. Carries the first problems and the total."""

    def __init__(self, message: str, problems: list[Problem], total: int):
        super().__init__(message, problems)
        self.total = total

    def render(self, limit: int = MAX_PROBLEMS) -> str:
        text = super().render(limit)
        hidden = self.total - min(len(self.problems), limit)
        if hidden > 0 and len(self.problems) <= limit:
            text += f"\n... and {hidden} more problems"
        return text


@dataclass
class TableCounts:
    inserted: int = 0
    updated: int = 0  # rows already stored that the import changed
    rejected: int = 0
    unchanged: int = 0  # rows already stored, given again with the same values


@dataclass
class ImportReport:
    """What an import did: rows inserted / updated / unchanged / rejected per table, files, time."""

    tables: dict[str, TableCounts] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)  # {"path", "table", "format", "encoding", "rows"}
    seconds: float = 0.0
    rejects_path: str | None = None

    @property
    def inserted(self) -> int:
        return sum(t.inserted for t in self.tables.values())

    @property
    def updated(self) -> int:
        return sum(t.updated for t in self.tables.values())

    @property
    def unchanged(self) -> int:
        return sum(t.unchanged for t in self.tables.values())

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables.values())

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def to_dict(self) -> dict:
        return {
            "tables": {name: vars(c) for name, c in self.tables.items()},
            "files": self.files,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "rejects": self.rejects_path,
        }

    def __str__(self) -> str:
        width = max([len(n) for n in self.tables] + [5])
        lines = [f"{'table':<{width}}  {'inserted':>9}  {'updated':>9}  {'unchanged':>9}  {'rejected':>9}"]
        for name, c in self.tables.items():
            lines.append(f"{name:<{width}}  {c.inserted:>9,}  {c.updated:>9,}  {c.unchanged:>9,}  {c.rejected:>9,}")
        rate = self.rows / self.seconds if self.seconds > 0 else 0
        lines.append(
            f"{'total':<{width}}  {self.inserted:>9,}  {self.updated:>9,}  {self.unchanged:>9,}  {self.rejected:>9,}"
        )
        lines.append(f"{len(self.files)} file(s), {self.rows:,} rows in {self.seconds:.2f}s ({rate:,.0f} rows/s)")
        if self.rejects_path:
            lines.append(f"refused rows written to {self.rejects_path}")
        return "\n".join(lines)


class Problems:
    """Collects problems: keeps the first MAX_PROBLEMS, counts all."""

    def __init__(self):
        self.kept: list[Problem] = []
        self.total = 0
        self.fatal = False

    def add(self, problem: Problem, fatal: bool = False) -> None:
        self.total += 1
        self.fatal = self.fatal or fatal
        if len(self.kept) < MAX_PROBLEMS:
            self.kept.append(problem)


class Rejects:
    """The --skip-invalid file: one CSV row per refused record (file, line, table, reason, the record).

    Written through :func:`kamrules.outputs.atomic_output`: nothing appears at ``path`` (and no
    ``.part`` file anywhere) until :meth:`finish` keeps it, fsync'ed; a refused or killed import
    leaves an existing file as it was. Every cell goes through :func:`kamrules.textsafe.csv_cell`:
    the records are raw user data (CSV injection).
    """

    def __init__(self, path):
        from kamrules.outputs import PendingOutput

        self.path = Path(path)
        # an unnamed temporary file renamed into place at the end (a "<name>.part" file could be a
        # symlink to the store); a lone surrogate from a JSON escape is written as \udXXX
        self.out = PendingOutput(self.path, encoding="utf-8-sig", errors="backslashreplace")
        self.f = self.out.file
        self.w = csv.writer(self.f)
        self.w.writerow(["file", "line", "table", "reason", "record"])

    def write(self, file: str, line: int, table: str, reasons: list[str], record: dict) -> None:
        cells = (file, line, table, "; ".join(reasons), json.dumps(record, ensure_ascii=False))
        self.w.writerow([csv_cell(c) for c in cells])

    def finish(self, keep: bool) -> None:
        """Put the file in place (``keep``) or drop it, leaving ``path`` as it was."""
        if keep:
            self.out.commit()
        else:
            self.out.discard()
