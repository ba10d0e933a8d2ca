"""Claude Code's cost formula written out from tests/data/anthropic-models.json and the reference README alone,
so tests can check mcp-router's pricing against something it does not share code with."""

from __future__ import annotations

import json
from typing import Any

from .conftest import DATA

REFERENCE = {m["id"]: m["price_per_mtok"] for m in json.loads((DATA / "anthropic-models.json").read_text())["models"]}
FAST_MODELS = sorted(model for model, prices in REFERENCE.items() if "fast" in prices)


def reference_cost(model: str, usage: dict[str, Any]) -> float:
    """Claude Code's formula from the reference README, over a transcript's ``message.usage`` dict."""
    prices = REFERENCE[model]

    def tokens_cost(part: dict[str, Any], p: dict[str, float]) -> float:
        writes = part.get("cache_creation_input_tokens", 0)
        writes_1h = (part.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0)
        return (part.get("input_tokens", 0) * p["input"] + part.get("output_tokens", 0) * p["output"]
                + part.get("cache_read_input_tokens", 0) * p["cache_read"] + writes_1h * p["cache_write_1h"]
                + (writes - writes_1h) * p["cache_write_5m"]) / 1e6

    def long_or_normal(part: dict[str, Any]) -> dict[str, float]:
        long = prices.get("long_prompt")
        prompt = sum(part.get(k, 0) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
        return long if long and prompt > long["above_prompt_tokens"] else prices

    iterations = [i for i in usage.get("iterations") or [] if i.get("type") == "message"]
    keys = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    if usage.get("speed") == "fast" and "fast" in prices:
        cost = tokens_cost(usage, prices["fast"])
    elif prices.get("long_prompt") and iterations and all(
            sum(i.get(k, 0) for i in iterations) == usage.get(k, 0) for k in keys):
        cost = sum(tokens_cost(i, long_or_normal(i)) for i in iterations)
    else:
        cost = tokens_cost(usage, long_or_normal(usage))
    if usage.get("inference_geo") == "us":
        cost *= 1.1
    return cost + (usage.get("server_tool_use") or {}).get("web_search_requests", 0) * prices["web_search"]
