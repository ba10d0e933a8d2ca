"""Train the router's model on benchmarks/routing_data/kept.jsonl and write mcp_router/data/routing_model.bin/.json.

    python benchmarks/routing_train.py

Needs numpy, scipy and scikit-learn (the `train` extra); the router itself reads the result with the standard
library only. Deterministic: liblinear's solver is seeded, so the same training set gives the same bytes. The temperature
that makes the model's probabilities calibrated is fitted on leave-one-writer-out predictions (each writer's
requests scored by a model that never saw that writer), then the model is fitted on everything.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcp_router.config import TIERS  # noqa: E402
from mcp_router.routing import MODEL_BIN, MODEL_META, Model, features, load_policy, softmax  # noqa: E402

KEPT = ROOT / "benchmarks" / "routing_data" / "kept.jsonl"
BITS = 16
C = 1.0  # the SVM's regularisation (smaller: simpler), chosen by leave-one-writer-out accuracy (0.25, 0.5, 1, 2)
ABSENT = 1000.0
TEMPERATURES = [round(0.05 * 1.15 ** k, 4) for k in range(30)]


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

    def fit(self, keep: Callable[[int], bool] = lambda _: True, temperature: float = 1.0) -> Model:
        """A linear SVM (one against the rest, liblinear: deterministic) over the items ``keep`` selects (by
        index), each feature worth ``1 / sqrt(n)``; its weights quantised to a byte around 128."""
        import numpy as np
        from scipy.sparse import csr_matrix
        from sklearn.svm import LinearSVC

        rows = [index for index in range(len(self.items)) if keep(index)]
        matrix = csr_matrix(
            ([1 / math.sqrt(len(self.features[i])) for i in rows for _ in self.features[i]],
             ([r for r, i in enumerate(rows) for _ in self.features[i]], [b for i in rows for b in self.features[i]])),
            shape=(len(rows), 1 << self.bits))
        svm = LinearSVC(C=C, random_state=0).fit(matrix, [self.targets[i] for i in rows])
        weights = np.zeros((len(self.classes), 1 << self.bits))
        bias = np.full(len(self.classes), -ABSENT)  # a class no item of the fold has is never chosen
        weights[svm.classes_] = svm.coef_
        bias[svm.classes_] = svm.intercept_
        scale = float(np.abs(weights).max()) / 127
        quantised = (np.rint(weights / scale) + 128).astype("<u2").T  # bucket by bucket, a field per class
        meta = {"classes": self.classes, "bits": self.bits, "scale": scale, "temperature": temperature,
                "bias": [float(b) for b in bias]}
        return Model(meta, quantised.tobytes())

    def out_of_fold(self, group: Callable[[dict], str]) -> list[list[float]]:
        """Every item's class scores from a model fitted without the item's group (writer, style)."""
        scores: list[list[float]] = [[] for _ in self.items]
        for name in sorted({group(item) for item in self.items}):
            model = self.fit(lambda index, name=name: group(self.items[index]) != name)
            for index, item in enumerate(self.items):
                if group(item) == name:
                    scores[index] = model.bucket_scores(self.features[index])
        return scores

    def tier_columns(self) -> list[int]:
        return [TIERS.index(self.tiers[name]) for name in self.classes]


def tier_probabilities(scores: Sequence[float], temperature: float, columns: list[int]) -> list[float]:
    by_tier = [0.0] * len(TIERS)
    for column, probability in zip(columns, softmax(list(scores), temperature), strict=True):
        by_tier[column] += probability
    return by_tier


def fit_temperature(prepared: Prepared, scores: list[list[float]]) -> float:
    """The temperature that minimises the log loss of the right tier over out-of-fold scores."""
    columns = prepared.tier_columns()
    wanted = [TIERS.index(item["tier"]) for item in prepared.items]

    def log_loss(temperature: float) -> float:
        return -sum(math.log(max(tier_probabilities(s, temperature, columns)[want], 1e-12))
                    for s, want in zip(scores, wanted, strict=True))

    return min(TEMPERATURES, key=log_loss)


def train(items: list[dict]) -> Model:
    prepared = Prepared(items)
    temperature = fit_temperature(prepared, prepared.out_of_fold(lambda item: item["writer"]))
    return prepared.fit(temperature=temperature)


def serialise(model: Model) -> tuple[bytes, str]:
    meta = {"classes": model.classes, "bits": model.bits, "scale": model.scale, "temperature": model.temperature,
            "bias": model.bias}
    return bytes(model.table), json.dumps(meta, indent=1) + "\n"


def main() -> None:
    items = load_items()
    table, meta = serialise(train(items))
    Path(MODEL_BIN).write_bytes(table)
    Path(MODEL_META).write_text(meta, "utf-8")
    print(f"trained on {len(items)} requests; temperature {json.loads(meta)['temperature']}")


if __name__ == "__main__":
    main()
