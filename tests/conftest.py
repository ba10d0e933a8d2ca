from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import Router

from .devtools import Chromium
from .standin_api import StandinAPI

DATA = Path(__file__).resolve().parent / "data"
REAL_CLAUDE_CODE = DATA / "claude-code-2.1.328"
# Read before ``isolated_user`` clears MCP_ROUTER_*: the server .ci/run starts for the team tests.
TEST_PG_URL = os.environ.get("MCP_ROUTER_TEST_PG_URL", "")
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
def api() -> Iterator[StandinAPI]:
    """The project's stand-in of the Messages API, on a free loopback port."""
    with StandinAPI() as standin:
        yield standin


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "usage.db"


@pytest.fixture(scope="module")
def router() -> Router:
    """The shipped router: the packaged policy and model, no user overrides."""
    return Router.load(Catalog.load(), Config())


@pytest.fixture
def team_db_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of its own for this test (dropped after it); skipped without a server,
    except on CI, where the server .ci/run starts must be there."""
    if not TEST_PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("MCP_ROUTER_TEST_PG_URL is not set: run the suite with `bash .ci/run`, which starts PostgreSQL")
        pytest.skip("no PostgreSQL: set MCP_ROUTER_TEST_PG_URL (bash .ci/run starts one)")
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(TEST_PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(**{**conninfo_to_dict(TEST_PG_URL), "dbname": name})
    finally:
        with psycopg.connect(TEST_PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    """Headless Chromium over the DevTools protocol (tests/devtools.py)."""
    assert CHROMIUM, "CI must have chromium: .ci/run installs it"
    browser = Chromium(CHROMIUM, tmp_path / "profile")
    yield browser
    browser.close()
