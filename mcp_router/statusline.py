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

        print(line(sys.stdin.read() if not sys.stdin.isatty() else "", db_path_from_argv(argv)))
    except Exception:
        print("mcp-router: no data")
    return 0


def line(stdin_text: str, db_path: Path) -> str:
    from .budget import month_start, status
    from .config import Config
    from .store import connect

    payload = json.loads(stdin_text) if stdin_text.strip() else {}
    config = Config.load()
    conn = connect(db_path, timeout=0.5)
    now = datetime.now().astimezone()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    today = conn.execute("SELECT TOTAL(cost_usd) FROM usage_rollup WHERE bucket >= ?", (midnight // 900,)).fetchone()[0]
    saved = conn.execute("SELECT TOTAL(saved_usd) FROM delegations WHERE ts >= ? AND outcome = 'ok'",
                         (month_start(now).timestamp(),)).fetchone()[0]
    budget = status(conn, config, now)
    parts = []
    session_cost = (payload.get("cost") or {}).get("total_cost_usd") if isinstance(payload, dict) else None
    if isinstance(session_cost, (int, float)):
        parts.append(f"session ${session_cost:.2f}")
    parts.append(f"today ${today:.2f}")
    month = f"month ${budget.month_to_date_usd:.2f}"
    if budget.monthly_cap_usd > 0:
        cap = budget.monthly_cap_usd
        month += (f"/${cap:,.0f}" if cap.is_integer() else f"/${cap:,.2f}") + ("" if budget.allowed else " CAP REACHED")
    parts.append(month)
    if saved:
        parts.append(f"saved ${saved:.2f}")
    return " · ".join(parts)
