"""The rule and fact reference (docs/rules.md) as Markdown, generated from the loaded rule sets and providers."""

from __future__ import annotations

import importlib.resources
import re

from kamrules.vocab import SEVERITIES


def _title(description: str) -> str:
    """A rule set's short title: its description up to the first colon or full stop."""
    return re.split(r"[:.]\s", description.strip(), maxsplit=1)[0].strip()


def _anchor(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _value(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items())
    return str(v)


def _codes(rules) -> str:
    """KAM101–KAM106, KAM411–KAM417: runs of consecutive codes."""
    runs: list[list[str]] = []
    for code in sorted(r.code for r in rules):
        prev = runs[-1][-1] if runs else None
        if prev and prev[:-3] == code[:-3] and int(code[-3:]) == int(prev[-3:]) + 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


SELECTOR_NAMES = {"pipeline_stage": "stage"}


def _rule(r) -> list[str]:
    sev = "/".join(sorted({v.severity for v in r.variants()}, key=SEVERITIES.index))
    out = [f"### {r.code} {r.name}" + (" (portfolio)" if r.scope == "portfolio" else ""), ""]
    if r.description:
        out += [r.description.strip(), ""]
    out.append(f"- **Severity:** {sev}" + ("" if r.enabled else " (disabled by default)"))
    if r.when:
        out.append("- **When:** " + "; ".join(f"`{c.text}`" for c in r.when))
    for name, v in r.thresholds.items():
        tiers = "; ".join(f"{t}: {_value(o[name])}" for t, o in r.tiers.items() if name in o)
        out.append(f"- **`{name}`:** {_value(v)}" + (f" (tiers: {tiers})" if tiers else ""))
    rows = [row for row in r.limits if not (len(row.select) == 1 and row.select[0][0] == "tier")]
    if rows:  # the limits: table, in order of precedence
        out.append(
            "- **Limits** (most specific row first): "
            + "; ".join(
                " ".join(f"{SELECTOR_NAMES.get(f, f)} {'/'.join(v)}" for f, v in row.select)
                + ": "
                + ", ".join(f"`{k}` {_value(x)}" for k, x in row.thresholds.items())
                for row in rows
            )
        )
    if r.message:
        out.append(f"- **Message:** `{r.message}`")
    for cond, text in r.actions:
        out.append(f"- **Action when `{cond.text}`:** {text}")
    if r.action:
        out.append(f"- **Action{' otherwise' if r.actions else ''}:** {r.action}")
    for lang, tr in sorted(r.translations.items()):  # the other languages' texts (docs/rulesets.md)
        if tr.message:
            out.append(f"- **Message ({lang}):** `{tr.message}`")
        for (cond, _), text in zip(r.actions, tr.actions, strict=False):
            if text:
                out.append(f"- **Action ({lang}) when `{cond.text}`:** {text}")
        if tr.action:
            out.append(f"- **Action ({lang}){' otherwise' if r.actions else ''}:** {tr.action}")
    if r.source:
        out.append(f"- **Source:** {r.source}")
    return out + [""]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def facts_by_plugin(pm) -> list[tuple[str, object]]:
    """(plugin name, provider) of every registered provider: core_facts first, then by plugin name."""
    from kamrules.facts import ordered

    owner, providers = {}, []
    for impl in reversed(pm.hook.register_facts.get_hookimpls()):
        for p in impl.function() or []:
            owner[p.name] = (
                impl.plugin_name.rsplit(".", 1)[-1] if impl.plugin_name.startswith("kamrules_") else impl.plugin_name
            )
            providers.append(p)
    rows = [(owner[p.name], p) for p in ordered(providers)]
    return sorted(rows, key=lambda r: (r[0] != "core_facts", r[0]))  # shared facts first; stable within a plugin


def rules_markdown(sets, pm) -> str:
    """docs/rules.md: the hand-written header (kamrules/templates/rules.header.md), then every rule set
    of ``sets`` with its rules (all from the rule files), then the fact reference (the providers of ``pm``)."""
    header = (importlib.resources.files("kamrules.templates") / "rules.header.md").read_text(encoding="utf-8")
    heads = {rs.name: f"{rs.name}: {_title(rs.description)}" if rs.description else rs.name for rs in sets}
    summary = ["| set | codes | what goes wrong |", "| --- | --- | --- |"]
    summary += [
        f"| [{rs.name}](#{_anchor(heads[rs.name])}) | {_codes(rs.rules)} | {_md_cell(_title(rs.description))} |"
        for rs in sets
    ]
    out = [header.replace("{summary}", "\n".join(summary)).rstrip(), "", "---", ""]
    for rs in sets:
        out += [f"## {heads[rs.name]}", ""]
        if rs.description:
            out += [rs.description.strip(), ""]
        if rs.source:
            out += [f"Source: {rs.source}", ""]
        for r in rs.rules:
            out += _rule(r)
    out += [
        "---",
        "",
        "## Fact reference",
        "",
        "Provider (the plugin or rule set that registers it), the tables it requires (empty → rules on its",
        "facts are skipped), and its facts (*derived* ones are computed in Python from other facts).",
        "Account columns (`tier`, `status`, `owner`, `buyer_type`, `stage`, `relationship_stage`,",
        "`lost_reason`, `created_on`, …) are facts too.",
        "",
        "| provider | requires | facts | what |",
        "| --- | --- | --- | --- |",
    ]
    for plugin, p in facts_by_plugin(pm):
        where = plugin + (f", {p.scope}" if p.scope != "account" else "")
        facts = ", ".join(f"`{f}`" for f in p.facts)
        if p.derived:
            facts += ("; " if facts else "") + "derived: " + ", ".join(f"`{f}`" for f in p.derived)
        out.append(f"| {p.name} ({where}) | {', '.join(p.requires) or '–'} | {facts} | {_md_cell(p.description)} |")
    out += [
        "",
        "Your own rules (in your own rule-set files) can use any of these facts; to add",
        "facts of your own, write a plugin (see [plugins.md](plugins.md)).",
        "",
    ]
    return "\n".join(out)
