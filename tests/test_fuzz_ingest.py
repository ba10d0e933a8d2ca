"""Ingest never raises on generated transcripts: valid lines' totals equal an independent computation (the
reference formula), and every malformed line is counted.

Hypothesis draws the line variants (``tests/fuzz_lines.py``); the large run expands the variants of many
examples into ``MCP_ROUTER_FUZZ_LINES`` lines (1,000,000 by default) with a seeded generator and ingests them
the way ``mcp-router ingest`` does, in worker processes. ``benchmarks/fuzz_ingest.py`` runs 10,000,000.
"""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_router.ledger import IngestSummary, ingest_tree
from mcp_router.pricing import Catalog
from mcp_router.store import connect

from .fuzz_lines import Expected, Variant, expand, variants

CATALOG = Catalog.load()
LINES = int(os.environ.get("MCP_ROUTER_FUZZ_LINES", "1000000"))
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def ingest_and_check(found: list[Variant], lines: int, seed: int, folder: Path, workers: int | None = None) -> None:
    expected = expand(found, lines, seed, folder / "projects" / "p")
    conn = connect(folder / "usage.db")
    summary = ingest_tree(conn, folder / "projects", CATALOG, workers=workers)
    assert_matches(conn, summary, expected)
    conn.close()


def assert_matches(conn: sqlite3.Connection, summary: IngestSummary, expected: Expected) -> None:
    assert summary.lines == expected.lines
    assert summary.malformed_lines == expected.malformed
    assert sum(count for count, _, _ in summary.malformed_files.values()) == expected.malformed
    row = conn.execute("SELECT COUNT(*), TOTAL(input_tokens), TOTAL(output_tokens), TOTAL(cache_read_tokens),"
                       " TOTAL(cache_creation_tokens), TOTAL(cost_usd), SUM(cost_usd IS NULL) FROM usage_events"
                       ).fetchone()
    assert row[0] == expected.responses == summary.new_responses
    assert [int(t) for t in row[1:5]] == expected.tokens
    assert row[5] == pytest.approx(expected.cost_usd, rel=1e-9, abs=1e-6)
    assert (row[6] or 0) == expected.unpriced
    rollup = conn.execute("SELECT TOTAL(messages), TOTAL(cost_usd), TOTAL(unpriced_messages) FROM usage_rollup"
                          ).fetchone()
    assert rollup[0] == expected.responses and rollup[2] == expected.unpriced
    assert rollup[1] == pytest.approx(expected.cost_usd, rel=1e-9, abs=1e-6)


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(variants, st.integers(0, 2**32))
def test_ingest_of_generated_lines_in_one_process(found: list[Variant], seed: int) -> None:
    with TemporaryDirectory() as folder:
        ingest_and_check(found, 2_000, seed, Path(folder), workers=0)


def drawn_variants(examples: int = 60) -> list[Variant]:
    """The variants of ``examples`` hypothesis examples together (one example alone is its simplest)."""
    found: list[Variant] = []

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=SLOW)
    @given(variants)
    def collect(batch: list[Variant]) -> None:
        found.extend(batch)

    collect()
    return found


def test_ingest_of_a_million_generated_lines(tmp_path: Path) -> None:
    found = drawn_variants()
    assert {v.kind for v in found} == {"valid", "malformed", "ignored"}
    ingest_and_check(found, LINES, random.randrange(2**32), tmp_path)
