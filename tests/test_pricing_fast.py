"""Fast mode and per-iteration long-prompt pricing, checked against the reference formula
(tests/data/anthropic-models.json and its README) written out again here from the JSON alone."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_router.config import Config
from mcp_router.ledger import ingest_tree
from mcp_router.pricing import Catalog, Usage, cost_usd
from mcp_router.report import ReportSpec, build_report
from mcp_router.store import connect

from .fuzz_lines import usages
from .reference import FAST_MODELS, REFERENCE, reference_cost

CATALOG = Catalog.load()


def _usage(raw: dict[str, Any]) -> Usage:
    iterations = tuple(
        Usage(i.get("input_tokens", 0), i.get("output_tokens", 0), i.get("cache_read_input_tokens", 0),
              i.get("cache_creation_input_tokens", 0),
              (i.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0))
        for i in raw.get("iterations") or [] if i.get("type") == "message")
    return Usage(raw.get("input_tokens", 0), raw.get("output_tokens", 0), raw.get("cache_read_input_tokens", 0),
                 raw.get("cache_creation_input_tokens", 0),
                 (raw.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0),
                 (raw.get("server_tool_use") or {}).get("web_search_requests", 0), raw.get("inference_geo", ""),
                 raw.get("speed", ""), iterations)


def test_every_model_with_fast_prices_in_the_issue_is_in_the_catalog() -> None:
    expected = {"claude-opus-4-6": (30, 150), "claude-opus-4-7": (30, 150), "claude-opus-4-8": (10, 50),
                "claude-opus-5": (10, 50), "claude-opus-5-5": (8, 40), "claude-fable-5-2": (16, 80),
                "claude-mythos-5-2": (16, 80)}
    assert {m: (CATALOG.get(m).fast.input, CATALOG.get(m).fast.output) for m in FAST_MODELS} == expected  # type: ignore[union-attr]


OPUS_55, OPUS_46, HAIKU_55 = CATALOG.get("claude-opus-5-5"), CATALOG.get("claude-opus-4-6"), CATALOG.get("haiku")


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        (OPUS_55, Usage(input_tokens=1_000_000, speed="fast"), 8.0),
        (OPUS_55, Usage(output_tokens=1_000_000, speed="fast"), 40.0),
        (OPUS_55, Usage(cache_read_tokens=1_000_000, speed="fast"), 0.4),
        (OPUS_55, Usage(cache_creation_tokens=1_000_000, cache_creation_1h_tokens=400_000, speed="fast"), 6 + 6.4),
        (OPUS_46, Usage(input_tokens=1_000_000, output_tokens=1_000_000, speed="fast"), 180.0),
        (OPUS_46, Usage(input_tokens=1_000_000, output_tokens=1_000_000, speed="standard"), 5.0 + 25.0),
        # geo factor on tokens, then web search at the normal per-request price
        (OPUS_55, Usage(input_tokens=1_000_000, web_search_requests=2, inference_geo="us", speed="fast"), 8.8 + 0.02),
        # a model without fast prices keeps its normal ones (and its long-prompt switch)
        (HAIKU_55, Usage(input_tokens=200_000, speed="fast"), 200_000 * 0.5 / 1e6),
    ],
)
def test_fast_mode_prices(model, usage: Usage, expected: float) -> None:
    assert cost_usd(model, usage) == pytest.approx(expected, abs=1e-12)


def test_fast_mode_has_no_long_prompt_switch() -> None:
    catalog = Catalog.load({"models": {"claude-haiku-5-5": {"fast": {
        "input": 1, "output": 5, "cache_read": 0.1, "cache_write_5m": 1.25, "cache_write_1h": 2}}}})
    assert catalog.cost("haiku", Usage(input_tokens=500_000, speed="fast")) == pytest.approx(0.5)
    assert catalog.cost("haiku", Usage(input_tokens=500_000)) == pytest.approx(0.25)  # long-prompt $0.50/M


def _part(inputs: int, outputs: int = 0, reads: int = 0) -> Usage:
    return Usage(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=reads)


@pytest.mark.parametrize(
    ("iterations", "expected"),
    [
        # two iterations under the threshold: normal prices, though the request is over it
        ((_part(60_000, 1000), _part(60_000, 1000)), (120_000 * 0.1 + 2000 * 0.5) / 1e6),
        # one over, one under: each on its own prices
        ((_part(110_000, 1000), _part(10_000, 1000)), (110_000 * 0.5 + 1000 * 2.5 + 10_000 * 0.1 + 1000 * 0.5) / 1e6),
        # not adding up to the request: the request is priced whole (over the threshold)
        ((_part(60_000, 1000),), (120_000 * 0.5 + 2000 * 2.5) / 1e6),
        ((), (120_000 * 0.5 + 2000 * 2.5) / 1e6),
    ],
)
def test_long_prompt_threshold_per_iteration(iterations: tuple[Usage, ...], expected: float) -> None:
    usage = Usage(input_tokens=120_000, output_tokens=2000, iterations=iterations)
    assert cost_usd(HAIKU_55, usage) == pytest.approx(expected, abs=1e-12)


@given(st.sampled_from(sorted(REFERENCE)), usages())
def test_cost_equals_the_reference_formula(model: str, usage: dict[str, Any]) -> None:
    assert cost_usd(CATALOG.get(model), _usage(usage)) == pytest.approx(reference_cost(model, usage), rel=1e-12,
                                                                         abs=1e-12)


def _fast_corpus(projects: Path, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """Sessions with fast-mode (and standard) requests on every model that has fast prices."""
    rng = random.Random(seed)
    project = projects / "-home-user-fast"
    project.mkdir(parents=True)
    responses = []
    for index, model in enumerate(FAST_MODELS):
        lines = []
        for n in range(40):
            writes = rng.randint(0, 50_000)
            usage = {"input_tokens": rng.randint(1, 300_000), "output_tokens": rng.randint(1, 30_000),
                     "cache_read_input_tokens": rng.randint(0, 200_000), "cache_creation_input_tokens": writes,
                     "cache_creation": {"ephemeral_1h_input_tokens": rng.randint(0, writes),
                                        "ephemeral_5m_input_tokens": 0},
                     "server_tool_use": {"web_search_requests": rng.randint(0, 2)},
                     "inference_geo": rng.choice(["us", ""]), "speed": "fast" if n % 4 else "standard",
                     "iterations": []}
            line = {"type": "assistant", "sessionId": f"s{index}", "requestId": f"req_{index}_{n}",
                    "timestamp": f"2026-11-20T10:{n:02d}:00.000Z", "cwd": "/w",
                    "message": {"id": f"msg_{index}_{n}", "model": model, "usage": usage,
                                "content": [{"type": "text", "text": "x"}]}}
            lines.append(json.dumps(line))
            responses.append((model, usage))
        (project / f"s{index}.jsonl").write_text("\n".join(lines) + "\n")
    return responses


def test_fast_mode_corpus_report_totals_equal_the_reference(tmp_path: Path) -> None:
    responses = _fast_corpus(tmp_path / "projects")
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, tmp_path / "projects", CATALOG)
    spec = ReportSpec.parse("2026-11-20", "2026-11-20", "UTC", "model", today=date(2026, 11, 30))
    report = build_report(conn, spec, CATALOG, Config(), now=datetime(2026, 11, 30, tzinfo=UTC))
    expected = sum(reference_cost(model, usage) for model, usage in responses)
    assert report["totals"]["messages"] == len(responses)
    assert report["totals"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    by_model = {g["model"]: g["cost_usd"] for g in report["groups"]}
    for model in FAST_MODELS:
        assert by_model[model] == pytest.approx(sum(reference_cost(m, u) for m, u in responses if m == model),
                                                abs=1e-6)
    standard = sum(CATALOG.cost(m, _usage({**u, "speed": ""})) or 0 for m, u in responses)
    assert report["totals"]["cost_usd"] > 2 * standard  # fast mode is not counted at standard prices


def test_pricing_command_shows_fast_prices() -> None:
    from click.testing import CliRunner

    from mcp_router.cli import cli

    text = CliRunner().invoke(cli, ["pricing", "claude-opus-4-6"]).output
    assert "in fast mode, the whole request costs:\n  input           30.00\n  output          150.00" in text
    row = json.loads(CliRunner().invoke(cli, ["pricing", "claude-opus-5-5", "--json", "--batch"]).output)
    assert row["fast"]["input"] == 4.0
