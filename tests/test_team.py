"""The team database on a real PostgreSQL (``team_db_url`` fixture): sync, the team report, the schema."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from benchmarks.corpus import generate
from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.errors import TeamDBError
from mcp_router.ledger import ingest_tree
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report
from mcp_router.store import connect
from mcp_router.sync import TABLES, sync
from mcp_router.team import MIGRATIONS, TeamConnection
from mcp_router.team import connect as team_connect
from tests.test_advice_report import SESSION, T0, session  # noqa: F401  (the fixture: a session with advice)

CATALOG = Catalog.load()
PERIOD = dict(since="2026-11-01", until="2026-11-30", timezone="UTC")
SUMS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "messages")


def _machine(tmp_path: Path, n: int, url: str, sessions: int = 6) -> tuple[sqlite3.Connection, Config, Path]:
    """Machine ``n``: its own transcripts (a corpus of its own seed), SQLite file and identity."""
    projects = tmp_path / f"machine{n}" / "projects"
    generate(projects, sessions=sessions, turns=6, filler=200, seed=100 + n)
    db = tmp_path / f"machine{n}" / "usage.db"
    conn = connect(db)
    ingest_tree(conn, projects, CATALOG)
    return conn, Config(team_db_url=url, user=f"dev{n}@example.com", machine=f"laptop{n}"), db


def _report(conn: Any, group_by: str) -> dict[str, Any]:
    spec = ReportSpec.parse(PERIOD["since"], PERIOD["until"], PERIOD["timezone"], group_by)
    return build_report(conn, spec, CATALOG, Config())


def _by(groups: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    return {tuple(g[k] for k in keys): g for g in groups}


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as pg:
        return {t.name: pg.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0] for t in TABLES}


def _local_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {t.name: conn.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0] for t in TABLES}


def test_three_machines_sync_and_the_team_report_is_the_sum_of_theirs(tmp_path: Path, team_db_url: str) -> None:
    machines = [_machine(tmp_path, n, team_db_url) for n in range(3)]
    for conn, config, _ in machines:
        assert sync(conn, config).sent["usage_events"] > 0
    team = TeamConnection(team_connect(Config(team_db_url=team_db_url)))
    report = _report(team, "user,project,model")
    by_user = _by(_report(team, "user")["groups"], ("user",))
    expected_total = {field: 0 for field in SUMS}
    for conn, config, _ in machines:
        local = _report(conn, "project,model")
        assert local["totals"]["messages"] > 0
        mine = {key[1:]: g for key, g in _by(report["groups"], ("user", "project_key", "model")).items()
                if key[0] == config.user}
        assert mine.keys() == _by(local["groups"], ("project_key", "model")).keys()
        for key, group in _by(local["groups"], ("project_key", "model")).items():
            assert {f: mine[key][f] for f in SUMS} == {f: group[f] for f in SUMS}
            assert mine[key]["cost_usd"] == pytest.approx(group["cost_usd"], abs=1e-6)
        assert by_user[(config.user,)]["cost_usd"] == pytest.approx(local["totals"]["cost_usd"], abs=1e-6)
        for field in SUMS:
            expected_total[field] += local["totals"][field]
    assert {f: report["totals"][f] for f in SUMS} == expected_total
    assert [p["user"] for p in report["people"]] == sorted((c.user for _, c, _ in machines),
                                                           key=lambda u: -by_user[(u,)]["cost_usd"])
    machines_seen = {g["machine"] for g in _report(team, "machine")["groups"]}
    assert machines_seen == {"laptop0", "laptop1", "laptop2"}


def test_sync_twice_after_new_turns_and_after_kill_9_loses_and_doubles_nothing(tmp_path: Path,
                                                                                team_db_url: str) -> None:
    conn, config, db = _machine(tmp_path, 0, team_db_url, sessions=30)
    first = sync(conn, config, chunk_rows=50)
    assert first.sent["usage_events"] == _local_counts(conn)["usage_events"]
    assert sync(conn, config).sent == dict.fromkeys(first.sent, 0)  # nothing new: nothing sent
    assert _counts(team_db_url) == _local_counts(conn)

    generate(tmp_path / "more", sessions=40, turns=8, filler=200, seed=999)  # new turns on this machine
    ingest_tree(conn, tmp_path / "more", CATALOG)
    env = {**os.environ, "MCP_ROUTER_TEAM_DB_URL": team_db_url, "MCP_ROUTER_USER": config.user,
           "MCP_ROUTER_MACHINE": config.machine}
    killed = 0
    for delay in (0.3, 0.6, 0.9):  # kill -9 mid-sync, at different points
        child = subprocess.Popen([sys.executable, "-c", f"from mcp_router.sync import sync; import sys;"
                                  f"from mcp_router.store import connect; from mcp_router.config import Config;"
                                  f"sync(connect({str(db)!r}), Config.load(), chunk_rows=20)"], env=env)
        time.sleep(delay)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
        child.wait()
    assert killed
    sync(conn, config)  # the rest, after the kills
    assert _counts(team_db_url) == _local_counts(conn)
    team = TeamConnection(team_connect(config))
    local, shared = _report(conn, "model"), _report(team, "model")
    assert {f: shared["totals"][f] for f in SUMS} == {f: local["totals"][f] for f in SUMS}
    assert shared["totals"]["cost_usd"] == pytest.approx(local["totals"]["cost_usd"], abs=1e-6)
    with psycopg.connect(team_db_url) as pg:  # the rollup agrees with the rows it sums
        assert pg.execute("SELECT SUM(messages) FROM usage_rollup").fetchone()[0] == \
            pg.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]


def test_a_fuller_copy_of_a_response_replaces_the_synced_one(tmp_path: Path, team_db_url: str) -> None:
    conn, config, _ = _machine(tmp_path, 0, team_db_url, sessions=2)
    sync(conn, config)
    message_id, request_id, output = conn.execute(
        "SELECT message_id, request_id, output_tokens FROM usage_events LIMIT 1").fetchone()
    conn.execute("UPDATE usage_events SET output_tokens = output_tokens + 5, total_tokens = total_tokens + 5"
                 " WHERE message_id = ? AND request_id = ?", (message_id, request_id))
    assert sync(conn, config).sent["usage_events"] == 1
    with psycopg.connect(team_db_url) as pg:
        assert pg.execute("SELECT output_tokens FROM usage_events WHERE message_id = %s AND request_id = %s",
                          (message_id, request_id)).fetchone()[0] == output + 5
        assert pg.execute("SELECT SUM(output_tokens) FROM usage_rollup").fetchone()[0] == \
            conn.execute("SELECT SUM(output_tokens) FROM usage_events").fetchone()[0]


def test_nothing_but_numbers_and_decisions_reach_the_team_database(tmp_path: Path, team_db_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_ROUTER_KEEP_PROMPTS", "true")  # the local ledger keeps prompt text: it must stay there
    conn, config, _ = _machine(tmp_path, 0, team_db_url, sessions=2)
    conn.execute("INSERT INTO delegations (id, ts, category, task, model, outcome, error) VALUES"
                 " ('d1', 1794000000, 'summarize', 'SECRET TASK TEXT', 'claude-haiku-4-5', 'error', 'SECRET ERROR')")
    conn.execute("INSERT INTO feedback (delegation_id, ts, category, rating, note) VALUES"
                 " ('d1', 1794000000, 'summarize', 'bad', 'SECRET NOTE')")
    prompt, tier = conn.execute("SELECT text, tier FROM prompts WHERE text IS NOT NULL LIMIT 1").fetchone()
    sync(conn, config)
    with psycopg.connect(team_db_url) as pg:  # the decisions did arrive
        assert pg.execute("SELECT COUNT(*) FROM prompts WHERE tier = %s", (tier,)).fetchone()[0] > 0
    dump = subprocess.run(["pg_dump" if not Path("/usr/lib/postgresql/15/bin/pg_dump").exists()
                           else "/usr/lib/postgresql/15/bin/pg_dump", "--data-only", team_db_url],
                          capture_output=True, text=True, check=True).stdout
    assert "d1" in dump and "dev0@example.com" in dump
    for secret in ("SECRET TASK TEXT", "SECRET ERROR", "SECRET NOTE", prompt, "/home/user/code"):
        assert secret not in dump


@pytest.mark.usefixtures("session")
def test_routing_advice_and_the_haiku_reader_are_the_same_in_the_team_report(tmp_path: Path, db_path: Path,
                                                                             team_db_url: str) -> None:
    conn = connect(db_path)
    ingest_tree(conn, tmp_path / "projects", CATALOG)
    conn.execute("INSERT INTO advice_events VALUES ('g1', ?, ?, 'guarded', 'architecture')", (SESSION, T0 + 60))
    conn.execute("INSERT INTO advice_events VALUES ('m9', ?, ?, 'model_change', 'Opus, SECRET TYPED')",
                 (SESSION, T0 + 70))
    config = Config(team_db_url=team_db_url, user="dev9@example.com", machine="laptop9")
    assert sync(conn, config).sent["advice_events"] == 8
    spec = ReportSpec.parse("2026-11-29", "2026-11-30", "UTC", "model")
    local = build_report(conn, spec, CATALOG, Config())
    shared = build_report(TeamConnection(team_connect(config)), spec, CATALOG, Config())
    assert local["advice"]["given"] == 4 and local["advice"]["guarded"] == {"architecture": 1}
    assert shared["advice"] == local["advice"]
    reader = local["delegations"]["haiku_reader"]
    assert reader["runs"] == 1 and reader["saved_usd"] > 0
    assert shared["delegations"]["haiku_reader"] == pytest.approx(reader, abs=1e-6)
    with psycopg.connect(team_db_url) as pg:  # what the user typed after /model stays here: only its tier goes
        changes = pg.execute("SELECT category FROM advice_events WHERE kind = 'model_change'").fetchall()
    assert sorted(c[0] for c in changes) == ["opus", "opus", "opus"]


def test_a_newer_team_schema_is_refused_and_a_missing_server_is_one_clear_line(team_db_url: str) -> None:
    config = Config(team_db_url=team_db_url)
    team_connect(config).close()
    with psycopg.connect(team_db_url, autocommit=True) as pg:
        assert [r[0] for r in pg.execute("SELECT name FROM schema_migrations")] == [n for n, _ in MIGRATIONS]
        pg.execute("INSERT INTO schema_migrations (name) VALUES ('m999_from_the_future')")
    with pytest.raises(TeamDBError, match="newer schema .*m999_from_the_future.* upgrade"):
        team_connect(config)
    down = Config(team_db_url="postgresql://someone:hunter2@127.0.0.1:1/team")
    result = CliRunner().invoke(cli, ["sync"], env={"MCP_ROUTER_TEAM_DB_URL": down.team_db_url})
    assert result.exit_code == 1
    assert "team database 127.0.0.1:1/team unreachable" in result.output and "hunter2" not in result.output


def test_team_commands_without_a_team_database_say_how_to_set_one(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sync", "--db", str(db_path)])
    assert result.exit_code == 1 and "team_db_url" in result.output
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--group-by", "user"])
    assert result.exit_code == 1 and "--team" in result.output


def test_report_team_in_every_format(tmp_path: Path, team_db_url: str) -> None:
    conn, config, db = _machine(tmp_path, 1, team_db_url, sessions=3)
    env = {"MCP_ROUTER_TEAM_DB_URL": team_db_url, "MCP_ROUTER_USER": config.user, "MCP_ROUTER_MACHINE": "box"}
    runner = CliRunner()
    base = ["report", "--team", "--db", str(db), "--since", PERIOD["since"], "--until", PERIOD["until"],
            "--timezone", "UTC", "--group-by", "user,machine,model"]
    synced = runner.invoke(cli, [*base, "--format", "csv", "--projects-dir", str(tmp_path / "machine1" / "projects")],
                           env=env, catch_exceptions=False)  # ingests and syncs first
    assert synced.exit_code == 0, synced.output
    assert synced.output.splitlines()[0].startswith("user,machine,model,input_tokens")
    assert f"{config.user},box," in synced.output
    for fmt in ("json", "markdown", "html", "table"):
        result = runner.invoke(cli, [*base, "--no-ingest", "--format", fmt], env=env, catch_exceptions=False)
        assert result.exit_code == 0 and "dev1@" in result.output, fmt
    html = runner.invoke(cli, [*base, "--no-ingest", "--format", "html"], env=env).output
    assert "Per person" in html


def test_the_readme_roles_let_a_writer_sync_only_its_own_rows_and_a_reader_report(tmp_path: Path,
                                                                                   team_db_url: str) -> None:
    import re
    import uuid

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"<!-- team-roles:start -->\n```sql\n(.*?)```", readme, re.S)
    assert block is not None
    suffix = uuid.uuid4().hex[:8]  # roles are the whole server's: names of this test's own
    alice, reports = f"alice_{suffix}@example.com", f"reports_{suffix}"
    sql = (block.group(1).replace("mcp_writer", f"mcp_writer_{suffix}").replace("mcp_reader", f"mcp_reader_{suffix}")
           .replace('"alice@example.com"', f'"{alice}"').replace("ROLE reports", f"ROLE {reports}"))
    team_connect(Config(team_db_url=team_db_url)).close()  # the owner creates the tables
    with psycopg.connect(team_db_url, autocommit=True) as owner:
        owner.execute(sql)
    as_role = {name: make_conninfo(**{**conninfo_to_dict(team_db_url), "user": name}) for name in (alice, reports)}
    try:
        conn, _, _ = _machine(tmp_path, 0, team_db_url, sessions=2)
        mine = Config(team_db_url=as_role[alice], user=alice, machine="laptop")
        assert sync(conn, mine).sent["usage_events"] == _local_counts(conn)["usage_events"]
        other, _, _ = _machine(tmp_path, 1, team_db_url, sessions=1)
        with pytest.raises(TeamDBError, match="refused the sync as bob@example.com: new row violates row-level"):
            sync(other, Config(team_db_url=as_role[alice], user="bob@example.com", machine="laptop"))
        reader = TeamConnection(team_connect(Config(team_db_url=as_role[reports])))
        assert _report(reader, "user")["groups"][0]["user"] == alice
        with pytest.raises(TeamDBError, match="permission denied for table usage_events"):
            reader.execute("DELETE FROM usage_events")
        reader.close()
    finally:
        with psycopg.connect(team_db_url, autocommit=True) as owner:
            owner.execute(f'DROP OWNED BY "{alice}", {reports}, mcp_writer_{suffix}, mcp_reader_{suffix}')
            owner.execute(f'DROP ROLE "{alice}", {reports}, mcp_writer_{suffix}, mcp_reader_{suffix}')


def test_without_the_driver_team_commands_say_how_to_install_it(db_path: Path) -> None:
    code = ("import sys; sys.modules['psycopg'] = None; from mcp_router.cli import cli;"
            f" cli(['sync', '--db', {str(db_path)!r}])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MCP_ROUTER_TEAM_DB_URL": "postgresql://127.0.0.1/team"})
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: team features need the PostgreSQL driver: pip install 'mcp-router[team]'"


def test_the_hook_starts_a_background_sync_at_most_every_five_minutes(tmp_path: Path, team_db_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_router.store import get_setting
    from mcp_router.sync import AUTO_SYNC_SETTING, start_in_background

    conn, config, db = _machine(tmp_path, 2, team_db_url, sessions=1)
    team_connect(config).close()  # the schema, so the counts below can be read while the sync runs
    monkeypatch.setenv("MCP_ROUTER_TEAM_DB_URL", team_db_url)  # what the detached process reads
    monkeypatch.setenv("MCP_ROUTER_USER", config.user)
    assert start_in_background(conn, config, db) is True
    assert start_in_background(conn, config, db) is False  # too soon
    assert start_in_background(conn, Config(), db) is False  # no team database
    deadline = time.monotonic() + 60
    while _counts(team_db_url) != _local_counts(conn) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _counts(team_db_url) == _local_counts(conn)
    assert float(get_setting(conn, AUTO_SYNC_SETTING) or 0) > time.time() - 120
