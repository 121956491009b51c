"""Built-in plugin: alert output formats table, json, jsonl, csv and markdown."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby

from kamrules import hookimpl
from kamrules.alerts import urgent_order
from kamrules.formats import OutputFormat, items_format
from kamrules.i18n import _, get_lang, label, ngettext
from kamrules.termtable import pad, width, wrap
from kamrules.textsafe import CSV_FORMULA_START, csv_cell, markdown, term

WIDTH = 80
CSV_FIELDS = (
    "fingerprint",
    "severity",
    "code",
    "ruleset",
    "rule",
    "account_id",
    "account_name",
    "owner",
    "owner_email",
    "message",
    "action",
    "as_of",
    "evidence",
)


def json_item(alert) -> str:
    return "  " + pretty(alert.to_dict(), "  ")


def json_assemble(texts: Iterable[str], summary) -> Iterator[str]:
    """The same text as ``json.dumps(list, indent=2)``, streamed alert by alert (memory stays flat)."""
    sep = "[\n"
    for text in texts:
        yield sep + text
        sep = ",\n"
    yield "[]\n" if sep == "[\n" else "\n]\n"


def render_json(alerts: Sequence, summary) -> Iterator[str]:
    return json_assemble(map(json_item, alerts), summary)


_STR = json.encoder.encode_basestring  # ensure_ascii=False, as json.dumps(..., ensure_ascii=False)


def pretty(obj, indent: str = "") -> str:
    """``json.dumps(obj, ensure_ascii=False, indent=2)`` (indented by ``indent``), several times faster for
    the flat dicts of an alert: strings, numbers and one level of nested dict are written directly."""
    if type(obj) is not dict or not obj:
        return json.dumps(obj, ensure_ascii=False, indent=2).replace(
            "\n", "\n" + indent
        )  # no raw newlines in JSON strings
    inner = indent + "  "
    parts = []
    for k, v in obj.items():
        t = type(v)
        if t is str:
            text = _STR(v)
        elif v is None:
            text = "null"
        elif t is int:
            text = int.__repr__(v)
        elif t is float and v - v == 0.0:  # finite
            text = float.__repr__(v)
        elif t is dict:
            text = pretty(v, inner)
        else:  # floats (NaN, Infinity), bools, lists, anything else: as json writes them
            text = json.dumps(v, ensure_ascii=False, indent=2).replace("\n", "\n" + inner)
        if type(k) is not str:  # json's key coercion (numbers, None, bools): leave it to json
            return json.dumps(obj, ensure_ascii=False, indent=2).replace("\n", "\n" + indent)
        parts.append(inner + _STR(k) + ": " + text)
    return "{\n" + ",\n".join(parts) + "\n" + indent + "}"


def jsonl_item(alert) -> str:
    return json.dumps(alert.to_dict(), ensure_ascii=False) + "\n"


def jsonl_assemble(texts: Iterable[str], summary) -> Iterable[str]:
    return texts


def render_jsonl(alerts: Sequence, summary) -> Iterator[str]:
    return map(jsonl_item, alerts)


_CSV_BUF = io.StringIO()
_CSV = csv.writer(_CSV_BUF, lineterminator="\n")


def _csv_line(values) -> str:
    _CSV_BUF.seek(0)
    _CSV_BUF.truncate()
    _CSV.writerow(values)
    return _CSV_BUF.getvalue()


def csv_raw_item(alert) -> str:
    d = alert.to_dict()
    d["evidence"] = json.dumps(d["evidence"], ensure_ascii=False, sort_keys=False)
    return _csv_line(["" if d.get(k) is None else d[k] for k in CSV_FIELDS])


def csv_item(alert) -> str:
    """One CSV row; a text cell starting with = + - @ TAB or CR gets a leading ' (spreadsheet formula guard,
    see kamrules.textsafe.csv_cell); plain numbers are kept."""
    d = alert.to_dict()
    d["evidence"] = json.dumps(d["evidence"], ensure_ascii=False, sort_keys=False)
    values = ["" if d.get(k) is None else d[k] for k in CSV_FIELDS]
    for i, v in enumerate(values):
        if type(v) is str and v and v[0] in CSV_FORMULA_START:
            values[i] = csv_cell(v)
    return _csv_line(values)


def csv_assemble(texts: Iterable[str], summary) -> Iterator[str]:
    chunk = [_csv_line(CSV_FIELDS)]
    size = 0
    for text in texts:
        chunk.append(text)
        size += len(text)
        if size > 1 << 16:
            yield "".join(chunk)
            chunk, size = [], 0
    yield "".join(chunk)


def render_csv(alerts: Sequence, summary) -> Iterator[str]:
    return csv_assemble(map(csv_item, alerts), summary)


_md = markdown  # HTML, pipes, controls and bidi controls escaped; one line


def render_markdown(alerts: Sequence, summary) -> str:
    """One table per owner, most urgent first (kamrules.alerts.urgent_order)."""
    out = []
    if summary is not None:
        out += [_("# kamrules check as of {as_of}").format(as_of=summary.as_of), "", _md(summary.line()), ""]
        warnings = summary.warnings() if hasattr(summary, "warnings") else []  # stale data (docs/cli.md)
        out += [f"**{_md(line)}**" for line in warnings] + ([""] if warnings else [])
    if not alerts:
        return "\n".join(out + [_("No alerts."), ""])
    for owner, group in groupby(urgent_order(alerts), key=lambda a: a.owner):
        group = list(group)
        head = owner or _("(no owner)")
        email = group[0].owner_email
        out += [f"## {_md(head)}" + (f" &lt;{_md(email)}&gt;" if email else ""), ""]
        out += [_("| account | severity | code | message | action |"), "| --- | --- | --- | --- | --- |"]
        for a in group:
            acct = f"{a.account_name} ({a.account_id})" if a.account_id else _("(portfolio)")
            out.append(
                f"| {_md(acct)} | {_md(label('severity', a.severity))} | {_md(a.code)} | {_md(a.message_in())} | {_md(a.action_in())} |"
            )
        out.append("")
    return "\n".join(out)


SEV_LABEL = {"critical": "CRIT", "warning": "WARN", "info": "info"}


def render_table(alerts: Sequence, summary, max_width: int = WIDTH, health: dict | None = None) -> str:
    """Grouped by owner, then account, most urgent first (kamrules.alerts.urgent_order); messages wrapped
    to fit ``max_width`` columns. ``health``:
    {account_id: text} shown after the account (its score and trend, when the check records a run).

    Store values are shown escaped (kamrules.textsafe.term): no terminal escape or bidi control gets through."""
    if not alerts:
        return _("No alerts.") + "\n"
    sev_label = SEV_LABEL if get_lang() == "en" else {s: label("severity", s) for s in SEV_LABEL}  # zh: 严重 警告 提示
    code_w = max(width(term(a.code)) for a in alerts)
    indent = 2 + 4 + 2 + code_w + 2  # "  " + label + "  " + code + "  "
    text_w = max(max_width - indent, 24)
    out: list[str] = []
    for owner, by_owner in groupby(urgent_order(alerts), key=lambda a: a.owner):
        by_owner = list(by_owner)
        email = by_owner[0].owner_email
        title = term(f"{owner or _('(no owner)')}" + (f" <{email}>" if email else ""))
        n = len(by_owner)
        head = ngettext("{title}: {n} alert", "{title}: {n} alerts", n).format(title=title, n=n)
        out.append(head if width(head) <= max_width else pad(head, max_width))
        out.append("=" * min(max(width(out[-1]), 20), max_width))
        for (acct, name), items in groupby(by_owner, key=lambda a: (a.account_id, a.account_name)):
            head = term(f"{name} ({acct})") if acct else _("(portfolio)")
            if health and health.get(acct):
                head += _("  · health {score}").format(score=health[acct])
            out.append(head if width(head) <= max_width else pad(head, max_width))
            for a in items:
                lines = wrap(term(a.message_in(), True), text_w) + wrap("-> " + term(a.action_in(), True), text_w)
                out.append(f"  {pad(sev_label[a.severity], 4)}  {pad(term(a.code), code_w)}  {lines[0]}".rstrip())
                out += [(" " * indent + ln).rstrip() for ln in lines[1:]]
        out.append("")
    return "\n".join(out)


@hookimpl
def register_output_formats():
    return [
        OutputFormat("table", render_table, "grouped by owner and account, fits 80 columns", "txt"),
        items_format("json", json_item, json_assemble, "a JSON array of alert objects", "json"),
        items_format("jsonl", jsonl_item, jsonl_assemble, "one JSON alert object per line", "jsonl"),
        items_format(
            "csv",
            csv_item,
            csv_assemble,
            "one row per alert (evidence as JSON); cells that a spreadsheet would read as a formula start with '",
            "csv",
        ),
        items_format(
            "csv-raw", csv_raw_item, csv_assemble, "as csv, without the ' before cells starting with = + - @", "csv"
        ),
        OutputFormat("markdown", render_markdown, "a Markdown report, one table per owner", "md"),
    ]
