"""The transcript parser: never raises anything but MalformedLine, the same answer from both JSON
decoders, and the block scanner never drops a line the parser would keep."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_router.transcripts import (
    CostState,
    MalformedLine,
    Prompt,
    UsageEvent,
    bulk_loads,
    decode_object,
    lines_to_parse,
    parse_line,
    parse_record,
    repeats,
    tool_uses,
)

from .conftest import REAL_CLAUDE_CODE

REAL_LINES = [
    line
    for path in sorted((REAL_CLAUDE_CODE / "projects").rglob("*.jsonl"))
    for line in path.read_bytes().splitlines()
]
ASSISTANT = next(line for line in REAL_LINES if b'"assistant"' in line and b'"usage"' in line)


def _outcome(line: bytes, loads=json.loads) -> object:
    try:
        return parse_line(line, loads)
    except MalformedLine:
        return MalformedLine


def _decoded(line: bytes) -> object:
    try:
        return parse_record(decode_object(line))
    except MalformedLine:
        return MalformedLine


def _mutated(line: bytes, cut: int, insert: bytes) -> bytes:
    cut %= len(line) + 1
    return line[:cut] + insert + line[cut:]


hostile_lines = st.one_of(
    st.binary(max_size=300),
    st.builds(_mutated, st.sampled_from(REAL_LINES), st.integers(0, 20_000),
              st.sampled_from([b"", b"\\ud800", b'"', b"}", b"\xff", b"-1", b'"12"', b"null", b"[" * 2000])),
)


@settings(max_examples=400, deadline=None)
@given(hostile_lines)
def test_parser_never_raises_anything_but_malformed_line(line: bytes) -> None:
    result = _outcome(line)  # any other exception fails the test
    assert result is None or result is MalformedLine or isinstance(result, (UsageEvent, CostState, Prompt, list))


@settings(max_examples=400, deadline=None)
@given(hostile_lines)
def test_bulk_decoder_gives_the_same_answer_as_json(line: bytes) -> None:
    assert _outcome(line, bulk_loads) == _outcome(line, json.loads)


def test_lone_surrogate_in_a_response_is_still_read_by_the_bulk_decoder() -> None:
    # JavaScript's JSON.stringify writes half an emoji as an escaped lone surrogate; orjson refuses it.
    record = json.loads(ASSISTANT)
    record["message"]["content"] = [{"type": "text", "text": "cut emoji \ud83d"}]
    line = json.dumps(record).encode()
    assert b"\\ud83d" in line
    event = parse_line(line, bulk_loads)
    assert isinstance(event, UsageEvent) and event == parse_line(line)


def test_deep_nesting_is_a_malformed_line_not_a_crash() -> None:
    line = b'{"type":"user","tool_result":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _outcome(line) is MalformedLine and _outcome(line, bulk_loads) is MalformedLine


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(REAL_LINES), hostile_lines.map(lambda b: b.replace(b"\n", b""))),
                max_size=30))
def test_block_scanner_keeps_every_line_the_parser_would_keep(lines: list[bytes]) -> None:
    block = b"".join(line + b"\n" for line in lines)
    count, kept = lines_to_parse(block)
    assert count == len(lines)
    kept_numbers = {number for number, _ in kept}
    for number, line in enumerate(lines, start=1):
        if _outcome(line) is not None:
            assert number in kept_numbers
    assert all(lines[number - 1] == line for number, line in kept)
    for _, line in kept:  # a line kept that starts like an object passed decode_line's marker test
        if line.startswith(b"{"):
            assert _outcome(line) == _decoded(line)


def test_prompts_are_what_the_user_typed_not_claude_codes_own_messages() -> None:
    prompts = [parsed for line in REAL_LINES if isinstance(parsed := parse_line(line), Prompt)]
    assert [p.text[:15] for p in prompts] == ["go. CALL:Agent:", "please run it. "]
    assert all(p.session_id and p.uuid and p.ts > 0 for p in prompts)


@pytest.mark.parametrize("text", ["\x00", " \x00\n", "\u200b", "\x1b\x7f"])
def test_a_prompt_with_nothing_to_read_is_not_a_prompt(text: str) -> None:
    record = {"type": "user", "uuid": "u1", "sessionId": "s1", "timestamp": "2026-11-22T21:07:29.891Z",
              "message": {"role": "user", "content": text}}
    assert parse_record(record) is None
    assert isinstance(parse_record({**record, "message": {"role": "user", "content": f"{text}fix it"}}), Prompt)


_VALUES = st.sampled_from([None, True, 1, -1, "", "x", "2026-11-22T21:07:29.891Z", [], {}, 10**30,
                           [{"type": "tool_use", "id": "toolu_x", "name": "Bash"}]])
_PLACES = st.sampled_from([(), ("message",), ("message", "usage"), ("message", "usage", "cache_creation")])
_KEYS = st.sampled_from(["id", "model", "usage", "timestamp", "requestId", "isSidechain", "input_tokens",
                         "output_tokens", "content", "ephemeral_1h_input_tokens", "type", "message", "agentId"])


def _changed(record: dict, changes: list) -> dict:
    record = json.loads(json.dumps(record))
    for place, key, value in changes:
        target = record
        for step in place:
            target = target.get(step) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target[key] = value
    return record


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_PLACES, _KEYS, _VALUES), max_size=3))
def test_a_repeated_copy_reads_as_the_kept_response_but_for_its_tool_uses(changes: list) -> None:
    kept_record = json.loads(ASSISTANT)
    kept = parse_record(kept_record)
    assert isinstance(kept, UsageEvent)
    record = _changed(kept_record, changes)
    if not repeats(record, kept, kept_record["message"]["usage"]):
        return
    parsed = parse_record(record)  # a repeat never raises where the kept copy did not
    assert isinstance(parsed, UsageEvent)
    assert parsed.tool_uses == tool_uses(record)
    parsed.tool_uses = kept.tool_uses
    assert parsed.total_tokens == kept.total_tokens and parsed.is_sidechain == kept.is_sidechain
    assert (parsed.message_id, parsed.request_id, parsed.raw_model, parsed.ts) == (
        kept.message_id, kept.request_id, kept.raw_model, kept.ts)
