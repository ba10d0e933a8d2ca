"""The bulk ingest's line reader: where it answers, it answers as the parser does; it answers for the lines that
matter, and leaves to the parser every line it could misread."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_router import bulk_lines
from mcp_router.bulk_lines import read_line
from mcp_router.transcripts import MalformedLine, UsageEvent, parse_line

from .fuzz_lines import ignored_lines, malformed_lines, valid_lines
from .test_transcripts import ASSISTANT, REAL_LINES, hostile_lines

TOOL_RESULT = next(line for line in REAL_LINES if b'"tool_result"' in line)


def _parsed(line: bytes) -> object:
    try:
        return parse_line(line)
    except MalformedLine:
        return MalformedLine


def _with(line: bytes, field: bytes, value: bytes) -> bytes:
    """``line`` with a field the parser never reads added at the start of its object."""
    return b'{"' + field + b'":' + value + b"," + line[1:]


def _answers_as_the_parser(line: bytes) -> None:
    answer = read_line(line) if line.startswith(b"{") else None
    assert answer is None or answer == _parsed(line)


@settings(max_examples=400, deadline=None)
@given(st.one_of(hostile_lines, valid_lines().map(lambda v: v.line), malformed_lines().map(lambda v: v.line),
                 ignored_lines().map(lambda v: v.line)))
def test_answers_only_as_the_parser_does(line: bytes) -> None:
    _answers_as_the_parser(line.replace(b"@ID@", b"1"))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REAL_LINES), st.sampled_from([b'"\xff"', b'"\\ud800"', b'"\xed\xa0\x80"', b"1e400", b"-0",
                                                     b'"\\u0000"', b"[" * 1100 + b"]" * 1100, b"{}", b"NaN"]),
       st.sampled_from([b"toolUseResult", b"x", b"requestId", b"isSidechain", b"timestamp", b"message"]))
def test_a_real_line_with_an_odd_field_is_read_as_the_parser_reads_it(line: bytes, value: bytes, field: bytes) -> None:
    if line.startswith(b"{"):
        _answers_as_the_parser(_with(line, field, value))


def test_reads_the_real_responses_and_tool_results_itself() -> None:
    kept = [line for line in REAL_LINES if isinstance(_parsed(line), (UsageEvent, list))]
    assert len(kept) >= 10 and any(isinstance(_parsed(line), list) for line in kept)
    for line in kept:
        assert read_line(line) == _parsed(line)


@pytest.mark.parametrize("line", [
    _with(ASSISTANT, b"x", b'"\xff"'),  # msgspec does not check the UTF-8 of strings it skips
    _with(TOOL_RESULT, b"x", b"[" * 1025 + b"]" * 1025),  # deeper than orjson reads
])
def test_leaves_to_the_parser_a_line_it_would_take_though_the_parser_refuses_it(line: bytes) -> None:
    assert _parsed(line) is MalformedLine
    assert read_line(line) is None


def test_counts_brackets_where_msgspec_reads_deeper_than_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_lines, "_CHECK_DEPTH", True)
    assert read_line(_with(TOOL_RESULT, b"x", b"[" * 1025 + b"]" * 1025)) is None
    assert read_line(TOOL_RESULT) == _parsed(TOOL_RESULT)


def test_a_response_keeps_its_iterations() -> None:
    record = json.loads(ASSISTANT)
    record["message"]["usage"]["iterations"] = [{"type": "message", "input_tokens": 5, "output_tokens": 7}]
    line = json.dumps(record).encode()
    event = read_line(line)
    assert isinstance(event, UsageEvent) and event.iterations == ((5, 7, 0, 0, 0),) and event == _parsed(line)
