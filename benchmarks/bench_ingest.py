"""Full ingest + report against ccusage on the same ~1 GB of transcripts, and ingest throughput beside `cat`.

    python benchmarks/bench_ingest.py [--size-mb 1000] [--corpus benchmarks/corpus] [--runs 3]

The corpus is generated once (benchmarks/corpus.py) and reused. ccusage comes from npm (ccusage@18.0.11,
installed by .ci/run into .ci/npm); it reads the same folder through CLAUDE_CONFIG_DIR.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from corpus import generate
from timing import MCP_ROUTER, peak_memory_kib, wall_seconds

ROOT = Path(__file__).resolve().parents[1]
CCUSAGE = ROOT / ".ci" / "npm" / "node_modules" / ".bin" / "ccusage"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--corpus", type=Path, default=ROOT / "benchmarks" / "corpus")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    projects = args.corpus / "projects"
    if not projects.exists():
        truth = generate(projects, turns=40, filler=20_000, size_mb=args.size_mb)
        print(f"generated {truth.bytes_written / 1e6:,.0f} MB, {len(truth.responses):,} responses")
    files = [p for p in projects.rglob("*.jsonl")]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    started = time.perf_counter()
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)
    cat_seconds = time.perf_counter() - started
    print(f"corpus: {size_mb:,.0f} MB in {len(files):,} files")
    print(f"cat (I/O floor)       {cat_seconds:7.2f} s  {size_mb / cat_seconds:8.0f} MB/s")
    ccusage = CCUSAGE if CCUSAGE.exists() else shutil.which("ccusage")
    if not ccusage:
        print("ccusage not installed: npm install --prefix .ci/npm ccusage@18.0.11")
    speedups, report_speedups, memory = [], [], []
    ingest = [MCP_ROUTER, "ingest", "--projects-dir", str(projects)]
    report = [MCP_ROUTER, "report", "--no-ingest", "--format", "json", "--since", "2026-11-01", "--until", "2026-11-30"]
    theirs = [str(ccusage), "weekly", "--json", "--offline"]
    theirs_env = {**os.environ, "CLAUDE_CONFIG_DIR": str(args.corpus)}
    for run in range(1, args.runs + 1):  # ours then theirs, in turn, so both see the same machine load
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
            ingest_s, report_s = wall_seconds(ingest, env), wall_seconds(report, env)
        print(f"run {run}: mcp-router ingest {ingest_s:6.2f} s ({size_mb / ingest_s:4.0f} MB/s) + report {report_s:5.2f} s")
        if ccusage:
            theirs_s = wall_seconds(theirs, theirs_env)
            speedups.append(theirs_s / (ingest_s + report_s))
            report_speedups.append(theirs_s / report_s)
            print(f"       ccusage weekly    {theirs_s:6.2f} s: ours {speedups[-1]:.1f}x faster;"
                  f" the report alone {report_speedups[-1]:.0f}x")
    with tempfile.TemporaryDirectory() as tmp:  # memory in separate runs: sampling takes CPU from the measured
        env = {**os.environ, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
        ours_kib = max(peak_memory_kib(ingest, env), peak_memory_kib(report, env))
    print(f"peak memory: mcp-router {ours_kib / 1024:,.0f} MiB (ingest workers included)")
    if ccusage:
        theirs_kib = peak_memory_kib(theirs, theirs_env)
        memory.append(ours_kib / theirs_kib)
        print(f"             ccusage {theirs_kib / 1024:,.0f} MiB")
    if speedups:
        print(f"median of {len(speedups)} runs: {statistics.median(speedups):.1f}x faster (target >= 5x);"
              f" memory {memory[0]:.2f} of ccusage's peak (target <= 0.25); the report over the ingested"
              f" database {statistics.median(report_speedups):.0f}x faster than ccusage re-reading (target >= 50x)")

if __name__ == "__main__":
    main()
