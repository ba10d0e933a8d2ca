"""Per-prompt routing advice: the ``UserPromptSubmit`` hook.

The router reads the prompt the user just typed (with the session's current context size) and, only when it
matters, says one line:

- Haiku-tier reading work in a session on a bigger model: a line for the *model*
  (``hookSpecificOutput.additionalContext``) to hand the reading to ``delegate_to_haiku``, or to the plugin's
  ``haiku-reader`` agent when the server has no API key (subscription users);
- Opus-tier work in a session on a lower tier: a line for the *user* (``systemMessage``) that ``/model opus``
  fits, with the router's reason.

Silent when the session's tier fits, when the router is unsure, for slash commands and Claude Code's own
turns, and for categories the user opted out of (``advice_skip``); ``advice = "quiet"`` keeps the model's
line and drops the user's, ``"off"`` says nothing. Nothing is written anywhere: the lines land in the
transcript, which is where the report measures them (``ADVICE_LINE`` parses them back).

This runs before every prompt reaches the model, so it imports only the standard library and the router.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .config import Config
from .transcripts import blank, open_regular, opening

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

# How much of the transcript's end is read to find the session's model and context size: the last
# response is near the end, and a tool result line is rarely longer than this.
TAIL_BYTES = 1 << 20
# Advice only where decisions like this one were right at least nine times in ten (the router's stated
# confidence is calibrated: benchmarks/README.md); a sure decision can state as little as about 0.77.
MIN_CONFIDENCE = 0.9
NOT_READING = frozenset({"boilerplate"})  # Haiku-tier work that writes files: no reader can do it
ROUTED_CHARS = 2000  # as the ledger routes prompts (transcripts.PROMPT_CHARS)
AGENT = "haiku-reader"
# Every advice line starts like this, so the ledger can count them in transcripts.
ADVICE_LINE = re.compile(r"^mcp-router advice \((?P<category>\w+), (?P<tier>haiku|sonnet|opus)-tier\)")
# Not typed by the user: slash commands, and Claude Code's own turns (a finished background agent's
# "<task-notification>", which fires this hook too).
_NOT_TYPED = re.compile(r"\s*(?:/|<[a-z][a-z-]*>)")
_MODEL_LINE = re.compile(rb'"commandRun":\{"command":"model","args":"([^"]*)"')


def tier_of(model: str) -> str | None:
    """``haiku`` / ``sonnet`` / ``opus`` for a model id or alias (``claude-sonnet-5-5``, ``opus[1m]``)."""
    lowered = model.lower()
    return next((tier for tier in ("haiku", "sonnet", "opus") if tier in lowered), None)


def session_state(transcript: Path) -> tuple[str | None, int]:
    """The session's current model (the newer of its last main-chain response and its last ``/model``) and
    its context size in tokens (what that response's request held plus what it wrote)."""
    handle = open_regular(transcript)
    if handle is None:
        return None, 0
    try:
        with handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - TAIL_BYTES))
            block = handle.read(TAIL_BYTES)
    except OSError:
        return None, 0
    model, context_tokens = None, 0
    for line in reversed(block.split(b"\n")):
        if model is None and b'"local_command"' in line and (switch := _MODEL_LINE.search(line)):
            model = switch.group(1).decode("utf-8", "replace")
            if context_tokens:
                break
            continue
        if b'"usage"' not in line or b'"assistant"' not in line or b'"isSidechain":true' in line:
            continue
        try:
            record = json.loads(line)
            message = record["message"]
            usage = message["usage"]
            if record.get("type") != "assistant" or message.get("model") == "<synthetic>":
                continue
            context_tokens = sum(int(usage.get(key) or 0) for key in (
                "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens"))
            model = model or str(message.get("model") or "") or None
            break
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return model, context_tokens


def configured_model(cwd: str, environ: os._Environ[str] | dict[str, str]) -> str | None:
    """The model a session starts on when its transcript does not say yet: ``ANTHROPIC_MODEL``, else the
    ``model`` of the settings files, most specific first."""
    if environ.get("ANTHROPIC_MODEL"):
        return environ["ANTHROPIC_MODEL"]
    user = Path(environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude").expanduser()
    project = Path(cwd) / ".claude" if cwd else None
    candidates = ([project / "settings.local.json", project / "settings.json"] if project else []) + [
        user / "settings.json"]
    for path in candidates:
        try:
            model = json.loads(path.read_text("utf-8")).get("model")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(model, str) and model:
            return model
    return None


def advise(payload: dict[str, Any], config: Config, db_path: Path,
           environ: os._Environ[str] | dict[str, str] | None = None) -> dict[str, Any] | None:
    """The hook's answer for one ``UserPromptSubmit`` payload, or None to say nothing."""
    env = os.environ if environ is None else environ
    prompt = payload.get("prompt")
    if config.advice == "off" or not isinstance(prompt, str) or blank(prompt) or _NOT_TYPED.match(prompt):
        return None
    transcript = payload.get("transcript_path")
    model, context_tokens = session_state(Path(transcript).expanduser()) if isinstance(transcript, str) else (None, 0)
    cwd = payload.get("cwd")
    session_tier = tier_of(model or configured_model(cwd if isinstance(cwd, str) else "", env) or "")

    from .pricing import Catalog
    from .routing import Router, estimated_tokens

    conn = _read_only(db_path)
    try:
        router = Router.load(Catalog.load(config.pricing), config, conn)
    finally:
        if conn is not None:
            conn.close()
    # The prompt joins the context it is routed with; its head is what is asked (a pasted log is not). The router
    # counts the text it is given; the rest of the prompt is counted here.
    routed = opening(prompt, ROUTED_CHARS)
    decision = router.route(routed, context_tokens + estimated_tokens(prompt) - estimated_tokens(routed))
    if (decision.uncertain or decision.confidence < MIN_CONFIDENCE
            or decision.category in config.advice_skip):
        return None
    head = f"mcp-router advice ({decision.category}, {decision.tier}-tier)"
    if (decision.tier == "haiku" and session_tier != "haiku" and decision.category in router.mechanical
            and decision.category not in NOT_READING):
        return {"hookSpecificOutput": {"hookEventName": "UserPromptSubmit",
                                       "additionalContext": f"{head}: {_reader(env)}"}}
    if decision.tier == "opus" and session_tier in ("haiku", "sonnet") and config.advice == "on":
        reason = decision.reason.rstrip(".")
        return {"systemMessage": f"{head}: `/model opus` fits this task ({reason}); this session runs "
                                 f"{session_tier.capitalize()}."}
    return None


def _reader(env: os._Environ[str] | dict[str, str]) -> str:
    """Where the reading should go: the delegate tool when the server can call the API, else the plugin's
    Haiku agent (a subscription's own Haiku); outside the plugin the tool, which then uses ``claude -p``."""
    if not (env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN")) and env.get("CLAUDE_PLUGIN_ROOT"):
        return (f"hand the reading to the mcp-router:{AGENT} agent (Agent tool, subagent_type "
                f"\"mcp-router:{AGENT}\"), do not read the files yourself; use its answer.")
    return ("hand the reading to the delegate_to_haiku tool (files in `paths`), do not read the files yourself; "
            "use its answer.")


def _read_only(db_path: Path) -> sqlite3.Connection | None:
    """The usage database, read-only, for the feedback promotions; None when it has none yet (this hook never
    creates or migrates it: the Stop hook does)."""
    if not db_path.is_file():
        return None
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return None
    try:
        conn.execute("SELECT 1 FROM category_overrides LIMIT 1")
    except sqlite3.Error:
        conn.close()
        return None
    return conn
