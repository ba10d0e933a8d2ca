from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.ledger import PromptDecider
from mcp_router.pricing import Catalog, Usage
from mcp_router.projects import choose, encode, project_paths, short_path
from mcp_router.report import ReportSpec, _ratio, build_report, format_share, plural, render
from mcp_router.store import USAGE_COLUMNS, connect, transaction, upsert_usage

from .conftest import REAL_CLAUDE_CODE

CATALOG = Catalog.load()
UTC = ZoneInfo("UTC")


def _insert(conn, events: list[dict]) -> None:
    rows = []
    for n, event in enumerate(events):
        usage = Usage(event.get("input", 100), event.get("output", 10), event.get("read", 0), event.get("write", 0))
        values = dict.fromkeys(USAGE_COLUMNS)
        values.update(
            message_id=f"m{n}", request_id="r", ts=event["at"].timestamp(),
            model=event.get("model", "claude-opus-5-5"),
            session_id=event.get("session", "s1"), project=event.get("project", "p1"), cwd=event.get("cwd"),
            is_sidechain=0, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_creation_tokens=usage.cache_creation_tokens, cache_creation_1h_tokens=0, total_tokens=0,
            cost_usd=CATALOG.cost(event.get("model", "claude-opus-5-5"), usage),
        )
        rows.append(tuple(values[c] for c in USAGE_COLUMNS))
    with transaction(conn):
        upsert_usage(conn, rows)


def _report(conn, since: str, until: str, tz: str, group_by: str) -> dict:
    spec = ReportSpec.parse(since, until, tz, group_by)
    return build_report(conn, spec, CATALOG, Config.load())


def test_groups_are_exact_and_unknown_models_are_unpriced(db_path: Path) -> None:
    conn = connect(db_path)
    at = datetime(2026, 11, 18, 12, tzinfo=UTC)
    _insert(conn, [
        {"at": at, "input": 1_000_000},
        {"at": at, "model": "claude-haiku-5-5", "output": 1_000_000},
        {"at": at, "model": "claude-unknown-1", "input": 5},
    ])
    report = _report(conn, "2026-11-16", "2026-11-22", "UTC", "model")
    groups = {g["model"]: g for g in report["groups"]}
    assert groups["claude-opus-5-5"]["cost_usd"] == pytest.approx(4.0 + 10 * 20 / 1e6, abs=1e-9)
    assert groups["claude-haiku-5-5"]["cost_usd"] == pytest.approx(0.5 + 100 * 0.1 / 1e6, abs=1e-9)
    assert groups["claude-unknown-1"]["unpriced_messages"] == 1 and groups["claude-unknown-1"]["cost_usd"] is None
    assert report["unpriced_models"] == {"claude-unknown-1": 1}
    assert report["totals"]["messages"] == 3 and report["totals"]["unpriced_messages"] == 1
    assert report["totals"]["input_tokens"] == 1_000_000 + 100 + 5
    assert set(report) >= {"since", "until", "timezone", "group_by", "totals", "groups", "unpriced_models",
                           "delegations", "budget", "recommendations"}
    assert report["what_if"]["all_opus_usd"] > report["what_if"]["all_haiku_usd"]


@pytest.mark.parametrize(
    ("tz", "utc_moment", "expected_day", "expected_week"),
    [
        ("UTC", datetime(2026, 11, 15, 23, 59), "2026-11-15", "2026-11-09"),  # Sunday: week of Monday 9th
        ("UTC", datetime(2026, 11, 16, 0, 0), "2026-11-16", "2026-11-16"),
        ("Asia/Tokyo", datetime(2026, 11, 15, 15, 0), "2026-11-16", "2026-11-16"),  # +9: already Monday
        ("Asia/Tokyo", datetime(2026, 11, 15, 14, 59), "2026-11-15", "2026-11-09"),
        # Los Angeles leaves DST on 2026-11-01 at 09:00 UTC: before, -7; after, -8
        ("America/Los_Angeles", datetime(2026, 11, 1, 6, 59), "2026-10-31", "2026-10-26"),
        ("America/Los_Angeles", datetime(2026, 11, 1, 7, 0), "2026-11-01", "2026-10-26"),
        ("America/Los_Angeles", datetime(2026, 11, 2, 7, 59), "2026-11-01", "2026-10-26"),
        ("America/Los_Angeles", datetime(2026, 11, 2, 8, 0), "2026-11-02", "2026-11-02"),
    ],
)
def test_day_and_week_boundaries_in_any_time_zone(db_path: Path, tz: str, utc_moment: datetime,
                                                  expected_day: str, expected_week: str) -> None:
    conn = connect(db_path)
    _insert(conn, [{"at": utc_moment.replace(tzinfo=UTC)}])
    report = _report(conn, "2026-10-20", "2026-11-30", tz, "week,day")
    assert [(g["week"], g["day"]) for g in report["groups"]] == [(expected_week, expected_day)]


def test_period_is_inclusive_in_the_report_time_zone(db_path: Path) -> None:
    conn = connect(db_path)
    _insert(conn, [{"at": datetime(2026, 11, 22, 23, 30, tzinfo=UTC)},  # 2026-11-23 in Tokyo
                   {"at": datetime(2026, 11, 15, 16, 0, tzinfo=UTC)}])  # 2026-11-16 01:00 in Tokyo
    report = _report(conn, "2026-11-16", "2026-11-22", "Asia/Tokyo", "day")
    assert [g["day"] for g in report["groups"]] == ["2026-11-16"]
    assert len(report["daily"]) == 7


def test_formats(db_path: Path) -> None:
    conn = connect(db_path)
    _insert(conn, [{"at": datetime(2026, 11, 18, 12, tzinfo=UTC), "project": "a"},
                   {"at": datetime(2026, 11, 19, 12, tzinfo=UTC), "project": "b"}])
    report = _report(conn, "2026-11-16", "2026-11-22", "UTC", "project,day")
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [(r["project"], r["day"]) for r in rows] == [("a", "2026-11-18"), ("b", "2026-11-19")]
    assert float(rows[0]["cost_usd"]) == pytest.approx(report["groups"][0]["cost_usd"])
    markdown = render(report, "markdown")
    assert "| project | day |" in markdown and "| a | 2026-11-18 |" in markdown
    html = render(report, "html")
    assert html.startswith("<!doctype html>") and "<svg" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert json.loads(render(report, "json"))["groups"] == json.loads(json.dumps(report["groups"]))


def test_bad_options_give_one_line_errors(db_path: Path) -> None:
    runner = CliRunner()
    for args, message in [
        (["--timezone", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["--since", "2026-13-01"], "--since: expected a date as YYYY-MM-DD"),
        (["--group-by", "model,colour"], "--group-by: unknown key 'colour'"),
        (["--since", "2026-11-22", "--until", "2026-11-01"], "is after --until"),
    ]:
        result = runner.invoke(cli, ["report", "--db", str(db_path), "--no-ingest", *args])
        assert result.exit_code != 0 and message in result.output, result.output


def test_report_ingests_the_default_projects_folder_first(isolated_user: Path, db_path: Path) -> None:
    shutil.copytree(REAL_CLAUDE_CODE / "projects", isolated_user / ".claude" / "projects")
    result = CliRunner().invoke(cli, ["report", "--db", str(db_path), "--since", "2026-11-22", "--until",
                                      "2026-11-22", "--timezone", "UTC", "--format", "json", "--group-by",
                                      "session"], catch_exceptions=False)
    report = json.loads(result.output)
    costs = {g["session"]: g["cost_usd"] for g in report["groups"]}
    assert costs["105e9238-8621-423b-8bbc-0d1c9c659f0a"] == pytest.approx(0.0628538, abs=1e-6)
    assert costs["73ecb4c8-90a6-4794-a251-1990ae699330"] == pytest.approx(0.041268, abs=1e-6)


def test_statusline_prints_one_line_and_never_fails(db_path: Path, tmp_path: Path) -> None:
    conn = connect(db_path)
    _insert(conn, [{"at": datetime.now(UTC), "input": 1_000_000}])
    env = {**os.environ, "MCP_ROUTER_DB": str(db_path)}
    ok = subprocess.run([sys.executable, "-m", "mcp_router", "statusline"], input='{"cost": {"total_cost_usd": 1.5}}',
                        capture_output=True, text=True, env=env, timeout=30)
    assert ok.returncode == 0 and ok.stdout.strip().startswith("session $1.50 · today $4.00")
    broken = subprocess.run([sys.executable, "-m", "mcp_router", "statusline", "--db", str(tmp_path)],
                            input="not json", capture_output=True, text=True, timeout=30)
    assert broken.returncode == 0 and broken.stdout.strip() == "mcp-router: no data"


def _two_turns(conn) -> None:
    at = datetime(2026, 11, 18, 10, tzinfo=UTC)
    prompts = [("u1", "s1", at, "summarize last night's build log"),
               ("u2", "s1", at + timedelta(hours=1), "why do payments double-charge only in prod, intermittently?")]
    conn.executemany("INSERT INTO prompts (uuid, session_id, ts, text, tier, category, confidence, chars)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     PromptDecider(conn).rows([(u, s, t.timestamp(), text) for u, s, t, text in prompts]))
    _insert(conn, [
        {"at": at + timedelta(minutes=5), "input": 80_000, "output": 2_000},  # turn 1: a summary, so Haiku
        {"at": at + timedelta(minutes=65), "input": 10_000, "output": 3_000, "model": "claude-sonnet-5-5"},
        {"at": at + timedelta(minutes=70), "input": 50_000, "session": "s2"},  # no prompt known: as it was
    ])


def test_what_if_as_routed_prices_each_prompts_responses_on_the_routed_tier(db_path: Path) -> None:
    conn = connect(db_path)
    _two_turns(conn)
    report = _report(conn, "2026-11-18", "2026-11-18", "UTC", "model")
    haiku, opus = CATALOG.get("haiku"), CATALOG.get("opus")
    expected = (CATALOG.cost(haiku.id, Usage(80_000, 2_000)) + CATALOG.cost(opus.id, Usage(10_000, 3_000))
                + CATALOG.cost("claude-opus-5-5", Usage(50_000, 10)))
    what_if = report["what_if"]
    assert abs(what_if["as_routed_usd"] - expected) < 1e-6
    assert what_if["as_routed"] == {"prompts": 2, "responses": 2,
                                    "prompts_by_tier": {"haiku": 1, "sonnet": 0, "opus": 1}}
    assert "As the router would have routed it" in render(report, "markdown")


def test_projects_show_as_their_real_folder_in_every_format(db_path: Path, isolated_user: Path) -> None:
    conn = connect(db_path)
    at = datetime(2026, 11, 18, 12, tzinfo=UTC)
    api, tools = f"{isolated_user}/code/my-api", "/srv/tools.v2"
    _insert(conn, [
        # a session that moved to a subfolder still shows the folder it started in
        {"at": at, "project": encode(api), "cwd": f"{api}/src", "session": "a1", "input": 2_000_000},
        {"at": at, "project": encode(api), "cwd": api, "session": "a1"},
        {"at": at, "project": encode(tools), "cwd": tools, "session": "t1"},
        {"at": at, "project": "-old-transcript", "session": "o1"},  # no cwd recorded: the key is all there is
    ])
    report = _report(conn, "2026-11-16", "2026-11-22", "UTC", "project")
    assert [(g["project"], g["project_path"], g["project_key"]) for g in report["groups"]] == [
        ("-old-transcript", None, "-old-transcript"),
        ("/srv/tools.v2", "/srv/tools.v2", "-srv-tools-v2"),
        ("~/code/my-api", api, encode(api)),
    ]
    assert (report["top_sessions"][0]["project"], report["top_sessions"][0]["project_key"]) == (
        "~/code/my-api", encode(api))
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [(r["project"], r["project_path"]) for r in rows] == [
        ("-old-transcript", ""), ("/srv/tools.v2", "/srv/tools.v2"), ("~/code/my-api", api)]
    assert "| ~/code/my-api |" in render(report, "markdown")
    html = render(report, "html")
    assert "<td>~/code/my-api</td>" in html and "<td>/srv/tools.v2</td>" in html
    assert encode(api) not in html and encode(api) not in render(report, "markdown")
    table = CliRunner().invoke(cli, ["report", "--since", "2026-11-16", "--until", "2026-11-22", "--timezone", "UTC",
                                     "--group-by", "project", "--no-ingest", "--db", str(db_path)],
                               catch_exceptions=False).output
    assert "~/code/my-api" in table and encode(api) not in table


def test_short_paths_keep_every_folder_distinct() -> None:
    assert short_path("/home/me/code/api", home="/home/me") == "~/code/api"
    assert short_path("/home/me", home="/home/me/") == "~"
    assert short_path("/home/meow/x", home="/home/me") == "~meow/x"  # another user's home, not a prefix of mine
    assert short_path("/Users/alice/code/api", home="/home/me") == "/Users/alice/code/api"  # not ~alice: a Linux one
    assert short_path("/Users/alice/code/api", home="/Users/me") == "~alice/code/api"
    assert short_path("/srv/app", home="/home/me") == "/srv/app"
    assert choose("-home-me-a-b", ["/home/me/a-b/sub", "/home/me/a/b", "/home/me/a-b"]) == "/home/me/a-b"
    assert choose("-gone", ["/x/yy", "/x/y"]) == "/x/y"


def test_piped_table_sizes_to_its_content_and_small_shares_are_not_zero(db_path: Path) -> None:
    conn = connect(db_path)
    at = datetime(2026, 11, 18, 12, tzinfo=UTC)
    session = "105e9238-8621-423b-8bbc-0d1c9c659f0a"
    _insert(conn, [{"at": at, "input": 10_000_000, "session": session, "project": "-a-very-long-project-folder-name"},
                   {"at": at, "model": "claude-haiku-5-5", "input": 1_000, "session": session,
                    "project": "-a-very-long-project-folder-name"}])
    result = CliRunner().invoke(cli, ["report", "--since", "2026-11-16", "--until", "2026-11-22", "--timezone",
                                      "UTC", "--group-by", "project,model,session,branch", "--no-ingest",
                                      "--db", str(db_path)], catch_exceptions=False)
    rows = [line for line in result.output.splitlines() if session in line]
    assert len(rows) == 2 and all("-a-very-long-project-folder-name" in row for row in rows)  # no row wraps
    assert max(len(line) for line in result.output.splitlines()) > 80
    assert rows[0].rstrip().endswith("<1%") and rows[1].rstrip().endswith(">99%")  # haiku, then opus
    assert "1 response," not in result.output and "2 responses," in result.output


def test_shares_and_counts_read_as_people_write_them() -> None:
    assert [format_share(s) for s in (0.0, 0.0001, 0.004, 0.005, 0.5, 0.994, 0.996, 1.0, None)] == [
        "0%", "<1%", "<1%", "0%", "50%", "99%", ">99%", "100%", "—"]
    assert (plural(1, "prompt"), plural(2, "prompt"), plural(1_000, "delegation")) == (
        "1 prompt", "2 prompts", "1,000 delegations")


@given(st.floats(min_value=1e-12, max_value=1e9), st.floats(min_value=1e-12, max_value=1e9))
def test_a_share_reads_zero_or_whole_only_when_it_is(part: float, rest: float) -> None:
    whole = part + rest
    shown = format_share(_ratio(part, whole))
    assert shown not in ("0%", "100%") or (part / whole == 0 or part / whole == 1)
    assert format_share(_ratio(whole, whole)) == "100%"


# The review of issue 16 (report half).
AT = datetime(2026, 11, 18, 12, tzinfo=UTC)


def _week_report(db_path: Path, group_by: str = "project") -> dict:
    return build_report(connect(db_path), ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", group_by),
                        Catalog.load(), Config.load())


def _week_report(db_path: Path, group_by: str = "project") -> dict:
    return build_report(connect(db_path), ReportSpec.parse("2026-11-16", "2026-11-22", "UTC", group_by),
                        Catalog.load(), Config.load())


def test_two_users_folders_never_shorten_alike() -> None:
    # projects.short_path promises "two folders never look alike"; a team ledger with a Mac and a Linux user
    # of the same name shows both as "~bob/api" (seen in table, CSV, Markdown and HTML).
    assert short_path("/Users/bob/api", home="/home/me") != short_path("/home/bob/api", home="/home/me")


def test_cost_by_project_view_shows_the_same_folder_as_the_week_report(db_path: Path) -> None:
    # The view's SQL encoding replaces only / . _ and space; Claude Code (and projects.encode) replace every
    # non-alphanumeric character. A session started in a folder with "+" (or "@", "~", non-ASCII...) that
    # later ran in a shorter folder: the report shows the starting folder, Datasette's view the other one.
    start = "/home/me/c++/app"
    _insert(connect(db_path), [
        {"at": AT, "project": encode(start), "cwd": start},
        {"at": AT, "project": encode(start), "cwd": "/home/me/x"},
    ])
    report = _week_report(db_path)
    assert report["groups"][0]["project_path"] == start
    conn = connect(db_path)
    (view_path,) = conn.execute("SELECT project_path FROM cost_by_project").fetchone()
    assert view_path == start


def test_html_report_says_how_many_responses_had_no_price(db_path: Path) -> None:
    # Failed on the issue-16 merge (the page showed "Spent $x" with no hint that 9 of 10 responses had no
    # price); passes since main merged issue-12 ("unpriced everywhere"). Kept as a regression test.
    _insert(connect(db_path), [{"at": AT}, *({"at": AT, "model": "claude-unknown-9"} for _ in range(9))])
    page = render(_week_report(db_path, "model"), "html")
    assert "unpriced" in page or "no price" in page


def test_markdown_table_survives_a_pipe_in_a_project_path(db_path: Path) -> None:
    path = "/home/me/a|b"
    _insert(connect(db_path), [{"at": AT, "project": encode(path), "cwd": path}])
    markdown = render(_week_report(db_path), "markdown").splitlines()
    lines = [line for line in markdown if line.startswith("| ~")]
    header = next(line for line in markdown if line.startswith("| project"))
    assert lines and lines[0].count("|") - lines[0].count("\\|") == header.count("|")


def test_markdown_does_not_pass_html_in_a_project_path_through(db_path: Path) -> None:
    # Many Markdown renderers pass inline HTML through: a folder named <script>... lands in the page as code.
    path = "/home/me/<img src=x onerror=alert(1)>"
    _insert(connect(db_path), [{"at": AT, "project": encode(path), "cwd": path}])
    assert "<img" not in render(_week_report(db_path), "markdown")


def test_encode_matches_claude_code_for_long_paths_and_emoji() -> None:
    # Claude Code 2.1.328 (bin/claude.exe): w(e)=e.replace(/[^a-zA-Z0-9]/g,"-") on UTF-16 code units, and
    # rL(e) cuts a key longer than 200 to slice(0,200) + "-" + base-36 hash. projects.encode does neither, so
    # choose() cannot recognise the starting folder of such a project and falls back to the shortest cwd.
    assert encode("/a/\N{UNICORN FACE}") == "-a---"
    long = "/home/me/" + "deep-folder/" * 20 + "app"
    key = encode(long)[:200] + "-1x2y3z"  # the real key's shape; the hash suffix is Claude Code's
    assert choose(key, [long, "/home/me"]) == long


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
                .map(lambda tail: "/home/me/" + tail), min_size=1, max_size=4),
       st.booleans(), st.integers(0, 3))
def test_project_folders_view_chooses_as_projects_does(db_path: Path, paths: list[str], long: bool,
                                                        start: int) -> None:
    # The Datasette view spells projects.encode out in SQL: both must pick the same folder for every key,
    # including Claude Code's cut keys over 200 characters and emoji (two UTF-16 units).
    paths = [("/x" * 110 if long else "") + p for p in paths]
    key = encode(paths[start % len(paths)])
    key = key[:200] + "-1x2y3z" if len(key) > 200 else key
    conn = connect(db_path)
    with transaction(conn):
        conn.execute("DELETE FROM project_paths")
        conn.executemany("INSERT OR IGNORE INTO project_paths VALUES (?, ?)", [(key, p) for p in paths])
    assert dict(conn.execute("SELECT project, path FROM project_folders").fetchall()) == project_paths(conn)
