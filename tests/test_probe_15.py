"""Probe of the report cache (#15): ways to make `mcp-router report` give a stale or foreign report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.corpus import generate
from mcp_router.cli import cli
from mcp_router.store import connect

from .test_report_cache import PERIOD, _report


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    folder = tmp_path / "projects"
    generate(folder, sessions=3, turns=4, filler=50, seed=5)
    return folder


def _cache(db_path: Path) -> Path:
    return Path(str(db_path) + ".report-cache")


def test_a_database_changed_in_place_with_its_size_and_mtime_restored_is_not_served_stale(
        db_path: Path, projects: Path) -> None:
    """`cp -p backup.db usage.db` keeps the inode; `touch -r` gives back the time: only ctime tells."""
    first = _report(db_path, projects)
    before = os.stat(db_path)
    other = connect(db_path)
    other.execute("DELETE FROM usage_events WHERE id = (SELECT MIN(id) FROM usage_events)")
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    assert not os.path.exists(f"{db_path}-wal") or not os.path.getsize(f"{db_path}-wal")
    os.utime(db_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(db_path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert _report(db_path, projects)["totals"]["messages"] == first["totals"]["messages"] - 1


def test_the_cache_file_holds_no_secret_from_the_config(db_path: Path, projects: Path) -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "mcp-router" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('team_db_url = "postgresql://me:hunter2-s3cret@db.example/team"\n')
    _report(db_path, projects)
    assert b"hunter2-s3cret" not in _cache(db_path).read_bytes()


def _forged(db_path: Path, messages: int) -> bytes:
    """The cache as it is, with other totals in its body."""
    head, body = _cache(db_path).read_bytes().split(b"\n", 1)
    report = json.loads(body)
    report["totals"]["messages"] = messages
    return head + b"\n" + json.dumps(report).encode()


@pytest.mark.parametrize("how", ["world-writable", "symlink"])
def test_a_cache_others_could_have_written_is_not_believed(db_path: Path, projects: Path, tmp_path: Path,
                                                           how: str) -> None:
    first = _report(db_path, projects)
    forged = _forged(db_path, 999_999)
    cache = _cache(db_path)
    if how == "world-writable":
        cache.write_bytes(forged)
        cache.chmod(0o666)
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.write_bytes(forged)
        elsewhere.chmod(0o600)
        cache.unlink()
        cache.symlink_to(elsewhere)
    assert _report(db_path, projects)["totals"] == first["totals"]


def test_a_cache_whose_body_does_not_match_its_head_is_built_again(db_path: Path, projects: Path) -> None:
    """A damaged body that still parses (or nests too deep to parse) must not be printed or crash the report."""
    first = _report(db_path, projects)
    head = _cache(db_path).read_bytes().split(b"\n", 1)[0]
    _cache(db_path).write_bytes(_forged(db_path, 5))
    assert _report(db_path, projects)["totals"] == first["totals"]
    _cache(db_path).write_bytes(head + b"\n" + b"[" * 100_000)
    assert _report(db_path, projects)["totals"] == first["totals"]


def test_writing_the_cache_does_not_follow_a_planted_link(db_path: Path, projects: Path, tmp_path: Path) -> None:
    """The temporary file's name is predictable (the pid): a link planted there must not be written through."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    Path(f"{_cache(db_path)}.{os.getpid()}").symlink_to(victim)
    _report(db_path, projects)
    assert victim.read_text() == "keep me"
    assert not _cache(db_path).is_symlink() and _cache(db_path).stat().st_mode & 0o077 == 0


def test_a_cache_that_cannot_be_written_still_gives_the_report(db_path: Path, projects: Path) -> None:
    _cache(db_path).mkdir()
    first = _report(db_path, projects)
    assert first["totals"]["messages"] > 0 and _cache(db_path).is_dir()
    assert _report(db_path, projects)["totals"] == first["totals"]


def test_a_track_cost_record_and_its_void_show_at_once_after_a_kept_report(db_path: Path, projects: Path) -> None:
    from mcp_router.budget import record_cost
    from mcp_router.config import Config
    from mcp_router.pricing import Catalog, Usage

    first = _report(db_path, projects)
    assert _report(db_path, projects)["budget"]["month_to_date_usd"] == first["budget"]["month_to_date_usd"]
    conn = connect(db_path)
    spent = record_cost(conn, Config(), Catalog.load(), "haiku", Usage(input_tokens=1_000_000))["cost_usd"]
    record = conn.execute("SELECT MAX(id) FROM cost_records").fetchone()[0]
    conn.close()
    charged = _report(db_path, projects)["budget"]["month_to_date_usd"]
    assert charged == pytest.approx(first["budget"]["month_to_date_usd"] + spent, abs=1e-6) and spent > 0
    voided = CliRunner().invoke(cli, ["costs", "--void", str(record), "--db", str(db_path)])
    assert voided.exit_code == 0, voided.output
    assert _report(db_path, projects)["budget"]["month_to_date_usd"] == first["budget"]["month_to_date_usd"]


def test_a_commit_by_another_process_while_the_report_is_built_is_not_kept(db_path: Path, projects: Path) -> None:
    from mcp_router.config import Config
    from mcp_router.pricing import Catalog
    from mcp_router.report import ReportSpec, budget_section, build_report
    from mcp_router.report_cache import cached_report

    _report(db_path, projects)
    _cache(db_path).unlink()
    conn = connect(db_path)
    spec = ReportSpec.parse(*PERIOD[1:4:2], "UTC", "model")

    def build_while_another_writes() -> dict:
        report = build_report(conn, spec, Catalog.load(), Config())
        other = connect(db_path)
        other.execute("DELETE FROM usage_events WHERE id = (SELECT MIN(id) FROM usage_events)")
        other.close()
        return report

    cached_report(conn, spec, Config(), build_while_another_writes, lambda: budget_section(conn, Config()))
    conn.close()
    assert not _cache(db_path).exists()
