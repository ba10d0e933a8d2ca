"""Probe of #15's deferred routing: a prompt left undecided whose recorded line is gone, while its text is still in
its transcript (the file rewritten with its lines moved), is routed by the next ingest, never left undecided for good.
Real SQLite, real files, the real command in a subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from benchmarks.corpus import generate
from mcp_router.ledger import PromptDecider, ingest_session, ingest_tree
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, prompt_window
from mcp_router.store import connect

CATALOG = Catalog.load()
WINDOW = prompt_window(ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", None))


def _undecided(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT uuid FROM prompts WHERE tier IS NULL")}


def _ingest(db: Path, projects: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mcp_router", "ingest", "--projects-dir", str(projects), "--db",
                           str(db)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _first_report(tmp_path: Path, projects: Path) -> sqlite3.Connection:
    """The database as a report of the last week leaves it when its background child died at once."""
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, window=WINDOW))
    assert _undecided(conn)
    return conn


def test_a_prompt_whose_file_was_rewritten_with_its_lines_moved_is_routed_by_the_next_ingest(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    generate(projects, sessions=20, turns=6, filler=20, seed=5, days=20, distinct_prompts=True)
    conn = _first_report(tmp_path, projects)
    source = Path(conn.execute("SELECT source_file FROM prompt_sources ORDER BY uuid").fetchone()[0])
    moved = {row[0] for row in conn.execute("SELECT uuid FROM prompt_sources WHERE source_file = ?", (str(source),))}
    rewritten = source.with_suffix(".tmp")  # rewritten whole, a line added at the top: a new inode, lines moved
    rewritten.write_bytes(b'{"type":"summary","summary":"Earlier work","leafUuid":"x"}\n' + source.read_bytes())
    os.replace(rewritten, source)
    _ingest(tmp_path / "usage.db", projects)
    assert not _undecided(conn) & moved
    assert not _undecided(conn)
    assert conn.execute("SELECT COUNT(*) FROM prompt_sources").fetchone()[0] == 0



def test_a_source_that_is_not_a_regular_file_is_not_read(tmp_path: Path) -> None:
    """A recorded line in a FIFO (a crafted row, or a transcript replaced by one) neither blocks nor is read."""
    projects = tmp_path / "projects"
    generate(projects, sessions=4, turns=4, filler=20, seed=7, days=20, distinct_prompts=True)
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, window=(0.0, 1.0)))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    undecided = _undecided(conn)
    uuid = min(undecided)
    conn.execute("UPDATE prompt_sources SET source_file = ? WHERE uuid = ?", (str(fifo), uuid))
    _ingest(tmp_path / "usage.db", projects)
    assert _undecided(conn) == {uuid}


def test_a_prompt_the_hook_of_an_older_version_left_undecided_is_routed_by_the_next_report(tmp_path: Path) -> None:
    """Before m015 the hook wrote its deferred prompts without their lines: a child of it that died left them
    undecided with no source. The next report of their period finds them in their sessions' transcripts."""
    projects = tmp_path / "projects"
    generate(projects, sessions=6, turns=4, filler=20, seed=8, days=20, distinct_prompts=True)
    db = tmp_path / "usage.db"
    reference = connect(tmp_path / "reference.db")
    ingest_tree(reference, projects, CATALOG)
    conn = connect(db)
    decider = PromptDecider(conn, defer=True)  # as the hook ingests; its child never ran
    for path in sorted(projects.glob("*/*.jsonl")):
        ingest_session(conn, path, CATALOG, decider)
    conn.execute("DELETE FROM prompt_sources")  # as an older version left them
    assert _undecided(conn)
    done = subprocess.run([sys.executable, "-m", "mcp_router", "report", "--since", "2026-11-01", "--until",
                           "2026-11-30", "--timezone", "UTC", "--projects-dir", str(projects), "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Not routed yet" not in done.stdout
    assert not _undecided(conn)
    rows = "SELECT uuid, tier, category, confidence, text FROM prompts ORDER BY uuid"
    assert conn.execute(rows).fetchall() == reference.execute(rows).fetchall()
