"""The two commonest transcript lines read without building their JSON, for a bulk ingest.

A response's usage line and a user line carrying tool results are most of the lines an ingest keeps, and most of
their bytes are content nobody reads. msgspec decodes them into structs naming only the fields
``transcripts.parse_record`` reads, skipping the rest without making Python objects of it.

``read_line`` answers only when it is sure to give what ``transcripts.parse_line`` gives: any other kind of line,
any field not of the type the API writes, any count out of range, a bad timestamp, a line that is not strict
UTF-8 (msgspec does not check the strings it skips) gives ``None``, and the caller reads the line the usual way,
so results and every message about a malformed line stay the same.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .transcripts import (
    MAX_COUNT,
    SYNTHETIC_MODEL,
    MalformedLine,
    ToolResult,
    UsageEvent,
    timestamp_seconds,
    usage_iterations,
)


class _Split(msgspec.Struct):
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class _ServerTools(msgspec.Struct):
    web_search_requests: int = 0


class _Usage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation: _Split | None = None
    server_tool_use: _ServerTools | None = None
    inference_geo: str | None = None
    service_tier: str | None = None
    speed: str | None = None
    iterations: Any = None


class _Part(msgspec.Struct):
    text: str = ""


class _Block(msgspec.Struct):
    """A content block: a response's tool use, or a tool result sent back."""

    type: str | None = None
    id: str | None = None
    name: str | None = None
    tool_use_id: str | None = None
    content: str | list[_Part] | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None
    content: str | list[_Block] | None = None


class _Line(msgspec.Struct):
    type: str | None = None
    message: _Message | None = None
    timestamp: str | None = None
    requestId: str | None = None
    sessionId: str | None = None
    cwd: str | None = None
    gitBranch: str | None = None
    isSidechain: bool | None = None
    agentId: str | None = None
    attributionAgent: str | None = None


_decode = msgspec.json.Decoder(_Line).decode
# orjson refuses JSON nested deeper than 1,024; msgspec stops at the C recursion limit, lower on Python 3.11, higher
# on later versions. Where msgspec would read deeper, lines deep enough to need it are counted first.
_DEPTH = 1024


def _reads_deeper_than_orjson() -> bool:
    deep = b'{"z":' + b"[" * _DEPTH + b"]" * _DEPTH + b"}"
    try:
        _decode(deep)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


_CHECK_DEPTH = _reads_deeper_than_orjson()


def read_line(line: bytes) -> UsageEvent | list[ToolResult] | None:
    """What ``transcripts.parse_line`` gives for ``line`` (a line starting with "{"), if it is a response's usage
    or a user line's tool results, read cheaply; ``None`` when the line must be read the usual way."""
    if not line.isascii():
        try:
            line.decode()
        except UnicodeDecodeError:
            return None
    if _CHECK_DEPTH and len(line) > 2 * _DEPTH and line.count(b"[") + line.count(b"{") > _DEPTH:
        return None
    try:
        record = _decode(line)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    message, timestamp = record.message, record.timestamp
    if message is None or timestamp is None:
        return None
    try:
        if record.type == "assistant":
            return _usage_event(record, message, timestamp)
        if record.type == "user":
            return _tool_results(record, message, timestamp)
    except MalformedLine:  # a bad timestamp: the usual reading says so
        return None
    return None


def _usage_event(record: _Line, message: _Message, timestamp: str) -> UsageEvent | None:
    usage, model, message_id = message.usage, message.model, message.id
    if usage is None or not model or model == SYNTHETIC_MODEL or not message_id:
        return None
    split, server_tools = usage.cache_creation, usage.server_tool_use
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
              usage.cache_creation_input_tokens, 0 if split is None else split.ephemeral_5m_input_tokens,
              0 if split is None else split.ephemeral_1h_input_tokens,
              0 if server_tools is None else server_tools.web_search_requests)
    for value in counts:
        if not 0 <= value <= MAX_COUNT:
            return None
    inputs, outputs, reads, writes, writes_5m, writes_1h, searches = counts
    content = message.content
    tool_uses = [] if not isinstance(content, list) else [
        (block.id, block.name) for block in content
        if block.type == "tool_use" and block.id is not None and block.name is not None]
    return UsageEvent(
        message_id, record.requestId or "", timestamp_seconds(timestamp), timestamp,
        record.sessionId or "", record.cwd or "", record.gitBranch or "", 1 if record.isSidechain else 0,
        record.agentId, record.attributionAgent, model, inputs, outputs, reads, writes, writes_5m, writes_1h, searches,
        usage.inference_geo or "", usage.service_tier or "", usage.speed or "", tool_uses,
        usage_iterations(usage.iterations))


def _tool_results(record: _Line, message: _Message, timestamp: str) -> list[ToolResult] | None:
    content = message.content
    if not isinstance(content, list):
        return None
    ts = timestamp_seconds(timestamp)
    session_id, sidechain = record.sessionId or "", 1 if record.isSidechain else 0
    results = []
    for block in content:
        if block.type == "tool_result" and block.tool_use_id is not None:
            results.append(ToolResult(block.tool_use_id, ts, session_id, _chars(block.content), sidechain))
    return results or None


def _chars(content: str | list[_Part] | None) -> int:
    if isinstance(content, str):
        return len(content)
    return 0 if content is None else sum(len(part.text) for part in content)
