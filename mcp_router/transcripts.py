"""Reading Claude Code transcripts: JSONL lines in, usage events and cost-state records out.

Only three kinds of line matter and each is recognised by a cheap substring test before any JSON is
decoded, because most of a transcript's bytes are tool results and attachments:

- ``type: "assistant"`` with ``message.usage``: one API response (written once per content block,
  every copy repeating ``message.id``, ``requestId`` and the usage);
- ``type: "cost-state"``: Claude Code's own cost of the session so far;
- ``type: "user"`` carrying ``tool_result`` blocks: what the main model had to read;
- ``type: "user"`` with a ``promptId`` and text: what the user typed (the report routes it);
- mcp-router's own per-prompt advice (an ``attachment`` of the UserPromptSubmit hook's output) and the
  user's ``/model`` changes (``system`` / ``local_command``): the report measures whether advice is followed.

``parse_line`` raises ``MalformedLine`` for a line that is not a JSON object or whose usage is not
what the Messages API writes (a string or negative token count, a missing message id); callers count
and skip such lines.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from stat import S_ISREG
from typing import Any, BinaryIO

SYNTHETIC_MODEL = "<synthetic>"


class MalformedLine(ValueError):
    """A complete transcript line that cannot be read."""


def open_regular(path: str | os.PathLike[str]) -> BinaryIO | None:
    """``path`` opened for reading if it is a regular file, else None. Opened without blocking: a FIFO would stall
    the caller, and /dev/zero never ends."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        regular = S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


@dataclass(slots=True)
class UsageEvent:
    message_id: str
    request_id: str
    ts: float
    timestamp: str
    session_id: str
    cwd: str
    git_branch: str
    is_sidechain: int
    agent_id: str | None
    agent_type: str | None
    raw_model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    web_search_requests: int
    inference_geo: str
    service_tier: str
    speed: str
    tool_uses: list[tuple[str, str]]  # (tool_use_id, tool name) of this content block
    # Server-side iterations as (input, output, cache_read, cache_creation, cache_creation_1h) tokens.
    iterations: tuple[tuple[int, int, int, int, int], ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_creation_tokens


@dataclass(slots=True)
class CostState:
    session_id: str
    total_cost_usd: float
    model_usage: dict[str, Any]
    has_unknown_model_cost: bool


@dataclass(slots=True)
class ToolResult:
    tool_use_id: str
    ts: float
    session_id: str
    content_chars: int
    is_sidechain: int


@dataclass(slots=True)
class Prompt:
    uuid: str
    session_id: str
    ts: float
    text: str


@dataclass(slots=True)
class Advice:
    """Advice the session was given (``kind`` "delegate" or "model", with its routing category), or a
    ``/model`` change the user made (``kind`` "model_change", ``category`` the tier switched to, or "other")."""

    uuid: str
    session_id: str
    ts: float
    kind: str
    category: str


_EARLIEST, _LATEST = 946_684_800.0, 7_258_118_400.0  # 2000-01-01 and 2200-01-01, UTC
PROMPT_CHARS = 2000  # enough for the router; a pasted log need not be kept whole
Parsed = UsageEvent | CostState | list[ToolResult] | Prompt | Advice | None
# advice.ADVICE_LINE, repeated: the ledger must not import the router's module to read a transcript.
_ADVICE_LINE = re.compile(r"^mcp-router advice \((\w+), (haiku|sonnet|opus)-tier\)")


# The markers of the lines parse_line keeps. One regex pass over a line that has none of them (attachments,
# most of a transcript's lines) costs less than one substring search per marker.
_MARKERS = re.compile(rb'"(?:tool_result|usage|cost-state|promptId|commandRun)"|"mcp-router advice \(')
_NOT_USAGE = re.compile(rb'"(?:tool_result|cost-state|promptId|commandRun)"|"mcp-router advice \(')


def lines_to_parse(block: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """The number of lines in ``block`` (complete lines, each ending in a newline) and those of them that
    ``parse_line`` could keep, as (line number within the block from 1, line). A line kept that starts with
    "{" holds the markers ``decode_line`` looks for: ``decode_object`` reads it as ``decode_line`` would.

    A line is sliced out, which copies it, only when it holds the markers or does not start like a JSON
    object; the rest, most of the bytes of a transcript, are only searched in place.
    """
    find, search = block.find, _MARKERS.search
    start, number, size = 0, 0, len(block)
    lines = []
    while start < size:
        stop = find(b"\n", start)
        number += 1
        if start < stop:
            if block[start] != 0x7B:  # "{"
                lines.append((number, block[start:stop]))
            elif (match := search(block, start, stop)) is not None:
                if match.end() - match.start() == 7 and find(b'"assistant"', start, stop) < 0:  # "usage" alone
                    match = _NOT_USAGE.search(block, match.end(), stop)
                if match is not None:
                    lines.append((number, block[start:stop]))
        start = stop + 1
    return number, lines


def bulk_loads(data: bytes) -> Any:
    """``json.loads`` three to four times faster, for ingesting many files.

    orjson refuses a few things json reads (an escaped lone surrogate, which JavaScript's JSON.stringify
    writes for a split emoji), so those lines go to json and both decoders give the same result. The hook
    keeps plain json: importing orjson costs about 25 ms, a quarter of the hook's budget.
    """
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):  # json would go as deep as it may, only to fail too
            raise
        return json.loads(data)


def parse_line(line: bytes, loads: Callable[[bytes], Any] = json.loads) -> Parsed:
    """Parse one complete line (without its newline); ``None`` for lines that carry nothing we keep."""
    record = decode_line(line, loads)
    return None if record is None else parse_record(record)


def decode_line(line: bytes, loads: Callable[[bytes], Any] = json.loads) -> dict[str, Any] | None:
    """The JSON object of a line that may carry something we keep; ``None`` for the others, undecoded."""
    stripped = line.strip().removeprefix(b"\xef\xbb\xbf")  # a byte order mark, written by some editors
    if not stripped:
        return None
    if not stripped.startswith(b"{"):
        raise MalformedLine("not a JSON object")
    # Tool results first: they are most of the bytes, and the marker comes early in their lines.
    if not (b'"tool_result"' in line or (b'"usage"' in line and b'"assistant"' in line) or b'"cost-state"' in line
            or b'"promptId"' in line or b'"mcp-router advice (' in line or b'"commandRun"' in line):
        return None
    return decode_object(stripped, loads)


def decode_object(line: bytes, loads: Callable[[bytes], Any] = json.loads) -> dict[str, Any]:
    """The JSON object of a line that holds the markers (see ``lines_to_parse``)."""
    stripped = line.strip()
    try:
        record = loads(stripped)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedLine(f"invalid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise MalformedLine("not a JSON object")
    return record


def parse_record(record: dict[str, Any]) -> Parsed:
    """What a decoded line carries (see ``parse_line``)."""
    kind = record.get("type")
    if kind == "assistant":
        return _usage_event(record)
    if kind == "cost-state":
        return _cost_state(record)
    if kind == "user":
        return _tool_results(record) or _prompt(record)
    if kind in ("attachment", "system"):
        return _advice(record)
    return None


def repeats(record: dict[str, Any], kept: UsageEvent, kept_usage: dict[str, Any]) -> bool:
    """Whether ``record`` is another copy of the response ``kept`` (parsed from a line whose usage object was
    ``kept_usage``) that ``parse_record`` would read exactly as ``kept`` but for its content block: the same
    ids, model, timestamp, chain and usage, so it neither fails where ``kept`` did not nor beats it.

    Claude Code writes a response once per content block; the copies need only their tool names read.
    """
    message = record.get("message")
    if (record.get("type") != "assistant" or type(message) is not dict or message.get("usage") != kept_usage
            or message.get("id") != kept.message_id):
        return False
    request_id = record.get("requestId")
    return ((request_id if type(request_id) is str else "") == kept.request_id
            and message.get("model") == kept.raw_model and record.get("timestamp") == kept.timestamp
            and (record.get("isSidechain") is True) == (kept.is_sidechain == 1))


def tool_uses(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(id, name) of the tool_use blocks of an assistant line's content."""
    message = record.get("message")
    return _tool_uses(message.get("content")) if type(message) is dict else []


# No response has a billion tokens of one kind (context windows are a few million); a larger count is damage,
# and SQLite's 64-bit sums over millions of rows must not overflow.
MAX_COUNT = 10**9


def _count(usage: dict[str, Any], key: str, required: bool = False) -> int:
    value = usage.get(key)
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedLine(f"usage.{key} is {_short(value)}, expected a whole number >= 0")
    if value > MAX_COUNT:
        raise MalformedLine(f"usage.{key} is {_short(value)}, more than any response has")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return value if isinstance(value, str) else ""


# Epoch seconds of timestamps read lately: the lines of one turn (its responses, their copies, the tool results)
# share a timestamp, and parsing one costs more than the rest of a tool result line.
_SECONDS: dict[str, float] = {}


def _timestamp(record: dict[str, Any]) -> tuple[float, str]:
    text = record.get("timestamp")
    if not isinstance(text, str):
        raise MalformedLine("missing timestamp")
    return timestamp_seconds(text), text


def timestamp_seconds(text: str) -> float:
    """Epoch seconds of a line's timestamp; ``MalformedLine`` when it is not one, or out of range."""
    ts = _SECONDS.get(text)
    if ts is not None:
        return ts
    try:
        moment = datetime.fromisoformat(text)
        ts = moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise MalformedLine(f"bad timestamp {_short(text)}") from None
    if not _EARLIEST <= ts < _LATEST:  # a damaged year would stretch every report over centuries
        raise MalformedLine(f"timestamp {_short(text)} is out of range")
    if moment.tzinfo is not None:  # one without an offset is local time, which a process can change
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[text] = ts
    return ts


def _usage_event(record: dict[str, Any]) -> UsageEvent | None:
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return None
    model = message.get("model")
    if model == SYNTHETIC_MODEL:
        return None
    message_id = message.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise MalformedLine("assistant message without an id")
    if not isinstance(model, str) or not model:
        raise MalformedLine("assistant message without a model")
    ts, timestamp = _timestamp(record)
    # This runs for every copy of every response: plain lookups, and the checks of _count only when a value
    # is not a whole number from 0 to MAX_COUNT.
    get, split, server_tools = usage.get, usage.get("cache_creation"), usage.get("server_tool_use")
    counts: tuple[Any, ...] = (get("input_tokens"), get("output_tokens"), get("cache_read_input_tokens", 0),
              get("cache_creation_input_tokens", 0),
              split.get("ephemeral_5m_input_tokens", 0) if type(split) is dict else 0,
              split.get("ephemeral_1h_input_tokens", 0) if type(split) is dict else 0,
              server_tools.get("web_search_requests", 0) if type(server_tools) is dict else 0)
    for value in counts:
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            counts = _checked_counts(usage, split, server_tools)
            break
    inputs, outputs, reads, writes, writes_5m, writes_1h, searches = counts
    record_get = record.get
    request_id, session_id, cwd, branch = (record_get("requestId"), record_get("sessionId"), record_get("cwd"),
                                           record_get("gitBranch"))
    agent_id, agent_type = record_get("agentId"), record_get("attributionAgent")
    geo, tier, speed = get("inference_geo"), get("service_tier"), get("speed")
    # Arguments in field order, not by keyword: keywords cost a quarter of it.
    return UsageEvent(
        message_id, request_id if type(request_id) is str else "", ts, timestamp,
        session_id if type(session_id) is str else "", cwd if type(cwd) is str else "",
        branch if type(branch) is str else "", 1 if record_get("isSidechain") is True else 0,
        agent_id if type(agent_id) is str else None, agent_type if type(agent_type) is str else None,
        model, inputs, outputs, reads, writes, writes_5m, writes_1h, searches,
        geo if type(geo) is str else "", tier if type(tier) is str else "",
        speed if type(speed) is str else "", _tool_uses(message.get("content")),
        usage_iterations(usage.get("iterations")),
    )


def _checked_counts(usage: dict[str, Any], split: Any, server_tools: Any) -> tuple[int, ...]:
    """The token counts of a usage object whose counts are not all plain: MalformedLine names the first bad one."""
    searches = _count(server_tools, "web_search_requests") if isinstance(server_tools, dict) else 0
    split = split if isinstance(split, dict) else {}
    return (_count(usage, "input_tokens", required=True), _count(usage, "output_tokens", required=True),
            _count(usage, "cache_read_input_tokens"), _count(usage, "cache_creation_input_tokens"),
            _count(split, "ephemeral_5m_input_tokens"), _count(split, "ephemeral_1h_input_tokens"), searches)


def usage_iterations(value: Any) -> tuple[tuple[int, int, int, int, int], ...]:
    """The token counts of a response's server-side iterations; none when the list is absent or not as the
    API writes it (the response is then priced whole)."""
    if not value or not isinstance(value, list):
        return ()
    parts = []
    try:
        for item in value:
            if not isinstance(item, dict) or item.get("type") != "message":
                continue
            split = item.get("cache_creation")
            parts.append((
                _count(item, "input_tokens"), _count(item, "output_tokens"), _count(item, "cache_read_input_tokens"),
                _count(item, "cache_creation_input_tokens"),
                _count(split, "ephemeral_1h_input_tokens") if isinstance(split, dict) else 0,
            ))
    except MalformedLine:
        return ()
    return tuple(parts)


def _tool_uses(content: Any) -> list[tuple[str, str]]:
    """(id, name) of the tool_use blocks of a response's content."""
    if not isinstance(content, list):
        return []
    return [(block["id"], block["name"]) for block in content
            if isinstance(block, dict) and block.get("type") == "tool_use"
            and isinstance(block.get("id"), str) and isinstance(block.get("name"), str)]


def _cost_state(record: dict[str, Any]) -> CostState:
    total = record.get("totalCostUSD")
    if isinstance(total, bool) or not isinstance(total, (int, float)) or not 0 <= total < 1e15:
        raise MalformedLine(f"cost-state totalCostUSD is {_short(total)}")
    model_usage = record.get("modelUsage")
    return CostState(
        session_id=_text(record, "sessionId"),
        total_cost_usd=float(total),
        model_usage=model_usage if isinstance(model_usage, dict) else {},
        has_unknown_model_cost=record.get("hasUnknownModelCost") is True,
    )


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(block.get("text", "")) for block in content
                   if isinstance(block, dict) and isinstance(block.get("text", ""), str))
    return 0


def _tool_results(record: dict[str, Any]) -> list[ToolResult] | None:
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return None
    ts, _ = _timestamp(record)
    session_id = _text(record, "sessionId")
    sidechain = 1 if record.get("isSidechain") is True else 0
    return [
        ToolResult(block["tool_use_id"], ts, session_id, _content_chars(block.get("content")), sidechain)
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result" and isinstance(block.get("tool_use_id"), str)
    ] or None


# Printable but drawn as nothing: the Hangul fillers and the blank Braille pattern (used to post "empty" messages).
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(char: str) -> bool:
    return (char.isprintable() and not char.isspace() and char not in _FILLERS
            and unicodedata.category(char) not in ("Mn", "Me"))  # a combining mark alone marks nothing


def opening(text: str, chars: int) -> str:
    """The first ``chars`` characters of ``text`` from its first visible one: a prompt that opens with a page of
    blank lines is read by what it asks, not cut to nothing; empty when there is nothing to read."""
    start = next((at for at, char in enumerate(text) if _visible(char)), len(text))
    return text[start:start + chars]


def blank(text: str) -> bool:
    """Nothing to read: only white space and invisible characters (NUL, other controls, zero-width marks, fillers,
    combining marks with nothing to combine with)."""
    return not opening(text, 1)


def _prompt(record: dict[str, Any]) -> Prompt | None:
    """A prompt the user typed; not Claude Code's own messages (task notifications, meta lines)."""
    if record.get("promptSource") == "system" or record.get("isMeta") is True or record.get("isSidechain") is True:
        return None
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        content = "\n".join(block["text"] for block in content if isinstance(block, dict)
                             and block.get("type") == "text" and isinstance(block.get("text"), str))
    uuid = record.get("uuid")
    text = opening(content, PROMPT_CHARS) if isinstance(content, str) else ""
    if not text or not isinstance(uuid, str):
        return None
    ts, _ = _timestamp(record)
    return Prompt(uuid, _text(record, "sessionId"), ts, text)


def _advice(record: dict[str, Any]) -> Advice | None:
    """Our advice as Claude Code recorded the hook's answer, or the user's ``/model`` change."""
    uuid = record.get("uuid")
    if not isinstance(uuid, str) or record.get("isSidechain") is True:
        return None
    attachment = record.get("attachment")
    command = record.get("commandRun")
    if isinstance(attachment, dict) and attachment.get("hookEvent") == "UserPromptSubmit":
        content = attachment.get("content")
        text = content[0] if isinstance(content, list) and content else content
        kinds = {"hook_additional_context": "delegate", "hook_system_message": "model"}
        if not isinstance(text, str) or attachment.get("type") not in kinds or not (match := _ADVICE_LINE.match(text)):
            return None
        kind, category = kinds[attachment["type"]], match.group(1)
    elif isinstance(command, dict) and command.get("command") == "model" and isinstance(command.get("args"), str):
        # The tier only: Claude Code records whatever was typed after /model, which may be any text.
        lowered = command["args"].lower()
        kind, category = "model_change", next((t for t in ("haiku", "sonnet", "opus") if t in lowered), "other")
    else:
        return None
    ts, _ = _timestamp(record)
    return Advice(uuid, _text(record, "sessionId"), ts, kind, category)
