"""Delegation ends inside Claude Code's MCP tool timeout, and a server killed mid-call holds no budget for long."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcp_router import budget
from mcp_router.config import Config
from mcp_router.delegate import DEFAULT_TOOL_TIMEOUT_SECONDS, time_budget_seconds, tool_timeout_seconds
from mcp_router.server import build_server
from mcp_router.store import connect


@pytest.fixture
def hung_api() -> Iterator[str]:
    """An address that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _env(url: str, db_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "test", "MCP_ROUTER_DB": str(db_path),
            **extra}


def test_the_default_budget_leaves_a_margin_inside_sixty_seconds() -> None:
    assert tool_timeout_seconds({}) == DEFAULT_TOOL_TIMEOUT_SECONDS == 60
    assert time_budget_seconds({}) == 45 < 60
    assert tool_timeout_seconds({"MCP_TOOL_TIMEOUT": "120000"}) == 120  # Claude Code's unit is milliseconds
    assert time_budget_seconds({"MCP_TOOL_TIMEOUT": "8000"}) == 6
    assert tool_timeout_seconds({"MCP_TOOL_TIMEOUT": "soon"}) == tool_timeout_seconds({"MCP_TOOL_TIMEOUT": "-5"}) == 60
    # The old defaults (50 s per attempt, 3 retries) no longer add up past the tool timeout: every attempt,
    # backoff and fallback is cut to what is left of the budget (the hung-API test below shows it).
    assert Config().api_timeout_seconds * (Config().api_max_retries + 1) > 60


@pytest.mark.parametrize("fallback", ["", "sonnet"])
def test_a_hung_api_is_a_clear_tool_error_before_the_tool_timeout(hung_api: str, db_path: Path, tmp_path: Path,
                                                                  fallback: str) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_router", "serve"], cwd=str(tmp_path),
        env=_env(hung_api, db_path, MCP_TOOL_TIMEOUT="8000", MCP_ROUTER_API_MAX_RETRIES="3",
                 MCP_ROUTER_FALLBACK_MODEL=fallback))

    async def call() -> tuple[float, object]:
        async with Client(params) as client:
            await client.list_tools()
            started = time.monotonic()
            result = await client.call_tool("delegate_to_haiku", {"task": "summarise", "content": "some text"})
            return time.monotonic() - started, result

    elapsed, result = asyncio.run(call())
    assert elapsed < 8.0, elapsed
    assert result.is_error  # type: ignore[attr-defined]
    text = result.content[0].text  # type: ignore[attr-defined]
    assert "did not answer in time" in text and "8 s MCP tool timeout (MCP_TOOL_TIMEOUT)" in text
    conn = connect(db_path)
    [(state, ts, expires)] = conn.execute("SELECT state, ts, expires_ts FROM cost_records").fetchall()
    # Released by the delegation; or, when only the server's backstop answered in time (a starved CPU) and the
    # session ended before the delegation did, held until it expires.
    assert state == "released" or (state == "reserved" and expires - ts == 2 * 8)
    assert [r[0] for r in conn.execute("SELECT outcome FROM delegations")] in (["error"], [])


def _start_server(url: str, db_path: Path, cwd: Path) -> subprocess.Popen[str]:
    server = subprocess.Popen([sys.executable, "-m", "mcp_router", "serve"], cwd=cwd, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=_env(url, db_path, MCP_TOOL_TIMEOUT="3000"))
    assert server.stdin and server.stdout

    def send(message: dict) -> None:
        server.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]

    send({"id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                      "clientInfo": {"name": "test", "version": "1"}}})
    assert json.loads(server.stdout.readline())["id"] == 1
    send({"method": "notifications/initialized"})
    send({"id": 2, "method": "tools/call", "params": {"name": "delegate_to_haiku",
                                                      "arguments": {"task": "summarise", "content": "text"}}})
    return server


def _reserved(conn: object) -> int:
    return conn.execute("SELECT COUNT(*) FROM cost_records WHERE state = 'reserved'").fetchone()[0]  # type: ignore


def test_a_server_killed_mid_call_leaves_no_reservation_counted_after_expiry(hung_api: str, db_path: Path,
                                                                             tmp_path: Path) -> None:
    server = _start_server(hung_api, db_path, tmp_path)
    conn = connect(db_path)
    deadline = time.monotonic() + 20
    while _reserved(conn) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _reserved(conn) == 1
    held = budget.month_to_date_usd(conn)
    assert held > 0  # while the call may still be running, its maximum cost is held
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    expires = conn.execute("SELECT expires_ts FROM cost_records").fetchone()[0]
    assert expires - time.time() <= 2 * 3  # twice the tool timeout
    time.sleep(max(expires - time.time(), 0) + 0.05)
    assert budget.month_to_date_usd(conn) == 0  # expired: no longer counted, though nobody released it
    assert _reserved(conn) == 1


def test_a_starting_server_releases_the_holds_of_dead_servers(hung_api: str, db_path: Path, tmp_path: Path) -> None:
    server = _start_server(hung_api, db_path, tmp_path)
    conn = connect(db_path)
    deadline = time.monotonic() + 20
    while _reserved(conn) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    assert budget.month_to_date_usd(conn) > 0  # not expired yet …
    build_server(db_path, Config(), tmp_path)  # … but the next server start releases it
    assert budget.month_to_date_usd(conn) == 0
    assert conn.execute("SELECT state FROM cost_records").fetchone()[0] == "expired"
