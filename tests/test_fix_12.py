"""The fixes behind tests/test_probe_12.py, where the probe does not already pin them down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import READ_HEAD, READ_TAIL, Router, readable
from tests.test_probe_12 import _unpriced_ledger


def test_budget_json_counts_unpriced_responses(db_path: Path) -> None:
    _unpriced_ledger(db_path)
    result = CliRunner().invoke(cli, ["budget", "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unpriced_messages"] == 1


def test_statusline_counts_unpriced_and_shows_a_config_error(isolated_user: Path, db_path: Path) -> None:
    _unpriced_ledger(db_path)
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("monthly_cap_usd = 'lots'\n")
    result = subprocess.run([sys.executable, "-m", "mcp_router", "statusline", "--db", str(db_path)],
                            input='{"cost": {"total_cost_usd": 0.25}}', capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith("session $0.25 · today $0.00 · month $0.00 +1 unpriced"), result.stdout
    assert "config error: config.toml: monthly_cap_usd" in result.stdout, result.stdout


def test_a_cap_of_one_cent_is_accepted(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["budget", "--db", str(db_path), "--set-monthly", "0.01"])
    assert result.exit_code == 0 and "$0.01" in result.stdout, result.output


@pytest.mark.parametrize("source", ["config", "env"])
def test_empty_model_names_the_key(isolated_user: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   source: str) -> None:
    if source == "env":
        monkeypatch.setenv("MCP_ROUTER_DELEGATE_MODEL", " ")
    else:
        config = isolated_user / ".config" / "mcp-router" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text('delegate_model = ""\n')
    result = CliRunner().invoke(cli, ["budget", "--db", str(db_path)])
    assert result.exit_code == 1
    assert "delegate_model: is empty" in result.stderr, result.stderr


def test_config_with_a_byte_order_mark_is_read(isolated_user: Path) -> None:
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_bytes(b"\xef\xbb\xbfmonthly_cap_usd = 5\n")
    assert Config.load().monthly_cap_usd == 5


def test_the_router_reads_the_ends_of_a_huge_task() -> None:
    router = Router.load(Catalog.load(None), Config())
    ordinary = "summarise this build log and list the failing tests"
    assert readable(ordinary) == ordinary
    huge = "summarise this log\n" + "INFO all good here\n" * 200_000
    excerpt = readable(huge)
    assert len(excerpt) < READ_HEAD + READ_TAIL + 10
    assert excerpt.startswith(huge[:READ_HEAD]) and excerpt.endswith(huge[-READ_TAIL:])
    assert router.route(huge).tier == router.decide(huge, 0, router.model.probabilities(excerpt)).tier


def test_a_transcript_starting_with_a_byte_order_mark_parses() -> None:
    from mcp_router.transcripts import bulk_loads, parse_line

    line = (b'{"type": "assistant", "message": {"id": "m1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 3,'
            b' "output_tokens": 4}}, "requestId": "r1", "timestamp": "2026-01-01T00:00:00Z", "sessionId": "s"}')
    for loads in (json.loads, bulk_loads):
        assert parse_line(line, loads) == parse_line(b"\xef\xbb\xbf" + line, loads)
    assert parse_line(line) is not None


def test_an_impossible_date_says_so(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--since", "2026-02-30"])
    assert result.exit_code == 1
    assert result.stderr == "Error: --since: 2026-02-30 does not exist (that month has fewer days)\n"


def test_track_cost_says_what_a_token_count_is(db_path: Path, tmp_path: Path) -> None:
    import asyncio

    from mcp import Client
    from mcp.types import TextContent

    from mcp_router.server import build_server

    async def call() -> str:
        async with Client(build_server(db_path, Config(), tmp_path)) as client:
            result = await client.call_tool("track_cost", {"model": "haiku", "input_tokens": True, "output_tokens": 7})
        assert result.is_error and isinstance(result.content[0], TextContent)
        return result.content[0].text

    assert "`input_tokens` must be a whole number (a JSON integer, not a string or boolean), got True" in asyncio.run(
        call())
