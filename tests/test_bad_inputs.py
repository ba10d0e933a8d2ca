"""Every bad input the README's debugging table lists: one ``Error: …`` line and a non-zero exit (the hook and
the status line exit 0), never a traceback or a hang."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcp_router.cli import STDIN_TASK_BYTES, cli
from mcp_router.config import Config
from mcp_router.errors import StoreError
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report
from mcp_router.store import SCHEMA_VERSION, USAGE_COLUMNS, connect, transaction, upsert_usage

CATALOG = Catalog.load()
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _error(args: list[str], code: int = 1, **kwargs) -> str:
    """Run the CLI; assert the exit code and that stderr is exactly one ``Error:`` line; return it."""
    result = CliRunner().invoke(cli, args, **kwargs)
    assert result.exit_code == code, (result.output, result.exception)
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("Error: "), result.stderr
    assert [line for line in lines if "Error" in line] == lines[-1:], result.stderr  # one error, said last
    assert "Traceback" not in result.output
    return lines[-1]


def _run(args: list[str], timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcp_router", *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def _usage_row(n: int, at: datetime, model: str = "claude-opus-5-5") -> tuple:
    values = dict.fromkeys(USAGE_COLUMNS)
    values.update(message_id=f"m{n}", request_id="r", ts=at.timestamp(), model=model, session_id="s1",
                  project="p1", is_sidechain=0, input_tokens=1000, output_tokens=10, cache_read_tokens=0,
                  cache_creation_tokens=0, cache_creation_1h_tokens=0, total_tokens=1010, cost_usd=0.005)
    return tuple(values[c] for c in USAGE_COLUMNS)


def _ledger(db_path: Path, *days_ago: int) -> None:
    conn = connect(db_path)
    now = datetime.now(UTC)
    with transaction(conn):
        upsert_usage(conn, [_usage_row(n, now - timedelta(days=d)) for n, d in enumerate(days_ago)])
    conn.close()


# --- report periods and output -------------------------------------------------------------------------------

def test_output_into_a_missing_folder(db_path: Path, tmp_path: Path) -> None:
    line = _error(["report", "--db", str(db_path), "--no-ingest", "--format", "csv",
                   "--output", str(tmp_path / "nope" / "r.csv")])
    assert line == f"Error: --output: the folder {tmp_path / 'nope'} does not exist"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_output_to_a_full_disk(db_path: Path) -> None:
    line = _error(["report", "--db", str(db_path), "--no-ingest", "--format", "csv", "--output", "/dev/full"])
    assert line == "Error: cannot write /dev/full: No space left on device"


def test_until_far_ahead_means_up_to_today(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--format", "json",
                                      "--timezone", "UTC", "--until", "9999-12-31"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["until"] == datetime.now(UTC).date().isoformat()


def test_since_the_year_one_and_all_read_only_the_days_the_ledger_holds(db_path: Path) -> None:
    _ledger(db_path, 40, 3)
    first = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
    for period in (["--since", "0001-01-01"], ["--all"], ["--since", "0001-01-01", "--until", "9999-12-31"]):
        result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--format", "json",
                                          "--timezone", "UTC", *period])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["since"] == first and report["totals"]["messages"] == 2
        assert len(report["daily"]) == 41


def test_a_long_period_within_the_data_is_kept_whole(db_path: Path) -> None:
    _ledger(db_path, 800)
    conn = connect(db_path)
    today = datetime.now(UTC).date()
    spec = ReportSpec.parse((today - timedelta(days=500)).isoformat(), None, "UTC", "model")
    assert build_report(conn, spec, CATALOG, Config())["since"] == spec.since.isoformat()


def test_all_with_other_periods_is_refused(db_path: Path) -> None:
    line = _error(["report", "--db", str(db_path), "--all", "--week"], code=2)
    assert "--week, --all and --since/--until each choose the period" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-by", ""], "Error: --group-by: empty key (use a comma list of day, week, month"),
        (["--group-by", "model,"], "Error: --group-by: empty key"),
        (["--group-by", "model,model"], "Error: --group-by: 'model' is given twice"),
        (["--group-by", "modle"], "Error: --group-by: unknown key 'modle'"),
        (["--timezone", ""], "Error: --timezone is empty: give an IANA name"),
        (["--timezone", "Mars/Olympus"], "Error: unknown time zone 'Mars/Olympus'"),
        (["--since", "2026-13-01"], "Error: --since: expected a date as YYYY-MM-DD, got '2026-13-01'"),
        (["--since", "2026-11-20", "--until", "2026-11-10"], "Error: --since 2026-11-20 is after --until 2026-11-10"),
    ],
)
def test_bad_report_arguments(db_path: Path, args: list[str], message: str) -> None:
    assert _error(["report", "--db", str(db_path), "--no-ingest", *args]).startswith(message)


def test_open_needs_html_and_a_browser(db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = _error(["report", "--db", str(db_path), "--no-ingest", "--open"], code=2)
    assert line.startswith("Error: --open opens the HTML report: add --format html")
    monkeypatch.setenv("BROWSER", "false")  # a browser command that fails: as good as none
    out = tmp_path / "r.html"
    line = _error(["report", "--db", str(db_path), "--no-ingest", "--format", "html", "--output", str(out), "--open"])
    assert line == f"Error: no web browser found to open {out}: open the file yourself"
    assert out.read_text().startswith("<!doctype html>")
    # a fresh process: webbrowser remembers the browsers it found
    result = _run(["report", "--db", str(db_path), "--no-ingest", "--format", "html", "--open"],
                  env={**os.environ, "BROWSER": "true"})
    assert result.returncode == 0 and "wrote " in result.stderr and ".html" in result.stderr


# --- the database ----------------------------------------------------------------------------------------------

def test_db_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    line = _error(["budget", "--db", str(tmp_path / "file" / "usage.db")])
    assert line.startswith(f"Error: cannot open the database {tmp_path / 'file' / 'usage.db'}: ")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="no /proc")
def test_db_where_no_file_can_be_created_is_one_line() -> None:
    line = _error(["budget", "--db", "/proc/usage.db"])  # root cannot create a file in /proc either
    assert line == ("Error: cannot open the database /proc/usage.db: unable to open database file (check the"
                    " file's and its folder's permissions)")


@pytest.mark.skipif(IS_ROOT, reason="root writes read-only files")
def test_read_only_db_is_one_line(db_path: Path) -> None:
    connect(db_path).close()
    for path in db_path.parent.glob("usage.db*"):
        path.chmod(0o444)
    db_path.parent.chmod(0o555)
    try:
        line = _error(["budget", "--db", str(db_path), "--set-monthly", "5"])
    finally:
        db_path.parent.chmod(0o755)
    assert "permissions" in line or "readonly" in line


def test_corrupt_db_is_one_line(db_path: Path) -> None:
    db_path.write_bytes(b"this is not SQLite" * 200)
    line = _error(["report", "--db", str(db_path), "--no-ingest"])
    assert line == (f"Error: cannot use the database {db_path}: file is not a database (move it aside and a new one"
                    " is created; the transcripts can be ingested again)")


def test_newer_schema_is_refused_naming_both_versions(db_path: Path) -> None:
    connect(db_path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    line = _error(["budget", "--db", str(db_path)])
    assert line == (f"Error: the database {db_path} has schema version {SCHEMA_VERSION + 3}, newer than this"
                    f" mcp-router 0.1.0 knows (version {SCHEMA_VERSION}): upgrade mcp-router, or use another --db")
    with pytest.raises(StoreError):
        connect(db_path)
    hook = _run(["hook", "--db", str(db_path)], input="{}")  # the hook says so on stderr and exits 0
    assert hook.returncode == 0 and "newer than this mcp-router" in hook.stderr


# --- serve ------------------------------------------------------------------------------------------------------

def test_serve_port_out_of_range() -> None:
    line = _error(["serve", "--transport", "streamable-http", "--port", "99999"], code=2)
    assert line.startswith("Error: Invalid value for '--port': 99999 is not in the range 1<=x<=65535.")


# --- transcripts -----------------------------------------------------------------------------------------------

def test_fifo_and_folders_named_jsonl_do_not_hang_ingest_or_report(tmp_path: Path, db_path: Path) -> None:
    project = tmp_path / "projects" / "p"
    project.mkdir(parents=True)
    os.mkfifo(project / "stuck.jsonl")
    (project / "folder.jsonl").mkdir()
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(tmp_path)}
    for command in (["ingest"], ["report", "--format", "json"]):
        result = _run([*command, "--db", str(db_path)], env=env)
        assert result.returncode == 0, result.stderr
        assert f"mcp-router: skipped {project / 'stuck.jsonl'}: not a regular file; its usage is not counted" \
            in result.stderr.splitlines()
        assert f"mcp-router: skipped {project / 'folder.jsonl'}: not a regular file" in result.stderr


def test_hook_with_dev_zero_as_transcript_is_skipped(db_path: Path) -> None:
    payload = json.dumps({"session_id": "s", "transcript_path": "/dev/zero", "hook_event_name": "Stop"})
    result = _run(["hook", "--db", str(db_path)], input=payload, timeout=5)
    assert result.returncode == 0 and result.stdout == ""


@pytest.mark.skipif(IS_ROOT, reason="root reads unreadable files")
def test_unreadable_transcript_is_named(tmp_path: Path, db_path: Path) -> None:
    project = tmp_path / "projects" / "p"
    project.mkdir(parents=True)
    secret = project / "s.jsonl"
    secret.write_text("{}\n")
    secret.chmod(0)
    result = CliRunner().invoke(cli, ["ingest", "--db", str(db_path), "--projects-dir", str(tmp_path / "projects")])
    assert result.exit_code == 0
    assert f"mcp-router: skipped {secret}: Permission denied; its usage is not counted" in result.stderr


def test_malformed_lines_are_summarised_per_file(tmp_path: Path, db_path: Path) -> None:
    project = tmp_path / "projects" / "p"
    project.mkdir(parents=True)
    (project / "junk.jsonl").write_bytes(b"\n".join([b"not json"] * 753 + [b"\x00\xff" * 10]) + b"\n")
    result = CliRunner().invoke(cli, ["ingest", "--db", str(db_path), "--projects-dir", str(tmp_path / "projects")])
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"mcp-router: {project / 'junk.jsonl'}: skipped 754 malformed lines (first: line 1: not a JSON object)"]
    assert "754 malformed lines skipped" in result.stdout


def test_report_without_a_projects_folder_says_so(tmp_path: Path, db_path: Path) -> None:
    result = _run(["report", "--db", str(db_path)], env={**os.environ, "CLAUDE_CONFIG_DIR": str(tmp_path / "none")})
    assert result.returncode == 0
    assert (f"mcp-router: no Claude Code projects folder at {tmp_path / 'none' / 'projects'} (set CLAUDE_CONFIG_DIR"
            " or pass --projects-dir); reporting on the database as it is") in result.stderr


# --- configuration --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MCP_ROUTER_MONTHLY_CAP_USD": "abc"},
         "Error: MCP_ROUTER_MONTHLY_CAP_USD: monthly_cap_usd: expected a number, got 'abc'"),
        ({"MCP_ROUTER_MONTHLY_CAP_USD": "nan"},
         "Error: MCP_ROUTER_MONTHLY_CAP_USD: monthly_cap_usd: expected a finite number, got nan"),
        ({"MCP_ROUTER_MONTHLY_CAP_USD": "1e308"},
         "Error: MCP_ROUTER_MONTHLY_CAP_USD: monthly_cap_usd: at most 1,000,000,000 USD, got '1e308' (0 = no cap)"),
        ({"MCP_ROUTER_MAIN_MODEL": "gpt-5"}, "Error: MCP_ROUTER_MAIN_MODEL: main_model: unknown model 'gpt-5'"),
        ({"MCP_ROUTER_DELEGATE_MODEL": "claude-haiku-9"},
         "Error: MCP_ROUTER_DELEGATE_MODEL: delegate_model: unknown model 'claude-haiku-9'; closest known:"),
        ({"MCP_ROUTER_CONFIG": "/nonexistent/config.toml"},
         "Error: MCP_ROUTER_CONFIG /nonexistent/config.toml does not exist"),
        ({"MCP_ROUTER_CONFIG": "/"}, "Error: MCP_ROUTER_CONFIG / is a folder, not a file"),
    ],
)
def test_bad_environment_names_the_variable(db_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict,
                                             message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert _error(["budget", "--db", str(db_path)]).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("monthly_cap_usd = nan\n", "monthly_cap_usd: expected a finite number, got nan"),
        ("monthly_cap_usd = inf\n", "monthly_cap_usd: expected a finite number, got inf"),
        ("main_model = 'gpt-4o'\n", "main_model: unknown model 'gpt-4o' (see mcp-router pricing)"),
    ],
)
def test_bad_config_file_values(isolated_user: Path, db_path: Path, text: str, message: str) -> None:
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(text)
    assert _error(["budget", "--db", str(db_path)]) == f"Error: {config}: {message}"


def test_a_priced_override_makes_a_main_model_known(isolated_user: Path) -> None:
    config = isolated_user / ".config" / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("main_model = 'claude-next-1'\n[pricing.models.claude-next-1]\ninput = 1\noutput = 2\n"
                      "cache_read = 0.1\ncache_write_5m = 1.25\ncache_write_1h = 2\n")
    assert Config.load().main_model == "claude-next-1"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "-1"])
def test_budget_refuses_caps_that_are_not_money(db_path: Path, value: str) -> None:
    line = _error(["budget", "--db", str(db_path), "--set-monthly", value])
    assert line.startswith("Error: the monthly cap must be 0 (no cap) to 1,000,000,000 USD, got ")


def test_a_nan_cap_stored_by_an_older_version_is_an_error_not_no_cap(db_path: Path) -> None:
    connect(db_path).execute("INSERT INTO settings (key, value) VALUES ('monthly_cap_usd', 'nan')")
    line = _error(["budget", "--db", str(db_path)])
    assert line == ("Error: the stored monthly cap 'nan' is not a number of USD: set it again with"
                    " `mcp-router budget --set-monthly USD`")
    assert CliRunner().invoke(cli, ["budget", "--db", str(db_path), "--set-monthly", "5"]).exit_code == 0


@pytest.mark.parametrize(("cap", "shown"), [("12.5", "/$12.50"), ("0.05", "/$0.05 CAP REACHED"), ("100", "/$100")])
def test_statusline_shows_the_cap_to_the_cent(db_path: Path, cap: str, shown: str) -> None:
    _ledger(db_path, 0)  # $0.005 today, so a $0.05 cap is reached only with more: add a track_cost record
    conn = connect(db_path)
    conn.execute("INSERT INTO cost_records (ts, source, model, cost_usd, state) VALUES (strftime('%s','now'),"
                 " 'track_cost', 'claude-opus-5-5', 0.1, 'settled')")
    assert CliRunner().invoke(cli, ["budget", "--db", str(db_path), "--set-monthly", cap]).exit_code == 0
    result = _run(["statusline", "--db", str(db_path)], input="{}")
    assert result.returncode == 0 and result.stdout.strip().endswith("month $0.11" + shown)


# --- empty and unknown inputs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["", "   ", "\x00", "\u200b\t\x7f"])  # nothing to read: no sure Haiku for NUL
def test_route_an_empty_task(db_path: Path, task: str) -> None:
    assert _error(["route", "--db", str(db_path), task], code=2).startswith("Error: TASK is empty")


def test_route_reads_the_task_from_standard_input_after_a_dash(db_path: Path) -> None:
    routed = _run(["route", "--db", str(db_path), "--json", "-"], input="summarize this build log\n")
    assert routed.returncode == 0 and json.loads(routed.stdout)["tier"] == "haiku", routed.stderr
    assert _error(["route", "--db", str(db_path), "-"], code=2, input="  \n").startswith("Error: TASK is empty")
    closed = _run(["route", "--db", str(db_path), "-"], preexec_fn=lambda: os.close(0))  # `route - <&-`
    assert closed.returncode == 2 and "no standard input" in closed.stderr and "Traceback" not in closed.stderr
    endless = subprocess.run([sys.executable, "-m", "mcp_router", "route", "--db", str(db_path), "-"],
                             input=b"x" * (STDIN_TASK_BYTES + 1), capture_output=True, timeout=60)
    assert endless.returncode == 2 and b"over 64 MiB" in endless.stderr and b"Traceback" not in endless.stderr


@pytest.mark.parametrize(("category", "message"), [
    ("nosuchcategory", "Error: unknown category 'nosuchcategory'; known: "),
    ("summarise", "Error: unknown category 'summarise'; did you mean summarize"),
    ("", "Error: unknown category ''"),
])
def test_feedback_reset_of_an_unknown_category(db_path: Path, category: str, message: str) -> None:
    assert _error(["feedback", "--db", str(db_path), "--reset", category]).startswith(message)


def test_feedback_reset_of_a_known_category(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["feedback", "--db", str(db_path), "--reset", "summarize"])
    assert result.exit_code == 0 and result.stdout == "summarize: had no override\n"


# --- a newcomer's first report ---------------------------------------------------------------------------------

def test_empty_period_says_when_the_latest_activity_was(db_path: Path) -> None:
    _ledger(db_path, 30)
    latest = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--timezone", "UTC"])
    assert result.exit_code == 0
    assert (f"The latest activity was on {latest}: see it with `mcp-router report --since {latest}`, or everything"
            " with `mcp-router report --all`.") in result.stdout
    as_json = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest", "--format", "json",
                                       "--timezone", "UTC"])
    assert json.loads(as_json.stdout)["latest_activity"] == latest  # stdout stays valid JSON
    assert "The latest activity was on" in as_json.stderr


def test_empty_ledger_says_how_it_fills(db_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--no-ingest"])
    assert result.exit_code == 0 and "No Claude Code usage recorded yet" in result.stdout


# --- the as-routed what-if -------------------------------------------------------------------------------------

def test_as_routed_reprices_a_session_shorter_than_15_minutes(db_path: Path) -> None:
    conn = connect(db_path)
    at = datetime(2026, 11, 18, 10, 3, tzinfo=UTC)  # mid-slot: the prompt comes after the slot opens
    from mcp_router.ledger import PromptDecider

    conn.executemany("INSERT INTO prompts (uuid, session_id, ts, text, tier, category, confidence, chars)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     PromptDecider(conn).rows([("u1", "s1", at.timestamp(), "summarize last night's build log")]))
    with transaction(conn):
        upsert_usage(conn, [_usage_row(1, at + timedelta(minutes=2))])
    spec = ReportSpec.parse("2026-11-18", "2026-11-18", "UTC", "model", today=date(2026, 11, 30))
    routed = build_report(conn, spec, CATALOG, Config())["what_if"]
    assert routed["as_routed"]["responses"] == 1
    assert routed["as_routed_usd"] < routed["actual_usd"]  # repriced on Haiku


# --- tool arguments ----------------------------------------------------------------------------------------------

def test_tool_argument_errors_are_a_sentence(db_path: Path, tmp_path: Path) -> None:
    from mcp import Client

    from mcp_router.server import build_server

    async def calls() -> list[tuple[bool, str]]:
        async with Client(build_server(db_path, Config(), tmp_path)) as client:
            results = [await client.call_tool("route_model", args) for args in (
                {"task": "x", "context_tokens": -1}, {}, {"task": 5}, {"task": ""},
                {"task": "x", "context_tokens": "300000"}, {"task": "x", "context_tokens": True})]
            results.append(await client.call_tool("track_cost", {"model": "haiku", "input_tokens": -5,
                                                                 "output_tokens": 1.5}))
            results.append(await client.call_tool("rate_delegation", {"delegation_id": "d", "rating": "meh"}))
        return [(r.is_error, r.content[0].text) for r in results]

    texts = asyncio.run(calls())
    assert all(is_error for is_error, _ in texts)
    assert [text for _, text in texts] == [
        "route_model: `context_tokens` must be at least 0, got -1. Fix the arguments and call it again.",
        "route_model: `task` is required. Fix the arguments and call it again.",
        "route_model: `task` must be a string, got 5. Fix the arguments and call it again.",
        "Error executing tool route_model: the task is empty: describe the work to route, e.g. 'summarise this build"
        " log'",
        "route_model: `context_tokens` must be a whole number (a JSON integer, not a string or boolean), got '300000'."
        " Fix the arguments and call it again.",
        "route_model: `context_tokens` must be a whole number (a JSON integer, not a string or boolean), got True."
        " Fix the arguments and call it again.",
        "track_cost: `input_tokens` must be at least 0, got -5; `output_tokens` must be a whole number, got 1.5."
        " Fix the arguments and call it again.",
        "rate_delegation: `rating` must be one of 'good' or 'bad', got 'meh'. Fix the arguments and call it again.",
    ]
    assert not any("pydantic" in text or "http" in text for _, text in texts)


def test_corrupt_database_in_the_server_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    db.write_bytes(b"garbage" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        from mcp_router.server import build_server

        build_server(db, Config(), tmp_path)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no /proc")
def test_a_file_listed_as_empty_is_not_read(db_path: Path) -> None:
    from mcp_router.ledger import ingest_file

    summary = ingest_file(connect(db_path), Path("/proc/self/status"), CATALOG)  # size 0, yet it has lines
    assert summary.lines == 0 and summary.bytes_read == 0
