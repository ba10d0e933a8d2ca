"""Probe 13j: the best-model rule raising cheap work to Opus, sure of itself, on a denial that names Opus before
the best model or on a question whether a task needs Opus; a shape pattern that took seconds on a paste of blank
lines (every newline restarted a scan of the whole run)."""

from __future__ import annotations

import pytest

from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import Router, features


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.load(Catalog.load(), Config())


def best_model_rule(router: Router):
    return next(rule for rule in router.rules if rule.name == "an explicit ask for the best model")


@pytest.mark.parametrize("task", [
    "no need for opus or the best model here, just extract the emails from this list",
    "you don't need Opus or the best model for this, just rename the variable",
    "does this even need opus? it's just renaming a file",
    "Should I use opus for this? It's a one-line typo fix.",
])
def test_a_denial_or_a_question_does_not_ask_for_the_best_model(router: Router, task: str) -> None:
    assert best_model_rule(router).match(task) is None


@pytest.mark.parametrize("task", [
    "use opus or the best model you have to design the sharding scheme",
    "not sure, but use opus or the best model please",
    "Do you need opus? Use opus for the auth rewrite.",
    "You should use opus for the migration plan",
])
def test_an_ask_beside_a_denial_or_a_question_still_asks(router: Router, task: str) -> None:
    assert best_model_rule(router).match(task)
    assert router.route(task).tier == "opus"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("paste", ["\n" * 200_000, "\n \n" * 70_000, "\r\n" * 100_000])
def test_a_paste_of_blank_lines_is_read_in_linear_time(paste: str) -> None:
    # Quadratic before: 63,000 newlines took 8.5 s to route, so 200,000 took a minute and a half to read.
    assert len(features(paste + "summarize the log above", 17)) > 10


def test_a_long_paste_of_blank_lines_still_routes(router: Router) -> None:
    assert router.route("\n" * 200_000 + "summarize the log above").tier in {"haiku", "sonnet"}
