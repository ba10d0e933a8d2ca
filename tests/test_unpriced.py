"""A model the catalog has no price for is unpriced everywhere — never $0 — and totals say they leave it out."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mcp_router.config import Config
from mcp_router.pricing import Catalog, Usage
from mcp_router.report import ReportSpec, build_report, render
from mcp_router.store import USAGE_COLUMNS, connect, transaction, upsert_usage

CATALOG = Catalog.load()
AT = datetime(2026, 11, 18, 12, tzinfo=ZoneInfo("UTC"))


def _row(n: int, model: str, at: datetime = AT, tokens: int = 1000) -> tuple:
    usage = Usage(tokens, 10)
    values = dict.fromkeys(USAGE_COLUMNS)
    values.update(message_id=f"m{n}", request_id="r", ts=at.timestamp(), model=model, session_id="s1",
                  project="p1", is_sidechain=0, input_tokens=tokens, output_tokens=10, cache_read_tokens=0,
                  cache_creation_tokens=0, cache_creation_1h_tokens=0, total_tokens=tokens + 10,
                  cost_usd=CATALOG.cost(model, usage))
    return tuple(values[c] for c in USAGE_COLUMNS)


def _report(db: Path) -> dict:
    conn = connect(db)
    with transaction(conn):
        upsert_usage(conn, [_row(1, "claude-opus-5-5"), _row(2, "claude-unknown-1"), _row(3, "claude-unknown-1")])
    spec = ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", "model")
    return build_report(conn, spec, CATALOG, Config())


def test_unpriced_in_json_csv_table_markdown_and_html(db_path: Path) -> None:
    report = _report(db_path)
    document = json.loads(render(report, "json"))
    unknown = next(g for g in document["groups"] if g["model"] == "claude-unknown-1")
    assert unknown["cost_usd"] is None and unknown["share"] is None and unknown["unpriced_messages"] == 2
    assert document["daily"][2]["cost_by_model"]["claude-unknown-1"] is None
    assert document["totals"]["cost_usd"] > 0 and document["totals"]["unpriced_messages"] == 2

    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(render(report, "csv")))}
    assert rows["claude-unknown-1"]["cost_usd"] == ""
    assert float(rows["claude-opus-5-5"]["cost_usd"]) > 0

    markdown = render(report, "markdown")
    line = next(line for line in markdown.splitlines() if line.startswith("| claude-unknown-1"))
    assert "unpriced" in line and "$0" not in line
    assert "excludes 2 unpriced responses of claude-unknown-1" in markdown

    html = render(report, "html")
    assert "claude-unknown-1 unpriced (2 responses)" in html
    assert "claude-unknown-1 $0" not in html
    assert ("<td>claude-unknown-1</td><td class='n wide'>2,000</td><td class='n wide'>20</td>"
            "<td class=n>unpriced</td><td class=n>—</td>") in html
    assert "excludes 2 unpriced (claude-unknown-1)" in html


def test_unpriced_in_the_terminal_table(db_path: Path, capsys) -> None:
    from mcp_router.report import print_table

    print_table(_report(db_path))
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "claude-unknown-1" in line and "unpriced" in line)
    assert "$0" not in line
    assert "excludes 2 unpriced responses" in out


def test_everything_unpriced_is_not_zero(db_path: Path) -> None:
    conn = connect(db_path)
    with transaction(conn):
        upsert_usage(conn, [_row(1, "claude-unknown-1")])
    report = build_report(conn, ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", "model"), CATALOG, Config())
    assert report["totals"]["cost_usd"] is None
    assert report["what_if"]["actual_usd"] == 0.0  # what-ifs compare priced usage only
    assert "1 response, unpriced (excludes 1 unpriced response" in render(report, "markdown")


def test_rollup_cost_is_null_until_a_priced_response_arrives(db_path: Path) -> None:
    conn = connect(db_path)

    def rollup() -> list[tuple]:
        return [tuple(r) for r in conn.execute("SELECT model, cost_usd, messages, unpriced_messages FROM usage_rollup")]

    with transaction(conn):
        upsert_usage(conn, [_row(1, "claude-unknown-1")])
    assert rollup() == [("claude-unknown-1", None, 1, 1)]
    with transaction(conn):  # a larger copy of the same response replaces it: still unpriced
        upsert_usage(conn, [_row(1, "claude-unknown-1", tokens=2000)])
    assert rollup() == [("claude-unknown-1", None, 1, 1)]
    priced = Catalog.load({"models": {"claude-unknown-1": {"input": 1, "output": 1, "cache_read": 1,
                                                           "cache_write_5m": 1, "cache_write_1h": 1}}})
    row = list(_row(2, "claude-unknown-1"))
    row[USAGE_COLUMNS.index("cost_usd")] = priced.cost("claude-unknown-1", Usage(1000, 10))
    with transaction(conn):
        upsert_usage(conn, [tuple(row)])
    assert rollup() == [("claude-unknown-1", 0.00101, 2, 1)]
    conn.execute("DELETE FROM usage_events WHERE message_id = 'm2'")
    assert rollup() == [("claude-unknown-1", None, 1, 1)]
