"""Probe of the bulk ingest's msgspec reader, the routing in parse workers and the ASCII n-gram hashing (#15b)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.corpus import generate
from mcp_router import ledger, routing
from mcp_router.bulk_lines import read_line
from mcp_router.ledger import ingest_session, ingest_tree
from mcp_router.pricing import Catalog
from mcp_router.routing import features
from mcp_router.store import connect
from mcp_router.transcripts import MalformedLine, bulk_loads, decode_object, parse_record

from .conftest import REAL_CLAUDE_CODE
from .test_ingest_identity import TABLES
from .test_routing import _features_as_defined

CATALOG = Catalog.load()
REAL_LINES = [line for path in sorted((REAL_CLAUDE_CODE / "projects").rglob("*.jsonl"))
              for line in path.read_bytes().splitlines() if line.startswith(b"{")]


def _usual(line: bytes, loads: Any) -> Any:
    try:
        return parse_record(decode_object(line, loads))
    except MalformedLine as exc:
        return ("malformed", str(exc))


def _agrees(line: bytes) -> None:
    """Where the cheap reader answers, it answers what both usual readings (json, orjson) give."""
    fast = read_line(line)
    if fast is not None:
        assert fast == _usual(line, json.loads) == _usual(line, bulk_loads), line[:300]


# --- (1) the msgspec reader against the usual parser -----------------------------------------------------------

NUMBERS = st.sampled_from([b"0", b"-0", b"1", b"1.0", b"1e3", b"1E0", b"-1", b"1000000000", b"1000000001",
                           b"18446744073709551616", b"123456789012345678901234567890", b"null", b"true", b'"3"',
                           b"0.5", b"-0.0", b"[]", b"{}"])
STRINGS = st.sampled_from([b'"x"', b'""', b'"\\ud800"', b'"a\\ud83d\\ude00b"', b'"\\u0000"', b'"\xc3\xa9"',
                           b'"\xff"', b'"\xed\xa0\x80"', b"null", b"1", b'"2026-01-01T00:00:00Z"',
                           b'"2026-01-01T00:00:00"', b'"9999-12-31T00:00:00Z"', b'"<synthetic>"'])
KEYS = st.sampled_from([b"type", b"message", b"timestamp", b"requestId", b"sessionId", b"isSidechain", b"agentId",
                        b"id", b"model", b"usage", b"content", b"input_tokens", b"output_tokens",
                        b"cache_read_input_tokens", b"cache_creation_input_tokens", b"cache_creation",
                        b"ephemeral_5m_input_tokens", b"ephemeral_1h_input_tokens", b"server_tool_use",
                        b"web_search_requests", b"iterations", b"speed", b"service_tier", b"inference_geo",
                        b"tool_use_id", b"text", b"name", b"us\\u0061ge", b"\\u0074ype", b"input_tokens\\u0000"])


def _json(depth: int) -> st.SearchStrategy[bytes]:
    leaf = st.one_of(NUMBERS, STRINGS, st.sampled_from([b'"assistant"', b'"user"', b'"tool_result"',
                                                       b'"tool_use"', b'"message"', b'"fast"']))
    if depth == 0:
        return leaf
    child = _json(depth - 1)
    obj = st.lists(st.tuples(KEYS, child), max_size=6).map(
        lambda kv: b"{" + b",".join(b'"' + k + b'":' + v for k, v in kv) + b"}")
    arr = st.lists(child, max_size=3).map(lambda items: b"[" + b",".join(items) + b"]")
    return st.one_of(leaf, obj, arr)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KEYS, _json(3)), max_size=8))
def test_random_objects_are_read_as_the_usual_parser_reads_them(pairs: list[tuple[bytes, bytes]]) -> None:
    _agrees(b"{" + b",".join(b'"' + k + b'":' + v for k, v in pairs) + b"}")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REAL_LINES), st.integers(0, 10**6), st.sampled_from(
    [b"1.0", b"1e3", b"-0", b"null", b"99999999999999999999", b'"\\ud800"', b"\xff", b"\r", b"\xef\xbb\xbf",
     b'"us\\u0061ge":{"input_tokens":5,"output_tokens":1},', b'"type":"user",', b'"message":null,',
     b'"isSidechain":true,', b'"speed":"fast",', b'"timestamp":"2026-13-01T00:00:00Z",',
     b'"server_tool_use":{"web_search_requests":2,"x":{"y":[1]}},', b"[" * 40, b"", b",", b"}"]))
def test_real_lines_mutated_are_read_as_the_usual_parser_reads_them(line: bytes, at: int, insert: bytes) -> None:
    # Insert after a "{" or a "," (mostly keeping the line valid JSON) or anywhere.
    anchors = [i + 1 for i, byte in enumerate(line) if byte in b"{,"]
    cut = anchors[at % len(anchors)] if at % 3 else at % (len(line) + 1)
    _agrees(line[:cut] + insert + line[cut:])


@pytest.mark.parametrize("line", [
    # duplicate keys: the last one wins in json and orjson
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","model":"x",'
    b'"usage":{"input_tokens":1,"output_tokens":2},"usage":{"input_tokens":5,"output_tokens":6}}}',
    b'{"type":"user","type":"assistant","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","model":"x",'
    b'"usage":{"input_tokens":1,"output_tokens":2,"input_tokens":7}}}',
    b'{"type":"assistant","isSidechain":true,"isSidechain":false,"timestamp":"2026-01-01T00:00:00Z",'
    b'"message":{"id":"m","model":"x","usage":{"input_tokens":1,"output_tokens":2}},"message":null}',
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","id":null,"model":"x",'
    b'"usage":{"input_tokens":1,"output_tokens":2}}}',
    # escaped keys, floats and huge numbers in fields read and skipped, NaN, lone surrogates
    b'{"\\u0074ype":"assistant","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","model":"x",'
    b'"us\\u0061ge":{"input_tokens":1,"output_tokens":2}}}',
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","x":[1e400,-0.0,123456789012345678901234567890],'
    b'"message":{"id":"m","model":"x","usage":{"input_tokens":-0,"output_tokens":2}}}',
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","x":NaN,"message":{"id":"m","model":"x",'
    b'"usage":{"input_tokens":1,"output_tokens":2}}}',
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","x":"\\udc00","message":{"id":"m","model":"x",'
    b'"usage":{"input_tokens":1,"output_tokens":2}}}',
    b'{"type":"user","timestamp":"2026-01-01T00:00:00Z","message":{"content":[{"type":"tool_result",'
    b'"tool_use_id":"t","content":[{"type":"text","text":"a\\ud800b"},{"text":"\\ud83d\\ude00"}]}]}}',
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","model":"x","usage":'
    b'{"input_tokens":1,"output_tokens":2,"speed":"fast","iterations":[{"type":"message","input_tokens":1,'
    b'"output_tokens":1,"input_tokens":3,"cache_creation":{"ephemeral_1h_input_tokens":2.0}}]}}}\r',
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","model":"x","usage":'
    b'{"input_tokens":1,"output_tokens":2,"cache_creation":{"ephemeral_5m_input_tokens":1,"extra":{"a":[]}},'
    b'"server_tool_use":{"web_search_requests":3,"web_fetch_requests":1}}}}',
    b'{"type":"assistant","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","model":"x","usage":'
    b'{"input_tokens":1,"output_tokens":2},"content":' + b"[" * 1100 + b"]" * 1100 + b"}}",
])
def test_hand_made_lines_are_read_as_the_usual_parser_reads_them(line: bytes) -> None:
    _agrees(line)


# --- the whole ingest: bulk (workers, msgspec, routing in workers) against the hook's path, table by table ----

def _tables(conn: sqlite3.Connection, root: Path) -> dict[str, list[Any]]:
    prefix = str(root) + "/"
    return {name: [[v.removeprefix(prefix) if isinstance(v, str) else v for v in row] for row in conn.execute(sql)]
            for name, sql in TABLES.items()}


def _hostile_session(folder: Path) -> None:
    # Ids of its own: a response in two files is kept from the first read, and the two paths list files apart.
    real = [line.replace(b'"msg_', b'"msh_') for line in REAL_LINES]
    lines = [line.replace(b'"usage":{', b'"usage":{"input_tokens":1.0,"input_tokens":', 1) for line in real]
    lines += [line.replace(b'"sessionId"', b'"x":"\\ud800","sessionId"', 1) for line in real]
    lines += [line + b"\r" for line in real] + [b"\xef\xbb\xbf" + real[0], b"{" * 2000, b"\xff{"]
    folder.mkdir(parents=True)
    (folder / "0f0f0f0f-0000-4000-8000-000000000000.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def test_a_bulk_ingest_of_hostile_lines_writes_what_the_hook_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projects = tmp_path / "projects"
    generate(projects, sessions=8, turns=6, filler=100, seed=3, distinct_prompts=True)
    shutil.copytree(REAL_CLAUDE_CODE / "projects", projects, dirs_exist_ok=True)
    _hostile_session(projects / "-hostile")
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)
    bulk = connect(tmp_path / "bulk.db")
    ingest_tree(bulk, projects, CATALOG, workers=2)
    hook = connect(tmp_path / "hook.db")
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 1 << 62)
    for path in sorted(projects.glob("*/*.jsonl")):
        ingest_session(hook, path, CATALOG)
    assert _tables(bulk, projects) == _tables(hook, projects)
    assert bulk.execute("SELECT SUM(malformed_lines) FROM ingest_files").fetchone()[0] >= 5


# --- (2) a broken model file mid-ingest: an error the CLI prints as one line, nothing lost, the next run picks up --

def test_a_broken_model_in_the_workers_fails_cleanly_and_the_next_run_picks_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projects = tmp_path / "projects"
    generate(projects, sessions=6, turns=5, filler=100, seed=4, distinct_prompts=True)
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)
    clean = connect(tmp_path / "clean.db")
    ingest_tree(clean, projects, CATALOG, workers=2)
    model_bin = routing.MODEL_BIN
    broken = tmp_path / "model.bin"
    broken.write_bytes(Path(model_bin).read_bytes()[:1000])
    monkeypatch.setattr(routing, "MODEL_BIN", str(broken))  # the forked workers load this one
    conn = connect(tmp_path / "usage.db")
    with pytest.raises(ValueError, match="retrain it") as failure:
        ingest_tree(conn, projects, CATALOG, workers=2)
    assert "\n" not in str(failure.value)
    assert conn.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 0  # rolled back, not half written
    monkeypatch.setattr(routing, "MODEL_BIN", model_bin)
    ingest_tree(conn, projects, CATALOG, workers=2)
    assert _tables(conn, projects) == _tables(clean, projects)


def test_a_crashed_worker_is_one_clear_error_and_the_next_run_picks_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from mcp_router.errors import MCPRouterError

    projects = tmp_path / "projects"
    generate(projects, sessions=6, turns=5, filler=100, seed=6)
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)
    clean = connect(tmp_path / "clean.db")
    ingest_tree(clean, projects, CATALOG, workers=2)
    parse, victim = ledger._parse_file, sorted(projects.glob("*/*.jsonl"))[3]

    def killed(task: Any, *args: Any) -> Any:  # a worker killed (out of memory, a signal) on one file
        if task.path == victim:
            os._exit(9)
        return parse(task, *args)

    monkeypatch.setattr(ledger, "_parse_file", killed)  # the forked workers inherit it
    conn = connect(tmp_path / "usage.db")
    with pytest.raises((MCPRouterError, ValueError)) as failure:  # what the CLI prints as one line
        ingest_tree(conn, projects, CATALOG, workers=2)
    assert "\n" not in str(failure.value)
    monkeypatch.setattr(ledger, "_parse_file", parse)
    ingest_tree(conn, projects, CATALOG, workers=2)
    assert _tables(conn, projects) == _tables(clean, projects)


def test_a_bulk_ingest_without_prompts_does_not_need_the_router(
        tmp_path: Path, isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The decider loads the config and the router on the first prompt: usage alone is read with a routing
    # section the router refuses, as the hook's path reads it.
    projects = tmp_path / "projects"
    generate(projects, sessions=4, turns=4, filler=100, seed=8)
    for path in projects.rglob("*.jsonl"):
        path.write_bytes(b"".join(line for line in path.read_bytes().splitlines(keepends=True)
                                  if b'"promptId"' not in line))
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[routing]\nno_such_category = "opus"\n')
    hook = connect(tmp_path / "hook.db")
    for path in sorted(projects.glob("*/*.jsonl")):
        ingest_session(hook, path, CATALOG)
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)
    bulk = connect(tmp_path / "bulk.db")
    ingest_tree(bulk, projects, CATALOG, workers=2)
    assert _tables(bulk, projects) == _tables(hook, projects)
    assert bulk.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0] > 10


# --- (3) features(): the ASCII byte hashing equals the definition -------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(st.characters(codec="ascii")), st.text(st.characters(categories=["Cs"])),
                 st.text(alphabet="aA \t\n\u0130\u00df\u212a\ufb01éx\ud800", max_size=3000)),
       st.sampled_from([8, 16, 18, 20, 32]))
def test_features_equal_the_definition_on_any_string(text: str, bits: int) -> None:
    assert features(text, bits) == _features_as_defined(text, bits)


# --- (4) no prompt text in the database without keep_prompts, from a bulk ingest routed in workers ------------

def test_a_bulk_ingest_keeps_no_prompt_text_without_keep_prompts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projects = tmp_path / "projects"
    generate(projects, sessions=6, turns=5, filler=50, seed=5, distinct_prompts=True)
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, projects, CATALOG, workers=2)
    texts = {row[0] for row in conn.execute("SELECT text FROM prompts")}
    assert texts == {None} and conn.execute("SELECT COUNT(*) FROM prompts WHERE tier IS NULL").fetchone()[0] == 0
    conn.close()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("usage.db*"))
    prompts = [json.loads(line)["message"]["content"] for path in projects.glob("*/*.jsonl")
               for line in path.read_bytes().splitlines() if b'"promptId"' in line]
    prompts = [p for p in prompts if isinstance(p, str) and len(p) > 12]
    assert prompts and not [p for p in prompts if p[:40].encode() in stored]


@pytest.mark.parametrize("bulk", [True, False])
def test_a_kept_prompt_with_a_lone_surrogate_is_stored_not_an_error_that_stops_every_ingest(
        tmp_path: Path, isolated_user: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool) -> None:
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("keep_prompts = true\n")
    folder = tmp_path / "projects" / "-p"
    folder.mkdir(parents=True)
    prompt = (b'{"type":"user","promptId":"p","uuid":"u%d","sessionId":"s","timestamp":"2026-11-01T00:00:00Z",'
              b'"message":{"role":"user","content":"%s"}}\n')
    (folder / "s.jsonl").write_bytes(prompt % (1, b"fix the bug \\ud83d\\ude00 and \\ud83d")
                                     + prompt % (2, b"summarize the log"))
    monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0 if bulk else 1 << 62)
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, tmp_path / "projects", CATALOG, workers=2 if bulk else 0)
    rows = dict(conn.execute("SELECT uuid, text FROM prompts").fetchall())
    assert rows == {"u1": "fix the bug \U0001f600 and \ufffd", "u2": "summarize the log"}
    assert conn.execute("SELECT chars FROM prompts WHERE uuid = 'u1'").fetchone()[0] == 19
