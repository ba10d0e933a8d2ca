"""Routing speed: the decision in process (long pastes too), and loading the router in a fresh process, against `python -c pass`
measured in the same run; and, for comparison, what importing a reading model's runtime alone costs a fresh process
(numpy, and onnxruntime when installed: `.venv/bin/pip install onnxruntime` to measure it).

    python benchmarks/bench_routing.py
"""

from __future__ import annotations

import importlib.util
import json
import resource
import statistics
import subprocess
import time
from pathlib import Path

from timing import PYTHON, median_seconds

from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import Router

TASKS = ["summarize why payments are off by a cent across 9 services", "rename the variable arch in config.py",
         "anything red in last night's build log?", "find the intermittent deadlock in the worker pool",
         "so um basically the login page on the staging env keeps timing out but only sometimes, and I checked "
         "the load balancer logs and they look fine, could you have a look at why, the stack trace is below\n"
         "Traceback (most recent call last):\n  File \"app/auth.py\", line 88, in login\n    session = store.get(k)\n"
         "TimeoutError: read timed out"]
# Requests as people write them, pastes included: the held-out sets' (their tiers are not read here).
HELDOUT = sorted((Path(__file__).parent / "routing_data" / "heldout").glob("*.jsonl"))
# What a model that reads text (a transformer) would need at least, imported before it loads a single weight.
READING_RUNTIMES = ("numpy", "onnxruntime")
# A pasted log of LENGTH characters with the ask after it: what a decision costs on the longest requests people send.
PASTE_LENGTHS = (10_000, 30_000, 60_000)


def pasted_log(length: int) -> str:
    lines = [f"2026-11-30T12:{i % 60:02d}:{i * 7 % 60:02d}Z WARN [worker-{i % 8}] retry {i} of job {1000 + i}: "
             f"upstream returned 503 after {i * 31 % 400} ms" for i in range(length // 60 + 1)]
    return "\n".join(lines)[:length] + "\nwhy does the worker keep retrying after the upstream recovers?"


# What a hook or `mcp-router report` pays: import the router, load the policy, route one request.
FRESH = ("from mcp_router.config import Config; from mcp_router.pricing import Catalog; "
         "from mcp_router.routing import Router; Router.load(Catalog.load(), Config.load()).route('summarize this log')")
# The same, timed inside the process (CPU seconds, which a busy machine inflates less than wall time).
TIMED = ("import time; started = time.process_time(); " + FRESH.replace("; Router.load", "\nRouter.load")
         + "\nprint(time.process_time() - started)")


def median_cpu_seconds(command: list[str], runs: int) -> float:
    """Median CPU time (user + system) of a command's process."""
    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times)


def decision_seconds(router: Router, tasks: list[str]) -> list[float]:
    """Each decision's wall time, in order."""
    times = []
    for task in tasks:
        started = time.perf_counter()
        router.route(task)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    router = Router.load(Catalog.load(), Config())
    router.route(TASKS[0])  # the model is read on first use
    times = decision_seconds(router, TASKS * 400)
    written = [json.loads(line)["task"] for path in HELDOUT for line in path.read_text("utf-8").splitlines() if line]
    written_times = decision_seconds(router, written * 3)
    runs = 21
    baseline = median_seconds([PYTHON, "-c", "pass"], runs=runs)
    fresh = median_seconds([PYTHON, "-c", FRESH], runs=runs)
    cpu_baseline = median_cpu_seconds([PYTHON, "-c", "pass"], runs)
    cpu_fresh = median_cpu_seconds([PYTHON, "-c", FRESH], runs)
    inside = statistics.median(float(subprocess.run([PYTHON, "-c", TIMED], capture_output=True, text=True,
                                                    check=True).stdout) for _ in range(runs))
    print(f"route decision median        {statistics.median(times) * 1000:7.3f} ms (target <= 1 ms);"
          f" 95th percentile {statistics.quantiles(times, n=20)[-1] * 1000:.3f} ms")
    print(f"  on the held-out requests   {statistics.median(written_times) * 1000:7.3f} ms ({len(written)} requests, median"
          f" {statistics.median(map(len, written)):.0f} characters); 95th percentile"
          f" {statistics.quantiles(written_times, n=20)[-1] * 1000:.3f} ms")
    for length in PASTE_LENGTHS:
        paste_times = decision_seconds(router, [pasted_log(length)] * 20)
        print(f"  a {length:,}-character paste {statistics.median(paste_times) * 1000:7.3f} ms (median of 20)")
    print(f"python -c pass               {baseline * 1000:7.1f} ms (baseline)")
    print(f"fresh process: load + route  {fresh * 1000:7.1f} ms  = {fresh / baseline:.2f}x baseline (wall)")
    print(f"  CPU time                   {cpu_fresh * 1000:7.1f} ms  = {cpu_fresh / cpu_baseline:.2f}x"
          f" `python -c pass`'s {cpu_baseline * 1000:.1f} ms")
    print(f"  inside the process: import, load, route {inside * 1000:.1f} ms CPU (target <= 50 ms)")
    for module in READING_RUNTIMES:
        if importlib.util.find_spec(module) is None:
            print(f"import {module:<24} not installed")
            continue
        cpu = median_cpu_seconds([PYTHON, "-c", f"import {module}"], runs)
        print(f"import {module:<24}{cpu * 1000:7.1f} ms CPU = {cpu / cpu_baseline:.2f}x `python -c pass`, alone")


if __name__ == "__main__":
    main()
