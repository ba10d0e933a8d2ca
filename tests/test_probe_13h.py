"""Probe 13h: Opus work sent to Haiku, sure of itself, when the user states the stakes beside a mechanical ask or
puts a design ask behind a cheap one; the best-model rule raising a tier on a denial or a question about models."""

from __future__ import annotations

import pytest

from mcp_router.config import Config
from mcp_router.pricing import Catalog
from mcp_router.routing import Router


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.load(Catalog.load(), Config())


@pytest.mark.parametrize("task", [
    "High stakes: summarize the close log",
    "This is high-stakes: extract the email addresses from the vendor list",
    "Stakes are high here. Reformat this JSON to YAML.",
    "If this is wrong we lose the contract. Convert these dates to ISO 8601.",
    "Summarize the release notes, it's mission-critical for the launch",
    "We cannot afford a single mistake: pull every IBAN out of this statement",
])
def test_stakes_the_user_states_on_a_mechanical_ask_go_to_opus(router: Router, task: str) -> None:
    decision = router.route(task)
    assert decision.tier == "opus" and "stakes the user states as high" in decision.reason, decision


@pytest.mark.parametrize("task", [
    "Summarize this log and then redesign the retry architecture.",
    "Summarize this PR, and also design the sharding strategy for the orders database.",
])
def test_a_design_ask_behind_a_cheap_one_goes_to_opus(router: Router, task: str) -> None:
    assert router.route(task).tier == "opus"


@pytest.mark.parametrize("task", [
    "This isn't high stakes, just summarize the build log",
    "Nobody needs the best model for this; summarize this log.",
    "My manager keeps asking which is the best model for OCR; classify these 10 tickets by team",
    "summarize the doc about how we redesigned the system last year",
])
def test_a_denial_or_a_question_about_models_is_not_an_ask(router: Router, task: str) -> None:
    decision = router.route(task)
    assert decision.tier == "haiku" and "):" not in decision.reason, decision  # no rule fired
