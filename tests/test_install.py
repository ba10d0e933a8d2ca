from __future__ import annotations

import json
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
