"""The emulator: an aiohttp server that speaks the providers' wire formats on loopback.

It decodes every request as the real service would (base64 images included), asks the
simulated model for the answer, reports usage by the provider's own token rules, and can
add latency and inject faults. Every request is counted; ``GET /emulator/stats`` gives
the counts and ``GET /emulator/log`` the per-request log, so tests can prove what was
sent. ``POST /emulator/config`` changes latency and faults while it runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import orjson
from aiohttp import web

from providers.emulator import simulated
from providers.emulator._limits import ModelLimits, WindowLimiter
from providers.emulator._wires import WIRES, Decoded, EmulatorError
from providers.image_tokens import estimate_text_tokens

__all__ = [
    "FAULT_KINDS",
    "EmulatorConfig",
    "EmulatorServer",
    "ModelLimits",
    "build_app",
    "serve",
]

logger = logging.getLogger(__name__)

FAULT_KINDS = ("500", "503", "timeout", "drop", "malformed")

# Model names the emulator answers to; anything else gets the provider's "not found".
KNOWN_MODELS = frozenset(
    {
        "sim-1",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gemini-2.0-flash",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-1.5-flash",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
        "claude-sonnet-4",
    }
)


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves; every field can be changed while it runs.

    Attributes:
        latency_ms: Added latency per request: fixed, or the median when
            ``latency_sigma`` is above zero.
        latency_sigma: The sigma of a log-normal latency (0 for fixed latency).
        fault_rate: The share of requests answered with a fault instead.
        faults: Which faults to draw from, uniformly: ``500``, ``503``, ``timeout``
            (no answer for ``fault_timeout_s``), ``drop`` (connection closed) and
            ``malformed`` (a 200 whose body is not JSON).
        fault_timeout_s: How long a ``timeout`` fault keeps the client waiting.
        seed: Seeds latency and fault draws.
        api_key: When set, requests must carry this key.
        limits: Rate limits by model name (``*`` for every other model), enforced
            with the provider's own headers and 429 answers.
        window_s: The period the limits are counted over; 60 s as the providers
            have it, shorter in tests.
    """

    latency_ms: float = 0.0
    latency_sigma: float = 0.0
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULT_KINDS
    fault_timeout_s: float = 30.0
    seed: int = 0
    api_key: str | None = field(default=None, repr=False)
    limits: Mapping[str, ModelLimits] = field(default_factory=dict)
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within 0..1, got {self.fault_rate}")
        if self.latency_ms < 0 or self.latency_sigma < 0:
            raise ValueError("latency_ms and latency_sigma must not be negative")
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(
                f"unknown fault kinds {sorted(unknown)}; choose from {FAULT_KINDS}"
            )


@dataclass
class _Stats:
    requests: int = 0
    answered: int = 0
    images: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_wire: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    digests: Counter[str] = field(default_factory=Counter)
    log: list[tuple[float, str, str, int, int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "images": self.images,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_wire": dict(self.by_wire),
            "faults": dict(self.faults),
            "rate_limited": self.by_status.get(429, 0),
        }


class _Emulator:
    """The emulator's state and its request handlers."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = _Stats()
        self.limiter = WindowLimiter(config.limits, config.window_s)
        self._random = random.Random(config.seed)
        self._started = time.monotonic()

    def reconfigure(self, **changes: Any) -> EmulatorConfig:
        """Apply changes to the settings; limits take effect at once."""
        if "limits" in changes:
            changes["limits"] = _parse_limits(changes["limits"])
        if "faults" in changes:
            changes["faults"] = tuple(changes["faults"])
        self.config = replace(self.config, **changes)
        self.limiter.limits = dict(self.config.limits)
        self.limiter.window_s = self.config.window_s
        return self.config

    def _latency_s(self) -> float:
        base = self.config.latency_ms / 1000.0
        if base <= 0:
            return 0.0
        if self.config.latency_sigma > 0:
            return base * math.exp(self._random.gauss(0.0, self.config.latency_sigma))
        return base

    def _draw_fault(self) -> str | None:
        if self.config.fault_rate <= 0 or not self.config.faults:
            return None
        if self._random.random() >= self.config.fault_rate:
            return None
        return self._random.choice(self.config.faults)

    def _record(
        self, wire: str, model: str, status: int, tokens: tuple[int, int]
    ) -> None:
        self.stats.by_status[status] += 1
        if status == 200:
            self.stats.answered += 1
        elapsed = time.monotonic() - self._started
        self.stats.log.append((elapsed, wire, model, status, *tokens))

    async def handle(self, wire: Any, request: web.Request) -> web.StreamResponse:
        """Serve one model request in any wire format."""
        self.stats.requests += 1
        self.stats.by_wire[wire.name] += 1
        raw = await request.read()
        latency = self._latency_s()
        fault = self._draw_fault()
        if latency:
            await asyncio.sleep(latency)
        if fault is not None:
            response = await self._fault(wire, fault, request)
            self._record(wire.name, "?", response.status, (0, 0))
            return response
        try:
            decoded = wire.decode(request, raw, self.config.api_key, KNOWN_MODELS)
        except EmulatorError as error:
            response = wire.error(error, {})
            self._record(wire.name, "?", response.status, (0, 0))
            return response
        self.stats.images += len(decoded.model_input.image_digests)
        self.stats.digests.update(decoded.model_input.image_digests)
        return self._answer(wire, decoded)

    def _answer(self, wire: Any, decoded: Decoded) -> web.Response:
        verdict = self.limiter.admit(
            decoded.model, decoded.input_tokens, decoded.max_tokens
        )
        if not verdict.admitted:
            headers = wire.rate_headers(self.limiter.state(decoded.model))
            self._record(wire.name, decoded.model, 429, (decoded.input_tokens, 0))
            return wire.rate_limited(verdict, decoded.model, headers)
        output = simulated.respond(decoded.model_input)
        text, tokens_out, truncated = _truncate(output, decoded.max_tokens)
        self.limiter.settle(verdict, tokens_out)
        headers = wire.rate_headers(self.limiter.state(decoded.model))
        self._record(wire.name, decoded.model, 200, (decoded.input_tokens, tokens_out))
        return wire.answer(decoded, text, tokens_out, truncated, headers)

    async def _fault(self, wire: Any, fault: str, request: web.Request) -> web.Response:
        self.stats.faults[fault] += 1
        if fault == "timeout":
            await asyncio.sleep(self.config.fault_timeout_s)
            return wire.error(EmulatorError("overloaded", "timed out"), {})
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if fault == "malformed":
            return web.Response(
                status=200,
                body=b'{"id": "broken", "choices": [',
                content_type="application/json",
            )
        if fault == "500":
            error = EmulatorError(
                "server", "The server had an error while processing your request."
            )
        else:
            error = EmulatorError(
                "overloaded",
                "The engine is currently overloaded, please try again later",
            )
        return wire.error(error, {})

    # -- control ------------------------------------------------------------------

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_dict())

    async def get_log(self, request: web.Request) -> web.Response:
        rows = [
            {
                "t": t,
                "wire": w,
                "model": m,
                "status": s,
                "input_tokens": i,
                "output_tokens": o,
            }
            for t, w, m, s, i, o in self.stats.log
        ]
        return web.Response(body=orjson.dumps(rows), content_type="application/json")

    async def set_config(self, request: web.Request) -> web.Response:
        changes = orjson.loads(await request.read())
        allowed = {f.name for f in fields(EmulatorConfig)} - {"api_key"}
        unknown = set(changes) - allowed
        if unknown:
            return web.json_response(
                {"error": f"unknown settings {sorted(unknown)}"}, status=400
            )
        try:
            config = self.reconfigure(**changes)
        except (TypeError, ValueError) as error:
            return web.json_response({"error": str(error)}, status=400)
        shown = asdict(config)
        shown.pop("api_key")
        return web.Response(body=orjson.dumps(shown), content_type="application/json")

    async def reset(self, request: web.Request) -> web.Response:
        self.stats = _Stats()
        self.limiter = WindowLimiter(self.config.limits, self.config.window_s)
        self._started = time.monotonic()
        return web.json_response({"reset": True})


def _parse_limits(raw: Mapping[str, Any]) -> dict[str, ModelLimits]:
    return {
        model: value if isinstance(value, ModelLimits) else ModelLimits.from_dict(value)
        for model, value in raw.items()
    }


def _truncate(output: simulated.ModelOutput, max_tokens: int) -> tuple[str, int, bool]:
    """Cut an answer to the output budget as a provider would; say if it was cut."""
    tokens = output.output_tokens or estimate_text_tokens(output.text)
    if tokens <= max_tokens:
        return output.text, max(1, tokens), False
    keep = max(1, len(output.text) * max_tokens // tokens)
    return output.text[:keep], max_tokens, True


EMULATOR: web.AppKey[_Emulator] = web.AppKey("emulator", _Emulator)


def build_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator's aiohttp application."""
    emulator = _Emulator(config or EmulatorConfig())
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[EMULATOR] = emulator
    for path, wire in (
        ("/v1/chat/completions", WIRES["openai"]),
        ("/v1beta/models/{target}", WIRES["gemini"]),
        ("/v1/messages", WIRES["anthropic"]),
    ):
        app.router.add_post(path, functools.partial(emulator.handle, wire))
    app.router.add_get("/emulator/stats", emulator.get_stats)
    app.router.add_get("/emulator/log", emulator.get_log)
    app.router.add_post("/emulator/config", emulator.set_config)
    app.router.add_post("/emulator/reset", emulator.reset)
    return app


class EmulatorServer:
    """Run the emulator on 127.0.0.1 inside the current event loop.

    Args:
        config: The emulator's behaviour.
        port: The port; 0 picks a free one.

    Example::

        async with EmulatorServer(EmulatorConfig(latency_ms=50)) as emulator:
            provider = make_provider("emulator", base_url=emulator.base_url)
    """

    def __init__(self, config: EmulatorConfig | None = None, *, port: int = 0) -> None:
        self.app = build_app(config)
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The server's root URL (the OpenAI routes are below ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats(self) -> dict[str, Any]:
        """The request counts so far."""
        return self.app[EMULATOR].stats.to_dict()

    @property
    def image_digests(self) -> Counter[str]:
        """How often each image (by the SHA-256 of the bytes received) arrived."""
        return Counter(self.app[EMULATOR].stats.digests)

    @property
    def log(self) -> list[tuple[float, str, str, int, int, int]]:
        """Every request so far: (seconds since start, wire, model, status, input
        tokens, output tokens)."""
        return list(self.app[EMULATOR].stats.log)

    def configure(self, **changes: Any) -> None:
        """Change the emulator's behaviour while it runs (limits included)."""
        self.app[EMULATOR].reconfigure(**changes)

    async def __aenter__(self) -> EmulatorServer:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=4096)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def serve(config: EmulatorConfig, *, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve the emulator until interrupted (blocking)."""
    web.run_app(
        build_app(config),
        host=host,
        port=port,
        access_log=None,
        print=None,
        backlog=4096,
    )
