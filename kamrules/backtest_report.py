"""The outputs of a backtest (table, json, jsonl, csv), written date by date as the dates are evaluated."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from kamrules.alerts import SEVERITIES
from kamrules.backtest import DateResult
from kamrules.i18n import _, get_lang, label

FORMATS = ("table", "json", "jsonl", "csv")
CSV_FIELDS = (
    "as_of",
    "kind",
    "ruleset",
    "code",
    "alerts",
    "critical",
    "warning",
    "info",
    "new",
    "resolved",
    "added",
    "removed",
    "changed",
)


def _n(v) -> str:
    return "-" if v is None else str(v)


def render(fmt: str, results: Iterable[DateResult], scorecard, title: str = "") -> Iterator[str]:
    """The text of ``fmt``, chunk by chunk (jsonl, json and csv stream; the table is written at the end)."""
    if fmt == "jsonl":
        return _jsonl(results)
    if fmt == "json":
        return _json(results)
    if fmt == "csv":
        return _csv(results, scorecard)
    if fmt == "table":
        return iter([render_table(list(results), scorecard, title)])
    raise ValueError(f"unknown backtest format {fmt!r}")


def _line(alert, **extra) -> str:
    d = dict(extra, **alert.to_dict()) if extra else alert.to_dict()
    return json.dumps(d, ensure_ascii=False) + "\n"


def _jsonl(results: Iterable[DateResult]) -> Iterator[str]:
    """One alert per line, exactly ``check --format jsonl``'s objects (``as_of`` is the date); with
    --compare, the tuned rules' differences follow each date with a ``compare`` key."""
    for r in results:
        yield "".join(map(_line, r.alerts))
        for d in r.diffs or ():
            yield "".join(
                [_line(a, compare="added") for a in d.added]
                + [_line(a, compare="removed") for a in d.removed]
                + [_line(t, compare="changed", severity_before=c.severity) for c, t in d.changed]
            )


def _json(results: Iterable[DateResult]) -> Iterator[str]:
    sep = "["
    for r in results:
        yield sep + "\n" + json.dumps(r.to_dict(), ensure_ascii=False, indent=2)
        sep = ","
    yield "[]\n" if sep == "[" else "\n]\n"


def _csv(results: Iterable[DateResult], scorecard) -> Iterator[str]:
    grades = [g.grade for g in scorecard.grades]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS + tuple(grades))
    for r in results:
        sev = {s: sum(a.severity == s for a in r.alerts) for s in SEVERITIES}
        w.writerow(
            [
                r.as_of,
                "date",
                "",
                "",
                len(r.alerts),
                sev["critical"],
                sev["warning"],
                sev["info"],
                _len(r.new),
                _len(r.resolved),
                *_compare_totals(r),
            ]
            + [r.grades.get(g, 0) for g in grades]
        )
        new, resolved = _by_rs(r.new), _by_rs(r.resolved)
        for rs, counts in r.by_ruleset().items():
            w.writerow(
                [
                    r.as_of,
                    "ruleset",
                    rs,
                    "",
                    sum(counts.values()),
                    counts["critical"],
                    counts["warning"],
                    counts["info"],
                    "" if r.new is None else new.get(rs, 0),
                    "" if r.resolved is None else resolved.get(rs, 0),
                    "",
                    "",
                    "",
                ]
                + [""] * len(grades)
            )
        for d in r.diffs or ():
            w.writerow(
                [
                    r.as_of,
                    "compare",
                    d.ruleset,
                    d.code,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    len(d.added),
                    len(d.removed),
                    len(d.changed),
                ]
                + [""] * len(grades)
            )
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()


def _len(x) -> str | int:
    return "" if x is None else len(x)


def _by_rs(alerts) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in alerts or ():
        out[a.ruleset] = out.get(a.ruleset, 0) + 1
    return out


def _compare_totals(r: DateResult) -> list:
    if r.diffs is None:
        return ["", "", ""]
    return [
        sum(len(d.added) for d in r.diffs),
        sum(len(d.removed) for d in r.diffs),
        sum(len(d.changed) for d in r.diffs),
    ]


def render_table(results: list[DateResult], scorecard, title: str = "") -> str:
    """Per date: alerts by severity, new and resolved, the grade distribution; then per date and rule set;
    then (with --compare) per date and rule, the alerts added, removed and changed by the tuned rules."""
    from kamrules.termtable import table

    grades = list(scorecard.grades)
    out = [title, ""] if title else []
    rows = []
    for r in results:
        sev = {s: sum(a.severity == s for a in r.alerts) for s in SEVERITIES}
        rows.append(
            [
                r.as_of,
                str(len(r.alerts)),
                str(sev["critical"]),
                str(sev["warning"]),
                str(sev["info"]),
                _n(None if r.new is None else len(r.new)),
                _n(None if r.resolved is None else len(r.resolved)),
            ]
            + [str(r.grades.get(g.grade, 0)) for g in grades]
        )
    sevs = [label("severity", s) for s in ("critical", "warning", "info")]
    zh = get_lang() == "zh"
    heads = [_("date"), _("alerts"), *sevs, _("new"), _("resolved")] + [g.zh if zh else g.en for g in grades]
    out.append(_("alerts and health (accounts per grade) at each date"))
    out.append(table(heads, rows, max_width=200, wrap_last=False, aligns=["<"] + [">"] * (len(heads) - 1)))
    rows = []
    for r in results:
        new, resolved = _by_rs(r.new), _by_rs(r.resolved)
        for rs, c in r.by_ruleset().items():
            rows.append(
                [
                    r.as_of,
                    rs,
                    str(sum(c.values())),
                    str(c["critical"]),
                    str(c["warning"]),
                    str(c["info"]),
                    "-" if r.new is None else str(new.get(rs, 0)),
                    "-" if r.resolved is None else str(resolved.get(rs, 0)),
                ]
            )
    out += ["", _("by rule set")]
    out.append(
        table(
            [_("date"), _("rule set"), _("alerts"), *sevs, _("new"), _("resolved")],
            rows,
            max_width=200,
            wrap_last=False,
            aligns=["<", "<", ">", ">", ">", ">", ">", ">"],
        )
    )
    if any(r.diffs is not None for r in results):
        out += ["", _("tuned rule sets (--compare) against the current ones: alerts added, removed, changed severity")]
        rows = [
            [r.as_of, d.code, d.ruleset, f"+{len(d.added)}", f"-{len(d.removed)}", f"~{len(d.changed)}"]
            for r in results
            for d in r.diffs or ()
        ]
        if rows:
            out.append(
                table(
                    [_("date"), _("rule"), _("rule set"), _("added"), _("removed"), _("changed")],
                    rows,
                    max_width=200,
                    wrap_last=False,
                    aligns=["<", "<", "<", ">", ">", ">"],
                )
            )
            totals: dict[str, list[int]] = {}
            for r in results:
                for d in r.diffs or ():
                    t = totals.setdefault(d.code, [0, 0, 0])
                    t[0], t[1], t[2] = t[0] + len(d.added), t[1] + len(d.removed), t[2] + len(d.changed)
            each = _("; ").join(f"{c} +{a} -{b} ~{x}" for c, (a, b, x) in sorted(totals.items()))
            out.append(_("over the range: {totals}").format(totals=each))
        else:
            out.append(_("no difference: the tuned rule sets fire the same alerts at every date"))
    return "\n".join(out) + "\n"
