from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .devtools import Chromium

DATA = Path(__file__).resolve().parent / "data"
REAL_CLAUDE_CODE = DATA / "claude-code-2.1.328"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def isolated_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME, config, data dir and Claude Code dir: nothing of the user's is touched."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    for var in list(os.environ):
        if var.startswith(("MCP_ROUTER_", "ANTHROPIC_")):
            monkeypatch.delenv(var)
    return home


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "usage.db"


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    """Headless Chromium over the DevTools protocol (tests/devtools.py)."""
    assert CHROMIUM, "CI must have chromium: .ci/run installs it"
    browser = Chromium(CHROMIUM, tmp_path / "profile")
    yield browser
    browser.close()
