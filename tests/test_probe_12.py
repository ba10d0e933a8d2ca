"""Reviewer probe of issue 12 (bad inputs a new user tries): reproductions of what still goes wrong.

Each test states what a user should see; every one fails today (findings for the lead; no product code changed).
They are marked xfail(strict=True) so the suite stays green and each turns into an error once its finding is fixed:
then drop the mark for that test.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from mcp.types import TextContent

from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.store import USAGE_COLUMNS, connect, transaction, upsert_usage


def _run(args: list[str], stdin: str | bytes = "", env: dict | None = None) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-m", "mcp_router", *args], input=stdin, capture_output=True,
                          timeout=30, env={**os.environ, **(env or {})},
                          text=isinstance(stdin, str))


def _one_error_line(result) -> str:  # noqa: ANN001
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception,
                                                                                       SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def _unpriced_ledger(db_path: Path, model: str = "claude-zzz-9") -> None:
    values = dict.fromkeys(USAGE_COLUMNS)
    values.update(message_id="m1", request_id="r", ts=datetime.now(UTC).timestamp(), model=model, session_id="s1",
                  project="p1", is_sidechain=0, input_tokens=1000, output_tokens=1000, cache_read_tokens=0,
                  cache_creation_tokens=0, cache_creation_1h_tokens=0, total_tokens=2000, cost_usd=None)
    conn = connect(db_path)
    with transaction(conn):
        upsert_usage(conn, [tuple(values[c] for c in USAGE_COLUMNS)])
    conn.close()


# 1. Huge integers reach SQLite: OverflowError traceback.
@pytest.mark.parametrize("args", [["--limit", "99999999999999999999999"], ["--limit", "9223372036854775808"],
                                  ["--void", "99999999999999999999999"]])
def test_costs_with_a_huge_integer_is_one_line(db_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["costs", "--db", str(db_path), *args])
    _one_error_line(result)


# 2. The table format swallows "[pricing.models]" (rich markup): "add prices under  in the config".
def test_table_footer_names_the_config_section(db_path: Path) -> None:
    _unpriced_ledger(db_path)
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--timezone", "UTC"])
    assert result.exit_code == 0
    assert "under  in the config" not in result.stdout
    assert "[pricing.models]" in result.stdout


# 3. An all-unpriced session is listed at "$0.00" among the most expensive sessions.
def test_table_never_shows_an_unpriced_session_as_zero(db_path: Path) -> None:
    _unpriced_ledger(db_path)
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--timezone", "UTC"])
    sessions = [line for line in result.stdout.splitlines() if line.startswith("Most expensive sessions")]
    assert sessions and "$0.00" not in sessions[0], sessions


# 4. The status line and budget show $0.00 for a month of unpriced usage, without a word.
def test_statusline_says_usage_is_unpriced(db_path: Path) -> None:
    _unpriced_ledger(db_path)
    result = _run(["statusline", "--db", str(db_path)], stdin="{}")
    assert result.returncode == 0
    assert "unpriced" in result.stdout, result.stdout


def test_budget_says_usage_is_unpriced(db_path: Path) -> None:
    _unpriced_ledger(db_path)
    result = CliRunner().invoke(cli, ["budget", "--db", str(db_path)])
    assert result.exit_code == 0
    assert "unpriced" in result.stdout, result.stdout


# 5. Garbage on the status line's stdin throws away the ledger figures: "mcp-router: no data".
@pytest.mark.parametrize("stdin", [b"\x00\xff garbage", b'\xef\xbb\xbf{"cost": {"total_cost_usd": 1.5}}',
                                   b'{"cost": "abc"}'])
def test_statusline_keeps_the_ledger_figures_when_stdin_is_garbage(db_path: Path, stdin: bytes) -> None:
    _unpriced_ledger(db_path, model="claude-haiku-5-5")
    result = _run(["statusline", "--db", str(db_path)], stdin=stdin)
    assert result.returncode == 0
    assert b"today" in result.stdout, result.stdout


# 6. The status line prints the session cost Claude Code sent without checking it is money.
@pytest.mark.parametrize("value", ["NaN", "-Infinity", "true", "1e308"])
def test_statusline_session_cost_is_money(db_path: Path, value: str) -> None:
    result = _run(["statusline", "--db", str(db_path)], stdin=f'{{"cost": {{"total_cost_usd": {value}}}}}')
    assert result.returncode == 0
    assert "nan" not in result.stdout and "inf" not in result.stdout and len(result.stdout) < 120, result.stdout
    assert "session $1.00" not in result.stdout, result.stdout


# 7. A cap below a cent is accepted and shown as "$0.0000 (70650360000%)".
def test_budget_refuses_a_cap_below_a_cent(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["budget", "--db", str(db_path), "--set-monthly", "1e-9"])
    _one_error_line(result)


# 8. The rate_delegation tool echoes a 100,000-character delegation id back to the model.
def test_rate_delegation_does_not_echo_a_huge_id(db_path: Path, tmp_path: Path) -> None:
    from mcp import Client

    from mcp_router.server import build_server

    async def call() -> str:
        async with Client(build_server(db_path, Config(), tmp_path)) as client:
            result = await client.call_tool("rate_delegation", {"delegation_id": "x" * 100_000, "rating": "bad"})
        assert result.is_error
        content = result.content[0]
        assert isinstance(content, TextContent)
        return content.text

    assert len(asyncio.run(call())) < 1000


# 9. track_cost takes True and "7" as token counts.
def test_track_cost_refuses_booleans_and_strings_as_tokens(db_path: Path, tmp_path: Path) -> None:
    from mcp import Client

    from mcp_router.server import build_server

    async def call() -> bool:
        async with Client(build_server(db_path, Config(), tmp_path)) as client:
            result = await client.call_tool("track_cost", {"model": "haiku", "input_tokens": True,
                                                           "output_tokens": "7"})
        return result.is_error

    assert asyncio.run(call())


# 10. Misleading one-liners.
def test_output_under_a_file_says_it_is_a_file(db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest",
                                      "--output", str(tmp_path / "afile" / "r.txt")])
    assert "does not exist" not in _one_error_line(result)


def test_empty_db_path_is_named_as_empty() -> None:
    result = CliRunner().invoke(cli, ["report", "--db", "", "--no-ingest"])
    assert "database .:" not in _one_error_line(result)


def test_pricing_of_an_empty_model_name_is_an_error() -> None:
    _one_error_line(CliRunner().invoke(cli, ["pricing", ""]))


def test_empty_main_model_in_config_is_an_error(isolated_user: Path, db_path: Path) -> None:
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('main_model = ""\n')
    _one_error_line(CliRunner().invoke(cli, ["route", "--db", str(db_path), "read a file"]))
