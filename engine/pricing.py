"""What a call cost, in US dollars, from the tokens the provider billed.

Prices are list prices per million tokens for standard (not batch) traffic. A model
name matches the longest table entry it starts with, followed by a separator, so
dated snapshots (``gpt-4o-2024-08-06``, ``claude-3-5-haiku-20241022``) get their
family's price. An unknown model has no price: :func:`cost_usd` returns None rather
than 0, so a report can say "unknown" instead of "free".

Images are billed as input tokens at the text rate, and :class:`~providers.base.Usage`
already counts them in ``input_tokens``, so they need no term of their own.

Known gaps: prompt-cache writes (Anthropic bills them at 1.25x or 2x the input
price) are billed at the plain input price, because ``Usage`` does not report them
apart; long-context surcharges (prompts over 128k or 200k tokens) are not modelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from providers.base import Usage

__all__ = ["DEFAULT_PRICES", "Price", "PriceTable", "cost_usd"]

_PER_TOKEN = 1e-6


@dataclass(frozen=True, slots=True)
class Price:
    """List prices in US dollars per million tokens.

    Attributes:
        input: Uncached input tokens, images included.
        output: Output tokens, thinking included.
        cached_input: Input tokens read from the provider's prompt cache; None
            bills them at the full input price.
    """

    input: float
    output: float
    cached_input: float | None = None

    @classmethod
    def from_config(cls, value: Price | Mapping[str, float]) -> Price:
        """Build a price from a config mapping with ``input``, ``output`` and
        optionally ``cached_input``.

        >>> Price.from_config({"input": 1, "output": 2})
        Price(input=1.0, output=2.0, cached_input=None)
        """
        if isinstance(value, Price):
            return value
        unknown = set(value) - {"input", "output", "cached_input"}
        if unknown or "input" not in value or "output" not in value:
            raise ValueError(
                "a price needs input and output (and optionally cached_input) in "
                f"dollars per million tokens, got {sorted(value)}"
            )
        cached = value.get("cached_input")
        return cls(
            float(value["input"]),
            float(value["output"]),
            None if cached is None else float(cached),
        )


DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "gpt-4o": Price(2.50, 10.00, 1.25),
        "chatgpt-4o": Price(2.50, 10.00, 1.25),
        "gpt-4o-mini": Price(0.15, 0.60, 0.075),
        "gpt-4.1": Price(2.00, 8.00, 0.50),
        "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
        "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
        "gemini-1.5-flash": Price(0.075, 0.30),
        "gemini-2.0-flash": Price(0.10, 0.40),
        "gemini-2.5-flash": Price(0.30, 2.50, 0.075),
        "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.025),
        "claude-3-haiku": Price(0.25, 1.25, 0.03),
        "claude-3-5-haiku": Price(0.80, 4.00, 0.08),
        "claude-3-5-sonnet": Price(3.00, 15.00, 0.30),
        "claude-sonnet-4": Price(3.00, 15.00, 0.30),
        "claude-sonnet-4-5": Price(3.00, 15.00, 0.30),
        "claude-haiku-4-5": Price(1.00, 5.00, 0.10),
    }
)
"""List prices (USD per million tokens) of common vision models, as of 2026."""


class PriceTable:
    """Prices by model name, the defaults overridden by configuration.

    Args:
        overrides: Extra or replacement prices by model name (a family name or an
            exact snapshot), as :class:`Price` or as config mappings.
        defaults: The base table; :data:`DEFAULT_PRICES` unless given.

    >>> table = PriceTable({"emulated": {"input": 0, "output": 0}})
    >>> table.price("gpt-4o-2024-08-06")
    Price(input=2.5, output=10.0, cached_input=1.25)
    >>> table.price("emulated")
    Price(input=0.0, output=0.0, cached_input=None)
    >>> table.price("gpt-4o-audio-preview") == table.price("gpt-4o")
    True
    >>> table.price("gpt-4.10") is None
    True
    """

    def __init__(
        self,
        overrides: Mapping[str, Price | Mapping[str, float]] | None = None,
        *,
        defaults: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        self._prices = dict(defaults)
        for name, value in (overrides or {}).items():
            self._prices[name] = Price.from_config(value)
        # Longest names first, so the first match is the most specific one.
        self._names = sorted(self._prices, key=len, reverse=True)

    def price(self, model: str) -> Price | None:
        """Return the price of a model, or None when the table does not know it."""
        model = model.removeprefix("models/")
        for name in self._names:
            if model == name or model.startswith((f"{name}-", f"{name}@", f"{name}:")):
                return self._prices[name]
        return None

    def cost_usd(self, model: str, usage: Usage) -> float | None:
        """Return what a call cost in US dollars, or None for an unknown price.

        >>> PriceTable().cost_usd("gpt-4o", Usage(input_tokens=1_000_000))
        2.5
        >>> PriceTable().cost_usd("claude-haiku-4-5", Usage(1000, 100, 0, 800))
        0.00078
        >>> PriceTable().cost_usd("my-local-model", Usage(10, 10)) is None
        True
        """
        price = self.price(model)
        if price is None:
            return None
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        dollars = (
            (usage.input_tokens - cached) * price.input
            + cached * cached_rate
            + usage.output_tokens * price.output
        ) * _PER_TOKEN
        # Round away float noise (0.30000000000000004); twelve decimals are far
        # below the price of a single token, so no real amount is lost.
        return round(dollars, 12)


_DEFAULT_TABLE = PriceTable()


def cost_usd(
    model: str, usage: Usage, prices: PriceTable | None = None
) -> float | None:
    """Return what a call cost in US dollars, or None when its price is unknown.

    Args:
        model: The model name, dated snapshot suffixes allowed.
        usage: The tokens the provider billed.
        prices: A table with configured overrides; the defaults when None.

    >>> cost_usd("gpt-4o-mini-2024-07-18", Usage(input_tokens=2000, output_tokens=500))
    0.0006
    >>> cost_usd("gemini-2.5-flash", Usage(1_000_000, 1_000_000))
    2.8
    >>> cost_usd("unknown-model", Usage(1, 1)) is None
    True
    """
    return (prices or _DEFAULT_TABLE).cost_usd(model, usage)
