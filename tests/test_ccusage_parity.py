"""Our report against ccusage (npm ccusage@18.0.11, the tool people compare us with) on the same
generated transcripts: the same tokens per day and per week in three time zones, and the right cost
where ccusage's offline price list has no entry for a current model and says $0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.corpus import Truth, generate
from mcp_router.pricing import Catalog, Usage

REPO = Path(__file__).resolve().parents[1]
LOCAL_CCUSAGE = REPO / ".ci" / "npm" / "node_modules" / ".bin" / "ccusage"
CCUSAGE = str(LOCAL_CCUSAGE) if LOCAL_CCUSAGE.exists() else shutil.which("ccusage")
ON_CI = os.environ.get("CI") == "true"
ZONES = ["UTC", "America/Los_Angeles", "Asia/Tokyo"]
TOKEN_FIELDS = {"inputTokens": "input_tokens", "outputTokens": "output_tokens",
                "cacheCreationTokens": "cache_creation_tokens", "cacheReadTokens": "cache_read_tokens"}

pytestmark = pytest.mark.skipif(CCUSAGE is None and not ON_CI,
                                reason="ccusage is not installed (bash .ci/run npm-installs it into .ci/npm)")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    assert CCUSAGE, "CI must have ccusage: bash .ci/run installs it"
    root = tmp_path_factory.mktemp("claude")
    # Three weeks around the end of US daylight saving time (2026-11-01).
    truth = generate(root / "projects", sessions=40, turns=6, filler=300, seed=11,
                     start=datetime(2026, 10, 22, tzinfo=UTC), days=21)
    return root, truth


def _ccusage(root: Path, period: str, zone: str) -> list[dict]:
    command = [CCUSAGE, period, "--json", "--offline", "--timezone", zone, "--since", "20261001",
               "--until", "20261231"] + (["--start-of-week", "monday"] if period == "weekly" else [])
    # The zone goes in --timezone and the process runs in UTC: with TZ set west of UTC, ccusage 18.0.11's
    # weekly report starts weeks on the wrong day (a week of 2026-10-20, a Tuesday, and a one-day week).
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(root), "TZ": "UTC", "NO_COLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=True)
    return json.loads(done.stdout)[period]


def _ours(root: Path, group_by: str, zone: str) -> dict:
    command = [sys.executable, "-m", "mcp_router", "report", "--projects-dir", str(root / "projects"),
               "--db", str(root / "usage.db"), "--since", "2026-10-01", "--until", "2026-12-31",
               "--group-by", group_by, "--timezone", zone, "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("period", "key"), [("daily", "day"), ("weekly", "week")])
def test_tokens_per_day_and_week_equal_ccusage(corpus: tuple[Path, Truth], period: str, key: str,
                                               zone: str) -> None:
    root, truth = corpus
    theirs = {entry["date" if period == "daily" else "week"]: {ours: entry[field]
              for field, ours in TOKEN_FIELDS.items()} for entry in _ccusage(root, period, zone)}
    ours: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TOKEN_FIELDS.values(), 0))
    for group in _ours(root, key, zone)["groups"]:
        for field in TOKEN_FIELDS.values():
            ours[group[key]][field] += group[field]
    assert len(theirs) >= (15 if period == "daily" else 3)
    assert dict(ours) == theirs
    total_input = sum(r["usage"]["input_tokens"] for r in truth.responses.values())
    assert sum(day["input_tokens"] for day in ours.values()) == total_input


def test_where_ccusage_offline_prices_say_zero_we_give_the_cost(corpus: tuple[Path, Truth]) -> None:
    root, truth = corpus
    catalog = Catalog.load()
    expected: dict[tuple[str, str], float] = defaultdict(float)
    for response in truth.responses.values():
        usage = response["usage"]
        day = datetime.fromtimestamp(response["ts"], UTC).date().isoformat()
        expected[(day, catalog.canonical(response["model"]))] += catalog.cost(response["model"], Usage(
            usage["input_tokens"], usage["output_tokens"], usage["cache_read_input_tokens"],
            usage["cache_creation_input_tokens"], usage["cache_creation"]["ephemeral_1h_input_tokens"],
            usage["server_tool_use"]["web_search_requests"], usage["inference_geo"]))
    ours = {(g["day"], g["model"]): g for g in _ours(root, "day,model", "UTC")["groups"]}
    free_in_ccusage = [(entry["date"], catalog.canonical(model["modelName"]))
                       for entry in _ccusage(root, "daily", "UTC") for model in entry["modelBreakdowns"]
                       if model["cost"] == 0 and model["inputTokens"] + model["outputTokens"] > 0]
    assert {model for _, model in free_in_ccusage} >= {"claude-opus-5-5", "claude-haiku-5-5"}
    for key in free_in_ccusage:
        assert ours[key]["cost_usd"] > 0
        assert abs(ours[key]["cost_usd"] - expected[key]) < 1e-6
    assert not _ours(root, "model", "UTC")["unpriced_models"]
