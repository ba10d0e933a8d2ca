"""The independent probe of #17 (teams on PostgreSQL): each test here failed before its fix."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import psycopg

from mcp_router.config import Config
from mcp_router.store import connect
from mcp_router.team import BUDGET_LOCK
from mcp_router.team import connect as team_connect
from mcp_router.team_budget import TeamBudget


def _reserve(tmp_path: Path, url: str) -> tuple[float, str]:
    conn = connect(tmp_path / "usage.db")
    started = time.monotonic()
    note = TeamBudget(conn, Config(team_db_url=url, user="dev@example.com", machine="laptop")).reserve(
        1, 0.01, model="claude-haiku-4-5", delegation_id="d1", ttl_seconds=120)
    return time.monotonic() - started, note


def test_a_delegation_does_not_wait_on_a_team_budget_lock_someone_holds(tmp_path: Path, team_db_url: str) -> None:
    # A machine that stalls mid-reservation (a laptop lid closed, a partition) keeps the team's budget lock until
    # the server notices, hours with default keepalives: every delegation in the team used to wait as long.
    team_connect(Config(team_db_url=team_db_url)).close()
    holder = psycopg.connect(team_db_url)
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (BUDGET_LOCK,))
    release = threading.Timer(40, holder.cancel)  # so the test ends even before the fix
    release.start()
    try:
        elapsed, note = _reserve(tmp_path, team_db_url)
    finally:
        release.cancel()
        holder.close()
    assert elapsed < 15
    assert "team cap not checked" in note and "this machine's cap applied" in note


# Passed before the fixes too (connect_timeout bounds the start-up): kept so it stays so.
def test_a_team_database_that_accepts_and_never_answers_does_not_stall_a_delegation(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        elapsed, note = _reserve(tmp_path, f"postgresql://dev@127.0.0.1:{port}/team")
    finally:
        silent.close()
    assert elapsed < 10
    assert "team cap not checked" in note
