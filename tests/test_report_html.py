from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mcp_router.config import Config
from mcp_router.feedback import record_feedback
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, render
from mcp_router.store import connect

from .devtools import FLAGS, Chromium
from .test_report import _insert

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                                    reason="Debian chromium is not installed (bash .ci/run installs it)")
CHART_COUNTS = {
    "donut_slices": "document.querySelectorAll('svg[aria-label=\"cost by model\"] path').length",
    "daily_bars": "document.querySelectorAll('svg[aria-label=\"daily cost by model\"] rect').length",
    "savings_bars": "document.querySelectorAll('svg[aria-label=\"delegation savings per day\"] rect').length",
    "quality_bars": "document.querySelectorAll('svg[aria-label=\"feedback quality by category\"] rect').length",
    "page_width": "document.documentElement.scrollWidth",
}


@pytest.fixture
def chromium(tmp_path: Path):
    assert CHROMIUM, "CI must have chromium: .ci/run installs it"
    browser = Chromium(CHROMIUM, tmp_path / "profile")
    yield browser
    browser.close()


@pytest.fixture
def page(db_path: Path, tmp_path: Path) -> Path:
    conn = connect(db_path)
    utc = ZoneInfo("UTC")
    _insert(conn, [{"at": datetime(2026, 11, day, 12, tzinfo=utc), "model": model, "input": 200_000 * day}
                   for day in range(16, 23) for model in ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5")])
    for day, category in [(18, "summarize"), (20, "summarize"), (21, "extract")]:
        conn.execute("INSERT INTO delegations (id, ts, category, model, outcome, cost_usd, saved_usd) VALUES"
                     " (?, ?, ?, 'claude-haiku-5-5', 'ok', 0.01, 0.2)",
                     (f"d{day}", datetime(2026, 11, day, 9, tzinfo=utc).timestamp(), category))
    for index in range(20):
        record_feedback(conn, "d18" if index % 2 else "d20", "bad" if index < 3 else "good")
    record_feedback(conn, "d21", "good")
    report = build_report(conn, ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", "model"), Catalog.load(),
                          Config.load())
    path = tmp_path / "report.html"
    path.write_text(render(report, "html"))
    return path


@needs_chromium
def test_html_report_loads_with_no_console_error_no_request_and_charts_with_data(
    chromium: Chromium, page: Path, tmp_path: Path
) -> None:
    load = chromium.load(page, CHART_COUNTS)
    assert load.console_errors == [] and load.exceptions == [] and load.log_errors == []
    assert load.requests == [page.as_uri()]  # the page itself, and nothing else
    assert load.values["donut_slices"] == 3
    assert load.values["daily_bars"] == 21  # 7 days x 3 models, stacked
    assert load.values["savings_bars"] == 7
    assert load.values["quality_bars"] == 2  # summarize (promoted: 3 of 20 bad) and extract
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'shot-profile'}", f"--screenshot={shot}",
                    "--window-size=420,1600", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000


@needs_chromium
def test_html_report_fits_a_phone_screen(chromium: Chromium, page: Path) -> None:
    load = chromium.load(page, CHART_COUNTS, phone_width=390)
    assert load.values["page_width"] <= 390  # nothing wider than the screen: no sideways scrolling
    assert load.values["daily_bars"] == 21


@needs_chromium
def test_the_devtools_check_sees_errors_and_requests(chromium: Chromium, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><img src="http://127.0.0.1:9/x.png"><script>console.error("boom");'
                   "undefined_function();</script>")
    load = chromium.load(bad, {})
    assert load.console_errors == ["boom"]
    assert load.exceptions and "http://127.0.0.1:9/x.png" in load.requests
