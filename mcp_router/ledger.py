"""Incremental ingest of Claude Code transcripts into the usage store.

Layout read: ``<projects>/<project>/<session-id>.jsonl`` and, for subagents,
``<projects>/<project>/<session-id>/subagents/agent-<id>.jsonl`` (+ ``agent-<id>.meta.json`` naming
the agent type). Subagent usage belongs to the parent session and project.

Each file is read from the byte offset recorded in ``ingest_files``. Only complete lines are read: a
last line without its newline is Claude Code still writing and waits for the next run. Rows and the
new offset are committed in one transaction, so a run killed at any point is simply resumed. A file
whose inode changed or that shrank is read again from the start; rows already stored are never
deleted (Claude Code deletes old transcripts; the database is the only history).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .pricing import Catalog, Usage
from .store import USAGE_COLUMNS, transaction, upsert_usage
from .transcripts import CostState, MalformedLine, ToolResult, UsageEvent, parse_line

CHUNK_BYTES = 16 * 1024 * 1024


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

    @property
    def duplicates(self) -> int:
        return self.responses - self.new_responses

    def add(self, other: IngestSummary) -> None:
        for name in ("files", "files_read", "bytes_read", "lines", "responses", "new_responses", "malformed_lines"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for model, count in other.unpriced_models.items():
            self.unpriced_models[model] = self.unpriced_models.get(model, 0) + count


def transcript_files(projects_dir: Path) -> list[Path]:
    """Every transcript under ``projects_dir``, each main session file before its subagents."""
    main = sorted(projects_dir.glob("*/*.jsonl"))
    subagents = sorted(projects_dir.glob("*/*/subagents/*.jsonl"))
    return main + subagents


def session_files(transcript_path: Path) -> list[Path]:
    """A session's main transcript and its subagent transcripts."""
    subagent_dir = transcript_path.with_suffix("") / "subagents"
    return [transcript_path, *sorted(subagent_dir.glob("*.jsonl"))]


def ingest_tree(
    conn: sqlite3.Connection, projects_dir: Path, catalog: Catalog,
    *, progress: Callable[[Path, int], None] | None = None,
) -> IngestSummary:
    """Ingest every transcript under ``projects_dir``; ``progress(path, bytes)`` after each file."""
    return _ingest(conn, transcript_files(Path(projects_dir)), catalog, progress)


def ingest_session(conn: sqlite3.Connection, transcript_path: Path, catalog: Catalog) -> IngestSummary:
    """Ingest one session: its transcript and its subagents' transcripts."""
    return _ingest(conn, session_files(Path(transcript_path)), catalog, None)


def _ingest(
    conn: sqlite3.Connection, paths: list[Path], catalog: Catalog,
    progress: Callable[[Path, int], None] | None,
) -> IngestSummary:
    summary = IngestSummary()
    before = _count_usage(conn)
    for path in paths:
        file_summary = ingest_file(conn, path, catalog)
        summary.add(file_summary)
        if progress:
            progress(path, file_summary.bytes_read)
    summary.new_responses = _count_usage(conn) - before
    return summary


def _count_usage(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0])


def ingest_file(conn: sqlite3.Connection, path: Path, catalog: Catalog) -> IngestSummary:
    """Read the new complete lines of one transcript file into the store."""
    summary = IngestSummary(files=1)
    try:
        stat = path.stat()
    except OSError:
        return summary  # deleted since it was listed: its rows stay
    key = str(path)
    row = conn.execute("SELECT offset, inode, lines, malformed_lines FROM ingest_files WHERE path = ?",
                       (key,)).fetchone()
    offset, lines_before, malformed_before = 0, 0, 0
    if row is not None and row["inode"] == stat.st_ino and row["offset"] <= stat.st_size:
        offset, lines_before, malformed_before = row["offset"], row["lines"] or 0, row["malformed_lines"] or 0
    if offset == stat.st_size and row is not None:
        return summary
    context = _FileContext.for_path(path, catalog)
    with open(path, "rb") as handle:
        handle.seek(offset)
        pending = b""
        line_no = lines_before
        while True:
            chunk = handle.read(CHUNK_BYTES)
            if not chunk:
                break
            data = pending + chunk
            end = data.rfind(b"\n")
            if end < 0:
                pending = data
                continue
            pending = data[end + 1:]
            batch = _Batch()
            for line in data[:end].split(b"\n"):
                line_no += 1
                try:
                    batch.add(parse_line(line), line_no)
                except MalformedLine as exc:
                    summary.malformed_lines += 1
                    print(f"mcp-router: {path}:{line_no}: skipped malformed line: {exc}", file=sys.stderr)
            offset += end + 1
            summary.bytes_read += end + 1
            summary.responses += len(batch.events)
            with transaction(conn):
                context.write(conn, batch, summary)
                conn.execute(
                    "INSERT INTO ingest_files (path, offset, size, inode, mtime, session_id, project, lines,"
                    " malformed_lines, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(path) DO UPDATE SET offset = excluded.offset, size = excluded.size,"
                    " inode = excluded.inode, mtime = excluded.mtime, lines = excluded.lines,"
                    " malformed_lines = excluded.malformed_lines, updated_at = excluded.updated_at",
                    (key, offset, stat.st_size, stat.st_ino, stat.st_mtime, context.session_id, context.project,
                     line_no, malformed_before + summary.malformed_lines, time.time()),
                )
    summary.files_read = 1
    summary.lines = line_no - lines_before
    return summary


@dataclass
class _Batch:
    events: list[tuple[UsageEvent, int]] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    cost_state: CostState | None = None

    def add(self, parsed: object, line_no: int) -> None:
        if isinstance(parsed, UsageEvent):
            self.events.append((parsed, line_no))
        elif isinstance(parsed, CostState):
            self.cost_state = parsed
        elif isinstance(parsed, list):
            self.tool_results.extend(parsed)


@dataclass
class _FileContext:
    path: Path
    project: str
    session_id: str
    agent_type: str | None
    catalog: Catalog
    tool_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_path(cls, path: Path, catalog: Catalog) -> _FileContext:
        if path.parent.name == "subagents":
            project, session_id = path.parents[2].name, path.parents[1].name
            agent_type = _agent_type(path)
        else:
            project, session_id, agent_type = path.parent.name, path.stem, None
        return cls(path, project, session_id, agent_type, catalog)

    def write(self, conn: sqlite3.Connection, batch: _Batch, summary: IngestSummary) -> None:
        rows = []
        for event, line_no in self._without_replays(conn, batch.events):
            model = self.catalog.canonical(event.raw_model)
            cost = self.catalog.cost(model, Usage(
                event.input_tokens, event.output_tokens, event.cache_read_tokens, event.cache_creation_tokens,
                event.cache_creation_1h_tokens, event.web_search_requests, event.inference_geo,
            ))
            if cost is None:
                summary.unpriced_models[model] = summary.unpriced_models.get(model, 0) + 1
            for tool_use_id, name in event.tool_uses:
                self.tool_names[tool_use_id] = name
            values = {
                "message_id": event.message_id, "request_id": event.request_id, "ts": event.ts,
                "timestamp": event.timestamp, "session_id": event.session_id or self.session_id,
                "project": self.project, "cwd": event.cwd, "git_branch": event.git_branch,
                "is_sidechain": event.is_sidechain, "agent_id": event.agent_id,
                "agent_type": event.agent_type or (self.agent_type if event.agent_id else None),
                "model": model, "raw_model": event.raw_model, "input_tokens": event.input_tokens,
                "output_tokens": event.output_tokens, "cache_read_tokens": event.cache_read_tokens,
                "cache_creation_tokens": event.cache_creation_tokens,
                "cache_creation_5m_tokens": event.cache_creation_5m_tokens,
                "cache_creation_1h_tokens": event.cache_creation_1h_tokens,
                "web_search_requests": event.web_search_requests, "total_tokens": event.total_tokens,
                "inference_geo": event.inference_geo, "service_tier": event.service_tier, "speed": event.speed,
                "cost_usd": cost, "source_file": str(self.path), "line_no": line_no,
            }
            rows.append(tuple(values[column] for column in USAGE_COLUMNS))
        upsert_usage(conn, rows)
        if batch.tool_results:
            conn.executemany(
                "INSERT OR REPLACE INTO tool_results (tool_use_id, ts, session_id, project, tool_name,"
                " content_chars, is_sidechain) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.tool_use_id, r.ts, r.session_id or self.session_id, self.project,
                  self.tool_names.get(r.tool_use_id), r.content_chars, r.is_sidechain)
                 for r in batch.tool_results],
            )
        if batch.cost_state is not None and self.agent_type is None:
            state = batch.cost_state
            conn.execute(
                "INSERT OR REPLACE INTO session_costs (session_id, total_cost_usd, model_usage,"
                " has_unknown_model_cost, source_file, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (state.session_id or self.session_id, state.total_cost_usd, json.dumps(state.model_usage),
                 int(state.has_unknown_model_cost), str(self.path), time.time()),
            )

    def _without_replays(
        self, conn: sqlite3.Connection, events: list[tuple[UsageEvent, int]]
    ) -> Iterator[tuple[UsageEvent, int]]:
        """Drop sidechain copies of a response already stored under another request id (side questions)."""
        seen: dict[str, str] = {}
        for event, line_no in events:
            if event.is_sidechain:
                known = seen.get(event.message_id)
                if known is None:
                    row = conn.execute(
                        "SELECT request_id FROM usage_events WHERE message_id = ? AND request_id != ? LIMIT 1",
                        (event.message_id, event.request_id),
                    ).fetchone()
                    known = row[0] if row else None
                if known is not None and known != event.request_id:
                    continue
            seen.setdefault(event.message_id, event.request_id)
            yield event, line_no


def _agent_type(path: Path) -> str | None:
    meta = path.with_name(path.stem + ".meta.json")
    try:
        value = json.loads(meta.read_text("utf-8")).get("agentType")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def total_size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass
    return total
