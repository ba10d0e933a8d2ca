"""The last report, kept beside the database and given again while nothing it was built from has changed.

A report with nothing new to ingest reads tens of thousands of rollup rows and prompts again; the cache turns
that into one small file read. What a report is built from, and so the cache key:

- the database: its file and its write-ahead log, by device, inode, size, modification and change time
  (every commit appends to the log; a checkpoint rewrites the file; a copy with `cp -p` or a `touch -r` sets
  the modification time back, never the change time). The log is checkpointed first, so the key a report is
  stored under is the one the next run sees, not one the closing connection's checkpoint changes;
- the period, grouping and time zone as parsed, today's date there (a period is cut at today), the machine's
  time zone (session start times are shown in it), the home folder (paths under it are shown as ~), the
  configuration as loaded, and the code and data files of this package (an upgrade or an edited price
  changes them).

The budget section depends on the time of day (its month projection), so it is computed fresh every time.
A report is stored only when the database did not change while it was built. The file holds digests of the key
(the configuration may hold a password) and of the report, and is believed only when it is a regular file of
this user that nobody else can write.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config

_PACKAGE = os.path.dirname(__file__)
_FORMAT = 2  # the file layout; a change of what a report holds changes the code files, so the key


def cached_report(conn: sqlite3.Connection, spec: Any, config: Config,
                  build: Callable[[], dict[str, Any]], budget: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The report ``build()`` gives for ``spec`` on this database: the stored one while its key holds (with
    ``budget()`` as its budget section), else built, and stored when the database stayed unchanged meanwhile."""
    db = _database_file(conn)
    if db is None:
        return build()
    _checkpoint(conn)
    version = _data_version(conn)
    key = _key(db, spec, config)
    cache = Path(db + ".report-cache")
    stored = _read(cache, key)
    if stored is not None:
        stored["budget"] = budget()
        return stored
    report = build()
    # Another connection's commit changes data_version however coarse the file system's clock is (a commit
    # and a checkpoint within one tick of it can leave size and times as they were).
    if _data_version(conn) == version and json.dumps(_database_state(db)) == json.dumps(key[0]):
        _write(cache, key, report)
    return report


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _database_file(conn: sqlite3.Connection) -> str | None:
    for _, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(path) or None  # "" for an in-memory database
    return None


def _checkpoint(conn: sqlite3.Connection) -> None:
    """Empty the write-ahead log when no other connection is reading, without waiting for one that is."""
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError:
        pass  # busy: the log keeps its frames and is part of the key
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def _database_state(db: str) -> list[Any]:
    state: list[Any] = []
    for path in (db, db + "-wal"):
        try:
            facts = os.stat(path)
        except FileNotFoundError:
            state.append(None)
            continue
        # An empty log holds nothing: it is created on opening and removed on closing.
        state.append([facts.st_dev, facts.st_ino, facts.st_size, facts.st_mtime_ns, facts.st_ctime_ns]
                     if facts.st_size else None)
    return state


def _key(db: str, spec: Any, config: Config) -> list[Any]:
    zone = ZoneInfo(spec.timezone)
    code = []
    for folder in (_PACKAGE, os.path.join(_PACKAGE, "data")):
        with os.scandir(folder) as entries:
            code.extend(sorted((entry.name, entry.stat().st_mtime_ns, entry.stat().st_size) for entry in entries
                               if entry.is_file() and not entry.name.endswith(".pyc")))
    return [_database_state(db), _FORMAT, repr(spec), datetime.now(zone).date().isoformat(),
            [os.environ.get("TZ"), time.tzname, time.timezone, time.altzone, os.path.expanduser("~")], repr(config),
            code]


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def _read(cache: Path, key: list[Any]) -> dict[str, Any] | None:
    try:
        handle = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW)
        with open(handle, "rb") as source:
            facts = os.fstat(source.fileno())
            if not stat.S_ISREG(facts.st_mode) or facts.st_uid != os.geteuid() or facts.st_mode & 0o077:
                return None  # another user could have put any numbers in it
            head, _, body = source.read().partition(b"\n")
        if head != _digest(json.dumps(key).encode()) + b" " + _digest(body):
            return None
        report = json.loads(body)
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _write(cache: Path, key: list[Any], report: dict[str, Any]) -> None:
    """Write the file whole (a reader never sees half of it), private like the database, under a new name (a
    link planted at a predictable one is not written through)."""
    body = json.dumps(report).encode()
    try:
        handle, temporary = tempfile.mkstemp(prefix=cache.name + ".", dir=cache.parent)
    except OSError:
        return
    try:
        with open(handle, "wb") as out:
            out.write(_digest(json.dumps(key).encode()) + b" " + _digest(body) + b"\n" + body)
        os.replace(temporary, cache)
    except OSError:
        with suppress(OSError):
            os.unlink(temporary)
