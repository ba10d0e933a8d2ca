from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.corpus import generate
from mcp_router.ledger import ingest_session, ingest_tree
from mcp_router.pricing import Catalog, Usage
from mcp_router.projects import project_paths
from mcp_router.store import connect

from .conftest import REAL_CLAUDE_CODE

CATALOG = Catalog.load()


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    target = tmp_path / "projects"
    shutil.copytree(REAL_CLAUDE_CODE / "projects", target)
    return target


def _totals(conn, where: str = "1", params: tuple = ()) -> dict:
    row = conn.execute(
        "SELECT COUNT(*) n, TOTAL(input_tokens) i, TOTAL(output_tokens) o, TOTAL(cache_read_tokens) r,"
        f" TOTAL(cache_creation_tokens) c, TOTAL(cost_usd) cost FROM usage_events WHERE {where}", params
    ).fetchone()
    return dict(row)


def test_ledger_reproduces_claude_codes_cost_state_for_every_real_session(projects: Path, db_path: Path) -> None:
    conn = connect(db_path)
    summary = ingest_tree(conn, projects, CATALOG)
    assert summary.files == 3 and summary.new_responses == 6 and summary.malformed_lines == 0
    assert summary.duplicates == 2  # two responses written as two lines each
    states = conn.execute("SELECT session_id, total_cost_usd, model_usage FROM session_costs").fetchall()
    assert len(states) == 2
    for state in states:
        session_cost = _totals(conn, "session_id = ?", (state["session_id"],))["cost"]
        assert abs(session_cost - state["total_cost_usd"]) < 1e-6
        for model, usage in json.loads(state["model_usage"]).items():
            got = _totals(conn, "session_id = ? AND model = ?", (state["session_id"], model))
            assert got["i"] == usage["inputTokens"] and got["o"] == usage["outputTokens"]
            assert got["r"] == usage["cacheReadInputTokens"] and got["c"] == usage["cacheCreationInputTokens"]
            assert abs(got["cost"] - usage["costUSD"]) < 1e-6
    subagent = conn.execute("SELECT * FROM usage_events WHERE is_sidechain = 1").fetchone()
    assert subagent["project"] == "-home-user-code-demo"
    assert subagent["session_id"] == "105e9238-8621-423b-8bbc-0d1c9c659f0a"
    assert subagent["agent_type"] == "general-purpose" and subagent["model"] == "claude-haiku-5-5"
    tools = dict(conn.execute("SELECT tool_use_id, tool_name FROM tool_results").fetchall())
    assert set(tools.values()) == {"Agent", "mcp__tiny__echo"}


def test_generated_corpus_totals_are_exact_and_reruns_add_nothing(tmp_path: Path, db_path: Path) -> None:
    truth = generate(tmp_path / "projects", sessions=12, turns=6, filler=300)
    conn = connect(db_path)
    first = ingest_tree(conn, tmp_path / "projects", CATALOG)
    assert first.new_responses == len(truth.responses)
    assert first.duplicates > 0  # multi-line responses and resumed sessions
    expected_cost = sum(
        CATALOG.cost(r["model"], Usage(
            r["usage"]["input_tokens"], r["usage"]["output_tokens"], r["usage"]["cache_read_input_tokens"],
            r["usage"]["cache_creation_input_tokens"], r["usage"]["cache_creation"]["ephemeral_1h_input_tokens"],
            r["usage"]["server_tool_use"]["web_search_requests"], r["usage"]["inference_geo"],
        )) for r in truth.responses.values()
    )
    totals = _totals(conn)
    assert totals["n"] == len(truth.responses)
    assert totals["i"] == sum(r["usage"]["input_tokens"] for r in truth.responses.values())
    assert abs(totals["cost"] - expected_cost) < 1e-6
    again = ingest_tree(conn, tmp_path / "projects", CATALOG)
    assert again.new_responses == 0 and again.bytes_read == 0
    assert _totals(conn) == totals


def test_partial_last_line_waits_for_the_next_run(projects: Path, db_path: Path) -> None:
    path = projects / "-home-user-code-demo" / "73ecb4c8-90a6-4794-a251-1990ae699330.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if b'"assistant"' in line)
    path.write_bytes(b"".join(lines[:cut]) + lines[cut][:100])
    conn = connect(db_path)
    summary = ingest_session(conn, path, CATALOG)
    assert summary.malformed_lines == 0 and _totals(conn)["n"] == 0
    path.write_bytes(b"".join(lines))
    ingest_session(conn, path, CATALOG)
    assert abs(_totals(conn)["cost"] - 0.041268) < 1e-6


def test_hostile_lines_are_counted_and_skipped(tmp_path: Path, db_path: Path) -> None:
    good = (REAL_CLAUDE_CODE / "projects" / "-home-user-code-demo" / "73ecb4c8-90a6-4794-a251-1990ae699330.jsonl")
    assistant = next(line for line in good.read_bytes().splitlines() if b'"assistant"' in line)
    record = json.loads(assistant)

    def variant(**usage) -> bytes:
        changed = json.loads(assistant)
        changed["message"]["id"] = f"msg_{len(usage)}_{sorted(usage)}"
        changed["message"]["usage"].update(usage)
        return json.dumps(changed).encode()

    hostile = [
        assistant,
        b"\x00\x01\x02binary junk\xff\xfe",
        b'{"type": "assistant", "message": {"usage": ',  # truncated, but complete (has its newline)
        variant(input_tokens="12"),
        variant(output_tokens=-5),
        b'{"type":"assistant","message":{"id":"x","model":"m","usage":{}},"timestamp":"2026-11-22T00:00:00Z"}',
        b'{"type": "brand-new-type", "usage": 1}',
        b'{"type":"assistant","message":{"content":"\xc3\x28 invalid utf-8","usage":{}}}',
        b'{"type":"assistant","pad":"' + b"z" * 50_000_000 + b'","usage":1}',
        json.dumps({**record, "message": {**record["message"], "model": "<synthetic>", "id": "syn"}}).encode(),
    ]
    path = tmp_path / "projects" / "p" / "s.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(hostile) + b"\n")
    conn = connect(db_path)
    summary = ingest_tree(conn, tmp_path / "projects", CATALOG)
    assert summary.malformed_lines == 6
    assert summary.new_responses == 1
    assert abs(_totals(conn)["cost"] - 0.02062) < 1e-6
    assert conn.execute("SELECT malformed_lines FROM ingest_files").fetchone()[0] == 6


def test_truncated_deleted_and_replaced_files_lose_nothing(projects: Path, db_path: Path) -> None:
    conn = connect(db_path)
    ingest_tree(conn, projects, CATALOG)
    before = _totals(conn)
    main = projects / "-home-user-code-demo" / "105e9238-8621-423b-8bbc-0d1c9c659f0a.jsonl"
    main.write_bytes(main.read_bytes()[:200])  # truncated: read again from 0, rows kept
    other = projects / "-home-user-code-demo" / "73ecb4c8-90a6-4794-a251-1990ae699330.jsonl"
    other.unlink()  # deleted by Claude Code's cleanup: its rows are history
    summary = ingest_tree(conn, projects, CATALOG)
    assert summary.malformed_lines == 0
    assert _totals(conn) == before


_KILL_SCRIPT = """
import sys
from pathlib import Path
from mcp_router.ledger import ingest_tree
from mcp_router.pricing import Catalog
from mcp_router.store import connect
import mcp_router.ledger as ledger
ledger.CHUNK_BYTES = ledger.COMMIT_BYTES = 64 * 1024  # many small transactions, so the kill lands mid-run
conn = connect(sys.argv[1])
ingest_tree(conn, Path(sys.argv[2]), Catalog.load(), progress=lambda files, *_: files == 3 and print(files, flush=True))
"""


def test_kill_9_mid_ingest_then_rerun_equals_one_clean_run(tmp_path: Path) -> None:
    generate(tmp_path / "projects", sessions=40, turns=20, filler=20_000)
    clean = connect(tmp_path / "clean.db")
    ingest_tree(clean, tmp_path / "projects", CATALOG)
    expected = _totals(clean)
    killed_db = tmp_path / "killed.db"
    connect(killed_db).close()
    process = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(killed_db), str(tmp_path / "projects")],
                               stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline()  # three files done: the fourth is being read, in 64 KiB transactions
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    conn = connect(killed_db)
    partial = _totals(conn)["n"]
    assert partial < expected["n"], "the kill should land before the run finishes"
    ingest_tree(conn, tmp_path / "projects", CATALOG)
    assert _totals(conn) == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=15))
def test_duplicated_lines_never_change_totals(tmp_path_factory, order: list[int]) -> None:
    source = REAL_CLAUDE_CODE / "projects" / "-home-user-code-demo" / "105e9238-8621-423b-8bbc-0d1c9c659f0a.jsonl"
    assistants = [line for line in source.read_bytes().splitlines() if b'"assistant"' in line]
    tmp = tmp_path_factory.mktemp("dup")
    path = tmp / "projects" / "p" / "s.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(assistants[i % len(assistants)] for i in order) + b"\n")
    conn = connect(tmp / "usage.db")
    ingest_tree(conn, tmp / "projects", CATALOG)
    used = {i % len(assistants) for i in order}
    unique_ids = {json.loads(assistants[i])["message"]["id"] for i in used}
    assert _totals(conn)["n"] == len(unique_ids)


def _table(conn, sql: str) -> list[tuple]:
    return [tuple(row) for row in conn.execute(sql)]


def test_parallel_ingest_writes_exactly_what_one_process_writes(tmp_path: Path) -> None:
    generate(tmp_path / "projects", sessions=30, turns=8, filler=2_000)
    for name in ("usage.jsonl", "agent.jsonl"):  # hostile lines too, so malformed counts are compared
        (tmp_path / "projects" / "p").mkdir(exist_ok=True)
        (tmp_path / "projects" / "p" / name).write_bytes(b"junk\n{\"type\":\"user\",\"tool_result\"\n")
    results = {}
    for workers in (0, 2):
        conn = connect(tmp_path / f"w{workers}.db")
        summary = ingest_tree(conn, tmp_path / "projects", CATALOG, workers=workers)
        results[workers] = (
            summary,
            _table(conn, "SELECT * FROM usage_events ORDER BY message_id, request_id"),
            _table(conn, "SELECT * FROM usage_rollup ORDER BY bucket, model, project, session_id, agent, branch"),
            _table(conn, "SELECT * FROM tool_results ORDER BY tool_use_id"),
            _table(conn, "SELECT session_id, total_cost_usd, model_usage FROM session_costs ORDER BY session_id"),
            _table(conn, "SELECT path, offset, size, lines, malformed_lines FROM ingest_files ORDER BY path"),
        )
    assert results[0][0].malformed_lines == 4 and results[0][0].new_responses > 100
    assert results[0] == results[2]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_ingest_progress_bar_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                terminal: bool) -> None:
    from mcp_router import cli

    generate(tmp_path / "projects", sessions=6, turns=4, filler=200_000)
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(cli._IngestBar, "DELAY", 0.0)  # as if the ingest had run two seconds already
    summary = cli._ingest_with_progress(connect(tmp_path / "usage.db"), tmp_path / "projects", CATALOG)
    assert summary.files_read == 8
    if terminal:
        shown = stderr.getvalue()
        assert "ingesting" in shown and "/8 files" in shown and "MB" in shown
    else:
        assert stderr.getvalue() == ""


def test_ingest_progress_waits_two_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_router import cli

    generate(tmp_path / "projects", sessions=3, turns=2, filler=100)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    cli._ingest_with_progress(connect(tmp_path / "usage.db"), tmp_path / "projects", CATALOG)
    assert sys.stderr.getvalue() == ""


def test_transcripts_are_listed_as_the_glob_patterns_list_them(tmp_path: Path) -> None:
    from mcp_router.ledger import transcript_files

    projects = tmp_path / "projects"
    for name in ("a/s.jsonl", "a-b/s.jsonl", "a/z.jsonl", "a/s/subagents/agent-2.jsonl", "a/s/subagents/agent-1.jsonl",
                 "a-b/t/subagents/agent-1.jsonl", ".hidden/s.jsonl", "a/notes.txt", "a/s/subagents/meta.json",
                 "B/s.jsonl", "a/x.jsonl/subagents/agent-3.jsonl", "a/deep/er/s.jsonl"):
        (projects / name).parent.mkdir(parents=True, exist_ok=True)
        (projects / name).write_text("")
    (projects / "loose.jsonl").write_text("")
    expected = sorted(projects.glob("*/*.jsonl")) + sorted(projects.glob("*/*/subagents/*.jsonl"))
    assert transcript_files(projects) == expected
    assert transcript_files(tmp_path / "missing") == []


def test_a_projects_folder_comes_only_from_lines_claude_code_wrote_with_usage(tmp_path: Path, db_path: Path) -> None:
    """The cwd shown for a project is taken from assistant responses (the lines with usage), never from user,
    system or attachment lines, nor from text a prompt or a tool result carries. The decoy encodes to the same
    key and sorts first, so it would win if any of those lines were read for it."""
    real = REAL_CLAUDE_CODE / "projects" / "-home-user-code-demo" / "73ecb4c8-90a6-4794-a251-1990ae699330.jsonl"
    decoy = "/home/user/code-demo"
    lines = []
    for line in real.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") != "assistant" and "cwd" in record:
            record["cwd"] = decoy
        if record.get("type") == "user":
            record["message"] = {"role": "user", "content": f'{{"cwd": "{decoy}", "type": "assistant"}}'}
        lines.append(json.dumps(record))
    path = tmp_path / "projects" / "-home-user-code-demo" / real.name
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    conn = connect(db_path)
    assert ingest_tree(conn, tmp_path / "projects", CATALOG).responses == 3
    assert project_paths(conn) == {"-home-user-code-demo": "/home/user/code/demo"}
    assert conn.execute("SELECT COUNT(*) FROM project_paths WHERE path = ?", (decoy,)).fetchone()[0] == 0


def test_prompts_routed_in_the_parse_workers_are_decided_as_the_writer_would(
        tmp_path: Path, isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bulk ingest routes prompts in its workers: the user's overrides (config and feedback) and keep_prompts hold.
    import mcp_router.ledger as ledger

    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('keep_prompts = true\n[routing]\nsummarize = "opus"\n')
    generate(tmp_path / "projects", sessions=12, turns=8, filler=200, distinct_prompts=True)
    tables = []
    for name, bulk in (("bulk", True), ("one by one", False)):
        conn = connect(tmp_path / f"{name}.db")
        conn.execute("INSERT INTO category_overrides (category, tier, source, reason, ts) VALUES"
                     " ('read_file', 'sonnet', 'auto', 'test', 0)")
        if bulk:
            ingest_tree(conn, tmp_path / "projects", CATALOG, workers=2)
        else:
            for path in sorted((tmp_path / "projects").glob("*/*.jsonl")):
                ingest_session(conn, path, CATALOG)
        tables.append(_table(conn, "SELECT * FROM prompts ORDER BY uuid"))
    assert tables[0] == tables[1]
    assert len(tables[0]) > 20 and all(row[3] for row in tables[0])  # the text kept
    assert {row[5] for row in tables[0]} & {"summarize", "read_file"}
    assert all(row[4] == {"summarize": "opus", "read_file": "sonnet"}.get(row[5], row[4]) for row in tables[0])


def test_the_workers_prompt_router_travels_to_a_spawned_worker_and_decides_the_same(tmp_path: Path) -> None:
    import pickle

    from mcp_router.ledger import PromptDecider, _PromptRouter

    decider = PromptDecider(connect(tmp_path / "usage.db"))
    router = _PromptRouter(*decider.routing(), (100.0, 200.0))
    text = "summarize last night's build log"
    decided = router(text, 100.0)
    copy = pickle.loads(pickle.dumps(router))  # spawn pickles it, the loaded router left behind
    assert copy.router is None and copy(text, 199.0) == decided
    assert decided is not None and copy(text, 200.0) is None and copy(text, 99.0) is None  # outside its window
    decision = decider.decide(text)
    assert decided == (decision.tier, decision.category, decision.confidence)
