from __future__ import annotations

import math
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_router.config import Config
from mcp_router.feedback import record_feedback
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, render
from mcp_router.report_html import _nice_step
from mcp_router.store import connect

from .conftest import CHROMIUM
from .devtools import Chromium, PageLoad
from .test_report import AT, UTC, _insert, _week_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
needs_chromium = pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                                    reason="Debian chromium is not installed (bash .ci/run installs it)")
CHART_COUNTS = {
    "donut_slices": "document.querySelectorAll('svg[aria-label=\"cost by model\"] path').length",
    "daily_bars": "document.querySelectorAll('[aria-label=\"daily cost by model\"] .seg').length",
    "savings_bars": "document.querySelectorAll('[aria-label=\"delegation savings per day\"] .seg').length",
    "quality_bars": "document.querySelectorAll('[aria-label=\"feedback quality by category\"] .track').length",
    "page_width": "document.documentElement.scrollWidth",
}
# What a person sees: the smallest text on screen in CSS pixels (SVG text scaled by its viewBox), whether
# anything sticks out sideways, whether a date in the title breaks over two lines, the value labels shown.
LOOKS = {
    "smallest_text_px": """Math.min(...[...document.querySelectorAll('body *')].filter(e =>
        [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) && e.getClientRects().length
        && getComputedStyle(e).visibility !== 'hidden' && !e.closest('title')).map(e => {
          const size = parseFloat(getComputedStyle(e).fontSize);
          const svg = e.closest('svg');
          return svg ? size * svg.getBoundingClientRect().width / svg.viewBox.baseVal.width : size; }))""",
    "overflow_px": "document.documentElement.scrollWidth - window.innerWidth",
    "title_date_lines": "[...document.querySelectorAll('h1 .nw')].map(e => e.getClientRects().length)",
    "value_labels": "[...document.querySelectorAll('#daily .val span')].filter(e => e.getClientRects().length)"
                    ".map(e => e.textContent)",
    "y_axis": "[...document.querySelectorAll('#daily .grid span')].map(e => e.textContent)",
    "empty_states": "[...document.querySelectorAll('.empty')].map(e => [e.closest('[id]')?.id ?? '',"
                    " Math.round(e.getBoundingClientRect().height), e.textContent])",
}
WIDTHS = {"desktop": {"width": 1280}, "phone": {"phone_width": 390}}


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


def _looked_at(chromium: Chromium, page: Path, name: str, width: str) -> PageLoad:
    """Load ``page`` at one of WIDTHS, save its screenshot as a CI artifact, and check what every page must be."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}-{width}.png"
    load = chromium.load(page, {**CHART_COUNTS, **LOOKS}, screenshot=shot, **WIDTHS[width])
    assert load.console_errors == [] and load.exceptions == [] and load.log_errors == []
    assert load.requests == [page.as_uri()]  # the page itself, and nothing else
    assert shot.stat().st_size > 10_000
    assert load.values["smallest_text_px"] >= 11, "text too small to read"
    assert load.values["overflow_px"] <= 0, "the page scrolls sideways"
    assert set(load.values["title_date_lines"]) == {1}, "a date in the title breaks over two lines"
    return load


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_html_report_with_data_reads_at_desktop_and_phone_width(chromium: Chromium, page: Path, width: str) -> None:
    load = _looked_at(chromium, page, "report", width)
    assert load.values["donut_slices"] == 3
    assert load.values["daily_bars"] == 21  # 7 days x 3 models, stacked
    assert load.values["savings_bars"] == 3  # the three days with a delegation
    assert load.values["quality_bars"] == 2  # summarize (promoted: 3 of 20 bad) and extract
    # A day's cost is written over its bar, on a value axis: readable without hovering.
    # $1.30 a day more each day; on a phone, to the dollar.
    costs = ["$20.80", "$22.10", "$23.40", "$24.70", "$26.00", "$27.30", "$28.60"]
    rounded = ["$21", "$22", "$23", "$25", "$26", "$27", "$29"]
    assert load.values["value_labels"] == (costs if width == "desktop" else rounded)
    assert load.values["y_axis"] == ["$0", "$10", "$20", "$30"]
    assert load.values["empty_states"] == []


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_html_report_of_an_empty_period_says_what_would_fill_each_chart(
    chromium: Chromium, db_path: Path, tmp_path: Path, width: str
) -> None:
    report = build_report(connect(db_path), ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", "model"),
                          Catalog.load(), Config.load())
    page = tmp_path / "empty.html"
    page.write_text(render(report, "html"))
    load = _looked_at(chromium, page, "report-empty", width)
    sections = {section for section, _, _ in load.values["empty_states"]}
    assert {"requests", "daily", "savings", "overrides", "quality-over-time", "quality"} <= sections
    for section, height, text in load.values["empty_states"]:
        assert height < 120, f"{section}: a large empty box"
        assert len(text) > 20, f"{section}: the empty state says nothing"


@needs_chromium
def test_the_devtools_check_sees_errors_and_requests(chromium: Chromium, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><img src="http://127.0.0.1:9/x.png"><script>console.error("boom");'
                   "undefined_function();</script>")
    load = chromium.load(bad, {})
    assert load.console_errors == ["boom"]
    assert load.exceptions and "http://127.0.0.1:9/x.png" in load.requests


@given(st.floats(min_value=1e-6, max_value=1e7))
def test_the_value_axis_covers_the_peak_in_round_steps(peak: float) -> None:
    step = _nice_step(peak)
    assert 4 * step >= peak * (1 - 1e-9)
    assert step < peak  # at least two gridlines above zero: the axis says something
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))


# The review of issue 16 (report half).


def test_html_share_below_one_percent_is_escaped(db_path: Path) -> None:
    # "<1%" is written raw into the HTML (<td class=n><1%</td>): invalid markup, and fragile.
    _insert(connect(db_path), [{"at": AT, "input": 1_000_000, "project": "big"}, {"at": AT, "project": "small"}])
    page = render(_week_report(db_path), "html")
    assert "><1%<" not in page and "&lt;1%" in page


@needs_chromium
@pytest.mark.parametrize(("days", "width"), [(400, 1280), (90, 390)])
def test_daily_chart_of_a_long_period_shows_its_bars(chromium: Chromium, db_path: Path, tmp_path: Path,
                                                      days: int, width: int) -> None:
    # One grid column a day with a fixed 3 px gap: 400 days need 1,197 px of gaps alone, so at 1280 px every
    # bar is 0 px wide (the chart looks empty though $32 was spent) and the axis labels run out of the panel.
    end = datetime(2026, 11, 22, 12, tzinfo=UTC)
    _insert(connect(db_path), [{"at": end - timedelta(days=d)} for d in range(days)])
    since = (end - timedelta(days=days - 1)).date().isoformat()
    report = build_report(connect(db_path), ReportSpec.parse(since, "2026-11-22", "UTC", "model"),
                          Catalog.load(), Config.load())
    page = tmp_path / "long.html"
    page.write_text(render(report, "html"))
    size = {"width": width} if width > 500 else {"phone_width": width}
    load = chromium.load(page, {
        "bar_widths": "[...document.querySelectorAll('[aria-label=\"daily cost by model\"] .seg')]"
                      ".map(e => e.getBoundingClientRect().width)",
        "cols_overflow": "(e => e.scrollWidth - e.clientWidth)(document.querySelector("
                         "'[aria-label=\"daily cost by model\"] .cols'))",
    }, **size)
    assert min(load.values["bar_widths"]) >= 1, "bars too thin to see"
    assert load.values["cols_overflow"] <= 0, "the chart's columns run out of its panel"


def test_daily_chart_axis_labels_are_evenly_spaced(db_path: Path) -> None:
    # A peak of $0.08 gets gridlines every $0.025, written "$0, $0.03, $0.05, $0.08, $0.10": the $0.08 bar
    # then stands above the line labelled "$0.08", and the steps read as uneven.
    _insert(connect(db_path), [{"at": AT, "input": 20_000}])
    page = render(_week_report(db_path, "model"), "html")
    daily = page[page.index('aria-label="daily cost by model"'):]
    labels = re.findall(r'<div class="grid" style="bottom:[0-9.]+%"><span>\$([0-9.]+)</span>', daily)[:5]
    steps = {round(float(b) - float(a), 6) for a, b in zip(labels, labels[1:], strict=False)}
    assert len(labels) >= 3 and len(steps) == 1, labels


OVERLAPPING_LABELS = """(() => {
  const boxes = [...document.querySelectorAll(
      '#overrides .grid span, #overrides .val span, #overrides .xl i, #overrides figcaption')]
    .filter(e => e.getClientRects().length).map(e => [e.textContent, e.getBoundingClientRect()]);
  const hits = [];
  boxes.forEach(([t, a], i) => boxes.slice(i + 1).forEach(([u, b]) => {
    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) hits.push([t, u]);
  }));
  return hits; })()"""


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_quality_charts_of_two_weeks_fit_without_scrolling_or_overlapping_labels(
    chromium: Chromium, db_path: Path, tmp_path: Path, width: str
) -> None:
    # The probe: the override chart's "5%" target label sat on the "5%" gridline label, and its "target < 5%"
    # caption on the last day's value label; the per-category table scrolled sideways inside its panel at 390 px.
    conn = connect(db_path)
    categories = ["summarize", "extract", "classify", "read_file", "reformat"]
    for day in range(9, 23):
        category = categories[day % len(categories)]
        conn.execute("INSERT INTO delegations (id, ts, category, model, outcome, cost_usd, saved_usd) VALUES"
                     " (?, ?, ?, 'claude-haiku-5-5', 'ok', 0.01, 0.2)",
                     (f"d{day}", datetime(2026, 11, day, 9, tzinfo=UTC).timestamp(), category))
        bad = {13: 4, 22: 1}.get(day, 0)  # 20% on the 13th (the axis goes to 20%); 5% on the last day
        for index in range(20):
            record_feedback(conn, f"d{day}", "bad" if index < bad else "good")
    report = build_report(conn, ReportSpec.parse("2026-11-09", "2026-11-22", "UTC", "model"), Catalog.load(),
                          Config.load())
    page = tmp_path / "quality.html"
    page.write_text(render(report, "html"))
    load = _looked_at(chromium, page, "report-quality", width)
    assert not {"overrides", "quality-over-time", "quality"} & {e[0] for e in load.values["empty_states"]}
    sideways = chromium.load(page, {
        "scrolled": "[...document.querySelectorAll('body *')].filter(e => e.scrollWidth > e.clientWidth + 1"
                    " && getComputedStyle(e).overflowX !== 'visible').map(e => e.className)",
        "overlaps": OVERLAPPING_LABELS,
        # Each period's tile sits at the same x in every category's row, however the rows wrap.
        "tile_columns": "[...document.querySelectorAll('.tiles')].map(row => [...row.children].map(t =>"
                        " Math.round(t.getBoundingClientRect().left)))",
        "tiles": "document.querySelectorAll('.tile:not(.none)').length",
    }, **WIDTHS[width])
    assert sideways.values["scrolled"] == [], "something scrolls sideways"
    assert sideways.values["overlaps"] == [], "labels drawn over each other"
    rows = sideways.values["tile_columns"]
    assert len(rows) == len(categories) and all(row == rows[0] and len(row) == 14 for row in rows), rows
    assert sideways.values["tiles"] == 14


def test_a_day_at_exactly_the_target_is_not_under_it() -> None:
    from mcp_router.report_html import BAD, GOOD, _override_chart

    def chart(bad_rate: float) -> str:
        return _override_chart({"step": "day", "target_bad_rate": 0.05,
                                "periods": [{"period": "2026-11-29", "rated": 20, "bad_rate": bad_rate}]})

    assert BAD in chart(0.05) and GOOD not in chart(0.05)  # "target < 5%": 5% is not under it
    assert GOOD in chart(0.045) and BAD not in chart(0.045)
