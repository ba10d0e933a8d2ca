"""The independent probe of #14 (per-prompt advice, the guard on delegation, measured advice): each finding's test,
and the attacks that held."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from mcp_router.advice import advise, session_state
from mcp_router.advice_report import measured_advice
from mcp_router.config import Config
from mcp_router.errors import ConfigError, DelegationGuarded
from mcp_router.guard import guard_delegation
from mcp_router.ledger import ingest_session
from mcp_router.pricing import Catalog
from mcp_router.routing import Router
from mcp_router.store import connect

from .standin_api import StandinAPI
from .test_advice import HARD, READING, _model_command, _payload, _response, _transcript
from .test_server import _run, _session

API = {"ANTHROPIC_API_KEY": "sk-test"}
CODE = "implement a --retry flag for the upload command in cli.py"
DEEP = "find the root cause of the intermittent deadlock across 9 services in production"


def _hook(payload: dict[str, Any], tmp_path: Path, memory_bytes: int | None = None) -> tuple[float, Any]:
    env = {**os.environ, "HOME": str(tmp_path), "MCP_ROUTER_DB": str(tmp_path / "usage.db"),
           "ANTHROPIC_API_KEY": "sk-test"}
    limit = (lambda: resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))) if memory_bytes else None
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mcp_router", "hook"], input=json.dumps(payload), env=env,
                          capture_output=True, text=True, timeout=30, preexec_fn=limit)
    return time.monotonic() - started, done


def test_a_fifo_as_transcript_does_not_stall_the_prompt(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the prompt waited for the 3 s alarm, with no advice."""
    fifo = tmp_path / "session.jsonl"
    os.mkfifo(fifo)
    elapsed, done = _hook(_payload(READING, fifo), tmp_path)
    assert done.returncode == 0 and elapsed < 2.5, (elapsed, done.stderr)
    assert "mcp-router advice (summarize" in done.stdout, done.stderr


def test_a_device_as_transcript_is_not_read_whole(tmp_path: Path) -> None:
    """/dev/zero has no end: the hook read it into memory until the alarm (gigabytes), or died of MemoryError."""
    elapsed, done = _hook(_payload(READING, Path("/dev/zero")), tmp_path, memory_bytes=1 << 30)
    assert done.returncode == 0 and elapsed < 2.5, (elapsed, done.stderr)
    assert "mcp-router advice (summarize" in done.stdout, done.stderr
    assert session_state(Path("/dev/null")) == (None, 0)


def test_a_model_command_stores_the_tier_not_what_was_typed(tmp_path: Path, db_path: Path) -> None:
    """Claude Code records `/model <anything>` verbatim (it accepts any id); the ledger kept that text."""
    secret = "opus and my password is hunter2"
    transcript = tmp_path / "projects" / "p" / "6b0f3e1c-0000-4000-8000-000000000009.jsonl"
    transcript.parent.mkdir(parents=True)
    records = [dict(_model_command(args), uuid=f"c{n}", timestamp=f"2026-11-30T00:0{n}:00.000Z",
                    sessionId=transcript.stem) for n, args in enumerate((secret, "claude-opus-4-6[1m]", "default"))]
    transcript.write_text("".join(json.dumps(r) + "\n" for r in records))
    conn = connect(db_path)
    ingest_session(conn, transcript, Catalog.load())
    rows = [tuple(r) for r in conn.execute("SELECT kind, category FROM advice_events ORDER BY ts")]
    assert rows == [("model_change", "opus"), ("model_change", "opus"), ("model_change", "other")]


def test_an_advice_skip_typo_is_an_error_every_command_reports() -> None:
    """It failed only inside the advice hook, whose stderr the plugin's launcher drops: advice went silent."""
    with pytest.raises(ConfigError, match=r"advice_skip: unknown category 'summarise' \(known: .*summarize"):
        Config.load(environ={"MCP_ROUTER_ADVICE_SKIP": "summarise"})
    assert Config.load(environ={"MCP_ROUTER_ADVICE_SKIP": "summarize, hard_debugging"}).advice_skip == (
        "summarize", "hard_debugging")


@pytest.fixture
def guard(db_path: Path) -> Any:
    conn = connect(db_path)
    router = Router.load(Catalog.load(), Config())
    yield lambda task: guard_delegation(conn, router, task, False)
    conn.close()


CLAUSES = pytest.mark.xfail(strict=True, reason=(
    "needs clause-level routing in the guard: routing each sentence or clause alone refuses reading tasks too "
    "('Summarize the design doc: we are moving to an event-sourced architecture' reads as architecture, 0.88; "
    "'tell me which tests failed' as tests, 0.72)"))


@pytest.mark.parametrize("task", [
    f"Summarize: {DEEP}",  # the router with a tier model reads the whole ask
    pytest.param(f"{DEEP}. Summarize your findings as a list.", marks=CLAUSES),
    f"summarize what to do, then {CODE}",  # refused since the eleventh round's model (Sonnet, sure)
])
def test_the_guard_is_not_bypassed_by_wrapping_the_task_in_a_reading_ask(task: str, guard: Any) -> None:
    """A reading verb around Opus-tier or code-writing work read as Haiku-tier summarising: it went to Haiku."""
    with pytest.raises(DelegationGuarded):
        guard(task)


@pytest.mark.parametrize("task", [
    READING,
    "list the call sites of upload in cli.py",
    "Read notes.txt. List the action items and who owns each.",
    "extract the version from setup.cfg; answer with the number only",
    "summarize this diff: what changed in the retry logic, then list the touched files",
])
def test_reading_tasks_of_several_parts_still_pass_the_guard(task: str, guard: Any) -> None:
    assert guard(task)


def test_force_as_the_string_false_is_not_force(db_path: Path, tmp_path: Path) -> None:
    with StandinAPI() as api:
        _, [refused] = _run(_session(api, db_path, tmp_path, [("delegate_to_haiku", {"task": DEEP, "content": "x",
                                                                                    "force": "false"})]))
        assert refused.is_error and "`force` must be true or false, got 'false'" in refused.content[0].text
        assert api.requests == []


def test_a_lone_surrogate_is_routed_not_an_error() -> None:
    """A non-UTF-8 byte in a shell argument arrives as a lone surrogate: `mcp-router route` failed on it."""
    decision = Router.load(Catalog.load(), Config()).route("summarize \udcff the build log")
    assert decision.tier in ("haiku", "sonnet", "opus")


@pytest.mark.parametrize("model_line", ["claude-opus-4-6", "claude-opus-4-6[1m]", "us.anthropic.claude-opus-4-6-v1"])
def test_no_model_line_when_the_session_already_runs_opus(model_line: str, tmp_path: Path, db_path: Path) -> None:
    fast = _response(model_line)
    fast["message"]["usage"]["speed"] = "fast"
    assert advise(_payload(HARD, _transcript(tmp_path, fast)), Config(), db_path, API) is None
    switched = _transcript(tmp_path, _response("claude-sonnet-5-5"), _model_command("opus[1m]"))
    assert advise(_payload(HARD, switched), Config(), db_path, API) is None


def test_the_report_with_no_advice(db_path: Path) -> None:
    conn = connect(db_path)
    assert measured_advice(conn, 0, 2e9) == {"given": 0, "followed": 0, "by_category": [], "guarded": {}}


def test_concurrent_advice_hooks_beside_an_ingest_all_answer(tmp_path: Path) -> None:
    transcript = _transcript(tmp_path, *[_response("claude-sonnet-5-5") | {"uuid": f"u{n}"} for n in range(200)])
    results: list[tuple[float, Any]] = []

    def one(payload: dict[str, Any]) -> None:
        results.append(_hook(payload, tmp_path))

    payloads = [_payload(READING, transcript)] * 6 + [{"hook_event_name": "Stop", "session_id": "s",
                                                       "transcript_path": str(transcript)}]
    threads = [threading.Thread(target=one, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(done.returncode == 0 and not done.stderr for _, done in results), [d.stderr for _, d in results]
    assert sum("mcp-router advice (summarize" in done.stdout for _, done in results) == 6


def test_the_hook_exits_0_when_claude_code_has_closed_its_stdout(tmp_path: Path) -> None:
    """The hook now skips the interpreter's teardown: a closed pipe must still end in exit 0, not a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "HOME": str(tmp_path), "MCP_ROUTER_DB": str(tmp_path / "usage.db"), "ANTHROPIC_API_KEY": "x"}
    script = "import sys; sys.argv = ['mcp-router', 'hook']; from mcp_router import main; main()"
    try:
        done = subprocess.run([sys.executable, "-c", script], input=json.dumps(_payload(READING, tmp_path / "t.jsonl")),
                              stdout=write_end, stderr=subprocess.PIPE, env=env, text=True, timeout=30)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_a_model_change_stored_as_typed_before_the_fix_keeps_only_its_tier(tmp_path: Path) -> None:
    from mcp_router.migrations import m014_model_changes_keep_only_the_tier

    conn = connect(tmp_path / "usage.db")
    rows = [("a", "Opus and my password is hunter2"), ("b", "sonnet"), ("c", "claude-haiku-5-5 pls"), ("d", "xyz")]
    conn.executemany("INSERT INTO advice_events VALUES (?, 's', 1.0, 'model_change', ?)", rows)
    conn.execute("INSERT INTO advice_events VALUES ('e', 's', 1.0, 'delegate', 'summarize')")
    m014_model_changes_keep_only_the_tier(Database(conn))
    assert dict(conn.execute("SELECT uuid, category FROM advice_events")) == {
        "a": "opus", "b": "sonnet", "c": "haiku", "d": "other", "e": "summarize"}
