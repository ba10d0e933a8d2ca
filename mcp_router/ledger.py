"""Incremental ingest of Claude Code transcripts into the usage store.

Layout read: ``<projects>/<project>/<session-id>.jsonl`` and, for subagents,
``<projects>/<project>/<session-id>/subagents/agent-<id>.jsonl`` (+ ``agent-<id>.meta.json`` naming
the agent type). Subagent usage belongs to the parent session and project.

Each file is read from the byte offset recorded in ``ingest_files``. Only complete lines are read: a
last line without its newline is Claude Code still writing and waits for the next run. Rows and the
new offsets are committed together, so a run killed at any point is simply resumed.
A file whose inode changed or that shrank is read again from the start; rows already stored are never
deleted (Claude Code deletes old transcripts; the database is the only history).

What the user typed is not kept: each prompt is stored as the router's decision on it (tier, category,
confidence) and its length, the text only with ``keep_prompts``. The transcripts of ``claude -p``
delegation runs (sessions listed in ``delegation_sessions``) are skipped: a delegation is recorded
once, by the server, and the text it was given stays out of the database.

Parsing and writing are separate steps: a large ingest parses files (and routes their prompts) in worker
processes while this process writes their rows in file order, so the result is the same as a run in one process.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any, NamedTuple

from .config import Config
from .errors import MCPRouterError
from .pricing import Catalog, Usage
from .store import USAGE_COLUMNS, upsert_usage
from .transcripts import (
    Advice,
    CostState,
    MalformedLine,
    Parsed,
    Prompt,
    ToolResult,
    UsageEvent,
    bulk_loads,
    decode_line,
    decode_object,
    lines_to_parse,
    open_regular,
    parse_line,
    parse_record,
    repeats,
    timestamp_seconds,
    tool_uses,
)

CHUNK_BYTES = 16 * 1024 * 1024
# Rows of many files share a transaction: each commit rewrites every index page it touched, and the
# keys are random. This bounds how long a bulk ingest holds the write lock (about a second).
COMMIT_BYTES = 128 * 1024 * 1024
BULK_CACHE_KIB = 64 * 1024
# Below this many new bytes, worker processes and orjson's import cost more than they save.
BULK_MIN_BYTES = 64 * 1024 * 1024
DECISIONS_PER_COMMIT = 1000
# Claude Code writes a transcript's events at or before the file's last modification, so a file modified before a
# moment holds nothing after it, give or take what another clock stamped: a network file system's server, a FAT
# drive storing local time (off by the UTC offset, up to 14 hours, when read in another zone), a clock stepped back.
MTIME_SKEW_SECONDS = 86_400
# Claude Code's first release (2025-02-24): an earlier mtime was set by something else (an archive, a copy tool) and
# says nothing about the file's events.
CLAUDE_CODE_RELEASED = 1_740_355_200.0
# Claude Code deletes transcripts older than its settings' cleanupPeriodDays (30 by default) when it starts: a file
# that old is read before the report prints, not left to a background process that Claude Code may outrun.
CLEANUP_PERIOD_DAYS = 30
# How much of a file's end is read to find its latest event when its mtime says it has none recent enough: the
# first that holds a timestamp (a last line can be a long tool result).
TAIL_BYTES = (8 * 1024, 64 * 1024)
_TIMESTAMP = re.compile(rb'"timestamp": ?"([0-9T:.+Z-]{10,40})"')
_UUID = re.compile(rb'"uuid": ?"([^"]+)"')

_MESSAGE_ID, _REQUEST_ID = USAGE_COLUMNS.index("message_id"), USAGE_COLUMNS.index("request_id")
_SIDECHAIN = USAGE_COLUMNS.index("is_sidechain")
_MODEL, _COST = USAGE_COLUMNS.index("model"), USAGE_COLUMNS.index("cost_usd")


@dataclass
class IngestSummary:
    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    lines: int = 0
    responses: int = 0  # usage lines parsed, duplicates included
    new_responses: int = 0
    malformed_lines: int = 0
    unpriced_models: dict[str, int] = field(default_factory=dict)
    # Transcripts that could not be read, with why: their usage is missing from the ledger.
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    # Per file with malformed lines: (how many, the first one's line number, why it was skipped).
    malformed_files: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    files_left: int = 0  # files with new lines left for a later ingest (``modified_since``)

    @property
    def duplicates(self) -> int:
        return self.responses - self.new_responses


def transcript_files(projects_dir: Path) -> list[Path]:
    """Every transcript under ``projects_dir`` (``*/*.jsonl``, then ``*/*/subagents/*.jsonl``, each in path
    order), each main session file before its subagents."""
    return [Path(entry) for entry in _transcript_entries(projects_dir)]


def _transcript_entries(projects_dir: Path) -> list[os.DirEntry[str]]:
    """``transcript_files`` as directory entries: one listing per folder, and each entry stats its file by
    name within the folder. A report with nothing new to read lists and stats thousands of files, and
    pattern matching and whole-path lookups cost more than the rest of it together."""
    main: list[os.DirEntry[str]] = []
    subagents: list[os.DirEntry[str]] = []
    for project in _listing(projects_dir):
        if not project.is_dir():
            continue
        for entry in _listing(project.path):
            if entry.name.endswith(".jsonl"):
                main.append(entry)
            if entry.is_dir():
                subagents.extend(agent for agent in _listing(os.path.join(entry.path, "subagents"))
                                 if agent.name.endswith(".jsonl"))
    return main + subagents


def _listing(folder: str | Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` in name order; none when it is missing or cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError:
        return []


def session_files(transcript_path: Path) -> list[Path]:
    """A session's main transcript and its subagent transcripts."""
    subagent_dir = transcript_path.with_suffix("") / "subagents"
    return [transcript_path, *sorted(subagent_dir.glob("*.jsonl"))]


def ingest_tree(
    conn: sqlite3.Connection, projects_dir: Path, catalog: Catalog,
    *, progress: Progress | None = None, workers: int | None = None, decider: PromptDecider | None = None,
    modified_since: float | None = None,
) -> IngestSummary:
    """Ingest every transcript under ``projects_dir``; ``progress(files, bytes, all_files, all_bytes)`` once
    the files with new lines are known, then after each of them (how many read so far, of how many).

    ``workers`` is the number of parsing processes: by default one per CPU when there is enough new
    data to be worth it, else none (parse here). ``decider`` stores the prompts (by default, each routed now).

    ``modified_since`` (epoch seconds) reads only the files that can hold an event at or after it, with every other
    file of their sessions (a session is read whole: the report prices a haiku-reader run against its session's
    main model, and sidechain replays are matched across a session's files), then the files that can hold an event
    later than the latest the ledger holds (a report shows the day of the latest activity); the others are left for
    a later ingest (``IngestSummary.files_left``).
    """
    return _ingest(conn, _transcript_entries(Path(projects_dir)), catalog, progress, workers, decider,
                   None if modified_since is None else (modified_since, _cleanup_before(Path(projects_dir))))


def ingest_session(conn: sqlite3.Connection, transcript_path: Path, catalog: Catalog,
                   decider: PromptDecider | None = None) -> IngestSummary:
    """Ingest one session: its transcript and its subagents' transcripts."""
    return _ingest(conn, session_files(Path(transcript_path)), catalog, None, 0, decider)


def ingest_file(conn: sqlite3.Connection, path: Path, catalog: Catalog,
                decider: PromptDecider | None = None) -> IngestSummary:
    """Read the new complete lines of one transcript file into the store."""
    return _ingest(conn, [Path(path)], catalog, None, 0, decider)


class _FileTask(NamedTuple):
    """One file's new bytes: where to start reading and what the file looked like when listed."""

    path: Path
    offset: int
    lines_before: int
    malformed_before: int
    size: int
    inode: int
    mtime: float


class _Chunk(NamedTuple):
    """The parsed complete lines of one read of a file."""

    end_offset: int
    end_line: int
    rows: list[tuple[Any, ...]]  # usage rows in USAGE_COLUMNS order, one per response within the chunk
    tool_results: list[tuple[Any, ...]]
    prompts: list[tuple[str, str, float, str, Decided | None, int]]  # uuid, session, ts, text, decision, line
    cost_state: CostState | None
    malformed: list[tuple[int, str]]
    responses: int
    advice: list[tuple[str, str, float, str, str]]


class _ParsedFile(NamedTuple):
    task: _FileTask
    session_id: str
    project: str
    is_subagent: bool
    chunks: Iterable[_Chunk]


Progress = Callable[[int, int, int, int], None]


def _ingest(
    conn: sqlite3.Connection, paths: Sequence[Path | os.DirEntry[str]], catalog: Catalog, progress: Progress | None,
    workers: int | None, decider: PromptDecider | None = None, modified_since: tuple[float, float] | None = None,
) -> IngestSummary:
    """``modified_since``: (the moment, and the mtime before which Claude Code may delete a file): see ingest_tree."""
    summary = IngestSummary(files=len(paths))
    delegation_runs = {row[0] for row in conn.execute("SELECT session_id FROM delegation_sessions")}
    tasks = [task for task in _pending(conn, paths, summary) if _session_of(task.path) not in delegation_runs]
    later: list[_FileTask] = []
    if modified_since is not None:
        moment, cleanup_before = modified_since
        tasks, later = _holding(tasks, moment, cleanup_before)
    if not tasks and not later:
        return summary
    before = _last_usage_id(conn)
    decider = decider or PromptDecider(conn)
    planned = [0, 0]  # files and bytes to read, as known so far

    def report_progress() -> None:
        if progress:
            progress(summary.files_read, summary.bytes_read, planned[0], planned[1])

    while True:
        planned[0] += len(tasks)
        planned[1] += sum(task.size - task.offset for task in tasks)
        _write_tasks(conn, tasks, catalog, workers, decider, summary, report_progress)
        if not later:
            break
        # A file left may hold a later event than any read (none read: start from the newest file).
        latest = _latest_event(conn)
        tasks, later = _holding(later, latest if latest is not None else max(task.mtime for task in later),
                                cleanup_before)
        if not tasks:
            break
    summary.files_left = len(later)
    summary.new_responses = _last_usage_id(conn) - before  # a new row takes an id above the largest
    return summary


def _holding(tasks: list[_FileTask], moment: float, cleanup_before: float) -> tuple[list[_FileTask], list[_FileTask]]:
    """The tasks whose files can hold an event at or after ``moment`` (see ``MTIME_SKEW_SECONDS``) or that Claude Code
    may delete (modified before ``cleanup_before``), with every task of their sessions, in their order; and the
    others. An mtime can lie (``touch``, a copy from a machine whose clock is behind): a file it puts before
    ``moment`` is left only if the events at its end are before it too."""
    sessions = {_session_of(task.path) for task in tasks
                if task.mtime + MTIME_SKEW_SECONDS >= moment or task.mtime < CLAUDE_CODE_RELEASED
                or task.mtime < cleanup_before or _latest_in_tail(task) + MTIME_SKEW_SECONDS >= moment}
    kept = [task for task in tasks if _session_of(task.path) in sessions]
    return kept, [task for task in tasks if _session_of(task.path) not in sessions]


def _latest_in_tail(task: _FileTask) -> float:
    """The latest event time in the end of the file up to its listed size (Claude Code appends in time order);
    infinity when none can be read there, so that the file is read."""
    handle = open_regular(task.path)
    if handle is None:
        return math.inf
    with handle:
        for size in TAIL_BYTES:
            try:
                start = max(task.offset, task.size - size)
                handle.seek(start)
                stamps = _TIMESTAMP.findall(handle.read(task.size - start))
            except OSError:
                return math.inf
            if stamps:
                try:
                    return max(timestamp_seconds(stamp.decode()) for stamp in stamps)
                except MalformedLine:
                    return math.inf
            if start == task.offset:
                break
    return math.inf


def _cleanup_before(projects_dir: Path) -> float:
    """The mtime before which Claude Code may delete a transcript when it next starts: ``cleanupPeriodDays`` from the
    settings beside the projects folder (30 days when unset or unreadable), less a day."""
    days: Any = CLEANUP_PERIOD_DAYS
    handle = open_regular(projects_dir.parent / "settings.json")
    if handle is not None:
        try:
            with handle:
                days = json.load(handle).get("cleanupPeriodDays", CLEANUP_PERIOD_DAYS)
        except (OSError, ValueError, AttributeError, RecursionError):
            pass
    if isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days) or days < 0:
        days = CLEANUP_PERIOD_DAYS
    return time.time() - days * 86_400.0 + MTIME_SKEW_SECONDS


def _latest_event(conn: sqlite3.Connection) -> float | None:
    """When the latest response or delegation the ledger holds happened."""
    return conn.execute("SELECT MAX(latest) FROM (SELECT MAX(ts) AS latest FROM usage_events"
                        " UNION ALL SELECT MAX(ts) FROM delegations)").fetchone()[0]


def _write_tasks(conn: sqlite3.Connection, tasks: list[_FileTask], catalog: Catalog, workers: int | None,
                 decider: PromptDecider, summary: IngestSummary, report_progress: Callable[[], None]) -> None:
    """Parse ``tasks`` and write their rows in their order, into ``summary``."""
    if not tasks:
        return
    new_bytes = sum(task.size - task.offset for task in tasks)
    bulk = new_bytes >= BULK_MIN_BYTES
    # Dirty pages stay in memory until the commit instead of spilling to the WAL again and again. The WAL
    # keeps SQLite's checkpoint interval: checkpoints then copy and sync while the workers parse, not all at
    # once when the connection closes.
    if bulk:
        conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    if workers is None:
        workers = _cpu_count() if bulk and len(tasks) > 1 else 0
    report_progress()
    uncommitted = 0
    try:
        readers = _bulk_readers(decider) if bulk else _Readers(json.loads, None, None)
        for parsed in _parse_all(tasks, catalog, workers, readers):
            offset, line_no = parsed.task.offset, parsed.task.lines_before
            malformed = parsed.task.malformed_before
            for chunk in parsed.chunks:
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                malformed += len(chunk.malformed)
                _write_chunk(conn, parsed, chunk, malformed, summary, decider)
                summary.bytes_read += chunk.end_offset - offset
                summary.lines += chunk.end_line - line_no
                uncommitted += chunk.end_offset - offset
                offset, line_no = chunk.end_offset, chunk.end_line
                if uncommitted >= COMMIT_BYTES:
                    conn.execute("COMMIT")
                    uncommitted = 0
                report_progress()
            summary.files_read += 1
            report_progress()
        if conn.in_transaction:
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _pending(conn: sqlite3.Connection, paths: Sequence[Path | os.DirEntry[str]],
             summary: IngestSummary) -> list[_FileTask]:
    """The files with bytes not yet read, each with the offset to read from. Files that are not regular (a
    FIFO would block the read forever, a device never ends) or cannot be opened go to ``summary.unreadable``."""
    known = {row[0]: row for row in conn.execute(
        "SELECT path, offset, inode, lines, malformed_lines FROM ingest_files")}
    tasks = []
    for file in paths:
        try:
            stat = file.stat()
        except FileNotFoundError:
            continue  # deleted since it was listed: its rows stay
        except OSError as exc:
            summary.unreadable.append((os.fspath(file), exc.strerror or str(exc)))
            continue
        if not S_ISREG(stat.st_mode):
            summary.unreadable.append((os.fspath(file), "not a regular file"))
            continue
        row = known.get(os.fspath(file))
        if row is not None and row[2] == stat.st_ino and row[1] == stat.st_size:
            continue  # nothing new: most files, when a report runs
        path = Path(file)
        offset, lines_before, malformed_before = 0, 0, 0
        if row is not None and row[2] == stat.st_ino and row[1] <= stat.st_size:
            offset, lines_before, malformed_before = row[1], row[3] or 0, row[4] or 0
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError as exc:
            summary.unreadable.append((str(path), exc.strerror or str(exc)))
            continue
        tasks.append(_FileTask(path, offset, lines_before, malformed_before, stat.st_size, stat.st_ino,
                               stat.st_mtime))
    return tasks


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


Decided = tuple[str, str, float]  # the router's tier, category and confidence
Window = tuple[float, float]  # from, until (epoch seconds): the prompts an ingest routes at once


class _PromptRouter:
    """Routes prompts where they are parsed: in a bulk ingest's workers, beside the parse, not in the process
    writing the rows, which is the slower. Built from the tiers and the window of the ingest's ``PromptDecider``,
    so it decides as that would, and only the prompts it would route now; the router itself is loaded on the
    first prompt (it does not pickle)."""

    def __init__(self, catalog: Catalog, tiers: dict[str, str], window: Window | None):
        self.catalog, self.tiers, self.window = catalog, tiers, window
        self.router: Any = None
        self.decided: dict[str, Decided] = {}

    def __reduce__(self) -> tuple[type[_PromptRouter], tuple[Catalog, dict[str, str], Window | None]]:
        return _PromptRouter, (self.catalog, self.tiers, self.window)

    def __call__(self, text: str, ts: float) -> Decided | None:
        if self.window is not None and not self.window[0] <= ts < self.window[1]:
            return None
        decided = self.decided.get(text)
        if decided is None:
            if self.router is None:
                from .routing import Router, load_policy

                self.router = Router(self.catalog, load_policy(), self.tiers)
                self.router.model.remember_rows()
            decision = self.router.route(text)
            decided = self.decided[text] = (decision.tier, decision.category, decision.confidence)
        return decided


class _Readers(NamedTuple):
    """How a parse reads lines and prompts."""

    loads: Callable[[bytes], Any]  # a line's JSON
    read: Callable[[bytes], UsageEvent | list[ToolResult] | None] | None  # bulk_lines.read_line, for a bulk ingest
    route: _PromptRouter | None  # routes each prompt as it is parsed (None: left to the writer)


def _bulk_readers(decider: PromptDecider) -> _Readers:
    """Decoders that cost more to import (the hook reads a few lines) and less a line, and a router for the prompts
    unless the decider defers them. Imported here, before the workers fork, so that they start with them."""
    from .bulk_lines import read_line

    route = None
    if not decider.defer:
        try:
            route = _PromptRouter(*decider.routing(), decider.window)
        except (MCPRouterError, ValueError):  # refused at the first prompt, as one by one; usage alone is read
            pass
    return _Readers(bulk_loads, read_line, route)


def _parse_all(tasks: list[_FileTask], catalog: Catalog, workers: int, readers: _Readers) -> Iterator[_ParsedFile]:
    if workers <= 1:
        for task in tasks:
            yield _parse_file(task, catalog, readers)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # fork starts workers at once and needs no importable __main__; callers must not be running threads
    # (the CLI's progress bar refreshes by hand for this). Elsewhere fork is unsafe and spawn is the default.
    # Not multiprocessing.Pool: its worker-handler thread spins while results wait to be read, taking CPU
    # and the GIL from this process, which writes the rows.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(catalog, readers, os.getpid()))
    try:
        yield from pool.map(_parse_file_in_worker, tasks, chunksize=4)
    except BrokenProcessPool:
        raise MCPRouterError("a process parsing transcripts was killed (out of memory?): run again, it reads"
                             " what this run did not store") from None
    finally:
        pool.shutdown(cancel_futures=True)  # on an error, do not parse the files left


_worker_args: tuple[Catalog, _Readers] | None = None


def _init_worker(catalog: Catalog, readers: _Readers, parent: int) -> None:
    global _worker_args
    _worker_args = (catalog, readers)
    if sys.platform == "linux":  # a parent killed outright (kill -9) must not leave its workers waiting forever
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it died before the line above: no signal will come
            os._exit(1)


def _parse_file_in_worker(task: _FileTask) -> _ParsedFile:
    assert _worker_args is not None
    parsed = _parse_file(task, *_worker_args)
    return parsed._replace(chunks=list(parsed.chunks))


def _parse_file(task: _FileTask, catalog: Catalog, readers: _Readers) -> _ParsedFile:
    path = task.path
    if path.parent.name == "subagents":
        project, session_id, agent_type = path.parents[2].name, path.parents[1].name, _agent_type(path)
    else:
        project, session_id, agent_type = path.parent.name, path.stem, None
    chunks = _parse_chunks(task, _RowMaker(catalog, str(path), project, session_id, agent_type), readers)
    return _ParsedFile(task, session_id, project, agent_type is not None, chunks)


def _parse_chunks(task: _FileTask, maker: _RowMaker, readers: _Readers) -> Iterator[_Chunk]:
    offset, line_no = task.offset, task.lines_before
    loads, read, route = readers
    try:
        handle = open(task.path, "rb")
    except OSError:
        return  # deleted since it was listed: its rows stay
    with handle:
        handle.seek(offset)
        pending = b""
        # Up to the size the file had when listed: what is written meanwhile is the next run's, and a file that
        # never ends (a /proc file lists as empty) cannot keep a run, or the hook, reading.
        remaining = task.size - offset
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            data = pending + chunk
            end = data.rfind(b"\n")
            if end < 0:
                pending = data
                continue
            pending = data[end + 1:]
            block = data if not pending else data[:end + 1]
            responses_kept: dict[tuple[str, str], tuple[UsageEvent, int, Any]] = {}
            tool_results: list[ToolResult] = []
            prompts = []
            advice: list[tuple[str, str, float, str, str]] = []
            cost_state = None
            malformed = []
            responses = 0
            block_lines, lines_to_read = lines_to_parse(block)
            for number, line in lines_to_read:
                record = None
                try:
                    parsed: Parsed = read(line) if read is not None and line[0] == 0x7B else None  # "{"
                    if parsed is None:
                        record = decode_object(line, loads) if line[0] == 0x7B else decode_line(line, loads)
                        if record is None:
                            continue
                        if responses_kept and record.get("type") == "assistant" and _repeated(record, responses_kept):
                            responses += 1
                            for tool_use_id, name in tool_uses(record):  # each copy holds its own content block
                                maker.tool_names[tool_use_id] = name
                            continue
                        parsed = parse_record(record)
                except MalformedLine as exc:
                    malformed.append((line_no + number, str(exc)))
                    continue
                if isinstance(parsed, UsageEvent):
                    responses += 1
                    for tool_use_id, name in parsed.tool_uses:
                        maker.tool_names[tool_use_id] = name
                    key = (parsed.message_id, parsed.request_id)
                    kept = responses_kept.get(key)
                    if kept is None or _beats(parsed, kept[0]):
                        usage = _UNREAD if record is None else record["message"]["usage"]
                        responses_kept[key] = (parsed, line_no + number, usage)
                elif isinstance(parsed, CostState):
                    cost_state = parsed
                elif isinstance(parsed, list):
                    tool_results.extend(parsed)
                elif isinstance(parsed, Prompt) and not maker.agent_type:
                    prompts.append((parsed.uuid, parsed.session_id or maker.session_id, parsed.ts, parsed.text,
                                    route(parsed.text, parsed.ts) if route else None, line_no + number))
                elif isinstance(parsed, Advice) and not maker.agent_type:
                    advice.append((parsed.uuid, parsed.session_id or maker.session_id, parsed.ts, parsed.kind,
                                   parsed.category))
            line_no += block_lines
            offset += end + 1
            rows = [maker.usage_row(event, number) for event, number, _ in responses_kept.values()]
            yield _Chunk(offset, line_no, rows, maker.tool_result_rows(tool_results), prompts, cost_state, malformed,
                         responses, advice)


# The usage object of a response read by bulk_lines, which builds none: no line's usage equals it.
_UNREAD = object()


def _repeated(record: dict[str, Any], responses_kept: dict[tuple[str, str], tuple[UsageEvent, int, Any]]) -> bool:
    """Whether ``record`` is a copy of a response kept already that would change nothing but tool names."""
    message, request_id = record.get("message"), record.get("requestId")
    if type(message) is not dict or type(message_id := message.get("id")) is not str:
        return False
    kept = responses_kept.get((message_id, request_id if type(request_id) is str else ""))
    return kept is not None and repeats(record, kept[0], kept[2])


def _beats(event: UsageEvent, kept: UsageEvent) -> bool:
    """The copy of a response the store keeps (as store.upsert_usage does): the most tokens, then main
    chain over sidechain."""
    return event.total_tokens > kept.total_tokens or (
        event.total_tokens == kept.total_tokens and event.is_sidechain < kept.is_sidechain)


class _RowMaker:
    """Usage and tool-result rows for one file, remembering its tool names and resolved model names."""

    def __init__(self, catalog: Catalog, source_file: str, project: str, session_id: str, agent_type: str | None):
        self.catalog, self.source_file, self.project = catalog, source_file, project
        self.session_id, self.agent_type = session_id, agent_type
        self.tool_names: dict[str, str] = {}
        self.models: dict[str, str] = {}

    def usage_row(self, event: UsageEvent, line_no: int) -> tuple[Any, ...]:
        model = self.models.get(event.raw_model)
        if model is None:
            model = self.models[event.raw_model] = self.catalog.canonical(event.raw_model)
        cost = self.catalog.cost(model, Usage(
            event.input_tokens, event.output_tokens, event.cache_read_tokens, event.cache_creation_tokens,
            event.cache_creation_1h_tokens, event.web_search_requests, event.inference_geo, event.speed,
            tuple(Usage(*part) for part in event.iterations),
        ))
        # The same order as USAGE_COLUMNS (tests/test_ledger.py checks it).
        return (
            event.message_id, event.request_id, event.ts, event.timestamp, event.session_id or self.session_id,
            self.project, event.cwd, event.git_branch, event.is_sidechain, event.agent_id,
            event.agent_type or (self.agent_type if event.agent_id else None), model, event.raw_model,
            event.input_tokens, event.output_tokens, event.cache_read_tokens, event.cache_creation_tokens,
            event.cache_creation_5m_tokens, event.cache_creation_1h_tokens, event.web_search_requests,
            event.total_tokens, event.inference_geo, event.service_tier, event.speed, cost, self.source_file,
            line_no,
        )

    def tool_result_rows(self, results: list[ToolResult]) -> list[tuple[Any, ...]]:
        """One row per tool use: the last copy, as INSERT OR REPLACE of every copy would leave (a resumed
        session writes its tool results again)."""
        last = {r.tool_use_id: r for r in results}
        return [(r.tool_use_id, r.ts, r.session_id or self.session_id, self.project,
                 self.tool_names.get(r.tool_use_id), r.content_chars, r.is_sidechain) for r in last.values()]


def _write_chunk(
    conn: sqlite3.Connection, parsed: _ParsedFile, chunk: _Chunk, malformed: int, summary: IngestSummary,
    decider: PromptDecider,
) -> None:
    """Write one chunk's rows and the file's new offset; the caller holds the transaction."""
    task = parsed.task
    if chunk.malformed:
        count, first_line, reason = summary.malformed_files.get(str(task.path), (0, *chunk.malformed[0]))
        summary.malformed_files[str(task.path)] = (count + len(chunk.malformed), first_line, reason)
    summary.malformed_lines += len(chunk.malformed)
    summary.responses += chunk.responses
    rows = list(_without_replays(conn, chunk.rows))
    upsert_usage(conn, rows)
    for row in rows:
        if row[_COST] is None:
            summary.unpriced_models[row[_MODEL]] = summary.unpriced_models.get(row[_MODEL], 0) + 1
    if chunk.tool_results:
        conn.executemany(
            "INSERT OR REPLACE INTO tool_results (tool_use_id, ts, session_id, project, tool_name,"
            " content_chars, is_sidechain) VALUES (?, ?, ?, ?, ?, ?, ?)", chunk.tool_results)
    if chunk.prompts:
        known = dict(conn.execute(
            f"SELECT uuid, tier IS NULL FROM prompts WHERE uuid IN ({', '.join('?' * len(chunk.prompts))})",
            [prompt[0] for prompt in chunk.prompts]).fetchall())
        new = [prompt for prompt in chunk.prompts if prompt[0] not in known]
        conn.executemany(
            "INSERT OR IGNORE INTO prompts (uuid, session_id, ts, text, tier, category, confidence, chars)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", decider.rows(new))
        deferred = [(prompt[0], str(task.path), prompt[5]) for prompt in new if decider.defers(prompt[2])]
        # A prompt still undecided, met again (its file rewritten, or a copy in a resumed session): its text is here
        # now, where the line recorded may be gone; finish_undecided or the child routes it from this line.
        again = [prompt for prompt in chunk.prompts if known.get(prompt[0])]
        deferred += [(prompt[0], str(task.path), prompt[5]) for prompt in again]
        decider.pending += [(prompt[0], prompt[3] or "", prompt[2]) for prompt in again if decider.defers(prompt[2])]
        if deferred:
            conn.executemany("INSERT OR REPLACE INTO prompt_sources (uuid, source_file, line_no) VALUES (?, ?, ?)",
                             deferred)
    if chunk.advice:
        conn.executemany("INSERT OR IGNORE INTO advice_events (uuid, session_id, ts, kind, category)"
                         " VALUES (?, ?, ?, ?, ?)", chunk.advice)
    if chunk.cost_state is not None and not parsed.is_subagent:
        state = chunk.cost_state
        conn.execute(
            "INSERT OR REPLACE INTO session_costs (session_id, total_cost_usd, model_usage,"
            " has_unknown_model_cost, source_file, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (state.session_id or parsed.session_id, state.total_cost_usd, json.dumps(state.model_usage),
             int(state.has_unknown_model_cost), str(task.path), time.time()),
        )
    conn.execute(
        "INSERT INTO ingest_files (path, offset, size, inode, mtime, session_id, project, lines,"
        " malformed_lines, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(path) DO UPDATE SET offset = excluded.offset, size = excluded.size,"
        " inode = excluded.inode, mtime = excluded.mtime, lines = excluded.lines,"
        " malformed_lines = excluded.malformed_lines, updated_at = excluded.updated_at",
        (str(task.path), chunk.end_offset, task.size, task.inode, task.mtime, parsed.session_id,
         parsed.project, chunk.end_line, malformed, time.time()),
    )


def _without_replays(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Drop sidechain copies of a response already stored under another request id (side questions)."""
    seen: dict[str, str] = {}
    for row in rows:
        message_id, request_id = row[_MESSAGE_ID], row[_REQUEST_ID]
        if row[_SIDECHAIN]:
            known = seen.get(message_id)
            if known is None:
                stored = conn.execute(
                    "SELECT request_id FROM usage_events WHERE message_id = ? AND request_id != ? LIMIT 1",
                    (message_id, request_id),
                ).fetchone()
                known = stored[0] if stored else None
            if known is not None and known != request_id:
                continue
        seen.setdefault(message_id, request_id)
        yield row


class PromptDecider:
    """Prompt rows as stored: the router's decision and the length, the text only with ``keep_prompts``.

    The router and the config are loaded on the first prompt, so an ingest without prompts pays nothing for
    them. Some prompts are written undecided (tier NULL) and routed after the ingest by
    ``decide_in_background``, in a detached child process that holds their texts in memory only: every prompt
    for the hook (``defer=True``: loading the router would cost it several times its own run), those outside
    ``window`` for a report (it needs only its period's, and a user's first report would otherwise route months
    of prompts first). Each undecided row's transcript line is kept in ``prompt_sources``, so that a later report
    or ingest routes it if the child died (``finish_undecided``). A row still undecided is left out of the
    as-routed what-if and counted in the report, never guessed.
    """

    def __init__(self, conn: sqlite3.Connection, config: Config | None = None, *, defer: bool = False,
                 window: Window | None = None):
        self.conn = conn
        self.config = config
        self.defer = defer
        self.window = window
        self.router: Any = None
        self.decisions: dict[str, Any] = {}
        self.pending: list[tuple[str, str, float]] = []  # (uuid, text, ts) written undecided

    def defers(self, ts: float) -> bool:
        """Whether a prompt made at ``ts`` is written undecided, to be routed after the ingest."""
        return self.defer or (self.window is not None and not self.window[0] <= ts < self.window[1])

    def rows(self, prompts: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """``(uuid, session_id, ts, text or None, tier, category, confidence, chars)`` for each
        ``(uuid, session_id, ts, text)``, or ``(uuid, session_id, ts, text, (tier, category, confidence), ...)``
        routed already."""
        rows: list[tuple[Any, ...]] = []
        for uuid, session_id, ts, text, *decided in prompts:
            if self.defers(ts):
                self.pending.append((uuid, text or "", ts))
                rows.append((uuid, session_id, ts, None, None, None, None, len(text or "")))
                continue
            if decided and decided[0]:
                tier, category, confidence = decided[0]
            else:
                decision = self.decide(text or "")
                tier, category, confidence = decision.tier, decision.category, decision.confidence
            kept = _storable(text) if self._config().keep_prompts else None
            rows.append((uuid, session_id, ts, kept, tier, category, confidence, len(text or "")))
        return rows

    def routing(self) -> tuple[Catalog, dict[str, str]]:
        """What a router needs to decide as this decider does: the catalog and each category's tier (the
        configuration's and the feedback's overrides applied)."""
        router = self._router()
        return router.catalog, dict(router.tiers)

    def decide(self, text: str) -> Any:
        decision = self.decisions.get(text)
        if decision is None:  # "yes", "continue", "run the tests" come back again and again
            decision = self.decisions[text] = self._router().route(text)
        return decision

    def store(self, prompts: Sequence[tuple[str, str]]) -> None:
        """Route ``(uuid, text)`` prompts written undecided and store the decisions, forgetting their sources. One
        transaction a batch: an ingest or report meanwhile waits for a batch, not for all of them."""
        self._router().model.remember_rows()
        keep = self._config().keep_prompts
        for first in range(0, len(prompts), DECISIONS_PER_COMMIT):
            updates = []
            for uuid, text in prompts[first:first + DECISIONS_PER_COMMIT]:
                decision = self.decide(text)
                updates.append((_storable(text) if keep else None, decision.tier, decision.category,
                                decision.confidence, uuid))
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany("UPDATE prompts SET text = ?, tier = ?, category = ?, confidence = ?"
                                      " WHERE uuid = ? AND tier IS NULL", updates)
                self.conn.executemany("DELETE FROM prompt_sources WHERE uuid = ?", [(row[-1],) for row in updates])
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def decide_in_background(self, db_path: Path, projects_dir: Path | None = None) -> int | None:
        """Route the deferred prompts in a detached child and store the decisions; here if fork is missing.
        With ``projects_dir``, the child first ingests the files an ingest there left (``modified_since``), their
        prompts outside ``window`` deferred too. Returns the child's process id. The caller's connection must be
        closed (or unused) by now: the child opens its own."""
        if not self.pending and projects_dir is None:
            return None
        if hasattr(os, "fork") and (child := os.fork()) != 0:
            self.pending = []
            return child
        detached = hasattr(os, "fork")
        status = 1
        try:
            if detached:  # Claude Code waits for the hook's pipes to close, not for this child
                os.setsid()
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
            from .store import connect

            self.conn = connect(db_path, migrate=False)
            if projects_dir is not None:
                ingest_tree(self.conn, projects_dir, Catalog.load(self._config().pricing), decider=self)
            # The newest first: a report of last month is likelier next than one of last year.
            self.store([(uuid, text) for uuid, text, _ in sorted(self.pending, key=lambda prompt: -prompt[2])])
            status = 0
        finally:
            self.pending = []
            if detached:
                os._exit(status)
        return None

    def _config(self) -> Config:
        if self.config is None:
            self.config = Config.load()
        return self.config

    def _router(self) -> Any:
        if self.router is None:
            from .routing import Router

            config = self._config()
            self.router = Router.load(Catalog.load(config.pricing), config, self.conn)
        return self.router


def finish_undecided(conn: sqlite3.Connection, decider: PromptDecider, window: Window | None = None) -> None:
    """Route the prompts left undecided (``window``: those made within it): a background child that died, or one
    still routing. Each is read at its transcript line; one written undecided before those lines were kept (by the
    hook of an older version) is looked for in its session's transcripts. A prompt no longer in its transcripts
    (deleted or rewritten) stays undecided."""
    low, high = window or (-math.inf, math.inf)
    by_file: dict[str, dict[int, str]] = defaultdict(dict)
    unplaced: dict[str, set[str]] = defaultdict(set)  # session -> its undecided prompts with no line recorded
    for uuid, session_id, source_file, line_no in conn.execute(
        "SELECT p.uuid, p.session_id, s.source_file, s.line_no FROM prompts p LEFT JOIN prompt_sources s"
        " ON s.uuid = p.uuid WHERE p.tier IS NULL AND p.ts >= ? AND p.ts < ?", (low, high),
    ):
        if source_file is None:
            unplaced[session_id].add(uuid)
        else:
            by_file[source_file][line_no] = uuid
    found = [prompt for source_file, lines in by_file.items() for prompt in _prompts_at(Path(source_file), lines)]
    if unplaced:
        sessions = list(unplaced)
        for path, session_id in conn.execute(
            f"SELECT path, session_id FROM ingest_files WHERE session_id IN ({', '.join('?' * len(sessions))})",
            sessions,
        ).fetchall():
            found += _prompts_in(Path(path), unplaced[session_id])
    if found:
        decider.store(list(dict(found).items()))


def _prompts_at(path: Path, lines: dict[int, str]) -> Iterator[tuple[str, str]]:
    """``(uuid, text)`` of each prompt at its line of ``path`` (line number -> uuid), where it still is."""
    handle = open_regular(path)
    if handle is None:
        return
    last = max(lines)
    with handle:
        for number, line in enumerate(handle, 1):
            uuid = lines.get(number)
            if uuid is not None:
                parsed = _parsed(line)
                if isinstance(parsed, Prompt) and parsed.uuid == uuid:
                    yield uuid, parsed.text
            if number == last:
                return


def _prompts_in(path: Path, uuids: set[str]) -> list[tuple[str, str]]:
    """``(uuid, text)`` of the prompts of ``path`` whose uuid is one of ``uuids``, wherever they are in it."""
    handle = open_regular(path)
    if handle is None:
        return []
    found = []
    with handle:
        for line in handle:
            if any(match.group(1).decode() in uuids for match in _UUID.finditer(line)):
                parsed = _parsed(line)
                if isinstance(parsed, Prompt) and parsed.uuid in uuids:
                    found.append((parsed.uuid, parsed.text))
    return found


def _parsed(line: bytes) -> Any:
    try:
        return parse_line(line)
    except MalformedLine:
        return None


def _storable(text: str | None) -> str | None:
    """The text as SQLite can store it: a lone surrogate (JavaScript writes one for a split emoji) becomes U+FFFD,
    where it would stop every ingest at that line."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _session_of(path: Path) -> str:
    return path.parents[1].name if path.parent.name == "subagents" else path.stem


def _last_usage_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM usage_events").fetchone()[0])


def _agent_type(path: Path) -> str | None:
    meta = path.with_name(path.stem + ".meta.json")
    try:
        if not S_ISREG(meta.stat().st_mode):
            return None
        value = json.loads(meta.read_text("utf-8")).get("agentType")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None

