"""The database as a product: its Datasette metadata describes what is there, and its first views add up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from mcp_router.cli import cli
from mcp_router.datasette import metadata
from mcp_router.store import connect

from .devtools import Chromium
from .test_report import UTC, _insert
from .test_report_html import ARTIFACTS, LOOKS, WIDTHS, needs_chromium

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
DATASETTE_LINE = 'datasette "$(mcp-router db path)" -m <(mcp-router db metadata)'


def test_metadata_describes_every_table_and_view_and_only_real_columns(db_path: Path) -> None:
    db = Database(connect(db_path))
    described = metadata(db_path)["databases"]["usage"]["tables"]
    ours = set(db.table_names()) - {"_sqlite_migrations"} | set(db.view_names())
    assert set(described) == ours
    for name, table in described.items():
        assert table["description"]
        real = set((db[name] if name in db.table_names() else db.view(name)).columns_dict)
        assert set(table.get("columns", {})) <= real, name
    assert "15-minute" in described["usage_rollup"]["description"]
    assert "bucket * 900" in described["usage_rollup"]["columns"]["bucket"]
    assert "timestamp" in described["usage_events"]["columns"]["ts"]
    assert "Claude Code's own" in described["session_costs"]["description"]


def test_db_path_and_metadata_commands(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "path", "--db", str(db)]).output == f"{db}\n"
    assert runner.invoke(cli, ["db", "path"], env={"MCP_ROUTER_DB": str(db)}).output == f"{db}\n"
    printed = json.loads(runner.invoke(cli, ["db", "metadata", "--db", str(db)], catch_exceptions=False).output)
    assert list(printed["databases"]) == ["ledger"]  # Datasette names a database after its file


def test_views_add_up(db_path: Path, isolated_user: Path) -> None:
    conn = connect(db_path)
    at = datetime(2026, 11, 18, 12, tzinfo=UTC)
    api = f"{isolated_user}/code/api"
    _insert(conn, [{"at": at, "input": 1_000_000, "project": "-x-api", "cwd": api},
                   {"at": at, "model": "claude-haiku-5-5", "output": 1_000_000, "project": "-x-api",
                    "cwd": api + "/src"},
                   {"at": at, "project": "-other", "session": "s2"}])
    conn.execute("INSERT INTO delegations (id, ts, category, model, outcome, cost_usd, saved_usd) VALUES"
                 " ('d1', ?, 'summarize', 'claude-haiku-5-5', 'ok', 0.01, 0.2)", (at.timestamp(),))
    conn.execute("INSERT INTO feedback (delegation_id, ts, category, rating) VALUES ('d1', 1, 'summarize', 'bad')")
    total = conn.execute("SELECT TOTAL(cost_usd) FROM usage_events").fetchone()[0]
    by_day = conn.execute("SELECT model, responses, cost_usd FROM daily_cost_by_model").fetchall()
    assert sorted(tuple(r) for r in by_day)[0][:2] == ("claude-haiku-5-5", 1)
    assert abs(sum(r[2] for r in by_day) - total) < 1e-6
    projects = [tuple(r) for r in conn.execute("SELECT project_path, project_key, sessions, responses"
                                               " FROM cost_by_project ORDER BY project_key")]
    assert projects == [("-other", "-other", 1, 1), (api, "-x-api", 1, 2)]  # the shorter folder, not src/
    delegation = conn.execute("SELECT id, saved_usd, rating FROM delegations_with_savings").fetchone()
    assert tuple(delegation) == ("d1", 0.2, "bad")


def test_the_readme_datasette_line_shows_the_descriptions_and_views(db_path: Path) -> None:
    assert DATASETTE_LINE in README
    conn = connect(db_path)
    _insert(conn, [{"at": datetime(2026, 11, 18, 12, tzinfo=UTC), "project": "-x-api", "cwd": "/x/api"}])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MCP_ROUTER_DB": str(db_path)}

    def get(path: str) -> str:
        done = subprocess.run(["bash", "-c", f"{DATASETTE_LINE} --get {path}"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    page = get("/usage/usage_rollup")
    assert "The 15-minute UTC slot: floor(ts / 900)" in page  # the column's description, on the table page
    assert "Claude Code&#39;s own figure" in get("/usage/session_costs")
    rows = json.loads(get("/usage/cost_by_project.json?_shape=array"))
    assert [(r["project_path"], r["project_key"], r["responses"]) for r in rows] == [("/x/api", "-x-api", 1)]


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_datasette_pages_with_the_metadata_look_right(chromium: Chromium, db_path: Path, tmp_path: Path,
                                                      width: str) -> None:
    """The pages the metadata changes, as a person sees them: screenshots, no console error, nothing fetched
    from anywhere but Datasette itself, the descriptions on screen and the page no wider than the screen."""
    conn = connect(db_path)
    _insert(conn, [{"at": datetime(2026, 11, 18, 12, tzinfo=UTC), "project": "-x-api", "cwd": "/x/api"}])
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(metadata(db_path)))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "datasette"), str(db_path), "-m", str(meta),
                               "-h", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(origin + "/-/versions.json", timeout=2).read()
                break
            except OSError:
                time.sleep(0.3)
        ARTIFACTS.mkdir(exist_ok=True)
        for page, expected in (("usage_rollup", "The 15-minute UTC slot"), ("cost_by_project", "/x/api")):
            shot = ARTIFACTS / f"datasette-{page}-{width}.png"
            load = chromium.load_url(f"{origin}/usage/{page}", {
                "text": "document.body.innerText", "overflow_px": LOOKS["overflow_px"]},
                screenshot=shot, **WIDTHS[width])
            assert load.console_errors == [] and load.exceptions == [] and load.log_errors == []
            assert load.requests and all(url.startswith(origin + "/") for url in load.requests)
            assert expected in load.values["text"] and shot.stat().st_size > 10_000
            if width == "phone":  # Datasette stacks a table's rows on a phone; on a desktop wide tables scroll
                assert load.values["overflow_px"] <= 0
            if page == "usage_rollup":
                assert "usage_events summed per 15-minute UTC bucket" in load.values["text"]
    finally:
        server.terminate()
        server.wait(timeout=10)
