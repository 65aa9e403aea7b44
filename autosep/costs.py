"""Dollars from tokens, over the engine's price table, for budgets and reports.

A model the table does not know costs nothing here, and :func:`is_priced` lets the
report say so rather than print a misleading zero. The emulator bills like the
model it is asked to be.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.pricing import PriceTable
from providers.base import Usage

__all__ = ["cost_usd", "is_priced"]

_TABLE = PriceTable()


def is_priced(model: str) -> bool:
    """Whether the model's price is known."""
    return _TABLE.price(model) is not None


def cost_usd(usage_by_model: Mapping[str, Usage]) -> float:
    """Return what the usage costs at list prices (unknown models count 0).

    >>> round(cost_usd({"gpt-4o-mini": Usage(1_000_000, 1_000_000)}), 2)
    0.75
    """
    return sum(
        _TABLE.cost_usd(model, usage) or 0.0 for model, usage in usage_by_model.items()
    )
