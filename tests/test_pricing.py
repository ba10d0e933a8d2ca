from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_router.errors import UnknownModelError
from mcp_router.pricing import Catalog, Usage, cost_usd, total_cost

from .conftest import REAL_CLAUDE_CODE

CATALOG = Catalog.load()
REFERENCE_MODELS = json.loads((Path(__file__).parent / "data" / "anthropic-models.json").read_text())


def test_catalog_covers_every_reference_model_with_its_prices() -> None:
    for entry in REFERENCE_MODELS["models"]:
        info = CATALOG.get(entry["id"])
        prices = entry["price_per_mtok"]
        assert info.rates.input == prices["input"]
        assert info.rates.output == prices["output"]
        assert info.rates.cache_read == prices["cache_read"]
        assert info.rates.cache_write_5m == prices["cache_write_5m"]
        assert info.rates.cache_write_1h == prices["cache_write_1h"]
        assert info.web_search == prices["web_search"]
        assert info.context_window == entry["context_window"]
        assert info.max_output_tokens == entry["max_output_tokens"]
        if "long_prompt" in prices:
            assert info.long_prompt is not None
            assert info.long_prompt_threshold == prices["long_prompt"]["above_prompt_tokens"]
            assert info.long_prompt.input == prices["long_prompt"]["input"]
        assert CATALOG.resolve(entry["first_party_id"]) == entry["id"]
    for alias, target in REFERENCE_MODELS["aliases"].items():
        assert CATALOG.resolve(alias) == target


def _unique_responses(path: Path) -> dict[tuple[str, str], dict]:
    responses: dict[tuple[str, str], dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "assistant":
            key = (record["message"]["id"], record.get("requestId", ""))
            responses[key] = record["message"]
    return responses


def _usage(message: dict) -> Usage:
    usage = message["usage"]
    return Usage(
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage.get("cache_read_input_tokens", 0),
        cache_creation_tokens=usage.get("cache_creation_input_tokens", 0),
        cache_creation_1h_tokens=(usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0),
        web_search_requests=(usage.get("server_tool_use") or {}).get("web_search_requests", 0),
        inference_geo=usage.get("inference_geo") or "",
    )


@pytest.mark.parametrize(
    "session", sorted(p.stem for p in (REAL_CLAUDE_CODE / "projects" / "-home-user-code-demo").glob("*.jsonl"))
)
def test_unique_responses_reproduce_claude_codes_own_session_cost(session: str) -> None:
    project = REAL_CLAUDE_CODE / "projects" / "-home-user-code-demo"
    files = [project / f"{session}.jsonl", *sorted((project / session / "subagents").glob("*.jsonl"))]
    responses: dict[tuple[str, str], dict] = {}
    for path in files:
        responses.update(_unique_responses(path))
    cost_state = [json.loads(line) for line in files[0].read_text().splitlines() if '"cost-state"' in line][-1]
    total = total_cost(CATALOG, ((m["model"], _usage(m)) for m in responses.values()))
    assert total is not None
    assert abs(total - cost_state["totalCostUSD"]) < 1e-6
    for model, expected in cost_state["modelUsage"].items():
        per_model = sum(CATALOG.cost(m["model"], _usage(m)) or 0 for m in responses.values() if m["model"] == model)
        assert abs(per_model - expected["costUSD"]) < 1e-6


HAIKU_55 = CATALOG.get("claude-haiku-5-5")  # long-prompt threshold 100,000
OPUS_55 = CATALOG.get("claude-opus-5-5")


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        # plain input + output
        (OPUS_55, Usage(input_tokens=1_000_000), 4.0),
        (OPUS_55, Usage(output_tokens=1_000_000), 20.0),
        # 1h cache writes cost 2x input, 5m writes 1.25x; the rest of cache_creation is 5m
        (OPUS_55, Usage(cache_creation_tokens=1_000_000, cache_creation_1h_tokens=1_000_000), 8.0),
        (OPUS_55, Usage(cache_creation_tokens=1_000_000), 5.0),
        (OPUS_55, Usage(cache_creation_tokens=1_000_000, cache_creation_1h_tokens=250_000), 2.0 + 3.75),
        (OPUS_55, Usage(cache_read_tokens=1_000_000), 0.2),
        # long-prompt threshold: just under, exactly at (not above), just over switches the whole request
        (HAIKU_55, Usage(input_tokens=99_999, output_tokens=1000), (99_999 * 0.1 + 1000 * 0.5) / 1e6),
        (HAIKU_55, Usage(input_tokens=100_000, output_tokens=1000), (100_000 * 0.1 + 1000 * 0.5) / 1e6),
        (HAIKU_55, Usage(input_tokens=100_001, output_tokens=1000), (100_001 * 0.5 + 1000 * 2.5) / 1e6),
        (
            HAIKU_55,
            Usage(input_tokens=1, cache_read_tokens=50_000,
                  cache_creation_tokens=50_000, cache_creation_1h_tokens=50_000),
            (1 * 0.5 + 50_000 * 0.05 + 50_000 * 1.0) / 1e6,
        ),
        # US-only inference: tokens x 1.1, web search added after
        (OPUS_55, Usage(input_tokens=1_000_000, inference_geo="us"), 4.4),
        (OPUS_55, Usage(input_tokens=1_000_000, inference_geo="global"), 4.0),
        (OPUS_55, Usage(input_tokens=1_000_000, web_search_requests=3, inference_geo="us"), 4.4 + 0.03),
        (OPUS_55, Usage(web_search_requests=1000), 10.0),
    ],
)
def test_cost_formula_paths(model, usage: Usage, expected: float) -> None:
    assert cost_usd(model, usage) == pytest.approx(expected, abs=1e-12)


def test_batch_halves_token_prices_but_not_web_search() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, web_search_requests=10)
    assert cost_usd(OPUS_55, usage, batch=True) == pytest.approx((4.0 + 20.0) / 2 + 0.1)


@pytest.mark.parametrize(
    ("name", "resolved"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4-0"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("haiku", "claude-haiku-5-5"),
        ("Opus", "claude-opus-5-5"),
        ("sonnet", "claude-sonnet-5-5"),
        ("claude-opus-5-5", "claude-opus-5-5"),
        ("claude-unknown-1", None),
        ("<synthetic>", None),
    ],
)
def test_resolve_ids_aliases_and_dated_ids(name: str, resolved: str | None) -> None:
    assert CATALOG.resolve(name) == resolved


def test_dated_id_costs_the_same_as_its_base_id() -> None:
    usage = Usage(input_tokens=1234, output_tokens=567, cache_read_tokens=89)
    assert CATALOG.cost("claude-haiku-4-5-20251001", usage) == CATALOG.cost("claude-haiku-4-5", usage)


def test_unknown_model_is_unpriced_not_free() -> None:
    assert CATALOG.cost("claude-unknown-1", Usage(input_tokens=10)) is None
    assert total_cost(CATALOG, [("claude-opus-5-5", Usage(input_tokens=1)), ("gpt-9", Usage())]) is None
    with pytest.raises(UnknownModelError, match="closest known: claude-opus-5"):
        CATALOG.get("claude-opus-5-6")


def test_overrides_change_a_price_and_add_a_model_with_an_alias() -> None:
    catalog = Catalog.load(
        {
            "models": {
                "claude-haiku-5-5": {"input": 0.08},
                "claude-next-1": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write_5m": 3.75,
                                  "cache_write_1h": 6, "context_window": 400_000},
            },
            "aliases": {"next": "claude-next-1"},
        }
    )
    haiku = catalog.get("haiku")
    assert haiku.rates.input == 0.08 and haiku.rates.output == 0.5  # the rest keeps the catalog's price
    assert haiku.long_prompt is not None  # and its long-prompt prices
    assert catalog.cost("next", Usage(input_tokens=1_000_000)) == 3.0
    assert catalog.get("claude-next-1").context_window == 400_000
    assert CATALOG.get("haiku").rates.input == 0.1  # the built-in catalog is untouched


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"models": {"claude-new": {"input": 1}}}, r"pricing\.models\.claude-new\.output: required"),
        ({"models": {"claude-haiku-5-5": {"input": "cheap"}}}, r"claude-haiku-5-5\.input: expected a price"),
        ({"models": {"claude-haiku-5-5": {"input": -1}}}, r"claude-haiku-5-5\.input: expected a price"),
        ({"models": {"claude-haiku-5-5": {"inptu": 1}}}, r"claude-haiku-5-5\.inptu: unknown key"),
        ({"aliases": {"fast": "gpt-4"}}, r"pricing\.aliases\.fast: 'gpt-4' is not a known model"),
        ({"model": {}}, r"pricing\.model: unknown key"),
    ],
)
def test_bad_overrides_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Catalog.load(overrides)


token_counts = st.integers(min_value=0, max_value=2_000_000)
models = st.sampled_from(sorted(CATALOG.models))


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    cache_creation = draw(token_counts)
    return Usage(
        input_tokens=draw(token_counts),
        output_tokens=draw(token_counts),
        cache_read_tokens=draw(token_counts),
        cache_creation_tokens=cache_creation,
        cache_creation_1h_tokens=draw(st.integers(0, cache_creation)),
        web_search_requests=draw(st.integers(0, 50)),
        inference_geo=draw(st.sampled_from(["", "us", "global"])),
    )


@given(models)
def test_zero_usage_costs_zero(model: str) -> None:
    assert CATALOG.cost(model, Usage()) == 0


@given(models, usages(), st.sampled_from(["input_tokens", "output_tokens", "cache_read_tokens",
                                          "cache_creation_tokens", "cache_creation_1h_tokens",
                                          "web_search_requests"]), st.integers(1, 500_000))
def test_cost_is_monotone_in_every_count(model: str, usage: Usage, field: str, extra: int) -> None:
    changes = {field: getattr(usage, field) + extra}
    if field == "cache_creation_1h_tokens":  # a 1h write is a cache write: it cannot exceed them
        changes["cache_creation_tokens"] = usage.cache_creation_tokens + extra
    more = Usage(**{**{f: getattr(usage, f) for f in Usage.__slots__}, **changes})
    assert CATALOG.cost(model, more) >= CATALOG.cost(model, usage)


@given(models, st.lists(usages(), max_size=20))
def test_session_cost_is_the_sum_of_its_requests(model: str, requests: list[Usage]) -> None:
    expected = sum(CATALOG.cost(model, usage) for usage in requests)
    assert total_cost(CATALOG, [(model, usage) for usage in requests]) == pytest.approx(expected, rel=1e-12, abs=0)


@given(st.integers(0, 40_000), st.integers(0, 40_000), st.integers(0, 10_000), st.integers(0, 10_000))
def test_splitting_a_request_below_the_threshold_does_not_change_its_cost(a_in, b_in, a_out, b_out) -> None:
    whole = Usage(input_tokens=a_in + b_in, output_tokens=a_out + b_out)
    parts = cost_usd(HAIKU_55, Usage(input_tokens=a_in, output_tokens=a_out)) + cost_usd(
        HAIKU_55, Usage(input_tokens=b_in, output_tokens=b_out)
    )
    assert cost_usd(HAIKU_55, whole) == pytest.approx(parts, rel=1e-12, abs=1e-15)
