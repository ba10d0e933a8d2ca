"""What routing advice did, for the report: advice given and followed per category, guarded delegations, and
what the haiku-reader agent saved.

Advice is *followed* when, within the same turn (before the session's next prompt), the model delegated
(a ``delegate_to_haiku`` call or a haiku-reader run) after "delegate" advice, or the user switched to Opus
(``/model opus`` as the next prompt) after "model" advice. A haiku-reader run saves what its tokens would have
cost on the session's main model (the model of most of its main-chain responses), less what they cost.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .pricing import Catalog, Usage, cost_usd
from .store import Queryable

READER = "%haiku-reader"  # the plugin's agent is "mcp-router:haiku-reader"; copied by hand, "haiku-reader"
_NEXT_PROMPT = ("COALESCE((SELECT MIN(p.ts) FROM prompts p WHERE p.session_id = a.session_id AND p.ts > a.ts),"
                " 1e18)")
_FOLLOWED = f"""
CASE a.kind
WHEN 'delegate' THEN EXISTS (
    SELECT 1 FROM tool_results t WHERE t.session_id = a.session_id AND t.ts > a.ts AND t.ts < {_NEXT_PROMPT}
    AND t.tool_name LIKE '%delegate_to_haiku')
  OR EXISTS (
    SELECT 1 FROM usage_events u WHERE u.session_id = a.session_id AND u.ts > a.ts AND u.ts < {_NEXT_PROMPT}
    AND u.agent_type IS NOT NULL AND u.agent_type LIKE '{READER}')
ELSE EXISTS (  -- the /model line is itself the next prompt: at most one prompt between the advice and it
    SELECT 1 FROM advice_events m WHERE m.session_id = a.session_id AND m.kind = 'model_change'
    AND m.category LIKE '%opus%' AND m.ts > a.ts
    AND (SELECT COUNT(*) FROM prompts p WHERE p.session_id = a.session_id AND p.ts > a.ts AND p.ts < m.ts) <= 1)
END"""


def measured_advice(conn: Queryable, start: float, end: float) -> dict[str, Any]:
    """``{"given", "followed", "by_category": [{category, kind, given, followed}], "guarded": {category: n}}``."""
    rows = conn.execute(
        f"SELECT a.category, a.kind, COUNT(*), SUM(CASE WHEN {_FOLLOWED} THEN 1 ELSE 0 END) FROM advice_events a"
        " WHERE a.kind IN ('delegate', 'model') AND a.ts >= ? AND a.ts < ? GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        (start, end)).fetchall()
    guarded = conn.execute("SELECT category, COUNT(*) FROM advice_events WHERE kind = 'guarded' AND ts >= ?"
                           " AND ts < ? GROUP BY 1 ORDER BY 2 DESC, 1", (start, end)).fetchall()
    return {
        "given": sum(r[2] for r in rows), "followed": int(sum(r[3] for r in rows)),
        "by_category": [{"category": r[0], "kind": r[1], "given": r[2], "followed": int(r[3])} for r in rows],
        "guarded": {category: count for category, count in guarded},
    }


def haiku_reader(conn: Queryable, start: float, end: float, catalog: Catalog) -> dict[str, Any]:
    """Runs of the haiku-reader agent, their cost and what they saved against each session's main model."""
    rows = conn.execute(
        "SELECT r.session_id, COUNT(DISTINCT r.agent_id), COALESCE(SUM(r.cost_usd), 0.0), SUM(r.input_tokens),"
        " SUM(r.output_tokens), SUM(r.cache_read_tokens), SUM(r.cache_creation_tokens),"
        " SUM(r.cache_creation_1h_tokens), (SELECT m.model FROM usage_rollup m WHERE m.session_id = r.session_id"
        "  AND m.agent = 'main' GROUP BY m.model ORDER BY SUM(m.messages) DESC, m.model LIMIT 1)"
        " FROM usage_events r WHERE r.agent_type IS NOT NULL AND r.agent_type LIKE ? AND r.ts >= ? AND r.ts < ?"
        " GROUP BY r.session_id",
        (READER, start, end)).fetchall()
    runs, cost, saved = 0, 0.0, 0.0
    for _, session_runs, session_cost, *tokens, main_model in rows:
        runs += session_runs
        cost += session_cost
        info = catalog.find(main_model) if main_model else None
        if info is not None:  # summed usage at base rates: the long-prompt switch is per request
            saved += max(0.0, cost_usd(replace(info, long_prompt=None), Usage(*tokens)) - session_cost)
    return {"runs": runs, "cost_usd": round(cost, 6), "saved_usd": round(saved, 6)}
