"""How well the router generalises: cross-validation by writer and by style on the training set, and, only when
asked, the shipped router on the held-out sets.

    python benchmarks/routing_eval.py               # leave-one-writer-out and leave-one-style-out (refits every fold)
    python benchmarks/routing_eval.py --kept        # leave-one-writer-out from the scores routing_train.py kept
    python benchmarks/routing_eval.py --kept --uncertain-below 0.66   # ... at another bar for "unsure"
    python benchmarks/routing_eval.py --no-rules    # the same without the policy rules (do they help?)
    python benchmarks/routing_eval.py --heldout     # the shipped router on each held-out set: aggregates only
    python benchmarks/routing_eval.py --probes      # the shipped router on the independent probers' sets

Cross-validation routes each training request (benchmarks/routing_data/kept.jsonl) with a model fitted without
its writer (or its style), through the router's own decision code; the temperatures and the map from probability
to stated confidence are fitted on those same out-of-fold scores, as routing_train.py does. The held-out sets
(benchmarks/routing_data/heldout/*.jsonl) were written by writers who saw neither the training data nor the
rules; they are routed by the shipped router through `mcp-router route --batch` on an empty database and reported
as aggregates only, never item by item, so that nobody tunes on them. The probers' sets
(benchmarks/routing_data/probes/*.jsonl) were written by independent probers to attack a frozen router: p13j a
prober's own voices, second-labelled blind (the 248 of 250 both labelled the same); p13l another prober's
adversarial requests, labelled by it before routing. They were read after scoring, so they measure, not certify.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.routing_train import (  # noqa: E402
    Prepared,
    fit_calibration,
    fit_temperatures,
    load_items,
    load_out_of_fold,
)
from mcp_router.config import TIERS  # noqa: E402
from mcp_router.pricing import Catalog  # noqa: E402
from mcp_router.routing import Router, load_policy  # noqa: E402

HELDOUT = ROOT / "benchmarks" / "routing_data" / "heldout"
HELDOUT_LABELS = ROOT / "benchmarks" / "routing_data" / "labels" / "heldout.jsonl"
PROBES = ROOT / "benchmarks" / "routing_data" / "probes"
BANDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # lower edges of the reliability bands above the first


@dataclass
class Result:
    """Decisions against the labels: accuracy, the dangerous errors, sure decisions, reliability."""
    name: str
    total: int = 0
    correct: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, routed) -> count
    sure: int = 0
    sure_correct: int = 0
    bands: Counter[tuple[int, bool]] = field(default_factory=Counter)  # (band, right) -> count
    stated: Counter[int] = field(default_factory=Counter)  # band -> sum of stated confidence, in hundredths

    def add(self, want: str, decision: dict) -> None:
        got, right = decision["tier"], decision["tier"] == want
        self.total += 1
        self.correct += right
        self.confusion[(want, got)] += 1
        if not decision["uncertain"]:
            self.sure += 1
            self.sure_correct += right
        band = sum(decision["confidence"] >= edge for edge in BANDS)
        self.bands[(band, right)] += 1
        self.stated[band] += round(decision["confidence"] * 100)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def opus_to_haiku(self) -> int:
        return self.confusion[("opus", "haiku")]

    @property
    def haiku_to_opus_share(self) -> float:
        haiku = sum(n for (want, _), n in self.confusion.items() if want == "haiku")
        return self.confusion[("haiku", "opus")] / haiku if haiku else 0.0

    @property
    def sure_coverage(self) -> float:
        return self.sure / self.total if self.total else 0.0

    @property
    def sure_accuracy(self) -> float:
        return self.sure_correct / self.sure if self.sure else 0.0

    def reliability(self) -> list[tuple[str, int, float, float]]:
        """(band, decisions, mean stated confidence, observed accuracy) for each band with decisions."""
        edges = ("0", *(str(edge) for edge in BANDS), "1")
        rows = []
        for band in range(len(BANDS) + 1):
            n = self.bands[(band, True)] + self.bands[(band, False)]
            if n:
                rows.append((f"{edges[band]}-{edges[band + 1]}", n, self.stated[band] / 100 / n,
                             self.bands[(band, True)] / n))
        return rows

    def summary(self) -> str:
        return (f"{self.accuracy:.1%} ({self.correct}/{self.total}); opus->haiku {self.opus_to_haiku};"
                f" haiku->opus {self.haiku_to_opus_share:.1%} of haiku tasks; sure {self.sure_coverage:.1%} of"
                f" requests, right {self.sure_accuracy:.2%}")  # two places: the 98% target is read at the bar

    def report(self) -> str:
        lines = [f"{self.name}: {self.summary()}", "  expected \\ routed   haiku  sonnet    opus"]
        lines += [f"  {want:18s}" + "".join(f"{self.confusion[(want, got)]:8d}" for got in TIERS) for want in TIERS]
        lines.append("  reliability (confidence band: decisions, stated, observed): " + "; ".join(
            f"{band} {n} {stated:.2f} {observed:.2f}" for band, n, stated, observed in self.reliability()))
        return "\n".join(lines)


def cross_validate(prepared: Prepared, grouping: str, name: str, rules: bool = True,
                   scores: list[list[float]] | None = None,
                   uncertain_below: float | None = None) -> tuple[Result, dict[str, Result]]:
    """Every training request routed by the router's decision code with a model fitted without the requests
    sharing its ``grouping`` (writer, style; ``scores``: those models' scores, if already computed), at the
    policy's bar for "unsure" or at ``uncertain_below``."""
    scores = scores or prepared.out_of_fold(grouping)
    policy = load_policy()
    if uncertain_below is not None:
        policy = {**policy, "uncertain_below": uncertain_below}
    if not rules:
        policy = {**policy, "rules": []}
    temperatures = fit_temperatures(prepared, scores)
    model = prepared.combiner(temperatures, fit_calibration(prepared, scores, temperatures, policy))
    router = Router(Catalog.load(), policy, model=model)
    overall, by_group = Result(name), {}
    for item, item_scores in zip(prepared.items, scores, strict=True):
        decision = router.decide(item["task"], item.get("context_tokens", 0), model.combine(item_scores))
        overall.add(item["tier"], decision.to_dict())
        by_group.setdefault(item[grouping], Result(item[grouping])).add(item["tier"], decision.to_dict())
    return overall, by_group


def route_batch(items: list[dict]) -> list[dict]:
    """The shipped router's decisions through `mcp-router route --batch`, on an empty database."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HOME": tmp, "XDG_CONFIG_HOME": tmp, "XDG_DATA_HOME": tmp,
               "MCP_ROUTER_DB": str(Path(tmp) / "usage.db")}
        batch = "".join(json.dumps({"task": i["task"], "context_tokens": i.get("context_tokens") or 0}) + "\n"
                        for i in items)
        done = subprocess.run([sys.executable, "-m", "mcp_router", "route", "--batch", "-"], input=batch,
                              capture_output=True, text=True, env=env, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def scored(name: str, items: list[dict]) -> Result:
    """The shipped router's decisions on ``items``, each against its ``expected_tier``."""
    result = Result(f"{name} ({len(items)} requests)")
    for item, decision in zip(items, route_batch(items), strict=True):
        result.add(item["expected_tier"], decision)
    return result


def heldout_sets() -> list[str]:
    return sorted(path.stem for path in HELDOUT.glob("*.jsonl"))


def heldout_results(names: Sequence[str] = ()) -> list[Result]:
    """Each held-out set (or those named), on the requests whose second, blind label gives the same tier (the rule
    fixed in routing_data/README.md before any set was scored)."""
    tiers = {label["id"]: label["tier"] for label in map(json.loads, HELDOUT_LABELS.read_text("utf-8").splitlines())}
    results = []
    for path in (HELDOUT / f"{name}.jsonl" for name in names or heldout_sets()):
        items = [item for line in path.read_text("utf-8").splitlines() if line.strip()
                 if tiers.get((item := json.loads(line))["id"]) == item["expected_tier"]]
        results.append(scored(f"held-out {path.stem}", items))
    return results


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a probability from 0 to 1, got {text}")
    return value


def probe_results() -> list[Result]:
    """Each prober's set, every request scored against its label."""
    return [scored(f"probe {path.stem}", [json.loads(line) for line in path.read_text("utf-8").splitlines()
                                          if line.strip()])
            for path in sorted(PROBES.glob("*.jsonl"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", action="store_true", help="score the shipped router on the held-out sets")
    parser.add_argument("--probes", action="store_true", help="score the shipped router on the probers' sets")
    parser.add_argument("--no-rules", action="store_true", help="cross-validate without the policy rules")
    parser.add_argument("--kept", action="store_true", help="leave-one-writer-out from the scores routing_train.py"
                        " kept (benchmarks/routing_data/out_of_fold.json.gz): seconds instead of refitting every fold")
    parser.add_argument("--uncertain-below", type=probability, metavar="P",
                        help="cross-validate at this bar for 'unsure' instead of the policy's (how the bar is chosen)")
    args = parser.parse_args()
    if (args.heldout or args.probes) and args.uncertain_below is not None:
        parser.error("--uncertain-below is for cross-validation; --heldout and --probes score the shipped router at"
                     " its own bar")
    if args.heldout or args.probes:
        for result in heldout_results() if args.heldout else probe_results():
            print(result.report())
        return
    prepared = Prepared(load_items())
    print(f"training set: {len(prepared.items)} requests")
    kept = load_out_of_fold(prepared) if args.kept else None  # the writer folds' scores only
    groupings = [("leave-one-writer-out", "writer")] + ([] if args.kept else [("leave-one-style-out", "style")])
    for name, grouping in groupings:
        overall, by_group = cross_validate(prepared, grouping, name, rules=not args.no_rules, scores=kept,
                                           uncertain_below=args.uncertain_below)
        print(overall.report())
        for result in by_group.values():
            print(f"  {result.name}: {result.summary()}")


if __name__ == "__main__":
    main()
