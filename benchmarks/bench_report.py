"""`mcp-router report` over a database of 1,000,000 usage rows, beside a plain COUNT(*) of the same rows.

    python benchmarks/bench_report.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from timing import MCP_ROUTER, PYTHON, median_seconds

from mcp_router.store import USAGE_COLUMNS, connect, transaction, upsert_usage

TIERS = {"summarize the build log": "haiku", "add a --json flag to export": "sonnet",
         "why does checkout fail only in prod?": "opus"}
PROMPTS = list(TIERS)
MODELS = ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-4-5", "claude-unknown-9"]


def fill(path: Path, rows: int, prompts: bool = False) -> None:
    conn = connect(path)
    rng = random.Random(1)
    start = 1_794_000_000.0  # 2026-11-07
    with transaction(conn):
        batch = []
        for n in range(rows):
            values = dict.fromkeys(USAGE_COLUMNS)
            if n % 200 == 0:  # a session: 200 responses about half a minute apart, one project and main model
                session_start = start + rng.random() * 15 * 86400
                project, main_model = f"p{rng.randrange(30)}", rng.choice(MODELS)
            subagent = n % 7 == 0
            values.update(message_id=f"m{n}", request_id="r", ts=session_start + (n % 200) * 30,
                          model="claude-haiku-5-5" if subagent else main_model, session_id=f"s{n // 200}",
                          project=project, is_sidechain=int(subagent), agent_id="a1" if subagent else None,
                          agent_type="general-purpose" if subagent else None,
                          input_tokens=rng.randint(1, 9000), output_tokens=rng.randint(1, 2000),
                          cache_read_tokens=rng.randint(0, 90000), cache_creation_tokens=rng.randint(0, 9000),
                          cache_creation_1h_tokens=0, total_tokens=0, cost_usd=rng.random() / 10, git_branch="main")
            batch.append(tuple(values[c] for c in USAGE_COLUMNS))
            if prompts and not subagent and n % 10 == 1:  # a prompt every ten responses
                text = rng.choice(PROMPTS)  # stored as ingest stores it: the decision, not the text
                conn.execute("INSERT INTO prompts (uuid, session_id, ts, tier, chars) VALUES (?, ?, ?, ?, ?)",
                             (f"u{n}", values["session_id"], values["ts"], TIERS[text], len(text)))
            if len(batch) == 50_000:
                upsert_usage(conn, batch)
                batch = []
        upsert_usage(conn, batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "usage.db"
        fill(db, args.rows)
        env = {**os.environ, "HOME": tmp}
        base = [MCP_ROUTER, "report", "--db", str(db), "--no-ingest", "--format", "json", "--timezone", "UTC"]
        with_prompts = Path(tmp) / "prompts.db"

        def uncached() -> None:  # the report built each time, not given again from the last run's
            for path in (db, with_prompts):
                Path(f"{path}.report-cache").unlink(missing_ok=True)

        week_args = [*base, "--since", "2026-11-16", "--until", "2026-11-22"]
        week = median_seconds(week_args, runs=5, env=env, prepare=uncached)
        cached = median_seconds(week_args, runs=5, env=env)
        fill(with_prompts, args.rows, prompts=True)
        week_prompts = median_seconds([MCP_ROUTER, "report", "--db", str(with_prompts), *base[4:], "--since",
                                       "2026-11-16", "--until", "2026-11-22"], runs=5, env=env, prepare=uncached)
        everything = median_seconds([*base, "--since", "2026-11-01", "--until", "2026-11-30", "--group-by",
                                     "day,model,project"], runs=5, env=env, prepare=uncached)
        startup = median_seconds([MCP_ROUTER, "report", "--help"], runs=5, env=env)
        count_code = f"import sqlite3; sqlite3.connect({str(db)!r}).execute('SELECT COUNT(*), TOTAL(cost_usd) FROM usage_events').fetchone()"
        count = median_seconds([PYTHON, "-c", count_code], runs=5)
        conn = sqlite3.connect(db)
        started = time.perf_counter()
        conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()
        in_process = time.perf_counter() - started
    print(f"rows: {args.rows:,}")
    print(f"python: COUNT(*)+TOTAL over all rows     {count * 1000:7.0f} ms (baseline)")
    print(f"mcp-router report --help (start-up)      {startup * 1000:7.0f} ms")
    print(f"report, 7 days, by model                 {week * 1000:7.0f} ms  (target <= 500 ms)")
    print(f"same again, nothing changed (cached)     {cached * 1000:7.0f} ms")
    print(f"same, with a prompt every 10 responses   {week_prompts * 1000:7.0f} ms  (the as-routed what-if reads the week's prompts)")
    print(f"report, 30 days (all rows), day,model,project {everything * 1000:7.0f} ms  = {everything / count:.1f}x baseline")
    print(f"(in-process COUNT(*): {in_process * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
