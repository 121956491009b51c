"""Output formats for alerts (implemented as plugins, see kamrules_plugins.formats)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class OutputFormat:
    """``render(alerts, summary)`` returns the whole output as text, or an
    iterable of text chunks (written as they come, so a large report needs no
    more memory than one alert: the built-in json, jsonl and csv formats stream).

    ``alerts`` is a sequence of :class:`kamrules.alerts.Alert`, ``summary`` the
    run's :class:`kamrules.check.Summary` (may be ignored).
    """

    name: str
    render: Callable[[Sequence, object], str]
    description: str = ""
    extension: str = "txt"
