"""Per-phase counters, token totals, latency percentiles, and the progress events."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from engine.pricing import PriceTable
from providers.base import Usage

__all__ = ["CallFinished", "Event", "PhaseFinished", "PhaseStarted", "PhaseStats"]


@dataclass
class PhaseStats:
    """What one phase of a run cost and how it went.

    Attributes:
        calls: Requests asked for (duplicates within a batch included).
        cache_hits: Requests answered from the cache or by an identical request
            already sent in the same batch.
        sent: HTTP attempts made.
        retries: Attempts after the first, over all calls.
        failures: Requests that ended without an answer.
        billed: Tokens per model for every attempt the provider answered and billed,
            retries included.
        saved: Tokens per model that cache hits did not have to pay for.
        latencies_s: Wall time of each call that went to the provider, retries and
            back-off included.
    """

    phase: str
    calls: int = 0
    cache_hits: int = 0
    sent: int = 0
    retries: int = 0
    failures: int = 0
    billed: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    saved: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    latencies_s: list[float] = field(default_factory=list)
    failure_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def percentile(self, q: float) -> float | None:
        """Return the q-th percentile of call latency in seconds, or None."""
        return percentile(self.latencies_s, q)

    @property
    def usage(self) -> Usage:
        """Tokens billed over all models."""
        return sum(self.billed.values(), Usage())

    @property
    def saved_usage(self) -> Usage:
        """Tokens saved by the cache over all models."""
        return sum(self.saved.values(), Usage())

    def cost_usd(self, prices: PriceTable | None = None) -> float | None:
        """Dollars spent on every billed attempt, or None if a model has no price."""
        return _dollars(self.billed, prices)

    def saved_usd(self, prices: PriceTable | None = None) -> float | None:
        """Dollars the cache saved, or None if a model has no price."""
        return _dollars(self.saved, prices)

    def unpriced_models(self, prices: PriceTable | None = None) -> list[str]:
        """The models of this phase whose price is unknown."""
        table = prices or PriceTable()
        models = set(self.billed) | set(self.saved)
        return sorted(m for m in models if table.price(m) is None)

    def to_dict(self, prices: PriceTable | None = None) -> dict[str, Any]:
        """Summarise as plain data (for JSON and tables)."""
        usage, saved = self.usage, self.saved_usage
        return {
            "phase": self.phase,
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "sent": self.sent,
            "retries": self.retries,
            "failures": self.failures,
            "failure_kinds": dict(self.failure_kinds),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "image_tokens": usage.image_tokens,
            "saved_input_tokens": saved.input_tokens,
            "saved_output_tokens": saved.output_tokens,
            "latency_p50_s": self.percentile(50),
            "latency_p90_s": self.percentile(90),
            "latency_p99_s": self.percentile(99),
            "cost_usd": self.cost_usd(prices),
            "saved_usd": self.saved_usd(prices),
            "unpriced_models": self.unpriced_models(prices),
        }


def _dollars(
    usage_by_model: dict[str, Usage], prices: PriceTable | None
) -> float | None:
    table = prices or PriceTable()
    total = 0.0
    for model, usage in usage_by_model.items():
        dollars = table.cost_usd(model, usage)
        if dollars is None:
            return None
        total += dollars
    return round(total, 9)


def percentile(values: list[float], q: float) -> float | None:
    """Return the q-th percentile by linear interpolation, or None for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([5.0], 99), percentile([], 50)
    (2.5, 5.0, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    """A batch of ``total`` requests has started in ``phase``."""

    phase: str
    total: int


@dataclass(frozen=True, slots=True)
class CallFinished:
    """One request of a batch has its result.

    ``key`` is the request's cache key (None when it could not be computed); a journal
    keyed by it records what was asked and what it cost without holding the payload.
    """

    phase: str
    key: str | None
    cached: bool
    failed: bool
    latency_s: float
    usage: Usage
    attempts: int
    in_flight: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseFinished:
    """A batch has finished; ``stats`` are the phase's totals so far."""

    phase: str
    stats: PhaseStats


Event = PhaseStarted | CallFinished | PhaseFinished
