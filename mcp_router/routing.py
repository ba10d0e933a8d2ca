"""Routing: the cheapest adequate tier (haiku / sonnet / opus) for a task, how sure the router is, and why.

The policy is data a user can read: ``data/routing.toml`` (each category's tier, the few rules that are policy
rather than reading, and the confidence below which the router says it is unsure). What a request asks for is
read by a model trained on 50,093 labelled requests from 87 independent writers
(``benchmarks/routing_train.py``), shipped precomputed in ``data/routing_model.bin`` and ``.json``:

1. The request becomes a set of hashed features: its words and word pairs, its character 3- to 5-grams (which
   carry typos, inflections and other languages; outside ASCII also 2-grams; of a long request, its start, its
   end and the lines between them that read as the user's own words), and a few marks of shape (a code fence, a
   stack trace, a diff, its length).
2. Two linear models over those features (linear SVMs, one weight per feature and class, quantised to a
   byte, read in one pass): one scores each category, the other each tier directly. Temperatures fitted on
   predictions for writers the models had not seen turn the scores into calibrated probabilities. A tier's
   probability is the sum of its categories' (``high_stakes`` is the class of tasks whose writer stated high
   stakes), averaged with the tier model's; the tier model's share is spread over the tier's categories in
   proportion to theirs, so a user's override of a category's tier moves its whole probability.
3. The most probable tier wins. When its probability is below ``uncertain_below`` the router says it is unsure,
   names the two most probable tiers, and picks the higher: never Haiku when unsure. The confidence it states
   is how often such decisions were right on writers the model had not seen (a monotone map of the decided
   tier's probability, fitted on those decisions), so that a stated 0.9 is right about 90% of the time.
4. Policy rules only raise the tier: an explicit ask for the best model or stakes the user states in plain first-
   person words (Opus), a mechanical task over a very large context (Sonnet), and a context larger than the
   model's window (the next tier whose window fits).

Only the standard library runs here. The model is read lazily, with ``mmap``: loading costs a few
milliseconds and a decision about one (0.2 ms for a short request, 0.6-1 ms for 200 characters; a long paste, up to
the 64,000 characters read, some tens). Users override a
category's tier in config (``[routing]``) and the bar for "unsure" (``uncertain_below``); feedback promotions live in
the ``category_overrides`` table.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
from array import array
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from zlib import crc32

from .config import MAX_CONTEXT_TOKENS, TIERS, Config
from .pricing import Catalog, Usage
from .transcripts import blank

TYPE_CHECKING = False  # typing and sqlite3 for the type checker only: the advice hook loads this module
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

TYPICAL_OUTPUT_TOKENS = 1000
DATA = os.path.join(os.path.dirname(__file__), "data")
# The policy is routing.toml; the hook reads its JSON twin (tomllib would cost it a tenth of its time).
MODEL_BIN, MODEL_META, POLICY, POLICY_JSON = (os.path.join(DATA, name) for name in (
    "routing_model.bin", "routing_model.json", "routing.toml", "routing_policy.json"))
# A character n-gram sees at most this much of the start and of the end of a long request (a pasted log):
# the ask is usually at either end, and the decision stays under a millisecond.
HEAD_CHARS, TAIL_CHARS = 1500, 500
# ... and at most this much of the lines between them that read as the user's own words (an ask between two pastes).
MIDDLE_CHARS = 1000
# The router reads at most the first READ_HEAD and last READ_TAIL characters of a task (a pasted megabyte
# would take seconds to read whole); shorter tasks are read whole, so their decisions do not change.
READ_HEAD, READ_TAIL = 48_000, 16_000
_WORD = re.compile(r"\w+(?:['.-]\w+)*")
_STRUCTURE = (
    ("fence", re.compile(r"```")),
    ("trace", re.compile(r"Traceback \(most recent|\n\s{1,64}at [\w.$]+\(|^\w+(?:\.\w+)*(?:Error|Exception):", re.M)),
    ("diff", re.compile(r"^(?:@@ |\+\+\+ |--- a/)", re.M)),
)

# What a request quotes (a fenced block, a quoted line, inline code, a phrase in quotation marks) is someone else's
# words: the policy rules, which take the user at their word, read only the rest. A single quotation mark opens a
# quotation only after a non-letter, so that the apostrophes of "don't" and "users'" quote nothing. A quotation
# ends at the next opening mark too, so a line of opening marks is read once, not once per mark (probe 13k).
_QUOTED = re.compile(r"```.*?(?:```|\Z)|^[ \t]*>.*$|`[^`\n]*`|\"[^\"\n]*\"|(?<!\w)'[^'\n]*'(?!\w)|‘[^‘’\n]*’|“[^“”\n]*”"
                     r"|«[^«»\n]*»|„[^„“”\n]*[“”]|「[^「」\n]*」|『[^『』\n]*』", re.S | re.M)


@dataclass(frozen=True)
class Decision:
    tier: str
    model: str
    category: str
    reason: str
    confidence: float
    estimated_cost_usd: float | None
    uncertain: bool = False
    candidates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def features(text: str, bits: int) -> list[int]:
    """The request's hashed features, each once, in a fixed order: words, word pairs, character 3- to 5-grams (and
    2-grams outside ASCII) and marks of shape, hashed (CRC-32, the same in every process) into ``2**bits``
    buckets."""
    lower = text.lower()
    words = _WORD.findall(lower)
    grams = [f"w{word}" for word in words] + [f"b{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    flat = " ".join(lower.split())
    if len(flat) > HEAD_CHARS + TAIL_CHARS:
        flat = f"{flat[:HEAD_CHARS]} … {_own_words(lower[HEAD_CHARS:-TAIL_CHARS])} … {flat[-TAIL_CHARS:]}"
    flat = f" {flat} "
    mask = (1 << bits) - 1
    # surrogatepass: a non-UTF-8 byte in a shell argument arrives as a lone surrogate; valid text hashes the same
    hashes = [crc32(gram.encode("utf-8", "surrogatepass")) & mask for gram in grams]
    data = flat.encode("utf-8", "surrogatepass")
    if len(data) == len(flat):  # ASCII: a character n-gram is a byte n-gram, hashed without making its string
        seed, view = crc32(b"c"), memoryview(data)
        hashes += [crc32(view[i:i + n], seed) & mask for n in (3, 4, 5) for i in range(len(data) - n + 1)]
    else:
        hashes += [crc32(f"c{flat[i:i + n]}".encode("utf-8", "surrogatepass")) & mask
                   for n in (3, 4, 5) for i in range(len(flat) - n + 1)]
        # Two characters outside ASCII are often a whole word (Chinese, Japanese) or a stem (Hindi, Arabic)
        hashes += [crc32(f"c{pair}".encode("utf-8", "surrogatepass")) & mask
                   for i in range(len(flat) - 1) if not (pair := flat[i:i + 2]).isascii()]
    shape = [f"s{name}" for name, pattern in _STRUCTURE if pattern.search(text)]
    shape.append(f"slength{len(text).bit_length()}")
    hashes += [crc32(gram.encode()) & mask for gram in shape]
    return list(dict.fromkeys(hashes))


def _own_words(text: str) -> str:
    """At most ``MIDDLE_CHARS`` of the lines of ``text`` that read as someone's own words: outside a code fence, a
    line that starts with a letter and is mostly letters and spaces (not a log, trace, table or code line), each
    once (a line a paste repeats is the paste's)."""
    kept: list[str] = []
    size, fenced, seen = 0, False, set()
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and len(line) >= 12 and line[0].isalpha() and line not in seen:
            seen.add(line)
            letters = sum(map(str.isalpha, line)) + line.count(" ")
            if letters >= 0.85 * len(line):
                kept.append(" ".join(line.split()))
                size += len(kept[-1]) + 1
                if size >= MIDDLE_CHARS:
                    break
    return " ".join(kept)[:MIDDLE_CHARS]


class Model:
    """Two linear models over hashed features (one over categories, one over tiers), their weights quantised to one
    byte.

    A class's score for a request with ``n`` features is ``bias + scale * sum(weight - 128) / sqrt(n)``
    (each feature's value is ``1 / sqrt(n)``). The table holds, for each bucket, one little-endian 16-bit field
    per class (the categories, then the tiers) with the weight (0-255) in its low byte, so one integer addition
    adds a feature's weights for every class at once; 256 weights of at most 255 fit in 16 bits, so the fields
    are read back every 256."""

    def __init__(self, meta: dict[str, Any], table: bytes | mmap.mmap):
        self.classes: list[str] = meta["classes"]
        self.class_tiers: list[int] = [TIERS.index(tier) for tier in meta["class_tiers"]]
        self.bits: int = meta["bits"]
        self.bias: list[float] = meta["bias"]
        self.scale: float = meta["scale"]
        self.temperature: float = meta["temperature"]
        self.tier_temperature: float = meta["tier_temperature"]
        self.tier_weight: float = meta["tier_weight"]
        self.calibration: list[tuple[float, float]] = [(x, y) for x, y in meta["calibration"]]
        self.table = table
        self.rows: _Rows | None = None  # see remember_rows
        self.width = 2 * (len(self.classes) + len(TIERS))
        if len(table) != self.width << self.bits or len(self.bias) != len(self.classes) + len(TIERS):
            raise ValueError("the routing model's table does not match its metadata: retrain it")

    @classmethod
    def load(cls) -> Model:
        with open(MODEL_META, encoding="utf-8") as meta, open(MODEL_BIN, "rb") as table:
            return cls(json.load(meta), mmap.mmap(table.fileno(), 0, access=mmap.ACCESS_READ))

    def remember_rows(self) -> None:
        """Keep each bucket's row of weights once read, as one integer: routing thousands of requests (an ingest)
        then adds integers instead of reading the table again, three times faster. Up to one integer per bucket
        (``2**bits``): for a process routing many requests at once, not one routing now and then."""
        if self.rows is None:
            self.rows = _Rows(self.table, self.width)

    def weight_sums(self, buckets: list[int]) -> list[int]:
        sums = [0] * (self.width // 2)
        table, width, rows = self.table, self.width, self.rows
        for start in range(0, len(buckets), 256):
            if rows is not None:
                packed = sum(map(rows.__getitem__, buckets[start:start + 256]))
            else:
                packed = 0
                for bucket in buckets[start:start + 256]:
                    offset = bucket * width
                    packed += int.from_bytes(table[offset:offset + width], "little")
            for column, value in enumerate(array("H", packed.to_bytes(width, "little"))):
                sums[column] += value
        return sums

    def scores(self, text: str) -> list[float]:
        """Each class's score (the categories', then the tiers'), not yet tempered."""
        return self.bucket_scores(features(text, self.bits))

    def bucket_scores(self, buckets: list[int]) -> list[float]:
        n = len(buckets)
        factor = self.scale / math.sqrt(n)
        return [bias + factor * (total - 128 * n) for bias, total in zip(self.bias, self.weight_sums(buckets),
                                                                          strict=True)]

    def probabilities(self, text: str) -> list[float]:
        return self.combine(self.scores(text))

    def combine(self, scores: list[float]) -> list[float]:
        """Each category's probability: the category model's, averaged with the tier model's probability of the
        category's tier, spread over that tier's categories in proportion to the category model's."""
        categories = softmax(scores[:len(self.classes)], self.temperature)
        tiers = softmax(scores[len(self.classes):], self.tier_temperature)
        in_tier = [0.0] * len(TIERS)
        for tier, probability in zip(self.class_tiers, categories, strict=True):
            in_tier[tier] += probability
        weight = self.tier_weight
        return [(1 - weight) * p + weight * tiers[tier] * p / in_tier[tier] if in_tier[tier] else (1 - weight) * p
                for tier, p in zip(self.class_tiers, categories, strict=True)]


    def calibrated(self, probability: float) -> float:
        """How often a decision for a tier of this probability is right: the monotone map fitted on decisions for
        writers the model had not seen (the identity when the model has no map)."""
        points = self.calibration
        if not points:
            return probability
        at = bisect_left(points, (probability,))
        if at == 0:
            return points[0][1]
        if at == len(points):
            return points[-1][1]
        (x0, y0), (x1, y1) = points[at - 1], points[at]
        return y0 + (y1 - y0) * (probability - x0) / (x1 - x0)


class _Rows(dict[int, int]):
    """The rows of a model's table read so far, each as one integer (see ``Model.weight_sums``)."""

    def __init__(self, table: bytes | mmap.mmap, width: int):
        super().__init__()
        self.table, self.width = table, width

    def __missing__(self, bucket: int) -> int:
        offset = bucket * self.width
        row = self[bucket] = int.from_bytes(self.table[offset:offset + self.width], "little")
        return row


def softmax(scores: list[float], temperature: float) -> list[float]:
    top = max(scores)
    weights = [math.exp((score - top) / temperature) for score in scores]
    total = sum(weights)
    return [weight / total for weight in weights]


@dataclass(frozen=True)
class _Rule:
    name: str
    tier: str
    patterns: tuple[re.Pattern[str], ...]
    negation: re.Pattern[str] | None = None  # matched against the words just before an ask: "don't use opus"

    def match(self, text: str) -> str | None:
        """The words of ``text`` outside quotations that ask for this rule's tier, if any."""
        if not any(pattern.search(text) for pattern in self.patterns):
            return None
        own = _QUOTED.sub(" ", text)
        for pattern in self.patterns:
            for m in pattern.finditer(own):
                if self.negation is None or not self.negation.search(own, max(0, m.start() - 40), m.start()):
                    return m.group(0)
        return None


class Router:
    def __init__(self, catalog: Catalog, policy: dict[str, Any], overrides: dict[str, str] | None = None,
                 model: Model | None = None):
        self.catalog = catalog
        overrides = overrides or {}
        self.tiers = {name: overrides.get(name, tier) for name, tier in policy["categories"].items()}
        self.mechanical = frozenset(policy["mechanical"])
        self.uncertain_below: float = policy["uncertain_below"]
        self.large_context_tokens: int = policy["large_context_tokens"]
        self.rules = [_Rule(rule["name"], rule["tier"], tuple(re.compile(p, re.I) for p in rule["patterns"]),
                            re.compile(rule["unless_after"], re.I) if "unless_after" in rule else None)
                      for rule in policy.get("rules", [])]
        self._model = model

    @classmethod
    def load(cls, catalog: Catalog, config: Config, conn: sqlite3.Connection | None = None) -> Router:
        policy = load_policy()
        if config.uncertain_below is not None:
            policy["uncertain_below"] = config.uncertain_below
        overrides = dict(config.routing)
        unknown = set(overrides) - set(policy["categories"])
        if unknown:
            raise ValueError(f"routing.{sorted(unknown)[0]}: unknown category "
                             f"(known: {', '.join(sorted(policy['categories']))})")
        if conn is not None:
            overrides.update({row[0]: row[1] for row in conn.execute("SELECT category, tier FROM category_overrides")})
        return cls(catalog, policy, overrides)

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = Model.load()
        return self._model

    def classify(self, task: str) -> str:
        """The most probable category of the task."""
        probabilities = self.model.probabilities(readable(task))
        return self.model.classes[max(range(len(probabilities)), key=lambda k: (probabilities[k], -k))]

    def route(self, task: str, context_tokens: int = 0) -> Decision:
        if not 0 <= context_tokens <= MAX_CONTEXT_TOKENS:
            got = f"{context_tokens:,}" if abs(context_tokens) < 10**18 else "far more" if context_tokens > 0 else "<0"
            raise ValueError(f"context_tokens must be from 0 to {MAX_CONTEXT_TOKENS:,}, got {got}")
        if blank(task):
            raise ValueError(NOT_TEXT if not_text(task) else
                             "the task is empty: describe the work to route, e.g. 'summarise this build log'")
        return self.decide(task, context_tokens, self.model.probabilities(readable(task)))

    def decide(self, task: str, context_tokens: int, probabilities: list[float]) -> Decision:
        """The decision, given the model's probability of each class (in ``model.classes`` order)."""
        by_tier = dict.fromkeys(TIERS, 0.0)
        for name, probability in zip(self.model.classes, probabilities, strict=True):
            by_tier[self.tiers[name]] += probability
        ranked = sorted(TIERS, key=lambda tier: (-by_tier[tier], -_rank(tier)))
        uncertain = by_tier[ranked[0]] < self.uncertain_below
        candidates = sorted(ranked[:2], key=_rank) if uncertain else [ranked[0]]
        tier = candidates[-1]
        category = self._category_in(tier, probabilities)
        calibrated = self.model.calibrated
        confidence = calibrated(by_tier[tier])
        reasons = [f"reads as {category.replace('_', ' ')} ({confidence:.0%} {tier})"]
        if uncertain:
            reasons.append(f"unsure between {' and '.join(candidates)}: the higher tier")
        text = readable(task)
        for rule in self.rules:
            if _rank(rule.tier) > _rank(tier) and (hit := rule.match(text)):
                tier, confidence = rule.tier, 1.0  # policy, not a reading: right by definition
                reasons.append(f"{rule.name} ({hit!r}): {tier}")
        prompt_tokens = context_tokens + estimated_tokens(task)  # a task that is a pasted log is a large input too
        if (_rank(tier) < _rank("sonnet") and prompt_tokens >= self.large_context_tokens
                and category in self.mechanical):
            tier, confidence = "sonnet", calibrated(min(by_tier["haiku"] + by_tier["sonnet"], 1.0))
            reasons.append(f"a large input ({prompt_tokens:,} tokens) needs Sonnet")
        tier, window_note = self._fit_window(tier, prompt_tokens)
        if window_note:
            reasons.append(window_note)
        if tier != candidates[-1]:  # policy decided, not the reading
            uncertain, candidates = False, [tier]
        model = self.catalog.get(tier)
        return Decision(
            tier=tier, model=model.id, category=category, reason="; ".join(reasons) + ".",
            confidence=round(min(confidence, 1.0), 2),
            estimated_cost_usd=_round(self.catalog.cost(model.id, Usage(prompt_tokens, TYPICAL_OUTPUT_TOKENS))),
            uncertain=uncertain, candidates=candidates,
        )

    def _category_in(self, tier: str, probabilities: list[float]) -> str:
        """The most probable category of ``tier`` (the tier may come from the sum of several)."""
        classes = self.model.classes
        in_tier = [k for k, name in enumerate(classes) if self.tiers[name] == tier] or range(len(classes))
        return classes[max(in_tier, key=lambda k: (probabilities[k], -k))]

    def _fit_window(self, tier: str, prompt_tokens: int) -> tuple[str, str]:
        for candidate in TIERS[_rank(tier):]:
            window = self.catalog.get(candidate).context_window
            if window is None or prompt_tokens <= window:
                note = "" if candidate == tier else f"{prompt_tokens:,} tokens exceed {tier}'s window"
                return candidate, note
        return tier, f"{prompt_tokens:,} tokens exceed every model's window: split the input"


NOT_TEXT = "the task holds no text, only bytes that are not UTF-8 or lone surrogates (\\ud800-\\udfff)"


def not_text(task: str) -> bool:
    """Whether ``task`` cannot be written as UTF-8 (invalid bytes passed through, a lone surrogate)."""
    try:
        task.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def estimated_tokens(text: str) -> int:
    """About how many tokens ``text`` is: four characters a token in ASCII, about one a character in Chinese or
    Japanese (its UTF-8 bytes beyond one a character say how much of it is outside ASCII)."""
    beyond_ascii = len(text.encode("utf-8", "surrogatepass")) - len(text)
    return (len(text) + beyond_ascii * 3 // 2) // 4


def readable(task: str) -> str:
    """What the router reads of a task: all of it, or its first ``READ_HEAD`` and last ``READ_TAIL`` characters."""
    if len(task) <= READ_HEAD + READ_TAIL:
        return task
    return f"{task[:READ_HEAD]}\n…\n{task[-READ_TAIL:]}"


def load_policy() -> dict[str, Any]:
    """The built-in policy (data/routing.toml, read from its JSON twin, which a test keeps equal)."""
    with open(POLICY_JSON, encoding="utf-8") as file:
        return json.load(file)


def _round(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 6)  # an estimate: no float noise in the last digits


def _rank(tier: str) -> int:
    return TIERS.index(tier)
