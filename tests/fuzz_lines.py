"""Generated transcript lines for the ingest fuzz test and its benchmark.

Hypothesis draws a few hundred line *variants* (valid responses with random counts, prices, iterations, fast
mode and unknown fields; truncated, wrongly typed, too large, binary, deeply nested and undecodable lines;
lines ingest ignores) and ``expand`` writes millions of lines from them with a seeded generator, each valid copy
under a fresh message id, so the file is large but hypothesis's shrinking stays on the variants. ``expand``
returns what an independent reading of those lines must find: the responses, their token and cost totals
(the reference formula of ``tests/reference.py``), and the malformed lines.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from .reference import REFERENCE, reference_cost

UNKNOWN_MODEL = "claude-fuzz-unknown-1"
MODELS = sorted(REFERENCE)
ID = b"@ID@"
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


@dataclass(frozen=True)
class Variant:
    kind: str  # "valid", "malformed" or "ignored"
    line: bytes  # ``ID`` is replaced by a number unique to each copy
    model: str = ""
    tokens: tuple[int, int, int, int] = (0, 0, 0, 0)
    cost: float | None = None  # the reference cost of a valid line; None for an unpriced model


@dataclass
class Expected:
    lines: int = 0
    responses: int = 0
    malformed: int = 0
    unpriced: int = 0
    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    cost_usd: float = 0.0


counts = st.one_of(st.integers(0, 5_000), st.integers(0, 300_000), st.integers(0, 10**9))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=20),
                         st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=4)
extras = st.dictionaries(st.text(max_size=10).map(lambda key: "x_" + key), json_values, max_size=2)


part_counts = st.one_of(st.integers(0, 5_000), st.integers(0, 300_000), st.integers(0, 3 * 10**8))


@st.composite
def usages(draw: st.DrawFn) -> dict[str, Any]:
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        writes = draw(part_counts)
        parts.append({"type": "message", "input_tokens": draw(part_counts), "output_tokens": draw(part_counts),
                      "cache_read_input_tokens": draw(part_counts), "cache_creation_input_tokens": writes,
                      "cache_creation": {"ephemeral_1h_input_tokens": draw(st.integers(0, writes))}})
    if parts and draw(st.booleans()):  # iterations that add up to the request
        usage: dict[str, Any] = {k: sum(p[k] for p in parts) for k in TOKEN_KEYS}
        usage["cache_creation"] = {"ephemeral_1h_input_tokens": sum(
            p["cache_creation"]["ephemeral_1h_input_tokens"] for p in parts)}
    else:
        writes = draw(counts)
        usage = {"input_tokens": draw(counts), "output_tokens": draw(counts), "cache_read_input_tokens": draw(counts),
                 "cache_creation_input_tokens": writes,
                 "cache_creation": {"ephemeral_1h_input_tokens": draw(st.integers(0, writes))}}
    usage["iterations"] = parts
    usage["speed"] = draw(st.sampled_from(["fast", "standard", ""]))
    usage["inference_geo"] = draw(st.sampled_from(["us", "global", ""]))
    usage["server_tool_use"] = {"web_search_requests": draw(st.integers(0, 20))}
    usage.update(draw(extras))
    return usage


def _record(model: str, usage: Any, **changes: Any) -> dict[str, Any]:
    """An assistant line as Claude Code writes it: ``type`` first, so a line cut after ``usage`` keeps both
    markers ingest looks for."""
    record: dict[str, Any] = {"type": "assistant", "sessionId": "fuzz", "requestId": "req_@ID@",
                              "timestamp": "2026-11-20T10:00:00.000Z", "cwd": "/w",
                              "message": {"id": "msg_@ID@", "model": model, "usage": usage,
                                          "content": [{"type": "text", "text": "x"}]}}
    record.update(changes)
    return record


def _dump(record: Any, ascii_only: bool = True) -> bytes:
    try:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=ascii_only).encode()
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8: escaped, as JavaScript writes it
        return _dump(record)


@st.composite
def valid_lines(draw: st.DrawFn) -> Variant:
    model = draw(st.sampled_from([*MODELS, UNKNOWN_MODEL]))
    usage = draw(usages())
    record = _record(model, usage, **draw(extras))
    record["message"].update(draw(extras))
    tokens = tuple(usage[k] for k in TOKEN_KEYS)
    cost = reference_cost(model, usage) if model in REFERENCE else None
    return Variant("valid", _dump(record, draw(st.booleans())), model, tokens, cost)  # type: ignore[arg-type]


@st.composite
def malformed_lines(draw: st.DrawFn) -> Variant:
    model = draw(st.sampled_from(MODELS))
    kind = draw(st.sampled_from(["truncated", "wrong_type", "huge", "binary", "deep", "no_id", "timestamp",
                                 "undecodable", "infinite"]))
    usage = {"input_tokens": draw(counts), "output_tokens": draw(counts)}
    if kind == "truncated":
        line = _dump(_record(model, draw(usages())))
        cut = draw(st.integers(line.index(b'"usage"') + 8, len(line) - 2))
        return Variant("malformed", line[:cut])
    if kind == "wrong_type":
        key = draw(st.sampled_from(["input_tokens", "output_tokens", "cache_read_input_tokens"]))
        bad = draw(st.one_of(st.text(max_size=5), st.integers(-10**6, -1), st.booleans(), st.lists(st.integers()),
                             st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
                             *( [st.none()] if key != "cache_read_input_tokens" else [])))
        return Variant("malformed", _dump(_record(model, {**usage, key: bad})))
    if kind == "huge":
        return Variant("malformed", _dump(_record(model, {**usage, "output_tokens": draw(st.integers(10**9 + 1))})))
    if kind == "infinite":
        return Variant("malformed", _dump(_record(model, {**usage, "input_tokens": 7})).replace(
            b'"input_tokens":7', b'"input_tokens":1e400'))
    if kind == "binary":
        return Variant("malformed", b"\xff" + draw(st.binary(max_size=200)).replace(b"\n", b""))
    if kind == "deep":
        depth = draw(st.integers(2_000, 4_000))
        return Variant("malformed", b'{"type":"assistant","message":{"usage":' + b"[" * depth + b"]" * depth + b"}}")
    if kind == "no_id":
        record = _record(model, usage)
        del record["message"]["id"]
        return Variant("malformed", _dump(record))
    if kind == "timestamp":
        stamp = draw(st.sampled_from(["yesterday", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", 12]))
        return Variant("malformed", _dump(_record(model, usage, timestamp=stamp)))
    line = _dump(_record(model, usage, cwd="/caf\u00e9"), ascii_only=False)  # undecodable: UTF-8 cut in two
    return Variant("malformed", line.replace("\u00e9".encode(), b"\xc3"))


@st.composite
def ignored_lines(draw: st.DrawFn) -> Variant:
    kind = draw(st.sampled_from(["attachment", "synthetic", "blank", "usage_not_object", "truncated_other"]))
    if kind == "attachment":
        return Variant("ignored", _dump({"type": "attachment", "sessionId": "fuzz", **draw(extras)}))
    if kind == "synthetic":
        return Variant("ignored", _dump(_record("<synthetic>", {"input_tokens": 0, "output_tokens": 0})))
    if kind == "blank":
        return Variant("ignored", draw(st.sampled_from([b"", b"   ", b"\t"])))
    if kind == "usage_not_object":
        return Variant("ignored", _dump(_record(MODELS[0], draw(st.sampled_from([5, "x", None, []])))))
    line = _dump({"type": "attachment", "attachment": {"text": draw(st.text(alphabet="abc ", max_size=40))}})
    return Variant("ignored", line[:draw(st.integers(1, len(line) - 1))])  # no marker: never decoded


variants = st.lists(st.one_of(valid_lines(), malformed_lines(), ignored_lines()), min_size=1, max_size=60)


def expand(found: list[Variant], lines: int, seed: int, folder: Path, files: int = 8) -> Expected:
    """Write about ``lines`` lines drawn from ``found`` over ``files`` session files under ``folder``; a valid
    line is sometimes written twice (the same response again, counted once)."""
    rng = random.Random(seed)
    # Deeply nested lines are large and all alike: fewer of them.
    weights = [1 if v.line.startswith(b'{"type":"assistant","message":{"usage":[') else 3 for v in found]
    picks = rng.choices(range(len(found)), weights, k=lines)
    folder.mkdir(parents=True, exist_ok=True)
    pieces = [(variant.line + b"\n").split(ID) for variant in found]
    valid = [variant.kind == "valid" for variant in found]
    handles = [open(folder / f"session-{n}.jsonl", "wb") for n in range(files)]  # noqa: SIM115
    outputs: list[list[bytes]] = [[] for _ in range(files)]
    expected = Expected(lines=lines)
    per_variant = [0] * len(found)
    try:
        for number, index in enumerate(picks):
            line = (b"%d" % number).join(pieces[index])
            out = outputs[number % files]
            out.append(line)
            if valid[index]:
                per_variant[index] += 1
                if number % 7 == 0:
                    out.append(line)
                    expected.lines += 1
            if number % 100_000 == 99_999:  # a batch at a time: ten million lines do not fit in memory
                for handle, batch in zip(handles, outputs, strict=True):
                    handle.write(b"".join(batch))
                    batch.clear()
        for handle, batch in zip(handles, outputs, strict=True):
            handle.write(b"".join(batch))
    finally:
        for handle in handles:
            handle.close()
    expected.malformed = sum(1 for index in picks if found[index].kind == "malformed")
    for variant, copies in zip(found, per_variant, strict=True):
        if not copies:
            continue
        expected.responses += copies
        expected.tokens = [total + copies * count for total, count in zip(expected.tokens, variant.tokens, strict=True)]
        if variant.cost is None:
            expected.unpriced += copies
        else:
            expected.cost_usd += copies * variant.cost
    return expected
