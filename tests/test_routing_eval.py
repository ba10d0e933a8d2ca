"""The router against the evaluation set: at least 240 requests as developers type them, a third of them
decoys, and a held-out part written blind by someone who never saw the rules, committed after the rules
were frozen and before it was scored. The router learns from the tune part (its example file is that part),
so the tune figure that says something is the cross-validated one."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.routing_eval import EXAMPLES, cross_validate, evaluate, examples_text, load

EVAL_SET = Path(__file__).parent / "data" / "routing_eval.jsonl"


@pytest.fixture(scope="module")
def parts():
    return evaluate(load(EVAL_SET))


def test_the_evaluation_set_is_big_enough_and_hard_enough() -> None:
    items = load(EVAL_SET)
    assert len(items) >= 240
    assert sum(bool(i["decoy"]) for i in items) >= len(items) / 3
    assert sum(i["split"] == "heldout" for i in items) >= 80
    assert len({i["task"] for i in items}) == len(items)
    assert {i["expected_tier"] for i in items} == {"haiku", "sonnet", "opus"}


def test_held_out_accuracy_and_no_dangerous_misroutes(parts) -> None:
    heldout = parts["heldout"]
    assert heldout.accuracy >= 0.90, [(i["task"], d["tier"]) for i, d in heldout.misses]
    assert heldout.opus_to_haiku == 0
    assert heldout.haiku_to_opus_share <= 0.05


def test_held_out_figures_do_not_regress(parts) -> None:
    heldout = parts["heldout"]  # scored blind at a5492b2: 106 of 108, none under-routed
    assert heldout.correct >= 106 and heldout.under_routed == 0, [(i["task"], d["tier"]) for i, d in heldout.misses]


def test_the_router_learns_from_the_tune_part_and_never_the_held_out_part() -> None:
    assert EXAMPLES.read_text("utf-8") == examples_text(load(EVAL_SET)), "run routing_eval.py --write-examples"


def test_tuning_part_cross_validated() -> None:
    result = cross_validate(load(EVAL_SET))
    assert result.accuracy >= 0.95 and result.opus_to_haiku == 0, [(i["task"], d) for i, d in result.misses]
