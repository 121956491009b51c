"""The report in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

Asserts the charts drew marks, the console has no errors, no request left file:/data:, every owner's
section is there, the zh page shows Chinese. Screenshots are kept under the test's tmp folder (and
copied to /tmp/report-<lang>.png for a person to look at).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kamrules.report import build_report, write_report

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
AS_OF = "2026-10-31"

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)),
    reason=f"no browser: {CHROMIUM} and {DRIVER} are needed (apt-get install chromium chromium-driver; .ci/run does it)",
)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver or a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1366,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def recorded(book_store):
    """The 200-account book with two recorded runs (a trend) at 2026-09-30 and 2026-10-31."""
    from kamrules.check import run_check
    from kamrules.lifecycle import record_and_notify

    for day in ("2026-09-30", AS_OF):
        record_and_notify(book_store, run_check(book_store, as_of=day), notify=())
    return book_store


def _requests(driver) -> list[tuple[str, str]]:
    """(document URL, request URL) of every request the browser logged since the last call."""
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            out.append((msg["params"].get("documentURL", ""), msg["params"]["request"]["url"]))
    return out


def _open(driver, path: Path, shot: Path):
    from selenium.webdriver.support.ui import WebDriverWait

    _requests(driver)  # drop what the browser's own start page loaded (chrome:// resources)
    driver.get(path.as_uri())
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && document.querySelectorAll('.chart svg').length > 0"
        )
    )
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1366, min(max(900, height), 6000))  # a long screenshot of the top of the page
    driver.save_screenshot(str(shot))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_in_chromium(recorded, browser, tmp_path, lang):
    report = build_report(recorded, AS_OF, lang=lang, top=10)
    page = tmp_path / f"report-{lang}.html"
    write_report(report, page)
    shot = tmp_path / f"report-{lang}.png"  # the artefact
    _open(browser, page, shot)
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, f"/tmp/report-{lang}.png")

    charts = browser.execute_script(
        "return Array.from(document.querySelectorAll('.chart')).map(c => [c.dataset.chart, "
        "c.querySelectorAll('svg path, svg rect').length, c.querySelector('svg').getBoundingClientRect().width])"
    )
    names = {name for name, _, _ in charts}
    assert {"grades", "owners", "rulesets", "pareto", "pipeline", "trend"} <= names
    for name, marks, width in charts:
        assert marks > 3 and width > 100, f"chart {name} drew {marks} marks, {width}px wide"
    # every rendered bar of the grade chart has a size (the marks are drawn, not empty groups)
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-chart=grades] svg path')).filter(p => {"
        "const b = p.getBBox(); return b.width > 0 && b.height > 0}).length"
    )
    assert drawn >= 2

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    requests = _requests(browser)
    ours = [url for doc, url in requests if doc == page.as_uri()]
    assert page.as_uri() in ours  # the log did see the page load
    assert all(u.startswith(("file:", "data:")) for u in ours), ours
    assert not [u for _, u in requests if not u.startswith(("file:", "data:", "chrome:", "chrome-untrusted:"))], (
        requests
    )

    sections = browser.execute_script(
        "return Array.from(document.querySelectorAll('section.owner')).map(s => s.dataset.owner)"
    )
    owners = {o or "" for (o,) in recorded.conn.execute("SELECT DISTINCT owner FROM accounts")}
    assert set(sections) == owners and len(sections) == len(owners)
    # each owner link of the alerts table leads to a section on the page
    targets = browser.execute_script(
        "return Array.from(document.querySelectorAll('#alerts a[href^=\"#\"]')).map(a => !!document.getElementById(a.hash.slice(1)))"
    )
    assert targets and all(targets)

    text = browser.find_element("tag name", "body").text
    if lang == "zh":
        for word in ("客户总览", "健康度分布", "风险最高的客户", "负责人", "严重", "警告"):
            assert word in text
        assert "亿" in text or "万" in text  # amounts in 万/亿
        assert "The book at a glance" not in text
    else:
        assert "The book at a glance" in text and "Accounts most at risk" in text
    assert (
        browser.execute_script("return document.documentElement.scrollWidth") <= 1366 + 1
    )  # no sideways scroll at 1366px


def test_print_layout_has_no_nav(recorded, browser, tmp_path):
    """The print stylesheet hides the navigation bar (emulated print media through the DevTools protocol)."""
    page = tmp_path / "r.html"
    write_report(build_report(recorded, AS_OF, top=5), page)
    _open(browser, page, tmp_path / "screen.png")
    assert browser.execute_script("return getComputedStyle(document.querySelector('nav')).display") != "none"
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert browser.execute_script("return getComputedStyle(document.querySelector('nav')).display") == "none"
    pdf = browser.print_page()  # base64 PDF: the page prints
    assert len(pdf) > 10_000
