"""The portfolio report: one self-contained HTML file (inline SVG charts, inline CSS), in English or Chinese.

Library API: ``build_report(store, as_of, ...) -> Report`` (the HTML and its data),
``write_report(report, path)``, ``mail_report(store, report, to, settings, pm)``.
Templates (Jinja2) live in kamrules/templates/report/; a folder given as ``templates_dir``
overrides them by file name, like the email templates.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import jinja2

from kamrules.errors import DeliveryError, InputError
from kamrules.vocab import STAGES, TIERS

BUILTIN_TEMPLATES = Path(__file__).resolve().parent / "templates" / "report"
LANGS = ("en", "zh")

# A small label table per language, until the Chinese-output issue brings gettext catalogues.
_EN = {
    "title": "Portfolio report",
    "as_of": "as of",
    "generated": "generated",
    "glance": "The book at a glance",
    "health": "Health by grade",
    "alerts_section": "Alerts by owner and rule set",
    "concentration": "Revenue concentration",
    "pipeline": "The pipeline",
    "trend": "Trend over recorded runs",
    "at_risk": "Accounts most at risk",
    "owners": "Owners",
    "accounts": "accounts",
    "revenue_12m": "trailing 12-month revenue",
    "alerts": "alerts",
    "average_score": "average health",
    "revenue_at_risk": "revenue at risk",
    "freshness": "newest records",
    "days_old": "days before the as-of date",
    "by_count": "Accounts per grade",
    "by_revenue": "Trailing 12-month revenue per grade",
    "revenue_axis": "revenue (12 months)",
    "severity": "severity",
    "no_owner": "(no owner)",
    "by_owner_title": "Alerts per owner",
    "by_ruleset_title": "Alerts per rule set",
    "pct_accounts": "% of accounts (largest first)",
    "pct_revenue": "% of revenue",
    "top20": "top 20%",
    "pareto_title": "Cumulative share of trailing 12-month revenue",
    "prospects": "prospects",
    "within": "within the stage limit",
    "over": "over the stage limit",
    "per_stage": "Prospects per stage",
    "days_in_stage": "days in stage",
    "days_title": "Days in stage: median (bar), 90th percentile (black), limit (red)",
    "alerts_per_run": "Alerts per run",
    "health_per_run": "Average health per run",
    "account": "account",
    "score": "score",
    "grade": "grade",
    "trend_col": "trend",
    "main_driver": "main driver",
    "owner": "owner",
    "last_contact": "last contact",
    "tier": "tier",
    "critical_alerts": "critical",
    "total": "total",
    "stage_col": "stage",
    "median": "median days",
    "limit": "limit (key accounts)",
    "section_link": "section",
    "none": "none",
    "single_run": "Only one run is recorded ({as_of}): a trend needs at least two. Each `kamrules check` records a run.",
    "no_run": "No run is recorded yet: `kamrules check` records one; the trend starts with the second.",
    "top_note": "The {n} accounts with the lowest health scores of {total} (--top changes how many).",
    "owner_top_note": "{shown} of {total} accounts, most urgent first ({with_alerts} with alerts).",
    "owners_note": "Sections for {n} of {total} owners (--owner).",
    "no_revenue": "No orders in the 12 months to the as-of date.",
    "no_prospects": "No prospects in the pipeline.",
    "top20_text": "The top 20% of accounts ({k}) bring {share}% of the revenue.",
    "portfolio_alerts": "Portfolio alerts",
    "skipped": "Rules skipped for missing data",
    "failures": "The check was incomplete",
    "scores_from": "Scores of recorded run {run}.",
    "scores_computed": "No run recorded at this date: scores computed from this check.",
    "chart_owners_note": "The chart shows the {n} owners with the most alerts; the table lists every owner.",
    "print_note": "Charts aggregate the whole book; tables hold the top accounts.",
    "sev": {"critical": "critical", "warning": "warning", "info": "info"},
    "stage": {s: s for s in STAGES},
    "tiers": {t: t for t in TIERS},
    "trend_words": {"up": "↑", "down": "↓", "steady": "→", None: "new"},
}
_ZH = dict(
    _EN,
    **{
        "title": "大客户组合报告",
        "as_of": "截至",
        "generated": "生成于",
        "glance": "客户总览",
        "health": "健康度分布",
        "alerts_section": "各负责人及规则集的预警",
        "concentration": "销售额集中度",
        "pipeline": "开发进度(销售漏斗)",
        "trend": "历次检查趋势",
        "at_risk": "风险最高的客户",
        "owners": "按负责人",
        "accounts": "客户数",
        "revenue_12m": "近12个月销售额",
        "alerts": "预警",
        "average_score": "平均健康分",
        "revenue_at_risk": "风险销售额",
        "freshness": "最新记录",
        "days_old": "天前(相对截至日期)",
        "by_count": "各等级客户数",
        "by_revenue": "各等级近12个月销售额",
        "revenue_axis": "销售额(12个月)",
        "severity": "级别",
        "no_owner": "(无负责人)",
        "by_owner_title": "各负责人的预警",
        "by_ruleset_title": "各规则集的预警",
        "pct_accounts": "客户占比 %(从大到小)",
        "pct_revenue": "销售额占比 %",
        "top20": "前20%",
        "pareto_title": "近12个月销售额累计占比",
        "prospects": "潜在客户",
        "within": "未超阶段时限",
        "over": "超过阶段时限",
        "per_stage": "各阶段潜在客户数",
        "days_in_stage": "停留天数",
        "days_title": "阶段停留天数:中位数(柱)、90分位(黑)、时限(红)",
        "alerts_per_run": "每次检查的预警",
        "health_per_run": "每次检查的平均健康分",
        "account": "客户",
        "score": "健康分",
        "grade": "等级",
        "trend_col": "趋势",
        "main_driver": "主要原因",
        "owner": "负责人",
        "last_contact": "最近联系",
        "tier": "类别",
        "critical_alerts": "严重",
        "total": "合计",
        "stage_col": "阶段",
        "median": "停留天数中位数",
        "limit": "时限(大客户)",
        "section_link": "详情",
        "none": "无",
        "single_run": "仅记录了一次检查({as_of}):至少两次才能显示趋势。每次 `kamrules check` 都会记录一次。",
        "no_run": "尚未记录检查:`kamrules check` 会记录一次,第二次起显示趋势。",
        "top_note": "{total} 个客户中健康分最低的 {n} 个(用 --top 调整数量)。",
        "owner_top_note": "共 {total} 个客户,显示最紧急的 {shown} 个(其中 {with_alerts} 个有预警)。",
        "owners_note": "显示 {total} 位负责人中的 {n} 位(--owner)。",
        "no_revenue": "截至日期前12个月内没有订单。",
        "no_prospects": "销售漏斗中没有潜在客户。",
        "top20_text": "前20%的客户({k} 个)贡献了 {share}% 的销售额。",
        "portfolio_alerts": "组合层面的预警",
        "skipped": "因缺少数据而跳过的规则",
        "failures": "检查未完整运行",
        "scores_from": "健康分来自第 {run} 次记录的检查。",
        "scores_computed": "该日期没有记录的检查:健康分由本次检查计算。",
        "chart_owners_note": "图中显示预警最多的 {n} 位负责人;表格列出全部负责人。",
        "print_note": "图表汇总全部客户;表格只列出最需关注的客户。",
        "sev": {"critical": "严重", "warning": "警告", "info": "提示"},
        "stage": {
            "research": "资料收集",
            "analysis": "客户分析",
            "contact": "接触客户",
            "visit": "拜访",
            "presentation": "产品说明",
            "proposal": "建议书",
            "negotiation": "商务谈判",
            "won": "签约",
        },
        "tiers": {"key": "大客户", "mid": "中型客户", "small": "小客户"},
        "trend_words": {"up": "↑", "down": "↓", "steady": "→", None: "新"},
    },
)


def labels(lang: str) -> dict:
    if lang not in LANGS:
        raise InputError(f"--lang {lang!r}: expected one of {', '.join(LANGS)}")
    L = dict(_ZH if lang == "zh" else _EN)
    L["lang"] = lang
    L["grade_name"] = (lambda g: g["zh"]) if lang == "zh" else (lambda g: g["en"])
    return L


def amount(value, lang: str) -> str:
    """An amount for people: 1,234,567 in English; 万/亿 in Chinese (Babel's CLDR compact format, zh_CN)."""
    if value is None:
        return ""
    if lang == "zh":
        from babel.numbers import format_compact_decimal

        return (
            format_compact_decimal(value, locale="zh_CN", fraction_digits=1) if abs(value) >= 10000 else f"{value:,.0f}"
        )
    return f"{value:,.0f}"


@dataclass
class Report:
    html: str
    data: dict
    lang: str

    @property
    def size(self) -> int:
        return len(self.html.encode("utf-8"))


@functools.lru_cache(maxsize=8)
def environment(templates_dir: str | None) -> jinja2.Environment:
    search = ([templates_dir] if templates_dir else []) + [str(BUILTIN_TEMPLATES)]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(search, encoding="utf-8"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def charts(data: dict, L: dict) -> dict[str, str]:
    """Every chart of the page as inline SVG (a chart with nothing to draw is left out and the page says why)."""
    from kamrules import report_charts as rc
    from kamrules.report_data import TOP_OWNERS_CHART

    out = {"grades": rc.to_svg(rc.grades_chart(data["grades"], L))}
    owners = [r for r in data["owner_rows"] if r["total"]][:TOP_OWNERS_CHART]
    if owners:
        out["owners"] = rc.to_svg(rc.severity_bars(owners, "owner", L, L["by_owner_title"]))
    if data["rulesets"]:
        out["rulesets"] = rc.to_svg(rc.severity_bars(data["rulesets"], "ruleset", L, L["by_ruleset_title"], width=300))
    if data["pareto"]["points"]:
        out["pareto"] = rc.to_svg(rc.pareto_chart(data["pareto"], L))
    if any(s["prospects"] for s in data["pipeline"]):
        out["pipeline"] = rc.to_svg(rc.pipeline_charts(data["pipeline"], L))
    if len(data["trend"]) >= 2:
        out["trend"] = rc.to_svg(rc.trend_charts(data["trend"], L))
    return out


def render(data: dict, lang: str = "en", templates_dir: str | None = None) -> str:
    """The HTML page for ``data`` (from :func:`kamrules.report_data.report_data`)."""
    from kamrules.report_data import TOP_OWNERS_CHART

    L = labels(lang)
    ctx = {
        "d": data,
        "L": L,
        "lang": lang,
        "charts": charts(data, L),
        "money": lambda v: amount(v, lang),
        "chart_owners": TOP_OWNERS_CHART,
        "fmt": lambda s, **kw: s.format(**kw),
    }
    try:
        return environment(templates_dir).get_template("report.html.j2").render(ctx)
    except jinja2.TemplateSyntaxError as e:
        raise InputError(f"{e.filename}:{e.lineno}: template error: {e.message}") from None
    except jinja2.TemplateError as e:
        raise InputError(f"report template error: {type(e).__name__}: {e}") from None


def build_report(
    store,
    as_of: str,
    owners=(),
    lang: str = "en",
    top: int = 20,
    templates_dir: str | None = None,
    scorecard=None,
    rulesets_dirs=(),
    pm=None,
) -> Report:
    """Gather the data and render the page. InputError (exit 2): empty store, unknown owner or language, bad --top."""
    from kamrules.report_data import report_data

    labels(lang)  # a bad language is refused before the check runs
    if templates_dir is not None and not Path(templates_dir).is_dir():
        raise InputError(f"{templates_dir}: templates folder not found")
    data = report_data(store, as_of, owners=owners, top=top, scorecard=scorecard, rulesets_dirs=rulesets_dirs, pm=pm)
    return Report(render(data, lang, templates_dir), data, lang)


def write_report(report: Report, path) -> None:
    """Write the page through kamrules.outputs.atomic_output (complete or not at all); check the path first."""
    from kamrules.outputs import atomic_output

    with atomic_output(path, encoding="utf-8", newline="") as f:
        f.write(report.html)


def mail_report(store, report: Report, to: list[str], settings, pm, now: dt.datetime | None = None):
    """Queue the page as an attachment to each address in the email outbox, then deliver what is due.

    Returns the outbox Delivery; raises DeliveryError (exit 4) if a report message is still undelivered."""
    from kamrules.lifecycle import digest, outbox
    from kamrules.lifecycle.notifiers import configured_notifiers
    from kamrules.lifecycle.schema import connection_of, ensure_schema, transaction, ts, utcnow

    addrs = []
    for a in to:
        if digest.valid_address(a) is None:
            raise InputError(f"--mail-to {a!r}: not a valid address (expected e.g. ka-director@example.com)")
        addrs.append(a)
    notifiers = configured_notifiers(pm, ["email"], settings)
    now = now or utcnow()
    conn = connection_of(store)
    ensure_schema(conn)
    d, L = report.data, labels(report.lang)
    subject = f"[kamrules] {L['title']} — {L['as_of']} {d['as_of']}"
    b = d["book"]
    text = (
        f"{L['title']} {L['as_of']} {d['as_of']}\n{b['accounts']} {L['accounts']}; {L['revenue_12m']} "
        f"{amount(b['revenue_12m'], report.lang)}; {L['alerts']}: "
        + ", ".join(f"{b['alerts'][s]} {L['sev'][s]}" for s in ("critical", "warning", "info"))
        + "\n\nThe report is attached (one HTML file: open it in a browser, no network needed).\n"
    )
    digest_of = hashlib.sha256(report.html.encode("utf-8")).hexdigest()[:16]
    keys = []
    with transaction(conn):
        for addr in addrs:
            key = f"report-{d['as_of']}-{digest_of}-{hashlib.sha256(addr.encode()).hexdigest()[:8]}"
            msg = digest.build_message(
                sender=settings.email.smtp_from,
                recipient=addr,
                to_name=None,
                subject=subject,
                text=text,
                html=None,
                key=key,
                now=now,
            )
            msg.add_attachment(
                report.html.encode("utf-8"),
                maintype="text",
                subtype="html",
                filename=f"kamrules-report-{d['as_of']}.html",
            )
            conn.execute(
                "INSERT OR IGNORE INTO outbox (key, notifier, recipient, subject, payload, status, created_at, next_attempt) "
                "VALUES (?, 'email', ?, ?, ?, 'queued', ?, ?)",
                (key, addr, subject, msg.as_bytes(), ts(now), ts(now)),
            )
            keys.append(key)
    done = outbox.deliver(conn, notifiers, settings, now)
    marks = ",".join("?" * len(keys))
    left = conn.execute(f"SELECT COUNT(*) FROM outbox WHERE key IN ({marks}) AND status != 'sent'", keys).fetchone()[0]
    if left:
        raise DeliveryError(
            f"the report was not delivered to {left} of {len(keys)} recipients (kept in the outbox; "
            f"`kamrules notify` retries): {'; '.join(done.errors[:3])}"
        )
    return done
