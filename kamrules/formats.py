"""Output formats for alerts (implemented as plugins, see kamrules_plugins.formats)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OutputFormat:
    """``render(alerts, summary)`` returns the whole output as text, or an
    iterable of text chunks (written as they come, so a large report needs no
    more memory than one alert: the built-in json, jsonl and csv formats stream).

    ``alerts`` is a sequence of :class:`kamrules.alerts.Alert`, ``summary`` the
    run's :class:`kamrules.check.Summary` (may be ignored).

    A format whose output is one text per alert, in alert order, between a head
    and a tail may also give ``item(alert) -> str`` and ``assemble(texts,
    summary) -> iterable of chunks`` such that ``render(alerts, summary)`` gives
    the same as ``assemble(map(item, alerts), summary)`` (see :func:`items_format`).
    """

    name: str
    render: Callable[[Sequence, object], str]
    description: str = ""
    extension: str = "txt"
    item: Callable[[object], str] | None = None
    assemble: Callable[[Iterable[str], object], Iterable[str]] | None = None

    @property
    def per_alert(self) -> bool:
        return self.item is not None and self.assemble is not None


def items_format(
    name: str,
    item: Callable[[object], str],
    assemble: Callable[[Iterable[str], object], Iterable[str]],
    description: str = "",
    extension: str = "txt",
) -> OutputFormat:
    """An :class:`OutputFormat` made of ``item`` and ``assemble`` (``render`` is derived from them)."""
    return OutputFormat(
        name,
        lambda alerts, summary: assemble(map(item, alerts), summary),
        description,
        extension,
        item=item,
        assemble=assemble,
    )


def output_formats(pm, failures: list | None = None) -> dict[str, OutputFormat]:
    """{name: OutputFormat} of every plugin's ``register_output_formats`` (the built-ins among them); a plugin
    whose hook raises is left out (and named in ``failures``)."""
    from kamrules.plugins import call_hook

    out = {}
    for _, group in call_hook(pm, "register_output_formats", [] if failures is None else failures):
        for f in group:
            out[f.name] = f
    return out
