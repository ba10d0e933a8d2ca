"""``mcp-router statusline``: one short line for Claude Code's statusLine.

Claude Code runs it after every message with a JSON object on stdin (session_id, model, cost, …).
It prints this session's cost (from that JSON), today's and the month's spend from the ledger, the
cap, and what delegation saved this month. Standard library only; any failure prints a short line
and exits 0, because a status line must never show a traceback.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path


def main(argv: list[str]) -> int:
    try:
        from .config import db_path_from_argv

        stdin = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
        print(line(stdin.decode("utf-8-sig", errors="replace"), db_path_from_argv(argv)))
    except Exception:  # a status line never shows a traceback (config errors are shown by ``line``)
        print("mcp-router: no data")
    return 0


def _hint(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 80 else text[:79] + "…"


def _session_cost(stdin_text: str) -> float | None:
    """Claude Code's cost of this session, or None when the JSON is missing, malformed or not an amount of money."""
    try:
        payload = json.loads(stdin_text)
    except ValueError:
        return None
    cost = payload.get("cost") if isinstance(payload, dict) else None
    value = cost.get("total_cost_usd") if isinstance(cost, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value < 1e9 else None  # NaN and infinities fail both comparisons or the bound


def line(stdin_text: str, db_path: Path) -> str:
    from .budget import month_start, status
    from .config import Config, default_config_path
    from .errors import ConfigError
    from .store import connect

    try:
        config, config_hint = Config.load(), ""
    except ConfigError as exc:  # shown, not hidden: the cap and prices in use are the defaults until it is fixed
        path = default_config_path()
        config, config_hint = Config(), f"config error: {_hint(ConfigError(str(exc).replace(str(path), path.name)))}"
    conn = connect(db_path, timeout=0.5)
    now = datetime.now().astimezone()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    today = conn.execute("SELECT TOTAL(cost_usd) FROM usage_rollup WHERE bucket >= ?", (midnight // 900,)).fetchone()[0]
    saved = conn.execute("SELECT TOTAL(saved_usd) FROM delegations WHERE ts >= ? AND outcome = 'ok'",
                         (month_start(now).timestamp(),)).fetchone()[0]
    budget = status(conn, config, now)
    parts = []
    session_cost = _session_cost(stdin_text)
    if session_cost is not None:
        parts.append(f"session ${session_cost:.2f}")
    parts.append(f"today ${today:.2f}")
    month = f"month ${budget.month_to_date_usd:.2f}"
    if budget.unpriced_messages:
        month += f" +{budget.unpriced_messages:,} unpriced"
    if budget.monthly_cap_usd > 0:
        cap = budget.monthly_cap_usd
        month += (f"/${cap:,.0f}" if cap.is_integer() else f"/${cap:,.2f}") + ("" if budget.allowed else " CAP REACHED")
    parts.append(month)
    if saved:
        parts.append(f"saved ${saved:.2f}")
    if config_hint:
        parts.append(config_hint)
    return " · ".join(parts)
