"""Tests of the limiter, run on an event loop whose clock jumps instead of sleeping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from engine.limits import CallTooLargeError, Limiter, LimiterSet, Limits
from providers.base import RateLimitInfo, Usage

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of waiting for it.

    Minutes of limiter traffic then run in milliseconds, and every time is exact.
    """

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> Any:
            if timeout is None:
                # Nothing is scheduled: only another thread can wake us.
                events = real_select(2.0)
                if not events:
                    raise RuntimeError("deadlock: nothing scheduled and nothing ready")
                return events
            events = real_select(0)
            if not events and timeout > 0:
                self._now += timeout
            return events

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._now


def run(main: Callable[[], Awaitable[T]]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())  # type: ignore[arg-type]


def make(limits: Limits) -> Limiter:
    loop = asyncio.get_running_loop()
    return Limiter(limits, clock=loop.time, name="test/model")


def now() -> float:
    return asyncio.get_running_loop().time()


def windows_respect(events: list[tuple[float, int]], limit: int) -> bool:
    """Check every 60 s window starting at an event holds at most ``limit``."""
    events = sorted(events)
    for i, (start, _) in enumerate(events):
        total = sum(a for t, a in events[i:] if t < start + 60.0)
        if total > limit:
            return False
    return True


def test_no_sixty_second_window_exceeds_the_limits_from_the_first_minute() -> None:
    limits = Limits(rpm=120, tpm=20_000, max_in_flight=50)
    rng = random.Random(7)
    requests: list[tuple[float, int]] = []
    tokens: list[tuple[float, int]] = []

    async def one(limiter: Limiter) -> None:
        estimate = rng.randint(50, 500)
        async with limiter.acquire(input_tokens=estimate, output_tokens=200) as lease:
            admitted = now()
            await asyncio.sleep(rng.uniform(0.2, 5.0))
            actual = estimate + rng.randint(1, 200)
            lease.settle(Usage(input_tokens=estimate, output_tokens=actual - estimate))
        requests.append((admitted, 1))
        tokens.append((admitted, actual))

    async def main() -> float:
        limiter = make(limits)
        async with asyncio.TaskGroup() as group:
            for _ in range(400):
                group.create_task(one(limiter))
        return now()

    elapsed = run(main)
    assert windows_respect(requests, 120)
    assert windows_respect(tokens, 20_000)
    # Running at the limit, not under it: tokens bind here, so the run takes about
    # total tokens / tpm minutes (61 s minutes, for the margin).
    total = sum(amount for _, amount in tokens)
    ideal = total / 20_000 * 61.0
    assert elapsed < ideal * 1.1 + 5.0


def test_no_start_up_burst():
    async def main() -> list[float]:
        limiter = make(Limits(rpm=60))
        times: list[float] = []

        async def one() -> None:
            async with limiter.acquire():
                times.append(now())

        async with asyncio.TaskGroup() as group:
            for _ in range(120):
                group.create_task(one())
        return times

    times = run(main)
    assert sum(1 for t in times if t < 1.0) <= 3  # a second's worth, not a minute's
    assert sum(1 for t in times if t < 60.0) <= 60
    assert windows_respect([(t, 1) for t in times], 60)


def test_waiters_are_served_first_in_first_out():
    async def main() -> list[int]:
        limiter = make(Limits(tpm=1000, burst_s=60.0))
        order: list[int] = []

        async def one(index: int, tokens: int) -> None:
            async with limiter.acquire(input_tokens=tokens):
                order.append(index)

        sizes = [900, 800] + [10] * 8
        async with asyncio.TaskGroup() as group:
            for index, size in enumerate(sizes):
                group.create_task(one(index, size))
                await asyncio.sleep(0)
        return order

    # The small calls would fit next to the first one, but the large second call
    # is ahead of them and must not be starved.
    assert run(main) == list(range(10))


def test_settle_gives_back_an_over_estimate():
    async def main() -> float:
        limiter = make(Limits(tpm=1000, burst_s=0.0))
        async with limiter.acquire(input_tokens=100, output_tokens=500) as lease:
            lease.settle(Usage(input_tokens=100, output_tokens=20))
        async with limiter.acquire(input_tokens=800):
            return now()

    # Unsettled, the second call would wait for the first to leave the window (61 s).
    # Settled, it waits only for the pacer to pass the 120 tokens really used.
    assert run(main) == pytest.approx(120 / 1000 * 61.0)


def test_refund_gives_back_the_request_too():
    async def main() -> float:
        limiter = make(Limits(rpm=1, burst_s=0.0))
        async with limiter.acquire() as lease:
            lease.refund()
        async with limiter.acquire():
            return now()

    assert run(main) == 0.0


def test_pause_blocks_everyone_until_it_ends():
    async def main() -> list[float]:
        limiter = make(Limits(max_in_flight=10))
        limiter.pause(10.0)
        assert limiter.paused_for == 10.0
        times: list[float] = []

        async def one() -> None:
            async with limiter.acquire():
                times.append(now())

        async with asyncio.TaskGroup() as group:
            for _ in range(5):
                group.create_task(one())
        return times

    assert run(main) == [10.0] * 5


def test_after_a_pause_the_rate_ramps_back_up():
    async def main() -> list[float]:
        limiter = make(Limits(rpm=600, ramp_s=30.0, ramp_floor=0.1))
        limiter.pause(5.0)
        times: list[float] = []

        async def one() -> None:
            async with limiter.acquire():
                times.append(now())

        async with asyncio.TaskGroup() as group:
            for _ in range(400):
                group.create_task(one())
        return times

    times = run(main)
    assert min(times) == 5.0
    first_second = sum(1 for t in times if 5.0 <= t < 6.0)
    late_second = sum(1 for t in times if 36.0 <= t < 37.0)
    assert first_second <= 3
    assert 9 <= late_second <= 11  # 600 per 61 s minute


def test_a_cancelled_waiter_does_not_stall_the_rest():
    async def main() -> None:
        limiter = make(Limits(max_in_flight=1))
        admitted: list[str] = []
        release_first = asyncio.Event()

        async def one(name: str, hold: asyncio.Event | None = None) -> None:
            async with limiter.acquire():
                admitted.append(name)
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(one("first", release_first))
        await asyncio.sleep(0)
        second = asyncio.create_task(one("second"))
        third = asyncio.create_task(one("third"))
        await asyncio.sleep(0)
        assert limiter.waiting == 2
        second.cancel()
        release_first.set()
        await asyncio.gather(first, third)
        with pytest.raises(asyncio.CancelledError):
            await second
        assert admitted == ["first", "third"]
        assert limiter.in_flight == 0

    run(main)


def test_a_waiter_cancelled_just_after_admission_gives_its_slot_back():
    async def main() -> None:
        limiter = make(Limits(max_in_flight=1, rpm=100))
        holder = limiter.acquire()
        await holder.__aenter__()
        late = asyncio.create_task(_enter_and_exit(limiter))
        after = asyncio.create_task(_enter_and_exit(limiter))
        await asyncio.sleep(0)
        # Releasing admits ``late`` synchronously; cancelling it before it runs is
        # the race a cancellation-safe limiter must survive.
        await holder.__aexit__(None, None, None)
        late.cancel()
        with pytest.raises(asyncio.CancelledError):
            await late
        await after
        assert limiter.in_flight == 0

    run(main)


async def _enter_and_exit(limiter: Limiter) -> None:
    async with limiter.acquire():
        pass


def test_a_call_that_can_never_fit_fails_at_once():
    async def main() -> None:
        limiter = make(Limits(tpm=1000, output_tpm=300))
        with pytest.raises(CallTooLargeError, match="tokens per minute limit of 1000"):
            limiter.acquire(input_tokens=900, output_tokens=200)
        with pytest.raises(CallTooLargeError, match="100 more"):
            limiter.acquire(input_tokens=900, output_tokens=200)
        with pytest.raises(CallTooLargeError, match="output tokens per minute"):
            limiter.acquire(input_tokens=10, output_tokens=301)
        assert isinstance(CallTooLargeError("x"), ValueError)

    run(main)


def test_output_is_not_charged_to_tpm_when_the_provider_counts_input_only():
    async def main() -> None:
        limiter = make(Limits(tpm=1000, output_counts_in_tpm=False))
        async with limiter.acquire(input_tokens=900, output_tokens=5000):
            pass

    run(main)


def test_headers_lower_the_limits_but_never_raise_them():
    async def main() -> None:
        limiter = make(Limits(rpm=1000, tpm=100_000))
        limiter.observe(RateLimitInfo(limit_requests=5000, limit_tokens=50_000))
        assert limiter.limits.rpm == 1000
        assert limiter.limits.tpm == 50_000
        limiter.observe(RateLimitInfo(limit_input_tokens=80_000))
        assert limiter.limits.input_tpm == 80_000  # unlimited before: adopted
        limiter.observe(None)

    run(main)


def test_a_low_remaining_count_holds_budget_until_the_reset():
    async def main() -> float:
        limiter = make(Limits(tpm=10_000, burst_s=60.0))
        limiter.observe(RateLimitInfo(remaining_tokens=1_000, reset_tokens_s=10.0))
        async with limiter.acquire(input_tokens=5_000):
            return now()

    assert run(main) == pytest.approx(10.0)


def test_a_waiter_fails_when_headers_shrink_the_limit_below_it():
    async def main() -> None:
        limiter = make(Limits(tpm=10_000, burst_s=60.0))
        first = limiter.acquire(input_tokens=9_000)
        await first.__aenter__()
        waiting = asyncio.create_task(_enter_and_exit_tokens(limiter, 8_000))
        await asyncio.sleep(0)
        limiter.observe(RateLimitInfo(limit_tokens=5_000))
        with pytest.raises(CallTooLargeError):
            await waiting
        await first.__aexit__(None, None, None)

    run(main)


async def _enter_and_exit_tokens(limiter: Limiter, tokens: int) -> None:
    async with limiter.acquire(input_tokens=tokens):
        pass


def test_calls_in_flight_are_capped():
    async def main() -> int:
        limiter = make(Limits(max_in_flight=3))
        peak = 0

        async def one() -> None:
            nonlocal peak
            async with limiter.acquire():
                peak = max(peak, limiter.in_flight)
                await asyncio.sleep(1.0)

        async with asyncio.TaskGroup() as group:
            for _ in range(10):
                group.create_task(one())
        return peak

    assert run(main) == 3


def test_limiter_set_creates_limiters_lazily_inside_the_loop():
    limiters = LimiterSet(
        Limits(rpm=10),
        {("openai", "*"): Limits(rpm=20), ("openai", "gpt-4o"): Limits(rpm=30)},
    )
    with pytest.raises(RuntimeError):
        limiters.get("openai", "gpt-4o")

    async def main() -> None:
        first = limiters.get("openai", "gpt-4o")
        assert limiters.get("openai", "gpt-4o") is first
        assert first.limits.rpm == 30
        assert limiters.get("openai", "gpt-4.1").limits.rpm == 20
        assert limiters.get("gemini", "gemini-2.5-flash").limits.rpm == 10
        assert len(limiters) == 3

    run(main)


def test_a_limiter_belongs_to_one_loop():
    limiter = Limiter(Limits())

    async def use() -> None:
        async with limiter.acquire():
            pass

    asyncio.run(use())
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(use())


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="rpm"):
        Limits(rpm=0)
    with pytest.raises(ValueError, match="ramp_floor"):
        Limits(ramp_floor=0.0)
