"""``mcp-router install`` / ``uninstall``: wire mcp-router into Claude Code's own files.

Two files change, each merged (other hooks, permissions and servers are kept), idempotently (installing
twice is installing once) and with a backup of the original beside it:

- the settings file (user: ``$CLAUDE_CONFIG_DIR/settings.json`` or ``~/.claude/settings.json``;
  project: ``.claude/settings.json``): the UserPromptSubmit (routing advice), Stop, SubagentStop and
  SessionEnd hooks, permissions for the tools, and the statusLine;
- where Claude Code reads MCP servers (user: ``~/.claude.json``, or ``$CLAUDE_CONFIG_DIR/.claude.json``;
  project: ``.mcp.json``): the ``mcp-router`` server.

``uninstall`` removes exactly what ``install`` adds.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_NAME = "mcp-router"
TOOLS = ("route_model", "delegate_to_haiku", "track_cost", "rate_delegation")
HOOK_EVENTS = {"UserPromptSubmit": 5, "Stop": 15, "SubagentStop": 15, "SessionEnd": 5}


@dataclass
class Change:
    path: Path
    before: str | None  # None: the file does not exist yet
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return "".join(difflib.unified_diff((self.before or "").splitlines(True), self.after.splitlines(True),
                                            str(self.path), str(self.path)))


def executable() -> str:
    """The installed console script, by absolute path when it can be found (hooks run without our PATH)."""
    beside = Path(sys.executable).parent / "mcp-router"
    if beside.exists():
        return str(beside)
    return shutil.which("mcp-router") or "mcp-router"


def settings_path(scope: str, cwd: Path) -> Path:
    if scope == "project":
        return cwd / ".claude" / "settings.json"
    return _config_dir() / "settings.json"


def servers_path(scope: str, cwd: Path) -> Path:
    if scope == "project":
        return cwd / ".mcp.json"
    if os.environ.get("CLAUDE_CONFIG_DIR"):
        return Path(os.environ["CLAUDE_CONFIG_DIR"]).expanduser() / ".claude.json"
    return Path.home() / ".claude.json"


def _config_dir() -> Path:
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude").expanduser()


def _load(path: Path) -> tuple[str | None, dict[str, Any]]:
    if not path.exists():
        return None, {}
    text = path.read_text("utf-8")
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); fix or move it, then run again") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return text, data


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def add_to_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    result = json.loads(json.dumps(settings))
    hooks = result.setdefault("hooks", {})
    for event, timeout in HOOK_EVENTS.items():
        groups = hooks.setdefault(event, [])
        hook = {"type": "command", "command": f"{command} hook", "timeout": timeout}
        if not any(h.get("command") == hook["command"] for g in groups for h in g.get("hooks", [])):
            groups.append({"hooks": [hook]})
    allow = result.setdefault("permissions", {}).setdefault("allow", [])
    for tool in TOOLS:
        if f"mcp__{SERVER_NAME}__{tool}" not in allow:
            allow.append(f"mcp__{SERVER_NAME}__{tool}")
    result.setdefault("statusLine", {"type": "command", "command": f"{command} statusline"})
    return result


def remove_from_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    result = json.loads(json.dumps(settings))
    hooks = result.get("hooks", {})
    for event in HOOK_EVENTS:
        groups = [g for g in hooks.get(event, []) if g.get("hooks") != [
            {"type": "command", "command": f"{command} hook", "timeout": HOOK_EVENTS[event]}]]
        if groups:
            hooks[event] = groups
        else:
            hooks.pop(event, None)
    if "hooks" in result and not hooks:
        del result["hooks"]
    permissions = result.get("permissions", {})
    if "allow" in permissions:
        permissions["allow"] = [p for p in permissions["allow"]
                                if p not in {f"mcp__{SERVER_NAME}__{tool}" for tool in TOOLS}]
        if not permissions["allow"]:
            del permissions["allow"]
    if "permissions" in result and not permissions:
        del result["permissions"]
    if result.get("statusLine") == {"type": "command", "command": f"{command} statusline"}:
        del result["statusLine"]
    return result


def add_server(config: dict[str, Any], command: str) -> dict[str, Any]:
    result = json.loads(json.dumps(config))
    result.setdefault("mcpServers", {})[SERVER_NAME] = {"type": "stdio", "command": command, "args": ["serve"],
                                                        "env": {}}
    return result


def remove_server(config: dict[str, Any], command: str) -> dict[str, Any]:
    result = json.loads(json.dumps(config))
    servers = result.get("mcpServers", {})
    if servers.get(SERVER_NAME, {}).get("command") == command:
        del servers[SERVER_NAME]
        if not servers:
            del result["mcpServers"]
    return result


def plan(install: bool, scope: str, settings_file: Path | None, cwd: Path, command: str) -> list[Change]:
    if scope not in ("user", "project"):
        raise ValueError(f"--scope must be user or project, got {scope!r}")
    changes = []
    edits = ((settings_file or settings_path(scope, cwd), add_to_settings if install else remove_from_settings),
             (servers_path(scope, cwd), add_server if install else remove_server))
    for path, edit in edits:
        before, data = _load(path)
        after = edit(data, command)
        if before is None and not install:
            continue
        changes.append(Change(path, before, before if after == data and before is not None else _dump(after)))
    return changes


def apply(changes: list[Change]) -> list[Path]:
    """Write the changed files, each after a backup of its original; returns the backups."""
    backups = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for change in changes:
        if not change.changed:
            continue
        change.path.parent.mkdir(parents=True, exist_ok=True)
        if change.before is not None:
            backup = change.path.with_name(f"{change.path.name}.bak-{stamp}")
            backup.write_text(change.before, "utf-8")
            backups.append(backup)
        change.path.write_text(change.after, "utf-8")
    return backups
