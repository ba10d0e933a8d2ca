"""Build the routing training set: every writer's requests beside their second, blind label; keep only the items
both label the same (category and tier), and record how often they agreed.

    python benchmarks/routing_data_build.py [--source DIR]

Writers' files: `benchmarks/routing_data/train/<writer>.jsonl` when the writer's data is in the repository,
else the finished files of 100 in `<source>/<writer>/NN.jsonl` (a file still being written is skipped until the
writer's `DONE` marks it whole). The legacy requests are tests/data/routing_eval.jsonl (writer `legacy`, the id's
letter is the part). Second labels: `benchmarks/routing_data/labels/<writer>.jsonl`, else `<source>/labels/`.
An item without a second label yet is left out. Writes `benchmarks/routing_data/kept.jsonl` (what the router
learns from, in a fixed order) and the agreement table in `benchmarks/routing_data/README.md`.
Held-out sets are never read here.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "routing_data"
KEPT = DATA / "kept.jsonl"
LEGACY = ROOT / "tests" / "data" / "routing_eval.jsonl"
WRITERS = ("legacy", "w1", "w2", "w3", "w4", "w5", "ha", "hb", "hc", "w6", "w7", "w8", "w9", "w10", "hd", "he", "hf",
           "w11", "w12", "w13", "w14", "w15", "w16", "w17", "w18", "hg", "hh", "hi", "w19", "w20", "w21",
           "w22", "w23", "hj", "hk", "hl", "w24", "w25", "w26", "hm", "hn", "ho", "w27", "w28", "w29", "hp", "hq",
           "hr", "w30", "w31", "w32", "w33", "w34", "hs", "ht", "hu", "hv", "hw", "hx", "w35", "w36", "w37",
           "w38", "w39", "w40", "w41", "w42", "w43", "w44", "hy", "hz", "ia", "w45", "w46", "w47", "w48", "w49",
           "w50", "ib", "ic", "id", "w51", "w52", "w53", "w54", "w55", "w56")
TABLE_START, TABLE_END = "<!-- agreement:start -->", "<!-- agreement:end -->"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def writer_items(writer: str, source: Path) -> list[dict]:
    """The writer's requests with their provenance, as the writer labelled them."""
    if writer == "legacy":
        return [{**item, "writer": "legacy", "style": "legacy", "domain": "mixed", "batch": f"legacy-{item['id'][0]}"}
                for item in _read(LEGACY)]
    if (committed := DATA / "train" / f"{writer}.jsonl").exists():
        return _read(committed)
    folder = source / writer
    done = (folder / "DONE").exists()
    files = sorted(p for p in folder.glob("*.jsonl") if re.fullmatch(r"\d+\.jsonl", p.name))
    items: list[dict] = []
    for path in files:
        lines = [line for line in path.read_text("utf-8").splitlines() if line.strip()]
        if done or len(lines) >= 100:
            items += map(json.loads, lines)
    return items


def second_labels(writer: str, source: Path) -> dict[str, dict]:
    for path in (DATA / "labels" / f"{writer}.jsonl", source / "labels" / f"{writer}.jsonl"):
        if path.exists():
            labels: dict[str, dict] = {}
            for line in path.read_text("utf-8").splitlines():
                try:
                    label = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                labels[label["id"]] = label
            return labels
    return {}


def build(source: Path) -> tuple[list[dict], list[tuple[str, int, int, int, int, int]]]:
    """The kept items, and per writer: written, second-labelled, tier agreed, category agreed, kept."""
    kept: list[dict] = []
    seen: set[str] = set()
    rows = []
    for writer in WRITERS:
        items, labels = writer_items(writer, source), second_labels(writer, source)
        labelled = tier_agreed = category_agreed = kept_here = 0
        for item in items:
            label = labels.get(item["id"])
            if label is None:
                continue
            labelled += 1
            same_tier = label["tier"] == item["expected_tier"]
            same_category = label["category"] == item["expected_category"]
            tier_agreed += same_tier
            category_agreed += same_category
            key = " ".join(item["task"].lower().split())
            if same_tier and same_category and key not in seen:
                seen.add(key)
                kept_here += 1
                kept.append({"id": item["id"], "task": item["task"],
                             **({"context_tokens": item["context_tokens"]} if item.get("context_tokens") else {}),
                             "category": item["expected_category"], "tier": item["expected_tier"],
                             "decoy": bool(item.get("decoy")), "writer": item["writer"], "style": item["style"],
                             "domain": item.get("domain", ""), "batch": item["batch"]})
        rows.append((writer, len(items), labelled, tier_agreed, category_agreed, kept_here))
    return kept, rows


def agreement_table(rows: list[tuple[str, int, int, int, int, int]]) -> str:
    def pct(n: int, d: int) -> str:
        return f"{n / d:.1%}" if d else "—"

    lines = ["| writer | written | second-labelled | tier agreement | category agreement | kept |",
             "| --- | --- | --- | --- | --- | --- |"]
    for writer, written, labelled, tiers, categories, kept in rows:
        lines.append(f"| {writer} | {written} | {labelled} | {pct(tiers, labelled)} | {pct(categories, labelled)}"
                     f" | {kept} |")
    total = [sum(row[i] for row in rows) for i in range(1, 6)]
    lines.append(f"| **all** | {total[0]} | {total[1]} | {pct(total[2], total[1])} | {pct(total[3], total[1])}"
                 f" | **{total[4]}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/work/routing-work"),
                        help="where writers' files and labels are before they are committed")
    args = parser.parse_args()
    kept, rows = build(args.source)
    KEPT.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in kept), "utf-8")
    readme = (DATA / "README.md").read_text("utf-8")
    table = (f"{TABLE_START}\nKept: an item both its writer and its second labeler put in the same category and"
             f" tier (exact duplicates dropped). Made by `python benchmarks/routing_data_build.py`.\n\n"
             f"{agreement_table(rows)}\n{TABLE_END}")
    if TABLE_START in readme:
        readme = readme[:readme.index(TABLE_START)] + table + readme[readme.index(TABLE_END) + len(TABLE_END):]
    else:
        readme = readme.rstrip("\n") + "\n\n## Second labels and agreement\n\n" + table + "\n"
    (DATA / "README.md").write_text(readme, "utf-8")
    print(agreement_table(rows))
    print(f"kept {len(kept)} of {sum(row[1] for row in rows)}; by tier {dict(Counter(i['tier'] for i in kept))}")


if __name__ == "__main__":
    main()
