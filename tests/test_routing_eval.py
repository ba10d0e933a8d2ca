"""The router against data it was not fitted on. Cross-validation leaves each writer out in turn (a model fitted on
the other writers routes that writer's requests); the held-out sets, written blind in styles no training writer
used, were scored once after the model was frozen, and their figures here are what that scoring found."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.routing_eval import cross_validate, heldout_results
from benchmarks.routing_train import Prepared, fit_temperature, load_items, serialise
from mcp_router.routing import MODEL_BIN, MODEL_META, load_policy

WRITERS = {"legacy", "w1", "w2", "w3", "w4", "w5"}


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return Prepared(load_items())


@pytest.fixture(scope="module")
def by_writer(prepared: Prepared) -> list[list[float]]:
    return prepared.out_of_fold(lambda item: item["writer"])


def test_the_training_set_is_big_varied_and_traceable(prepared: Prepared) -> None:
    items = prepared.items
    assert len(items) >= 6000
    assert {item["writer"] for item in items} == WRITERS
    assert len({item["style"] for item in items}) >= 15
    assert all(item["batch"] and item["domain"] is not None for item in items)
    assert len({" ".join(item["task"].lower().split()) for item in items}) == len(items)
    assert {item["category"] for item in items} == set(load_policy()["categories"]) - {"high_stakes"}


def test_the_shipped_model_is_what_the_training_script_makes(prepared: Prepared, by_writer) -> None:
    temperature = fit_temperature(prepared, by_writer)
    table, meta = serialise(prepared.fit(temperature=temperature))
    assert meta == Path(MODEL_META).read_text("utf-8"), "run: python benchmarks/routing_train.py"
    assert table == Path(MODEL_BIN).read_bytes(), "run: python benchmarks/routing_train.py"


def test_leave_one_writer_out(prepared: Prepared, by_writer) -> None:
    result, writers = cross_validate(prepared, lambda item: item["writer"], "leave-one-writer-out",
                                     scores=by_writer)
    # Figures at the freeze (benchmarks/README.md); the targets (95%, sure 98% over 80%) are not met.
    assert result.accuracy >= 0.85, result.summary()
    assert result.sure_accuracy >= 0.95 and result.sure_coverage >= 0.65, result.summary()
    assert min(w.accuracy for w in writers.values()) >= 0.80, [w.summary() for w in writers.values()]


def test_held_out_sets_as_scored_at_the_freeze() -> None:
    results = heldout_results()
    assert len(results) >= 3
    for result in results:  # aggregates only: no held-out request is ever printed
        assert result.total >= 100, result.name
