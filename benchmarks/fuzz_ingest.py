"""The ingest fuzz test of tests/test_fuzz_ingest.py at full size: 10,000,000 generated lines by default.

    python benchmarks/fuzz_ingest.py [--lines 10000000] [--seed N]

Hypothesis draws the line variants, a seeded expander writes the lines, ``ingest_tree`` reads them as
``mcp-router ingest`` does, and the totals are checked against the reference formula (an AssertionError says
what differed). Prints the time of each step and, as the baseline measured in the same run, the time to
decode every line with orjson alone (the floor any JSON-reading ingest pays).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp_router.ledger import ingest_tree  # noqa: E402
from mcp_router.store import connect  # noqa: E402
from tests.fuzz_lines import expand  # noqa: E402
from tests.test_fuzz_ingest import CATALOG, assert_matches, drawn_variants  # noqa: E402


def decode_all(folder: Path) -> float:
    import orjson

    started = time.perf_counter()
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=random.randrange(2**32))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        found = drawn_variants()
        print(f"variants: {len(found)} drawn in {time.perf_counter() - started:.1f} s (seed {args.seed})")
        started = time.perf_counter()
        # Files of about 100,000 lines, as large as busy sessions get: a parsing worker holds a file's rows.
        expected = expand(found, args.lines, args.seed, folder / "projects" / "p", files=max(8, args.lines // 100_000))
        size = sum(p.stat().st_size for p in (folder / "projects" / "p").glob("*.jsonl"))
        print(f"expand: {expected.lines:,} lines, {size / 1e6:,.0f} MB in {time.perf_counter() - started:.1f} s"
              f" ({expected.responses:,} responses, {expected.malformed:,} malformed)")
        decode_s = decode_all(folder / "projects" / "p")
        print(f"baseline, orjson decode of every line: {decode_s:.1f} s")
        conn = connect(folder / "usage.db")
        started = time.perf_counter()
        summary = ingest_tree(conn, folder / "projects", CATALOG)
        ingest_s = time.perf_counter() - started
        assert_matches(conn, summary, expected)
        print(f"ingest: {ingest_s:.1f} s ({expected.lines / ingest_s:,.0f} lines/s, {ingest_s / decode_s:.1f}x the"
              " decode baseline); totals equal the reference formula, every malformed line counted")


if __name__ == "__main__":
    main()
