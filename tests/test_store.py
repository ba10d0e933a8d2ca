from __future__ import annotations

import multiprocessing
import sqlite3
import traceback
from pathlib import Path

import pytest
from sqlite_utils import Database

from mcp_router import store
from mcp_router.migrations import MIGRATIONS


def _row(message_id: str, request_id: str = "req", *, output: int = 10, sidechain: int = 0, **extra) -> tuple:
    values = {column: None for column in store.USAGE_COLUMNS}
    values.update(
        message_id=message_id, request_id=request_id, ts=1_790_000_000.0, model="claude-opus-5-5",
        input_tokens=100, output_tokens=output, cache_read_tokens=0, cache_creation_tokens=0,
        total_tokens=100 + output, is_sidechain=sidechain, **{"cost_usd": 0.001, **extra},
    )
    return tuple(values[column] for column in store.USAGE_COLUMNS)


def _upsert(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    with store.transaction(conn):
        store.upsert_usage(conn, rows)


def test_schema_version_counts_the_migrations() -> None:
    assert store.SCHEMA_VERSION == len(MIGRATIONS._migrations)


def test_connect_creates_the_file_in_wal_mode_with_the_full_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "usage.db"
    conn = store.connect(path)
    assert path.exists()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    db = Database(conn)
    assert {m.name for m in MIGRATIONS.applied(db)} == {m.name for m in MIGRATIONS._migrations}
    assert set(db.table_names()) >= {
        "usage_events", "tool_results", "ingest_files", "session_costs", "delegations", "cost_records",
        "feedback", "category_overrides", "budget_alerts", "settings", "_sqlite_migrations", "usage_rollup",
        "prompts", "advice_events",
    }
    assert db["advice_events"].columns_dict == {"uuid": str, "session_id": str, "ts": float, "kind": str,
                                                "category": str}
    assert tuple(c for c in db["usage_events"].columns_dict if c != "id") == store.USAGE_COLUMNS
    assert db["delegations"].columns_dict == {
        "id": str, "ts": float, "session_id": str, "category": str, "task": str, "model": str,
        "main_model": str, "backend": str, "input_tokens": int, "output_tokens": int,
        "cache_read_tokens": int, "cache_creation_tokens": int, "cost_usd": float, "saved_usd": float,
        "latency_ms": float, "outcome": str, "error": str,
    }
    unique = [index.columns for index in db["usage_events"].indexes if index.unique]
    assert ["message_id", "request_id"] in unique


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    store.connect(path).close()
    conn = store.connect(path)
    applied = conn.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0]
    assert applied == store.SCHEMA_VERSION


def test_upsert_keeps_the_copy_with_most_tokens_and_main_chain_over_sidechain(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "usage.db")
    _upsert(conn, [_row("m1", output=5), _row("m1", output=50), _row("m1", output=20)])
    _upsert(conn, [_row("m2", sidechain=1), _row("m2", sidechain=0, agent_id="main")])
    _upsert(conn, [_row("m3", sidechain=0, agent_id="main"), _row("m3", sidechain=1, agent_id="side")])
    rows = {r["message_id"]: r for r in conn.execute("SELECT * FROM usage_events")}
    assert len(rows) == 3
    assert rows["m1"]["output_tokens"] == 50
    assert rows["m2"]["is_sidechain"] == 0 and rows["m2"]["agent_id"] == "main"
    assert rows["m3"]["is_sidechain"] == 0 and rows["m3"]["agent_id"] == "main"


def test_same_message_under_another_request_id_is_another_response(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "usage.db")
    _upsert(conn, [_row("m1", "req_a"), _row("m1", "req_b"), _row("m1", "req_a")])
    assert conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] == 2


def test_settings_round_trip(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "usage.db")
    assert store.get_setting(conn, "k", "default") == "default"
    store.set_setting(conn, "k", "1")
    store.set_setting(conn, "k", "2")
    assert store.get_setting(conn, "k") == "2"
    store.set_setting(conn, "k", None)
    assert store.get_setting(conn, "k") is None


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "usage.db")
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction(conn):
            conn.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")
            conn.execute("INSERT INTO settings (key, value) VALUES ('a', '2')")
    assert store.get_setting(conn, "a") is None


WRITERS = 8
INSERTS = 500


def _writer(path: str, worker: int, errors: multiprocessing.Queue) -> None:
    try:
        conn = store.connect(path)
        for i in range(INSERTS):
            # Every event is written by two workers (i and i+1 mod WRITERS share keys): overlapping.
            key = (worker * INSERTS + i) // 2 * 2 % (WRITERS * INSERTS // 2)
            _upsert(conn, [_row(f"msg_{key}", output=worker)])
    except Exception as exc:  # report to the parent; an escaped "database is locked" fails the test
        errors.put("".join(traceback.format_exception(exc)))


def test_eight_processes_writing_overlapping_events_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "usage.db")  # not created yet: the processes also race to migrate it
    context = multiprocessing.get_context("spawn")
    errors: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_writer, args=(path, w, errors)) for w in range(WRITERS)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=240)
        assert process.exitcode == 0
    assert errors.empty(), errors.get()
    expected = {(w * INSERTS + i) // 2 * 2 % (WRITERS * INSERTS // 2) for w in range(WRITERS) for i in range(INSERTS)}
    conn = store.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] == len(expected)
    assert conn.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0] == store.SCHEMA_VERSION


def test_rollup_follows_inserts_replacements_and_deletes(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "usage.db")
    _upsert(conn, [_row("m1", output=5), _row("m2", output=7, session_id="s2"), _row("m3", cost_usd=None)])
    _upsert(conn, [_row("m1", output=50, agent_id="a", agent_type="Explore", sidechain=1)])  # replaces m1
    conn.execute("DELETE FROM usage_events WHERE message_id = 'm2'")

    def sums(table: str, count: str) -> tuple:
        return tuple(conn.execute(f"SELECT TOTAL(output_tokens), TOTAL(input_tokens), TOTAL(cost_usd), {count}"
                                  f" FROM {table}").fetchone())

    assert sums("usage_rollup", "TOTAL(messages)") == sums("usage_events", "COUNT(*)")
    agents = dict(conn.execute("SELECT agent, SUM(messages) FROM usage_rollup GROUP BY agent").fetchall())
    assert agents == {"main": 1, "Explore": 1}
    assert conn.execute("SELECT SUM(unpriced_messages) FROM usage_rollup").fetchone()[0] == 1
