"""The fast bulk ingest writes exactly what the code before the speed-up wrote.

Two checks on one generated corpus (plus the real transcripts and some hostile lines):

- the bulk path (worker processes, orjson, the byte-level line reader) against the incremental path the
  hook takes (one session at a time, json, in process): every table and the report JSON equal;
- both against a record made by the code before the speed-up (``tests/data/ingest_identity.json``; made
  first at a5e9443, then again with main at 596b029, 309729f and 9b3d388 as #11, #12, #16 and #13 changed what is
  written, each time without any of #15's ingest changes): totals, per-table digests and the report JSON
  byte for byte. A deliberate change of what ingest or the report writes regenerates it:
  ``.venv/bin/python -m tests.test_ingest_identity --write``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.corpus import generate
from mcp_router import ledger
from mcp_router.config import Config
from mcp_router.ledger import ingest_session, ingest_tree, transcript_files
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, render
from mcp_router.store import connect

from .conftest import DATA, REAL_CLAUDE_CODE

RECORD = DATA / "ingest_identity.json"
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
HOSTILE = (b"junk\n{\"type\":\"user\",\"tool_result\"\n"
           b'{"type":"assistant","message":{"id":"m","model":"x","usage":{"input_tokens":"12"}}}\n'
           b"\n  \n" + b"{" * 50 + b"\n")

TABLES = {
    "usage_events": "SELECT message_id, request_id, ts, timestamp, session_id, project, cwd, git_branch, is_sidechain,"
                    " agent_id, agent_type, model, raw_model, input_tokens, output_tokens, cache_read_tokens,"
                    " cache_creation_tokens, cache_creation_5m_tokens, cache_creation_1h_tokens, web_search_requests,"
                    " total_tokens, inference_geo, service_tier, speed, cost_usd, source_file, line_no"
                    " FROM usage_events ORDER BY message_id, request_id",
    "usage_rollup": "SELECT * FROM usage_rollup ORDER BY bucket, model, project, session_id, agent, branch",
    "tool_results": "SELECT * FROM tool_results ORDER BY tool_use_id",
    "prompts": "SELECT * FROM prompts ORDER BY uuid",
    "session_costs": "SELECT session_id, total_cost_usd, model_usage, has_unknown_model_cost, source_file"
                     " FROM session_costs ORDER BY session_id",
    "ingest_files": "SELECT path, offset, size, session_id, project, lines, malformed_lines FROM ingest_files"
                    " ORDER BY path",
}


def make_corpus(root: Path) -> Path:
    projects = root / "projects"
    generate(projects, sessions=48, turns=12, filler=300, seed=15)
    shutil.copytree(REAL_CLAUDE_CODE / "projects", projects, dirs_exist_ok=True)
    (projects / "-hostile").mkdir()
    (projects / "-hostile" / "bad.jsonl").write_bytes(HOSTILE)
    return projects


def snapshot(conn: sqlite3.Connection, projects: Path) -> dict:
    """Every table as written (paths relative to the projects folder) and the report JSON of the corpus."""
    prefix = str(projects) + "/"
    tables = {}
    for name, sql in TABLES.items():
        rows = [[v.removeprefix(prefix) if isinstance(v, str) else v for v in row] for row in conn.execute(sql)]
        tables[name] = rows
    reports = {}
    for group_by in ("model", "day,project,session,agent,branch"):
        spec = ReportSpec.parse("2026-11-01", "2026-12-10", "UTC", group_by)
        reports[group_by] = render(build_report(conn, spec, Catalog.load(), Config(), now=NOW), "json")
    return {"tables": tables, "reports": reports}


def record_of(snap: dict) -> dict:
    """What the record keeps: row counts and a digest of each table, the token totals, the reports whole."""
    tables = snap["tables"]
    usage = tables["usage_events"]
    return {
        "rows": {name: len(rows) for name, rows in tables.items()},
        "digests": {name: hashlib.sha256(json.dumps(rows).encode()).hexdigest() for name, rows in tables.items()},
        "totals": {"input": sum(r[13] for r in usage), "output": sum(r[14] for r in usage),
                   "cache_read": sum(r[15] for r in usage), "cache_creation": sum(r[16] for r in usage),
                   "cost_usd": round(sum(r[24] or 0 for r in usage), 9)},
        "reports": snap["reports"],
    }


def _bulk(root: Path, projects: Path) -> dict:
    conn = connect(root / "bulk.db")
    ingest_tree(conn, projects, Catalog.load(), workers=2)
    return snapshot(conn, projects)


def _incremental(root: Path, projects: Path) -> dict:
    conn = connect(root / "incremental.db")
    for path in transcript_files(projects):
        if path.parent.name != "subagents":
            ingest_session(conn, path, Catalog.load())
    return snapshot(conn, projects)


@pytest.fixture(autouse=True)
def bulk_for_a_small_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)


def test_bulk_ingest_writes_what_the_hooks_incremental_ingest_writes(tmp_path: Path) -> None:
    projects = make_corpus(tmp_path)
    bulk, incremental = _bulk(tmp_path, projects), _incremental(tmp_path, projects)
    assert len(bulk["tables"]["usage_events"]) > 500
    for name in TABLES:
        assert bulk["tables"][name] == incremental["tables"][name], name
    assert bulk["reports"] == incremental["reports"]


def test_bulk_ingest_writes_what_the_code_before_the_speed_up_wrote(tmp_path: Path) -> None:
    projects = make_corpus(tmp_path)
    assert record_of(_bulk(tmp_path, projects)) == json.loads(RECORD.read_text())


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    ledger.BULK_MIN_BYTES = 0
    with tempfile.TemporaryDirectory() as tmp:
        snap = _bulk(Path(tmp), make_corpus(Path(tmp)))
    RECORD.write_text(json.dumps(record_of(snap), indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}")
