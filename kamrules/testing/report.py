"""Reports of a test run: readable text (expected vs got), JUnit XML."""

from __future__ import annotations

from pathlib import Path

from kamrules.testing.model import CaseResult, TestRun, _where


# -- reports ------------------------------------------------------------------
def describe_alert(a, width: int = 160) -> str:
    where = (
        a.account_id
        if a.account_id is not None
        else "the portfolio" + (f" scope {a.scope_key!r}" if a.scope_key else "")
    )
    text = f"{a.code} on {where} {a.severity}: {a.message}"
    return text if len(text) <= width else text[: width - 1] + "…"


def case_details(c: CaseResult) -> list[str]:
    """The readable diff of one case: expected vs got."""
    out = []
    if c.missing:
        out.append("missing (expected but did not fire):")
        for e, closest, why, note in c.missing:
            out.append(f"  {e.describe()}  (line {e.line})")
            if closest is not None:
                out.append(f"    closest: {describe_alert(closest)}")
                out.append(f"    differs: {'; '.join(why)}")
            if note:
                out.append(f"    {note}")
            if closest is None and not note:
                out.append(f"    no {e.code} alert fired on {_where(e.account, e.scope)}")
    if c.unexpected:
        out.append("unexpected (fired but not expected):")
        out += [f"  {describe_alert(a)}" for a in c.unexpected]
    if c.loud:
        out.append("not quiet:")
        out += [f"  {q.describe()} (line {q.line}): {describe_alert(a)}" for q, a in c.loud]
    out += c.notes
    return out


def render_text(run: TestRun, verbose: bool = False) -> str:
    lines, current = [], None
    for c in run.cases:
        if c.file != current:
            current = c.file
            lines.append(current)
        label = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}[c.status]
        where = "" if c.status == "passed" else f" ({c.file}:{c.line})"
        lines.append(f"  {label:<5} {c.name} [{c.seconds:.2f}s]{where}")
        if c.status != "passed":
            lines += [f"        {d}" for d in case_details(c)]
        if verbose and c.status != "error":
            lines.append(f"        fired ({len(c.fired)}):")
            lines += [f"          {describe_alert(a)}" for a in c.fired]
    parts = [f"{run.passed} passed", f"{run.failed} failed"] + ([f"{run.errors} errors"] if run.errors else [])
    lines.append(f"{', '.join(parts)} in {run.seconds:.2f}s")
    return "\n".join(lines) + "\n"


def _headline(c: CaseResult) -> str:
    if c.status == "error":
        return (c.notes or ["error"])[0].splitlines()[0][:200]
    parts = [f"{len(c.missing)} missing", f"{len(c.unexpected)} unexpected", f"{len(c.loud)} not quiet"]
    return ", ".join(parts) + (f", {len(c.notes)} rule failure(s)" if c.notes else "")


def render_junit(run: TestRun) -> str:
    """JUnit XML: one <testsuite> per test file, one <testcase> per case."""
    import xml.etree.ElementTree as ET

    root = ET.Element(
        "testsuites",
        name="kamrules test",
        tests=str(len(run.cases)),
        failures=str(run.failed),
        errors=str(run.errors),
        time=f"{run.seconds:.3f}",
    )
    for path in run.files:
        cases = [c for c in run.cases if c.file == path]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=path,
            tests=str(len(cases)),
            failures=str(sum(c.status == "failed" for c in cases)),
            errors=str(sum(c.status == "error" for c in cases)),
            time=f"{sum(c.seconds for c in cases):.3f}",
        )
        for c in cases:
            tc = ET.SubElement(
                suite,
                "testcase",
                classname=Path(path).stem,
                name=c.name,
                file=path,
                line=str(c.line),
                time=f"{c.seconds:.3f}",
            )
            if c.status != "passed":
                detail = "\n".join(case_details(c))
                tag = "failure" if c.status == "failed" else "error"
                el = ET.SubElement(tc, tag, message=_headline(c), type="RuleTest" + tag.title())
                el.text = detail
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
