from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcp_router import budget
from mcp_router.cli import cli
from mcp_router.config import Config, default_config_path, default_db_path, default_projects_dir
from mcp_router.errors import ConfigError
from mcp_router.store import connect


def _write(home: Path, text: str) -> Path:
    path = home / ".config" / "mcp-router" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_a_file(isolated_user: Path) -> None:
    config = Config.load()
    assert config.monthly_cap_usd == 0
    assert config.alert_thresholds == (0.5, 0.8, 1.0)
    assert config.delegate_model == "haiku"
    assert default_config_path() == isolated_user / ".config" / "mcp-router" / "config.toml"
    assert default_db_path() == isolated_user / ".local" / "share" / "mcp-router" / "usage.db"
    assert default_projects_dir() == isolated_user / ".claude" / "projects"


def test_file_values_and_environment_overrides(isolated_user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(isolated_user, 'monthly_cap_usd = 40\nmain_model = "opus"\nallowed_roots = ["/a"]\n'
                          '[routing]\nsummarize_logs = "sonnet"\n')
    monkeypatch.setenv("MCP_ROUTER_MONTHLY_CAP_USD", "55.5")
    monkeypatch.setenv("MCP_ROUTER_ALERT_THRESHOLDS", "0.9, 0.5")
    monkeypatch.setenv("MCP_ROUTER_ALLOWED_ROOTS", "/x:/y")
    monkeypatch.setenv("MCP_ROUTER_PRICING", json.dumps({"models": {"claude-haiku-5-5": {"input": 0.05}}}))
    config = Config.load()
    assert config.monthly_cap_usd == 55.5
    assert config.main_model == "opus"
    assert config.alert_thresholds == (0.5, 0.9)
    assert config.allowed_roots == ("/x", "/y")
    assert config.routing == {"summarize_logs": "sonnet"}
    assert config.pricing["models"]["claude-haiku-5-5"]["input"] == 0.05


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("max_file_bytes = 1000\n")
    monkeypatch.setenv("MCP_ROUTER_CONFIG", str(path))
    assert Config.load().max_file_bytes == 1000


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("monthly_cap_usd = 'lots'\n", {}, r"monthly_cap_usd: expected a number, got 'lots'"),
        ("monthly_cap_usd = -5\n", {}, r"monthly_cap_usd: must not be negative"),
        ("max_file_bytes = 1.5\n", {}, r"max_file_bytes: expected a whole number"),
        ("montly_cap_usd = 5\n", {}, r"montly_cap_usd: unknown key"),
        ("monthly_cap_usd = \n", {}, r"not valid TOML"),
        ("[routing]\nsummaries = 'gpt'\n", {}, r"routing\.summaries: expected one of haiku, sonnet, opus"),
        ("[pricing.models.claude-x]\ninput = 1\n", {}, r"pricing\.models\.claude-x\.output: required"),
        ("", {"MCP_ROUTER_API_MAX_RETRIES": "many"}, r"api_max_retries: expected a whole number, got 'many'"),
        ("", {"MCP_ROUTER_ROUTING": "{not json"}, r"MCP_ROUTER_ROUTING: expected a JSON object"),
        ("alert_thresholds = [0.5, 0]\n", {}, r"alert_thresholds: fractions of the cap must be above 0"),
        ("uncertain_below = 1.5\n", {}, r"uncertain_below: a probability from 0 to 1, got 1.5"),
        ("", {"MCP_ROUTER_UNCERTAIN_BELOW": "high"}, r"uncertain_below: expected a number, got 'high'"),
    ],
)
def test_bad_config_names_the_key_and_problem(
    isolated_user: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict, message: str
) -> None:
    _write(isolated_user, text)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        Config.load()


def test_cli_reports_a_bad_config_in_one_line(isolated_user: Path) -> None:
    _write(isolated_user, "monthly_cap_usd = 'lots'\n")
    result = CliRunner().invoke(cli, ["budget"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "monthly_cap_usd" in lines[0]


def test_budget_command_sets_and_reports_the_cap(db_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["budget", "--db", str(db_path), "--set-monthly", "25", "--json"],
                           catch_exceptions=False)
    assert json.loads(result.output)["monthly_cap_usd"] == 25
    conn = connect(db_path)
    conn.execute("INSERT INTO cost_records (ts, source, model, cost_usd, state) VALUES (strftime('%s','now'), "
                 "'track_cost', 'claude-opus-5-5', 30.0, 'settled')")
    status = json.loads(runner.invoke(cli, ["budget", "--db", str(db_path), "--json"]).output)
    assert status["month_to_date_usd"] == 30.0 and status["allowed"] is False
    result = runner.invoke(cli, ["budget", "--db", str(db_path), "--set-monthly", "-1"])
    assert result.exit_code == 1 and "Error: the monthly cap must be 0" in result.output


def test_budget_counts_ledger_usage_and_open_reservations(db_path: Path) -> None:
    conn = connect(db_path)
    budget.set_monthly_cap(conn, 10)
    conn.execute("INSERT INTO usage_events (message_id, request_id, ts, model, cost_usd) "
                 "VALUES ('m', 'r', strftime('%s','now'), 'claude-opus-5-5', 2.5)")
    conn.execute("INSERT INTO cost_records (ts, source, reserved_usd, cost_usd, state) VALUES "
                 "(strftime('%s','now'), 'delegation', 1.0, NULL, 'reserved'),"
                 "(strftime('%s','now'), 'delegation', 9.0, 0.5, 'settled'),"
                 "(strftime('%s','now'), 'delegation', 4.0, NULL, 'released'),"
                 "(strftime('%s','now') - 86400 * 62, 'track_cost', 0, 100.0, 'settled')")
    status = budget.status(conn, Config.load())
    assert status.month_to_date_usd == pytest.approx(2.5 + 1.0 + 0.5)
    assert status.allowed and status.fraction_used == pytest.approx(0.4)


def test_pricing_command_lists_and_shows_models() -> None:
    runner = CliRunner()
    listing = runner.invoke(cli, ["pricing"], catch_exceptions=False, terminal_width=120)
    assert "claude-opus-5-5" in listing.output and "claude-haiku-4-5" in listing.output
    one = json.loads(runner.invoke(cli, ["pricing", "haiku", "--json"]).output)
    assert one["id"] == "claude-haiku-5-5" and one["aliases"] == ["haiku"]
    assert one["long_prompt"]["above_prompt_tokens"] == 100_000
    batch = json.loads(runner.invoke(cli, ["pricing", "claude-opus-5-5", "--batch", "--json"]).output)
    assert batch["input"] == 2.0 and batch["output"] == 10.0
    text = runner.invoke(cli, ["pricing", "claude-haiku-4-5-20251001"]).output
    assert "claude-haiku-4-5" in text and "200k" in text


def test_pricing_of_an_unknown_model_suggests_close_names() -> None:
    result = CliRunner().invoke(cli, ["pricing", "claude-opus-5-6"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: unknown model 'claude-opus-5-6'; closest known: claude-opus-5-5, claude-opus-4-6, claude-opus-5"
    )
