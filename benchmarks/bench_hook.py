"""`mcp-router hook` after one new turn, and on a prompt (UserPromptSubmit: routing advice), against the same
venv's `python -c pass`; the advice hook's median and p95 (its target: median <= 2x), and what loading the
router costs inside it.

    python benchmarks/bench_hook.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from timing import MCP_ROUTER, PYTHON, median_seconds

REAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "claude-code-2.1.328" / "projects"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        projects = Path(tmp) / "projects"
        shutil.copytree(REAL, projects)
        transcript = projects / "-home-user-code-demo" / "73ecb4c8-90a6-4794-a251-1990ae699330.jsonl"
        env = {**os.environ, "MCP_ROUTER_DB": str(Path(tmp) / "usage.db"), "HOME": tmp}
        payload = json.dumps({"session_id": transcript.stem, "transcript_path": str(transcript),
                              "cwd": "/home/user/code/demo", "hook_event_name": "Stop"}).encode()
        subprocess.run([MCP_ROUTER, "hook"], input=payload, env=env, check=True)  # database and offsets exist
        lines = transcript.read_text().splitlines(keepends=True)
        turn = [line for line in lines if '"assistant"' in line][-1]
        runs = 15
        hook_times = []
        for n in range(runs):  # each run first gets one new turn appended, as after a real Stop
            record = json.loads(turn)
            record["message"]["id"] = f"msg_bench_{n}"
            with transcript.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            started = time.perf_counter()
            subprocess.run([MCP_ROUTER, "hook"], input=payload, env=env, check=True)
            hook_times.append(time.perf_counter() - started)
        hook = statistics.median(hook_times)
        prompt = json.dumps({**json.loads(payload), "hook_event_name": "UserPromptSubmit",
                             "prompt": "summarize the error log in build.txt and list the failing tests"}).encode()
        advice_runs = 40
        advice, bare = [], []
        for _ in range(advice_runs):  # interleaved, so both see the same machine
            bare.append(_seconds([PYTHON, "-c", "pass"]))
            advice.append(_seconds([MCP_ROUTER, "hook"], stdin=prompt, env=env))
        baseline = statistics.median(bare)
        statusline = median_seconds([MCP_ROUTER, "statusline"], runs=runs, stdin=b"{}", env=env)
        load = median_seconds([PYTHON, "-c", ROUTER_LOAD], runs=runs, env=env) - baseline
    print(f"python -c pass            {baseline * 1000:7.1f} ms (baseline), p95 {_p95(bare) * 1000:.1f} ms")
    print(f"mcp-router hook (1 turn)  {hook * 1000:7.1f} ms  = {hook / baseline:.2f}x baseline (target <= 3x)")
    print(f"mcp-router hook (prompt)  {statistics.median(advice) * 1000:7.1f} ms  = "
          f"{statistics.median(advice) / baseline:.2f}x baseline (target <= 2x), p95 {_p95(advice) * 1000:.1f} ms"
          f" = {_p95(advice) / _p95(bare):.2f}x the baseline's p95")
    print(f"  of which the router     {load * 1000:7.1f} ms  (import + Router.load, over the baseline)")
    print(f"mcp-router statusline     {statusline * 1000:7.1f} ms  = {statusline / baseline:.2f}x baseline (target <= 3x)")


ROUTER_LOAD = ("from mcp_router.config import Config; from mcp_router.pricing import Catalog; "
               "from mcp_router.routing import Router; c = Config.load(); Router.load(Catalog.load(c.pricing), c)")


def _seconds(command: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1]


if __name__ == "__main__":
    main()
