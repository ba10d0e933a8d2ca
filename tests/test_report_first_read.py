"""A report's first ingest reads only the transcripts its period can need; its background child ingests the rest.

A transcript's events are written at or before its last modification, so a report ingests first the files modified
since the earliest moment it reads (the day before its period, or the month's start for the budget, less a day of
clock skew), prints, and leaves the rest to the detached child that routes the deferred prompts. The corpus spans
four months, each file last modified at its last event (``benchmarks.corpus.generate``), and a database ingested
whole is the reference: the gated report is the same byte for byte, and so is every table once the child is done,
with other ingests (a second report, ``mcp-router ingest``, hooks) running at the same time. Real SQLite files,
real processes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.corpus import generate
from mcp_router import ledger
from mcp_router.config import Config
from mcp_router.ledger import CLAUDE_CODE_RELEASED, MTIME_SKEW_SECONDS, PromptDecider, ingest_tree, transcript_files
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, earliest_read, prompt_window, render
from mcp_router.store import connect

from .test_ingest_identity import TABLES

CATALOG = Catalog.load()
START = datetime(2026, 8, 1, tzinfo=UTC)
LAST_WEEK = ("2026-11-16", "2026-11-22")


def _corpus(root: Path, sessions: int = 80, filler: int = 200) -> Path:
    """Four months of transcripts, kept by Claude Code's settings beside them (``cleanupPeriodDays``) for years."""
    projects = root / "projects"
    generate(projects, sessions=sessions, turns=6, filler=filler, seed=33, start=START, days=118,
             distinct_prompts=True)
    (root / "settings.json").write_text(json.dumps({"cleanupPeriodDays": 100_000}))
    return projects


def _whole(projects: Path, db: Path) -> sqlite3.Connection:
    conn = connect(db)
    ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, Config()))
    return conn


def _report(conn: sqlite3.Connection, spec: ReportSpec, now: datetime) -> str:
    return render(build_report(conn, spec, CATALOG, Config(), now=now), "json")


def _tables(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    return {name: [tuple(row) for row in conn.execute(sql)] for name, sql in TABLES.items()}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sqlite3.Connection]:
    """The four months of transcripts and a database of them ingested whole, every prompt routed."""
    root = tmp_path_factory.mktemp("history")
    projects = _corpus(root)
    return projects, _whole(projects, root / "whole.db")


def test_the_corpus_leaves_each_transcript_last_modified_at_its_last_event(
        history: tuple[Path, sqlite3.Connection]) -> None:
    projects, whole = history
    last = dict(whole.execute("SELECT source_file, MAX(ts) FROM usage_events GROUP BY source_file").fetchall())
    files = transcript_files(projects)
    assert len(files) > 80 and set(last) == {str(path) for path in files}
    assert all(path.stat().st_mtime == pytest.approx(last[str(path)], abs=1e-3) for path in files)


def test_the_earliest_moment_a_report_reads_is_the_day_before_its_period_or_the_months_start() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    week = ReportSpec.parse(*LAST_WEEK, "UTC", None)
    assert earliest_read(week, now) == datetime(2026, 11, 1, tzinfo=UTC).timestamp()  # the budget's month to date
    early = ReportSpec.parse("2026-10-20", "2026-10-26", "UTC", None)
    assert earliest_read(early, now) == datetime(2026, 10, 19, tzinfo=UTC).timestamp()  # the what-if's day before
    assert earliest_read(ReportSpec.parse(None, None, "UTC", None, all_days=True), now) is None
    # A period longer than LONG_PERIOD_DAYS is trimmed to the ledger's first day: everything is read first.
    assert earliest_read(ReportSpec.parse("2024-01-01", "2026-11-30", "UTC", None), now) is None


def test_a_gated_ingest_reads_the_files_its_moment_needs_and_their_sessions(
        tmp_path: Path, history: tuple[Path, sqlite3.Connection]) -> None:
    projects, whole = history
    moment = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    conn = connect(tmp_path / "usage.db")
    calls: list[tuple[int, int, int, int]] = []
    summary = ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, Config()), modified_since=moment,
                          progress=lambda *call: calls.append(call))
    read = {row[0] for row in conn.execute("SELECT path FROM ingest_files")}
    assert calls[0][2:] == calls[-1][2:] == (len(read), summary.bytes_read)  # of the files read, not of all
    sessions = {ledger._session_of(Path(path)) for path in read}
    for path in transcript_files(projects):
        recent = path.stat().st_mtime + MTIME_SKEW_SECONDS >= moment
        assert (str(path) in read) == (recent or ledger._session_of(path) in sessions), path
    assert summary.files_left == len(transcript_files(projects)) - len(read) > 40
    assert summary.files_read == len(read)
    # Every response at or after the moment is in, with exactly the rows the whole ingest has.
    after = "SELECT message_id, request_id, ts, cost_usd, source_file FROM usage_events WHERE ts >= ? ORDER BY 1, 2"
    assert conn.execute(after, (moment,)).fetchall() == whole.execute(after, (moment,)).fetchall()


def test_nothing_recent_still_reads_the_latest_activity(tmp_path: Path,
                                                         history: tuple[Path, sqlite3.Connection]) -> None:
    """A user back after months: the report's latest activity (and its "no usage" note) needs the newest files."""
    projects, whole = history
    now = datetime(2027, 3, 10, 12, tzinfo=UTC)
    spec = ReportSpec.parse("2027-03-04", "2027-03-10", "UTC", None)
    conn = connect(tmp_path / "usage.db")
    moment = earliest_read(spec, now)
    assert moment is not None
    calls: list[tuple[int, int, int, int]] = []
    summary = ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, Config(), window=prompt_window(spec)),
                          modified_since=moment, progress=lambda *call: calls.append(call))
    assert 0 < summary.files_read < summary.files / 4 and summary.files_left
    # The progress bar counts the files read, of those found to be needed (it grows as they are found).
    assert calls[-1] == (summary.files_read, summary.bytes_read, summary.files_read, summary.bytes_read)
    assert all(files <= all_files and read <= all_bytes for files, read, all_files, all_bytes in calls)
    assert _report(conn, spec, now) == _report(whole, spec, now)
    assert json.loads(_report(conn, spec, now))["latest_activity"] is not None


def test_a_file_whose_mtime_says_nothing_is_read(tmp_path: Path) -> None:
    """An mtime before Claude Code existed was set by an archive or a copy tool: the file is read whatever it is."""
    projects = _corpus(tmp_path, sessions=6)
    files = transcript_files(projects)
    os.utime(files[0], (0, 0))
    os.utime(files[1], (CLAUDE_CODE_RELEASED + 3600,) * 2)
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, Config()),
                modified_since=datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    read = {row[0] for row in conn.execute("SELECT path FROM ingest_files")}
    assert str(files[0]) in read and str(files[1]) not in read


def test_a_file_whose_mtime_is_older_than_its_events_is_read(tmp_path: Path) -> None:
    """probe 15f: ``touch -d``, or a copy from a machine whose clock is behind, left a session of the period out of
    the printed report. Its end says when its latest event was."""
    projects = _corpus(tmp_path, sessions=12)
    moment = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    recent = [path for path in transcript_files(projects) if path.stat().st_mtime > moment + MTIME_SKEW_SECONDS]
    assert recent
    os.utime(recent[0], (moment - 50 * 86_400,) * 2)
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, Config()), modified_since=moment)
    assert str(recent[0]) in {row[0] for row in conn.execute("SELECT path FROM ingest_files")}


@pytest.mark.parametrize(("settings_text", "days"), [(None, 30), ('{"cleanupPeriodDays": 60}', 60),
                                                     ('{"cleanupPeriodDays": "x"}', 30), ("not json", 30)])
def test_a_file_claude_code_may_delete_at_its_next_start_is_read_first(tmp_path: Path, settings_text: str | None,
                                                                        days: int) -> None:
    """probe 15f: a first report left files over 30 days old to its background process, and a `claude` started
    meanwhile deleted them (``cleanupPeriodDays``, 30 by default) before they were read: history lost for good."""
    projects = _corpus(tmp_path, sessions=12)
    if settings_text is None:
        (tmp_path / "settings.json").unlink()
    else:
        (tmp_path / "settings.json").write_text(settings_text)
    now = time.time()
    files = transcript_files(projects)
    for age, path in zip((days + 5, days - 5, days - 10), files[:3], strict=True):  # days before now
        os.utime(path, (now - age * 86_400,) * 2)
    conn = connect(tmp_path / "usage.db")
    ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, Config()), modified_since=now)
    assert str(files[0]) in {row[0] for row in conn.execute("SELECT path FROM ingest_files")}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(since=st.dates(date(2026, 8, 1), date(2026, 12, 10)), days=st.integers(0, 40),
       late=st.integers(0, 60), group_by=st.sampled_from(["model", "day,model", "project,session,agent,branch"]),
       zone=st.sampled_from(["UTC", "Pacific/Kiritimati", "America/Los_Angeles"]), seed=st.integers(0, 2**32))
def test_the_gated_report_is_the_report_of_everything(
        history: tuple[Path, sqlite3.Connection], since: date, days: int, late: int, group_by: str, zone: str,
        seed: int) -> None:
    """Any period, any day it is run, files last modified any time after their last event: the same report."""
    projects, whole = history
    rng = random.Random(seed)
    modified = {path: path.stat().st_mtime for path in transcript_files(projects)}
    for path, mtime in modified.items():  # touched after its last event (never before: that is the rule)
        if rng.random() < 0.3:
            os.utime(path, (mtime, mtime + rng.uniform(0, 40 * 86_400)))
    spec = ReportSpec.parse(since.isoformat(), (since + timedelta(days=days)).isoformat(), zone, group_by)
    now = datetime.combine(spec.until + timedelta(days=late), datetime.min.time(), UTC) + timedelta(hours=13)
    moment = earliest_read(spec, now)
    assert moment is not None
    with tempfile.TemporaryDirectory() as folder:
        conn = connect(Path(folder) / "usage.db")
        ingest_tree(conn, projects, CATALOG, decider=PromptDecider(conn, Config(), window=prompt_window(spec)),
                    modified_since=moment)
        try:
            assert _report(conn, spec, now) == _report(whole, spec, now)
        finally:
            conn.close()
            for path, mtime in modified.items():
                os.utime(path, (mtime, mtime))


def _mcp_router(*args: str, db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mcp_router", *args, "--db", str(db)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finished(process: subprocess.Popen[str], stdin: str | None = None) -> str:
    out, err = process.communicate(stdin, timeout=300)
    assert process.returncode == 0, err
    return out


def _wait_until_whole(db: Path, projects: Path, timeout: float = 240) -> sqlite3.Connection:
    """The database once every transcript is ingested to its end and every prompt routed: what the child does last."""
    sizes = {str(path): path.stat().st_size for path in transcript_files(projects)}
    conn = connect(db, migrate=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        offsets = dict(conn.execute("SELECT path, offset FROM ingest_files").fetchall())
        undecided = conn.execute("SELECT COUNT(*) FROM prompts WHERE tier IS NULL").fetchone()[0]
        if offsets == sizes and not undecided:
            return conn
        time.sleep(0.1)
    raise AssertionError("the background child did not finish")


def test_a_first_report_prints_what_a_whole_ingest_gives_and_its_child_completes_the_database(
        tmp_path: Path, history: tuple[Path, sqlite3.Connection]) -> None:
    """The real command (today is the machine's: the budget reads the month to date), then its real child."""
    projects, whole = history
    db = tmp_path / "usage.db"
    printed = json.loads(_finished(_mcp_router("report", "--since", LAST_WEEK[0], "--until", LAST_WEEK[1],
                                               "--timezone", "UTC", "--format", "json", "--projects-dir",
                                               str(projects), db=db)))
    expected = json.loads(render(build_report(whole, ReportSpec.parse(*LAST_WEEK, "UTC", None), CATALOG, Config()),
                                 "json"))
    assert printed["totals"]["messages"] and "undecided_prompts" not in printed["what_if"]["as_routed"]
    for report in (printed, expected):
        del report["budget"]["projected_month_usd"]  # the time of day, a moment apart
    assert printed == expected
    conn = _wait_until_whole(db, projects)
    assert _tables(conn) == _tables(whole)
    moment = earliest_read(ReportSpec.parse(*LAST_WEEK, "UTC", None))
    assert moment is not None
    if whole.execute("SELECT MAX(ts) FROM usage_events").fetchone()[0] >= moment:  # run in November 2026
        # The sessions with a file modified since the moment were ingested first, by the report; the rest after
        # it, by the child.
        written = dict(conn.execute("SELECT path, updated_at FROM ingest_files").fetchall())
        files = transcript_files(projects)
        recent = {ledger._session_of(path) for path in files if path.stat().st_mtime + MTIME_SKEW_SECONDS >= moment}
        first = [written[str(path)] for path in files if ledger._session_of(path) in recent]
        left = [written[str(path)] for path in files if ledger._session_of(path) not in recent]
        assert len(left) > 40 and max(first) < min(left)
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    for since, until in (("2026-08-01", "2026-08-31"), ("2026-10-01", "2026-10-14"), LAST_WEEK):
        spec = ReportSpec.parse(since, until, "UTC", "day,model")
        assert _report(conn, spec, now) == _report(whole, spec, now)


def _first_ingest_of_the_last_week(projects: Path, db: Path) -> tuple[PromptDecider, float]:
    """A first report's ingest for the last week (its connection closed: the decider holds what its child gets),
    and the moment it read from."""
    spec = ReportSpec.parse(*LAST_WEEK, "UTC", None)
    moment = earliest_read(spec, datetime(2026, 11, 30, 12, tzinfo=UTC))
    assert moment is not None
    conn = connect(db)
    decider = PromptDecider(conn, Config(), window=prompt_window(spec))
    assert ingest_tree(conn, projects, CATALOG, decider=decider, modified_since=moment).files_left > 40
    conn.close()
    return decider, moment


def test_ingests_at_once_with_the_child_stay_correct(tmp_path: Path) -> None:
    """The child ingesting the rest while a second report, ``mcp-router ingest`` and hooks of the old sessions ingest
    the same files: upserts, INSERT OR IGNORE and offsets committed with their rows leave what one ingest leaves."""
    projects = _corpus(tmp_path, sessions=120, filler=8_000)
    whole = _whole(projects, tmp_path / "whole.db")
    db = tmp_path / "usage.db"
    decider, moment = _first_ingest_of_the_last_week(projects, db)
    old = [path for path in transcript_files(projects) if path.parent.name != "subagents"
           and path.stat().st_mtime + MTIME_SKEW_SECONDS < moment]
    others = [_mcp_router("ingest", "--projects-dir", str(projects), db=db),
              _mcp_router("report", "--since", "2026-08-03", "--until", "2026-08-09", "--timezone", "UTC",
                          "--format", "json", "--projects-dir", str(projects), db=db)]
    time.sleep(0.3)  # past their imports: reading and writing the files the child reads (on a quick machine they
    child = decider.decide_in_background(db, projects)  # may be done by now: the hooks below still run beside it)
    assert child is not None
    hooks = []
    for path in old[:8]:  # one after the other while the child runs
        hooks.append(_mcp_router("hook", db=db))
        _finished(hooks[-1], json.dumps({"hook_event_name": "Stop", "session_id": path.stem,
                                         "transcript_path": str(path)}))
    for process in others:
        _finished(process)
    assert os.waitpid(child, 0)[1] == 0
    conn = _wait_until_whole(db, projects)
    assert _tables(conn) == _tables(whole)
    assert conn.execute("SELECT COUNT(*) FROM prompt_sources").fetchone()[0] == 0


def test_a_killed_child_loses_nothing(tmp_path: Path, history: tuple[Path, sqlite3.Connection]) -> None:
    """The next report reads what its period needs (an older one: files the dead child never read), and
    ``mcp-router ingest`` everything."""
    projects, whole = history
    db = tmp_path / "usage.db"
    decider, _ = _first_ingest_of_the_last_week(projects, db)
    child = decider.decide_in_background(db, projects)
    assert child is not None
    os.kill(child, signal.SIGKILL)
    assert os.waitpid(child, 0)[1] != 0
    august = ("2026-08-10", "2026-08-16")
    printed = json.loads(_finished(_mcp_router("report", "--since", august[0], "--until", august[1], "--timezone",
                                               "UTC", "--format", "json", "--projects-dir", str(projects), db=db)))
    expected = json.loads(render(build_report(whole, ReportSpec.parse(*august, "UTC", None), CATALOG, Config()),
                                 "json"))
    for report in (printed, expected):
        del report["budget"]["projected_month_usd"]
    assert printed == expected and printed["totals"]["messages"]
    _finished(_mcp_router("ingest", "--projects-dir", str(projects), db=db))
    conn = _wait_until_whole(db, projects)
    assert _tables(conn) == _tables(whole)


def test_the_latest_event_at_a_files_end_is_found_past_a_long_last_line(tmp_path: Path) -> None:
    def latest(text: str) -> float:
        path = tmp_path / "t.jsonl"
        path.write_text(text)
        return ledger._latest_in_tail(ledger._FileTask(path, 0, 0, 0, path.stat().st_size, 0, 0.0))

    stamp = '{"type": "user", "timestamp": "2026-11-02T10:00:00.000Z"}\n'
    assert latest(stamp + '{"type": "assistant", "timestamp": "2026-11-03T10:00:00Z"}\n') == \
        datetime(2026, 11, 3, 10, tzinfo=UTC).timestamp()
    assert latest(stamp + '{"content": "' + "x" * 20_000 + '"}\n') == datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp()
    assert latest('{"content": "' + "x" * 100_000 + '"}\n') == float("inf")  # none found: the file is read
    assert latest('{"timestamp": "yesterday"}\n') == float("inf")
