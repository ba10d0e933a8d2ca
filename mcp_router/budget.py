"""The monthly budget: month-to-date spend against the cap.

Month-to-date spend is everything mcp-router knows was spent since the first of the month (local
time): Claude Code's own usage from the ledger, plus the server's cost records (track_cost calls and
delegations, a delegation counting its reservation until it settles). The cap is the one set with
``mcp-router budget --set-monthly`` (kept in the database), else ``monthly_cap_usd`` from the config;
0 means no cap.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .config import MAX_CAP_USD, Config
from .errors import BudgetExceeded, ConfigError
from .pricing import Catalog, Usage, cost_usd
from .store import get_setting, set_setting, transaction

CAP_SETTING = "monthly_cap_usd"


@dataclass(frozen=True)
class BudgetStatus:
    month: str  # YYYY-MM
    month_to_date_usd: float
    monthly_cap_usd: float  # 0 = no cap

    @property
    def allowed(self) -> bool:
        return self.monthly_cap_usd <= 0 or self.month_to_date_usd < self.monthly_cap_usd

    @property
    def fraction_used(self) -> float | None:
        return self.month_to_date_usd / self.monthly_cap_usd if self.monthly_cap_usd > 0 else None


def month_start(now: datetime | None = None) -> datetime:
    """Midnight on the first of ``now``'s month, in local time (aware)."""
    now = (now or datetime.now()).astimezone()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_to_date_usd(conn: sqlite3.Connection, now: datetime | None = None) -> float:
    since = month_start(now).timestamp()
    ledger = conn.execute("SELECT TOTAL(cost_usd) FROM usage_rollup WHERE bucket >= ?", (since // 900,)).fetchone()[0]
    server = conn.execute(
        "SELECT TOTAL(CASE state WHEN 'reserved' THEN reserved_usd WHEN 'settled' THEN cost_usd ELSE 0 END)"
        " FROM cost_records WHERE ts >= ?",
        (since,),
    ).fetchone()[0]
    return float(ledger + server)


def monthly_cap_usd(conn: sqlite3.Connection, config: Config) -> float:
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


def set_monthly_cap(conn: sqlite3.Connection, usd: float) -> None:
    if not 0 <= usd <= MAX_CAP_USD:  # NaN too
        raise ValueError(f"the monthly cap must be 0 (no cap) to {MAX_CAP_USD:,.0f} USD, got {usd}")
    set_setting(conn, CAP_SETTING, repr(float(usd)))


def status(conn: sqlite3.Connection, config: Config, now: datetime | None = None) -> BudgetStatus:
    return BudgetStatus(
        month=month_start(now).strftime("%Y-%m"),
        month_to_date_usd=month_to_date_usd(conn, now),
        monthly_cap_usd=monthly_cap_usd(conn, config),
    )


def reserve(conn: sqlite3.Connection, config: Config, amount_usd: float, *, model: str, delegation_id: str) -> int:
    """Hold ``amount_usd`` of the month's budget for a call about to be made; ``BudgetExceeded`` if it won't fit.

    The check and the hold are one write transaction, so concurrent callers can never together
    commit more than the cap.
    """
    with transaction(conn):
        spent = month_to_date_usd(conn)
        cap = monthly_cap_usd(conn, config)
        if cap > 0 and spent + amount_usd > cap:
            raise BudgetExceeded(
                f"monthly cap reached: ${spent:,.4f} of ${cap:,.2f} spent this month and this call may cost up to "
                f"${amount_usd:,.4f}; raise it with `mcp-router budget --set-monthly USD`, or do the task yourself"
            )
        cursor = conn.execute(
            "INSERT INTO cost_records (ts, source, model, reserved_usd, state, delegation_id)"
            " VALUES (?, 'delegation', ?, ?, 'reserved', ?)",
            (time.time(), model, amount_usd, delegation_id),
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


def record_cost(conn: sqlite3.Connection, config: Config, catalog: Catalog, model: str, usage: Usage,
                task_type: str = "") -> dict[str, Any]:
    """``track_cost``: price and record spend made outside Claude Code's transcripts."""
    info = catalog.get(model)
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
