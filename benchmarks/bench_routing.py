"""route decision latency in process (median of 100 batches of 100 decisions).

    python benchmarks/bench_routing.py
"""

from __future__ import annotations

import statistics
import timeit

from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import Router

TASKS = ["summarize why payments are off by a cent across 9 services", "rename the variable arch in config.py",
         "anything red in last night's build log?", "find the intermittent deadlock in the worker pool"]


def main() -> None:
    router = Router.load(Catalog.load(), Config())
    batches = [timeit.timeit(lambda n=n: router.route(TASKS[n % len(TASKS)]), number=100) / 100 for n in range(100)]
    print(f"route decision median {statistics.median(batches) * 1000:.3f} ms (target <= 1 ms)")


if __name__ == "__main__":
    main()
