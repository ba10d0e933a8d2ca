"""A report routes in the foreground only the prompts it reads; the rest are routed after it, and never lost.

A user's first report ingests months of transcripts but shows one week: the prompts outside its period (and the
day before it, which the as-routed what-if reads) are written undecided with their transcript line, routed by a
detached child after the report is printed, or by any later report (its period's) or ingest (all) if that child
died. Real SQLite files, real transcript files, the real command in a subprocess, a real forked child.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.corpus import generate
from mcp_router import ledger
from mcp_router.config import Config
from mcp_router.ledger import PromptDecider, ingest_tree
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, prompt_window, render
from mcp_router.store import connect
from mcp_router.transcripts import Prompt, parse_line

CATALOG = Catalog.load()
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
LAST_WEEK = ("2026-11-16", "2026-11-22")  # the corpus's last seven days
FIRST_WEEK = ("2026-11-02", "2026-11-08")
WINDOW = prompt_window(ReportSpec.parse(*LAST_WEEK, "UTC", None))
assert WINDOW is not None


def _corpus(root: Path) -> Path:
    projects = root / "projects"
    generate(projects, sessions=40, turns=6, filler=200, seed=21, days=20, distinct_prompts=True)
    return projects


def _prompts(conn: sqlite3.Connection) -> list[tuple]:
    return [tuple(row) for row in conn.execute("SELECT * FROM prompts ORDER BY uuid")]


def _undecided(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT uuid FROM prompts WHERE tier IS NULL")}


def _report_json(conn: sqlite3.Connection, period: tuple[str, str]) -> str:
    spec = ReportSpec.parse(*period, "UTC", "day,model")
    return render(build_report(conn, spec, CATALOG, Config.load(), now=NOW), "json")


@pytest.fixture
def reference(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    """The corpus and a database of it with every prompt routed while ingested, as before."""
    projects = _corpus(tmp_path)
    conn = connect(tmp_path / "reference.db")
    ingest_tree(conn, projects, CATALOG)
    assert not _undecided(conn)
    return projects, conn


def _mcp_router(*args: str, db: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "mcp_router", *args, "--db", str(db)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def _wait_until_decided(db: Path, timeout: float = 60) -> None:
    conn = connect(db, migrate=False)
    deadline = time.monotonic() + timeout
    while _undecided(conn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _undecided(conn)
    conn.close()


def _ingest_for_last_week(db: Path, projects: Path) -> PromptDecider:
    conn = connect(db)
    decider = PromptDecider(conn, window=WINDOW)
    ingest_tree(conn, projects, CATALOG, decider=decider)
    conn.close()
    return decider


@pytest.mark.parametrize("bulk", [False, True])
def test_an_ingest_for_a_week_routes_that_weeks_prompts_now_and_a_child_the_rest(
        tmp_path: Path, reference: tuple[Path, sqlite3.Connection], bulk: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    projects, ref = reference
    if bulk:  # parse workers, routing in them
        monkeypatch.setattr(ledger, "BULK_MIN_BYTES", 0)
    db = tmp_path / "usage.db"
    conn = connect(db)
    decider = PromptDecider(conn, window=WINDOW)
    ingest_tree(conn, projects, CATALOG, decider=decider, workers=2 if bulk else 0)
    rows = conn.execute("SELECT uuid, ts, tier, text FROM prompts").fetchall()
    inside = {uuid for uuid, ts, _, _ in rows if WINDOW[0] <= ts < WINDOW[1]}
    outside = {uuid for uuid, _, _, _ in rows} - inside
    assert len(inside) > 20 and len(outside) > 2 * len(inside)
    assert _undecided(conn) == outside  # only the week (and the day before it) routed in the foreground
    assert {row[0] for row in conn.execute("SELECT uuid FROM prompt_sources")} == outside
    assert {uuid for uuid, _, _ in decider.pending} == outside and all(row[3] is None for row in rows)
    assert _report_json(conn, LAST_WEEK) == _report_json(ref, LAST_WEEK)  # the week's report is complete already
    conn.close()
    child = decider.decide_in_background(db)
    assert child is not None and decider.pending == []
    assert os.waitpid(child, 0)[1] == 0
    conn = connect(db)
    assert _prompts(conn) == _prompts(ref)
    assert conn.execute("SELECT COUNT(*) FROM prompt_sources").fetchone()[0] == 0
    assert _report_json(conn, FIRST_WEEK) == _report_json(ref, FIRST_WEEK)


def test_a_first_report_of_a_week_then_the_background_child_give_what_routing_everything_gave(
        tmp_path: Path, reference: tuple[Path, sqlite3.Connection]) -> None:
    projects, ref = reference
    db = tmp_path / "usage.db"
    done = _mcp_router("report", "--since", LAST_WEEK[0], "--until", LAST_WEEK[1], "--timezone", "UTC",
                       "--format", "json", "--projects-dir", str(projects), db=db)
    printed = json.loads(done.stdout)
    expected = json.loads(render(build_report(ref, ReportSpec.parse(*LAST_WEEK, "UTC", None), CATALOG, Config.load()),
                                 "json"))
    assert "undecided_prompts" not in printed["what_if"]["as_routed"] and printed["what_if"]["as_routed"]["prompts"]
    assert {k: v for k, v in printed.items() if k != "budget"} == {k: v for k, v in expected.items() if k != "budget"}
    _wait_until_decided(db)
    conn = connect(db)
    assert _prompts(conn) == _prompts(ref)
    for period in (FIRST_WEEK, LAST_WEEK, ("2026-11-01", "2026-11-30")):
        assert _report_json(conn, period) == _report_json(ref, period)


def test_a_killed_child_loses_nothing(tmp_path: Path, reference: tuple[Path, sqlite3.Connection]) -> None:
    projects, ref = reference
    db = tmp_path / "usage.db"
    decider = _ingest_for_last_week(db, projects)
    child = decider.decide_in_background(db)
    assert child is not None
    os.kill(child, signal.SIGKILL)
    assert os.waitpid(child, 0)[1] != 0
    conn = connect(db)
    left = _undecided(conn)
    assert left
    first_week = prompt_window(ReportSpec.parse(*FIRST_WEEK, "UTC", None))
    assert first_week is not None
    in_first_week = {row[0] for row in conn.execute("SELECT uuid FROM prompts WHERE ts >= ? AND ts < ?", first_week)}
    assert left & in_first_week
    # A report of the first week routes that week's prompts itself, and only those: nothing new to ingest, no child.
    _mcp_router("report", "--since", FIRST_WEEK[0], "--until", FIRST_WEEK[1], "--timezone", "UTC", "--format", "json",
                "--projects-dir", str(projects), db=db)
    assert _undecided(conn) == left - in_first_week
    assert _report_json(conn, FIRST_WEEK) == _report_json(ref, FIRST_WEEK)
    _mcp_router("ingest", "--projects-dir", str(projects), db=db)  # and any ingest routes the rest
    assert _prompts(conn) == _prompts(ref)
    assert conn.execute("SELECT COUNT(*) FROM prompt_sources").fetchone()[0] == 0


def test_a_report_says_how_many_of_its_prompts_are_not_routed(tmp_path: Path,
                                                              reference: tuple[Path, sqlite3.Connection]) -> None:
    projects, ref = reference
    db = tmp_path / "usage.db"
    _ingest_for_last_week(db, projects)  # its child never ran: as if killed at once
    conn = connect(db)
    start = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
    end = datetime(2026, 11, 9, tzinfo=UTC).timestamp()
    # The transcript with the most of the first week's prompts is deleted (Claude Code deletes old ones).
    session, count = conn.execute(
        "SELECT session_id, COUNT(*) FROM prompts WHERE ts >= ? AND ts < ? GROUP BY session_id ORDER BY 2 DESC, 1",
        (start, end)).fetchone()
    [transcript] = projects.glob(f"*/{session}.jsonl")
    transcript.unlink()
    done = _mcp_router("report", "--since", FIRST_WEEK[0], "--until", FIRST_WEEK[1], "--timezone", "UTC",
                       "--format", "json", "--projects-dir", str(projects), db=db)
    routed = json.loads(done.stdout)["what_if"]["as_routed"]
    expected = json.loads(_report_json(ref, FIRST_WEEK))["what_if"]["as_routed"]
    assert routed["undecided_prompts"] == count  # said, not guessed
    assert routed["prompts"] == expected["prompts"] - count
    table = _mcp_router("report", "--since", FIRST_WEEK[0], "--until", FIRST_WEEK[1], "--timezone", "UTC",
                        "--no-ingest", db=db).stdout
    assert f"Not routed yet: {count:,} prompts of this period" in table
    complete = _mcp_router("report", "--since", LAST_WEEK[0], "--until", LAST_WEEK[1], "--timezone", "UTC",
                           "--no-ingest", db=db).stdout
    assert "Not routed yet" not in complete


@pytest.mark.parametrize("keep", [False, True])
def test_prompts_routed_later_leave_no_text_unless_kept(tmp_path: Path, keep: bool) -> None:
    projects = _corpus(tmp_path)
    texts = [parsed.text for path in projects.glob("*/*.jsonl") for line in path.read_bytes().splitlines()
             if isinstance(parsed := parse_line(line), Prompt) and len(parsed.text) >= 40]
    assert len(texts) > 50
    db = tmp_path / "data" / "usage.db"
    _mcp_router("report", "--since", LAST_WEEK[0], "--until", LAST_WEEK[1], "--timezone", "UTC",
                "--projects-dir", str(projects), db=db, env={"MCP_ROUTER_KEEP_PROMPTS": "true"} if keep else {})
    _wait_until_decided(db)
    written = [path for path in tmp_path.rglob("*") if path.is_file() and projects not in path.parents]
    assert {path.name for path in written} >= {"usage.db", "usage.db.report-cache"}
    stored = b"".join(path.read_bytes() for path in written)
    assert all((text.encode() in stored) is keep for text in texts)
    assert all(path.stat().st_mode & 0o077 == 0 for path in written if path.name.startswith("usage.db"))


def test_a_prompt_the_hook_deferred_is_routed_by_the_next_ingest_if_its_child_died(
        tmp_path: Path, reference: tuple[Path, sqlite3.Connection]) -> None:
    projects, ref = reference
    db = tmp_path / "usage.db"
    conn = connect(db)
    decider = PromptDecider(conn, defer=True)  # as the hook ingests
    ledger.ingest_session(conn, next(projects.glob("*/*.jsonl")), CATALOG, decider)
    deferred = {uuid for uuid, _, _ in decider.pending}
    assert deferred and _undecided(conn) == deferred  # and its child never ran
    assert {row[0] for row in conn.execute("SELECT uuid FROM prompt_sources")} == deferred
    conn.close()
    _mcp_router("ingest", "--projects-dir", str(projects), db=db)
    conn = connect(db)
    assert _prompts(conn) == _prompts(ref)
