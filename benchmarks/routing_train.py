"""Train the router's model on benchmarks/routing_data/kept.jsonl and write mcp_router/data/routing_model.bin/.json.

    python benchmarks/routing_train.py

Needs numpy, scipy and scikit-learn (the `train` extra); the router itself reads the result with the standard
library only. Deterministic: liblinear's solver is seeded, so the same training set gives the same bytes. Two models
over the same features: one over categories, one over tiers. The temperatures that make their probabilities
calibrated are fitted on leave-one-writer-out predictions (each writer's requests scored by models that never saw
that writer), and on the same predictions a monotone map from a tier's probability to how often it is right (what
the router states as its confidence); then both models are fitted on everything. The leave-one-writer-out scores are
kept in benchmarks/routing_data/out_of_fold.json.gz, so the tests check the shipped model and the cross-validated
figures without refitting every fold (they refit a few and compare).
"""

from __future__ import annotations

import gzip
import json
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp_router.config import TIERS  # noqa: E402
from mcp_router.pricing import Catalog  # noqa: E402
from mcp_router.routing import MODEL_BIN, MODEL_META, Model, Router, features, load_policy, softmax  # noqa: E402

KEPT = ROOT / "benchmarks" / "routing_data" / "kept.jsonl"
OUT_OF_FOLD = ROOT / "benchmarks" / "routing_data" / "out_of_fold.json.gz"
DECIMALS = 5  # of the kept out-of-fold scores; the model is trained on the rounded scores, so the file remakes it
BITS = 17  # 2**18, tried on the ninth round's folds: +0.2 points, 5 more Opus->Haiku, a model twice the size
C = 1.0  # the SVM's regularisation (smaller: simpler), chosen by leave-one-writer-out accuracy (0.25, 0.5, 1, 2)
ABSENT = 1000.0
# The tier model's share of a tier's probability, chosen with uncertain_below by leave-one-writer-out accuracy (0, 0.2,
# 0.3, 0.4, 0.5, 0.7, 1 against 0.6-0.7, keeping sure decisions >= 98% right):
# alone each model reaches about 88-90%, averaged 92%.
TIER_WEIGHT = 0.3
TEMPERATURES = [round(0.05 * 1.15 ** k, 4) for k in range(30)]
Calibration = Sequence[tuple[float, float]]


def load_items(path: Path = KEPT) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def target(item: dict, tiers: dict[str, str]) -> str:
    """The class the model learns for an item: its category, or ``high_stakes`` when its labels raise the tier
    above the category's without a large context (stakes the writer stated, or an ask for the best model)."""
    raised = TIERS.index(item["tier"]) > TIERS.index(tiers[item["category"]])
    return "high_stakes" if raised and not item.get("context_tokens") else item["category"]


class Prepared:
    """The training items with their hashed features and classes, computed once for every fit."""

    def __init__(self, items: list[dict], bits: int = BITS):
        self.items = items
        self.bits = bits
        self.tiers: dict[str, str] = load_policy()["categories"]
        self.classes = list(self.tiers)
        self.features = [features(item["task"], bits) for item in items]
        self.targets = [self.classes.index(target(item, self.tiers)) for item in items]
        self.tier_targets = [TIERS.index(item["tier"]) for item in items]

    def fit(self, keep: Callable[[int], bool] = lambda _: True, temperatures: tuple[float, float] = (1.0, 1.0),
            calibration: Calibration = ()) -> Model:
        """Linear SVMs (one against the rest, liblinear: deterministic) over categories and over tiers, fitted on
        the items ``keep`` selects (by index), each feature worth ``1 / sqrt(n)``; their weights quantised to a byte
        around 128."""
        import numpy as np
        from sklearn.svm import LinearSVC

        rows = [index for index in range(len(self.items)) if keep(index)]
        matrix = self.matrix(rows)
        blocks = []
        for names, targets in ((self.classes, self.targets), (TIERS, self.tier_targets)):
            svm = LinearSVC(C=C, random_state=0).fit(matrix, [targets[i] for i in rows])
            weights = np.zeros((len(names), 1 << self.bits))
            bias = np.full(len(names), -ABSENT)  # a class no item of the fold has is never chosen
            weights[svm.classes_] = svm.coef_
            bias[svm.classes_] = svm.intercept_
            blocks.append((weights, bias))
        weights = np.vstack([w for w, _ in blocks])
        scale = float(np.abs(weights).max()) / 127
        quantised = (np.rint(weights / scale) + 128).astype("<u2").T  # bucket by bucket, a field per class
        bias = [float(b) for _, bias in blocks for b in bias]
        return Model(self.meta(temperatures, calibration, scale, bias), quantised.tobytes())

    def matrix(self, rows: Sequence[int]):  # -> scipy.sparse.csr_matrix, imported only when fitting
        """The items ``rows`` as a sparse matrix, a row each, each feature worth ``1 / sqrt(n)``."""
        from scipy.sparse import csr_matrix

        return csr_matrix(
            ([1 / math.sqrt(len(self.features[i])) for i in rows for _ in self.features[i]],
             ([r for r, i in enumerate(rows) for _ in self.features[i]], [b for i in rows for b in self.features[i]])),
            shape=(len(rows), 1 << self.bits))

    def meta(self, temperatures: tuple[float, float], calibration: Calibration, scale: float = 1.0,
             bias: list[float] | None = None) -> dict:
        return {"classes": self.classes, "class_tiers": [self.tiers[name] for name in self.classes], "bits": self.bits,
                "scale": scale, "temperature": temperatures[0], "tier_temperature": temperatures[1],
                "tier_weight": TIER_WEIGHT, "calibration": [list(point) for point in calibration],
                "bias": bias or [0.0] * (len(self.classes) + len(TIERS))}

    def combiner(self, temperatures: tuple[float, float], calibration: Calibration = ()) -> Model:
        """A model with no weights, to turn scores computed elsewhere (out of fold) into probabilities."""
        return Model(self.meta(temperatures, calibration), bytes(2 * (len(self.classes) + len(TIERS)) << self.bits))

    def out_of_fold(self, grouping: str, only: Sequence[str] = ()) -> list[list[float]]:
        """Every item's class scores from models fitted without the items sharing its ``grouping`` (writer, style),
        rounded to ``DECIMALS``, one fold per process on every core (a fold is a few seconds of liblinear; the folds
        are independent). With ``only``, just those groups' folds; the other items' scores are left empty."""
        from sklearn.svm import LinearSVC  # noqa: F401 -- imported before the fork, so no child waits on an import lock

        names = list(only) or sorted({item[grouping] for item in self.items})
        scores: list[list[float]] = [[] for _ in self.items]
        with ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("fork"),
                                 initializer=_share, initargs=(self,)) as pool:
            for fold in pool.map(_fold_scores, [(grouping, name) for name in names]):
                for index, item_scores in fold:
                    scores[index] = item_scores
        return scores

    def tier_columns(self) -> list[int]:
        return [TIERS.index(self.tiers[name]) for name in self.classes]


_shared: Prepared  # the items, shared with the fold processes by fork rather than pickled for each fold


def _share(prepared: Prepared) -> None:
    global _shared
    _shared = prepared


def _fold_scores(fold: tuple[str, str]) -> list[tuple[int, list[float]]]:
    grouping, name = fold
    items = _shared.items
    model = _shared.fit(lambda index: items[index][grouping] != name)
    return [(index, [round(score, DECIMALS) for score in model.bucket_scores(_shared.features[index])])
            for index, item in enumerate(items) if item[grouping] == name]


def save_out_of_fold(prepared: Prepared, scores: list[list[float]], path: Path = OUT_OF_FOLD) -> None:
    lines = "".join(json.dumps({"id": item["id"], "scores": item_scores}) + "\n"
                    for item, item_scores in zip(prepared.items, scores, strict=True))
    path.write_bytes(gzip.compress(lines.encode(), mtime=0))


def load_out_of_fold(prepared: Prepared, path: Path = OUT_OF_FOLD) -> list[list[float]]:
    """The kept leave-one-writer-out scores, in the order of the training items."""
    by_id = {row["id"]: row["scores"] for row in map(json.loads, gzip.decompress(path.read_bytes()).splitlines())}
    if by_id.keys() != {item["id"] for item in prepared.items}:
        raise ValueError(f"{path.name} was made from another training set: run python benchmarks/routing_train.py")
    return [by_id[item["id"]] for item in prepared.items]


def tier_probabilities(scores: Sequence[float], temperature: float, columns: list[int]) -> list[float]:
    by_tier = [0.0] * len(TIERS)
    for column, probability in zip(columns, softmax(list(scores), temperature), strict=True):
        by_tier[column] += probability
    return by_tier


def fit_temperatures(prepared: Prepared, scores: list[list[float]]) -> tuple[float, float]:
    """The temperatures of the category model and of the tier model that minimise the log loss of the right tier
    over out-of-fold scores."""
    columns = prepared.tier_columns()
    wanted = [TIERS.index(item["tier"]) for item in prepared.items]
    n = len(prepared.classes)

    def log_loss(tier_probabilities_of: Callable[[list[float]], list[float]]) -> float:
        return -sum(math.log(max(tier_probabilities_of(s)[want], 1e-12)) for s, want in zip(scores, wanted, strict=True))

    category = min(TEMPERATURES, key=lambda t: log_loss(lambda s: tier_probabilities(s[:n], t, columns)))
    tier = min(TEMPERATURES, key=lambda t: log_loss(lambda s: softmax(s[n:], t)))
    return category, tier


def fit_calibration(prepared: Prepared, scores: list[list[float]], temperatures: tuple[float, float],
                    policy: dict) -> Calibration:
    """The map from what the router would state as its confidence (the decided tier's probability) to how often such
    a decision is right: an isotonic regression over the router's own decisions under ``policy`` on out-of-fold
    scores, kept as the corners of its piecewise-linear curve. Fitted on decisions, not on every tier's probability,
    because a decision is not a random tier: when unsure the router takes the higher of two, and policy rules
    raise tiers."""
    from sklearn.isotonic import IsotonicRegression

    model = prepared.combiner(temperatures)
    router = Router(Catalog.load(), policy, model=model)
    stated, right = [], []
    for item, item_scores in zip(prepared.items, scores, strict=True):
        decision = router.decide(item["task"], item.get("context_tokens", 0), model.combine(item_scores))
        stated.append(decision.confidence)
        right.append(decision.tier == item["tier"])
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(stated, right)
    return tuple((float(x), round(float(y), 4))
                 for x, y in zip(isotonic.X_thresholds_, isotonic.y_thresholds_, strict=True))


def train(prepared: Prepared, by_writer: list[list[float]]) -> Model:
    """The shipped model: fitted on everything, tempered and calibrated on the leave-one-writer-out scores."""
    temperatures = fit_temperatures(prepared, by_writer)
    calibration = fit_calibration(prepared, by_writer, temperatures, load_policy())
    return prepared.fit(temperatures=temperatures, calibration=calibration)


def serialise(model: Model) -> tuple[bytes, str]:
    meta = {"classes": model.classes, "class_tiers": [TIERS[tier] for tier in model.class_tiers], "bits": model.bits,
            "scale": model.scale, "temperature": model.temperature, "tier_temperature": model.tier_temperature,
            "tier_weight": model.tier_weight, "calibration": [list(point) for point in model.calibration],
            "bias": model.bias}
    return bytes(model.table), json.dumps(meta, indent=1) + "\n"


def main() -> None:
    items = load_items()
    prepared = Prepared(items)
    by_writer = prepared.out_of_fold("writer")
    save_out_of_fold(prepared, by_writer)
    table, meta = serialise(train(prepared, by_writer))
    Path(MODEL_BIN).write_bytes(table)
    Path(MODEL_META).write_text(meta, "utf-8")
    print(f"trained on {len(items)} requests; temperatures {json.loads(meta)['temperature']},"
          f" {json.loads(meta)['tier_temperature']}")


if __name__ == "__main__":
    main()
