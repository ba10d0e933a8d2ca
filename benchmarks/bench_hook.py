"""`mcp-router hook` after one new turn, against the same venv's `python -c pass`.

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
        baseline = median_seconds([PYTHON, "-c", "pass"], runs=runs)
        statusline = median_seconds([MCP_ROUTER, "statusline"], runs=runs, stdin=b"{}", env=env)
    print(f"python -c pass            {baseline * 1000:7.1f} ms (baseline)")
    print(f"mcp-router hook (1 turn)  {hook * 1000:7.1f} ms  = {hook / baseline:.2f}x baseline (target <= 3x)")
    print(f"mcp-router statusline     {statusline * 1000:7.1f} ms  = {statusline / baseline:.2f}x baseline (target <= 3x)")


if __name__ == "__main__":
    main()
