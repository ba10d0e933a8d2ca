"""The team cap on a real PostgreSQL, with delegations over real HTTP to the stand-in API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from benchmarks.corpus import generate
from mcp_router.budget import month_to_date_usd, set_monthly_cap
from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.delegate import Delegator
from mcp_router.errors import BudgetExceeded
from mcp_router.ledger import ingest_tree
from mcp_router.store import connect
from mcp_router.sync import TABLES, sync
from mcp_router.team import TeamConnection
from mcp_router.team import connect as team_connect

from .standin_api import StandinAPI
from .test_team import CATALOG, _counts, _local_counts, _machine

DOWN = "postgresql://postgres@127.0.0.1:1/team"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    with StandinAPI() as standin:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        yield standin


def test_eight_syncs_and_twenty_delegations_from_four_machines_never_overspend_the_team_cap(
        tmp_path: Path, team_db_url: str, api: StandinAPI) -> None:
    machines = [_machine(tmp_path, n, team_db_url, sessions=2) for n in range(4)]
    for n, (conn, config, _) in enumerate(machines):
        sync(conn, config)
        # Turns of last month, not yet synced: the concurrent syncs carry them without moving this month's spend.
        generate(tmp_path / f"october{n}", sessions=3, turns=4, filler=100, seed=500 + n,
                 start=datetime(2026, 10, 1, tzinfo=UTC), days=5)
        ingest_tree(conn, tmp_path / f"october{n}", CATALOG)
    team = TeamConnection(team_connect(Config(team_db_url=team_db_url)))
    cap = month_to_date_usd(team) + 0.02
    set_monthly_cap(team, cap)
    dbs = [(db, Config(team_db_url=team_db_url, user=c.user, machine=c.machine, delegate_model="claude-haiku-4-5"))
           for _, c, db in machines]

    def delegate(n: int) -> str:
        db, config = dbs[n % 4]
        try:
            Delegator(connect(db), config, CATALOG, tmp_path).delegate("summarize", content="word " * 400,
                                                                        max_tokens=200)
            return "ok"
        except BudgetExceeded as exc:
            assert "team monthly cap reached" in str(exc)
            return "refused"

    def sync_machine(n: int) -> str:
        db, config = dbs[n % 4]
        sync(connect(db), config, chunk_rows=25)
        return "synced"

    with ThreadPoolExecutor(28) as pool:
        futures = [pool.submit(delegate, n) for n in range(20)] + [pool.submit(sync_machine, n) for n in range(8)]
        outcomes = [f.result() for f in futures]
    assert outcomes.count("synced") == 8
    assert 0 < outcomes.count("ok") == len(api.requests) < 20
    for db, config in dbs:
        sync(connect(db), config)
    assert _counts(team_db_url) == {t.name: sum(_local_counts(connect(db))[t.name] for db, _ in dbs) for t in TABLES}
    records = "SELECT state, COALESCE(cost_usd, -1) FROM cost_records WHERE source = 'delegation'"
    local_records = sorted(tuple(row) for db, _ in dbs for row in connect(db).execute(records))
    with psycopg.connect(team_db_url) as pg:
        assert sorted(pg.execute(records).fetchall()) == local_records
        assert {state for state, _ in local_records} == {"settled", "released"}
        largest = pg.execute("SELECT MAX(reserved_usd) FROM cost_records").fetchone()[0]
    assert month_to_date_usd(team) <= cap + largest


def test_with_the_team_database_down_the_hook_and_delegation_work_locally_and_sync_catches_up(
        tmp_path: Path, team_db_url: str, api: StandinAPI) -> None:
    conn, config, db = _machine(tmp_path, 0, DOWN, sessions=2)
    config = Config(team_db_url=DOWN, user=config.user, machine=config.machine, delegate_model="claude-haiku-4-5",
                    monthly_cap_usd=50)
    result = Delegator(conn, config, CATALOG, tmp_path).delegate("summarize", content="word " * 50)
    note = result["note"]
    assert result["result"].startswith("OK") and "team cap not checked" in note
    assert "127.0.0.1:1/team unreachable" in note and "this machine's cap applied" in note

    generate(tmp_path / "new", sessions=1, turns=3, filler=100, seed=77)
    transcript = next((tmp_path / "new").rglob("*.jsonl"))
    before = conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]
    # A server that takes the connection and never answers: the background sync waits its 10 s connect timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    env = {**os.environ, "MCP_ROUTER_TEAM_DB_URL": f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/team",
           "MCP_ROUTER_DB": str(db)}
    hook = subprocess.run([sys.executable, "-m", "mcp_router", "hook"], input=json.dumps(
        {"hook_event_name": "Stop", "session_id": "s", "transcript_path": str(transcript)}),
        capture_output=True, text=True, env=env, timeout=30)
    log = db.with_name("team-sync.log")
    assert hook.returncode == 0 and hook.stdout == "" and hook.stderr == ""
    assert log.read_text() == ""  # the hook is done while its sync still waits: it never waited for it
    assert conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] > before
    deadline = time.monotonic() + 60
    while "unreachable" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)  # the background sync, failing quietly into its log
    silent.close()
    assert "unreachable: connection timeout expired" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"

    up = Config(team_db_url=team_db_url, user=config.user, machine=config.machine)
    summary = sync(conn, up)
    assert summary.sent["delegations"] == 1 and summary.sent["cost_records"] == 1
    assert _counts(team_db_url) == _local_counts(conn)


def test_budget_team_sets_and_shows_the_team_cap(team_db_url: str) -> None:
    env = {"MCP_ROUTER_TEAM_DB_URL": team_db_url, "MCP_ROUTER_MONTHLY_CAP_USD": "7"}
    result = CliRunner().invoke(cli, ["budget", "--team", "--set-monthly", "250", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["monthly_cap_usd"] == 250.0
    shown = CliRunner().invoke(cli, ["budget", "--team"], env=env)
    assert "of $250.00" in shown.output
    down = CliRunner().invoke(cli, ["budget", "--team"], env={"MCP_ROUTER_TEAM_DB_URL": DOWN})
    assert down.exit_code == 1 and "unreachable" in down.output
