"""The repository as a Claude Code plugin and marketplace, checked with the real CLI (2.1.328)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .standin_api import StandinAPI
from .test_e2e_claude_code import CLAUDE, PLUGIN, REPO, MainModel, _check, _run_claude

pytestmark = pytest.mark.e2e


def _claude_env(home: Path, path: str, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": path, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", **extra}


def _checkout(dest: Path) -> Path:
    """The files git tracks (or would: new, not ignored), as a clone or a marketplace copy would hold them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _validate(path: Path, home: Path) -> str:
    assert CLAUDE
    result = subprocess.run([CLAUDE, "plugin", "validate", "--strict", str(path)], capture_output=True, text=True,
                            timeout=60, env=_claude_env(home, os.environ["PATH"]))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validation passed" in output
    assert "⚠" not in output and "✘" not in output and "warning" not in output.lower(), output
    assert "Advice" not in output, output
    return output


def test_plugin_validates_without_warning_or_advice(isolated_user: Path) -> None:
    output = _validate(PLUGIN, isolated_user)
    assert "Validating plugin manifest" in output and "api.anthropic.com (declared)" in output
    assert "found nothing to report" in output, output  # the plugin directory's checks (README, ...)


def test_marketplace_validates_and_points_at_the_plugin_folder(isolated_user: Path) -> None:
    """The repository root is the marketplace; its one plugin is the plugin/ folder, so an install copies only
    that folder (Claude Code copies a relative-path source whole)."""
    output = _validate(REPO, isolated_user)
    assert "Validating marketplace manifest" in output
    assert not (REPO / ".claude-plugin" / "plugin.json").exists()
    entries = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())["plugins"]
    assert [(e["name"], (REPO / e["source"]).resolve()) for e in entries] == [("mcp-router", PLUGIN)]
    manifest = json.loads((PLUGIN / ".claude-plugin" / "plugin.json").read_text())
    assert entries[0]["version"] == manifest["version"]


def test_marketplace_install_gives_a_session_the_server_and_hooks(tmp_path: Path, isolated_user: Path) -> None:
    assert CLAUDE
    home = isolated_user
    marketplace = _checkout(tmp_path / "checkout")
    env = _claude_env(home, os.environ["PATH"])
    for command in (["plugin", "marketplace", "add", str(marketplace)], ["plugin", "install", "mcp-router@mcp-router"]):
        done = subprocess.run([CLAUDE, *command], capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    installed = json.loads((home / ".claude" / "plugins" / "installed_plugins.json").read_text())
    assert "mcp-router@mcp-router" in json.dumps(installed)

    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("meeting notes\nQUOKKA-5521-only-in-the-file\nwe ship on friday\n")
    db_path = tmp_path / "usage.db"
    tool = "mcp__plugin_mcp-router_mcp-router__delegate_to_haiku"
    with StandinAPI(MainModel(tool)) as api:
        result = _run_claude(home, project, api, db_path, [], tool)
        _check(result, api, home, db_path)


def test_a_missing_command_is_one_clear_line_for_the_user(tmp_path: Path, isolated_user: Path) -> None:
    """Without mcp-router where Claude Code looks, the session starts and the user is told how to fix it."""
    assert CLAUDE
    project = tmp_path / "project"
    project.mkdir()
    path = os.pathsep.join([str(Path(CLAUDE).parent), "/usr/bin", "/bin"])
    with StandinAPI() as api:
        env = _claude_env(isolated_user, path, ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="test")
        result = subprocess.run([CLAUDE, "-p", "hello", "--plugin-dir", str(PLUGIN), "--output-format", "stream-json",
                                 "--verbose"], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    starts = [e for e in events if e.get("subtype") == "hook_response" and e.get("hook_event") == "SessionStart"]
    assert len(starts) == 1
    message = json.loads(starts[0]["output"])["systemMessage"]
    assert "mcp-router is not installed" in message and "install.sh" in message
    assert "\n" not in message


def test_launcher_runs_the_installed_command(tmp_path: Path) -> None:
    launch = PLUGIN / "scripts" / "launch"
    env = {"HOME": str(tmp_path), "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])}
    done = subprocess.run(["sh", str(launch), "--version"], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("mcp-router, version")
    quiet = subprocess.run(["sh", str(launch), "check"], capture_output=True, text=True, env=env, timeout=30)
    assert quiet.returncode == 0 and quiet.stdout == ""
