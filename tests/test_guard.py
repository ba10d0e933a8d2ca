"""The guard on delegation, through the MCP client over stdio: work the router is sure is above Haiku is
refused with a message naming the category and what to do instead, before any API request; force sends it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_router.routing import load_policy
from mcp_router.store import connect

from .standin_api import StandinAPI
from .test_server import _run, _session


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "notes.txt").write_text("meeting notes\nTODO: Ana sends the invoice\nship on friday\n")
    return root

HARD = "find the root cause of the intermittent deadlock across 9 services in production"
CODE = "implement a --retry flag for the upload command in cli.py"


def test_an_opus_tier_task_is_refused_without_a_request_and_force_sends_it(
        api: StandinAPI, db_path: Path, project: Path) -> None:
    _, [refused] = _run(_session(api, db_path, project, [("delegate_to_haiku", {"task": HARD,
                                                                                "paths": ["notes.txt"]})]))
    assert refused.is_error
    message = refused.content[0].text
    assert "Opus-tier work" in message and "/model opus" in message and "force: true" in message
    assert api.requests == []
    _, [forced] = _run(_session(api, db_path, project, [("delegate_to_haiku", {"task": HARD, "paths": ["notes.txt"],
                                                                               "force": True})]))
    assert not forced.is_error, forced.content
    assert len(api.requests) == 1 and api.requests[0]["model"] == "claude-haiku-5-5"
    conn = connect(db_path)
    [(kind, category)] = [tuple(r) for r in conn.execute("SELECT kind, category FROM advice_events")]
    assert kind == "guarded" and load_policy()["categories"][category] == "opus"
    assert conn.execute("SELECT category, outcome FROM delegations").fetchall()[0][:] == (category, "ok")


def test_sonnet_tier_code_writing_is_refused_and_reading_is_not(
        api: StandinAPI, db_path: Path, project: Path) -> None:
    _, [code, reading] = _run(_session(api, db_path, project, [
        ("delegate_to_haiku", {"task": CODE, "content": "def upload(): ..."}),
        ("delegate_to_haiku", {"task": "list the action items in these notes", "paths": ["notes.txt"]}),
    ]))
    assert code.is_error and "writes code" in code.content[0].text and "cannot edit files" in code.content[0].text
    assert not reading.is_error, reading.content
    assert len(api.requests) == 1


@pytest.mark.parametrize("task", ["review this diff for obvious mistakes", "explain what this function does"])
def test_sonnet_tier_reading_and_judging_pass(task: str, api: StandinAPI, db_path: Path,
                                              project: Path) -> None:
    _, [result] = _run(_session(api, db_path, project, [("delegate_to_haiku", {"task": task, "content": "x = 1"})]))
    assert not result.is_error, result.content
