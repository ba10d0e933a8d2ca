"""Measured advice: advice read back from transcripts, followed or not within its turn, and what the
haiku-reader agent saved."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mcp_router.advice_report import haiku_reader, measured_advice
from mcp_router.config import Config
from mcp_router.ledger import ingest_session
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, summary_lines
from mcp_router.store import connect

SESSION = "6b0f3e1c-0000-4000-8000-000000000001"
T0 = 1_795_990_000.0  # 2026-11-29


def _ts(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(T0 + seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _line(seconds: float, uuid: str, **fields: Any) -> dict[str, Any]:
    return {"parentUuid": None, "isSidechain": False, "uuid": uuid, "timestamp": _ts(seconds), "sessionId": SESSION,
            "cwd": "/home/user/code/demo", "version": "2.1.328", "gitBranch": "main", **fields}


def _prompt(seconds: float, uuid: str, text: str) -> dict[str, Any]:
    return _line(seconds, uuid, type="user", promptId=f"p-{uuid}", message={"role": "user", "content": text})


def _advice(seconds: float, uuid: str, kind: str, text: str) -> dict[str, Any]:
    event = {"delegate": "hook_additional_context", "model": "hook_system_message"}[kind]
    content: Any = [text] if kind == "delegate" else text
    return _line(seconds, uuid, type="attachment", attachment={
        "type": event, "content": content, "hookName": "UserPromptSubmit", "toolUseID": "h", "hookEvent":
        "UserPromptSubmit"})


def _response(seconds: float, uuid: str, model: str, content: list[dict[str, Any]],
              agent: str | None = None) -> dict[str, Any]:
    record = _line(seconds, uuid, type="assistant", requestId=f"req_{uuid}", message={
        "id": f"msg_{uuid}", "type": "message", "role": "assistant", "model": model, "content": content,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 8000,
                  "output_tokens": 300}})
    if agent:
        record.update(isSidechain=True, agentId=agent)
    return record


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def session(tmp_path: Path) -> Path:
    """A Sonnet session: Opus advice then /model opus; reading advice followed by a delegation; reading
    advice followed by a haiku-reader run; reading advice ignored; a /model without advice."""
    tool = "mcp__plugin_mcp-router_mcp-router__delegate_to_haiku"
    transcript = tmp_path / "projects" / "-home-user-code-demo" / f"{SESSION}.jsonl"
    text = "hi"
    _write(transcript, [
        _prompt(0, "a1", "find the intermittent race across 9 services"),
        _advice(0.3, "a2", "model", "mcp-router advice (hard_debugging, opus-tier): `/model opus` fits this task"),
        _response(1, "a3", "claude-sonnet-5-5", [{"type": "text", "text": text}]),
        _prompt(10, "b1", "<command-name>/model</command-name>"),
        _line(10.1, "b2", type="system", subtype="local_command", content="Set model", isMeta=False,
              commandRun={"command": "model", "args": "opus"}),
        _prompt(20, "c1", "summarize build.txt"),
        _advice(20.3, "c2", "delegate", "mcp-router advice (summarize, haiku-tier): hand the reading to ..."),
        _response(21, "c3", "claude-sonnet-5-5", [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}]),
        _line(25, "c4", type="user", message={"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "the summary"}]}),
        _prompt(30, "d1", "list the failing tests in test.log"),
        _advice(30.3, "d2", "delegate", "mcp-router advice (extract, haiku-tier): hand the reading to ..."),
        _response(31, "d3", "claude-sonnet-5-5", [{"type": "tool_use", "id": "toolu_2", "name": "Agent",
                                                   "input": {"subagent_type": "mcp-router:haiku-reader"}}]),
        _prompt(40, "e1", "extract the version from setup.cfg"),
        _advice(40.3, "e2", "delegate", "mcp-router advice (extract, haiku-tier): hand the reading to ..."),
        _response(41, "e3", "claude-sonnet-5-5", [{"type": "text", "text": "read it myself"}]),
        _prompt(50, "f1", "<command-name>/model</command-name>"),
        _line(50.1, "f2", type="system", subtype="local_command", commandRun={"command": "model", "args": "opus"}),
    ])
    agent = transcript.with_suffix("") / "subagents" / "agent-r1.jsonl"
    _write(agent, [_response(32, "r1", "claude-haiku-5-5", [{"type": "text", "text": "two tests"}], agent="r1"),
                   _response(33, "r2", "claude-haiku-5-5", [{"type": "text", "text": "done"}], agent="r1")])
    agent.with_name("agent-r1.meta.json").write_text('{"agentType": "mcp-router:haiku-reader"}')
    return transcript


def test_advice_is_read_back_and_followed_within_its_turn(session: Path, db_path: Path) -> None:
    conn = connect(db_path)
    ingest_session(conn, session, Catalog.load())
    kinds = conn.execute("SELECT kind, category FROM advice_events ORDER BY ts").fetchall()
    assert [tuple(k) for k in kinds] == [("model", "hard_debugging"), ("model_change", "opus"),
                                         ("delegate", "summarize"), ("delegate", "extract"),
                                         ("delegate", "extract"), ("model_change", "opus")]
    measured = measured_advice(conn, T0 - 1, T0 + 100)
    assert measured["given"] == 4 and measured["followed"] == 3
    by = {(r["category"], r["kind"]): (r["given"], r["followed"]) for r in measured["by_category"]}
    assert by == {("hard_debugging", "model"): (1, 1), ("summarize", "delegate"): (1, 1),
                  ("extract", "delegate"): (2, 1)}
    assert "find the intermittent" not in json.dumps([tuple(r) for r in conn.execute("SELECT * FROM advice_events")])


def test_an_opus_switch_long_after_the_advice_is_not_following_it(tmp_path: Path, db_path: Path) -> None:
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    _write(transcript, [
        _prompt(0, "a1", "design the sharding"),
        _advice(0.3, "a2", "model", "mcp-router advice (architecture, opus-tier): `/model opus` fits this task"),
        _prompt(10, "b1", "ok, go on"),
        _prompt(20, "c1", "<command-name>/model</command-name>"),
        _line(20.1, "c2", type="system", subtype="local_command", commandRun={"command": "model", "args": "opus"}),
    ])
    conn = connect(db_path)
    ingest_session(conn, transcript, Catalog.load())
    assert measured_advice(conn, T0 - 1, T0 + 100)["followed"] == 0


def test_haiku_reader_runs_save_against_the_sessions_main_model(session: Path, db_path: Path) -> None:
    conn = connect(db_path)
    catalog = Catalog.load()
    ingest_session(conn, session, catalog)
    reader = haiku_reader(conn, T0 - 1, T0 + 100, catalog)
    cost = conn.execute("SELECT TOTAL(cost_usd) FROM usage_events WHERE agent_type = 'mcp-router:haiku-reader'"
                        ).fetchone()[0]
    sonnet = catalog.get("sonnet")
    on_sonnet = 2 * (10 * sonnet.rates.input + 300 * sonnet.rates.output + 8000 * sonnet.rates.cache_read
                     + 2000 * sonnet.rates.cache_write_5m) / 1e6
    assert reader["runs"] == 1 and reader["cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert reader["saved_usd"] == pytest.approx(on_sonnet - cost, abs=1e-6) and reader["saved_usd"] > 0


def test_the_report_shows_advice_guarded_calls_and_the_reader(session: Path, db_path: Path) -> None:
    conn = connect(db_path)
    catalog = Catalog.load()
    ingest_session(conn, session, catalog)
    conn.execute("INSERT INTO advice_events VALUES ('g1', ?, ?, 'guarded', 'architecture')", (SESSION, T0 + 60))
    spec = ReportSpec(since=date(2026, 11, 29), until=date(2026, 11, 30), timezone="UTC", group_by=("model",))
    report = build_report(conn, spec, catalog, Config())
    assert report["advice"]["guarded"] == {"architecture": 1}
    assert report["delegations"]["haiku_reader"]["runs"] == 1
    lines = "\n".join(summary_lines(report))
    assert "Routing advice: 3 of 4 followed (extract 1/2, hard_debugging 1/1, summarize 1/1)" in lines
    assert "guarded delegations: architecture 1" in lines and "Haiku reader: 1 runs" in lines


def test_finding_subagent_runs_reads_the_subagent_index_not_every_response(tmp_path: Path) -> None:
    conn = connect(tmp_path / "usage.db")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert haiku_reader(conn, T0, T0 + 86400, Catalog.load()) == {"runs": 0, "cost_usd": 0.0, "saved_usd": 0.0}
    conn.set_trace_callback(None)
    (sql,) = [s for s in statements if "agent_type" in s]
    plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    assert "USING INDEX usage_events_agents" in plan and "SCAN r" not in plan, plan
