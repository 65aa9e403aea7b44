"""The method's view of the engine: texts in, texts out, failures kept, budget held.

Every answer the method has seen is remembered for the rest of the process, so a
request the method asks twice (a parent's descriptions in each round, a score
already computed) is neither sent nor looked up again. A failed call is remembered
as a failure for the report and returns None; it is asked again only by a later
process (a resume), which is when a transient failure may have passed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from autosep.costs import cost_usd
from engine.request import Failure, ImageRef, Request, Response, Result
from providers.base import Usage

__all__ = ["BudgetExceeded", "EngineLike", "Session"]

logger = logging.getLogger(__name__)

# Requests are sent in chunks this large when a budget is set, so that the run stops
# within one chunk of the budget rather than one phase.
_BUDGET_CHUNK = 256
_FAILURE_EXAMPLES = 20


class EngineLike(Protocol):
    """What the method needs of an engine (the real one, or a scripted fake)."""

    async def map(self, requests: Sequence[Request], phase: str = ...) -> list[Result]:
        """Run requests; results in the order given."""
        ...

    async def count_cached(self, requests: Sequence[Request]) -> int:
        """Count the requests the cache already answers."""
        ...

    def stats(self) -> dict[str, Any]:
        """Return per-phase statistics."""
        ...


class BudgetExceeded(Exception):
    """The next batch would take spending past the budget; nothing was sent."""

    def __init__(self, spent: float, estimate: float, budget: float) -> None:
        super().__init__(
            f"stopping before the budget of ${budget:.4f} is passed: "
            f"${spent:.4f} spent, the next batch would cost about ${estimate:.4f}"
        )
        self.spent = spent
        self.estimate = estimate
        self.budget = budget


class Session:
    """Send the method's requests through an engine and remember the answers.

    Args:
        engine: The engine (or a fake with the same ``map``).
        budget_usd: Stop before spending passes this, or None for no limit.
        on_note: Called with method-level notes for the run journal.
    """

    def __init__(
        self,
        engine: EngineLike,
        *,
        budget_usd: float | None = None,
        on_note: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.budget_usd = budget_usd
        self._on_note = on_note
        self._answers: dict[Request, str] = {}
        self._failed: dict[Request, Failure] = {}
        self.failures: Counter[str] = Counter()
        self.failure_examples: list[str] = []
        self.asked: Counter[str] = Counter()
        self._booked_as: str | None = None

    async def texts(self, requests: Sequence[Request], phase: str) -> list[str | None]:
        """Return each request's answer text, or None where its call failed.

        Raises:
            BudgetExceeded: Sending the next batch could pass the budget.
        """
        phase = self._booked_as or phase
        pending = [
            r
            for r in dict.fromkeys(requests)
            if r not in self._answers and r not in self._failed
        ]
        self.asked[phase] += len(pending)
        size = _BUDGET_CHUNK if self.budget_usd is not None else max(len(pending), 1)
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            if self.budget_usd is not None:
                await self._check_budget(chunk)
            self._keep(chunk, await self.engine.map(chunk, phase=phase), phase)
        return [self._answers.get(r) for r in requests]

    @contextmanager
    def booked_as(self, phase: str) -> Iterator[None]:
        """Book every request made inside the block under ``phase``.

        A baseline that runs the method's own steps (a search of its own) uses it,
        so that its calls and their cost are reported apart from the method's.
        """
        previous, self._booked_as = self._booked_as, phase
        try:
            yield
        finally:
            self._booked_as = previous

    def note(self, event: str, **fields: Any) -> None:
        """Record a method-level event in the run journal."""
        if self._on_note is not None:
            self._on_note({"event": event, **fields})

    def spent_usd(self) -> float:
        """Return what the engine has spent so far, at list prices."""
        return cost_usd(_billed(self.engine.stats()))

    def _keep(
        self, requests: Sequence[Request], results: Sequence[Result], phase: str
    ) -> None:
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, Response):
                self._answers[request] = result.text
                continue
            self._failed[request] = result
            self.failures[phase] += 1
            if len(self.failure_examples) < _FAILURE_EXAMPLES:
                self.failure_examples.append(f"{phase}: {result}")
            # The engine has logged it already.
            logger.debug("%s call failed: %s", phase, result)

    async def _check_budget(self, chunk: Sequence[Request]) -> None:
        assert self.budget_usd is not None
        uncached = len(chunk) - await self.engine.count_cached(chunk)
        if uncached <= 0:
            return
        spent = self.spent_usd()
        estimate = uncached * self._cost_per_call(chunk)
        if spent + estimate > self.budget_usd:
            self.note("budget_stop", spent_usd=spent, estimate_usd=estimate)
            raise BudgetExceeded(spent, estimate, self.budget_usd)

    def _cost_per_call(self, chunk: Sequence[Request]) -> float:
        stats = self.engine.stats()
        sent = sum(_field(s, "sent") for s in stats.values())
        if sent:
            return cost_usd(_billed(stats)) / sent
        return max(estimate_cost(r) for r in chunk)


def estimate_cost(request: Request) -> float:
    """Return a rough upper estimate of one call's cost before any is made.

    Counts four characters per text token, a generous 1,100 tokens per image (a
    high-detail tile budget) and the whole output budget.
    """
    text = sum(len(p) for p in request.parts if isinstance(p, str)) // 4
    images = sum(1 for p in request.parts if isinstance(p, ImageRef))
    usage = Usage(input_tokens=text + 1100 * images, output_tokens=request.max_tokens)
    return cost_usd({request.model: usage})


def _billed(stats: dict[str, Any]) -> dict[str, Usage]:
    total: dict[str, Usage] = {}
    for phase in stats.values():
        for model, usage in getattr(phase, "billed", {}).items():
            total[model] = total.get(model, Usage()) + usage
    return total


def _field(stats: Any, name: str) -> int:
    return int(getattr(stats, name, 0))
