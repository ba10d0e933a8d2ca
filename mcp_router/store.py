"""The SQLite usage store: one file, WAL mode, safe for several writer processes at once.

``connect`` opens (creating the file and its folder if needed), sets WAL and a busy timeout, and
brings the schema up to date. The schema itself lives in ``migrations.py``; because importing
sqlite-utils costs more than the whole hook may take, ``connect`` only imports it when the file's
``PRAGMA user_version`` says migrations are pending.

Usage rows are keyed on (message_id, request_id). When the same response is written more than once,
the copy with the most tokens wins, and a main-chain copy beats a sidechain copy of the same size:
early copies of a streamed response can carry a partial ``output_tokens``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

from .errors import StoreError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SCHEMA_VERSION = 14  # the number of migrations in migrations.py

USAGE_COLUMNS = (
    "message_id", "request_id", "ts", "timestamp", "session_id", "project", "cwd", "git_branch",
    "is_sidechain", "agent_id", "agent_type", "model", "raw_model", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_creation_tokens", "cache_creation_5m_tokens", "cache_creation_1h_tokens",
    "web_search_requests", "total_tokens", "inference_geo", "service_tier", "speed", "cost_usd",
    "source_file", "line_no",
)

_UPSERT_USAGE = (
    f"INSERT INTO usage_events ({', '.join(USAGE_COLUMNS)}) VALUES ({', '.join('?' * len(USAGE_COLUMNS))}) "
    "ON CONFLICT(message_id, request_id) DO UPDATE SET "
    + ", ".join(f"{col} = excluded.{col}" for col in USAGE_COLUMNS[2:])
    + " WHERE excluded.total_tokens > usage_events.total_tokens"
    " OR (excluded.total_tokens = usage_events.total_tokens AND excluded.is_sidechain < usage_events.is_sidechain)"
)


class Queryable(Protocol):
    """What the report and the budget need of a database: an SQLite connection, or ``team.TeamConnection``."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...


def connect(path: str | Path, *, timeout: float = 30.0, migrate: bool = True) -> sqlite3.Connection:
    """Open the store at ``path`` in autocommit mode, ready to use.

    Raises ``StoreError`` naming the file for one that cannot be created or written, is not a SQLite
    database, or was migrated by a newer mcp-router (whose schema this version would misread).
    """
    path = Path(path).expanduser()
    try:
        if not path.exists():
            path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            # SQLite gives the -wal and -shm files the database file's mode: creating it private keeps all three so.
            with suppress(OSError):  # where it cannot be made, SQLite's own attempt below says why
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the database {path}: {_reason(exc)}") from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        _switch_to_wal(conn, timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        # Statement journals (an upsert inside a longer transaction writes one) in memory, not temp files.
        conn.execute("PRAGMA temp_store = MEMORY")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            from . import __version__

            raise StoreError(
                f"the database {path} has schema version {version}, newer than this mcp-router {__version__}"
                f" knows (version {SCHEMA_VERSION}): upgrade mcp-router, or use another --db")
        if migrate and version < SCHEMA_VERSION:
            _migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot use the database {path}: {_reason(exc)}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _reason(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return f"{text} (check the file's and its folder's permissions)"
    if "not a database" in text or "malformed" in text:
        return f"{text} (move it aside and a new one is created; the transcripts can be ingested again)"
    return text


def _switch_to_wal(conn: sqlite3.Connection, timeout: float) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite can report "locked" at once instead of
    # waiting when several processes open the new file together: retry until the timeout.
    deadline = time.monotonic() + timeout
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(conn: sqlite3.Connection) -> None:
    from sqlite_utils import Database

    from .migrations import MIGRATIONS

    # BEGIN IMMEDIATE takes the write lock, so processes opening a new file at once migrate it once.
    with transaction(conn):
        MIGRATIONS.apply(Database(conn))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def upsert_usage(conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Write usage rows (tuples in ``USAGE_COLUMNS`` order); call inside ``transaction(conn)``."""
    conn.executemany(_UPSERT_USAGE, rows)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the lock up front, so two writers never deadlock on an upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def get_setting(conn: Queryable, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def set_setting(conn: Queryable, key: str, value: str | None) -> None:
    if value is None:
        conn.execute("DELETE FROM settings WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
