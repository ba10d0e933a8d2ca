"""Routing: the cheapest adequate tier (haiku / sonnet / opus) for a task, with the reason.

The policy is data: ``data/routing.toml`` (categories with a tier and weighted signals, and the modifiers)
and ``data/routing_examples.jsonl`` (labelled example requests). Deciding takes well under a millisecond
and needs no network and no large model:

1. What is asked for: every category's signals (regular expressions) are weighed against the request (a
   signal just after a negation such as "don't" does not count; one at the very start, the main verb,
   counts one more), plus the log probability, under a naive Bayes model of the examples, that the request
   is one of that category's. The examples catch the phrasing no signal names; the signals decide where
   they speak. The highest score wins; a tie goes to the higher tier, because under-routing costs more.
2. What it touches and what is at stake: a task that needs thought (building, fixing, judging) and
   touches a sensitive topic becomes that topic's category (writing auth code is security work);
   difficulty or scope ("intermittent", "across 9 services") makes it non-obvious debugging; stakes the
   user names, or an explicit request for the best model, send it to Opus; "production" moves it up one
   tier. A mechanical task (look up, summarise, convert, extract, label, boilerplate) keeps its tier
   whatever it touches, except a rename or reformat of what others depend on (a session cookie, a
   production column, a public API field), a large input (Sonnet), and a close call between a mechanical
   reading and an Opus-tier one (Sonnet): Haiku gets only what is clearly Haiku's.

The context must fit the model's window; if it does not, the next tier whose window fits is chosen.
Users override a category's tier in config (``[routing]``); feedback promotions live in the
``category_overrides`` table.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, NamedTuple

from .config import TIERS, Config
from .pricing import Catalog, Usage

TYPICAL_OUTPUT_TOKENS = 1000


@dataclass(frozen=True)
class Decision:
    tier: str
    model: str
    category: str
    reason: str
    confidence: float
    estimated_cost_usd: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Signal:
    pattern: re.Pattern[str]
    weight: int


@dataclass(frozen=True)
class _Category:
    name: str
    tier: str
    kind: str
    signals: tuple[_Signal, ...]

    @property
    def mechanical(self) -> bool:
        return self.kind == "mechanical"


@dataclass(frozen=True)
class _Topic:
    to: str
    sources: frozenset[str]
    signals: tuple[re.Pattern[str], ...]


def _compile(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.I) for p in patterns)


_WORD = re.compile(r"[a-z0-9_]+(?:['./-][a-z0-9_]+)*")
_FILE_EXTENSION = re.compile(r"\.([a-z]{1,5})$")


def _features(text: str) -> set[str]:
    """Words, word pairs and the first word; a file path becomes its extension, since names say little."""
    words = []
    for word in _WORD.findall(text.lower()):
        if "." in word and not word[0].isdigit() and (extension := _FILE_EXTENSION.search(word)):
            words += ["<file>", f"<.{extension.group(1)}>"]
        elif "/" in word:
            words.append("<path>")
        else:
            words.append(word.replace("'", "") if "'" in word else word)
    features = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}
    if words:
        features.add(f"^{words[0]}")
    return features


class _ExampleModel:
    """Naive Bayes over the policy's labelled example requests: how much each category's examples look like a
    request. It catches what no signal names ("eyes on this diff, anything I'll regret?").

    Stored sparsely: a feature's log likelihood under a category is that category's baseline (the feature
    never seen in its examples) plus a lift for the categories whose examples had it."""

    SMOOTHING = 0.5

    def __init__(self, examples: list[tuple[str, str]], categories: list[str]):
        counts = {name: Counter[str]() for name in categories}
        for text, category in examples:
            counts[category].update(_features(text))
        vocabulary_size = len(set().union(*counts.values()))
        self.categories = categories
        self.baseline = [math.log(self.SMOOTHING) - math.log(counts[name].total() + self.SMOOTHING * vocabulary_size)
                         for name in categories]
        self.lifts: dict[str, dict[int, float]] = {}
        for column, name in enumerate(categories):
            for feature, count in counts[name].items():
                self.lifts.setdefault(feature, {})[column] = math.log((count + self.SMOOTHING) / self.SMOOTHING)

    def log_posteriors(self, text: str) -> dict[str, float]:
        """log P(category | text) with equal priors, from the features seen in the examples; empty if none is."""
        # In a fixed order, so that the sums, and any tie they make, are the same in every process.
        known = [lifts for feature in sorted(_features(text)) if (lifts := self.lifts.get(feature))]
        if not known:
            return {}
        totals = [len(known) * base for base in self.baseline]
        for lifts in known:
            for column, lift in lifts.items():
                totals[column] += lift
        top = max(totals)
        norm = top + math.log(sum(math.exp(t - top) for t in totals))
        return {name: total - norm for name, total in zip(self.categories, totals, strict=True)}

    def telling_words(self, text: str, category: str, count: int = 2) -> list[str]:
        """The words of ``text`` that point most to ``category``, to explain a decision no signal made."""
        column = self.categories.index(category)
        mean_baseline = sum(self.baseline) / len(self.baseline)
        pull = {feature: self.baseline[column] + lifts.get(column, 0.0)
                - mean_baseline - sum(lifts.values()) / len(self.baseline)
                for feature in _features(text) if feature[0] not in "<^" and (lifts := self.lifts.get(feature))}
        return sorted((feature for feature in pull if pull[feature] > 0), key=lambda f: (-pull[f], f))[:count]


class _Reading(NamedTuple):
    category: _Category
    hits: list[str]
    rival: _Category | None  # an Opus-tier category that came close, or whose signals alone are strong
    gaps: dict[_Category, float]  # how far each category's score is below the best one's; empty: nothing known

    @property
    def margin(self) -> float | None:
        """How far the reading is ahead of the best reading of another tier; None when nothing is known."""
        return min((gap for category, gap in self.gaps.items() if category.tier != self.category.tier), default=None)


class Router:
    def __init__(self, catalog: Catalog, policy: dict[str, Any], examples: list[tuple[str, str]],
                 overrides: dict[str, str] | None = None):
        self.catalog = catalog
        overrides = overrides or {}
        self.categories = [
            _Category(name, overrides.get(name, spec["tier"]), spec["kind"],
                      tuple(_Signal(re.compile(s["re"], re.I), s["w"]) for s in spec["signals"]))
            for name, spec in policy["categories"].items()
        ]
        self.by_name = {c.name: c for c in self.categories}
        self.default = self.by_name[policy["default_category"]]
        self.examples = _ExampleModel(examples, list(self.by_name))
        self.example_weight, self.close_call = policy["example_weight"], policy["close_call"]
        self.topic_support, self.strong_signal = policy["topic_support"], policy["strong_signal"]
        self.margin_scale = policy["confidence_margin_scale"]
        self.filler = re.compile(policy["filler"], re.I)
        self.topics = [_Topic(t["to"], frozenset(t["from"]), _compile(t["signals"])) for t in policy["topics"]]
        escalation = policy["escalation"]
        self.large_context_tokens = escalation["large_context_tokens"]
        self.difficulty, self.scope = _compile(escalation["difficulty"]), _compile(escalation["scope"])
        self.stakes, self.up_one = _compile(escalation["stakes"]), _compile(escalation["up_one"])
        self.size, self.explicit = _compile(escalation["size"]), _compile(escalation["explicit"])
        self.known_cause = _compile(escalation["known_cause"])
        # A negation reaches the next three words, not past a comma: "don't refactor, just reformat".
        self.negation = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in escalation["negations"]) + r")\b +"
                                   r"(?:[\w'-]+ +){0,3}$", re.I)

    @classmethod
    def load(cls, catalog: Catalog, config: Config, conn: sqlite3.Connection | None = None) -> Router:
        policy, examples = load_policy()
        overrides = dict(config.routing)
        unknown = set(overrides) - set(policy["categories"])
        if unknown:
            raise ValueError(f"routing.{sorted(unknown)[0]}: unknown category "
                             f"(known: {', '.join(sorted(policy['categories']))})")
        if conn is not None:
            overrides.update({row[0]: row[1] for row in conn.execute("SELECT category, tier FROM category_overrides")})
        return cls(catalog, policy, examples, overrides)

    def classify(self, task: str) -> _Reading:
        """What the task asks for: the category whose signals weigh most once the example model's log
        posterior is added, what pointed to it, how far ahead of every other tier's reading it is, and the
        strongest reading of a higher tier that came within ``close_call`` of it."""
        text = self.filler.sub("", task.strip(), count=1)
        posteriors = self.examples.log_posteriors(text)
        scored, signal_scores = [], {}
        for category in self.categories:
            score, hits = 0, []
            for signal in category.signals:
                match = self._match(signal.pattern, text)
                if match:
                    score += signal.weight + (1 if match.start() == 0 else 0)
                    hits.append(match.group(0))
            signal_scores[category.name] = score
            total = score + self.example_weight * posteriors.get(category.name, 0.0)
            scored.append((total, _rank(category.tier), category, hits))
        if not posteriors and all(total == 0 for total, *_ in scored):
            return _Reading(self.default, [], None, {})
        scored.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        best_total, _, best, hits = scored[0]
        rival = next((category for total, _, category, _ in scored[1:] if category.tier == "opus" and (
            total >= best_total - self.close_call or signal_scores[category.name] >= self.strong_signal)), None)
        return _Reading(best, hits or self.examples.telling_words(text, best.name), rival,
                        {category: best_total - total for total, _, category, _ in scored})

    def route(self, task: str, context_tokens: int = 0) -> Decision:
        if context_tokens < 0:
            raise ValueError("context_tokens must be 0 or more")
        if not task.strip():
            raise ValueError("the task is empty: describe the work to route, e.g. 'summarise this build log'")
        reading = self.classify(task)
        category, hits = reading.category, reading.hits
        reasons = [f"looks like {category.name.replace('_', ' ')}"
                   + (f" ({', '.join(repr(h) for h in hits[:2])})" if hits else " (no strong signal)")]
        for topic in self.topics:
            if (category.name in topic.sources and reading.gaps.get(self.by_name[topic.to], 0.0) <= self.topic_support
                    and (hit := self._first(topic.signals, task))):
                category = self.by_name[topic.to]
                reasons.append(f"it touches {hit!r}: {topic.to.replace('_', ' ')}")
                break
        tier = category.tier
        if explicit := self._first(self.explicit, task):
            tier = "opus"
            reasons.append(f"an explicit request for quality ({explicit!r})")
        elif category.mechanical:
            big = (f"{context_tokens:,} tokens" if context_tokens >= self.large_context_tokens
                   else self._first(self.size, task))
            if _rank(tier) < _rank("sonnet") and (big or reading.rival):
                tier = "sonnet"
                unsure = reading.rival.name.replace("_", " ") if reading.rival else ""
                reasons.append(f"a large input ({big!r}) needs Sonnet" if big
                               else f"it could also be {unsure}: Sonnet, not Haiku, when unsure")
        elif tier != "opus":
            hard = None if self._first(self.known_cause, task) else (
                self._first(self.difficulty, task) or self._first(self.scope, task))
            stakes = self._first(self.stakes, task)
            if hard:
                category = self.by_name["hard_debugging"] if category.kind in ("build", "judge") else category
                tier = "opus"
                reasons.append(f"difficulty or scope ({hard!r}) needs Opus")
            elif stakes:
                tier = "opus"
                reasons.append(f"the stakes ({stakes!r}) need Opus")
            elif up_one := self._first(self.up_one, task):
                tier = TIERS[_rank(tier) + 1]
                reasons.append(f"stakes ({up_one!r}) move it up one tier")
        tier, window_note = self._fit_window(tier, context_tokens)
        if window_note:
            reasons.append(window_note)
        model = self.catalog.get(tier)
        prompt_tokens = context_tokens + len(task) // 4
        # A logistic curve of the margin, its scale fitted on the cross-validated tune part; a guess with
        # nothing to go on is one chance in three.
        margin = reading.margin
        confidence = 1 / len(TIERS) if margin is None else min(0.99, 1 / (1 + math.exp(-margin / self.margin_scale)))
        return Decision(
            tier=tier, model=model.id, category=category.name, reason="; ".join(reasons) + ".",
            confidence=round(confidence, 2),
            estimated_cost_usd=self.catalog.cost(model.id, Usage(prompt_tokens, TYPICAL_OUTPUT_TOKENS)),
        )

    def _fit_window(self, tier: str, context_tokens: int) -> tuple[str, str]:
        for candidate in TIERS[_rank(tier):]:
            window = self.catalog.get(candidate).context_window
            if window is None or context_tokens <= window:
                note = "" if candidate == tier else f"{context_tokens:,} tokens exceed {tier}'s window"
                return candidate, note
        return tier, f"{context_tokens:,} tokens exceed every model's window: split the input"

    def _first(self, patterns: tuple[re.Pattern[str], ...], text: str) -> str | None:
        for pattern in patterns:
            if match := self._match(pattern, text):
                return match.group(0)
        return None

    def _match(self, pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
        """The first match not just after a negation ("don't refactor" does not ask for a refactor)."""
        for match in pattern.finditer(text):
            if not self.negation.search(text, max(0, match.start() - 40), match.start()):
                return match
        return None


def load_policy() -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The built-in policy and its example requests, as (task, category) pairs."""
    data = resources.files(__package__).joinpath("data")
    examples = map(json.loads, data.joinpath("routing_examples.jsonl").read_text("utf-8").splitlines())
    return (tomllib.loads(data.joinpath("routing.toml").read_text("utf-8")),
            [(example["task"], example["category"]) for example in examples])


def _rank(tier: str) -> int:
    return TIERS.index(tier)
