"""Routing accuracy on the evaluation set (tests/data/routing_eval.jsonl), through `mcp-router route --batch`.

    python benchmarks/routing_eval.py [--set tests/data/routing_eval.jsonl] [--misses]
    python benchmarks/routing_eval.py --write-examples

The router learns phrasing from example requests (mcp_router/data/routing_examples.jsonl): they are the tune
part of the evaluation set, and `--write-examples` writes them from it. The held-out part never goes there.

For each part (tune: the requests the rules were written against and the router learns from; heldout:
written blind by someone who never saw the rules, and committed before any tuning) it prints accuracy, the
confusion matrix, and under-routing (a task sent to a cheaper tier than it needs). Since the router learns
from the tune part, its own score there is in-sample; the cross-validated figure routes each tune part
(by id letter) with a router that learnt from the other parts only. The router runs on an empty database, so no
feedback promotion or user override changes the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("haiku", "sonnet", "opus")
CONFIDENCE_BANDS = (0.6, 0.8, 0.95)  # lower edges of the bands above the first
EXAMPLES = ROOT / "mcp_router" / "data" / "routing_examples.jsonl"


@dataclass
class PartResult:
    name: str
    total: int = 0
    correct: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, routed) -> count
    decoys: int = 0
    decoys_correct: int = 0
    misses: list[tuple[dict, dict]] = field(default_factory=list)
    by_confidence: Counter[tuple[int, bool]] = field(default_factory=Counter)  # (band, right) -> count

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def under_routed(self) -> int:
        return sum(n for (want, got), n in self.confusion.items() if TIERS.index(got) < TIERS.index(want))

    @property
    def opus_to_haiku(self) -> int:
        return self.confusion[("opus", "haiku")]

    @property
    def haiku_to_opus_share(self) -> float:
        haiku = sum(n for (want, _), n in self.confusion.items() if want == "haiku")
        return self.confusion[("haiku", "opus")] / haiku if haiku else 0.0


def evaluate(items: list[dict]) -> dict[str, PartResult]:
    """Route every item with `mcp-router route --batch` and score it per part."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HOME": tmp, "XDG_CONFIG_HOME": tmp, "XDG_DATA_HOME": tmp,
               "MCP_ROUTER_DB": str(Path(tmp) / "usage.db")}
        batch = "".join(json.dumps({"task": i["task"], "context_tokens": i.get("context_tokens", 0)}) + "\n"
                        for i in items)
        done = subprocess.run([sys.executable, "-m", "mcp_router", "route", "--batch", "-"], input=batch,
                              capture_output=True, text=True, env=env, check=True)
    decisions = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(decisions) == len(items), done.stderr
    return score(items, decisions, [i["split"] for i in items])


def cross_validate(items: list[dict]) -> PartResult:
    """Each tune part (the letter its ids start with) routed by a router whose examples are the other tune
    parts only: how well the example model carries to phrasing it has not seen."""
    from mcp_router.pricing import Catalog
    from mcp_router.routing import Router, load_policy

    tune = [i for i in items if i["split"] == "tune"]
    policy, _ = load_policy()
    catalog, routed, decisions = Catalog.load(), [], []
    for part in sorted({i["id"][0] for i in tune}):
        router = Router(catalog, policy, [(i["task"], i["expected_category"]) for i in tune if i["id"][0] != part])
        held_out = [i for i in tune if i["id"][0] == part]
        routed += held_out
        decisions += [router.route(i["task"], i.get("context_tokens", 0)) for i in held_out]
    name = "cross-validated tune"
    return score(routed, [d.to_dict() for d in decisions], [name] * len(routed))[name]


def score(items: list[dict], decisions: list[dict], parts: list[str]) -> dict[str, PartResult]:
    results: dict[str, PartResult] = {}
    for item, decision, name in zip(items, decisions, parts, strict=True):
        part = results.setdefault(name, PartResult(name))
        want, got = item["expected_tier"], decision["tier"]
        part.by_confidence[(bisect_right(CONFIDENCE_BANDS, decision["confidence"]), want == got)] += 1
        part.total += 1
        part.confusion[(want, got)] += 1
        part.decoys += bool(item.get("decoy"))
        if want == got:
            part.correct += 1
            part.decoys_correct += bool(item.get("decoy"))
        else:
            part.misses.append((item, decision))
    return results


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def report(part: PartResult, show_misses: bool) -> str:
    lines = [f"{part.name}: {part.total} requests ({part.decoys} decoys)",
             f"  accuracy {part.accuracy:.1%} ({part.correct}/{part.total}); decoys"
             f" {part.decoys_correct}/{part.decoys}",
             f"  under-routed {part.under_routed}; opus->haiku {part.opus_to_haiku};"
             f" haiku->opus {part.haiku_to_opus_share:.1%} of haiku tasks",
             "  expected \\ routed   haiku  sonnet    opus"]
    for want in TIERS:
        lines.append(f"  {want:18s}" + "".join(f"{part.confusion[(want, got)]:8d}" for got in TIERS))
    edges = ("0", *(str(edge) for edge in CONFIDENCE_BANDS), "1")
    bands = [(f"{edges[band]}-{edges[band + 1]}", part.by_confidence[(band, True)],
              part.by_confidence[(band, True)] + part.by_confidence[(band, False)]) for band in range(len(edges) - 1)]
    lines.append("  right by confidence: " + "; ".join(f"{label} {right}/{n}" + (f" ({right / n:.0%})" if n else "")
                                                       for label, right, n in bands))
    if show_misses:
        lines += [f"  miss: want {i['expected_tier']:6s} got {d['tier']:6s} ({d['category']}) {i['task']}"
                  for i, d in part.misses]
    return "\n".join(lines)


def examples_text(items: list[dict]) -> str:
    """The router's example file: each tune request with its category, in the evaluation set's order."""
    return "".join(json.dumps({"task": i["task"], "category": i["expected_category"]}) + "\n"
                   for i in items if i["split"] == "tune")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=ROOT / "tests" / "data" / "routing_eval.jsonl")
    parser.add_argument("--misses", action="store_true", help="list every misrouted request")
    parser.add_argument("--write-examples", action="store_true", help=f"write {EXAMPLES.relative_to(ROOT)}")
    args = parser.parse_args()
    if args.write_examples:
        EXAMPLES.write_text(examples_text(load(args.set)), "utf-8")
        return
    items = load(args.set)
    parts = evaluate(items)
    for name in ("tune", "heldout"):
        if name in parts:
            print(report(parts[name], args.misses))
    print(report(cross_validate(items), args.misses))


if __name__ == "__main__":
    main()
