"""How close a first report could come to ccusage 20 in this design: the two costs no change short of compiled code
removes, done as cheaply as Python can, against ccusage 20.0.24 in the same run on bench_ingest.py's ~1 GB corpus.

    python benchmarks/bench_floor.py [--runs 3]

The floor: two processes, each (1) decoding its half of the transcripts with msgspec structs naming only the usage
fields and summing them by model and session (no checks, no fallbacks, no rows written: less than an ingest does),
and (2) routing its half of the prompts the default week's report must decide before it prints: the week's, and
each session's last prompt of the day before (the turn running as the period opens). The report's output, which
issue #15 requires to stay identical, holds those decisions (`prompts_by_tier`, `as_routed_usd`). Nothing else a
report does (writing the ledger, start-up, migrations, the report itself) is counted. ccusage runs just before and
just after the floor; its mean is the baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import orjson
from bench_ingest import _LAST_DAY, WORK, install_ccusage, timed
from corpus import ISSUE_SHAPE, generate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    speed: str | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Line(msgspec.Struct):
    type: str | None = None
    timestamp: str | None = None
    sessionId: str | None = None  # noqa: N815 (the transcript's own name)
    requestId: str | None = None  # noqa: N815
    isSidechain: bool | None = None  # noqa: N815
    message: _Message | None = None


def needed_prompts(files: list[str], since: datetime, until: datetime) -> list[str]:
    """The distinct prompt texts of [since, until), with each session's last prompt of the day before ``since``."""
    in_period: set[str] = set()
    day_before: dict[str, tuple[str, str]] = {}
    start, end, look = (moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                        for moment in (since, until, since - timedelta(days=1)))
    for path in files:
        with open(path, "rb") as file:
            for line in file:
                if b'"type":"user"' not in line:
                    continue
                record = orjson.loads(line)
                text, at = record.get("message", {}).get("content"), record.get("timestamp", "")
                if not isinstance(text, str):
                    continue
                if start <= at < end:
                    in_period.add(text)
                elif look <= at < start and at >= day_before.get(record["sessionId"], ("", ""))[0]:
                    day_before[record["sessionId"]] = (at, text)
    return sorted(in_period | {text for _, text in day_before.values()})


def parse_and_route(files: list[str], prompts: list[str]) -> tuple[int, int]:
    sums: dict[tuple[str | None, str | None], list[int]] = {}
    decoder = msgspec.json.Decoder(_Line)
    for path in files:
        with open(path, "rb") as file:
            for record in decoder.decode_lines(file.read()):
                if record.type == "assistant" and record.message is not None and record.message.usage is not None:
                    usage, key = record.message.usage, (record.message.model, record.sessionId)
                    total = sums.setdefault(key, [0, 0, 0, 0])
                    total[0] += usage.input_tokens
                    total[1] += usage.output_tokens
                    total[2] += usage.cache_creation_input_tokens
                    total[3] += usage.cache_read_input_tokens
    from mcp_router.config import Config
    from mcp_router.pricing import Catalog
    from mcp_router.routing import Router

    router = Router.load(Catalog.load(), Config())
    router.model.remember_rows()
    return len(sums), len([router.route(prompt).tier for prompt in prompts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    corpus = WORK / "corpus"
    projects = corpus / "projects"
    if not projects.exists():
        generate(projects, size_mb=1000, **ISSUE_SHAPE)
    ccusage = [str(install_ccusage("20")), "claude", "weekly", "--json", "--offline"]
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(corpus)}
    files = sorted(str(path) for path in projects.rglob("*.jsonl"))
    since = datetime.fromisoformat(f"{_LAST_DAY - timedelta(days=6)}T00:00:00+00:00")
    prompts = needed_prompts(files, since, since + timedelta(days=7))
    print(f"{os.cpu_count()} CPUs; {len(files):,} files; {len(prompts):,} prompts the week's report routes first")
    for run in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        before, _ = timed(ccusage, env)
        started, cpu_before = time.perf_counter(), os.times()
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(parse_and_route, [files[0::2], files[1::2]], [prompts[0::2], prompts[1::2]]))
        wall, cpu_after = time.perf_counter() - started, os.times()
        cpu = sum(cpu_after[:4]) - sum(cpu_before[:4])
        after, _ = timed(ccusage, env)
        print(f"run {run} (load {load:.1f}): ccusage 20 {before:.2f}, {after:.2f} s; floor (parse + route, two"
              f" processes) {wall:.2f} s ({cpu:.1f} s CPU) = {wall / ((before + after) / 2):.2f}x ccusage 20",
              flush=True)


if __name__ == "__main__":
    main()
