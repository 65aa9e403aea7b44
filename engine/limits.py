"""Rate limits per (provider, model): requests, tokens and calls in flight.

A :class:`Limiter` guards one (provider, model) pair with up to five budgets:
requests per minute, tokens per minute, input and output tokens per minute (for
providers that count them apart, as Anthropic does), and calls in flight. Callers
wait in one FIFO queue; the head of the queue is admitted when every budget has room
for it, and nobody behind it overtakes, so a large call is never starved by a stream
of small ones.

How a per-minute budget decides
-------------------------------
The promise is that no 60 s window of the server's log ever holds more requests or
tokens than the limit, the first minute included. A classic token bucket cannot keep
it: a bucket that starts full admits its whole capacity at once and then refills
during the same minute, up to twice the limit; a bucket that starts nearly empty and
refills at limit/60 per second still admits its burst plus a full minute of refill.
Shrinking the refill rate to make room for the burst keeps the promise but runs
below the limit forever, and a bucket whose capacity is smaller than a large call can
never admit that call.

So each budget keeps two things:

* a **log** of what it admitted in the last window, with the time of each admission.
  A call is admitted only when the logged total plus its cost fits the limit; when
  it does not, the wait is read off the log: the moment enough old entries leave the
  window. This is the hard guarantee, and it holds for any mix of call sizes up to
  the limit itself. The window is 60 s plus a margin (1 s by default), so a request
  that reaches the server a little later than it left us is still counted in the
  window the server puts it in.
* a **pacer** (a generic cell rate algorithm: one "theoretical arrival time" pushed
  forward by cost / rate at every admission) that spreads admissions evenly at the
  limit's rate, allowing ``burst_s`` seconds of it at once. The log alone would let
  a whole minute's budget go out in the first instant and then stall; providers
  enforce their limits over shorter periods too, so an even flow sees fewer 429s.
  The pacer runs exactly at the limit's rate, so in steady state the log and the
  pacer agree and throughput is the limit (less the margin).

Usage reported by an answer replaces the estimate in the log and in the pacer
(:meth:`Lease.settle`), so over-estimates are given back. Rate-limit headers can only
tighten a budget (:meth:`Limiter.observe`): a lower limit is adopted, and when the
server says fewer remain than the log implies, the difference is logged as a
hidden entry that leaves the window when the server says its budget resets. A 429 or
an overload pauses the whole limiter (:meth:`Limiter.pause`); afterwards the pacer's
rate ramps linearly from ``ramp_floor`` of the limit back to all of it over
``ramp_s`` seconds, so the queue that built up during the pause does not hit the
server all at once.

Memory is one small entry per admission per budget, kept for one window: about
``rpm`` entries per budget at full speed.

One HTTP attempt, as the engine drives it::

    limiter = limiters.get(provider_name, call.model)
    async with limiter.acquire(
        input_tokens=provider.estimate_input_tokens(call),
        output_tokens=call.max_tokens,
    ) as lease:
        status, headers, body = await send(provider.build(call))
    try:
        reply = provider.parse(status, headers, body)
    except ProviderError as error:
        limiter.observe(error.rate_limit)
        if error.usage is not None:
            lease.settle(error.usage)
        if error.kind in (ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED):
            limiter.pause(error.retry_after_s or backoff)
        raise
    limiter.observe(reply.rate_limit)
    lease.settle(reply.usage)
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import TracebackType

from providers.base import RateLimitInfo, Usage

__all__ = [
    "WINDOW_S",
    "CallTooLargeError",
    "Lease",
    "Limiter",
    "LimiterSet",
    "Limits",
]

logger = logging.getLogger(__name__)

WINDOW_S = 60.0
"""The period the per-minute limits are measured over, in seconds."""

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Limits:
    """The budgets of one (provider, model) pair; None means unlimited.

    Attributes:
        rpm: Requests per minute.
        tpm: Tokens per minute: input plus output, or input only when
            ``output_counts_in_tpm`` is False (Gemini counts input only).
        input_tpm: Input tokens per minute, for providers that limit them apart.
        output_tpm: Output tokens per minute, likewise.
        max_in_flight: Calls sent and not yet answered.
        output_counts_in_tpm: Whether output tokens are charged to ``tpm``.
        margin_s: Added to the 60 s window, to absorb differences between when a
            call leaves us and when the server logs it.
        burst_s: How many seconds' worth of the per-minute rate may go out at once.
        ramp_s: How long the rate takes to climb back to the limit after a pause.
        ramp_floor: The fraction of the limit's rate right after a pause.
        window_s: The period the per-minute limits are measured over: 60 s against
            a real provider; tests shorten it, with the emulator's, to run minutes of
            limiting in seconds.
    """

    rpm: int | None = None
    tpm: int | None = None
    input_tpm: int | None = None
    output_tpm: int | None = None
    max_in_flight: int | None = None
    output_counts_in_tpm: bool = True
    margin_s: float = 1.0
    burst_s: float = 1.0
    ramp_s: float = 30.0
    ramp_floor: float = 0.1
    window_s: float = WINDOW_S

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "input_tpm", "output_tpm", "max_in_flight"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int)
            ):
                raise ValueError(f"{name} must be a whole number, not {value!r}")
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, got {value}")
        if self.window_s <= 0:
            raise ValueError(f"window_s must be positive, got {self.window_s}")
        for name in ("margin_s", "burst_s", "ramp_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 < self.ramp_floor <= 1:
            raise ValueError(f"ramp_floor must be in (0, 1], got {self.ramp_floor}")


class CallTooLargeError(ValueError):
    """A call costs more than a per-minute limit allows, so it can never be sent."""


class _Entry:
    """One admission in a budget's log; ``live`` until it leaves the window."""

    __slots__ = ("amount", "live", "time")

    def __init__(self, time: float, amount: int) -> None:
        self.time = time
        self.amount = amount
        self.live = True


class _Budget:
    """One per-minute budget: a log for the hard bound, a pacer for an even flow."""

    __slots__ = ("_log", "_tat", "_used", "limit", "name", "window")

    def __init__(self, name: str, limit: int | None, window: float) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self._log: deque[_Entry] = deque()
        self._used = 0
        self._tat = -math.inf

    def used(self, now: float) -> int:
        """Return the total admitted in the window ending now."""
        self._prune(now)
        return self._used

    def wait(self, cost: int, now: float, burst_s: float) -> float:
        """Return how long a call of ``cost`` must wait before it fits (0: now)."""
        if self.limit is None:
            return 0.0
        self._prune(now)
        return max(self._log_wait(cost, now), self._tat - burst_s - now, 0.0)

    def charge(self, cost: int, now: float, factor: float) -> _Entry:
        """Record an admission of ``cost`` at ``now``; ``factor`` scales the rate."""
        if self.limit is None:
            # An unlimited budget keeps no log: thousands of entries a minute would
            # cost memory and garbage-collector time for nothing. Should a
            # provider's headers give it a limit later, their remaining count
            # stands in for the history it did not keep (see lower_remaining).
            return _UNLOGGED
        self._prune(now)
        entry = _Entry(now, cost)
        self._log.append(entry)
        self._used += cost
        self._tat = max(self._tat, now) + cost / self._rate(factor)
        return entry

    def adjust(self, entry: _Entry, amount: int, factor: float) -> None:
        """Replace an admission's estimated cost with its real one."""
        if entry is _UNLOGGED:
            return
        delta = amount - entry.amount
        entry.amount = amount
        if entry.live:
            self._used += delta
        if self.limit is not None:
            self._tat += delta / self._rate(factor)

    def lower_limit(self, limit: int) -> bool:
        """Adopt ``limit`` if it is tighter than ours; return whether it was."""
        if limit < 1 or (self.limit is not None and limit >= self.limit):
            return False
        self.limit = limit
        return True

    def lower_remaining(self, remaining: int, reset_s: float | None, now: float) -> int:
        """Log what the server has counted and we have not; return that amount.

        The hidden usage leaves the window when the server said its budget is full
        again (capped at one window, and a whole window when it did not say).
        """
        if self.limit is None:
            return 0
        hidden = self.limit - self.used(now) - remaining
        reset = self.window if reset_s is None else min(reset_s, self.window)
        if hidden <= 0 or reset <= 0:
            return 0
        # Dated so that it leaves the window at now + reset. That date is in the
        # past, among the logged entries, so it goes in by bisection to keep the
        # log sorted; later admissions, dated now or after, still just append.
        entry = _Entry(now + reset - self.window, hidden)
        index = bisect.bisect_right(self._log, entry.time, key=_entry_time)
        self._log.insert(index, entry)
        self._used += hidden
        return hidden

    def _log_wait(self, cost: int, now: float) -> float:
        assert self.limit is not None
        excess = self._used + cost - self.limit
        if excess <= 0:
            return 0.0
        freed = 0
        for entry in self._log:
            freed += entry.amount
            if freed >= excess:
                return entry.time + self.window - now
        return math.inf

    def _rate(self, factor: float) -> float:
        assert self.limit is not None
        return self.limit / self.window * factor

    def _prune(self, now: float) -> None:
        log = self._log
        horizon = now - self.window
        while log and log[0].time <= horizon:
            entry = log.popleft()
            entry.live = False
            self._used -= entry.amount


# What an unlimited budget hands out instead of a log entry; never in any log.
_UNLOGGED = _Entry(-math.inf, 0)
_UNLOGGED.live = False
# What a call admitted while no budget is limited holds: nothing to settle.
_UNLOGGED_ALL = (_UNLOGGED, _UNLOGGED, _UNLOGGED, _UNLOGGED)


def _entry_time(entry: _Entry) -> float:
    return entry.time


class Lease:
    """The budget one admitted call holds; settle it with the usage it reports.

    Obtained from ``async with limiter.acquire(...) as lease``. Leaving the block
    frees the in-flight slot; the tokens stay charged until they leave the window.
    """

    __slots__ = ("_entries", "_limiter", "_released")

    def __init__(self, limiter: Limiter, entries: tuple[_Entry, ...]) -> None:
        self._limiter = limiter
        self._entries = entries
        self._released = False

    def settle(self, usage: Usage) -> None:
        """Replace the token estimates with the usage the answer reported.

        Over-estimates are given back to the budgets at once; under-estimates are
        charged. Settling twice replaces the first settlement.
        """
        if self._entries is _UNLOGGED_ALL:
            return  # admitted while nothing was limited: no budget holds it
        costs = self._limiter._costs(usage.input_tokens, usage.output_tokens)
        self._limiter._adjust(self._entries, costs)

    def refund(self) -> None:
        """Give back everything, the request included: the call was never sent."""
        if self._entries is _UNLOGGED_ALL:
            return
        self._limiter._adjust(self._entries, (0, 0, 0, 0))


class _Acquisition:
    """The async context manager :meth:`Limiter.acquire` returns."""

    __slots__ = ("_costs", "_lease", "_limiter")

    def __init__(self, limiter: Limiter, costs: tuple[int, int, int, int]) -> None:
        self._limiter = limiter
        self._costs = costs
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        self._lease = await self._limiter._wait_for(self._costs)
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._lease is not None:
            self._limiter._release(self._lease)


class _Waiter:
    __slots__ = ("costs", "future")

    def __init__(
        self, costs: tuple[int, int, int, int], future: asyncio.Future[Lease]
    ) -> None:
        self.costs = costs
        self.future = future


class Limiter:
    """The rate limits of one (provider, model) pair, shared by all its calls.

    Args:
        limits: The configured budgets; headers may tighten them later.
        clock: A monotonic clock in seconds; its delays are slept on the running
            loop, so it must tick like the loop's clock (tests pass ``loop.time``
            of a virtual-time loop).
        name: A label for log lines, such as ``anthropic/claude-haiku-4-5``.

    The limiter belongs to the event loop it is first used on; using it from
    another loop raises :class:`RuntimeError`.
    """

    def __init__(
        self, limits: Limits, *, clock: Clock = time.monotonic, name: str = ""
    ) -> None:
        self._config = limits
        self._clock = clock
        self._name = name or "limiter"
        window = limits.window_s + limits.margin_s
        self._budgets = (
            _Budget("requests per minute", limits.rpm, window),
            _Budget("tokens per minute", limits.tpm, window),
            _Budget("input tokens per minute", limits.input_tpm, window),
            _Budget("output tokens per minute", limits.output_tpm, window),
        )
        self._max_in_flight = limits.max_in_flight
        self._unlimited = self._nothing_limited()
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        return f"Limiter({self._name!r}, {self.limits!r})"

    @property
    def limits(self) -> Limits:
        """The budgets in force: the configured ones, tightened by headers."""
        rpm, tpm, input_tpm, output_tpm = (b.limit for b in self._budgets)
        return replace(
            self._config, rpm=rpm, tpm=tpm, input_tpm=input_tpm, output_tpm=output_tpm
        )

    @property
    def counts_tokens(self) -> bool:
        """Whether any token budget is limited (else estimates are not needed)."""
        return any(budget.limit is not None for budget in self._budgets[1:])

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet released."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Calls queued for admission."""
        return sum(1 for waiter in self._waiters if not waiter.future.done())

    @property
    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def acquire(self, input_tokens: int = 0, output_tokens: int = 0) -> _Acquisition:
        """Wait for room for one call; use as ``async with ... as lease``.

        Args:
            input_tokens: The estimated input tokens, images included.
            output_tokens: The output tokens to reserve, normally ``max_tokens``.

        Raises:
            CallTooLargeError: At once, when the call exceeds a per-minute limit
                and so could never be admitted; also while waiting, if headers
                lower a limit below it.
        """
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts must not be negative")
        costs = self._costs(input_tokens, output_tokens)
        if not self._unlimited:
            problem = self._never_fits(costs)
            if problem is not None:
                raise CallTooLargeError(problem)
        return _Acquisition(self, costs)

    def pause(self, seconds: float) -> None:
        """Admit nothing for ``seconds``, then ramp the rate back up.

        Call it when the provider answers 429 or says it is overloaded, with the
        wait it asked for. A pause never shortens one already in force.
        """
        until = self._clock() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            logger.debug("%s: paused for %.2f s", self._name, seconds)
        self._service()

    def observe(self, info: RateLimitInfo | None) -> None:
        """Tighten the budgets with what a provider's rate-limit headers said.

        A limit lower than ours is adopted (never a higher one: the configured
        limits are a ceiling the user chose). A remaining count lower than our log
        implies means someone else spends from the same budget; the difference is
        charged until the server's reset time.
        """
        if info is None:
            return
        now = self._clock()
        requests, tokens, inputs, outputs = self._budgets
        for budget, limit, remaining, reset in (
            (requests, info.limit_requests, info.remaining_requests,
             info.reset_requests_s),
            (tokens, info.limit_tokens, info.remaining_tokens, info.reset_tokens_s),
            (inputs, info.limit_input_tokens, info.remaining_input_tokens,
             info.reset_tokens_s),
            (outputs, info.limit_output_tokens, info.remaining_output_tokens,
             info.reset_tokens_s),
        ):  # fmt: skip
            self._observe_budget(budget, limit, remaining, reset, now)
        self._service()

    def _observe_budget(
        self,
        budget: _Budget,
        limit: int | None,
        remaining: int | None,
        reset_s: float | None,
        now: float,
    ) -> None:
        if limit is not None and budget.lower_limit(limit):
            self._unlimited = False
            logger.info("%s: the server's %s is %d", self._name, budget.name, limit)
        if remaining is not None:
            hidden = budget.lower_remaining(remaining, reset_s, now)
            if hidden:
                logger.debug(
                    "%s: %d %s used elsewhere", self._name, hidden, budget.name
                )

    def _costs(
        self, input_tokens: int, output_tokens: int
    ) -> tuple[int, int, int, int]:
        """Map a call's tokens to what it costs in each budget, in budget order."""
        counted = input_tokens
        if self._config.output_counts_in_tpm:
            counted += output_tokens
        return (1, counted, input_tokens, output_tokens)

    def _never_fits(self, costs: tuple[int, int, int, int]) -> str | None:
        for budget, cost in zip(self._budgets, costs, strict=True):
            if budget.limit is not None and cost > budget.limit:
                return (
                    f"{self._name}: the call needs {cost} of the {budget.name} limit "
                    f"of {budget.limit}, {cost - budget.limit} more than it allows"
                )
        return None

    async def _wait_for(self, costs: tuple[int, int, int, int]) -> Lease:
        loop = self._bind_loop()
        if not self._waiters:
            # Nobody is queued, so admitting at once cannot overtake anyone; this
            # spares the common uncontended case a future and a queue round trip.
            now = self._clock()
            if self._unlimited and now >= self._paused_until:
                # Nothing to charge: no budget is limited, and none keeps a log.
                self._in_flight += 1
                return Lease(self, _UNLOGGED_ALL)
            if self._has_room(costs, now):
                return self._admit(costs, now)
        waiter = _Waiter(costs, loop.create_future())
        self._waiters.append(waiter)
        self._service()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: _Waiter) -> None:
        """Undo a cancelled wait, including one admitted just as it was cancelled."""
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            lease = future.result()
            lease.refund()
            self._release(lease)
        else:
            # Cancelled futures are skipped when they reach the head of the queue,
            # which keeps cancelling thousands of waiters linear.
            future.cancel()
        self._service()

    def _release(self, lease: Lease) -> None:
        if lease._released:
            return
        lease._released = True
        self._in_flight -= 1
        if self._waiters or self._timer is not None:
            self._service()

    def _adjust(
        self, entries: tuple[_Entry, ...], costs: tuple[int, int, int, int]
    ) -> None:
        factor = self._ramp_factor(self._clock())
        for budget, entry, cost in zip(self._budgets, entries, costs, strict=True):
            budget.adjust(entry, cost, factor)
        self._service()

    def _service(self) -> None:
        """Admit waiters from the head of the queue while they fit; else set a timer.

        Called whenever something may have made room: a release, a settlement, the
        timer itself. Only the head is ever considered, which is what makes the
        queue FIFO.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        waiters = self._waiters
        while waiters:
            waiter = waiters[0]
            if waiter.future.done():
                waiters.popleft()
                continue
            problem = self._never_fits(waiter.costs)
            if problem is not None:
                waiters.popleft()
                waiter.future.set_exception(CallTooLargeError(problem))
                continue
            if self._in_flight_full():
                return  # a release will call us again
            delay = self._delay(waiter.costs, now)
            if delay > 0:
                assert self._loop is not None
                self._timer = self._loop.call_later(delay, self._service)
                return
            waiters.popleft()
            waiter.future.set_result(self._admit(waiter.costs, now))

    def _nothing_limited(self) -> bool:
        return self._max_in_flight is None and all(
            budget.limit is None for budget in self._budgets
        )

    def _in_flight_full(self) -> bool:
        return (
            self._max_in_flight is not None and self._in_flight >= self._max_in_flight
        )

    def _has_room(self, costs: tuple[int, int, int, int], now: float) -> bool:
        return not self._in_flight_full() and self._delay(costs, now) <= 0

    def _delay(self, costs: tuple[int, int, int, int], now: float) -> float:
        delay = self._paused_until - now
        burst_s = self._config.burst_s
        for budget, cost in zip(self._budgets, costs, strict=True):
            delay = max(delay, budget.wait(cost, now, burst_s))
        return delay

    def _admit(self, costs: tuple[int, int, int, int], now: float) -> Lease:
        factor = self._ramp_factor(now)
        entries = tuple(
            budget.charge(cost, now, factor)
            for budget, cost in zip(self._budgets, costs, strict=True)
        )
        self._in_flight += 1
        return Lease(self, entries)

    def _ramp_factor(self, now: float) -> float:
        """Return the fraction of the limit's rate allowed now, after any pause."""
        since = now - self._paused_until
        ramp_s = self._config.ramp_s
        if since >= ramp_s:
            return 1.0
        floor = self._config.ramp_floor
        return floor + (1.0 - floor) * max(0.0, since) / ramp_s

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(f"{self._name} is bound to another event loop")
        return loop


class LimiterSet:
    """The limiters of a run, one per (provider, model), created on first use.

    Args:
        default: The limits of pairs not listed in ``per_model``.
        per_model: Limits by ``(provider, model)``; ``(provider, "*")`` sets a
            provider-wide default.
        clock: The clock every limiter uses.
    """

    def __init__(
        self,
        default: Limits | None = None,
        per_model: Mapping[tuple[str, str], Limits] | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self._default = default or Limits()
        self._per_model = dict(per_model or {})
        self._clock = clock
        self._limiters: dict[tuple[str, str], Limiter] = {}

    def limits_for(self, provider: str, model: str) -> Limits:
        """Return the configured limits of a pair (before any header tightening)."""
        found = self._per_model.get((provider, model))
        if found is None:
            found = self._per_model.get((provider, "*"), self._default)
        return found

    def get(self, provider: str, model: str) -> Limiter:
        """Return the limiter of a pair, creating it inside the running loop.

        Raises:
            RuntimeError: No event loop is running.
        """
        key = (provider, model)
        limiter = self._limiters.get(key)
        if limiter is None:
            asyncio.get_running_loop()
            limiter = Limiter(
                self.limits_for(provider, model),
                clock=self._clock,
                name=f"{provider}/{model}",
            )
            self._limiters[key] = limiter
        return limiter

    def __iter__(self) -> Iterator[tuple[tuple[str, str], Limiter]]:
        return iter(list(self._limiters.items()))

    def __len__(self) -> int:
        return len(self._limiters)
