"""The team's monthly cap: a delegation on any machine reserves against the team's month to date.

Set with ``mcp-router budget --team --set-monthly USD`` (the ``settings`` table of the team database). The
team month to date is ``budget.month_to_date_usd`` over the team database: synced usage plus every
machine's cost records, which is where reservations go. The check and the hold are one transaction
under an advisory lock, so delegations from any number of machines at once never commit more than the
cap; a reservation is the call's maximum cost, settled to the real cost after it. When the team
database cannot be reached (or has no driver), the delegation goes ahead against this machine's cap
alone, and says so; its cost record reaches the team database with the next sync.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from .budget import month_to_date_usd, monthly_cap_usd
from .config import Config
from .errors import BudgetExceeded, TeamDBError
from .pricing import Usage

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 3
WAIT_SECONDS = 15  # for the budget lock and each statement: far above a reservation's milliseconds under load


class TeamBudget:
    """One delegation's hold on the team cap: ``reserve``, then ``settle`` or ``release``."""

    def __init__(self, conn: sqlite3.Connection, config: Config):
        self.conn = conn
        self.config = config
        self.pg: Any = None
        self.key: tuple[str, str, int] | None = None  # the team cost record's: user, ledger, local id

    def reserve(self, record_id: int, amount_usd: float, *, model: str, delegation_id: str,
                ttl_seconds: float) -> str:
        """Hold ``amount_usd`` for local cost record ``record_id`` (lapsing after ``ttl_seconds`` unless settled);
        ``BudgetExceeded`` over the team cap. Returns "" or, when the team cap could not be checked, the sentence
        saying so."""
        if not self.config.team_db_url:
            return ""
        from .sync import ledger_id
        from .team import BUDGET_LOCK, TeamConnection, connect, identity

        try:
            self.pg = connect(self.config, timeout=CONNECT_TIMEOUT_SECONDS,
                              wait_seconds=WAIT_SECONDS)
            user, machine = identity(self.config)
            self.key = (user, ledger_id(self.conn), record_id)
            with self.pg.transaction():
                self.pg.execute("SELECT pg_advisory_xact_lock(%s)", (BUDGET_LOCK,))
                team = TeamConnection(self.pg)
                clock = team.now()
                spent, cap = month_to_date_usd(team, clock), monthly_cap_usd(team, Config())
                if cap > 0 and spent + amount_usd > cap:
                    raise BudgetExceeded(
                        f"team monthly cap reached: ${spent:,.4f} of ${cap:,.2f} spent by the team this month and"
                        f" this call may cost up to ${amount_usd:,.4f}; the team's admin can raise it with"
                        " `mcp-router budget --team --set-monthly USD`, or do the task yourself")
                now = clock.timestamp()
                self.pg.execute(
                    'INSERT INTO cost_records ("user", ledger_id, local_id, machine, ts, source, model, reserved_usd,'
                    " state, delegation_id, expires_ts) VALUES (%s, %s, %s, %s, %s, 'delegation', %s, %s, 'reserved',"
                    ' %s, %s) ON CONFLICT ("user", ledger_id, local_id) DO NOTHING',
                    (*self.key, machine, now, model, amount_usd, delegation_id, now + ttl_seconds))
        except TeamDBError as exc:
            self._close()
            note = f"team cap not checked ({exc}): this machine's cap applied; the next sync reports this call"
            log.warning("%s", note)
            return note
        except BudgetExceeded:
            self._close()
            raise
        except Exception as exc:  # the connection dropped mid-way: as unreachable
            self._close()
            note = f"team cap not checked ({type(exc).__name__}): this machine's cap applied"
            log.warning("%s", note)
            return note
        return ""

    def settle(self, cost_usd: float, usage: Usage) -> None:
        self._finish("UPDATE cost_records SET state = 'settled', cost_usd = %s, input_tokens = %s, output_tokens = %s,"
                     ' cache_read_tokens = %s, cache_creation_tokens = %s WHERE "user" = %s AND ledger_id = %s'
                     " AND local_id = %s",
                     (cost_usd, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                      usage.cache_creation_tokens))

    def release(self) -> None:
        self._finish("UPDATE cost_records SET state = 'released' WHERE \"user\" = %s AND ledger_id = %s"
                     " AND local_id = %s", ())

    def _finish(self, sql: str, values: tuple) -> None:
        if self.pg is None or self.key is None:
            return
        try:
            self.pg.execute(sql, (*values, *self.key))
        except Exception as exc:  # the local record has it; sync sends it
            log.warning("team cost record not updated (%s); the next sync will", type(exc).__name__)
        finally:
            self._close()

    def _close(self) -> None:
        if self.pg is not None:
            self.pg.close()
            self.pg = None
