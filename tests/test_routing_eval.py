"""The router against data it was not fitted on. Cross-validation leaves each writer out in turn (models fitted on
the other writers route that writer's requests); the held-out sets, written blind in styles no training writer
used, were scored once after the model was frozen, and their figures here are what that scoring found."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks.routing_data_build import KEPT, build
from benchmarks.routing_eval import cross_validate, heldout_results, heldout_sets, probability, probe_results
from benchmarks.routing_train import Prepared, load_items, load_out_of_fold, serialise, train
from mcp_router.routing import MODEL_BIN, MODEL_META, load_policy

WRITERS = {"legacy", "ia", "ib", "ic", "id", *(f"h{letter}" for letter in "abcdefghijklmnopqrstuvwxyz"),
           *(f"w{n}" for n in range(1, 57))}


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return Prepared(load_items())


@pytest.fixture(scope="module")
def by_writer(prepared: Prepared) -> list[list[float]]:
    """The leave-one-writer-out scores kept beside the data (refitting all the folds takes minutes; a test below
    refits some and checks them against these)."""
    return load_out_of_fold(prepared)


# Folds refitted to check the kept scores: any change to the data or to the fit changes every fold's model, so a
# few folds catch a stale file. One wholly in other languages, one small, one large.
REFITTED = ("w16", "hc", "legacy")


@pytest.mark.timeout(600)
def test_the_kept_out_of_fold_scores_are_what_the_folds_give(prepared: Prepared, by_writer) -> None:
    fresh = prepared.out_of_fold("writer", only=REFITTED)
    refitted = [index for index, item in enumerate(prepared.items) if item["writer"] in REFITTED]
    assert len(refitted) > 1800
    for index in refitted:
        assert fresh[index] == pytest.approx(by_writer[index], abs=2e-5), "run: python benchmarks/routing_train.py"


def test_the_training_set_is_big_varied_and_traceable(prepared: Prepared) -> None:
    items = prepared.items
    assert len(items) >= 50050
    assert {item["writer"] for item in items} == WRITERS
    assert len({item["style"] for item in items}) >= 40
    assert all(item["batch"] and item["domain"] is not None for item in items)
    assert len({" ".join(item["task"].lower().split()) for item in items}) == len(items)
    assert {item["category"] for item in items} == set(load_policy()["categories"]) - {"high_stakes"}


def test_the_training_set_is_what_the_build_script_keeps_from_the_committed_data(tmp_path: Path) -> None:
    kept, rows = build(tmp_path)  # an empty source: only the repository's train/ and labels/ files
    assert sum(row[1] for row in rows) == 50802
    assert [json.dumps(item, ensure_ascii=False) for item in kept] == KEPT.read_text("utf-8").splitlines()


@pytest.mark.timeout(600)
def test_the_shipped_model_is_what_the_training_script_makes(prepared: Prepared, by_writer) -> None:
    table, meta = serialise(train(prepared, by_writer))
    assert meta == Path(MODEL_META).read_text("utf-8"), "run: python benchmarks/routing_train.py"
    assert table == Path(MODEL_BIN).read_bytes(), "run: python benchmarks/routing_train.py"


def test_leave_one_writer_out(prepared: Prepared, by_writer) -> None:
    result, writers = cross_validate(prepared, "writer", "leave-one-writer-out", scores=by_writer)
    # The target for sure decisions is met: >= 98% right, covering >= 80% of requests.
    assert result.sure_accuracy >= 0.98 and result.sure_coverage >= 0.80, result.summary()
    # Not met (95% overall, no Opus task to Haiku); these are the figures at the eleventh round's freeze, kept from
    # getting worse: 92.0% (0.9197), 176 Opus->Haiku of 13,789 Opus tasks (110 of them the stakes writers' w45, w46,
    # w51 and w52: stakes stated on mechanical asks in words no other writer used, left out).
    assert result.accuracy >= 0.919 and result.opus_to_haiku <= 176, result.summary()
    # Stated confidence is calibrated: in every band with 300 decisions or more, observed within 0.05 of stated.
    assert all(abs(stated - observed) <= 0.05 for _, n, stated, observed in result.reliability() if n >= 300), \
        result.reliability()
    # The weakest writer is w53 (long messages pasting other people's prose, with its own asks, unfenced): 66.9%,
    # its misses on the dear side (no Opus task to Haiku).
    assert min(w.accuracy for w in writers.values()) >= 0.668, [w.summary() for w in writers.values()]


# Scored after the freeze at a4bc330, on the requests whose two labels agree on the tier:
# (requests, right, Opus->Haiku) per set.
HELDOUT_AT_FREEZE = {"ie": (298, 266, 0), "if": (298, 269, 0), "ig": (299, 280, 0)}


def test_held_out_sets_as_scored_at_the_freeze() -> None:
    # Checked by name before anything is routed: sets committed for the next freeze are not scored here before it.
    assert heldout_sets() == sorted(HELDOUT_AT_FREEZE), "held-out sets changed: freeze, score once, record here"
    results = {result.name.split()[1]: result for result in heldout_results(list(HELDOUT_AT_FREEZE))}
    for name, (total, right, opus_to_haiku) in HELDOUT_AT_FREEZE.items():  # aggregates only, never a request
        result = results[name]
        assert result.total == total and result.correct >= right, result.summary()
        assert result.opus_to_haiku <= opus_to_haiku, result.summary()


# The probers' sets as the router frozen at a4bc330 routes them: (requests, right, Opus->Haiku), kept from getting
# worse. p13l's and p13n's requests attack its known weak spots, and their misses are the still-open failures.
PROBES_AT_FREEZE = {"p13j": (248, 243, 0), "p13l": (62, 41, 8), "p13n": (53, 39, 6)}


def test_probers_sets_as_routed_at_the_freeze() -> None:
    results = {result.name.split()[1]: result for result in probe_results()}
    assert sorted(results) == sorted(PROBES_AT_FREEZE)
    for name, (total, right, opus_to_haiku) in PROBES_AT_FREEZE.items():
        result = results[name]
        assert result.total == total and result.correct >= right, result.summary()
        assert result.opus_to_haiku <= opus_to_haiku, result.summary()


@pytest.mark.parametrize("text", ["2", "-1", "nan"])
def test_the_bar_to_cross_validate_at_is_a_probability(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="a probability from 0 to 1"):
        probability(text)
