"""The budget of request bytes in flight."""

from __future__ import annotations

import asyncio

import pytest

from engine._budget import ByteBudget


async def test_bytes_in_use_never_exceed_the_limit_and_all_get_through() -> None:
    budget = ByteBudget(100)
    peak = 0
    order: list[int] = []

    async def send(number: int, size: int) -> None:
        nonlocal peak
        async with budget.hold(size):
            peak = max(peak, budget.in_use)
            order.append(number)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(send(i, 30) for i in range(20)))
    assert peak <= 90 and budget.in_use == 0
    assert order == list(range(20))  # first come, first served


async def test_a_body_larger_than_the_budget_goes_alone() -> None:
    budget = ByteBudget(100)
    async with budget.hold(10):
        waiting = asyncio.create_task(_hold(budget, 1000))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # it waits for the whole budget
    await asyncio.wait_for(waiting, 1)
    assert budget.in_use == 0


async def test_a_cancelled_waiter_does_not_stall_the_others() -> None:
    budget = ByteBudget(50)
    async with budget.hold(50):
        stuck = asyncio.create_task(_hold(budget, 40))
        after = asyncio.create_task(_hold(budget, 10))
        await asyncio.sleep(0.01)
        stuck.cancel()
    await asyncio.wait_for(after, 1)
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert budget.in_use == 0


async def _hold(budget: ByteBudget, size: int) -> None:
    async with budget.hold(size):
        await asyncio.sleep(0)


def test_the_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ByteBudget(0)


def test_the_allocator_setting_applies_on_linux() -> None:
    import sys

    from engine.process import keep_large_buffers_off_the_heap

    assert keep_large_buffers_off_the_heap() is sys.platform.startswith("linux")


def test_the_collector_threshold_is_raised_and_never_lowered() -> None:
    import gc

    from engine.process import collect_garbage_less_often

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        collect_garbage_less_often(20_000)
        assert gc.get_threshold() == (20_000, 10, 10)
        collect_garbage_less_often(5_000)
        assert gc.get_threshold() == (20_000, 10, 10)
        gc.set_threshold(0)  # collection switched off stays off
        collect_garbage_less_often(20_000)
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*saved)
