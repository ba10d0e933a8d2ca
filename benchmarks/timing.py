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


def wall_and_peak_memory(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Seconds and peak memory (KiB) of one run: the largest sum of proportional set size (Pss: a page
    shared by n processes counts 1/n in each) over the command's process tree, sampled every 10 ms. Pss,
    not RSS, because forked workers share their parent's pages."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_pss_kib(process.pid))
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, stderr=process.stderr.read())  # type: ignore[union-attr]
    return elapsed, peak


def _tree_pss_kib(pid: int) -> int:
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/smaps_rollup").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", status, re.M)
        total += int(match.group(1)) if match else 0
    return total
