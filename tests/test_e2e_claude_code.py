"""End to end with the real Claude Code CLI (npm @anthropic-ai/claude-code@2.1.328) against the stand-in API.

The stand-in plays the main model: it answers the first turn with a tool_use of our delegate tool on a
file of the project, and the turn after the tool_result with a final text. Our MCP server then calls
the stand-in as Haiku. Claude Code runs the hooks, which fill the ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_router.delegate import SYSTEM_PROMPT
from mcp_router.store import connect

from .standin_api import Reply, StandinAPI

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugin"  # the folder the marketplace entry points at
MARKER = "QUOKKA-5521-only-in-the-file"
LOCAL_CLAUDE = REPO / ".ci" / "npm" / "node_modules" / ".bin" / "claude"
CLAUDE = str(LOCAL_CLAUDE) if LOCAL_CLAUDE.exists() else shutil.which("claude")
ON_CI = os.environ.get("CI") == "true"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CLAUDE is None and not ON_CI,
                       reason="the Claude Code CLI is not installed (bash .ci/run npm-installs it into .ci/npm)"),
]


class MainModel:
    """Scripted main model: delegate the file first, then finish."""

    def __init__(self, tool_name: str):
        self.tool_name = tool_name

    def __call__(self, request: dict[str, Any]) -> Reply:
        if SYSTEM_PROMPT[:40] in json.dumps(request.get("system", "")):
            return Reply(text="Summary: meeting notes; the team ships on Friday.")
        if _after_tool_result(request):
            return Reply(text="Done: the notes say the team ships on Friday.")
        if "haiku" in request.get("model", ""):  # Claude Code's own small requests
            return Reply(text="ok")
        return Reply(text="Delegating the read.", tool_uses=[{
            "name": self.tool_name, "input": {"task": "summarize this file in one line", "paths": ["notes.txt"]}}])


def _after_tool_result(request: dict[str, Any]) -> bool:
    for message in reversed(request.get("messages", [])):
        if message.get("role") == "assistant":
            return False
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return True
    return False


def _run_claude(home: Path, project: Path, api: StandinAPI, db_path: Path, extra: list[str],
                tool_name: str) -> subprocess.CompletedProcess:
    assert CLAUDE, "CI must have the Claude Code CLI: bash .ci/run installs it"
    env = {
        "HOME": str(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "test", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "MCP_ROUTER_DB": str(db_path), "CI": "true",
    }
    return subprocess.run(
        [CLAUDE, "-p", "summarize notes.txt", "--allowedTools", tool_name, *extra],
        cwd=project, env=env, capture_output=True, text=True, timeout=240,
    )


@pytest.fixture
def setup(tmp_path: Path, isolated_user: Path):
    home = isolated_user  # a temporary HOME: nothing of the user's is read or written
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text(f"meeting notes\n{MARKER}\nwe ship on friday\n")
    return home, project, tmp_path / "usage.db"


def _check(result: subprocess.CompletedProcess, api: StandinAPI, home: Path, db_path: Path) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    haiku = [r for r in api.requests if SYSTEM_PROMPT[:40] in json.dumps(r.get("system", ""))]
    main = [r for r in api.requests if r not in haiku]
    assert len(haiku) == 1 and MARKER in json.dumps(haiku[0]), "our server sent the file to Haiku"
    assert main and all(MARKER not in json.dumps(r) for r in main), "the main model never saw the file"
    conn = connect(db_path)
    delegation = conn.execute("SELECT * FROM delegations").fetchone()
    assert delegation is not None and delegation["outcome"] == "ok"
    transcripts = [p for p in (home / ".claude" / "projects").glob("*/*.jsonl")]
    assert len(transcripts) == 1
    session = transcripts[0].stem
    cost_state = [json.loads(line) for line in transcripts[0].read_text().splitlines() if '"cost-state"' in line]
    assert cost_state, "Claude Code wrote its cost-state line"
    ledger = conn.execute("SELECT TOTAL(cost_usd), COUNT(*) FROM usage_events WHERE session_id = ?",
                          (session,)).fetchone()
    assert ledger[1] >= 2, "the hooks ingested the session"
    assert abs(ledger[0] - cost_state[-1]["totalCostUSD"]) < 1e-6
    report = subprocess.run([sys.executable, "-m", "mcp_router", "report", "--no-ingest", "--format", "json",
                             "--group-by", "session", "--db", str(db_path)], capture_output=True, text=True,
                            timeout=60, check=True)
    data = json.loads(report.stdout)
    assert session in {g["session"] for g in data["groups"]}
    assert data["delegations"]["count"] == 1


def test_plugin_delegates_and_logs_the_session(setup) -> None:
    home, project, db_path = setup
    tool = "mcp__plugin_mcp-router_mcp-router__delegate_to_haiku"
    with StandinAPI(MainModel(tool)) as api:
        result = _run_claude(home, project, api, db_path, ["--plugin-dir", str(PLUGIN)], tool)
        _check(result, api, home, db_path)


def test_installed_settings_delegate_and_log_the_session(setup) -> None:
    home, project, db_path = setup
    tool = "mcp__mcp-router__delegate_to_haiku"
    env = {**os.environ, "HOME": str(home), "MCP_ROUTER_DB": str(db_path)}
    env.pop("CLAUDE_CONFIG_DIR", None)
    subprocess.run([sys.executable, "-m", "mcp_router", "install"], cwd=project, env=env, check=True,
                   capture_output=True, timeout=60)
    with StandinAPI(MainModel(tool)) as api:
        result = _run_claude(home, project, api, db_path, [], tool)
        _check(result, api, home, db_path)
