"""A user's first and next `mcp-router report` against ccusage 20 (Rust) and 18 (JavaScript) on the same ~1 GB of
transcripts, with the `cat` floor, all measured in one run.

    python benchmarks/bench_ingest.py [--size-mb 1000] [--corpus DIR] [--runs 3] [--skip-ccusage18]

- cold: `mcp-router report --format json` into an empty database (it ingests every transcript first);
- warm: the same command again, nothing new to read (it lists and stats every transcript, then gives the report
  the cold run kept beside the database: nothing it was built from has changed);
- warm, rebuilt: the same with that kept report deleted first, so the report is built again from the database;
- cold week: a user's first report of the default-sized period, the corpus's last 7 days, into an empty database:
  it ingests the transcripts modified since the month's start or the day before the week (the budget and the
  as-routed what-if read that far back; the corpus leaves each file modified at its last event) and routes at once
  only that week's prompts (and the day before it); a detached child ingests the other files and routes the other
  prompts after it exits, timed apart ("background", until every file is read and no prompt is left undecided),
  and waited for before anything else runs;
- ccusage: `ccusage claude weekly --json --offline` (20.0.24) and `ccusage weekly --json --offline` (18.0.11), reading
  the same folder through CLAUDE_CONFIG_DIR. Both are installed by this script with npm into
  benchmarks/.work/npm (20.0.26 has no linux-x64 binary, hence 20.0.24).

Ours and theirs run in turn within each run, so both see the same machine load; wall time is the figure, the CPU
time (user + system, children included) is printed beside it because these machines are shared. Peak memory is
measured in separate runs (sampling takes CPU). The corpus (benchmarks/corpus.py, the issue's shape by default)
is generated once and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from corpus import ISSUE_SHAPE, START, generate
from timing import MCP_ROUTER, peak_memory_kib

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
CCUSAGE = {"20": "20.0.24", "18": "18.0.11"}
_DAYS = 20  # corpus.generate's default span: sessions start within 20 days of START
_LAST_DAY = (START + timedelta(days=_DAYS)).date()
WEEK = ["--since", str(_LAST_DAY - timedelta(days=6)), "--until", str(_LAST_DAY), "--timezone", "UTC"]


def install_ccusage(major: str) -> Path:
    """ccusage of that major version under benchmarks/.work/npm, installed with npm when missing."""
    prefix = WORK / "npm" / f"ccusage-{major}"
    binary = prefix / "node_modules" / ".bin" / "ccusage"
    package = prefix / "node_modules" / "ccusage" / "package.json"
    if not (binary.exists() and json.loads(package.read_text())["version"] == CCUSAGE[major]):
        print(f"installing ccusage@{CCUSAGE[major]} into {prefix}")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                        f"ccusage@{CCUSAGE[major]}"], check=True, stdout=subprocess.DEVNULL)
    return binary


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the command's whole process tree) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def wait_until_routed(db: Path, files: list[str]) -> float:
    """Seconds until the database holds every transcript read to its end and no undecided prompt (the cold week's
    background child, which ingests the files the week did not need, then routes, is done)."""
    started = time.perf_counter()
    sizes = {path: os.path.getsize(path) for path in files}
    conn = sqlite3.connect(db)
    while (conn.execute("SELECT 1 FROM prompts WHERE tier IS NULL LIMIT 1").fetchone()
           or dict(conn.execute("SELECT path, offset FROM ingest_files").fetchall()) != sizes):
        time.sleep(0.05)
    conn.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a folder holding projects/ (generated there when missing)"
                             " [default: benchmarks/.work/corpus, or corpus-<days>d with --days]")
    parser.add_argument("--days", type=int, default=_DAYS,
                        help="the days the generated sessions span, all ending on the same last day: 20 fits in"
                             " Claude Code's default 30 days of transcripts; more is a user who keeps a longer history")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-ccusage18", action="store_true", help="it takes about a minute a run")
    args = parser.parse_args()
    args.corpus = args.corpus or WORK / ("corpus" if args.days == _DAYS else f"corpus-{args.days}d")
    start = START + timedelta(days=_DAYS - args.days)
    projects = args.corpus / "projects"
    if not projects.exists():
        truth = generate(projects, size_mb=args.size_mb, start=start, days=args.days, **ISSUE_SHAPE)
        print(f"generated {truth.bytes_written / 1e6:,.0f} MB, {len(truth.responses):,} responses")
    # Claude Code keeps transcripts for cleanupPeriodDays (30 by default): a history this long is a user who set more
    (args.corpus / "settings.json").write_text(json.dumps({"cleanupPeriodDays": args.days + 30}))
    ccusage20 = install_ccusage("20")
    ccusage18 = None if args.skip_ccusage18 else install_ccusage("18")
    files = sorted(str(p) for p in projects.rglob("*.jsonl"))
    size_mb = sum(os.path.getsize(p) for p in files) / 1e6
    sessions = len(list(projects.glob("*/*.jsonl")))
    print(f"corpus: {size_mb:,.0f} MB in {len(files):,} files ({sessions:,} sessions); {os.cpu_count()} CPUs;"
          f" load average {os.getloadavg()[0]:.1f}")
    cat = ["cat", *files]
    subprocess.run(cat, stdout=subprocess.DEVNULL, check=True)  # warm the page cache for everyone
    theirs_env = {**os.environ, "CLAUDE_CONFIG_DIR": str(args.corpus)}
    every_day = ["--since", str(start.date()), "--until", str(_LAST_DAY + timedelta(days=8))]  # its last turns too
    ours = [MCP_ROUTER, "report", "--format", "json", *every_day]
    theirs20 = [str(ccusage20), "claude", "weekly", "--json", "--offline"]
    theirs18 = [str(ccusage18), "weekly", "--json", "--offline"] if ccusage18 else None
    ours_week = [MCP_ROUTER, "report", "--format", "json", *WEEK]
    results: dict[str, list[tuple[float, float]]] = {"cat": [], "cold": [], "warm": [], "warm rebuilt": [],
                                                     "cold week": [], "background": [], "ccusage 20": [],
                                                     "ccusage 18": []}
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**theirs_env, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
            results["cat"].append(timed(cat, env))
            results["cold"].append(timed(ours, env))
            results["ccusage 20"].append(timed(theirs20, theirs_env))
            results["warm"].append(timed(ours, env))
            (Path(tmp) / "usage.db.report-cache").unlink()
            results["warm rebuilt"].append(timed(ours, env))
        with tempfile.TemporaryDirectory() as tmp:
            env = {**theirs_env, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
            results["cold week"].append(timed(ours_week, env))
            results["background"].append((wait_until_routed(Path(tmp) / "usage.db", files), float("nan")))
            if theirs18 and run == 1:  # one run: it is 20 times slower than the rest
                results["ccusage 18"].append(timed(theirs18, theirs_env))
        line = "  ".join(f"{name} {values[-1][0]:.2f} s" + (f" ({values[-1][1]:.1f} s CPU)" if values[-1][1] > 1 else "")
                         for name, values in results.items() if len(values) == run)
        print(f"run {run}: {line}")
    print()
    print(f"{'':14} {'wall (median)':>14} {'CPU (median)':>13}")
    medians = {}
    for name, values in results.items():
        if values:
            medians[name] = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
            print(f"{name:14} {medians[name][0]:12.2f} s {medians[name][1]:11.2f} s")
    print()
    cold, warm, rust = medians["cold"][0], medians["warm"][0], medians["ccusage 20"][0]
    per_run = [c[0] / r[0] for c, r in zip(results["cold"], results["ccusage 20"], strict=True)]
    print(f"cold report / ccusage 20: {cold / rust:.2f}x the time (per run: {', '.join(f'{r:.2f}' for r in per_run)};"
          " target <= 1)")
    if "ccusage 18" in medians:
        print(f"cold report / ccusage 18: {results['cold'][0][0] / medians['ccusage 18'][0]:.2f}x the time (run 1)")
    warm_runs = [r[0] / w[0] for w, r in zip(results["warm"], results["ccusage 20"], strict=True)]
    print(f"warm report: {rust / warm:.1f}x faster than ccusage 20 (per run: {', '.join(f'{r:.1f}' for r in warm_runs)};"
          " target >= 10)")
    rebuilt = medians["warm rebuilt"][0]
    print(f"warm report built again (no kept report): {rust / rebuilt:.1f}x faster than ccusage 20")
    print(f"cold report / cat floor: {cold / medians['cat'][0]:.1f}x (stretch target <= 3)")
    week_runs = [c[0] / r[0] for c, r in zip(results["cold week"], results["ccusage 20"], strict=True)]
    print(f"cold report of the last 7 days ({WEEK[1]} to {WEEK[3]}) / ccusage 20:"
          f" {medians['cold week'][0] / rust:.2f}x the time (per run: {', '.join(f'{r:.2f}' for r in week_runs)});"
          f" the rest of its prompts routed in the background in {medians['background'][0]:.1f} s more (wall)")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**theirs_env, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
        memory = {"cold report": peak_memory_kib(ours, env), "warm report": peak_memory_kib(ours, env)}
    memory["ccusage 20"] = peak_memory_kib(theirs20, theirs_env)
    if theirs18:
        memory["ccusage 18"] = peak_memory_kib(theirs18, theirs_env)
    print("peak memory (Pss of the whole process tree): " + ", ".join(
        f"{name} {kib / 1024:,.0f} MiB" for name, kib in memory.items())
        + f"; cold / ccusage 20: {memory['cold report'] / memory['ccusage 20']:.2f} (target <= 1)")


if __name__ == "__main__":
    main()
