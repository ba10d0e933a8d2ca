"""Probe 13d: prompts whose first 2,000 characters are blank, invisible "filler" characters, and --batch lines
whose task is not a string."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import NOT_TEXT, Router
from mcp_router.store import connect
from mcp_router.transcripts import Prompt, blank, opening, parse_record

ASK = "why does the scheduler deadlock only in production, once a week, across three services?"
LATE_ASK = "\n" * 2500 + ASK  # the ledger and the hook read a prompt's first 2,000 characters
FILLERS = ["\u3164", "\u115f\u1160", "\uffa0", "\u2800 \u2800", "\u0301", "\ufe0f\u034f", " \u3164\u200b\n"]


def _record(uuid: str, text: str) -> dict:
    return {"type": "user", "uuid": uuid, "promptId": uuid, "sessionId": "s1", "cwd": "/tmp/x",
            "timestamp": "2026-11-29T10:00:00.000Z", "message": {"role": "user", "content": text}}


def _response(n: int) -> dict:
    return {"type": "assistant", "uuid": f"a{n}", "sessionId": "s1", "cwd": "/tmp/x", "requestId": f"req_{n}",
            "timestamp": f"2026-11-29T10:0{n}:01.000Z",
            "message": {"id": f"msg_{n}", "model": "claude-opus-5-5", "role": "assistant",
                        "content": [{"type": "text", "text": "ok"}],
                        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0,
                                  "cache_creation_input_tokens": 0}}}


@pytest.mark.parametrize("text", FILLERS)
def test_filler_characters_are_nothing_to_read(text: str) -> None:
    assert blank(text)
    with pytest.raises(ValueError, match="the task is empty"):
        Router.load(Catalog.load(), Config()).route(text)
    assert parse_record(_record("u1", text)) is None
    assert not blank("e\u0301") and not blank("\u3164fix it") and not blank("ก") and not blank("日")


@pytest.mark.parametrize("text", FILLERS)
def test_the_cli_says_a_filler_task_is_empty(text: str) -> None:
    result = CliRunner().invoke(cli, ["route", text])
    assert result.exit_code == 2 and result.stderr.splitlines()[-1].startswith("Error: TASK is empty")


def test_a_prompt_is_kept_from_its_first_visible_character() -> None:
    assert opening(LATE_ASK, 2000) == ASK and opening("  fix it", 3) == "fix" and opening("\u200b\n", 5) == ""
    prompt = parse_record(_record("u1", LATE_ASK))
    assert isinstance(prompt, Prompt) and prompt.text == ASK


def test_a_prompt_opening_with_blank_lines_does_not_stop_the_ingest(tmp_path: Path, db_path: Path) -> None:
    project = tmp_path / "projects" / "-tmp-x"
    project.mkdir(parents=True)
    lines = [_record("u1", "\u200b"), _response(1), _record("u2", LATE_ASK), _response(2),
             _record("u3", "\u3164"), _response(3), _record("u4", "summarise the build log"), _response(4)]
    (project / "s1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = CliRunner().invoke(cli, ["ingest", "--projects-dir", str(tmp_path / "projects"), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM usage_events").fetchone()[0] == 4
    assert [tuple(row) for row in conn.execute("SELECT uuid, tier FROM prompts ORDER BY uuid")] == [("u2", "opus"),
                                                                                       ("u4", "haiku")]


def test_the_advice_hook_reads_a_prompt_opening_with_blank_lines(tmp_path: Path, db_path: Path) -> None:
    transcript = tmp_path / "session.jsonl"
    transcript.write_text("")
    payload = {"session_id": "s", "transcript_path": str(transcript), "cwd": str(tmp_path), "prompt_id": "x",
               "hook_event_name": "UserPromptSubmit", "prompt": LATE_ASK}
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC_")}
    done = subprocess.run([sys.executable, "-m", "mcp_router", "hook"], input=json.dumps(payload), text=True,
                          capture_output=True, timeout=60,
                          env={**environ, "MCP_ROUTER_DB": str(db_path), "ANTHROPIC_MODEL": "claude-sonnet-5-5"})
    assert done.returncode == 0 and done.stderr == ""
    assert "`/model opus` fits this task" in json.loads(done.stdout)["systemMessage"]


@pytest.mark.parametrize(("line", "why"), [
    ('{"task": ["summarise the log"]}', "the task must be a string"),
    ('{"task": {"a": 1}}', "the task must be a string"), ('{"task": null}', "the task must be a string"),
    ('{"task": "fix it", "context_tokens": 1.9}', "context_tokens must be a whole number"),  # probe 13h: which one
    ('{"task": "fix it", "context_tokens": true}', "context_tokens must be a whole number"),
    ('{"task": "\\ud800"}', NOT_TEXT),  # probe 13h: it said "the task is empty"
])
def test_a_batch_line_whose_task_is_not_a_string_is_one_clear_error(line: str, why: str) -> None:
    result = CliRunner().invoke(cli, ["route", "--batch", "-"], input=line + "\n")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines() == [f'Error: line 1: expected {{"task": "…"}}: {why}']


def test_a_task_of_bytes_that_are_not_utf8_says_so() -> None:
    result = subprocess.run([sys.executable, "-m", "mcp_router", "route", b"\xed\xa0\x80"],
                            capture_output=True, text=True, env={**os.environ, "MCP_ROUTER_DB": os.devnull})
    assert result.returncode == 2 and "TASK holds no text" in result.stderr and "Traceback" not in result.stderr


def test_a_batch_routes_every_good_line_and_names_each_bad_one(tmp_path: Path) -> None:
    # probe 13e: a batch stopped at its first bad line; invalid UTF-8 lost the lines before it, with no line number;
    # a BOM (Notepad) was refused; deeply nested JSON ended in a traceback
    batch = tmp_path / "tasks.jsonl"
    batch.write_bytes(b'\xef\xbb\xbf{"task": "sort these lines"}\n\xff\n{"task": "summarise the log"}\nnot json\n'
                      + b"[" * 100_000 + b"]" * 100_000 + b'\n{"task": "convert a.csv to json"}\n')
    result = CliRunner().invoke(cli, ["route", "--batch", str(batch)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item.get("line") for item in out] == [None, 2, None, 4, 5, None] and out[-1]["tier"] == "haiku"
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == ["Error"] * 3
    assert "line 2: " in result.stderr and "not UTF-8" in result.stderr and "nested too deeply" in result.stderr



def test_a_batch_whose_first_line_is_a_bom_and_nothing_else_routes_the_rest() -> None:
    result = CliRunner().invoke(cli, ["route", "--batch", "-"], input=b'\xef\xbb\xbf\r\n{"task": "sort these lines"}\n')
    assert result.exit_code == 0 and result.stderr == ""  # probe 13g: the BOM's line was an error line
    assert json.loads(result.stdout)["tier"] == "haiku"


@pytest.mark.parametrize("line", ['[1, 2]', 'NaN', '{"context_tokens": 5}', '"summarise the log"'])
def test_a_batch_line_that_is_not_an_object_with_a_task_says_so(line: str) -> None:
    result = CliRunner().invoke(cli, ["route", "--batch", "-"], input=line + "\n")  # probe 13g: raw Python messages
    assert result.exit_code == 1 and result.stderr.splitlines() == [
        'Error: line 1: expected {"task": "…"}: a JSON object with a "task" string']
