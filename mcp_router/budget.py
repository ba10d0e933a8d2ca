"""The monthly budget: month-to-date spend against the cap.

Month-to-date spend is everything mcp-router knows was spent since the first of the month (local
time): Claude Code's own usage from the ledger, plus the server's cost records (track_cost calls and
delegations, a delegation counting its reservation until it settles). The cap is the one set with
``mcp-router budget --set-monthly`` (kept in the database), else ``monthly_cap_usd`` from the config;
0 means no cap.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from .config import Config
from .store import get_setting, set_setting

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
    ledger = conn.execute("SELECT TOTAL(cost_usd) FROM usage_events WHERE ts >= ?", (since,)).fetchone()[0]
    server = conn.execute(
        "SELECT TOTAL(CASE state WHEN 'reserved' THEN reserved_usd WHEN 'settled' THEN cost_usd ELSE 0 END)"
        " FROM cost_records WHERE ts >= ?",
        (since,),
    ).fetchone()[0]
    return float(ledger + server)


def monthly_cap_usd(conn: sqlite3.Connection, config: Config) -> float:
    stored = get_setting(conn, CAP_SETTING)
    return float(stored) if stored is not None else config.monthly_cap_usd


def set_monthly_cap(conn: sqlite3.Connection, usd: float) -> None:
    if usd < 0:
        raise ValueError(f"the monthly cap must be 0 (no cap) or more, got {usd}")
    set_setting(conn, CAP_SETTING, repr(float(usd)))


def status(conn: sqlite3.Connection, config: Config, now: datetime | None = None) -> BudgetStatus:
    return BudgetStatus(
        month=month_start(now).strftime("%Y-%m"),
        month_to_date_usd=month_to_date_usd(conn, now),
        monthly_cap_usd=monthly_cap_usd(conn, config),
    )
