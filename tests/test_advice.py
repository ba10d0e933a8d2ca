"""Per-prompt routing advice: the UserPromptSubmit hook (what it says, to whom, and when it stays silent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_router.advice import ADVICE_LINE, advise, configured_model, session_state, tier_of
from mcp_router.config import Config
from mcp_router.errors import ConfigError

READING = "summarize the error log in build.txt and list the failing tests"
BUILDING = "add a --retry flag to the upload command"
HARD = "we have an intermittent race condition across 9 services in production, find the root cause"


def _response(model: str, *, sidechain: bool = False, tokens: int = 1000) -> dict[str, Any]:
    """One assistant line as Claude Code 2.1.328 writes it (the fields the hook reads)."""
    return {"parentUuid": "p", "isSidechain": sidechain, "type": "assistant", "uuid": "u",
            "timestamp": "2026-11-30T00:31:28.549Z", "sessionId": "s",
            "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": "done"}],
                        "usage": {"input_tokens": 3, "cache_creation_input_tokens": tokens,
                                  "cache_read_input_tokens": 2 * tokens, "output_tokens": 50}}}


def _model_command(args: str) -> dict[str, Any]:
    return {"parentUuid": "p", "isSidechain": False, "type": "system", "subtype": "local_command",
            "content": "<local-command-stdout>Set model to `Opus 5.5` for this session only</local-command-stdout>",
            "level": "info", "uuid": "c", "isMeta": False, "commandRun": {"command": "model", "args": args}}


def _transcript(tmp_path: Path, *records: dict[str, Any]) -> Path:
    path = tmp_path / "session.jsonl"
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path


def _payload(prompt: str, transcript: Path) -> dict[str, Any]:
    return {"session_id": "s", "transcript_path": str(transcript), "cwd": str(transcript.parent),
            "prompt_id": "x", "permission_mode": "default", "hook_event_name": "UserPromptSubmit", "prompt": prompt}


API = {"ANTHROPIC_API_KEY": "sk-test"}


@pytest.fixture
def sonnet_session(tmp_path: Path) -> Path:
    return _transcript(tmp_path, _response("claude-sonnet-5-5"))


def test_haiku_tier_reading_tells_the_model_to_delegate(sonnet_session: Path, db_path: Path) -> None:
    answer = advise(_payload(READING, sonnet_session), Config(), db_path, API)
    assert answer is not None and set(answer) == {"hookSpecificOutput"}
    context = answer["hookSpecificOutput"]["additionalContext"]
    assert answer["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
    assert "delegate_to_haiku" in context and "do not read the files yourself" in context
    assert ADVICE_LINE.match(context)["tier"] == "haiku"  # type: ignore[index]
    assert "\n" not in context and len(context) < 300
    assert not db_path.exists(), "advice writes nothing"


def test_without_an_api_key_the_plugin_names_the_haiku_reader_agent(sonnet_session: Path, db_path: Path) -> None:
    answer = advise(_payload(READING, sonnet_session), Config(), db_path, {"CLAUDE_PLUGIN_ROOT": "/plugin"})
    assert answer is not None
    context = answer["hookSpecificOutput"]["additionalContext"]
    assert 'subagent_type "mcp-router:haiku-reader"' in context and "delegate_to_haiku" not in context


def test_sonnet_tier_work_on_sonnet_is_silent(sonnet_session: Path, db_path: Path) -> None:
    assert advise(_payload(BUILDING, sonnet_session), Config(), db_path, API) is None


def test_opus_tier_work_on_a_lower_tier_tells_the_user(sonnet_session: Path, db_path: Path) -> None:
    answer = advise(_payload(HARD, sonnet_session), Config(), db_path, API)
    assert answer is not None and set(answer) == {"systemMessage"}
    message = answer["systemMessage"]
    assert "`/model opus`" in message and "hard debugging" in message and "runs Sonnet" in message
    assert ADVICE_LINE.match(message)["category"] == "hard_debugging"  # type: ignore[index]
    assert "\n" not in message


def test_a_session_whose_tier_fits_is_left_alone(tmp_path: Path, db_path: Path) -> None:
    opus = _transcript(tmp_path, _response("claude-opus-5-5"))
    assert advise(_payload(HARD, opus), Config(), db_path, API) is None
    haiku = _transcript(tmp_path, _response("claude-haiku-5-5"))
    assert advise(_payload(READING, haiku), Config(), db_path, API) is None


def test_the_latest_model_command_decides_the_session_tier(tmp_path: Path, db_path: Path) -> None:
    switched = _transcript(tmp_path, _response("claude-sonnet-5-5"), _model_command("opus"))
    assert session_state(switched) == ("opus", 3053)
    assert advise(_payload(HARD, switched), Config(), db_path, API) is None
    back = _transcript(tmp_path, _model_command("opus"), _response("claude-sonnet-5-5"))
    assert session_state(back)[0] == "claude-sonnet-5-5"


def test_context_comes_from_the_last_main_chain_response(tmp_path: Path) -> None:
    transcript = _transcript(tmp_path, _response("claude-sonnet-5-5", tokens=90_000),
                             _response("claude-haiku-5-5", sidechain=True, tokens=5))
    assert session_state(transcript) == ("claude-sonnet-5-5", 3 + 90_000 + 180_000 + 50)


def test_a_large_context_is_routed_with_its_size(tmp_path: Path, db_path: Path) -> None:
    """The router sends a summary of a huge context to Sonnet, so no delegation advice is given."""
    big = _transcript(tmp_path, _response("claude-sonnet-5-5", tokens=100_000))
    assert advise(_payload(READING, big), Config(), db_path, API) is None


def test_a_pasted_log_counts_as_context(sonnet_session: Path, db_path: Path) -> None:
    """A prompt that carries a huge log is already in the model's context: no reading to hand over."""
    log = "\n".join(f"2026-11-30 00:{i % 60:02d} ERROR worker {i}: connection reset" for i in range(20_000))
    assert advise(_payload(f"{READING}\n{log}", sonnet_session), Config(), db_path, API) is None


def test_quiet_keeps_the_models_line_and_drops_the_users(sonnet_session: Path, db_path: Path) -> None:
    quiet = Config(advice="quiet")
    assert advise(_payload(HARD, sonnet_session), quiet, db_path, API) is None
    assert advise(_payload(READING, sonnet_session), quiet, db_path, API) is not None


def test_off_and_skipped_categories_say_nothing(sonnet_session: Path, db_path: Path) -> None:
    assert advise(_payload(READING, sonnet_session), Config(advice="off"), db_path, API) is None
    skip = Config(advice_skip=("summarize", "hard_debugging"))
    assert advise(_payload(READING, sonnet_session), skip, db_path, API) is None
    assert advise(_payload(HARD, sonnet_session), skip, db_path, API) is None


@pytest.mark.parametrize("prompt", ["/model opus", "   ", "\x00\x00", "hi",
                                    "<task-notification>\n<summary>summarize the log</summary>"])
def test_commands_empty_and_unclear_prompts_are_silent(prompt: str, sonnet_session: Path, db_path: Path) -> None:
    assert advise(_payload(prompt, sonnet_session), Config(), db_path, API) is None


def test_an_unknown_session_model_gets_no_model_advice(tmp_path: Path, db_path: Path) -> None:
    fresh = _transcript(tmp_path)  # the first prompt: no response yet
    assert advise(_payload(HARD, fresh), Config(), db_path, API) is None
    assert advise(_payload(READING, fresh), Config(), db_path, API) is not None


def test_a_fresh_session_starts_on_the_configured_model(tmp_path: Path, isolated_user: Path) -> None:
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text('{"model": "sonnet"}')
    assert configured_model(str(project), {"CLAUDE_CONFIG_DIR": str(isolated_user / ".claude")}) == "sonnet"
    assert configured_model(str(project), {"ANTHROPIC_MODEL": "claude-opus-5-5"}) == "claude-opus-5-5"
    assert configured_model(str(tmp_path / "none"), {"CLAUDE_CONFIG_DIR": str(tmp_path / "nothing")}) is None


@pytest.mark.parametrize(("model", "tier"), [("claude-sonnet-5-5", "sonnet"), ("opus[1m]", "opus"),
                                             ("claude-haiku-4-5-20251001", "haiku"), ("default", None)])
def test_tier_of(model: str, tier: str | None) -> None:
    assert tier_of(model) == tier


def test_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('advice = "loud"\n')
    with pytest.raises(ConfigError, match="advice: expected one of on, quiet, off"):
        Config.load(config, {})
    loaded = Config.load(None, {"XDG_CONFIG_HOME": str(tmp_path), "MCP_ROUTER_ADVICE": "quiet",
                                "MCP_ROUTER_ADVICE_SKIP": "summarize, extract"})
    assert loaded.advice == "quiet" and loaded.advice_skip == ("summarize", "extract")
    with pytest.raises(ConfigError, match="advice_skip: unknown category 'sumarize'"):
        Config.load(None, {"XDG_CONFIG_HOME": str(tmp_path), "MCP_ROUTER_ADVICE_SKIP": "sumarize"})


def _hook(payload: str, db_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC_")}
    return subprocess.run([sys.executable, "-m", "mcp_router", "hook"], input=payload, capture_output=True, text=True,
                          timeout=60, env={**environ, "MCP_ROUTER_DB": str(db_path), **env})


def test_the_hook_answers_in_claude_codes_shape_and_ingests_nothing(sonnet_session: Path, db_path: Path) -> None:
    done = _hook(json.dumps(_payload(READING, sonnet_session)), db_path, ANTHROPIC_API_KEY="sk-test")
    assert done.returncode == 0, done.stderr
    assert "delegate_to_haiku" in json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]
    assert not db_path.exists()


@pytest.mark.parametrize("config_text", ['advice = "loud"\n', "not toml [", 'advice_skip = ["sumarize"]\n'])
def test_the_hook_never_blocks_a_prompt(config_text: str, sonnet_session: Path, db_path: Path,
                                        isolated_user: Path) -> None:
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(config_text)
    done = _hook(json.dumps(_payload(READING, sonnet_session)), db_path)
    assert done.returncode == 0 and done.stdout == "" and "no advice for this prompt" in done.stderr


def test_the_advice_path_imports_only_the_standard_library_and_the_router(sonnet_session: Path,
                                                                          db_path: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mcp_router", "hook"],
                          input=json.dumps(_payload(READING, sonnet_session)), capture_output=True, text=True,
                          timeout=60, env={**os.environ, "MCP_ROUTER_DB": str(db_path)})
    assert done.returncode == 0 and "additionalContext" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "mcp_router" in imported
    assert not imported & {"click", "rich", "mcp", "anthropic", "pydantic", "sqlite_utils", "httpx", "orjson"}
