"""The report's charts: Vega-Lite specs built with Altair, drawn to inline SVG by vl-convert (no JavaScript).

Why SVG and not the Vega JavaScript bundle: the file must open offline, from an email
attachment and on paper. An inline SVG needs no script to run (mail clients and print
previews run none), weighs a few kB per chart instead of ~1 MB of bundled JavaScript,
and is searchable, printable and sharp at any zoom. The price: no hover tooltips.
"""

from __future__ import annotations

import re

FONT = "-apple-system, 'Segoe UI', 'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', 'WenQuanYi Micro Hei', Arial, sans-serif"
SEV_COLOURS = {"critical": "#b00020", "warning": "#e08a00", "info": "#1a5fb4"}
GRADE_COLOURS = ["#2e7d32", "#7cb342", "#f9a825", "#ef6c00", "#b00020", "#6a1b9a"]
CONFIG = {
    "font": FONT,
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 11},
    "legend": {"labelFontSize": 11, "titleFontSize": 11},
    "title": {"fontSize": 13, "anchor": "start"},
}
_HREF = re.compile(r'\s(?:xlink:)?href="[^"]*"')


def to_svg(chart) -> str:
    """An Altair chart as an SVG string: nothing loaded from anywhere, no link left in it."""
    import vl_convert as vlc

    spec = chart.to_dict()
    svg = vlc.vegalite_to_svg(spec, config=CONFIG, allowed_base_urls=[])
    return _HREF.sub("", svg)  # charts link nowhere; the page's tables carry the links


def to_png(chart, scale: float = 2.0) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart.to_dict(), scale=scale, config=CONFIG, allowed_base_urls=[])


def _alt():
    import altair as alt

    return alt


def grades_chart(grades: list[dict], L: dict):
    """Accounts per grade and trailing revenue per grade, side by side (same colours)."""
    alt = _alt()
    rows = [{"grade": L["grade_name"](g), "accounts": g["accounts"], "revenue": g["revenue_12m"]} for g in grades]
    order = [r["grade"] for r in rows]
    colour = alt.Color(
        "grade:N", sort=order, scale=alt.Scale(domain=order, range=GRADE_COLOURS[: len(order)]), legend=None
    )
    base = alt.Chart(alt.Data(values=rows)).mark_bar().encode(y=alt.Y("grade:N", sort=order, title=None), color=colour)
    by_count = base.encode(x=alt.X("accounts:Q", title=L["accounts"])).properties(
        width=260, height=24 * len(rows), title=L["by_count"]
    )
    by_revenue = base.encode(x=alt.X("revenue:Q", title=L["revenue_axis"], axis=alt.Axis(format="~s"))).properties(
        width=260, height=24 * len(rows), title=L["by_revenue"]
    )
    return alt.hconcat(by_count, by_revenue, spacing=40)


def severity_bars(rows: list[dict], key: str, L: dict, title: str, width: int = 380):
    """Horizontal bars of alerts per ``key`` stacked by severity (critical first)."""
    alt = _alt()
    sevs = ["critical", "warning", "info"]
    data = [
        {"who": r[key] or L["no_owner"], "severity": L["sev"][s], "rank": i, "n": r[s]}
        for r in rows
        for i, s in enumerate(sevs)
        if r[s]
    ]
    order = [r[key] or L["no_owner"] for r in rows]
    domain = [L["sev"][s] for s in sevs]
    return (
        alt.Chart(alt.Data(values=data))
        .mark_bar()
        .encode(
            y=alt.Y("who:N", sort=order, title=None),
            x=alt.X("n:Q", title=L["alerts"], stack="zero"),
            color=alt.Color(
                "severity:N", scale=alt.Scale(domain=domain, range=[SEV_COLOURS[s] for s in sevs]), title=L["severity"]
            ),
            order=alt.Order("rank:Q"),
        )
        .properties(width=width, height=max(40, 18 * len(order)), title=title)
    )


def pareto_chart(pareto: dict, L: dict):
    alt = _alt()
    pts = alt.Data(values=pareto["points"])
    line = (
        alt.Chart(pts)
        .mark_line(color="#1a5fb4", strokeWidth=2)
        .encode(
            x=alt.X("accounts_pct:Q", title=L["pct_accounts"], scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("revenue_pct:Q", title=L["pct_revenue"], scale=alt.Scale(domain=[0, 100])),
        )
    )
    mark = alt.Data(
        values=[{"x": 20, "y": pareto["top20_share"], "label": f"{L['top20']}: {pareto['top20_share']:g}%"}]
    )
    rule = alt.Chart(mark).mark_rule(color="#b00020", strokeDash=[4, 3]).encode(x="x:Q")
    dot = alt.Chart(mark).mark_point(color="#b00020", filled=True, size=60).encode(x="x:Q", y="y:Q")
    text = (
        alt.Chart(mark)
        .mark_text(align="left", dx=8, dy=12, color="#b00020", fontWeight="bold")
        .encode(x="x:Q", y="y:Q", text="label:N")
    )
    return (line + rule + dot + text).properties(width=420, height=260, title=L["pareto_title"])


def pipeline_charts(stages: list[dict], L: dict):
    """Prospects per stage (within / over the stage limit) and days in stage (median, 90th percentile) against the limit."""
    alt = _alt()
    order = [L["stage"][s["stage"]] for s in stages]
    counts = []
    for s in stages:
        counts.append(
            {"stage": L["stage"][s["stage"]], "kind": L["within"], "rank": 0, "n": s["prospects"] - s["over"]}
        )
        counts.append({"stage": L["stage"][s["stage"]], "kind": L["over"], "rank": 1, "n": s["over"]})
    kinds = [L["within"], L["over"]]
    left = (
        alt.Chart(alt.Data(values=counts))
        .mark_bar()
        .encode(
            y=alt.Y("stage:N", sort=order, title=None),
            x=alt.X("n:Q", title=L["prospects"], stack="zero"),
            color=alt.Color(
                "kind:N",
                scale=alt.Scale(domain=kinds, range=["#7cb342", "#b00020"]),
                title=None,
                legend=alt.Legend(orient="bottom"),
            ),
            order=alt.Order("rank:Q"),
        )
        .properties(width=300, height=24 * len(order), title=L["per_stage"])
    )
    days = [
        {
            "stage": L["stage"][s["stage"]],
            "median": s["median_days"] or 0,
            "p90": s["p90_days"] or 0,
            "limit": s["limit"] or 0,
        }
        for s in stages
    ]
    base = alt.Chart(alt.Data(values=days)).encode(y=alt.Y("stage:N", sort=order, title=None))
    bar = base.mark_bar(color="#90a4ae").encode(x=alt.X("median:Q", title=L["days_in_stage"]))
    p90 = base.mark_tick(color="#37474f", thickness=2, size=16).encode(x="p90:Q")
    limit = base.mark_tick(color="#b00020", thickness=3, size=22).encode(x="limit:Q")
    right = (bar + p90 + limit).properties(width=300, height=24 * len(order), title=L["days_title"])
    return alt.hconcat(left, right, spacing=40)


def trend_charts(points: list[dict], L: dict):
    alt = _alt()
    sevs = ["critical", "warning", "info"]
    rows = [{"as_of": p["as_of"], "severity": L["sev"][s], "n": p[s]} for p in points for s in sevs]
    domain = [L["sev"][s] for s in sevs]
    alerts = (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=True)
        .encode(
            x=alt.X("as_of:T", title=None, axis=alt.Axis(format="%Y-%m-%d", labelAngle=-30)),
            y=alt.Y("n:Q", title=L["alerts"]),
            color=alt.Color(
                "severity:N", scale=alt.Scale(domain=domain, range=[SEV_COLOURS[s] for s in sevs]), title=L["severity"]
            ),
        )
        .properties(width=340, height=200, title=L["alerts_per_run"])
    )
    avg = (
        alt.Chart(alt.Data(values=[p for p in points if p["average"] is not None]))
        .mark_line(point=True, color="#2e7d32")
        .encode(
            x=alt.X("as_of:T", title=None, axis=alt.Axis(format="%Y-%m-%d", labelAngle=-30)),
            y=alt.Y("average:Q", title=L["average_score"], scale=alt.Scale(zero=False)),
        )
        .properties(width=300, height=200, title=L["health_per_run"])
    )
    return alt.hconcat(alerts, avg, spacing=40)


def grade_bars_small(grades: list[dict], L: dict):
    """The digest's little picture: accounts per grade (a PNG in the email)."""
    alt = _alt()
    rows = [{"grade": L["grade_name"](g), "accounts": g["accounts"]} for g in grades]
    order = [r["grade"] for r in rows]
    return (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            x=alt.X("grade:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("accounts:Q", title=L["accounts"]),
            color=alt.Color(
                "grade:N", sort=order, scale=alt.Scale(domain=order, range=GRADE_COLOURS[: len(order)]), legend=None
            ),
        )
        .properties(width=300, height=120)
    )
