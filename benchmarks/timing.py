"""Shared measuring helpers: median wall time of a command, and wall time + peak RSS of one run."""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from pathlib import Path

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
MCP_ROUTER = str(VENV_BIN / "mcp-router")


def median_seconds(command: list[str], runs: int = 15, stdin: bytes = b"", env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def wall_and_peak_rss(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Seconds and peak resident memory (KiB) of one run, via GNU time."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, check=True)
    elapsed = time.perf_counter() - started
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    return elapsed, peak
