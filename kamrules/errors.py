"""Exception types and the documented process exit codes."""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes, documented in docs/cli.md. Scripts rely on them: never renumber.
EXIT_OK = 0  # nothing at or above --fail-on
EXIT_ALERTS = 1  # alerts at or above --fail-on (also: `kamrules test` failures)
EXIT_USAGE = 2  # bad usage or bad input (store, data files, rule files, config)
EXIT_INCOMPLETE = 3  # a rule or plugin failed; the run is incomplete
EXIT_UNDELIVERED = 4  # notifications could not be delivered (still queued)
EXIT_BUSY = 5  # the store is busy: another process held its write lock past the wait; nothing was done


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as FILE:LINE[:COLUMN]."""

    file: str
    line: int | None
    message: str
    column: str | int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if isinstance(self.column, int):
                where += f":{self.column}"
        if isinstance(self.column, str) and self.column:
            return f"{where}: {self.column}: {self.message}"
        return f"{where}: {self.message}"


class KamrulesError(Exception):
    """Base class: an error the CLI reports in one clean message, with an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])

    def render(self, limit: int = 100) -> str:
        lines = [str(self)]
        shown = self.problems[:limit]
        lines += [str(p) for p in shown]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)


class InputError(KamrulesError):
    """Bad input: data files, the store, rule-set files or configuration (exit 2)."""

    exit_code = EXIT_USAGE


class PluginError(KamrulesError):
    """A plugin could not be loaded or broke the hook contract (exit 2 at load time)."""

    exit_code = EXIT_USAGE


class StoreBusy(KamrulesError):
    """Another process held the store's write lock longer than we wait: nothing was done; try again (exit 5)."""

    exit_code = EXIT_BUSY


class DeliveryError(KamrulesError):
    """Notifications could not be delivered; they stay queued in the outbox (exit 4)."""

    exit_code = EXIT_UNDELIVERED
