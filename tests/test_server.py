from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcp_router.config import Config
from mcp_router.delegate import Delegator
from mcp_router.errors import BudgetExceeded
from mcp_router.pricing import Catalog, Usage
from mcp_router.store import connect

from .standin_api import StandinAPI

CATALOG = Catalog.load()
MARKER = "ZEBRA-7731-unique-file-content"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "notes.txt").write_text(f"meeting notes\n{MARKER}\nship on friday\n")
    (root / ".env").write_text("API_KEY=sk-ant-secret-value-1234567890\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    sparse = root / "huge.log"
    with open(sparse, "wb") as handle:
        handle.truncate(2 * 1024**3)  # a 2 GB sparse file: must be refused without being read
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    (root / "escape.txt").symlink_to(outside)
    return root


def _env(api: StandinAPI, db_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "test", "MCP_ROUTER_DB": str(db_path),
            "MCP_ROUTER_API_MAX_RETRIES": "2", **extra}


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _session(api: StandinAPI, db_path: Path, project: Path, calls: list[tuple[str, dict]], **env: str):
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_router", "serve"],
                                   env=_env(api, db_path, **env), cwd=str(project))
    async with Client(params) as client:
        tools = await client.list_tools()
        results = [await client.call_tool(name, arguments) for name, arguments in calls]
        return tools, results


def test_tools_are_listed_small_and_route_model_answers(api: StandinAPI, db_path: Path, project: Path) -> None:
    tools, [routed] = _run(_session(api, db_path, project, [("route_model", {"task": "summarize this build log"})]))
    by_name = {tool.name: tool for tool in tools.tools}
    assert set(by_name) == {"route_model", "delegate_to_haiku", "track_cost", "rate_delegation"}
    assert set(by_name["delegate_to_haiku"].input_schema["properties"]) == {"task", "paths", "content", "max_tokens",
                                                                           "model", "force"}
    assert by_name["route_model"].annotations.read_only_hint is True
    definitions = json.dumps([tool.model_dump(exclude_none=True) for tool in tools.tools])
    assert len(definitions) / 4 <= 1500, f"tool definitions cost ~{len(definitions) // 4} tokens of every session"
    assert not routed.is_error
    assert routed.structured_content["tier"] == "haiku"
    assert routed.structured_content["model"] == "claude-haiku-5-5"
    assert routed.structured_content["uncertain"] is False and routed.structured_content["candidates"] == ["haiku"]
    assert api.requests == []


def test_delegation_reads_the_file_server_side_and_prices_the_answer(
    api: StandinAPI, db_path: Path, project: Path
) -> None:
    _, [first, second] = _run(_session(api, db_path, project, [
        ("delegate_to_haiku", {"task": "summarize the notes", "paths": ["notes.txt"]}),
        ("delegate_to_haiku", {"task": "summarize the notes", "paths": ["notes.txt"]}),
    ]))
    assert not first.is_error, first.content
    result = first.structured_content
    request = api.requests[0]
    assert request["model"] == "claude-haiku-5-5"
    assert MARKER in json.dumps(request["messages"])  # the file went to Haiku …
    assert MARKER not in result["result"] or result["result"].startswith("OK:")
    assert request["system"][0]["cache_control"] == {"type": "ephemeral"}
    conn = connect(db_path)
    row = conn.execute("SELECT * FROM delegations WHERE id = ?", (result["delegation_id"],)).fetchone()
    usage = Usage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_creation_tokens"])
    assert row["outcome"] == "ok" and row["category"] == "summarize" and row["backend"] == "api"
    assert result["cost_usd"] == pytest.approx(CATALOG.cost("claude-haiku-5-5", usage), abs=1e-12)
    assert row["cache_creation_tokens"] > 0  # first call writes the cached system prompt …
    assert second.structured_content and conn.execute(
        "SELECT cache_read_tokens FROM delegations WHERE id = ?",
        (second.structured_content["delegation_id"],)).fetchone()[0] > 0  # … the second reads it
    expected_saved = CATALOG.cost("claude-sonnet-5-5", usage)  # the same reads, cache reads as cache reads
    assert result["saved_usd"] == pytest.approx(expected_saved - result["cost_usd"], abs=1e-12)
    assert conn.execute("SELECT state FROM cost_records").fetchone()[0] == "settled"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../../../../../../../../../etc/passwd", "outside the allowed roots"),
        ("/etc/hostname", "outside the allowed roots"),
        ("escape.txt", "outside the allowed roots"),
        ("~/.ssh/id_rsa", "outside the allowed roots"),
        ("missing.txt", "no such file"),
        (".env", 'deny rule "shell env file"'),
        ("huge.log", "exceed max_file_bytes"),
        ("logo.png", "binary"),
    ],
)
def test_unsafe_paths_are_refused_before_any_request(api: StandinAPI, db_path: Path, project: Path,
                                                     isolated_user: Path, path: str, message: str) -> None:
    ssh = isolated_user / ".ssh"
    ssh.mkdir()
    (ssh / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    _, [result] = _run(_session(api, db_path, project, [("delegate_to_haiku", {"task": "read", "paths": [path]})]))
    assert result.is_error and message in result.content[0].text, result.content[0].text
    assert api.requests == []
    assert connect(db_path).execute("SELECT outcome FROM delegations").fetchone()[0] == "refused"


def test_api_faults(api: StandinAPI, db_path: Path, project: Path) -> None:
    api.faults = [529, 529, None, 500, 500, 500, None, "malformed"]
    call = ("delegate_to_haiku", {"task": "summarize", "content": "some text"})
    _, results = _run(_session(api, db_path, project, [call, call, call, call]))
    assert not results[0].is_error  # 529 twice, then 200
    assert results[1].is_error and "HTTP 500: scripted 500 (attempt 3 of 3)" in results[1].content[0].text
    assert not results[2].is_error  # the server is still fine
    assert results[3].is_error and "could not be read" in results[3].content[0].text
    states = [r[0] for r in connect(db_path).execute("SELECT state FROM cost_records ORDER BY id")]
    assert states == ["settled", "released", "settled", "released"]


def test_track_cost_and_the_cap(api: StandinAPI, db_path: Path, project: Path) -> None:
    conn = connect(db_path)
    conn.execute("INSERT INTO settings (key, value) VALUES ('monthly_cap_usd', '30')")
    _, [first, second, unknown] = _run(_session(api, db_path, project, [
        ("track_cost", {"model": "opus", "input_tokens": 1_000_000, "output_tokens": 1_000_000, "requests": 20}),
        ("track_cost", {"model": "claude-opus-5-5", "input_tokens": 1_000_000, "output_tokens": 0, "requests": 5}),
        ("track_cost", {"model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}),
    ]))
    assert first.structured_content == {"cost_usd": 24.0, "month_to_date_usd": 24.0, "monthly_cap_usd": 30.0,
                                        "allowed": True}
    assert second.structured_content["month_to_date_usd"] == 28.0 and second.structured_content["allowed"]
    assert unknown.is_error and "unknown model 'gpt-4o'" in unknown.content[0].text
    _, [over, refused] = _run(_session(api, db_path, project, [
        ("track_cost", {"model": "opus", "input_tokens": 500_000, "output_tokens": 0}),
        ("delegate_to_haiku", {"task": "summarize", "content": "x"}),
    ]))
    assert over.structured_content["allowed"] is False
    assert refused.is_error and "monthly cap reached" in refused.content[0].text
    assert api.requests == []


def test_twenty_concurrent_delegations_never_overspend_the_cap(api: StandinAPI, db_path: Path, project: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    config = Config(monthly_cap_usd=0.02, delegate_model="claude-haiku-4-5")
    connect(db_path).close()
    errors: list[str] = []

    def worker() -> None:
        conn = connect(db_path)
        try:
            Delegator(conn, config, CATALOG, project).delegate("summarize", content="word " * 400, max_tokens=200)
        except BudgetExceeded as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conn = connect(db_path)
    spent = conn.execute("SELECT TOTAL(cost_usd) FROM cost_records WHERE state = 'settled'").fetchone()[0]
    largest_reservation = conn.execute("SELECT MAX(reserved_usd) FROM cost_records").fetchone()[0]
    assert errors and len(api.requests) == 20 - len(errors)
    assert spent <= 0.02 + largest_reservation


def test_a_bad_rating_is_recorded_through_the_tool(api: StandinAPI, db_path: Path, project: Path) -> None:
    _, [delegated] = _run(_session(api, db_path, project, [("delegate_to_haiku", {"task": "extract all the emails",
                                                                                   "content": "a@b.c"})]))
    _, [rated, unknown] = _run(_session(api, db_path, project, [
        ("rate_delegation", {"delegation_id": delegated.structured_content["delegation_id"], "rating": "bad"}),
        ("rate_delegation", {"delegation_id": "nope", "rating": "good"}),
    ]))
    assert rated.structured_content["category"] == "extract" and rated.structured_content["promoted_to"] is None
    assert unknown.is_error and "no delegation with id 'nope'" in unknown.content[0].text


def test_claude_cli_backend_when_there_is_no_api_key(tmp_path: Path, db_path: Path, project: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "claude"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\ncat > /dev/null\n"
                    'echo \'{"type":"result","is_error":false,"result":"three bullet points","total_cost_usd":0.0004,'
                    '"usage":{"input_tokens":900,"output_tokens":40,"cache_read_input_tokens":0,'
                    '"cache_creation_input_tokens":0}}\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    conn = connect(db_path)
    result = Delegator(conn, Config(), CATALOG, project).delegate("summarize", paths=["notes.txt"])
    assert result["result"] == "three bullet points" and result["input_tokens"] == 900
    assert result["cost_usd"] == pytest.approx(CATALOG.cost("haiku", Usage(900, 40)))
    assert conn.execute("SELECT backend FROM delegations").fetchone()[0] == "claude-cli"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(Exception, match="no API key: set ANTHROPIC_API_KEY"):
        Delegator(conn, Config(), CATALOG, project).delegate("summarize", content="x")


def test_input_beyond_the_window_is_mapped_and_reduced_or_refused(api: StandinAPI, db_path: Path, project: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    conn = connect(db_path)
    config = Config(max_input_tokens=5000)
    result = Delegator(conn, config, CATALOG, project).delegate("list the names", content="name " * 12_000,
                                                                max_tokens=500)
    parts = len(api.requests) - 1  # each part, then one request combining their answers
    assert parts >= 2 and f"part {parts} of {parts}" in json.dumps(api.requests[-2]["messages"])
    assert "Combine these answers" in json.dumps(api.requests[-1]["messages"])
    assert result["input_tokens"] > 5000  # the parts' input, all of it priced
    with pytest.raises(Exception, match="more than 8 times the 5,000-token limit"):
        Delegator(conn, config, CATALOG, project).delegate("list the names", content="name " * 100_000)
    assert len(api.requests) == parts + 1  # refused before any request
