"""The price catalog and the one cost function everything else uses.

The catalog is ``data/models.json`` (the models Claude Code itself knows, prices in USD per million
tokens) plus the user's ``[pricing]`` overrides. ``cost_usd`` is Claude Code's own per-request
formula, so a ledger built with it reproduces Claude Code's ``cost-state`` totals:

    tokens = input*in + output*out + cache_read*cr + w1h*cw1h + (cache_creation - w1h)*cw5m   (/ 1e6)
    the whole request switches to long-prompt prices once input + cache_read + cache_creation
    exceeds the model's threshold; tokens *= 1.1 for inference_geo "us"; + web searches * price.

Fast mode (``usage.speed == "fast"``) prices the whole request at the model's ``fast`` prices, with no
long-prompt switch (the geo factor and web searches still apply); a model without fast prices keeps its
normal ones. When ``usage.iterations`` lists the request's server-side iterations and their token counts
add up to the request's, the long-prompt threshold is applied to each iteration on its own and the
iterations' costs summed, as Claude Code does.

An unknown model has no price: ``Catalog.cost`` returns ``None`` ("unpriced"), never 0.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .errors import UnknownModelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RATE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
US_GEO_MULTIPLIER = 1.1
BATCH_DISCOUNT = 0.5
_DATED_SUFFIX = re.compile(r"-\d{8}$")


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one API request, as the Messages API reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    web_search_requests: int = 0
    inference_geo: str = ""
    speed: str = ""
    iterations: tuple[Usage, ...] = ()  # server-side iterations (token fields only), when reported

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float

    def scaled(self, factor: float) -> Rates:
        return Rates(*(getattr(self, key) * factor for key in RATE_KEYS))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    family: str
    display_name: str
    rates: Rates
    web_search: float = 0.0
    first_party_id: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    long_prompt: Rates | None = None
    long_prompt_threshold: int | None = None
    fast: Rates | None = None


def cost_usd(model: ModelInfo, usage: Usage, *, batch: bool = False) -> float:
    """Claude Code's cost of one request (see the module docstring)."""
    if usage.speed == "fast" and model.fast is not None:
        tokens_cost = _tokens_cost(model.fast, usage, batch)
    elif model.long_prompt is not None and _iterations_add_up(usage):
        tokens_cost = sum(_tokens_cost(_rates_for(model, part), part, batch) for part in usage.iterations)
    else:
        tokens_cost = _tokens_cost(_rates_for(model, usage), usage, batch)
    if usage.inference_geo == "us":
        tokens_cost *= US_GEO_MULTIPLIER
    return tokens_cost + usage.web_search_requests * model.web_search


def _rates_for(model: ModelInfo, usage: Usage) -> Rates:
    """Long-prompt prices for a request (or iteration) over the model's threshold, else the normal ones."""
    if model.long_prompt is not None and model.long_prompt_threshold is not None:
        if usage.prompt_tokens > model.long_prompt_threshold:
            return model.long_prompt
    return model.rates


def _tokens_cost(rates: Rates, usage: Usage, batch: bool) -> float:
    if batch:
        rates = rates.scaled(BATCH_DISCOUNT)
    writes_1h = min(usage.cache_creation_1h_tokens, usage.cache_creation_tokens)
    return (
        usage.input_tokens * rates.input
        + usage.output_tokens * rates.output
        + usage.cache_read_tokens * rates.cache_read
        + writes_1h * rates.cache_write_1h
        + (usage.cache_creation_tokens - writes_1h) * rates.cache_write_5m
    ) / 1_000_000


def _iterations_add_up(usage: Usage) -> bool:
    """Whether the iterations are the request split in parts (else the request is priced whole)."""
    if not usage.iterations:
        return False
    return all(
        sum(getattr(part, key) for part in usage.iterations) == getattr(usage, key)
        for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    )


@dataclass
class Catalog:
    models: dict[str, ModelInfo]
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> Catalog:
        """The built-in catalog with the user's ``[pricing]`` section applied on top."""
        with open(os.path.join(os.path.dirname(__file__), "data", "models.json"), encoding="utf-8") as handle:
            data = json.load(handle)
        catalog = cls(
            models={entry["id"]: _model_from_json(entry) for entry in data["models"]},
            aliases=dict(data.get("aliases", {})),
        )
        if overrides:
            catalog.apply_overrides(overrides)
        return catalog

    def apply_overrides(self, overrides: Mapping[str, Any]) -> None:
        """Apply ``{"models": {id: {prices…}}, "aliases": {name: id}}``; raises ValueError naming the key."""
        unknown = set(overrides) - {"models", "aliases"}
        if unknown:
            raise ValueError(f"pricing.{sorted(unknown)[0]}: unknown key (expected 'models' or 'aliases')")
        for model_id, spec in dict(overrides.get("models", {})).items():
            if not isinstance(spec, Mapping):
                raise ValueError(f"pricing.models.{model_id}: expected a table of prices")
            base = self.models.get(model_id)
            self.models[model_id] = _model_with_override(model_id, base, spec)
        for alias, target in dict(overrides.get("aliases", {})).items():
            if self.resolve(str(target)) is None:
                raise ValueError(f"pricing.aliases.{alias}: {target!r} is not a known model")
            self.aliases[alias] = str(target)

    def resolve(self, name: str) -> str | None:
        """The catalog id for an id, alias or dated id; ``None`` when unknown."""
        if name in self.models:
            return name
        lowered = name.strip().lower()
        if lowered in self.aliases:
            return self.resolve(self.aliases[lowered])
        if lowered in self.models:
            return lowered
        undated = _DATED_SUFFIX.sub("", lowered)
        if undated in self.models:
            return undated
        for model in self.models.values():
            if model.first_party_id in (lowered, undated):
                return model.id
        return None

    def find(self, name: str) -> ModelInfo | None:
        model_id = self.resolve(name)
        return self.models[model_id] if model_id else None

    def get(self, name: str) -> ModelInfo:
        """Like ``find`` but raises ``UnknownModelError`` with the closest known names."""
        model = self.find(name)
        if model is None:
            raise UnknownModelError(name, self.suggest(name))
        return model

    def canonical(self, name: str) -> str:
        """The catalog id, or the name itself for a model the catalog does not know."""
        return self.resolve(name) or name

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float | None:
        """Cost in USD, or ``None`` when the model is unknown (unpriced, not free)."""
        info = self.find(model)
        return None if info is None else cost_usd(info, usage, batch=batch)

    def suggest(self, name: str, n: int = 3) -> list[str]:
        import difflib

        return difflib.get_close_matches(name.lower(), [*self.models, *self.aliases], n=n, cutoff=0.4)

    def aliases_of(self, model_id: str) -> list[str]:
        return sorted(alias for alias, target in self.aliases.items() if self.resolve(target) == model_id)


def format_usd(value: float) -> str:
    """Dollars for people: cents, or four decimals below a cent so small costs do not read as $0.00."""
    return f"${value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"${value:,.4f}"


def format_cost(value: float | None) -> str:
    """``format_usd``, or "unpriced" for a cost that is unknown (never shown as $0)."""
    return "unpriced" if value is None else format_usd(value)


def total_cost(catalog: Catalog, requests: Iterable[tuple[str, Usage]]) -> float | None:
    """Sum of per-request costs; ``None`` if any request is unpriced."""
    total = 0.0
    for model, usage in requests:
        cost = catalog.cost(model, usage)
        if cost is None:
            return None
        total += cost
    return total


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{where}: expected a price >= 0 in USD, got {value!r}")
    return float(value)


def _rates(prices: Mapping[str, Any], where: str) -> Rates:
    return Rates(*(_price(prices.get(key), f"{where}.{key}") for key in RATE_KEYS))


def _model_from_json(entry: Mapping[str, Any]) -> ModelInfo:
    prices = entry["price_per_mtok"]
    long_prompt = prices.get("long_prompt")
    fast = prices.get("fast")
    return ModelInfo(
        id=entry["id"],
        family=entry.get("family", ""),
        display_name=entry.get("display_name", entry["id"]),
        rates=_rates(prices, f"models.{entry['id']}"),
        web_search=float(prices.get("web_search", 0.0)),
        first_party_id=entry.get("first_party_id"),
        context_window=entry.get("context_window"),
        max_output_tokens=entry.get("max_output_tokens"),
        long_prompt=_rates(long_prompt, f"models.{entry['id']}.long_prompt") if long_prompt else None,
        long_prompt_threshold=long_prompt["above_prompt_tokens"] if long_prompt else None,
        fast=_rates(fast, f"models.{entry['id']}.fast") if fast else None,
    )


_OVERRIDE_KEYS = {
    *RATE_KEYS, "web_search", "context_window", "max_output_tokens", "family", "display_name", "long_prompt", "fast",
}


def _model_with_override(model_id: str, base: ModelInfo | None, spec: Mapping[str, Any]) -> ModelInfo:
    where = f"pricing.models.{model_id}"
    unknown = set(spec) - _OVERRIDE_KEYS
    if unknown:
        raise ValueError(f"{where}.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(RATE_KEYS)}, …)")
    if base is None:
        missing = [key for key in RATE_KEYS if key not in spec]
        if missing:
            raise ValueError(f"{where}.{missing[0]}: required for a model the catalog does not know")
        rate_values = {key: spec[key] for key in RATE_KEYS}
        base = ModelInfo(id=model_id, family=str(spec.get("family", "")), display_name=model_id,
                         rates=_rates(rate_values, where))
    merged_rates = {key: spec.get(key, getattr(base.rates, key)) for key in RATE_KEYS}
    changes: dict[str, Any] = {"rates": _rates(merged_rates, where)}
    if "web_search" in spec:
        changes["web_search"] = _price(spec["web_search"], f"{where}.web_search")
    for key in ("context_window", "max_output_tokens"):
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{where}.{key}: expected a positive whole number, got {value!r}")
            changes[key] = value
    for key in ("family", "display_name"):
        if key in spec:
            changes[key] = str(spec[key])
    if "long_prompt" in spec:
        long_prompt = spec["long_prompt"]
        threshold = long_prompt.get("above_prompt_tokens") if isinstance(long_prompt, Mapping) else None
        if not isinstance(threshold, int) or threshold <= 0:
            raise ValueError(f"{where}.long_prompt.above_prompt_tokens: expected a positive whole number")
        changes["long_prompt"] = _rates(long_prompt, f"{where}.long_prompt")
        changes["long_prompt_threshold"] = threshold
    if "fast" in spec:
        if not isinstance(spec["fast"], Mapping):
            raise ValueError(f"{where}.fast: expected a table of prices")
        changes["fast"] = _rates(spec["fast"], f"{where}.fast")
    return replace(base, **changes)
