"""The monthly budget: month-to-date spend against the cap.

Month-to-date spend is everything mcp-router knows was spent since the first of the month (local
time): Claude Code's own usage from the ledger, plus the server's cost records (track_cost calls and
delegations, a delegation counting its reservation until it settles, or until it expires when the
server died mid-call). A voided record stays, marked, and counts no more. The cap is the one set with
``mcp-router budget --set-monthly`` (kept in the database), else ``monthly_cap_usd`` from the config;
0 means no cap.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .config import MAX_CAP_USD, Config
from .errors import BudgetExceeded, ConfigError
from .pricing import Catalog, ModelInfo, Usage, cost_usd
from .store import Queryable, get_setting, set_setting, transaction

CAP_SETTING = "monthly_cap_usd"
MIN_CAP_USD = 0.01  # a cap below a cent cannot be shown or compared in the cents we print


@dataclass(frozen=True)
class BudgetStatus:
    month: str  # YYYY-MM
    month_to_date_usd: float
    monthly_cap_usd: float  # 0 = no cap
    unpriced_messages: int = 0  # this month's responses of models without a price: not in month_to_date_usd

    @property
    def allowed(self) -> bool:
        return self.monthly_cap_usd <= 0 or self.month_to_date_usd < self.monthly_cap_usd

    @property
    def fraction_used(self) -> float | None:
        return self.month_to_date_usd / self.monthly_cap_usd if self.monthly_cap_usd > 0 else None


def month_start(now: datetime | None = None) -> datetime:
    """Midnight on the first of ``now``'s month, in ``now``'s zone if it has one, else local time (aware)."""
    now = now if now is not None and now.tzinfo is not None else (now or datetime.now()).astimezone()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_to_date_usd(conn: Queryable, now: datetime | None = None) -> float:
    since = month_start(now).timestamp()
    ledger = conn.execute("SELECT COALESCE(SUM(cost_usd), 0.0) FROM usage_rollup WHERE bucket >= ?",
                          (since // 900,)).fetchone()[0]
    server = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN state = 'reserved' AND COALESCE(expires_ts, ts + 120) > ? THEN reserved_usd"
        " WHEN state = 'settled' THEN cost_usd ELSE 0 END), 0.0) FROM cost_records WHERE ts >= ? AND void_ts IS NULL",
        (now.timestamp() if now else time.time(), since),
    ).fetchone()[0]
    return float(ledger + server)


def unpriced_messages(conn: Queryable, now: datetime | None = None) -> int:
    since = month_start(now).timestamp()
    return int(conn.execute("SELECT COALESCE(SUM(unpriced_messages), 0) FROM usage_rollup WHERE bucket >= ?",
                            (since // 900,)).fetchone()[0])


def monthly_cap_usd(conn: Queryable, config: Config) -> float:
    stored = get_setting(conn, CAP_SETTING)
    if stored is None:
        return config.monthly_cap_usd
    try:
        cap = float(stored)
    except ValueError:
        cap = math.nan
    if not 0 <= cap <= MAX_CAP_USD:  # NaN too: an older version stored what it was given
        raise ConfigError(f"the stored monthly cap {stored!r} is not a number of USD: set it again with"
                          " `mcp-router budget --set-monthly USD`")
    return cap


def set_monthly_cap(conn: Queryable, usd: float) -> None:
    if not 0 <= usd <= MAX_CAP_USD:  # NaN too
        raise ValueError(f"the monthly cap must be 0 (no cap) to {MAX_CAP_USD:,.0f} USD, got {usd}")
    if 0 < usd < MIN_CAP_USD:
        raise ValueError(f"the monthly cap must be at least {MIN_CAP_USD} USD (a cent), or 0 for no cap; got {usd}")
    set_setting(conn, CAP_SETTING, repr(float(usd)))


def status(conn: Queryable, config: Config, now: datetime | None = None) -> BudgetStatus:
    return BudgetStatus(
        month=month_start(now).strftime("%Y-%m"),
        month_to_date_usd=month_to_date_usd(conn, now),
        monthly_cap_usd=monthly_cap_usd(conn, config),
        unpriced_messages=unpriced_messages(conn, now),
    )


def reserve(conn: sqlite3.Connection, config: Config, amount_usd: float, *, model: str, delegation_id: str,
            ttl_seconds: float) -> int:
    """Hold ``amount_usd`` of the month's budget for a call about to be made; ``BudgetExceeded`` if it won't fit.

    The check and the hold are one write transaction, so concurrent callers can never together
    commit more than the cap. The hold lapses after ``ttl_seconds`` if it is never settled or released.
    """
    with transaction(conn):
        spent = month_to_date_usd(conn)
        cap = monthly_cap_usd(conn, config)
        if cap > 0 and spent + amount_usd > cap:
            raise BudgetExceeded(
                f"monthly cap reached: ${spent:,.4f} of ${cap:,.2f} spent this month and this call may cost up to "
                f"${amount_usd:,.4f}; raise it with `mcp-router budget --set-monthly USD`, or do the task yourself"
            )
        now = time.time()
        cursor = conn.execute(
            "INSERT INTO cost_records (ts, source, model, reserved_usd, state, delegation_id, expires_ts, pid)"
            " VALUES (?, 'delegation', ?, ?, 'reserved', ?, ?, ?)",
            (now, model, amount_usd, delegation_id, now + ttl_seconds, os.getpid()),
        )
    return int(cursor.lastrowid or 0)


def settle(conn: sqlite3.Connection, record_id: int, cost_usd: float, usage: Usage) -> None:
    conn.execute(
        "UPDATE cost_records SET state = 'settled', cost_usd = ?, input_tokens = ?, output_tokens = ?,"
        " cache_read_tokens = ?, cache_creation_tokens = ? WHERE id = ?",
        (cost_usd, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens,
         record_id),
    )


def release(conn: sqlite3.Connection, record_id: int) -> None:
    conn.execute("UPDATE cost_records SET state = 'released' WHERE id = ?", (record_id,))


def expire_abandoned(conn: sqlite3.Connection) -> int:
    """Mark expired the reservations past their time and those of servers no longer running (at start-up)."""
    now = time.time()
    rows = conn.execute("SELECT id, pid, expires_ts FROM cost_records WHERE state = 'reserved'").fetchall()
    dead = [row[0] for row in rows if (row[2] or 0) <= now or not _running(row[1])]
    conn.executemany("UPDATE cost_records SET state = 'expired' WHERE id = ? AND state = 'reserved'",
                     [(record_id,) for record_id in dead])
    return len(dead)


def _running(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# One track_cost record is one task's model calls. Claude Code compacts a long session well before a thousand turns,
# and a thousand full-window Opus calls is already a few thousand dollars: more in one record is a slip, not a task.
MAX_REQUESTS_PER_RECORD = 1_000
DEFAULT_CONTEXT_WINDOW = 200_000
DEFAULT_MAX_OUTPUT = 64_000


def check_usage(info: ModelInfo, usage: Usage, requests: int) -> None:
    """``ValueError`` for token counts ``requests`` calls to the model could not have used."""
    if not 1 <= requests <= MAX_REQUESTS_PER_RECORD:
        raise ValueError(f"requests must be between 1 and {MAX_REQUESTS_PER_RECORD:,}, got {requests:,}")
    window = info.context_window or DEFAULT_CONTEXT_WINDOW
    max_output = info.max_output_tokens or DEFAULT_MAX_OUTPUT
    read = usage.input_tokens + usage.cache_read_tokens + usage.cache_creation_tokens
    calls = "1 call" if requests == 1 else f"{requests:,} calls"
    if read > window * requests:
        raise ValueError(
            f"{read:,} input tokens (input + cache read + cache write) is more than {calls} to {info.id} can read "
            f"({window:,}-token context window each); check the numbers, or pass `requests` if this records several "
            "calls")
    if usage.output_tokens > max_output * requests:
        raise ValueError(
            f"{usage.output_tokens:,} output tokens is more than {calls} to {info.id} can write ({max_output:,} "
            "each); check the numbers, or pass `requests` if this records several calls")
    if usage.cache_creation_1h_tokens > usage.cache_creation_tokens:
        raise ValueError("cache_creation_1h_tokens cannot exceed cache_creation_tokens")


def record_cost(conn: sqlite3.Connection, config: Config, catalog: Catalog, model: str, usage: Usage,
                task_type: str = "", requests: int = 1) -> dict[str, Any]:
    """``track_cost``: price and record spend made outside Claude Code's transcripts."""
    info = catalog.get(model)
    check_usage(info, usage, requests)
    cost = cost_usd(info, usage)
    conn.execute(
        "INSERT INTO cost_records (ts, source, model, input_tokens, output_tokens, cache_read_tokens,"
        " cache_creation_tokens, task_type, cost_usd, state) VALUES (?, 'track_cost', ?, ?, ?, ?, ?, ?, ?, 'settled')",
        (time.time(), info.id, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
         usage.cache_creation_tokens, task_type, cost),
    )
    current = status(conn, config)
    return {"cost_usd": round(cost, 9), "month_to_date_usd": round(current.month_to_date_usd, 9),
            "monthly_cap_usd": current.monthly_cap_usd, "allowed": current.allowed}


def recent_costs(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The latest cost records, newest first (what ``mcp-router costs`` lists)."""
    rows = conn.execute(
        "SELECT id, ts, source, model, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,"
        " task_type, state, COALESCE(cost_usd, reserved_usd) AS usd, void_ts FROM cost_records"
        " ORDER BY ts DESC, id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(row) for row in rows]


def void_cost(conn: sqlite3.Connection, record_id: int) -> dict[str, Any]:
    """Mark a cost record void: it is kept, shown as void, and no longer counts as spend."""
    row = conn.execute("SELECT void_ts FROM cost_records WHERE id = ?", (record_id,)).fetchone()
    if row is None:
        raise ValueError(f"no cost record {record_id}; `mcp-router costs` lists them")
    if row[0] is not None:
        raise ValueError(f"cost record {record_id} is already void")
    conn.execute("UPDATE cost_records SET void_ts = ? WHERE id = ?", (time.time(), record_id))
    return dict(conn.execute("SELECT * FROM cost_records WHERE id = ?", (record_id,)).fetchone())
