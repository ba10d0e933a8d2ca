"""Team m004: every synced row's key starts with its user. A team database made at m003, rows in it, upgraded in
place; writers on either side of the upgrade; one writer's rows never meeting another's (real PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from mcp_router import budget, team
from mcp_router.budget import record_cost
from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.pricing import Usage
from mcp_router.sync import TABLES, ledger_id, sync
from mcp_router.team import TeamConnection
from mcp_router.team import connect as team_connect
from tests.test_probe_17 import _login_role
from tests.test_team import CATALOG, _counts, _local_counts, _machine

M003 = [name for name, _ in team.MIGRATIONS].index("m003_create_advice_events") + 1


@contextmanager
def _client_at_m003() -> Iterator[None]:
    """This process as an mcp-router that knows the team migrations up to m003 only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(team, "MIGRATIONS", team.MIGRATIONS[:M003])
        yield


def _sync_as_m003_did(conn: sqlite3.Connection, config: Config) -> None:
    """Every row and mark as a sync before m004 left them: keys without the user."""
    owner = (config.user, config.machine, ledger_id(conn))
    with psycopg.connect(config.team_db_url) as pg:
        for table in TABLES:
            rows = conn.execute(f"SELECT rowid, {table.select} FROM {table.name}").fetchall()
            values = ", ".join(["%s"] * (3 + len(table.columns)))
            pg.cursor().executemany(f'INSERT INTO {table.name} ("user", machine, ledger_id, {", ".join(table.columns)})'
                                    f" VALUES ({values})", [(*owner, *row[1:]) for row in rows])
            if rows:
                pg.execute('INSERT INTO sync_state (ledger_id, table_name, high_water, "user", machine)'
                           " VALUES (%s, %s, %s, %s, %s)", (owner[2], table.name, rows[-1][0], *owner[:2]))


def _reserved(conn: sqlite3.Connection, config: Config, delegation_id: str) -> int:
    return budget.reserve(conn, config, 0.5, model="claude-haiku-4-5", delegation_id=delegation_id, ttl_seconds=3600)


def _month_to_date(url: str, now: datetime | None = None) -> float:
    """The team's month-to-date spend at ``now`` (the database's clock if not given)."""
    pg = TeamConnection(team_connect(Config(team_db_url=url)))
    try:
        return budget.month_to_date_usd(pg, now or pg.now())
    finally:
        pg.close()


def test_a_team_database_made_at_m003_keeps_its_rows_and_marks_through_the_upgrade(tmp_path: Path,
                                                                                  team_db_url: str) -> None:
    conn, config, _ = _machine(tmp_path, 0, team_db_url, sessions=2)
    record_cost(conn, config, CATALOG, "claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=500))
    pending = _reserved(conn, config, "d-pending")
    with _client_at_m003():
        team_connect(Config(team_db_url=team_db_url)).close()
    _sync_as_m003_did(conn, config)
    before, spent = _counts(team_db_url), _month_to_date(team_db_url)
    assert before == _local_counts(conn) and before["cost_records"] == 2 and spent > 0.5

    team_connect(Config(team_db_url=team_db_url)).close()  # the owner upgrades it in place
    assert _counts(team_db_url) == before and _month_to_date(team_db_url) == pytest.approx(spent, abs=1e-9)
    assert set(sync(conn, config).sent.values()) == {0}  # every mark kept: nothing sent twice

    budget.settle(conn, pending, 0.25, Usage(input_tokens=10, output_tokens=10))  # an old row changes
    record_cost(conn, config, CATALOG, "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=5))
    assert sync(conn, config).sent["cost_records"] == 2
    assert _counts(team_db_url) == {**before, "cost_records": 3} == _local_counts(conn)
    with psycopg.connect(team_db_url) as pg:
        assert pg.execute("SELECT state, cost_usd FROM cost_records WHERE local_id = %s",
                          (pending,)).fetchall() == [("settled", 0.25)]


def test_writers_on_either_side_of_the_upgrade_each_get_one_line(tmp_path: Path, team_db_url: str) -> None:
    sync_here = ["sync", "--db", str(tmp_path / "usage.db")]
    with ExitStack() as roles:
        with _client_at_m003():
            writer, as_writer = roles.enter_context(_login_role(team_db_url, "SELECT, INSERT, UPDATE, DELETE"))
        ahead = CliRunner().invoke(cli, sync_here, env={"MCP_ROUTER_TEAM_DB_URL": as_writer,
                                                        "MCP_ROUTER_USER": writer})
        with psycopg.connect(team_db_url) as pg:
            assert pg.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == M003
    assert ahead.exit_code == 1 and len(ahead.output.strip().splitlines()) == 1
    assert ("needs migrating to this mcp-router's schema (m004_each_writer_keeps_to_its_own_rows,"
            " m005_no_infinite_cost)") in ahead.output
    assert "owns the tables" in ahead.output

    team_connect(Config(team_db_url=team_db_url)).close()  # the owner upgrades; a client left at m003 is refused
    with _client_at_m003():
        behind = CliRunner().invoke(cli, sync_here, env={"MCP_ROUTER_TEAM_DB_URL": team_db_url})
    assert behind.exit_code == 1 and len(behind.output.strip().splitlines()) == 1
    assert "newer schema (m005_no_infinite_cost)" in behind.output and "upgrade it" in behind.output


def test_rows_planted_under_another_writers_keys_neither_block_nor_hide_its_rows(tmp_path: Path,
                                                                                  team_db_url: str) -> None:
    conn, bob, _ = _machine(tmp_path, 0, team_db_url, sessions=1)
    record_cost(conn, bob, CATALOG, "claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=500))
    conn.execute("INSERT INTO delegations (id, ts, category, model, outcome) VALUES ('d-bob', 1, 'summarize',"
                 " 'claude-haiku-4-5', 'ok')")
    team_connect(Config(team_db_url=team_db_url)).close()
    with psycopg.connect(team_db_url, autocommit=True) as pg:  # bob's ledger id and delegation id are seen by all
        for sql in ('INSERT INTO sync_state ("user", machine, ledger_id, table_name, high_water)'
                    " VALUES ('mallory', 'm', %s, 'cost_records', 1000000000)",
                    'INSERT INTO cost_records ("user", machine, ledger_id, local_id, ts, cost_usd, state)'
                    " VALUES ('mallory', 'm', %s, 1, 0, 0, 'settled')"):
            pg.execute(sql, (ledger_id(conn),))
        pg.execute("INSERT INTO delegations (\"user\", machine, ledger_id, id, outcome) VALUES ('mallory', 'm', 'x',"
                   " 'd-bob', 'error')")
    assert sync(conn, bob).sent["cost_records"] == 1
    with psycopg.connect(team_db_url) as pg:
        assert pg.execute('SELECT "user", cost_usd > 0 FROM cost_records ORDER BY "user"').fetchall() == [
            (bob.user, True), ("mallory", False)]
        assert pg.execute('SELECT "user", outcome FROM delegations ORDER BY "user"').fetchall() == [
            (bob.user, "ok"), ("mallory", "error")]


def test_a_renamed_user_goes_on_from_its_ledgers_marks(tmp_path: Path, team_db_url: str) -> None:
    conn, config, _ = _machine(tmp_path, 0, team_db_url, sessions=1)
    first = sync(conn, config).sent
    renamed = Config(team_db_url=team_db_url, user="renamed@example.com", machine=config.machine)
    assert set(sync(conn, renamed).sent.values()) == {0}  # not the whole ledger again, counted twice
    record_cost(conn, renamed, CATALOG, "claude-haiku-4-5", Usage(input_tokens=10, output_tokens=5))
    assert sync(conn, renamed).sent["cost_records"] == 1
    assert _counts(team_db_url) == _local_counts(conn) == {**first, "cost_records": first["cost_records"] + 1}
    with psycopg.connect(team_db_url) as pg:
        assert pg.execute('SELECT "user" FROM cost_records').fetchall() == [("renamed@example.com",)]


def test_no_writer_takes_the_team_month_to_date_below_what_the_others_spent(tmp_path: Path,
                                                                             team_db_url: str) -> None:
    negative = ('INSERT INTO cost_records ("user", machine, ledger_id, local_id, ts, cost_usd, reserved_usd, state)'
                " VALUES ('mallory', 'm', 'l', %s, extract(epoch from now()), %s, %s, %s)")
    with _client_at_m003():
        team_connect(Config(team_db_url=team_db_url)).close()
    with psycopg.connect(team_db_url, autocommit=True) as pg:
        pg.execute(negative, (1, -5.0, None, "settled"))  # written before m004: it must not stop the upgrade
    team_connect(Config(team_db_url=team_db_url)).close()
    with psycopg.connect(team_db_url, autocommit=True) as pg:
        for row in ((2, -5.0, None, "settled"), (3, None, -5.0, "reserved"), (5, float("nan"), None, "settled"),
                    (6, None, float("nan"), "reserved")):
            with pytest.raises(psycopg.errors.CheckViolation, match="cost_records_no_negative_cost"):
                pg.execute(negative, row)
        for cost in (-5.0, float("nan")):
            with pytest.raises(psycopg.errors.CheckViolation, match="usage_rollup_no_negative_cost"):
                pg.execute('INSERT INTO usage_rollup (bucket, "user", machine, model, project, session_id, agent,'
                           " branch, cost_usd) VALUES (floor(extract(epoch from now()) / 900), 'mallory', 'm', 'x',"
                           " '', '', 'main', '(none)', %s)", (cost,))
        pg.execute(negative, (4, 0.0, 0.5, "reserved"))
    assert _month_to_date(team_db_url) == pytest.approx(-5.0 + 0.5)  # only the row from before the upgrade
