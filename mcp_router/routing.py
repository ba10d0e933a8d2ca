"""Routing: the cheapest adequate tier (haiku / sonnet / opus) for a task, with the reason.

The policy is data (``data/routing.toml``). Deciding is two steps, both plain regular expressions, so a
decision takes well under a millisecond and needs no network and no model:

1. What is asked for: every category's signals are weighed against the request (a signal just after a
   negation such as "don't" does not count; one at the very start, the main verb, counts one more) and
   the heaviest category wins; a tie goes to the higher tier, because under-routing costs more.
2. What it touches and what is at stake: a task that needs thought (building, fixing, judging) and
   touches a sensitive topic becomes that topic's category (writing auth code is security work);
   difficulty or scope ("intermittent", "across 9 services") makes it non-obvious debugging; stakes the
   user names, or an explicit request for the best model, send it to Opus; "production" moves it up one
   tier. A mechanical task (look up, summarise, convert, extract, label, boilerplate) keeps its tier
   whatever it touches, except that a very large input needs Sonnet.

The context must fit the model's window; if it does not, the next tier whose window fits is chosen.
Users override a category's tier in config (``[routing]``); feedback promotions live in the
``category_overrides`` table.
"""

from __future__ import annotations

import re
import sqlite3
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

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


class Router:
    def __init__(self, catalog: Catalog, policy: dict[str, Any], overrides: dict[str, str] | None = None):
        self.catalog = catalog
        overrides = overrides or {}
        self.categories = [
            _Category(name, overrides.get(name, spec["tier"]), spec["kind"],
                      tuple(_Signal(re.compile(s["re"], re.I), s["w"]) for s in spec["signals"]))
            for name, spec in policy["categories"].items()
        ]
        self.by_name = {c.name: c for c in self.categories}
        self.default = self.by_name[policy["default_category"]]
        self.filler = re.compile(policy["filler"], re.I)
        self.topics = [_Topic(t["to"], frozenset(t["from"]), _compile(t["signals"])) for t in policy["topics"]]
        escalation = policy["escalation"]
        self.difficulty, self.scope = _compile(escalation["difficulty"]), _compile(escalation["scope"])
        self.stakes, self.up_one = _compile(escalation["stakes"]), _compile(escalation["up_one"])
        self.size, self.explicit = _compile(escalation["size"]), _compile(escalation["explicit"])
        self.known_cause = _compile(escalation["known_cause"])
        # A negation reaches the next three words, not past a comma: "don't refactor, just reformat".
        self.negation = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in escalation["negations"]) + r")\b +"
                                   r"(?:[\w'-]+ +){0,3}$", re.I)

    @classmethod
    def load(cls, catalog: Catalog, config: Config, conn: sqlite3.Connection | None = None) -> Router:
        policy = tomllib.loads(resources.files(__package__).joinpath("data/routing.toml").read_text("utf-8"))
        overrides = dict(config.routing)
        unknown = set(overrides) - set(policy["categories"])
        if unknown:
            raise ValueError(f"routing.{sorted(unknown)[0]}: unknown category "
                             f"(known: {', '.join(sorted(policy['categories']))})")
        if conn is not None:
            overrides.update({row[0]: row[1] for row in conn.execute("SELECT category, tier FROM category_overrides")})
        return cls(catalog, policy, overrides)

    def classify(self, task: str) -> tuple[_Category, list[str], float]:
        """What the task asks for: the heaviest category, the text of its signals and the runner-up margin."""
        text = self.filler.sub("", task.strip(), count=1)
        scored = []
        for category in self.categories:
            score, hits = 0, []
            for signal in category.signals:
                match = self._match(signal.pattern, text)
                if match:
                    score += signal.weight + (1 if match.start() == 0 else 0)
                    hits.append(match.group(0))
            if score:
                scored.append((score, _rank(category.tier), category, hits))
        if not scored:
            return self.default, [], 0.0
        scored.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        best_score, _, best, hits = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0
        return best, hits, (best_score - runner_up) / best_score

    def route(self, task: str, context_tokens: int = 0) -> Decision:
        if context_tokens < 0:
            raise ValueError("context_tokens must be 0 or more")
        category, hits, margin = self.classify(task)
        reasons = [f"looks like {category.name.replace('_', ' ')}"
                   + (f" ({', '.join(repr(h) for h in hits[:2])})" if hits else " (no strong signal)")]
        for topic in self.topics:
            if category.name in topic.sources and (hit := self._first(topic.signals, task)):
                category = self.by_name[topic.to]
                reasons.append(f"it touches {hit!r}: {topic.to.replace('_', ' ')}")
                break
        tier = category.tier
        if explicit := self._first(self.explicit, task):
            tier = "opus"
            reasons.append(f"an explicit request for quality ({explicit!r})")
        elif category.mechanical:
            if (big := self._first(self.size, task)) and _rank(tier) < _rank("sonnet"):
                tier = "sonnet"
                reasons.append(f"a large input ({big!r}) needs Sonnet")
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
        confidence = 0.4 if not hits else min(0.95, 0.55 + 0.4 * margin)
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


def _rank(tier: str) -> int:
    return TIERS.index(tier)
