"""The independent probe of #17 (teams on PostgreSQL): each test here failed before its fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from mcp_router.budget import record_cost
from mcp_router.config import Config
from mcp_router.pricing import Catalog, Usage
from mcp_router.store import connect
from mcp_router.sync import ledger_id, sync
from mcp_router.team import BUDGET_LOCK, identity
from mcp_router.team import connect as team_connect
from mcp_router.team_budget import TeamBudget


def _reserve(tmp_path: Path, url: str) -> tuple[float, str]:
    conn = connect(tmp_path / "usage.db")
    started = time.monotonic()
    note = TeamBudget(conn, Config(team_db_url=url, user="dev@example.com", machine="laptop")).reserve(
        1, 0.01, model="claude-haiku-4-5", delegation_id="d1", ttl_seconds=120)
    return time.monotonic() - started, note


@contextmanager
def _login_role(team_db_url: str, privileges: str) -> Iterator[tuple[str, str]]:
    """A throwaway login role with ``privileges`` on the team tables: its name and a URL that logs in as it."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    team_connect(Config(team_db_url=team_db_url)).close()
    name = f"probe17_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(team_db_url, autocommit=True) as owner:
        owner.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'pw'")
        owner.execute(f"GRANT {privileges} ON ALL TABLES IN SCHEMA public TO {name}")
    try:
        yield name, make_conninfo(**{**conninfo_to_dict(team_db_url), "user": name, "password": "pw"})
    finally:
        with psycopg.connect(team_db_url, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {name}")
            owner.execute(f"DROP ROLE {name}")


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
    assert elapsed < 30
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


def _team_budget_json(tmp_path: Path, url: str, tz: str) -> dict:
    config = tmp_path / "config.toml"
    config.touch()
    env = {**os.environ, "TZ": tz, "MCP_ROUTER_TEAM_DB_URL": url, "MCP_ROUTER_CONFIG": str(config),
           "MCP_ROUTER_DB": str(tmp_path / "usage.db")}
    done = subprocess.run([sys.executable, "-m", "mcp_router", "budget", "--team", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_team_month_is_one_month_whatever_each_machines_time_zone(tmp_path: Path, team_db_url: str) -> None:
    # Each machine used its own zone's month: at a month's turn, a team in Berlin and San Francisco saw two
    # different month-to-dates, so the cap held for neither (and `budget --team` depended on who ran it).
    team_connect(Config(team_db_url=team_db_url)).close()
    now = time.time()
    with psycopg.connect(team_db_url, autocommit=True) as pg:
        pg.cursor().executemany(
            'INSERT INTO cost_records ("user", machine, ledger_id, local_id, ts, source, cost_usd, state)'
            " VALUES ('dev@example.com', 'laptop', 'l', %s, %s, 'delegation', 1, 'settled')",
            [(hour, now - hour * 3600) for hour in range(1, 40 * 24)])
    east, west = (_team_budget_json(tmp_path, team_db_url, tz) for tz in ("Etc/GMT-14", "Etc/GMT+11"))
    assert east == west
    utc_month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    assert east["month_to_date_usd"] == sum(1 for hour in range(1, 40 * 24) if now - hour * 3600 >= utc_month_start)


_STALLED_SYNC = """
import os, signal, sys
from mcp_router import team
from mcp_router.budget import record_cost
from mcp_router.config import Config
team.STALLED_CLIENT_SECONDS = 2
pg = team.connect(Config(team_db_url=sys.argv[1]))
pg.execute("BEGIN")
pg.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (sys.argv[2],))  # as a sync of that ledger, mid-chunk
print("holding", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)  # a laptop put to sleep mid-sync
"""


def test_a_sync_stalled_mid_transaction_does_not_block_the_next_syncs(tmp_path: Path, team_db_url: str) -> None:
    # The server kept a stalled client's transaction, and its ledger lock, until TCP noticed (hours): every
    # later sync of the ledger waited behind it, one more process and connection every 5 minutes from the hook.
    conn = connect(tmp_path / "usage.db")
    config = Config(team_db_url=team_db_url, user="dev@example.com", machine="laptop")
    stalled = subprocess.Popen([sys.executable, "-c", _STALLED_SYNC, team_db_url, ledger_id(conn)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert stalled.stdout is not None and stalled.stdout.readline() == "holding\n"
        finished = threading.Event()
        threading.Thread(target=lambda: (sync(connect(tmp_path / "usage.db"), config), finished.set()),
                         daemon=True).start()
        assert finished.wait(45)
    finally:
        stalled.kill()
        stalled.wait()


def test_a_track_cost_label_never_reaches_the_team_database(tmp_path: Path, team_db_url: str) -> None:
    # track_cost's task_type is whatever the model writes ("a label for the report"), prompt text included;
    # the team report does not use it, so it stays on the machine like the other free text.
    conn = connect(tmp_path / "usage.db")
    marker = "summarise the Acme merger memo, password hunter2"
    record_cost(conn, Config(), Catalog.load(), "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=5),
                task_type=marker)
    assert sync(conn, Config(team_db_url=team_db_url, user="dev@example.com", machine="laptop")).sent[
        "cost_records"] == 1
    with psycopg.connect(team_db_url) as pg:
        tables = [row[0] for row in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        dumps = [pg.execute(f"SELECT COALESCE(string_agg(t::text, '|'), '') FROM {table} t").fetchone()[0]
                 for table in tables]
        assert pg.execute("SELECT cost_usd FROM cost_records").fetchone()[0] > 0
    assert "cost_records" in tables and not any("hunter2" in dump or "Acme" in dump for dump in dumps)


_NEWER_CLIENT = """
import sys
from mcp_router import team
from mcp_router.cli import cli
team.MIGRATIONS.append(("m999_probe", "CREATE TABLE probe_future (x int)"))  # this client is newer than the DB
cli(["sync"])
"""


def test_a_writer_with_a_newer_client_than_the_team_schema_gets_one_line_not_a_traceback(
        tmp_path: Path, team_db_url: str) -> None:
    # The README's roles leave migrating to the owner: a developer upgrading first met a psycopg traceback.
    with _login_role(team_db_url, "SELECT, INSERT, UPDATE, DELETE") as (writer, url):
        config = tmp_path / "config.toml"
        config.touch()
        env = {**os.environ, "MCP_ROUTER_TEAM_DB_URL": url, "MCP_ROUTER_CONFIG": str(config),
               "MCP_ROUTER_DB": str(tmp_path / "usage.db"), "MCP_ROUTER_USER": writer}
        done = subprocess.run([sys.executable, "-c", _NEWER_CLIENT], env=env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "m999_probe" in done.stderr and "owns the tables" in done.stderr


def test_a_refused_team_statement_is_one_line_not_a_traceback(tmp_path: Path, team_db_url: str) -> None:
    # The README: only the owner sets the team cap. A writer trying met a psycopg traceback.
    with _login_role(team_db_url, "SELECT") as (_, url):
        config = tmp_path / "config.toml"
        config.touch()
        env = {**os.environ, "MCP_ROUTER_CONFIG": str(config), "MCP_ROUTER_DB": str(tmp_path / "usage.db"),
               "MCP_ROUTER_TEAM_DB_URL": url}
        done = subprocess.run([sys.executable, "-m", "mcp_router", "budget", "--team", "--set-monthly", "5"],
                              env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "permission denied for table settings" in done.stderr


def test_the_readme_reader_role_gets_the_team_report(tmp_path: Path, team_db_url: str) -> None:
    # `report --team` syncs this machine first: as the README's reader role that sync is refused, and the reader
    # got that error instead of the report it exists for.
    from benchmarks.corpus import generate

    generate(tmp_path / "projects", sessions=1, turns=2, filler=20, seed=17)
    with _login_role(team_db_url, "SELECT") as (_, url):
        config = tmp_path / "config.toml"
        config.touch()
        env = {**os.environ, "MCP_ROUTER_CONFIG": str(config), "MCP_ROUTER_DB": str(tmp_path / "usage.db"),
               "MCP_ROUTER_TEAM_DB_URL": url}
        done = subprocess.run([sys.executable, "-m", "mcp_router", "report", "--team", "--all", "--format", "json",
                               "--projects-dir", str(tmp_path / "projects")],
                              env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["messages"] == 0  # nothing synced: the team database as it is
    assert "refused the sync" in done.stderr and "reporting on the team database as it is" in done.stderr


def test_a_writer_cannot_block_another_writers_sync(tmp_path: Path, team_db_url: str) -> None:
    import re

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    block = re.search(r"<!-- team-roles:start -->\n```sql\n(.*?)```",
                      (Path(__file__).resolve().parents[1] / "README.md").read_text(), re.S)
    assert block is not None
    suffix = uuid.uuid4().hex[:8]
    alice, bob = f"alice_{suffix}@example.com", f"bob_{suffix}@example.com"
    sql = (block.group(1).replace("mcp_writer", f"mcp_writer_{suffix}").replace("mcp_reader", f"mcp_reader_{suffix}")
           .replace('"alice@example.com"', f'"{alice}"').replace("ROLE reports", f"ROLE reports_{suffix}")
           + f"""CREATE ROLE "{bob}" LOGIN PASSWORD 'change me' IN ROLE mcp_writer_{suffix};""")
    team_connect(Config(team_db_url=team_db_url)).close()
    with psycopg.connect(team_db_url, autocommit=True) as owner:
        owner.execute(sql)
    as_role = {name: make_conninfo(**{**conninfo_to_dict(team_db_url), "user": name, "password": "change me"})
               for name in (alice, bob)}
    roles = f'"{alice}", "{bob}", reports_{suffix}, mcp_writer_{suffix}, mcp_reader_{suffix}'
    try:
        conn = connect(tmp_path / "bob.db")
        with psycopg.connect(as_role[alice], autocommit=True) as pg:  # bob's ledger id is visible to every writer
            pg.execute('INSERT INTO cost_records ("user", machine, ledger_id, local_id, ts, state)'
                       " VALUES (%s, 'laptop', %s, 1, 0, 'settled')", (alice, ledger_id(conn)))
        record_cost(conn, Config(), Catalog.load(), "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=5))
        assert sync(conn, Config(team_db_url=as_role[bob], user=bob, machine="laptop")).sent["cost_records"] == 1
    finally:
        with psycopg.connect(team_db_url, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {roles}")
            owner.execute(f"DROP ROLE {roles}")


def test_the_default_user_is_the_same_from_every_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default user was `git config user.email` in the current directory: a sync started by the hook in a
    # repository with its own user.email sent this machine's rows as someone else (and, under the README's
    # roles, was refused), so one person was split across users by project.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    (home / ".gitconfig").write_text("[user]\n\temail = dev@example.com\n")
    repo = tmp_path / "side-project"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.email", "dev@personal.example"], check=True)
    monkeypatch.chdir(repo)
    assert identity(Config())[0] == "dev@example.com"
