"""Shared measuring helpers: median wall time of a command, and wall time + peak RSS of one run."""

from __future__ import annotations

import compileall
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
MCP_ROUTER = str(VENV_BIN / "mcp-router")

# pip compiles a package's bytecode when it installs it; an editable install under PYTHONDONTWRITEBYTECODE
# (set on these machines) never has any, and every run would compile each module again. Compile it once, as
# an install would, so the figures are a user's.
compileall.compile_dir(ROOT / "mcp_router", quiet=1)


def median_seconds(command: list[str], runs: int = 15, stdin: bytes = b"", env: dict[str, str] | None = None,
                   prepare: Callable[[], object] | None = None) -> float:
    """Median wall time of ``runs`` runs of ``command``, calling ``prepare`` (untimed) before each."""
    times = []
    for _ in range(runs):
        if prepare:
            prepare()
        started = time.perf_counter()
        subprocess.run(command, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def wall_seconds(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one run, with nothing else of ours running beside it."""
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def peak_memory_kib(command: list[str], env: dict[str, str] | None = None) -> int:
    """Peak memory of one run: the largest sum of proportional set size (Pss: a page shared by n processes
    counts 1/n in each) over the command's process tree, sampled every 20 ms. Pss, not RSS, because forked
    workers share their parent's pages. Sampling costs CPU, so time is measured in a separate run."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_pss_kib(process.pid))
        time.sleep(0.02)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return peak


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
