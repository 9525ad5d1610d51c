"""Dollars from metered usage: a price table per Claude model plus optional unit prices for the other
providers. Pure: the table is built from data (defaults below, or TAM_PRICES as parsed JSON).

Claude prices are USD per million tokens, from Anthropic's model pages (platform.claude.com/docs/en/
models/<model>/overview, "Pricing": input, output, 5-minute cache write, cache read) and pricing page
(platform.claude.com/docs/en/about-claude/pricing). When a price leaves out the cache rates, they follow
the documented multipliers of the input price: a 5-minute cache write costs 1.25x, a cache read 0.1x.
The Message Batches API bills "50% of standard price" on input and output (docs: build-with-claude/
batch-processing), and the caching discounts stack on it; batch usage is metered under its own units
(`claude_batch_*`), so a job's usage says which calls were batched and its cost says what they cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tam.domain.model import InvalidInput, Usage

CACHE_WRITE_MULTIPLIER = 1.25  # 5-minute TTL, the default one
CACHE_READ_MULTIPLIER = 0.1
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    @classmethod
    def of(
        cls, input: float, output: float, cache_write: float | None = None, cache_read: float | None = None
    ) -> ModelPrice:
        return cls(
            input,
            output,
            input * CACHE_WRITE_MULTIPLIER if cache_write is None else cache_write,
            input * CACHE_READ_MULTIPLIER if cache_read is None else cache_read,
        )


# Ids match by longest prefix, so a dated id ("claude-sonnet-4-5-20250929") takes its family's price.
DEFAULT_MODEL_PRICES: Mapping[str, ModelPrice] = {
    # platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview: $2 in, $10 out, $2.50 5m write, $0.20 read
    "claude-sonnet-5-5": ModelPrice.of(2.0, 10.0, 2.5, 0.2),
    # platform.claude.com/docs/zh-CN/models/sonnet-5/overview: same as Sonnet 5.5
    "claude-sonnet-5": ModelPrice.of(2.0, 10.0, 2.5, 0.2),
    # Sonnet 4 / 4.5 / 4.6 model pages: $3 in, $15 out ($3.75 5m write, $0.30 read)
    "claude-sonnet-4": ModelPrice.of(3.0, 15.0),
    # Opus 5.5 $4 / $20, Opus 5 and 4.5 $5 / $25, Opus 4 / 4.1 $15 / $75 (model comparison tables)
    "claude-opus-5-5": ModelPrice.of(4.0, 20.0),
    "claude-opus-5": ModelPrice.of(5.0, 25.0),
    "claude-opus-4-5": ModelPrice.of(5.0, 25.0),
    "claude-opus-4-6": ModelPrice.of(5.0, 25.0),
    "claude-opus-4": ModelPrice.of(15.0, 75.0),
    # Haiku 4.5 $1 / $5
    "claude-haiku-4-5": ModelPrice.of(1.0, 5.0),
    # Fable 5.1 $10 / $50
    "claude-fable-5": ModelPrice.of(10.0, 50.0),
}

# A model the table does not know is priced like the costliest one it does: a budget must never
# treat an unknown model as free or cheap. Set its price in TAM_PRICES to get exact dollars.
_COSTLIEST = max(DEFAULT_MODEL_PRICES.values(), key=lambda p: p.output)

# Claude usage units and the price field each is billed at.
_TOKEN_UNITS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_write_tokens": "cache_write",
    "cache_read_tokens": "cache_read",
}
# Per-provider unit prices (USD per unit) and the usage unit each prices. None set by default: the
# vendors' prices depend on the plan (Prospeo credits, Bright Data records, DiscoLike records).
PROVIDER_UNITS = {
    "prospeo": "prospeo_credits",
    "brightdata": "brightdata_records",
    "discolike": "discolike_records",
}


def batch_unit(unit: str) -> str:
    """`claude_input_tokens` -> `claude_batch_input_tokens`: the same tokens, billed at batch price."""
    return unit.replace("claude_", "claude_batch_", 1)


@dataclass(frozen=True, slots=True)
class PriceTable:
    model: str  # the Claude model qualify uses: its price applies to the claude_* units
    models: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_MODEL_PRICES))
    units: Mapping[str, float] = field(default_factory=dict)  # usage unit -> USD per unit

    def model_price(self, model: str | None = None) -> ModelPrice:
        wanted = model or self.model
        best = max((m for m in self.models if wanted.startswith(m)), key=len, default=None)
        return self.models[best] if best is not None else _COSTLIEST

    def cost(self, usage: Usage) -> float:
        """USD for `usage`; units without a price cost nothing."""
        price = self.model_price()
        total = 0.0
        for unit, amount in usage.counts.items():
            total += amount * self.unit_price(unit, price)
        return total

    def unit_price(self, unit: str, price: ModelPrice | None = None) -> float:
        if unit.startswith("claude_"):
            price = price or self.model_price()
            batch = unit.startswith("claude_batch_")
            name = unit.removeprefix("claude_batch_" if batch else "claude_")
            fieldname = _TOKEN_UNITS.get(name)
            if fieldname is None:
                return 0.0
            per_token = float(getattr(price, fieldname)) / 1_000_000
            return per_token * (BATCH_DISCOUNT if batch else 1.0)
        return self.units.get(unit, 0.0)

    @classmethod
    def parse(cls, model: str, data: Any) -> PriceTable:
        """Defaults overridden by TAM_PRICES (already JSON-decoded):
        `{"claude-sonnet-5-5": {"input": 2, "output": 10, "cacheWrite": 2.5, "cacheRead": 0.2},
          "prospeo": 0.01, "brightdata": 0.0015, "discolike": 0.002}`."""
        if data is None:
            return cls(model)
        if not isinstance(data, dict):
            raise InvalidInput("TAM_PRICES must be a JSON object of model ids and provider names")
        models = dict(DEFAULT_MODEL_PRICES)
        units: dict[str, float] = {}
        for key, value in data.items():
            if key in PROVIDER_UNITS:
                units[PROVIDER_UNITS[key]] = _price(value, f"TAM_PRICES.{key}")
            elif isinstance(value, dict):
                models[key] = _model_price(key, value)
            else:
                raise InvalidInput(
                    f"TAM_PRICES.{key}: expected a model's prices as an object, or one of "
                    f"{', '.join(PROVIDER_UNITS)} with a number"
                )
        return cls(model, models, units)


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInput(f"{where}: expected a number of US dollars >= 0")
    return float(value)


_MODEL_FIELDS = {
    "input": "input",
    "output": "output",
    "cacheWrite": "cache_write",
    "cache_write": "cache_write",
    "cacheRead": "cache_read",
    "cache_read": "cache_read",
}


def _model_price(model: str, value: dict[str, Any]) -> ModelPrice:
    fields: dict[str, float] = {}
    for key, amount in value.items():
        if key not in _MODEL_FIELDS:
            raise InvalidInput(
                f"TAM_PRICES.{model}.{key}: unknown field; expected input, output, cacheWrite, cacheRead"
            )
        fields[_MODEL_FIELDS[key]] = _price(amount, f"TAM_PRICES.{model}.{key}")
    if "input" not in fields or "output" not in fields:
        raise InvalidInput(f"TAM_PRICES.{model}: input and output (USD per million tokens) are required")
    return ModelPrice.of(**fields)
