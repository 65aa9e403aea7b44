"""List prices, to turn token counts into dollars and budgets into stops.

Prices are USD per million tokens at the providers' standard (non-batch) rates;
image input is billed as input tokens. A model not listed costs nothing here, and
the report says so. The emulator bills like the model it is asked to be.
"""

from __future__ import annotations

from collections.abc import Mapping

from providers.base import Usage

__all__ = ["PRICES", "cost_usd", "is_priced"]

# (input, cached input, output) per million tokens.
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gemini-1.5-flash": (0.075, 0.075, 0.30),
    "gemini-2.0-flash": (0.10, 0.10, 0.40),
    "gemini-2.5-flash": (0.30, 0.075, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.025, 0.40),
    "claude-3-5-sonnet-latest": (3.00, 0.30, 15.00),
    "claude-sonnet-4-5": (3.00, 0.30, 15.00),
    "claude-3-5-haiku-latest": (0.80, 0.08, 4.00),
    "claude-haiku-4-5": (1.00, 0.10, 5.00),
}


def is_priced(model: str) -> bool:
    """Whether the model's price is known."""
    return _price(model) is not None


def cost_usd(usage_by_model: Mapping[str, Usage]) -> float:
    """Return what the usage costs at list prices.

    >>> round(cost_usd({"gpt-4o-mini": Usage(1_000_000, 1_000_000)}), 2)
    0.75
    """
    total = 0.0
    for model, usage in usage_by_model.items():
        price = _price(model)
        if price is None:
            continue
        fresh = usage.input_tokens - usage.cached_input_tokens
        total += (
            fresh * price[0]
            + usage.cached_input_tokens * price[1]
            + usage.output_tokens * price[2]
        ) / 1e6
    return total


def _price(model: str) -> tuple[float, float, float] | None:
    if model in PRICES:
        return PRICES[model]
    # Dated snapshots ("gpt-4o-2024-08-06") cost what their family costs.
    matches = [name for name in PRICES if model.startswith(name + "-")]
    return PRICES[max(matches, key=len)] if matches else None
