"""Full ingest + report against ccusage on the same ~1 GB of transcripts, and ingest throughput beside `cat`.

    python benchmarks/bench_ingest.py [--size-mb 1000] [--corpus benchmarks/corpus]

The corpus is generated once (benchmarks/corpus.py) and reused. ccusage comes from npm (ccusage@18.0.11,
installed by .ci/run into .ci/npm); it reads the same folder through CLAUDE_CONFIG_DIR.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from corpus import generate
from timing import MCP_ROUTER, wall_and_peak_memory

ROOT = Path(__file__).resolve().parents[1]
CCUSAGE = ROOT / ".ci" / "npm" / "node_modules" / ".bin" / "ccusage"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--corpus", type=Path, default=ROOT / "benchmarks" / "corpus")
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
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
        ingest_s, ingest_kb = wall_and_peak_memory([MCP_ROUTER, "ingest", "--projects-dir", str(projects)], env)
        report_s, report_kb = wall_and_peak_memory([MCP_ROUTER, "report", "--no-ingest", "--format", "json",
                                                 "--since", "2026-11-01", "--until", "2026-11-30"], env)
    print(f"corpus: {size_mb:,.0f} MB in {len(files):,} files")
    print(f"cat (I/O floor)       {cat_seconds:7.2f} s  {size_mb / cat_seconds:8.0f} MB/s")
    print(f"mcp-router ingest     {ingest_s:7.2f} s  {size_mb / ingest_s:8.0f} MB/s  peak {ingest_kb / 1024:,.0f} MiB")
    print(f"mcp-router report     {report_s:7.2f} s                 peak {report_kb / 1024:,.0f} MiB")
    ours_s, ours_kb = ingest_s + report_s, max(ingest_kb, report_kb)
    if CCUSAGE.exists() or shutil.which("ccusage"):
        command = [str(CCUSAGE if CCUSAGE.exists() else shutil.which("ccusage")), "weekly", "--json", "--offline"]
        env = {**os.environ, "CLAUDE_CONFIG_DIR": str(args.corpus)}
        theirs_s, theirs_kb = wall_and_peak_memory(command, env)
        print(f"ccusage weekly        {theirs_s:7.2f} s                 peak {theirs_kb / 1024:,.0f} MiB")
        print(f"ours vs ccusage: {theirs_s / ours_s:.1f}x faster (target >= 5x), "
              f"{ours_kb / theirs_kb:.2f} of its peak memory (target <= 0.25)")
    else:
        print("ccusage not installed: npm install --prefix .ci/npm ccusage@18.0.11")


if __name__ == "__main__":
    main()
