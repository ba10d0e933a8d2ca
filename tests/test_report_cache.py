"""A report with nothing new is given from the cache beside the database, and only while nothing it was built
from has changed: new transcript lines, another process's write, another period, another configuration."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.corpus import generate
from mcp_router import report as report_module
from mcp_router.cli import cli
from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.report import ReportSpec, build_report, render
from mcp_router.store import connect

PERIOD = ["--since", "2026-11-01", "--until", "2026-11-30", "--timezone", "UTC"]


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    folder = tmp_path / "projects"
    generate(folder, sessions=6, turns=5, filler=100, seed=3)
    return folder


def _report(db_path: Path, projects: Path, *extra: str) -> dict:
    result = CliRunner().invoke(cli, ["report", "--format", "json", "--db", str(db_path), "--projects-dir",
                                      str(projects), *PERIOD, *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _built(db_path: Path, *group_by: str) -> dict:
    """The report built afresh, as the JSON the command prints."""
    spec = ReportSpec.parse("2026-11-01", "2026-11-30", "UTC", ",".join(group_by) or "model")
    conn = connect(db_path)
    try:
        return json.loads(render(build_report(conn, spec, Catalog.load(), Config()), "json"))
    finally:
        conn.close()


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    builds: list[int] = []
    original = report_module.build_report

    def counting(*args: object, **kwargs: object) -> dict:
        builds.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(report_module, "build_report", counting)
    return builds


def test_a_second_report_with_nothing_new_comes_from_the_cache_and_is_the_same(
        db_path: Path, projects: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = _count_builds(monkeypatch)
    first = _report(db_path, projects)
    cache = Path(str(db_path) + ".report-cache")
    assert cache.exists() and stat.S_IMODE(cache.stat().st_mode) == 0o600
    second = _report(db_path, projects)
    assert len(builds) == 1  # the cold run built it; the warm run read it
    assert first["totals"]["messages"] > 20
    without_budget = {k: v for k, v in second.items() if k != "budget"}
    assert without_budget == {k: v for k, v in _built(db_path).items() if k != "budget"}
    assert second == first or second["budget"]["projected_month_usd"] != first["budget"]["projected_month_usd"]


def test_new_transcript_lines_another_writer_or_another_period_build_it_again(
        db_path: Path, projects: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = _count_builds(monkeypatch)
    first = _report(db_path, projects)
    # A new session: the warm run ingests it, so the report must include it.
    generate(projects, sessions=1, turns=3, filler=100, seed=99)
    second = _report(db_path, projects)
    assert second["totals"]["messages"] > first["totals"]["messages"]
    assert len(builds) == 2
    # Another process writes (the server records a delegation): the database changed, so no cached report.
    other = connect(db_path)
    other.execute("DELETE FROM usage_events WHERE id = (SELECT MIN(id) FROM usage_events)")
    other.close()
    third = _report(db_path, projects)
    assert len(builds) == 3 and third["totals"]["messages"] == second["totals"]["messages"] - 1
    assert {k: v for k, v in third.items() if k != "budget"} == {
        k: v for k, v in _built(db_path).items() if k != "budget"}
    grouped = _report(db_path, projects, "--group-by", "day,model")
    assert len(builds) == 4 and grouped["group_by"] == ["day", "model"]
    _report(db_path, projects, "--group-by", "day,model")
    assert len(builds) == 4
    # Another configuration (here, prices, which the what-if reads) is another report.
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[pricing.models.claude-haiku-5-5]\ninput = 9.0\noutput = 9.0\n')
    _report(db_path, projects, "--group-by", "day,model")
    assert len(builds) == 5


def test_a_damaged_cache_is_built_again(db_path: Path, projects: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = _count_builds(monkeypatch)
    first = _report(db_path, projects)
    cache = Path(str(db_path) + ".report-cache")
    key = cache.read_bytes().split(b"\n", 1)[0]
    cache.write_bytes(key + b"\n{not json")
    again = _report(db_path, projects)
    assert len(builds) == 2 and again["totals"] == first["totals"]
