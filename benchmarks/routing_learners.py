"""Is the learner the lever? The shipped learner against a one-hidden-layer network over the same features, on the
same folds grouped by writer (no writer in both a fold's training and its test part); or, with --stacked, a second
stage over the kept leave-one-writer-out scores.

    python benchmarks/routing_learners.py                       # 5 folds, 64 hidden units, 8 passes
    python benchmarks/routing_learners.py --hidden 256 --epochs 4
    python benchmarks/routing_learners.py --stacked             # gradient-boosted trees over the kept scores

Both learners predict the category; a request's tier is the tier with the most probability summed over its
categories (the shipped learner's scores turned into probabilities with the shipped model's temperature). That is the
models' own reading, without the router's tier model, policy rules and "higher tier when unsure" step, on five folds
instead of one per writer: not routing_eval.py's figures, and comparable only with each other. Several minutes a
fold on two cores.

--stacked learns from no text: over each request's kept out-of-fold scores
(benchmarks/routing_data/out_of_fold.json.gz), its tier probabilities as the router combines them and its length,
gradient-boosted trees (100 rounds, no early stopping) predict the tier, fitted on five folds grouped by writer.
Both the router's own probabilities and the stacked ones then go through the router's decision: the most probable
tier, or when its probability is under a bar the higher of the two most probable, and the policy rules on top, which
read each request's text as the router's do (a tier they raise the request to is sure). The bar for each is the
lowest on a 0.005 grid whose sure decisions are >= 98% right, the rule the shipped bar was chosen by from
routing_eval.py --kept runs (in sample for both). About a minute.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.routing_train import Prepared, fit_temperatures, load_items, load_out_of_fold  # noqa: E402
from mcp_router.config import TIERS  # noqa: E402
from mcp_router.pricing import Catalog  # noqa: E402
from mcp_router.routing import Model, Router, load_policy  # noqa: E402

HAIKU, OPUS = TIERS.index("haiku"), TIERS.index("opus")


def linear_svm(features, categories, temperature: float):
    """The shipped learner; returns what gives a matrix's category probabilities and their classes."""
    from scipy.special import softmax
    from sklearn.svm import LinearSVC

    from benchmarks.routing_train import C

    svm = LinearSVC(C=C, random_state=0).fit(features, categories)
    return lambda test: (softmax(svm.decision_function(test) / temperature, axis=1), svm.classes_)


def network(features, categories, hidden: int, epochs: int):
    """One hidden layer of ``hidden`` rectified units, ``epochs`` passes of Adam; the same return as linear_svm."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of passes is the point
        net = MLPClassifier(hidden_layer_sizes=(hidden,), batch_size=256, max_iter=epochs, random_state=0)
        net.fit(features, categories)
    return lambda test: (net.predict_proba(test), net.classes_)


def tier_sums(probabilities, classes, tier_of):
    """Each tier's probability: the sum over its categories (``classes``: the category of each column,
    ``tier_of``: each category's tier)."""
    import numpy as np

    by_tier = np.zeros((probabilities.shape[0], len(TIERS)))
    for column, category in enumerate(classes):
        by_tier[:, tier_of[category]] += probabilities[:, column]
    return by_tier


def decisions(probabilities, floors, bar: float):
    """The router's decision on tier probabilities: unsure under ``bar`` (the higher of the two most probable,
    ties to the higher), then raised to the tier the policy rules give (``floors``, then sure). Returns the tiers
    and which were sure."""
    import numpy as np

    higher_first = -np.arange(len(TIERS))[None, :].repeat(len(probabilities), axis=0)
    ranked = np.lexsort((higher_first, -probabilities), axis=1)
    unsure = probabilities.max(axis=1) < bar
    tiers = np.where(unsure, ranked[:, :2].max(axis=1), ranked[:, 0])
    return np.maximum(tiers, floors), ~unsure | (floors > tiers)


def report(name: str, probabilities, floors, wanted) -> None:
    """The most probable tier always, then the lowest bar whose sure decisions are >= 98% right."""
    import numpy as np

    def sure_right(bar: float) -> float:
        tiers, sure = decisions(probabilities, floors, bar)
        return (tiers[sure] == wanted[sure]).mean()

    bar = next((float(bar) for bar in np.arange(0.30, 0.95, 0.005) if sure_right(bar) >= 0.98), 0.95)
    for label, at in ((f"{name}, the most probable tier", 0.0), (f"{name}, unsure under {bar:.3f}", bar)):
        tiers, sure = decisions(probabilities, floors, at)
        right = tiers == wanted
        haiku_to_opus = ((wanted == HAIKU) & (tiers == OPUS)).sum() / (wanted == HAIKU).sum()
        print(f"{label}: {right.mean():.2%} right, {((wanted == OPUS) & (tiers == HAIKU)).sum()} Opus->Haiku,"
              f" {haiku_to_opus:.1%} of Haiku tasks to Opus, sure of {sure.sum():,} ({sure.mean():.1%}) and right on"
              f" {right[sure].sum():,} ({right[sure].mean():.2%}), right on {right[~sure].sum():,} of the"
              f" {(~sure).sum():,} unsure")


def stacked(folds: int) -> None:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    prepared = Prepared(load_items())
    scores = load_out_of_fold(prepared)
    model = prepared.combiner(fit_temperatures(prepared, scores))
    policy = load_policy()
    assert prepared.tiers[prepared.classes[0]] == "haiku" and prepared.classes[0] in policy["mechanical"]
    reading_haiku = [1.0] + [0.0] * (len(prepared.classes) - 1)
    rules = Router(Catalog.load(), {**policy, "uncertain_below": 0.0}, model=model)
    tier_of = np.array(prepared.tier_columns())
    combined = np.array([model.combine(item_scores) for item_scores in scores])
    by_tier = tier_sums(combined, range(len(prepared.classes)), tier_of)
    floors = np.array([TIERS.index(rules.decide(item["task"], item.get("context_tokens", 0), reading_haiku).tier)
                       for item in prepared.items])
    wanted = np.array([TIERS.index(item["tier"]) for item in prepared.items])
    inputs = np.hstack([np.array(scores), np.log(by_tier + 1e-9),
                        np.log1p([len(item["task"]) for item in prepared.items])[:, None]])
    stacked_by_tier = np.zeros_like(by_tier)
    for train, test in GroupKFold(n_splits=folds).split(inputs, wanted, [item["writer"] for item in prepared.items]):
        trees = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0)
        stacked_by_tier[test] = trees.fit(inputs[train], wanted[train]).predict_proba(inputs[test])
    among_top_two = (np.argsort(-by_tier, axis=1)[:, :2] == wanted[:, None]).any(axis=1)
    print(f"the right tier is one of the router's two most probable for {among_top_two.mean():.2%} of requests")
    report("the router's own probabilities", by_tier, floors, wanted)
    report("stacked", stacked_by_tier, floors, wanted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64, help="the network's hidden units")
    parser.add_argument("--epochs", type=int, default=8, help="the network's passes over the training part")
    parser.add_argument("--stacked", action="store_true", help="a second stage over the kept scores instead")
    args = parser.parse_args()
    if args.stacked:
        stacked(args.folds)
        return

    import numpy as np
    from sklearn.model_selection import GroupKFold

    prepared = Prepared(load_items())
    matrix = prepared.matrix(range(len(prepared.items)))
    categories = np.array(prepared.targets)
    tiers = np.array(prepared.tier_targets)
    writers = [item["writer"] for item in prepared.items]
    tier_of = np.array(prepared.tier_columns())
    temperature = Model.load().temperature

    learners = {
        "shipped (linear SVM)": lambda train: linear_svm(matrix[train], categories[train], temperature),
        f"network ({args.hidden} hidden, {args.epochs} passes)":
            lambda train: network(matrix[train], categories[train], args.hidden, args.epochs),
    }
    totals = {name: np.zeros(4, dtype=int) for name in learners}  # right, Opus->Haiku, Haiku->Opus, Haiku tasks
    folds = GroupKFold(n_splits=args.folds).split(matrix, categories, writers)
    for number, (train, test) in enumerate(folds, 1):
        for name, fit in learners.items():
            started = time.perf_counter()
            probabilities, classes = fit(train)(matrix[test])
            decided = tier_sums(probabilities, classes, tier_of).argmax(axis=1)
            wanted = tiers[test]
            counts = np.array([(decided == wanted).sum(), ((wanted == OPUS) & (decided == HAIKU)).sum(),
                               ((wanted == HAIKU) & (decided == OPUS)).sum(), (wanted == HAIKU).sum()])
            totals[name] += counts
            print(f"fold {number} ({len(test):,} requests): {name}: {counts[0] / len(test):.1%},"
                  f" Opus->Haiku {counts[1]}, {time.perf_counter() - started:.0f} s", flush=True)
    for name, (right, opus_to_haiku, haiku_to_opus, haiku) in totals.items():
        print(f"{name}: {right / len(tiers):.2%} right, {opus_to_haiku} Opus->Haiku,"
              f" {haiku_to_opus / haiku:.1%} of Haiku tasks to Opus")


if __name__ == "__main__":
    main()
