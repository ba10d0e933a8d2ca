"""The ledger keeps decisions, not text; `claude -p` delegation runs are counted once and leave no text behind;
track_cost refuses the impossible and a cost record can be voided."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from sqlite_utils import Database

from mcp_router import budget
from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.ledger import ingest_tree
from mcp_router.migrations import MIGRATIONS
from mcp_router.pricing import Catalog, Usage
from mcp_router.store import connect

CATALOG = Catalog.load()
FILE_MARKER = "QUOKKA-FILE-TEXT-4471"
CONTENT_MARKER = "NARWHAL-CONTENT-TEXT-9902"
PROMPT_MARKER = "PANGOLIN-PROMPT-TEXT-3318"
SECRET = "sk-proj-" + "Zq8vR2xK" * 7

FAKE_CLAUDE = '''#!{python}
"""A stand-in for `claude -p`: writes its session transcript as Claude Code 2.1.328 does (whatever the flags),
runs the Stop hook as Claude Code runs the user's hooks, and prints the JSON result."""
import datetime, json, os, subprocess, sys, uuid
args = sys.argv[1:]
session = args[args.index("--session-id") + 1] if "--session-id" in args else str(uuid.uuid4())
model = args[args.index("--model") + 1]
prompt = sys.stdin.read()
with open(os.environ["FAKE_CLAUDE_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "stdin": prompt}}) + "\\n")
now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
cwd = os.getcwd()
project = os.path.join(os.environ["CLAUDE_CONFIG_DIR"], "projects", cwd.replace("/", "-"))
os.makedirs(project, exist_ok=True)
path = os.path.join(project, session + ".jsonl")
usage = {{"input_tokens": 1200, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3000, "output_tokens": 40,
          "server_tool_use": {{"web_search_requests": 0}}, "service_tier": "standard",
          "cache_creation": {{"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0}}}}
user = {{"parentUuid": None, "isSidechain": False, "promptId": str(uuid.uuid4()), "type": "user",
         "message": {{"role": "user", "content": prompt}}, "uuid": str(uuid.uuid4()), "timestamp": now,
         "promptSource": "sdk", "entrypoint": "sdk-cli", "cwd": cwd, "sessionId": session, "version": "2.1.328"}}
answer = {{"parentUuid": user["uuid"], "isSidechain": False, "type": "assistant", "uuid": str(uuid.uuid4()),
           "message": {{"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": model,
                       "content": [{{"type": "text", "text": "summary: all fine"}}], "stop_reason": "end_turn",
                       "usage": usage}},
           "requestId": "req_" + uuid.uuid4().hex[:20], "timestamp": now, "cwd": cwd, "sessionId": session,
           "version": "2.1.328"}}
with open(path, "a") as transcript:
    transcript.write(json.dumps(user) + "\\n" + json.dumps(answer) + "\\n")
subprocess.run([sys.executable, "-m", "mcp_router", "hook"], text=True, capture_output=True,
               input=json.dumps({{"session_id": session, "transcript_path": path, "hook_event_name": "Stop"}}))
print(json.dumps({{"type": "result", "subtype": "success", "is_error": False, "result": "summary: all fine",
                  "session_id": session, "total_cost_usd": 0.0015, "usage": usage}}))
'''


def _database_bytes(db_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in db_path.parent.glob(db_path.name + "*"))


@pytest.fixture
def fake_claude(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "claude"
    script.write_text(FAKE_CLAUDE.format(python=sys.executable))
    script.chmod(0o755)
    return bin_dir


def test_claude_cli_delegation_is_counted_once_and_leaves_no_text(fake_claude: Path, db_path: Path, tmp_path: Path,
                                                                  isolated_user: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text(f"meeting notes\n{FILE_MARKER}\nOPENAI_API_KEY = \"{SECRET}\"\n")
    log = tmp_path / "claude-calls.jsonl"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC_")}
    env |= {"PATH": f"{fake_claude}{os.pathsep}{env['PATH']}", "MCP_ROUTER_DB": str(db_path),
            "FAKE_CLAUDE_LOG": str(log)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_router", "serve"], env=env,
                                   cwd=str(project))

    async def call() -> object:
        async with Client(params) as client:
            return await client.call_tool("delegate_to_haiku", {
                "task": "summarise the notes", "paths": ["notes.txt"], "content": CONTENT_MARKER})

    result = asyncio.run(call())
    assert not result.is_error, result.content  # type: ignore[attr-defined]
    [run] = [json.loads(line) for line in log.read_text().splitlines()]
    assert FILE_MARKER in run["stdin"] and CONTENT_MARKER in run["stdin"] and SECRET not in run["stdin"]
    for flag in ("--no-session-persistence", "--strict-mcp-config", "--session-id"):
        assert flag in run["args"]
    assert run["args"][run["args"].index("--tools") + 1] == ""
    conn = connect(db_path)
    cost = conn.execute("SELECT cost_usd FROM delegations").fetchone()[0]
    assert cost == pytest.approx(CATALOG.cost("claude-haiku-5-5", Usage(1200, 40, 3000)), abs=1e-12)
    ingest_tree(conn, isolated_user / ".claude" / "projects", CATALOG)  # a full ingest after the run's own hook
    assert conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 0
    assert budget.month_to_date_usd(conn) == pytest.approx(cost, abs=1e-12)  # once, as the delegation
    conn.close()
    stored = _database_bytes(db_path)
    for text in (FILE_MARKER, CONTENT_MARKER, SECRET, "meeting notes"):
        assert text.encode() not in stored, text


def _user_session(projects: Path, text: str) -> None:
    session = str(uuid.uuid4())
    folder = projects / "-home-user-code-demo"
    folder.mkdir(parents=True, exist_ok=True)
    line = {"parentUuid": None, "isSidechain": False, "promptId": str(uuid.uuid4()), "type": "user",
            "message": {"role": "user", "content": text}, "uuid": str(uuid.uuid4()),
            "timestamp": "2026-11-22T21:10:11.495Z", "cwd": "/home/user/code/demo", "sessionId": session}
    (folder / f"{session}.jsonl").write_text(json.dumps(line) + "\n")


@pytest.mark.parametrize("keep", [False, True])
def test_prompts_keep_the_decision_and_the_text_only_when_asked(db_path: Path, tmp_path: Path, keep: bool,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if keep:
        monkeypatch.setenv("MCP_ROUTER_KEEP_PROMPTS", "true")
    _user_session(tmp_path / "projects", f"summarize the build log {PROMPT_MARKER}")
    conn = connect(db_path)
    ingest_tree(conn, tmp_path / "projects", CATALOG)
    row = dict(conn.execute("SELECT * FROM prompts").fetchone())
    assert row["tier"] == "haiku" and row["category"] == "summarize" and 0 < row["confidence"] <= 1
    assert row["chars"] == len(f"summarize the build log {PROMPT_MARKER}")
    assert (row["text"] is not None) is keep
    conn.close()
    assert (PROMPT_MARKER.encode() in _database_bytes(db_path)) is keep


@pytest.mark.parametrize("keep", [False, True])
def test_m006_turns_stored_prompts_into_decisions(db_path: Path, keep: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if keep:
        monkeypatch.setenv("MCP_ROUTER_KEEP_PROMPTS", "true")
    conn = sqlite3.connect(db_path, isolation_level=None)
    MIGRATIONS.apply(Database(conn), stop_before="m006_prompts_keep_decisions_not_text")
    conn.execute("PRAGMA user_version = 5")
    texts = [f"summarize last night's build log {PROMPT_MARKER}",
             f"why do payments double-charge only in prod, intermittently? {PROMPT_MARKER}"]
    conn.executemany("INSERT INTO prompts (uuid, session_id, ts, text) VALUES (?, 's1', 1.0, ?)", enumerate(texts))
    conn.execute("INSERT INTO cost_records (ts, source, reserved_usd, state) VALUES (0, 'delegation', 5, 'reserved')")
    conn.close()
    assert PROMPT_MARKER.encode() in _database_bytes(db_path)
    migrated = connect(db_path)
    rows = [dict(r) for r in migrated.execute("SELECT * FROM prompts ORDER BY uuid")]
    assert [r["tier"] for r in rows] == ["haiku", "opus"]
    assert [r["chars"] for r in rows] == [len(t) for t in texts]
    assert [r["text"] for r in rows] == (texts if keep else [None, None])
    assert migrated.execute("SELECT expires_ts FROM cost_records").fetchone()[0] == 120  # a stale hold lapses
    assert budget.month_to_date_usd(migrated) == 0
    migrated.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    migrated.close()
    assert (PROMPT_MARKER.encode() in _database_bytes(db_path)) is keep


@pytest.mark.parametrize(("usage", "requests", "message"), [
    (Usage(10**18, 0), 1, "more than 1 call to claude-haiku-5-5 can read"),
    (Usage(100, 10**12), 1, "output tokens is more than 1 call"),
    (Usage(1, 0, CATALOG.get("haiku").context_window // 2, CATALOG.get("haiku").context_window // 2), 1,
     "input + cache read + cache write"),
    (Usage(10**18, 0), 10**9, "requests must be between 1 and 1,000"),
    (Usage(100, 10, 0, 5, 10), 1, "cache_creation_1h_tokens cannot exceed"),
])
def test_track_cost_refuses_what_the_model_could_not_have_used(db_path: Path, usage: Usage, requests: int,
                                                              message: str) -> None:
    conn = connect(db_path)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("+", r"\+")):
        budget.record_cost(conn, Config(), CATALOG, "haiku", usage, requests=requests)
    assert conn.execute("SELECT COUNT(*) FROM cost_records").fetchone()[0] == 0
    window = CATALOG.get("haiku").context_window
    budget.record_cost(conn, Config(), CATALOG, "haiku", Usage(window * 3, 10), requests=3)  # three full calls


def test_costs_lists_and_voids_a_record(db_path: Path) -> None:
    conn = connect(db_path)
    budget.record_cost(conn, Config(), CATALOG, "opus", Usage(100_000, 1000), "script")
    budget.record_cost(conn, Config(), CATALOG, "haiku", Usage(1000, 10), "typo")
    before = budget.month_to_date_usd(conn)
    runner = CliRunner()
    listed = runner.invoke(cli, ["costs", "--db", str(db_path)], catch_exceptions=False)
    assert listed.exit_code == 0 and "script" in listed.output and "typo" in listed.output
    [first_id, second_id] = [r[0] for r in conn.execute("SELECT id FROM cost_records ORDER BY id")]
    voided = runner.invoke(cli, ["costs", "--db", str(db_path), "--void", str(first_id)], catch_exceptions=False)
    assert f"cost record {first_id}: void" in voided.output
    line = next(line for line in voided.output.splitlines() if "script" in line)
    assert " void " in line
    assert conn.execute("SELECT COUNT(*) FROM cost_records").fetchone()[0] == 2  # kept
    opus = CATALOG.cost("opus", Usage(100_000, 1000))
    assert budget.month_to_date_usd(conn) == pytest.approx(before - opus, abs=1e-9)
    again = runner.invoke(cli, ["costs", "--db", str(db_path), "--void", str(first_id)])
    assert again.exit_code == 1 and again.output.strip() == f"Error: cost record {first_id} is already void"
    missing = runner.invoke(cli, ["costs", "--db", str(db_path), "--void", "999"])
    assert missing.exit_code == 1 and "no cost record 999" in missing.output
    as_json = json.loads(runner.invoke(cli, ["costs", "--db", str(db_path), "--json"]).output)
    assert [r["id"] for r in as_json] == [second_id, first_id] and as_json[1]["void_ts"] is not None


def test_the_hook_stores_the_decision_soon_after_and_never_the_text(db_path: Path, tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    _user_session(projects, f"summarize the build log {PROMPT_MARKER}")
    [transcript] = projects.glob("*/*.jsonl")
    env = {**os.environ, "MCP_ROUTER_DB": str(db_path)}
    done = subprocess.run([sys.executable, "-m", "mcp_router", "hook"], env=env, capture_output=True, text=True,
                          input=json.dumps({"transcript_path": str(transcript)}), timeout=30)
    assert done.returncode == 0 and done.stderr == ""
    conn = connect(db_path)
    deadline = time.monotonic() + 20  # the decision is made by a detached child after the hook has exited
    while conn.execute("SELECT tier FROM prompts").fetchone()[0] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    row = dict(conn.execute("SELECT * FROM prompts").fetchone())
    assert row["tier"] == "haiku" and row["category"] == "summarize" and row["text"] is None
    conn.close()
    assert PROMPT_MARKER.encode() not in _database_bytes(db_path)
