"""Probes 13j and 13k: the best-model rule raising cheap work to Opus on a denial that names Opus before the best
model, and the attempt to refuse it that refused real asks; patterns that took seconds on a paste of blank lines or
a line of opening quotation marks (every newline or mark restarted a scan of the whole run)."""

from __future__ import annotations

import pytest

from mcp_router.routing import Router, features


def best_model_rule(router: Router):
    return next(rule for rule in router.rules if rule.name == "an explicit ask for the best model")


@pytest.mark.xfail(strict=True, reason="refusing these by the words before the ask also refused real asks ('Do it "
                   "with opus: …', 'Would you use opus for this?', 'If it isn't Opus or the best model, the answer "
                   "will be wrong', probe 13k), which then went to Haiku sure; a cheap task raised to Opus is the "
                   "lesser error, so the rule was put back")
@pytest.mark.parametrize("task", [
    "no need for opus or the best model here, just extract the emails from this list",
    "does this even need opus? it's just renaming a file",
])
def test_a_denial_or_a_question_does_not_ask_for_the_best_model(router: Router, task: str) -> None:
    assert best_model_rule(router).match(task) is None


@pytest.mark.parametrize("task", [
    "use opus or the best model you have to design the sharding scheme",
    "not sure, but use opus or the best model please",
    "Do it with opus: write the commit message for this change.",
    "Would you use opus for this? Extract the emails from contacts.csv.",
    "Will you use opus to rename the variable userId to user_id in auth.py?",
    "Please do this with opus: summarize the build log below.",
])
def test_an_ask_for_opus_is_an_ask_whatever_words_come_before_it(router: Router, task: str) -> None:
    assert best_model_rule(router).match(task)
    assert router.route(task).tier == "opus"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mark", ["«", "‘", "“", "„", "「", "『"])
def test_a_line_of_opening_quotation_marks_is_read_in_linear_time(router: Router, mark: str) -> None:
    # Quadratic before (probe 13k): 60,000 of them after an ask took 17 s to over 30 s; 200,000 would take minutes.
    assert best_model_rule(router).match("use opus " + mark * 200_000) == "use opus"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("paste", ["\n" * 200_000, "\n \n" * 70_000, "\r\n" * 100_000])
def test_a_paste_of_blank_lines_is_read_in_linear_time(paste: str) -> None:
    # Quadratic before: 63,000 newlines took 8.5 s to route, so 200,000 took a minute and a half to read.
    assert len(features(paste + "summarize the log above", 17)) > 10


def test_a_long_paste_of_blank_lines_still_routes(router: Router) -> None:
    assert router.route("\n" * 200_000 + "summarize the log above").tier in {"haiku", "sonnet"}
