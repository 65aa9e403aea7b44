"""The asyncio core: requests, scheduling, retries, caching and metrics."""

from __future__ import annotations

from engine.engine import Engine, EngineConfig
from engine.metrics import CallFinished, Event, PhaseFinished, PhaseStarted, PhaseStats
from engine.request import Failure, ImageRef, Request, Response, Result

__all__ = [
    "CallFinished",
    "Engine",
    "EngineConfig",
    "Event",
    "Failure",
    "ImageRef",
    "PhaseFinished",
    "PhaseStarted",
    "PhaseStats",
    "Request",
    "Response",
    "Result",
]
