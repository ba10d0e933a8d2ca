"""Per-prompt advice and the haiku-reader agent, end to end: the real Claude Code CLI (2.1.328) with the plugin
(``--plugin-dir``) against the stand-in API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_router.store import connect

from .standin_api import Reply, StandinAPI
from .test_e2e_claude_code import CLAUDE, PLUGIN

pytestmark = pytest.mark.e2e

READING = "summarize the error log in build.txt and list the failing tests"
BUILDING = "add a --retry flag to the upload command"
HARD = "we have an intermittent race condition across 9 services in production, find the root cause"
ADVICE = "mcp-router advice ("


def _claude(home: Path, project: Path, api: StandinAPI, db_path: Path, prompt: str,
            *extra: str) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
    assert CLAUDE, "CI must have the Claude Code CLI: bash .ci/run installs it"
    env = {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "test", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "MCP_ROUTER_DB": str(db_path)}
    done = subprocess.run([CLAUDE, "-p", prompt, "--plugin-dir", str(PLUGIN), "--output-format", "stream-json",
                           "--verbose", *extra], cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")], done


def _main_requests(api: StandinAPI, model: str) -> list[dict[str, Any]]:
    return [r for r in api.requests if r.get("model") == model and len(r.get("tools", [])) > 3]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "build.txt").write_text("FAILED tests/test_upload.py::test_retry - TimeoutError\n")
    return folder


def test_a_haiku_tier_prompt_carries_the_advice_and_a_sonnet_tier_one_does_not(
        project: Path, isolated_user: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "usage.db"
    with StandinAPI() as api:
        _claude(isolated_user, project, api, db_path, READING, "--model", "sonnet")
        reading = _main_requests(api, "claude-sonnet-5-5")
        api.requests.clear()
        _claude(isolated_user, project, api, db_path, BUILDING, "--model", "sonnet")
        building = _main_requests(api, "claude-sonnet-5-5")
    assert reading and building
    text = json.dumps(reading[0]["messages"])
    assert "UserPromptSubmit hook additional context: mcp-router advice (summarize, haiku-tier)" in text
    assert "delegate_to_haiku" in text
    assert ADVICE not in json.dumps(building[0]["messages"])


def test_an_opus_tier_prompt_on_a_sonnet_session_tells_the_user(
        project: Path, isolated_user: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "usage.db"
    with StandinAPI() as api:
        first, _ = _claude(isolated_user, project, api, db_path, "hello", "--model", "sonnet")
        events, _ = _claude(isolated_user, project, api, db_path, HARD, "--model", "sonnet", "--continue")
        main = _main_requests(api, "claude-sonnet-5-5")
    said = [e["content"] for e in events if e.get("subtype") == "informational"
            and str(e.get("content", "")).startswith("UserPromptSubmit says:")]
    assert len(said) == 1, events
    assert "`/model opus` fits this task" in said[0] and "this session runs Sonnet" in said[0]
    assert "\n" not in said[0]
    assert not [e for e in first if e.get("subtype") == "informational"], "the first, plain prompt was left alone"
    assert all(ADVICE not in json.dumps(r["messages"]) for r in main), "the user's line never reaches the model"


class ReaderModel:
    """The main model starts the plugin's haiku-reader agent on build.txt, then finishes."""

    def __call__(self, request: dict[str, Any]) -> Reply:
        if "claude-haiku" in request.get("model", ""):
            if [t["name"] for t in request.get("tools", [])] == ["Read", "Grep", "Glob"]:
                return Reply(text="One failing test: tests/test_upload.py::test_retry (TimeoutError).")
            return Reply(text="ok")  # Claude Code's own small requests
        if '"tool_result"' in json.dumps(request.get("messages")):  # the agent ran (its notification may follow)
            return Reply(text="Done.")
        return Reply(text="Handing the reading to Haiku.", tool_uses=[{"name": "Agent", "input": {
            "description": "read build.txt", "prompt": "List the failing tests in build.txt.",
            "subagent_type": "mcp-router:haiku-reader"}}])


def test_the_haiku_reader_runs_on_haiku_and_is_ledgered_under_its_session(
        project: Path, isolated_user: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "usage.db"
    with StandinAPI(ReaderModel()) as api:
        _claude(isolated_user, project, api, db_path, READING, "--model", "sonnet")
        reader = [r for r in api.requests if [t["name"] for t in r.get("tools", [])] == ["Read", "Grep", "Glob"]]
    assert reader and {r["model"] for r in reader} == {"claude-haiku-5-5"}, "the agent ran on Haiku, read-only"
    transcripts = list((isolated_user / ".claude" / "projects").glob("*/*.jsonl"))
    assert len(transcripts) == 1
    session = transcripts[0].stem
    rows = connect(db_path).execute(
        "SELECT model, is_sidechain, COUNT(*) FROM usage_events WHERE session_id = ? AND agent_type = ?"
        " GROUP BY 1, 2", (session, "mcp-router:haiku-reader")).fetchall()
    assert [tuple(r) for r in rows] == [("claude-haiku-5-5", 1, len(reader))]
    report = subprocess.run([sys.executable, "-m", "mcp_router", "report", "--no-ingest", "--format", "json",
                             "--db", str(db_path)], capture_output=True, text=True, timeout=60, check=True)
    data = json.loads(report.stdout)
    assert data["advice"]["by_category"] == [{"category": "summarize", "kind": "delegate", "given": 1, "followed": 1}]
    reader_runs = data["delegations"]["haiku_reader"]
    assert reader_runs["runs"] == 1 and reader_runs["saved_usd"] > 0
