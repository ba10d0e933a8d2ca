"""Probes 13h and 13i: Opus work sent to Haiku, sure of itself, when the user states the stakes beside a mechanical
ask or puts a design ask behind a cheap one; rules that fire on words rather than on the user's own statement; the
best-model rule raising a tier on a denial or a question about models."""

from __future__ import annotations

import pytest

from mcp_router.routing import Router


@pytest.mark.parametrize("task", [
    "High stakes: summarize the close log",
    "_High stakes_ — summarize the audit log",
    "This is high-stakes: extract the email addresses from the vendor list",
    "Stakes are high here. Reformat this JSON to YAML.",
    "We cannot afford a single mistake: pull every IBAN out of this statement",
    "We absolutely cannot get this wrong: list the env vars the deploy script reads",
])
def test_stakes_the_user_states_on_a_mechanical_ask_go_to_opus(router: Router, task: str) -> None:
    stakes = next(rule for rule in router.rules if rule.name == "stakes the user states as high")
    assert stakes.match(task)  # the rule hears it, whether or not the model has already chosen Opus
    assert router.route(task).tier == "opus"


@pytest.mark.parametrize("task", [  # probe 13i: stakes words as a topic, a name, pasted text or a condition
    "Summarize the chapter on high-stakes testing in this education PDF",
    "Fix the typo in the menu label of the game's high-stakes poker mode",
    "Convert this job posting to Markdown: Senior SRE. You will own mission-critical infrastructure.",
    "If this is wrong, just tell me: the port in docker-compose.yml is 8080, right?",
    "The stakes are not high here, just sort the imports in app.py",
])
def test_stakes_words_that_are_not_the_user_stating_stakes_do_not_raise_the_tier(router: Router, task: str) -> None:
    assert "stakes the user states as high" not in router.route(task).reason


@pytest.mark.xfail(strict=True, reason="an Opus ask behind a cheaper one is read by the model, as one request; a rule"
                   " for design asks did more harm than good (probe 13i: 10 cheap tasks raised, 4 of 18 caught)")
def test_a_design_ask_behind_a_cheap_one_goes_to_opus(router: Router) -> None:
    assert router.route("Summarize this log and then redesign the retry architecture.").tier == "opus"


@pytest.mark.parametrize("task", [
    "This isn't high stakes, just summarize the build log",
    "Nobody needs the best model for this; summarize this log.",
    "My manager keeps asking which is the best model for OCR; classify these 10 tickets by team",
])
def test_a_denial_or_a_question_about_models_is_not_an_ask(router: Router, task: str) -> None:
    decision = router.route(task)
    assert decision.tier == "haiku" and "):" not in decision.reason, decision  # no rule fired
