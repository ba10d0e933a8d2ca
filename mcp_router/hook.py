"""``mcp-router hook``: the Claude Code command hook (Stop, SubagentStop, SessionEnd; UserPromptSubmit).

``UserPromptSubmit`` goes to ``advice`` (per-prompt routing advice, within ``ADVICE_TIME_LIMIT_SECONDS``)
and ingests nothing: the prompt must reach the model without waiting.

Reads the hook payload on stdin, ingests the new part of the session's transcripts and exits 0 —
whatever happens, and within ``TIME_LIMIT_SECONDS`` — so it can never block or break a session. A
locked database or any other failure is left for the next run, which reads from the stored offsets.
When month-to-date spend crosses one of the alert thresholds it prints one hook JSON object whose
``systemMessage`` Claude Code shows to the user, once per threshold and month.

Imports only the standard library and the light parts of mcp_router: it runs on every turn.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

# typing and sqlite3 only for the type checker: importing them costs the advice hook a tenth of its time
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any


TIME_LIMIT_SECONDS = 10
ADVICE_TIME_LIMIT_SECONDS = 3
BUSY_TIMEOUT_SECONDS = 2.0


class _TimeUp(Exception):
    pass


def main(argv: list[str]) -> int:
    outcome = "the next run catches up"
    try:
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, _raise_time_up)
            signal.alarm(TIME_LIMIT_SECONDS)
        from .config import db_path_from_argv

        stdin_text = sys.stdin.read()
        payload = json.loads(stdin_text) if stdin_text.strip() else {}
        if isinstance(payload, dict) and payload.get("hook_event_name") == "UserPromptSubmit":
            outcome = "no advice for this prompt"
            if hasattr(signal, "SIGALRM"):
                signal.alarm(ADVICE_TIME_LIMIT_SECONDS)
            answer = advise(payload, db_path_from_argv(argv))
            if answer:
                print(json.dumps(answer))
            return 0
        message = run(stdin_text, db_path_from_argv(argv))
        if message:
            print(json.dumps({"systemMessage": message}))
    except _TimeUp:
        print(f"mcp-router hook: out of time; {outcome}", file=sys.stderr)
    except Exception as exc:  # never let a hook break the session
        print(f"mcp-router hook: {type(exc).__name__}: {exc}; {outcome}", file=sys.stderr)
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
    return 0


def _raise_time_up(signum: int, frame: Any) -> None:
    raise _TimeUp()


def advise(payload: dict[str, Any], db_path: Path) -> dict[str, Any] | None:
    """The advice for a ``UserPromptSubmit`` payload, if any is due."""
    from .advice import advise
    from .config import Config

    return advise(payload, Config.load(), db_path)


def run(stdin_text: str, db_path: Path) -> str | None:
    """Ingest what the payload points at; returns a budget alert to show, if one is due."""
    from .config import Config
    from .ledger import PromptDecider, ingest_file, ingest_session
    from .pricing import Catalog
    from .store import connect

    payload = json.loads(stdin_text) if stdin_text.strip() else {}
    if not isinstance(payload, dict):
        raise ValueError("hook payload is not a JSON object")
    config = Config.load()
    catalog = Catalog.load(config.pricing)
    conn = connect(db_path, timeout=BUSY_TIMEOUT_SECONDS)
    decider = PromptDecider(conn, config, defer=True)  # routing the new prompt would triple the hook's time
    try:
        transcript = payload.get("transcript_path")
        if isinstance(transcript, str) and transcript:
            ingest_session(conn, Path(transcript).expanduser(), catalog, decider)
        agent_transcript = payload.get("agent_transcript_path")
        if isinstance(agent_transcript, str) and agent_transcript:
            ingest_file(conn, Path(agent_transcript).expanduser(), catalog, decider)
        alert = budget_alert(conn, config)
        if config.team_db_url:
            from .sync import start_in_background

            start_in_background(conn, config, db_path)
        return alert
    finally:
        conn.close()
        decider.decide_in_background(db_path)


def budget_alert(conn: sqlite3.Connection, config: Any) -> str | None:
    """The highest newly crossed alert threshold this month, recorded so it is said only once."""
    from .budget import status

    current = status(conn, config)
    fraction = current.fraction_used
    if fraction is None:
        return None
    crossed = [t for t in config.alert_thresholds if fraction >= t]
    if not crossed:
        return None
    threshold = max(crossed)
    inserted = conn.execute(
        "INSERT OR IGNORE INTO budget_alerts (month, threshold, ts) VALUES (?, ?, ?)",
        (current.month, threshold, time.time()),
    ).rowcount
    for lower in crossed:  # a jump straight past several thresholds is one message
        conn.execute("INSERT OR IGNORE INTO budget_alerts (month, threshold, ts) VALUES (?, ?, ?)",
                     (current.month, lower, time.time()))
    if not inserted:
        return None
    return (
        f"mcp-router: ${current.month_to_date_usd:,.2f} spent in {current.month}, "
        f"{fraction:.0%} of the ${current.monthly_cap_usd:,.2f} monthly cap"
        + (" — cap reached: delegation is paused" if not current.allowed else "")
        + ". `mcp-router report` shows where it went."
    )
