"""Routing: the cheapest adequate tier (haiku / sonnet / opus) for a task, with the reason.

The policy is data (``data/routing.toml``): categories with a tier and the regular expressions that
signal them, plus escalation signals for scope, difficulty and stakes. A task goes to the category
whose signals weigh most (ties go to the higher tier: under-routing costs more than over-routing);
then scope or difficulty ("across services", "intermittent") or an explicit request for quality moves
it to Opus, and stakes ("production", "customer data") move it up one tier. A signal just after a
negation ("don't refactor") does not count. The context must fit the model's window; if it does not,
the next tier whose window fits is chosen. Users override a category's tier in config
(``[routing]``); feedback promotions live in the ``category_overrides`` table.
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
_NEGATION_WINDOW = 24


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
class _Category:
    name: str
    tier: str
    signals: tuple[re.Pattern[str], ...]


class Router:
    def __init__(self, catalog: Catalog, policy: dict[str, Any], overrides: dict[str, str] | None = None):
        self.catalog = catalog
        overrides = overrides or {}
        self.categories = [
            _Category(name, overrides.get(name, spec["tier"]), tuple(re.compile(s, re.I) for s in spec["signals"]))
            for name, spec in policy["categories"].items()
        ]
        self.by_name = {c.name: c for c in self.categories}
        self.default = self.by_name[policy["default_category"]]
        escalation = policy["escalation"]
        self.to_opus = tuple(re.compile(s, re.I) for s in escalation["opus"])
        self.up_one = tuple(re.compile(s, re.I) for s in escalation["up_one"])
        self.negations = tuple(escalation["negations"])

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

    def classify(self, task: str) -> tuple[_Category, list[str]]:
        """The best-matching category and the text of the signals that matched."""
        best, best_score, best_hits = self.default, 0, []
        for category in self.categories:
            hits = [m.group(0) for p in category.signals for m in [self._match(p, task)] if m]
            score = len(hits)
            if score > best_score or (score == best_score and score and _rank(category.tier) > _rank(best.tier)):
                best, best_score, best_hits = category, score, hits
        return best, best_hits

    def route(self, task: str, context_tokens: int = 0) -> Decision:
        if context_tokens < 0:
            raise ValueError("context_tokens must be 0 or more")
        category, hits = self.classify(task)
        tier = category.tier
        reasons = [f"looks like {category.name.replace('_', ' ')}"
                   + (f" ({', '.join(repr(h) for h in hits[:2])})" if hits else " (no strong signal)")]
        opus = [m.group(0) for p in self.to_opus for m in [self._match(p, task)] if m]
        stakes = [m.group(0) for p in self.up_one for m in [self._match(p, task)] if m]
        if opus and tier != "opus":
            tier = "opus"
            reasons.append(f"scope, difficulty or an explicit quality request ({opus[0]!r}) needs Opus")
        elif stakes and tier != "opus":
            tier = TIERS[_rank(tier) + 1]
            reasons.append(f"stakes ({stakes[0]!r}) move it up one tier")
        tier, window_note = self._fit_window(tier, context_tokens)
        if window_note:
            reasons.append(window_note)
        model = self.catalog.get(tier)
        prompt_tokens = context_tokens + len(task) // 4
        confidence = 0.4 if not hits else min(0.95, 0.6 + 0.1 * len(hits) + (0.1 if opus or stakes else 0))
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

    def _match(self, pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
        for match in pattern.finditer(text):
            before = text[max(0, match.start() - _NEGATION_WINDOW):match.start()].lower()
            if not any(re.search(rf"\b{re.escape(n)}\b", before) for n in self.negations):
                return match
        return None


def _rank(tier: str) -> int:
    return TIERS.index(tier)
