from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_router import budget
from mcp_router.store import connect

from .conftest import REAL_CLAUDE_CODE

PAYLOADS = json.loads((REAL_CLAUDE_CODE / "hook-payloads.json").read_text())


@pytest.fixture
def claude_home(tmp_path: Path) -> Path:
    """A copy of the real transcripts where the payloads say they are (paths rewritten to tmp)."""
    projects = tmp_path / "claude" / "projects"
    shutil.copytree(REAL_CLAUDE_CODE / "projects", projects)
    return projects


def _payload(event: str, projects: Path) -> str:
    payload = dict(next(p for p in PAYLOADS if p["hook_event_name"] == event))
    payload["transcript_path"] = str(projects / payload["transcript_path"].removeprefix("/home/user/.claude/projects/"))
    if event == "SubagentStop":  # the recorded value is elided; this is where Claude Code writes it
        session = Path(payload["transcript_path"]).with_suffix("")
        payload["agent_transcript_path"] = str(session / "subagents" / f"agent-{payload['agent_id']}.jsonl")
    return json.dumps(payload)


def _hook(stdin: str, db_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcp_router", "hook"], input=stdin, capture_output=True, text=True, timeout=60,
        env={**os.environ, "MCP_ROUTER_DB": str(db_path), **env},
    )


def test_stop_hook_ingests_the_session_and_its_subagents(claude_home: Path, db_path: Path) -> None:
    result = _hook(_payload("Stop", claude_home), db_path)
    assert result.returncode == 0 and result.stdout == ""
    conn = connect(db_path)
    cost = conn.execute("SELECT TOTAL(cost_usd) FROM usage_events WHERE session_id = ?",
                        ("105e9238-8621-423b-8bbc-0d1c9c659f0a",)).fetchone()[0]
    assert abs(cost - 0.0628538) < 1e-6  # main session + its Haiku subagent = Claude Code's cost-state
    assert _hook(_payload("SubagentStop", claude_home), db_path).returncode == 0
    assert conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] == 4


@pytest.mark.parametrize("stdin", ["", "not json", "[1, 2]", '{"transcript_path": "/nonexistent/x.jsonl"}',
                                   '{"transcript_path": 42}'])
def test_hook_exits_0_on_bad_input(stdin: str, db_path: Path) -> None:
    result = _hook(stdin, db_path)
    assert result.returncode == 0 and result.stdout == ""


def test_hook_exits_0_quickly_on_a_locked_database_and_the_next_run_catches_up(
    claude_home: Path, db_path: Path
) -> None:
    locker = connect(db_path)
    locker.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    result = _hook(_payload("Stop", claude_home), db_path)
    assert result.returncode == 0 and "next run catches up" in result.stderr
    assert time.monotonic() - started < 8
    locker.execute("ROLLBACK")
    assert _hook(_payload("Stop", claude_home), db_path).returncode == 0
    assert locker.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] == 4


def test_hook_exits_0_on_a_broken_config(claude_home: Path, db_path: Path, isolated_user: Path) -> None:
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("monthly_cap_usd = 'x'\n")
    result = _hook(_payload("Stop", claude_home), db_path)
    assert result.returncode == 0 and "monthly_cap_usd" in result.stderr


def _written_now(projects: Path) -> None:
    """The transcripts as if written this instant: a month's spend counts only what was spent in it."""
    stamp = datetime.now(UTC).strftime('"timestamp":"%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z"'
    for path in projects.rglob("*.jsonl"):
        path.write_text(re.sub(r'"timestamp":"[^"]*"', stamp, path.read_text()))


def test_budget_alert_is_said_once_per_threshold(claude_home: Path, db_path: Path) -> None:
    _written_now(claude_home)
    conn = connect(db_path)
    budget.set_monthly_cap(conn, 0.1)  # the Stop payload's session costs $0.063: past 50%
    now = time.time()
    first = _hook(_payload("Stop", claude_home), db_path)
    message = json.loads(first.stdout)["systemMessage"]
    assert "50%" not in message and "63%" in message and "monthly cap" in message
    assert _hook(_payload("Stop", claude_home), db_path).stdout == ""  # said once
    conn.execute("INSERT INTO cost_records (ts, source, cost_usd, state) VALUES (?, 'track_cost', 0.05, 'settled')",
                 (now,))
    third = json.loads(_hook(_payload("Stop", claude_home), db_path).stdout)["systemMessage"]
    assert "cap reached" in third  # $0.113 of $0.10: 80% and 100% crossed at once, one message


def test_hook_imports_nothing_heavy(claude_home: Path, db_path: Path) -> None:
    connect(db_path).close()  # an existing database: creating one runs the migrations (sqlite-utils)
    code = (
        "import sys, io; sys.stdin = io.StringIO(sys.argv[1]); import mcp_router.hook as h; h.main([]);"
        "heavy = {'click', 'pydantic', 'sqlite_utils', 'anthropic', 'mcp', 'rich'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code, _payload("Stop", claude_home)], capture_output=True,
                            text=True, env={**os.environ, "MCP_ROUTER_DB": str(db_path)}, timeout=60)
    assert result.stdout.strip().endswith("[]"), result.stdout + result.stderr
