"""Generate Claude Code-like transcripts with known totals.

Shaped like the real 2.1.328 transcripts in tests/data: a prompt followed by several responses (tool
calls) seconds apart, one line per content block of a response (each repeating message.id, requestId and
usage), subagent files under <session>/subagents, resumed
sessions that replay earlier lines, cost-state lines, and most bytes in tool results and attachments.

    python benchmarks/corpus.py OUT_DIR --size-mb 1000     # a ~1 GB projects folder

The defaults (``ISSUE_SHAPE``: 33 responses and 4,100 bytes of tool result a turn) give what issue #15
measured on: per GB about 3,200 sessions and 117,000 responses, compact JSON lines as Claude Code writes them.
In that shape nearly every prompt is a new text (``distinct_prompts``; about 80% of them), as in a real
history, where the router has a new text to read at most prompts; the tests' small corpora reuse the eight of
``PROMPTS``.

``generate`` returns the truth: per (session, model, UTC day) token sums and the unique responses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

MODELS = ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-haiku-4-5-20251001",
          "claude-opus-4-5-20251101"]
START = datetime(2026, 11, 2, tzinfo=UTC)
PROMPTS = ["summarize last night's build log", "what's in config/settings.toml?", "convert users.csv to json",
           "add a --json flag to the export command", "fix the off-by-one in paginate() in api/list.py",
           "write tests for the retry helper", "why do payments double-charge only in prod, intermittently?",
           "design the sharding scheme for the events table, weigh the trade-offs"]


ISSUE_SHAPE = {"turns": 33, "filler": 4100, "distinct_prompts": True}
_VERBS = ["fix", "add", "refactor", "explain", "write tests for", "rename", "review", "debug", "speed up", "document",
          "remove", "update", "summarize", "convert", "design", "port", "check", "profile", "simplify", "split"]
_THINGS = ["the retry helper", "the export command", "paginate()", "the login flow", "the build log", "the cache layer",
           "the events table", "the CSV importer", "the config loader", "the flaky test", "the migration",
           "the rate limiter", "the webhook handler", "the search index", "the CLI help", "the error messages"]
_WORDS = ["user", "order", "payment", "session", "token", "report", "invoice", "queue", "worker", "schema", "client",
          "server", "billing", "auth", "cache", "stream", "batch", "retry", "limit", "admin"]
_ASIDES = ["it fails only in prod, intermittently", "keep the public API unchanged", "weigh the trade-offs",
           "the tests must stay green", "use the existing helpers", "no new dependencies", "it is urgent",
           "explain why before changing anything", "compare two approaches", "the logs are attached below"]


@dataclass
class Truth:
    responses: dict[tuple[str, str], dict] = field(default_factory=dict)  # (message_id, request_id) -> record
    prompts: list[dict] = field(default_factory=list)  # what the user typed: session, ts, text
    bytes_written: int = 0

    def tokens_by(self, key) -> dict:
        totals: dict = defaultdict(lambda: defaultdict(int))
        for response in self.responses.values():
            bucket = totals[key(response)]
            for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                bucket[name] += response["usage"][name]
            bucket["messages"] += 1
        return {k: dict(v) for k, v in totals.items()}


def _usage(rng: random.Random) -> dict:
    creation = rng.choice([0, 0, rng.randint(100, 40_000)])
    one_hour = rng.choice([0, creation, creation // 2])
    return {
        "input_tokens": rng.randint(1, 20_000), "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": rng.choice([0, rng.randint(1000, 150_000)]),
        "output_tokens": rng.randint(1, 4000), "output_tokens_details": {"thinking_tokens": 0},
        "server_tool_use": {"web_search_requests": rng.choice([0, 0, 0, 1]), "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": one_hour, "ephemeral_5m_input_tokens": creation - one_hour},
        "inference_geo": rng.choice(["", "", "us"]), "iterations": [], "speed": "standard",
    }


def _distinct_prompt(rng: random.Random) -> str:
    """A prompt as a user might type it, different at nearly every call: one to four clauses about named files,
    functions and numbers."""
    clauses = []
    for _ in range(rng.randint(1, 4)):
        name = "_".join(rng.sample(_WORDS, rng.randint(1, 3)))
        clauses.append(rng.choice([
            f"{rng.choice(_VERBS)} {rng.choice(_THINGS)} in src/{name}.py",
            f"{rng.choice(_VERBS)} {name}() so that it handles {rng.randint(2, 5000)} {rng.choice(_WORDS)}s",
            f"why does {name} return {rng.randint(0, 999)} when {rng.choice(_WORDS)} is empty?",
            rng.choice(_ASIDES),
        ]))
    return ", then ".join(clauses)


def _line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"


def _session_lines(rng: random.Random, truth: Truth, project: str, session: str, when: datetime,
                   turns: int, filler: int, sidechain_agent: str | None = None,
                   distinct_prompts: bool = False) -> tuple[list[str], datetime]:
    """The lines of one session (or subagent) and when its last event happened."""
    lines = []
    common = {"cwd": f"/home/user/code/{project}", "sessionId": session, "version": "2.1.328",
              "gitBranch": rng.choice(["main", "feature/x"]), "userType": "external", "entrypoint": "cli"}
    if sidechain_agent:
        common.update(isSidechain=True, agentId=sidechain_agent)
    else:
        common["isSidechain"] = False
    for index in range(turns):
        # Claude Code's loop: a prompt, then several responses (tool calls) seconds apart; the next prompt
        # comes minutes later. Subagents run without prompts.
        new_prompt = not sidechain_agent and (index == 0 or rng.random() < 0.25)
        when += timedelta(seconds=rng.randint(60, 1800) if new_prompt else rng.randint(2, 40))
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        if new_prompt:
            prompt = _distinct_prompt(rng) if distinct_prompts else rng.choice(PROMPTS)
            lines.append(_line({"type": "user", "promptId": f"{rng.getrandbits(64):016x}",
                                "uuid": f"{rng.getrandbits(128):032x}", "timestamp": stamp, "promptSource": "user",
                                "message": {"role": "user", "content": prompt}, **common}))
            truth.prompts.append({"session": session, "ts": when.timestamp(), "text": prompt})
        lines.append(_line({"type": "attachment", "attachment": {"type": "file", "content": "x" * (filler // 4)},
                            "timestamp": stamp, **common}))
        model = "claude-haiku-5-5" if sidechain_agent else rng.choice(MODELS)
        message_id = f"msg_{rng.getrandbits(64):016x}"
        request_id = f"req_{rng.getrandbits(64):016x}"
        usage = _usage(rng)
        tool_id = f"toolu_{rng.getrandbits(64):016x}"
        blocks = [{"type": "text", "text": "Working on it."},
                  {"type": "tool_use", "id": tool_id, "name": "Read", "input": {"file_path": "/x"}}]
        for index, block in enumerate(blocks):
            lines.append(_line({"type": "assistant", "requestId": request_id, "apiBlockIndex": index,
                                "timestamp": stamp, "message": {"id": message_id, "type": "message",
                                "role": "assistant", "model": model, "content": [block], "usage": usage},
                                **common}))
        truth.responses[(message_id, request_id)] = {"model": model, "usage": usage, "session": session,
                                                     "project": project, "ts": when.timestamp()}
        lines.append(_line({"type": "user", "timestamp": stamp, "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_id, "content": "y" * filler}]}, **common}))
    lines.append(_line({"type": "cost-state", "sessionId": session, "totalCostUSD": 0.0, "modelUsage": {}}))
    return lines, when


def generate(out: Path, *, sessions: int = 20, turns: int = 10, filler: int = 2000, seed: int = 7,
             size_mb: float | None = None, start: datetime = START, days: int = 20,
             distinct_prompts: bool = False) -> Truth:
    """Write a projects folder under ``out``; with ``size_mb``, keep adding sessions until that size.
    Sessions start at random hours over ``days`` days from ``start``; with ``distinct_prompts``, each prompt is
    a new text."""
    rng = random.Random(seed)
    truth = Truth()
    index = 0
    while (size_mb is None and index < sessions) or (size_mb is not None and truth.bytes_written < size_mb * 1e6):
        project = f"-home-user-code-proj{index % 5}"
        session = f"{rng.getrandbits(128):032x}"
        session = f"{session[:8]}-{session[8:12]}-{session[12:16]}-{session[16:20]}-{session[20:]}"
        when = start + timedelta(hours=rng.randint(0, 24 * days))
        lines, last = _session_lines(rng, truth, project, session, when, turns, filler,
                                     distinct_prompts=distinct_prompts)
        if index % 4 == 0:  # resumed: the earlier lines are written again
            lines = lines + lines[: len(lines) // 2]
        folder = out / project
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(lines)
        _write(folder / f"{session}.jsonl", text, last)
        truth.bytes_written += len(text)
        if index % 3 == 0:
            agent = f"a{rng.getrandbits(60):015x}"
            sub = folder / session / "subagents"
            sub.mkdir(parents=True, exist_ok=True)
            agent_lines, last = _session_lines(rng, truth, project, session, when, max(1, turns // 3), filler, agent)
            text = "".join(agent_lines)
            _write(sub / f"agent-{agent}.jsonl", text, last)
            (sub / f"agent-{agent}.meta.json").write_text(json.dumps({"agentType": "general-purpose"}))
            truth.bytes_written += len(text)
        index += 1
    return truth


def _write(path: Path, text: str, last: datetime) -> None:
    """Write a transcript as Claude Code leaves it: last modified (and read) at its last event."""
    path.write_text(text)
    os.utime(path, (last.timestamp(), last.timestamp()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--turns", type=int, default=ISSUE_SHAPE["turns"])
    parser.add_argument("--filler", type=int, default=ISSUE_SHAPE["filler"], help="bytes of tool result per turn")
    parser.add_argument("--repeated-prompts", action="store_true", help="the eight PROMPTS again and again")
    args = parser.parse_args()
    result = generate(args.out, turns=args.turns, filler=args.filler, size_mb=args.size_mb,
                      distinct_prompts=not args.repeated_prompts)
    print(f"{result.bytes_written / 1e6:,.0f} MB, {len(result.responses)} responses in {args.out}")
