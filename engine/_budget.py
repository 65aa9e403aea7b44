"""A budget of request-body bytes in flight, so memory has a ceiling.

Concurrency bounds the number of calls in flight, but not their size: a thousand
calls with large images hold a thousand large bodies (twice, while the socket
drains). The engine takes a body's size from this budget before sending it and
gives it back when the answer arrives; calls wait, in order, when it is spent.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["ByteBudget"]


class ByteBudget:
    """Bytes that may be in flight at once, handed out first come, first served.

    Args:
        limit: The budget in bytes. A single body larger than the whole budget is
            let through alone, so no call can wait forever.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the byte budget must be positive, got {limit}")
        self.limit = limit
        self._free = limit
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def in_use(self) -> int:
        return self.limit - self._free

    def hold(self, size: int) -> _Hold:
        """Hold ``size`` bytes of the budget for the duration of an ``async with``."""
        return _Hold(self, min(size, self.limit))

    async def _take(self, taken: int) -> None:
        if not self._waiters and self._free >= taken:
            self._free -= taken
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((taken, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._give_back(taken)  # granted just as it was cancelled
            else:
                future.cancel()
            raise

    def _give_back(self, size: int) -> None:
        self._free += size
        while self._waiters:
            taken, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self._free < taken:
                return
            self._waiters.popleft()
            self._free -= taken
            future.set_result(None)


class _Hold:
    """The async context manager :meth:`ByteBudget.hold` returns.

    A class rather than a generator-based context manager: the engine enters one
    per attempt, and this costs one small object instead of two.
    """

    __slots__ = ("_budget", "_size")

    def __init__(self, budget: ByteBudget, size: int) -> None:
        self._budget = budget
        self._size = size

    async def __aenter__(self) -> None:
        await self._budget._take(self._size)

    async def __aexit__(self, *exc_info: object) -> None:
        self._budget._give_back(self._size)
