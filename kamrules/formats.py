"""Output formats for alerts (implemented as plugins, see kamrules_plugins.formats)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class OutputFormat:
    """``render(alerts, summary)`` returns the whole output as text.

    ``alerts`` is a sequence of :class:`kamrules.alerts.Alert`, ``summary`` the
    run's :class:`kamrules.check.Summary` (may be ignored).
    """

    name: str
    render: Callable[[Sequence, object], str]
    description: str = ""
    extension: str = "txt"
