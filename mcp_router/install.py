"""``mcp-router install`` / ``uninstall``: wire mcp-router into Claude Code's own files.

Two files change, each merged (other hooks, permissions and servers are kept), idempotently (installing
twice is installing once) and with a backup of the original beside it:

- the settings file (user: ``$CLAUDE_CONFIG_DIR/settings.json`` or ``~/.claude/settings.json``;
  project: ``.claude/settings.json``): the UserPromptSubmit (routing advice), Stop, SubagentStop and
  SessionEnd hooks, permissions for the tools, and the statusLine;
- where Claude Code reads MCP servers (user: ``~/.claude.json``, or ``$CLAUDE_CONFIG_DIR/.claude.json``;
  project: ``.mcp.json``): the ``mcp-router`` server.

``uninstall`` removes exactly what ``install`` adds. Each install is remembered (``installed.json`` beside
the database: the backup, whether the file existed, a hash of what was written): while a file is still
as install left it, uninstall puts the original back byte for byte, or deletes a file install created;
a file edited since is cleaned by removing mcp-router's entries only.

Files are written whole (a temporary file renamed over the old one) with the original's mode; a new
file, and every backup, gets the original's mode or 0600: these files can hold OAuth accounts and other
servers' tokens. Backup names never collide. Project scope writes the bare ``mcp-router`` command (a
teammate's checkout runs theirs from PATH), never this machine's paths.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_NAME = "mcp-router"
TOOLS = ("route_model", "delegate_to_haiku", "track_cost", "rate_delegation")
HOOK_EVENTS = {"UserPromptSubmit": 5, "Stop": 15, "SubagentStop": 15, "SessionEnd": 5}


NEW_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700  # folders install creates: whatever the umask, no other user may swap files in them
PORTABLE_COMMAND = "mcp-router"


@dataclass
class Change:
    path: Path
    before: str | None  # None: the file does not exist yet
    after: str | None  # None: delete the file (uninstall of a file install created)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return "".join(difflib.unified_diff((self.before or "").splitlines(True), (self.after or "").splitlines(True),
                                            str(self.path), "/dev/null" if self.after is None else str(self.path)))


def executable(scope: str = "user") -> str:
    """The command Claude Code runs. User scope: the installed console script by absolute path when it can be
    found (hooks run without our PATH). Project scope: the bare name, for teammates' machines."""
    if scope == "project":
        return PORTABLE_COMMAND
    beside = Path(sys.executable).parent / "mcp-router"
    found = str(beside) if beside.exists() else shutil.which("mcp-router")
    if not found:
        return PORTABLE_COMMAND
    # install.sh links ~/.local/bin/mcp-router to whichever install (venv, uv, pipx) is current: naming the link
    # keeps Claude Code on the upgraded command when a re-install switches between them.
    link = Path.home() / ".local" / "bin" / "mcp-router"
    if link.exists() and link.resolve() == Path(found).resolve():
        return str(link)
    return found


def _shell(command: str) -> str:
    """Hooks and the statusLine run through a shell: quote the path (it may hold spaces)."""
    return shlex.quote(command)


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


def _check_shape(settings: dict[str, Any], path: Path | str = "settings.json") -> None:
    """One clear line for a settings file whose parts install edits are not the JSON types Claude Code uses."""
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError(f"{path}: \"hooks\" must be a JSON object (event name -> list of hook groups), found "
                         f"{_json_type(hooks)}; fix or remove it, then run again")
    for event in HOOK_EVENTS:
        groups = hooks.get(event, [])
        if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("hooks", []), list)
                                                   for g in groups):
            raise ValueError(f"{path}: \"hooks\".{event} must be a list of objects with a \"hooks\" list; "
                             "fix or remove it, then run again")
    permissions = settings.get("permissions", {})
    if not isinstance(permissions, dict) or not isinstance(permissions.get("allow", []), list):
        raise ValueError(f"{path}: \"permissions\" must be an object whose \"allow\" is a list; fix it, then run "
                         "again")


def _json_type(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__)


def add_to_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    _check_shape(settings)
    result = json.loads(json.dumps(settings))
    hooks = result.setdefault("hooks", {})
    for event, timeout in HOOK_EVENTS.items():
        groups = hooks.setdefault(event, [])
        hook = {"type": "command", "command": f"{_shell(command)} hook", "timeout": timeout}
        if not any(h.get("command") == hook["command"] for g in groups for h in g.get("hooks", [])):
            groups.append({"hooks": [hook]})
    allow = result.setdefault("permissions", {}).setdefault("allow", [])
    for tool in TOOLS:
        if f"mcp__{SERVER_NAME}__{tool}" not in allow:
            allow.append(f"mcp__{SERVER_NAME}__{tool}")
    result.setdefault("statusLine", {"type": "command", "command": f"{_shell(command)} statusline"})
    return result


def remove_from_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    _check_shape(settings)
    result = json.loads(json.dumps(settings))
    hooks = result.get("hooks", {})
    for event in HOOK_EVENTS:
        groups = [g for g in hooks.get(event, []) if g.get("hooks") != [
            {"type": "command", "command": f"{_shell(command)} hook", "timeout": HOOK_EVENTS[event]}]]
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
    if result.get("statusLine") == {"type": "command", "command": f"{_shell(command)} statusline"}:
        del result["statusLine"]
    return result


def add_server(config: dict[str, Any], command: str) -> dict[str, Any]:
    if not isinstance(config.get("mcpServers", {}), dict):
        raise ValueError("\"mcpServers\" must be a JSON object (name -> server); fix it, then run again")
    result = json.loads(json.dumps(config))
    result.setdefault("mcpServers", {})[SERVER_NAME] = {"type": "stdio", "command": command, "args": ["serve"],
                                                        "env": {}}
    return result


def remove_server(config: dict[str, Any], command: str) -> dict[str, Any]:
    if not isinstance(config.get("mcpServers", {}), dict):
        raise ValueError("\"mcpServers\" must be a JSON object (name -> server); fix it, then run again")
    result = json.loads(json.dumps(config))
    servers = result.get("mcpServers", {})
    if servers.get(SERVER_NAME, {}).get("command") == command:
        del servers[SERVER_NAME]
        if not servers:
            del result["mcpServers"]
    return result


def plan(install: bool, scope: str, settings_file: Path | None, cwd: Path, command: str | None = None,
         record_file: Path | None = None) -> list[Change]:
    if scope not in ("user", "project"):
        raise ValueError(f"--scope must be user or project, got {scope!r}")
    command = command or executable(scope)
    record = _read_record(record_file)
    changes = []
    edits = ((settings_file or settings_path(scope, cwd), add_to_settings if install else remove_from_settings),
             (servers_path(scope, cwd), add_server if install else remove_server))
    for path, edit in edits:
        before, data = _load(path)
        if before is None and not install:
            continue
        try:
            after_data = edit(data, command)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}" if not str(exc).startswith(str(path)) else str(exc)) from None
        after: str | None = before if after_data == data and before is not None else _dump(after_data)
        entry = record.get(str(path.absolute()))
        if not install and entry and before is not None and _digest(before) == entry["written"] and (
                entry["backup"] is None or Path(entry["backup"]).is_file()):
            after = None if entry["backup"] is None else Path(entry["backup"]).read_text("utf-8")
        changes.append(Change(path, before, after))
    return changes


def apply(changes: list[Change], record_file: Path | None = None, *, installing: bool = True) -> list[Path]:
    """Write the changed files, each after a backup of its original; returns the backups."""
    backups = []
    record = _read_record(record_file)
    for change in changes:
        if not change.changed:
            continue
        key = str(change.path.absolute())
        mode = stat.S_IMODE(change.path.stat().st_mode) if change.before is not None else NEW_FILE_MODE
        backup = None
        if change.before is not None:
            backup = _backup(change.path, change.before, mode)
            backups.append(backup)
        if change.after is None:
            change.path.unlink()
        else:
            change.path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            _write(change.path, change.after, mode)
        if not installing:
            record.pop(key, None)
            continue
        earlier = record.get(key)
        if earlier and change.before is not None and earlier["written"] == _digest(change.before):
            earlier["written"] = _digest(change.after or "")  # untouched since the last install: keep its original
        else:
            record[key] = {"backup": str(backup) if backup else None, "written": _digest(change.after or "")}
    _write_record(record, record_file)
    return backups


def _backup(path: Path, text: str, mode: int) -> Path:
    """``<name>.bak-<time>``, with ``-2``, ``-3``, … when that name is taken; created exclusively, never replaced."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        backup = path.with_name(f"{path.name}.bak-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it
            handle.write(text)
        return backup
    raise ValueError(f"{path}: too many backups beside it; remove old {path.name}.bak-* files")


def _write(path: Path, text: str, mode: int) -> None:
    path = path.resolve() if path.is_symlink() else path  # a dotfiles manager's link stays a link: write its target
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def default_record_file() -> Path:
    from .config import default_db_path

    return default_db_path().parent / "installed.json"


def _read_record(record_file: Path | None) -> dict[str, Any]:
    path = record_file or default_record_file()
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(record: dict[str, Any], record_file: Path | None) -> None:
    path = record_file or default_record_file()
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _write(path, json.dumps(record, indent=2) + "\n", NEW_FILE_MODE)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plugin_installed() -> bool:
    """Whether Claude Code has the mcp-router plugin installed (it brings its own server and hooks)."""
    try:
        data = json.loads((_config_dir() / "plugins" / "installed_plugins.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    plugins = data.get("plugins", {}) if isinstance(data, dict) else {}
    return isinstance(plugins, dict) and any(str(key).startswith(f"{SERVER_NAME}@") for key in plugins)


PLUGIN_WARNING = ("warning: the mcp-router plugin is already installed in Claude Code and brings its own server and "
                  "hooks; with both, every session is logged twice and two servers run. Keep one: "
                  "`mcp-router uninstall`, or `claude plugin uninstall mcp-router@mcp-router`.")


def next_steps(scope: str) -> str:
    """What to do after install: how delegation is paid for, how to check, how to undo."""
    undo = "mcp-router uninstall" + (" --scope project" if scope == "project" else "")
    return "\n".join([
        "Next steps:",
        "  1. Restart Claude Code (or run /mcp) so it starts the mcp-router server.",
        "  2. Delegation is paid one of two ways: an API key (ANTHROPIC_API_KEY in the \"env\" of the mcp-router",
        "     server entry, or in the environment Claude Code starts in), or, with no key, your Claude subscription",
        "     through the `claude` command on PATH.",
        "  3. Check: `claude mcp list` shows mcp-router as connected; `mcp-router report` shows usage after a session.",
        f"  4. Undo: `{undo}` restores the files above (backups are kept beside them).",
    ])
