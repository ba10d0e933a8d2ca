"""MCP server: start-up to the answer of tools/list, and route_model round trips over stdio.

    python benchmarks/bench_server.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from timing import MCP_ROUTER, PYTHON, median_seconds


async def start_and_list(env: dict[str, str]) -> float:
    started = time.perf_counter()
    async with Client(StdioServerParameters(command=MCP_ROUTER, args=["serve"], env=env)) as client:
        await client.list_tools()
        return time.perf_counter() - started


async def round_trips(env: dict[str, str], n: int) -> list[float]:
    async with Client(StdioServerParameters(command=MCP_ROUTER, args=["serve"], env=env)) as client:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            await client.call_tool("route_model", {"task": "summarize last night's build log"})
            times.append(time.perf_counter() - started)
        return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
        asyncio.run(start_and_list(env))  # the database exists; caches are warm
        startup = statistics.median(asyncio.run(start_and_list(env)) for _ in range(7))
        baseline = median_seconds([PYTHON, "-c", "import mcp.server.mcpserver"], runs=7)
        trips = asyncio.run(round_trips(env, 200))
    print(f"python -c 'import mcp.server.mcpserver'  {baseline * 1000:6.0f} ms (baseline)")
    print(f"start-up to tools/list answer            {startup * 1000:6.0f} ms = {startup / baseline:.2f}x (target <= 1.2x)")
    print(f"route_model round trip over stdio        median {statistics.median(trips) * 1000:.2f} ms (target <= 5 ms)")


if __name__ == "__main__":
    main()
