"""How close a first report could come to ccusage 20 in this design: the two costs no Python-level change removes,
each measured against ccusage 20.0.24 in the same run on the same ~1 GB corpus as bench_ingest.py.

    python benchmarks/bench_floor.py [--runs 3]

- a native parse: DuckDB (installed by this script with pip into benchmarks/.work/duckdb, not a dependency of
  mcp-router) reading from every transcript only the usage fields and summing them by model and session, with its
  two threads: about the least a parse of the corpus costs with a well-kept native library;
- routing: the shipped router deciding each distinct prompt a first report of the default week must route before
  it prints (the week and the day before it, as `report` does), in one process; a cold ingest routes in two
  workers, so half this CPU time is the least it adds to the wall time on two cores.

What it prints per run: ccusage 20's wall time, then each cost as a share of it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench_ingest import _LAST_DAY, WORK, install_ccusage, timed
from corpus import ISSUE_SHAPE, generate

ROOT = Path(__file__).resolve().parents[1]
DUCKDB = WORK / "duckdb"
FIELDS = ("{'type': 'VARCHAR', 'timestamp': 'VARCHAR', 'sessionId': 'VARCHAR', 'requestId': 'VARCHAR',"
          " 'isSidechain': 'BOOLEAN', 'message': 'STRUCT(id VARCHAR, model VARCHAR, usage STRUCT(input_tokens"
          " BIGINT, output_tokens BIGINT, cache_creation_input_tokens BIGINT, cache_read_input_tokens BIGINT,"
          " speed VARCHAR))'}")
PROMPT_FIELDS = "{'type': 'VARCHAR', 'timestamp': 'VARCHAR', 'message': 'STRUCT(content JSON)'}"
SOURCE = ("read_json('{projects}/*/*.jsonl', format = 'newline_delimited', ignore_errors = true,"
          " maximum_object_size = 100000000, columns = {columns})")
PARSE = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads = 2; SET enable_progress_bar = false")
print(con.execute(f"SELECT message.model, sessionId, count(DISTINCT message.id), sum(message.usage.input_tokens),"
                  f" sum(message.usage.output_tokens), sum(message.usage.cache_creation_input_tokens),"
                  f" sum(message.usage.cache_read_input_tokens) FROM {sys.argv[1]} WHERE type = 'assistant'"
                  f" GROUP BY ALL").fetchall()[:1])
"""
PROMPTS = """
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
rows = con.execute(f"SELECT message.content FROM {sys.argv[1]} WHERE type = 'user' AND timestamp >= '{sys.argv[2]}'"
                   ).fetchall()
json.dump(sorted({json.loads(c) for (c,) in rows if c and c.startswith('"')}), open(sys.argv[3], "w"))
"""
ROUTE = """
import json, sys, time
from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import Router
prompts = json.load(open(sys.argv[1], encoding="utf-8"))
router = Router.load(Catalog.load(), Config())
router.model.remember_rows()
started = time.process_time()
for prompt in prompts:
    router.route(prompt)
print(json.dumps({"prompts": len(prompts), "cpu": time.process_time() - started}))
"""


def duckdb_python() -> Path:
    python = DUCKDB / "bin" / "python"
    if not python.exists():
        print(f"installing duckdb into {DUCKDB}")
        subprocess.run([sys.executable, "-m", "venv", str(DUCKDB)], check=True)
        subprocess.run([str(DUCKDB / "bin" / "pip"), "install", "--quiet", "duckdb>=1.1"], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    corpus = WORK / "corpus"
    projects = corpus / "projects"
    if not projects.exists():
        generate(projects, size_mb=1000, **ISSUE_SHAPE)
    python, ccusage = duckdb_python(), install_ccusage("20")
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(corpus)}
    first_day = str(_LAST_DAY - timedelta(days=7))  # the week's first day and the day before it
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.json"
        source = SOURCE.format(projects=projects, columns=FIELDS)
        subprocess.run([str(python), "-c", PROMPTS, SOURCE.format(projects=projects, columns=PROMPT_FIELDS),
                        first_day, str(prompts)], check=True)
        for run in range(1, args.runs + 1):
            ccusage_wall, ccusage_cpu = timed([str(ccusage), "claude", "weekly", "--json", "--offline"], env)
            parse_wall, parse_cpu = timed([str(python), "-c", PARSE, source], env)
            started = time.perf_counter()
            routed = json.loads(subprocess.run([sys.executable, "-c", ROUTE, str(prompts)], cwd=ROOT, env=env,
                                               capture_output=True, text=True, check=True).stdout)
            route_wall = time.perf_counter() - started
            print(f"run {run}: ccusage 20 {ccusage_wall:.2f} s ({ccusage_cpu:.1f} s CPU); native parse (DuckDB)"
                  f" {parse_wall:.2f} s ({parse_cpu:.1f} s CPU) = {parse_wall / ccusage_wall:.2f}x;"
                  f" routing {routed['prompts']:,} prompts {routed['cpu']:.2f} s CPU (process {route_wall:.2f} s),"
                  f" half of it = {routed['cpu'] / 2 / ccusage_wall:.2f}x; together"
                  f" {(parse_wall + routed['cpu'] / 2) / ccusage_wall:.2f}x ccusage 20's wall time", flush=True)


if __name__ == "__main__":
    main()
