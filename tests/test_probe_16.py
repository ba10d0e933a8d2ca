"""Reviewer's probes of issue 16 (report and database half). Each test reproduces a finding; they may fail."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.projects import choose, encode, short_path
from mcp_router.report import ReportSpec, build_report, render
from mcp_router.store import connect

from .devtools import Chromium
from .test_report import _insert
from .test_report_html import needs_chromium

UTC = ZoneInfo("UTC")
AT = datetime(2026, 11, 18, 12, tzinfo=UTC)


def _report(db_path: Path, group_by: str = "project") -> dict:
    return build_report(connect(db_path), ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", group_by),
                        Catalog.load(), Config.load())


def test_two_users_folders_never_shorten_alike() -> None:
    # projects.short_path promises "two folders never look alike"; a team ledger with a Mac and a Linux user
    # of the same name shows both as "~bob/api" (seen in table, CSV, Markdown and HTML).
    assert short_path("/Users/bob/api", home="/home/me") != short_path("/home/bob/api", home="/home/me")


def test_cost_by_project_view_shows_the_same_folder_as_the_report(db_path: Path) -> None:
    # The view's SQL encoding replaces only / . _ and space; Claude Code (and projects.encode) replace every
    # non-alphanumeric character. A session started in a folder with "+" (or "@", "~", non-ASCII...) that
    # later ran in a shorter folder: the report shows the starting folder, Datasette's view the other one.
    start = "/home/me/c++/app"
    _insert(connect(db_path), [
        {"at": AT, "project": encode(start), "cwd": start},
        {"at": AT, "project": encode(start), "cwd": "/home/me/x"},
    ])
    report = _report(db_path)
    assert report["groups"][0]["project_path"] == start
    conn = connect(db_path)
    (view_path,) = conn.execute("SELECT project_path FROM cost_by_project").fetchone()
    assert view_path == start


def test_html_report_says_how_many_responses_had_no_price(db_path: Path) -> None:
    # Failed on the issue-16 merge (the page showed "Spent $x" with no hint that 9 of 10 responses had no
    # price); passes since main merged issue-12 ("unpriced everywhere"). Kept as a regression test.
    _insert(connect(db_path), [{"at": AT}, *({"at": AT, "model": "claude-unknown-9"} for _ in range(9))])
    page = render(_report(db_path, "model"), "html")
    assert "unpriced" in page or "no price" in page


def test_html_share_below_one_percent_is_escaped(db_path: Path) -> None:
    # "<1%" is written raw into the HTML (<td class=n><1%</td>): invalid markup, and fragile.
    _insert(connect(db_path), [{"at": AT, "input": 1_000_000, "project": "big"}, {"at": AT, "project": "small"}])
    page = render(_report(db_path), "html")
    assert "><1%<" not in page and "&lt;1%" in page


def test_markdown_table_survives_a_pipe_in_a_project_path(db_path: Path) -> None:
    path = "/home/me/a|b"
    _insert(connect(db_path), [{"at": AT, "project": encode(path), "cwd": path}])
    lines = [line for line in render(_report(db_path), "markdown").splitlines() if line.startswith("| ~")]
    header = next(line for line in render(_report(db_path), "markdown").splitlines() if line.startswith("| project"))
    assert lines and lines[0].count("|") - lines[0].count("\\|") == header.count("|")


def test_markdown_does_not_pass_html_in_a_project_path_through(db_path: Path) -> None:
    # Many Markdown renderers pass inline HTML through: a folder named <script>... lands in the page as code.
    path = "/home/me/<img src=x onerror=alert(1)>"
    _insert(connect(db_path), [{"at": AT, "project": encode(path), "cwd": path}])
    assert "<img" not in render(_report(db_path), "markdown")


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


def test_encode_matches_claude_code_for_long_paths_and_emoji() -> None:
    # Claude Code 2.1.328 (bin/claude.exe): w(e)=e.replace(/[^a-zA-Z0-9]/g,"-") on UTF-16 code units, and
    # rL(e) cuts a key longer than 200 to slice(0,200) + "-" + base-36 hash. projects.encode does neither, so
    # choose() cannot recognise the starting folder of such a project and falls back to the shortest cwd.
    assert encode("/a/\N{UNICORN FACE}") == "-a---"
    long = "/home/me/" + "deep-folder/" * 20 + "app"
    key = encode(long)[:200] + "-1x2y3z"  # the real key's shape; the hash suffix is Claude Code's
    assert choose(key, [long, "/home/me"]) == long


def test_daily_chart_axis_labels_are_evenly_spaced(db_path: Path) -> None:
    # A peak of $0.08 gets gridlines every $0.025, written "$0, $0.03, $0.05, $0.08, $0.10": the $0.08 bar
    # then stands above the line labelled "$0.08", and the steps read as uneven.
    _insert(connect(db_path), [{"at": AT, "input": 20_000}])
    page = render(_report(db_path, "model"), "html")
    daily = page[page.index('aria-label="daily cost by model"'):]
    labels = re.findall(r'<div class="grid" style="bottom:[0-9.]+%"><span>\$([0-9.]+)</span>', daily)[:5]
    steps = {round(float(b) - float(a), 6) for a, b in zip(labels, labels[1:], strict=False)}
    assert len(labels) >= 3 and len(steps) == 1, labels
