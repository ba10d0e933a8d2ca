"""Feedback on delegations, and the promotions it drives.

When a category's last ``WINDOW`` or more rated delegations are bad more than ``MAX_BAD_RATE`` of the
time, the category is promoted one tier (a ``category_overrides`` row with source ``auto``), which
the router reads on its next load. ``reset`` removes an override: the user has the last word.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from .config import TIERS
from .store import Queryable, get_setting, set_setting, transaction

WINDOW = 20
MAX_BAD_RATE = 0.05
RATINGS = ("good", "bad")
_SINCE = "feedback_since:"  # settings key: ratings before this time no longer count for the category


def record_feedback(conn: sqlite3.Connection, delegation_id: str, rating: str, note: str = "") -> dict[str, Any]:
    """Store a rating; returns it with any promotion it caused."""
    if rating not in RATINGS:
        raise ValueError(f"rating must be 'good' or 'bad', got {rating!r}")
    with transaction(conn):
        row = conn.execute("SELECT category, model FROM delegations WHERE id = ?", (delegation_id,)).fetchone()
        if row is None:
            shown = delegation_id if len(delegation_id) <= 80 else delegation_id[:80] + "…"
            raise ValueError(f"no delegation with id {shown!r} (delegate_to_haiku returns delegation_id)")
        category = row[0] or "unknown"
        conn.execute("INSERT INTO feedback (delegation_id, ts, category, rating, note) VALUES (?, ?, ?, ?, ?)",
                     (delegation_id, time.time(), category, rating, note))
        promoted = _promote_if_needed(conn, category, _tier_of(row[1]))
    return {"delegation_id": delegation_id, "category": category, "rating": rating, "promoted_to": promoted}


def _tier_of(model: str | None) -> str:
    model = (model or "").lower()
    return next((tier for tier in TIERS if tier in model), "haiku")


def _promote_if_needed(conn: sqlite3.Connection, category: str, delegated_tier: str) -> str | None:
    since = float(get_setting(conn, _SINCE + category) or 0)
    ratings = [r[0] for r in conn.execute(
        "SELECT rating FROM feedback WHERE category = ? AND ts > ? ORDER BY ts DESC, id DESC LIMIT ?",
        (category, since, WINDOW))]
    if len(ratings) < WINDOW or ratings.count("bad") / len(ratings) <= MAX_BAD_RATE:
        return None
    current = conn.execute("SELECT tier FROM category_overrides WHERE category = ?", (category,)).fetchone()
    tier = current[0] if current else delegated_tier
    if tier == "opus":
        return None
    promoted = TIERS[TIERS.index(tier) + 1]
    conn.execute(
        "INSERT OR REPLACE INTO category_overrides (category, tier, source, reason, ts) VALUES (?, ?, 'auto', ?, ?)",
        (category, promoted, f"{ratings.count('bad')} of the last {len(ratings)} delegations rated bad", time.time()),
    )
    set_setting(conn, _SINCE + category, repr(time.time()))  # the new tier starts a fresh record
    return promoted


def reset(conn: sqlite3.Connection, category: str) -> bool:
    """Remove a category's override; returns whether there was one. Older ratings no longer count.
    Raises ValueError for a category that neither the routing policy nor the database knows."""
    from .routing import load_policy

    known = set(load_policy()["categories"]) | {row[0] for row in conn.execute(
        "SELECT category FROM category_overrides UNION SELECT category FROM feedback")}
    if category not in known:
        import difflib

        close = difflib.get_close_matches(category, sorted(known), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}"
        raise ValueError(f"unknown category {category!r}; {hint}")
    set_setting(conn, _SINCE + category, repr(time.time()))
    return conn.execute("DELETE FROM category_overrides WHERE category = ?", (category,)).rowcount > 0


def category_quality(conn: Queryable) -> list[dict[str, Any]]:
    """Per category: how many delegations were rated, how many bad, and any override in force."""
    overrides = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT category, tier, source FROM category_overrides")}
    rows = conn.execute("SELECT category, COUNT(*), SUM(CASE WHEN rating = 'bad' THEN 1 ELSE 0 END) FROM feedback"
                        " GROUP BY category ORDER BY category").fetchall()
    return [
        {"category": r[0], "rated": r[1], "bad": r[2] or 0, "bad_rate": round((r[2] or 0) / r[1], 4),
         "override_tier": overrides.get(r[0], (None,))[0]}
        for r in rows
    ]
