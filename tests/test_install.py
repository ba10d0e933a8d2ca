from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_router import install
from mcp_router.cli import cli

CMD = "/opt/venv/bin/mcp-router"
EXISTING = {
    "model": "opus",
    "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
              "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit"}]}]},
    "permissions": {"allow": ["Bash(git status)"], "deny": ["Read(.env)"]},
    "statusLine": {"type": "command", "command": "my-own-statusline"},
}


def test_install_merges_without_clobbering_and_uninstall_restores() -> None:
    installed = install.add_to_settings(EXISTING, CMD)
    assert installed["hooks"]["Stop"][0] == EXISTING["hooks"]["Stop"][0]
    assert installed["hooks"]["Stop"][1]["hooks"][0]["command"] == f"{CMD} hook"
    assert installed["hooks"]["PreToolUse"] == EXISTING["hooks"]["PreToolUse"]
    assert "Bash(git status)" in installed["permissions"]["allow"]
    assert "mcp__mcp-router__delegate_to_haiku" in installed["permissions"]["allow"]
    assert installed["statusLine"] == EXISTING["statusLine"]  # the user's own status line stays
    assert install.add_to_settings(installed, CMD) == installed
    assert install.remove_from_settings(installed, CMD) == EXISTING
    servers = install.add_server({"mcpServers": {"other": {"command": "x"}}, "numStartups": 3}, CMD)
    assert servers["mcpServers"]["mcp-router"]["args"] == ["serve"]
    assert install.remove_server(servers, CMD) == {"mcpServers": {"other": {"command": "x"}}, "numStartups": 3}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=10)


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["model", "env", "theme", "includeCoAuthoredBy"]), json_values, max_size=4))
def test_install_is_idempotent_and_reversible_for_any_other_settings(other: dict) -> None:
    once = install.add_to_settings(other, CMD)
    assert install.add_to_settings(once, CMD) == once
    assert install.remove_from_settings(once, CMD) == other


def test_cli_install_twice_then_uninstall(isolated_user: Path) -> None:
    settings_file = isolated_user / ".claude" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text(json.dumps(EXISTING))
    runner = CliRunner()
    dry = runner.invoke(cli, ["install", "--dry-run"], catch_exceptions=False)
    assert "+        \"hooks\": [" in dry.output or "mcp-router" in dry.output
    assert json.loads(settings_file.read_text()) == EXISTING  # dry run wrote nothing
    first = runner.invoke(cli, ["install"], catch_exceptions=False)
    assert "updated" in first.output and "backup:" in first.output
    backups = list(settings_file.parent.glob("settings.json.bak-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == EXISTING
    servers = json.loads((isolated_user / ".claude" / ".claude.json").read_text())
    assert servers["mcpServers"]["mcp-router"]["args"] == ["serve"]
    second = runner.invoke(cli, ["install"], catch_exceptions=False)
    assert "already set up" in second.output
    runner.invoke(cli, ["uninstall"], catch_exceptions=False)
    assert json.loads(settings_file.read_text()) == EXISTING
    assert not (isolated_user / ".claude" / ".claude.json").exists()  # install created it: uninstall removes it


def test_invalid_settings_json_is_one_line_and_writes_nothing(isolated_user: Path) -> None:
    settings_file = isolated_user / ".claude" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text("{not json")
    result = CliRunner().invoke(cli, ["install"])
    assert result.exit_code == 1 and "not valid JSON" in result.output
    assert settings_file.read_text() == "{not json"
    assert not (isolated_user / ".claude" / ".claude.json").exists()


@pytest.mark.parametrize("scope", ["project"])
def test_project_scope_writes_the_projects_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str) -> None:
    monkeypatch.chdir(tmp_path)
    CliRunner().invoke(cli, ["install", "--scope", scope], catch_exceptions=False)
    assert "mcp-router" in json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]
    assert "hooks" in json.loads((tmp_path / ".claude" / "settings.json").read_text())


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_modes_backups_and_a_byte_for_byte_round_trip_within_one_second(isolated_user: Path) -> None:
    claude_dir = isolated_user / ".claude"
    claude_dir.mkdir()
    servers = claude_dir / ".claude.json"  # CLAUDE_CONFIG_DIR is set: Claude Code keeps .claude.json there
    servers_text = ('{\n    "oauthAccount": {"emailAddress": "me@example.com"},\n'
                    '    "mcpServers": {"gh": {"command": "gh-mcp", "env": {"GITHUB_TOKEN": "t"}}}\n}')
    servers.write_text(servers_text)
    servers.chmod(0o600)
    settings_file = claude_dir / "settings.json"
    settings_text = json.dumps(EXISTING, indent=4, sort_keys=True)  # not the way install writes JSON
    settings_file.write_text(settings_text)
    settings_file.chmod(0o640)
    runner = CliRunner()
    installed = runner.invoke(cli, ["install"], catch_exceptions=False)
    removed = runner.invoke(cli, ["uninstall"], catch_exceptions=False)
    assert installed.exit_code == removed.exit_code == 0
    assert servers.read_text() == servers_text and settings_file.read_text() == settings_text
    assert _mode(servers) == 0o600 and _mode(settings_file) == 0o640
    server_backups = sorted(claude_dir.glob(".claude.json.bak-*"))
    settings_backups = sorted(claude_dir.glob("settings.json.bak-*"))
    assert len(server_backups) == len(settings_backups) == 2  # one by install, one by uninstall: no collision
    assert all(_mode(backup) == 0o600 for backup in server_backups)
    assert all(_mode(backup) == 0o640 for backup in settings_backups)
    assert servers_text in [backup.read_text() for backup in server_backups]
    assert not [p for p in claude_dir.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


def test_files_install_created_are_0600_and_uninstall_removes_them(isolated_user: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    user = isolated_user / ".claude"
    for scope, files in (("user", [user / "settings.json", user / ".claude.json"]),
                         ("project", [tmp_path / ".claude" / "settings.json", tmp_path / ".mcp.json"])):
        runner.invoke(cli, ["install", "--scope", scope], catch_exceptions=False)
        assert all(path.exists() and _mode(path) == 0o600 for path in files)
        result = runner.invoke(cli, ["uninstall", "--scope", scope], catch_exceptions=False)
        assert not any(path.exists() for path in files), result.output
        assert "removed (install created it)" in result.output


def test_uninstall_after_an_edit_removes_only_what_install_added(isolated_user: Path) -> None:
    settings_file = isolated_user / ".claude" / "settings.json"
    runner = CliRunner()
    runner.invoke(cli, ["install"], catch_exceptions=False)
    edited = json.loads(settings_file.read_text()) | {"theme": "dark"}
    settings_file.write_text(json.dumps(edited))
    runner.invoke(cli, ["uninstall"], catch_exceptions=False)
    assert json.loads(settings_file.read_text()) == {"theme": "dark"}


@pytest.mark.parametrize("hooks", [[], "Stop", 3, None])
def test_hooks_that_are_not_an_object_are_one_clear_line(isolated_user: Path, hooks: object) -> None:
    settings_file = isolated_user / ".claude" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text(json.dumps({"hooks": hooks}))
    for command in ("install", "uninstall"):
        result = CliRunner().invoke(cli, [command])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.count("\n") == 1 and '"hooks" must be a JSON object' in result.output, result.output
        assert str(settings_file) in result.output
    assert json.loads(settings_file.read_text()) == {"hooks": hooks}


def test_project_scope_is_portable_and_install_says_what_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["install", "--scope", "project"], catch_exceptions=False)
    written = (tmp_path / ".mcp.json").read_text() + (tmp_path / ".claude" / "settings.json").read_text()
    assert json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["mcp-router"]["command"] == "mcp-router"
    assert '"command": "mcp-router hook"' in written and '"command": "mcp-router statusline"' in written
    assert str(Path(sys.executable).parent) not in written and str(tmp_path) not in written
    for hint in ("ANTHROPIC_API_KEY", "subscription", "`claude`", "claude mcp list",
                 "mcp-router uninstall --scope project"):
        assert hint in result.output


def test_a_second_round_trip_restores_the_edits_made_between_the_two(isolated_user: Path) -> None:
    settings_file = isolated_user / ".claude" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text('{"model": "opus"}')
    runner = CliRunner()
    runner.invoke(cli, ["install"], catch_exceptions=False)
    runner.invoke(cli, ["uninstall"], catch_exceptions=False)
    assert settings_file.read_text() == '{"model": "opus"}'
    settings_file.write_text('{"model": "sonnet", "theme": "dark"}')
    runner.invoke(cli, ["install"], catch_exceptions=False)
    runner.invoke(cli, ["install"], catch_exceptions=False)  # a no-op: nothing to add
    runner.invoke(cli, ["uninstall"], catch_exceptions=False)
    assert settings_file.read_text() == '{"model": "sonnet", "theme": "dark"}'
