"""The emulator's own rate limits, enforced the way the providers describe theirs.

Each model has up to four per-window budgets: requests, tokens, input tokens and
output tokens. A request is admitted when each budget, over the last window, has
room for it; its token cost at admission is its input plus its whole output budget
(``max_tokens``), as OpenAI counts it, and once answered the log keeps what it
really produced. Admitted requests are logged with their time, so what the headers
say (remaining, reset) is read off the same log that decides admission.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Budget", "ModelLimits", "Verdict", "WindowLimiter"]


@dataclass(frozen=True)
class ModelLimits:
    """Per-window limits of one model; None means unlimited.

    ``tpm`` counts input and output tokens unless ``tpm_counts_output`` is False
    (Gemini counts input only). ``input_tpm`` and ``output_tpm`` are Anthropic's
    separate budgets.
    """

    rpm: int | None = None
    tpm: int | None = None
    input_tpm: int | None = None
    output_tpm: int | None = None
    tpm_counts_output: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ModelLimits:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown limit settings {sorted(unknown)}")
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Budget:
    """The state of one budget as the headers report it."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True)
class Verdict:
    """Whether a request was admitted; if not, which budget and how long to wait."""

    admitted: bool
    entry: list[float] | None = None
    budget: str | None = None
    retry_after_s: float = 0.0
    used: int = 0
    limit: int = 0
    requested: int = 0


class _ModelLog:
    """Admissions of one model in the current window: [time, input, output]."""

    def __init__(self) -> None:
        self.entries: deque[list[float]] = deque()

    def trim(self, now: float, window: float) -> None:
        while self.entries and self.entries[0][0] <= now - window:
            self.entries.popleft()

    def total(self, budget: str, counts_output: bool = True) -> int:
        if budget == "rpm":
            return len(self.entries)
        if budget == "input_tpm":
            return int(sum(e[1] for e in self.entries))
        if budget == "output_tpm":
            return int(sum(e[2] for e in self.entries))
        return int(sum(e[1] + (e[2] if counts_output else 0) for e in self.entries))

    def wait_for(
        self,
        budget: str,
        room_needed: int,
        now: float,
        window: float,
        counts_output: bool,
    ) -> float:
        """Seconds until enough old entries leave the window to free ``room_needed``."""
        freed = 0.0
        for entry in self.entries:
            if budget == "rpm":
                freed += 1
            elif budget == "input_tpm":
                freed += entry[1]
            elif budget == "output_tpm":
                freed += entry[2]
            else:
                freed += entry[1] + (entry[2] if counts_output else 0)
            if freed >= room_needed:
                return max(0.0, entry[0] + window - now)
        return window


class WindowLimiter:
    """Sliding-window limits per model, with a default for models not named.

    Args:
        limits: Limits by model name; the key ``*`` applies to every other model.
        window_s: The window; 60 s as the providers have it. Tests shorten it to
            run a minute's worth of limiting in a few seconds.
    """

    _BUDGETS = ("rpm", "tpm", "input_tpm", "output_tpm")

    def __init__(
        self, limits: Mapping[str, ModelLimits] | None = None, window_s: float = 60.0
    ) -> None:
        self.limits = dict(limits or {})
        self.window_s = window_s
        self._logs: dict[str, _ModelLog] = {}

    def limits_for(self, model: str) -> ModelLimits | None:
        return self.limits.get(model) or self.limits.get("*")

    def admit(self, model: str, input_tokens: int, max_output: int) -> Verdict:
        """Admit a request or say which budget it would overrun and for how long."""
        limits = self.limits_for(model)
        if limits is None:
            return Verdict(True)
        now = time.monotonic()
        log = self._logs.setdefault(model, _ModelLog())
        log.trim(now, self.window_s)
        costs = {
            "rpm": 1,
            "tpm": input_tokens + (max_output if limits.tpm_counts_output else 0),
            "input_tpm": input_tokens,
            "output_tpm": max_output,
        }
        for budget in self._BUDGETS:
            limit = getattr(limits, budget)
            if limit is None:
                continue
            used = log.total(budget, limits.tpm_counts_output)
            if used + costs[budget] > limit:
                wait = log.wait_for(
                    budget,
                    used + costs[budget] - limit,
                    now,
                    self.window_s,
                    limits.tpm_counts_output,
                )
                return Verdict(False, None, budget, wait, used, limit, costs[budget])
        entry = [now, float(input_tokens), float(max_output)]
        log.entries.append(entry)
        return Verdict(True, entry)

    @staticmethod
    def settle(verdict: Verdict, output_tokens: int) -> None:
        """Replace the output budget charged at admission by what was produced."""
        if verdict.entry is not None:
            verdict.entry[2] = float(output_tokens)

    def state(self, model: str) -> dict[str, Budget]:
        """Report each limited budget's limit, remaining and time to full refill."""
        limits = self.limits_for(model)
        if limits is None:
            return {}
        now = time.monotonic()
        log = self._logs.setdefault(model, _ModelLog())
        log.trim(now, self.window_s)
        reset = log.entries[-1][0] + self.window_s - now if log.entries else 0.0
        out = {}
        for budget in self._BUDGETS:
            limit = getattr(limits, budget)
            if limit is not None:
                used = log.total(budget, limits.tpm_counts_output)
                out[budget] = Budget(limit, max(0, limit - used), max(0.0, reset))
        return out


def go_duration(seconds: float) -> str:
    """Format seconds as OpenAI's reset headers do (``6m0s``, ``1.5s``, ``20ms``).

    >>> go_duration(360), go_duration(1.5), go_duration(0.02)
    ('6m0s', '1.5s', '20ms')
    """
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"
