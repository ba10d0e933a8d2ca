"""The guard on delegation: ``delegate_to_haiku`` routes its task first and refuses what Haiku should not do.

Refused, unless the caller passes ``force``: work the router is sure is Opus-tier (design, hard debugging,
security, migrations, …), and Sonnet-tier work that writes code (delegation answers in text; it cannot edit
files, and Haiku writes worse code). Unsure decisions pass: the guard stops clear mistakes, it does not
second-guess the caller. Each refusal is recorded (``advice_events``, kind "guarded": the category only) so the
report can count them.
"""

from __future__ import annotations

import sqlite3
import time
import uuid

from .errors import DelegationGuarded
from .routing import Router

WRITES_CODE = frozenset({"implement_feature", "tests", "bug_fix", "refactor"})


def guard_delegation(conn: sqlite3.Connection, router: Router, task: str, force: bool) -> str:
    """The task's routing category; raises ``DelegationGuarded`` (and records it) for work above Haiku."""
    decision = router.route(task)
    name = decision.category.replace("_", " ")
    if force or decision.uncertain:
        return decision.category
    if decision.tier == "opus":
        message = (f"not delegated: this looks like {name}, Opus-tier work ({decision.reason.rstrip('.')}); Haiku "
                   "would do it badly. Do it yourself, or tell the user `/model opus` fits; delegate only a reading "
                   "part of it (e.g. 'list the call sites of X'). Pass force: true to send it anyway.")
    elif decision.tier == "sonnet" and decision.category in WRITES_CODE:
        message = (f"not delegated: this looks like {name}, work that writes code; delegate_to_haiku only answers "
                   "in text and cannot edit files. Write it yourself; delegate only the reading it needs (e.g. "
                   "'list the functions that call X in these files'). Pass force: true to send it anyway.")
    else:
        return decision.category
    with conn:
        conn.execute("INSERT INTO advice_events (uuid, session_id, ts, kind, category) VALUES (?, '', ?, 'guarded', ?)",
                     (uuid.uuid4().hex, time.time(), decision.category))
    raise DelegationGuarded(message)
