"""``mcp-router sync``: this machine's ledger into the team database.

Each synced table goes in two passes. New rows: those past the table's high-water mark (its rowid), in
chunks; each chunk is one PostgreSQL transaction that COPYs the rows into a temporary table, merges them on
their natural keys and moves the mark, which lives in the team database beside the rows (``sync_state``),
so a sync killed anywhere resumes at its last commit and a chunk sent twice is still one set of rows.
Changed rows: older rows updated since (``sync_changes``, filled by triggers), merged the same way, then
cleared from the log. Usage rows merge as the local ledger does (the copy with the most tokens wins) and
keep the team ``usage_rollup`` in step, set by set. Only the columns listed here leave the machine.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .errors import TeamSyncRefused
from .store import get_setting, set_setting

CHUNK_ROWS = 250_000
LEDGER_SETTING = "team_ledger_id"
SYNCED_AS_SETTING = "team_synced_as"
AUTO_SYNC_SETTING = "team_sync_started_at"
AUTO_SYNC_SECONDS = 300


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]  # as named in the team database, in the order read
    key: tuple[str, ...]  # the natural key there, within one user's rows (team m004)
    local: tuple[str, ...] = ()  # local expressions where they differ from ``columns``

    @property
    def select(self) -> str:
        return ", ".join(self.local or self.columns)


USAGE_SENT = (
    "message_id", "request_id", "ts", "session_id", "project", "git_branch", "is_sidechain", "agent_id", "agent_type",
    "model", "raw_model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
    "cache_creation_5m_tokens", "cache_creation_1h_tokens", "web_search_requests", "total_tokens", "inference_geo",
    "service_tier", "speed", "cost_usd",
)
_COST_RECORD = ("ts", "source", "model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens",
                "task_type", "reserved_usd", "cost_usd", "state", "delegation_id", "expires_ts", "void_ts")
TABLES = (
    _Table("usage_events", USAGE_SENT, ('"user"', "message_id", "request_id")),
    _Table("tool_results", ("tool_use_id", "ts", "session_id", "project", "tool_name", "content_chars",
                            "is_sidechain"), ('"user"', "tool_use_id")),
    _Table("delegations", ("id", "ts", "session_id", "category", "model", "main_model", "backend", "input_tokens",
                           "output_tokens", "cache_read_tokens", "cache_creation_tokens", "cost_usd", "saved_usd",
                           "latency_ms", "outcome"), ('"user"', "id")),
    # track_cost's label is whatever the model wrote (the team report does not use it): it stays here.
    _Table("cost_records", ("local_id", *_COST_RECORD), ('"user"', "ledger_id", "local_id"),
           ("id", *("NULL" if c == "task_type" else c for c in _COST_RECORD))),
    _Table("feedback", ("local_id", "delegation_id", "ts", "category", "rating"), ('"user"', "ledger_id", "local_id"),
           ("id", "delegation_id", "ts", "category", "rating")),
    _Table("prompts", ("uuid", "session_id", "ts", "tier", "category", "confidence", "chars"), ('"user"', "uuid")),
    # A /model change as its tier (as transcripts.py now records it): a ledger written before that kept the
    # typed text, which must not leave the machine.
    _Table("advice_events", ("uuid", "session_id", "ts", "kind", "category"), ('"user"', "uuid"),
           ("uuid", "session_id", "ts", "kind", "CASE WHEN kind <> 'model_change' THEN category"
            " WHEN category LIKE '%haiku%' THEN 'haiku' WHEN category LIKE '%sonnet%' THEN 'sonnet'"
            " WHEN category LIKE '%opus%' THEN 'opus' ELSE 'other' END")),
)

# The team rollup's key and sums of a usage_events row, as the SQLite rollup computes them (migrations.py).
_ROLLUP_KEY = ("bucket", '"user"', "machine", "model", "project", "session_id", "agent", "branch")
_ROLLUP_SUMS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
                "cache_creation_1h_tokens", "cost_usd", "messages", "unpriced_messages")


def _rollup_values(row: str, sign: str) -> str:
    keys = [f"floor({row}.ts / 900)::bigint", f'{row}."user"', f"{row}.machine", f"{row}.model",
            f"COALESCE({row}.project, '')", f"COALESCE({row}.session_id, '')",
            f"CASE WHEN {row}.agent_id IS NULL AND COALESCE({row}.is_sidechain, 0) = 0 THEN 'main'"
            f" ELSE COALESCE({row}.agent_type, 'subagent') END",
            f"COALESCE(NULLIF({row}.git_branch, ''), '(none)')"]
    sums = [f"{sign}COALESCE({row}.{c}, 0)" for c in _ROLLUP_SUMS[:6]]
    sums += [f"{sign}1", f"{sign}({row}.cost_usd IS NULL)::int"]
    return ", ".join(keys + sums)


@dataclass
class SyncSummary:
    user: str
    machine: str
    where: str
    sent: dict[str, int] = field(default_factory=dict)


def ledger_id(conn: sqlite3.Connection) -> str:
    """This ledger's id in the team database (made on first use; a new SQLite file is a new ledger)."""
    current = get_setting(conn, LEDGER_SETTING)
    if current is None:
        current = uuid.uuid4().hex
        conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (LEDGER_SETTING, current))
        current = get_setting(conn, LEDGER_SETTING) or current
    return current


def sync(conn: sqlite3.Connection, config: Config, *, chunk_rows: int = CHUNK_ROWS) -> SyncSummary:
    """Send what the team database does not have yet; ``TeamDBError`` if it cannot be reached, ``TeamSyncRefused``
    if it refuses the rows."""
    from .team import connect, describe, identity

    pg = connect(config)  # says how to install the driver when it is missing
    import psycopg

    user, machine = identity(config)
    summary = SyncSummary(user, machine, describe(config.team_db_url))
    try:
        owner = (user, machine, ledger_id(conn))
        _continue_as(conn, pg, owner)
        for table in TABLES:
            summary.sent[table.name] = (_send_new(conn, pg, table, owner, chunk_rows)
                                        + _send_changed(conn, pg, table, owner))
        return summary
    except psycopg.Error as exc:  # e.g. a row-level security policy: what was committed stays, the rest waits
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TeamSyncRefused(f"team database {summary.where} refused the sync as {user}: {reason}") from None
    finally:
        pg.close()


def _continue_as(conn: sqlite3.Connection, pg: Any, owner: tuple[str, str, str]) -> None:
    """A ledger synced before under another name (``user`` changed) goes on where it stopped, not from its first
    row (which would count every row twice in the team's figures); what it sent before keeps the old name. The
    old name is this machine's word, never another writer's (their marks are under their own names)."""
    before = get_setting(conn, SYNCED_AS_SETTING)
    if before == owner[0]:
        return
    if before is not None:
        pg.execute('INSERT INTO sync_state (ledger_id, table_name, high_water, "user", machine) SELECT ledger_id,'
                   ' table_name, high_water, %s, %s FROM sync_state WHERE "user" = %s AND ledger_id = %s'
                   " ON CONFLICT DO NOTHING", (owner[0], owner[1], before, owner[2]))
    set_setting(conn, SYNCED_AS_SETTING, owner[0])


def _send_new(conn: sqlite3.Connection, pg: Any, table: _Table, owner: tuple[str, str, str], chunk_rows: int) -> int:
    sent = 0
    while True:
        with pg.transaction():
            pg.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (owner[2],))  # one sync of a ledger at a time
            mark = pg.execute('SELECT high_water FROM sync_state WHERE "user" = %s AND ledger_id = %s'
                              " AND table_name = %s", (owner[0], owner[2], table.name)).fetchone()
            rows = conn.execute(f"SELECT rowid, {table.select} FROM {table.name} WHERE rowid > ? ORDER BY rowid"
                                " LIMIT ?", (mark[0] if mark else 0, chunk_rows))
            count, last = _merge(pg, table, rows, owner)
            if not count:
                return sent
            pg.execute(
                'INSERT INTO sync_state (ledger_id, table_name, high_water, "user", machine)'
                " VALUES (%s, %s, %s, %s, %s)"
                ' ON CONFLICT ("user", ledger_id, table_name) DO UPDATE SET high_water = excluded.high_water,'
                " machine = excluded.machine, synced_at = now()",
                (owner[2], table.name, last, owner[0], owner[1]))
        sent += count
        if count < chunk_rows:
            return sent


def _send_changed(conn: sqlite3.Connection, pg: Any, table: _Table, owner: tuple[str, str, str]) -> int:
    top = conn.execute("SELECT MAX(seq) FROM sync_changes WHERE tbl = ?", (table.name,)).fetchone()[0]
    if top is None:
        return 0
    with pg.transaction():
        pg.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (owner[2],))
        count, _ = _merge(pg, table, conn.execute(
            f"SELECT rowid, {table.select} FROM {table.name}"
            " WHERE rowid IN (SELECT row FROM sync_changes WHERE tbl = ? AND seq <= ?)", (table.name, top)), owner)
    # Only after the commit: killed before this line, the same rows go again next time, which changes nothing.
    # The newest entry stays (sent again next time), so a seq is never reused: a concurrent sync clearing up to
    # the seq it sent never clears a change made since.
    conn.execute("DELETE FROM sync_changes WHERE tbl = ? AND seq <= ? AND seq < (SELECT MAX(seq) FROM sync_changes)",
                 (table.name, top))
    return count


def _merge(pg: Any, table: _Table, rows: Any, owner: tuple[str, str, str]) -> tuple[int, int]:
    """COPY ``rows`` (rowid first) into a temporary table and merge them; returns (rows, last rowid)."""
    columns = ", ".join(table.columns)
    pg.execute(f"CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT {columns} FROM {table.name} WITH NO DATA")
    count = last = 0
    with pg.cursor().copy(f"COPY stage ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row[1:])
            last = row[0]
            count += 1
    if not count:
        pg.execute("DROP TABLE stage")
        return 0, 0
    insert = (f'INSERT INTO {table.name} ("user", machine, ledger_id, {columns})'
              f" SELECT %s, %s, %s, {columns} FROM stage ON CONFLICT ({', '.join(table.key)})")
    if table.name != "usage_events":
        updates = ", ".join(f"{c} = excluded.{c}" for c in ('"user"', "machine", *table.columns)
                            if c not in table.key)
        pg.execute(f"{insert} DO UPDATE SET {updates}", owner)
    else:
        _merge_usage(pg, insert, owner)
    pg.execute("DROP TABLE stage")
    return count, last


def _merge_usage(pg: Any, insert: str, owner: tuple[str, str, str]) -> None:
    # A fuller copy of a response replaces the stored one (the local rule); both changes go to the rollup
    # as signed deltas, summed per key and applied in key order so concurrent syncs never deadlock.
    keys, sums = ", ".join(_ROLLUP_KEY), ", ".join(_ROLLUP_SUMS)
    pg.execute(f"CREATE TEMP TABLE delta ON COMMIT DROP AS SELECT {keys}, {sums} FROM usage_rollup WITH NO DATA")
    pg.execute(
        'WITH gone AS (DELETE FROM usage_events e USING stage s WHERE e."user" = %s'
        " AND e.message_id = s.message_id AND e.request_id = s.request_id AND (s.total_tokens > e.total_tokens"
        " OR (s.total_tokens = e.total_tokens AND s.is_sidechain < e.is_sidechain)) RETURNING e.*)"
        f" INSERT INTO delta SELECT {_rollup_values('gone', '-')} FROM gone", owner[:1])
    pg.execute(f"WITH added AS ({insert} DO NOTHING RETURNING *)"
               f" INSERT INTO delta SELECT {_rollup_values('added', '')} FROM added", owner)
    pg.execute(
        f"INSERT INTO usage_rollup ({keys}, {sums}) SELECT {keys}, {', '.join(f'SUM({c})' for c in _ROLLUP_SUMS)}"
        f" FROM delta GROUP BY {keys} ORDER BY {keys} ON CONFLICT ({keys}) DO UPDATE SET "
        + ", ".join(f"{c} = usage_rollup.{c} + excluded.{c}" for c in _ROLLUP_SUMS))
    pg.execute("DROP TABLE delta")


def start_in_background(conn: sqlite3.Connection, config: Config, db_path: Path) -> bool:
    """From the hook: start ``mcp-router sync`` detached when a team database is configured and the last one
    started more than ``AUTO_SYNC_SECONDS`` ago. Never waits for it; its output goes to a log beside the DB."""
    if not config.team_db_url:
        return False
    now = time.time()
    last = float(get_setting(conn, AUTO_SYNC_SETTING) or 0)
    if now - last < AUTO_SYNC_SECONDS:
        return False
    set_setting(conn, AUTO_SYNC_SETTING, repr(now))
    try:
        log = os.open(db_path.with_name("team-sync.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            subprocess.Popen([sys.executable, "-m", "mcp_router", "sync", "--quiet", "--db", str(db_path)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            os.close(log)
    except OSError as exc:  # the session goes on; the next hook run tries again after the interval
        print(f"mcp-router hook: background sync not started: {exc}", file=sys.stderr)
        return False
    return True
