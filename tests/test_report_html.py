from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, render
from mcp_router.store import connect

from .test_report import _insert

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                    reason="Debian chromium is not installed (bash .ci/run installs it)")
def test_html_report_renders_its_charts_in_headless_chromium(db_path: Path, tmp_path: Path) -> None:
    assert CHROMIUM, "CI must have chromium: .ci/run installs it"
    conn = connect(db_path)
    utc = ZoneInfo("UTC")
    _insert(conn, [{"at": datetime(2026, 11, day, 12, tzinfo=utc), "model": model, "input": 200_000 * day}
                   for day in range(16, 23) for model in ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5")])
    conn.execute("INSERT INTO delegations (id, ts, category, outcome, cost_usd, saved_usd) VALUES"
                 " ('d1', ?, 'summarize_logs', 'ok', 0.01, 0.2)", (datetime(2026, 11, 20, 9, tzinfo=utc).timestamp(),))
    report = build_report(conn, ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", "model"), Catalog.load(),
                          Config.load())
    page = tmp_path / "report.html"
    page.write_text(render(report, "html"))
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0
    assert dom.stdout.count("<rect") >= 21  # 7 days x 3 models, stacked
    assert 'aria-label="cost by model"' in dom.stdout and dom.stdout.count("<path") == 3
    assert 'aria-label="delegation savings per day"' in dom.stdout
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=420,1600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
