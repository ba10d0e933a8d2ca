"""A local stand-in for the Anthropic Messages API, for tests: real HTTP on 127.0.0.1.

Speaks what the SDK and Claude Code speak: ``POST /v1/messages`` (``?beta=true`` too) as JSON or as an
SSE stream (message_start, content_block_start/delta/stop with text and tool_use input deltas,
message_delta with the final usage, message_stop), ``POST /v1/messages/count_tokens``, API-shaped
errors (429 / 500 / 529 with retry-after) and a ``request-id`` header. Usage is realistic: input
tokens estimated from the request's size, and blocks marked ``cache_control`` written to the cache
the first time a prefix is seen (``cache_creation``, as 5-minute writes) and read from it after.

Answers come from a responder: ``responder(request_json) -> Reply`` (default: a short text). Faults
are scripted with ``faults``: a list consumed one per request, each an HTTP status, ``"malformed"``
(invalid JSON body) or ``None`` (answer normally). Every request is kept in ``requests``.

    with StandinAPI() as api:             # or: python tests/standin_api.py --port 8123
        client = anthropic.Anthropic(base_url=api.url, api_key="test")
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


@dataclass
class Reply:
    text: str = ""
    tool_uses: list[dict[str, Any]] = field(default_factory=list)  # {"name": …, "input": {…}}
    output_tokens: int | None = None
    stop_reason: str | None = None


def default_responder(request: dict[str, Any]) -> Reply:
    return Reply(text="OK: " + last_user_text(request)[:80])


def last_user_text(request: dict[str, Any]) -> str:
    """The text of the newest user turn (the last message may be split or be a system reminder)."""
    for message in reversed(request.get("messages", [])):
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            return "\n".join(texts)
    return ""


def estimate_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


class StandinAPI:
    def __init__(self, responder: Callable[[dict[str, Any]], Reply] = default_responder, port: int = 0):
        self.responder = responder
        self.faults: list[int | str | None] = []
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._cache: set[str] = set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandinAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sent_text(self) -> str:
        """Everything this server received, as the strings themselves (not JSON-escaped) and as JSON."""
        texts = []
        for request in self.requests:
            texts.append(json.dumps(request))
            for message in request.get("messages", []):
                content = message["content"]
                texts.extend([content] if isinstance(content, str) else [b.get("text", "") for b in content])
            texts.extend(block.get("text", "") for block in request.get("system", []) if isinstance(block, dict))
        return "\n".join(texts)

    def usage_for(self, request: dict[str, Any]) -> dict[str, int]:
        """Input split into cache reads, cache writes and plain input, from the cache_control markers."""
        prefix: list[Any] = []
        cached_prefix_tokens = 0
        marked: list[str] = []
        for part in _parts(request):
            prefix.append(part)
            if isinstance(part, dict) and part.get("cache_control"):
                marked.append(hashlib.sha256(json.dumps(prefix, sort_keys=True).encode()).hexdigest())
                cached_prefix_tokens = estimate_tokens(prefix)
        total = estimate_tokens(_parts(request))
        read = write = 0
        if marked:
            with self._lock:
                if marked[-1] in self._cache:
                    read = cached_prefix_tokens
                else:
                    write = cached_prefix_tokens
                    self._cache.update(marked)
        return {"input_tokens": max(1, total - read - write), "cache_read_input_tokens": read,
                "cache_creation_input_tokens": write}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # Claude Code may probe the server
                self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    return self._error(400, "request body is not JSON")
                path = self.path.split("?", 1)[0]
                with api._lock:
                    api.requests.append(body)
                    api.paths.append(self.path)
                    fault = api.faults.pop(0) if api.faults else None
                if fault == "malformed":
                    return self._raw(200, b'{"id": "msg_broken", "content": [', "application/json")
                if isinstance(fault, int):
                    return self._error(fault, f"scripted {fault}", retry_after="0")
                if path == "/v1/messages/count_tokens":
                    return self._json(200, {"input_tokens": estimate_tokens(_parts(body))})
                if path != "/v1/messages":
                    return self._error(404, f"no route {path}")
                reply = api.responder(body)
                message = _message(body, reply, api.usage_for(body))
                if body.get("stream"):
                    return self._stream(message)
                return self._json(200, message)

            def _error(self, status: int, message: str, retry_after: str | None = None) -> None:
                payload = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
                self._json(status, payload, {"retry-after": retry_after} if retry_after else {})

            def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                self._raw(status, json.dumps(payload).encode(), "application/json", headers)

            def _raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("request-id", f"req_{uuid.uuid4().hex[:20]}")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, message: dict[str, Any]) -> None:
                events = list(_sse_events(message))
                data = b"".join(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode() for name, payload in events)
                self._raw(200, data, "text/event-stream")

        return Handler


def _parts(request: dict[str, Any]) -> list[Any]:
    system = request.get("system") or []
    parts: list[Any] = [system] if isinstance(system, str) else list(system)
    for message in request.get("messages", []):
        content = message.get("content")
        parts.extend([content] if isinstance(content, str) else content or [])
    return parts


def _message(request: dict[str, Any], reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for tool in reply.tool_uses:
        content.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": tool["name"],
                        "input": tool.get("input", {})})
    output = reply.output_tokens if reply.output_tokens is not None else max(1, estimate_tokens(content))
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
        "model": request.get("model", "claude-haiku-5-5"), "content": content,
        "stop_reason": reply.stop_reason or ("tool_use" if reply.tool_uses else "end_turn"), "stop_sequence": None,
        "usage": {
            **usage, "output_tokens": output,
            "cache_creation": {"ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
                               "ephemeral_1h_input_tokens": 0},
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
            "service_tier": "standard", "inference_geo": "",
        },
    }


def _sse_events(message: dict[str, Any]) -> Any:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": block["text"]}}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {**block, "input": {}}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta",
                                                    "partial_json": json.dumps(block["input"])}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                            "usage": usage}
    yield "message_stop", {"type": "message_stop"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve the stand-in Messages API until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with StandinAPI(port=args.port) as api:
        print(api.url, flush=True)
        threading.Event().wait()
