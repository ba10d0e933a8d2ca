"""The team database: first sync of 1M rows, an incremental sync of 1,000, and the team report over 10M rows
(7 and 90 days), each beside its baseline measured in the same run.

    MCP_ROUTER_TEST_PG_URL=postgresql://postgres@127.0.0.1:5432/postgres python benchmarks/bench_team.py

The server in the URL must let that role create databases (bash .ci/run starts such a one for the tests).
Rows are made by one formula in both engines (``_row_sql``): the same responses on SQLite and PostgreSQL.
Baselines: the sync beside a bare COPY of the same rows into an unindexed table (the transfer alone); the
incremental sync beside a sync with nothing new (start-up and connection); the team report beside the same
report on an SQLite ledger of the same 10M responses.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from timing import MCP_ROUTER, median_seconds, wall_seconds

from mcp_router.migrations import _rollup_keys, _rollup_sums
from mcp_router.store import connect
from mcp_router.sync import USAGE_SENT, _rollup_values

T0 = 1_785_542_400.0  # 2026-08-01 UTC; rows are spread over 100 days from here
SPAN_SECONDS = 100 * 86400
WEEK = ("2026-11-01", "2026-11-07")
QUARTER = ("2026-08-10", "2026-11-07")


def _row_sql(rows: int, float_cast: str = "") -> dict[str, str]:
    """Each usage column of response ``n`` as SQL both engines evaluate alike: sessions of 200 responses, one
    in seven a subagent's on Haiku, 30 projects, 8 people."""
    f = float_cast
    session = "(n / 200)"
    return {
        "message_id": "'m' || n", "request_id": "'r'", "ts": f"{T0}{f} + n * {SPAN_SECONDS / rows!r}{f}",
        "session_id": f"'s' || {session}", "project": f"'p' || ({session} % 30)", "git_branch": "'main'",
        "is_sidechain": "CASE WHEN n % 7 = 0 THEN 1 ELSE 0 END",
        "agent_id": "CASE WHEN n % 7 = 0 THEN 'a1' END", "agent_type": "CASE WHEN n % 7 = 0 THEN 'general-purpose' END",
        "model": f"CASE WHEN n % 7 = 0 THEN 'claude-haiku-5-5' WHEN {session} % 3 = 0 THEN 'claude-opus-5-5'"
                 " ELSE 'claude-sonnet-5-5' END",
        "input_tokens": "(n * 7919) % 9000 + 1", "output_tokens": "(n * 104729) % 2000 + 1",
        "cache_read_tokens": "(n * 1299709) % 90000", "cache_creation_tokens": "(n * 15485863) % 9000",
        "cache_creation_5m_tokens": "(n * 15485863) % 9000", "cache_creation_1h_tokens": "0",
        "web_search_requests": "0", "total_tokens": "0", "cost_usd": f"((n * 31) % 1000) / 10000.0{f}",
    }


def fill_sqlite(path: Path, first: int, count: int, rows_for_spacing: int) -> None:
    conn = connect(path)
    values = _row_sql(rows_for_spacing)
    columns = ", ".join(values)
    conn.execute("BEGIN")
    conn.execute(f"INSERT INTO usage_events ({columns}) WITH RECURSIVE c(n) AS (SELECT {first} UNION ALL"
                 f" SELECT n + 1 FROM c WHERE n < {first + count - 1}) SELECT {', '.join(values.values())} FROM c")
    conn.execute("COMMIT")
    conn.close()


def fill_sqlite_fast(path: Path, rows: int) -> None:
    """The 10M-row ledger: rows in bulk with the rollup triggers off, the rollup summed once after, as
    migration 2 builds it; the triggers are put back as they were."""
    conn = connect(path)
    triggers = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'"
                                           " AND name LIKE 'usage_rollup_%'")]
    for name in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                            " AND name LIKE 'usage_rollup_%'")]:
        conn.execute(f"DROP TRIGGER {name}")
    conn.close()
    fill_sqlite(path, 0, rows, rows)
    conn = connect(path)
    keys = _rollup_keys("usage_events")
    conn.execute(f"INSERT INTO usage_rollup SELECT {', '.join(keys)}, {', '.join(f'SUM({s})' for s in _rollup_sums('usage_events'))}"
                 f" FROM usage_events GROUP BY {', '.join(keys)}")
    for sql in triggers:
        conn.execute(sql)
    conn.close()


def fill_team(url: str, rows: int) -> None:
    """The same responses in the team database, from eight people on eight machines, with its rollup."""
    values = _row_sql(rows, "::float8")
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f'INSERT INTO usage_events ("user", machine, ledger_id, {", ".join(values)})'
                   " SELECT 'dev' || ((n / 200) % 8) || '@example.com', 'm' || ((n / 200) % 8), 'bench',"
                   f" {', '.join(values.values())} FROM generate_series(0::bigint, {rows - 1}) AS n")
        names = ("bucket", '"user"', "machine", "model", "project", "session_id", "agent", "branch",
                 "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
                 "cache_creation_1h_tokens", "cost_usd", "messages", "unpriced_messages")
        plain = [n.strip('"') for n in names]
        pg.execute(f"INSERT INTO usage_rollup ({', '.join(names)}) SELECT {', '.join(f'd.{n}' for n in names[:8])},"
                   f" {', '.join(f'SUM(d.{n})' for n in plain[8:])} FROM (SELECT {_rollup_values('e', '')}"
                   f" FROM usage_events e) AS d({', '.join(names)}) GROUP BY {', '.join(f'd.{n}' for n in names[:8])}")
        pg.execute("VACUUM ANALYZE usage_events")
        pg.execute("VACUUM ANALYZE usage_rollup")


def database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return make_conninfo(**{**conninfo_to_dict(admin_url), "dbname": name})


def bare_copy_seconds(sqlite_path: Path, url: str) -> float:
    columns = ", ".join(USAGE_SENT)
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"CREATE UNLOGGED TABLE bare AS SELECT {columns} FROM usage_events WITH NO DATA")
        started = time.perf_counter()
        rows = sqlite3.connect(sqlite_path).execute(f"SELECT {columns} FROM usage_events")
        with pg.cursor().copy(f"COPY bare ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - started
        pg.execute("DROP TABLE bare")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sync-rows", type=int, default=1_000_000)
    parser.add_argument("--report-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    admin = os.environ["MCP_ROUTER_TEST_PG_URL"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HOME": tmp, "MCP_ROUTER_USER": "dev@example.com", "MCP_ROUTER_MACHINE": "bench"}
        ledger = Path(tmp) / "sync.db"
        fill_sqlite(ledger, 0, args.sync_rows, args.sync_rows)
        url = database(admin, "bench_sync")
        team_connect_env = {**env, "MCP_ROUTER_TEAM_DB_URL": url}
        first = wall_seconds([MCP_ROUTER, "sync", "--db", str(ledger)], env=team_connect_env)
        bare = bare_copy_seconds(ledger, url)
        fill_sqlite(ledger, args.sync_rows, 1000, args.sync_rows)
        incremental = wall_seconds([MCP_ROUTER, "sync", "--db", str(ledger)], env=team_connect_env)
        nothing = median_seconds([MCP_ROUTER, "sync", "--db", str(ledger)], runs=5, env=team_connect_env)

        big = Path(tmp) / "report.db"
        started = time.perf_counter()
        fill_sqlite_fast(big, args.report_rows)
        sqlite_fill = time.perf_counter() - started
        team_url = database(admin, "bench_report")
        started = time.perf_counter()
        team_connect_env = {**env, "MCP_ROUTER_TEAM_DB_URL": team_url}
        wall_seconds([MCP_ROUTER, "budget", "--team"], env=team_connect_env)  # creates the schema
        fill_team(team_url, args.report_rows)
        team_fill = time.perf_counter() - started
        figures = {}
        for label, (since, until) in (("7 days", WEEK), ("90 days", QUARTER)):
            common = ["--no-ingest", "--format", "json", "--timezone", "UTC", "--since", since, "--until", until]
            figures[label] = (
                median_seconds([MCP_ROUTER, "report", "--db", str(big), *common], runs=3, env=env),
                median_seconds([MCP_ROUTER, "report", "--team", *common], runs=3, env=team_connect_env),
                median_seconds([MCP_ROUTER, "report", "--team", *common, "--group-by", "user,project"], runs=3,
                               env=team_connect_env),
            )
    print(f"first sync of {args.sync_rows:,} rows (mcp-router sync)    {first:7.2f} s  = {first / bare:.1f}x bare COPY"
          f" of the same rows ({bare:.2f} s, baseline)")
    print(f"incremental sync of 1,000 rows                {incremental * 1000:7.0f} ms = {incremental / nothing:.2f}x"
          f" a sync with nothing new ({nothing * 1000:.0f} ms, baseline)")
    print(f"(filling {args.report_rows:,} rows: SQLite {sqlite_fill:.0f} s, PostgreSQL {team_fill:.0f} s)")
    for label, (local, team, by_person) in figures.items():
        print(f"report over {args.report_rows:,} rows, {label}: SQLite {local * 1000:6.0f} ms (baseline),"
              f" team {team * 1000:6.0f} ms = {team / local:.2f}x; team by user,project {by_person * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
