"""The emulator: an aiohttp server that speaks the providers' wire formats on loopback.

It decodes every request as the real service would (base64 images included), asks the
simulated model for the answer, reports usage by the provider's own token rules, and can
add latency and inject faults. Every request is counted; ``GET /emulator/stats`` gives
the counts and ``GET /emulator/log`` the per-request log, so tests can prove what was
sent. ``POST /emulator/config`` changes latency and faults while it runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import logging
import math
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import orjson
from aiohttp import web
from PIL import Image, UnidentifiedImageError

from providers.emulator import simulated
from providers.image_tokens import estimate_text_tokens, openai_image_tokens

__all__ = ["EmulatorConfig", "EmulatorServer", "FAULT_KINDS", "build_app", "serve"]

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
    """

    latency_ms: float = 0.0
    latency_sigma: float = 0.0
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULT_KINDS
    fault_timeout_s: float = 30.0
    seed: int = 0
    api_key: str | None = field(default=None, repr=False)

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


class _BadRequest(Exception):
    """A request the real service would refuse with a 400."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Stats:
    requests: int = 0
    answered: int = 0
    images: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    log: list[tuple[float, str, int, int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "images": self.images,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(self.faults),
        }


class _Emulator:
    """The emulator's state and its request handlers."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = _Stats()
        self._random = random.Random(config.seed)
        self._started = time.monotonic()

    # -- shared steps -------------------------------------------------------------

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

    def _record(self, route: str, status: int, tokens_in: int, tokens_out: int) -> None:
        self.stats.by_status[status] += 1
        if status == 200:
            self.stats.answered += 1
        elapsed = time.monotonic() - self._started
        self.stats.log.append((elapsed, route, status, tokens_in, tokens_out))

    async def _fault_response(self, fault: str, request: web.Request) -> web.Response:
        self.stats.faults[fault] += 1
        if fault == "timeout":
            await asyncio.sleep(self.config.fault_timeout_s)
            return _openai_error(503, "The server took too long.", "server_error")
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if fault == "malformed":
            return web.Response(
                status=200,
                body=b'{"id": "chatcmpl-broken", "choices": [',
                content_type="application/json",
            )
        status = int(fault)
        message = (
            "The server had an error while processing your request."
            if status == 500
            else "The engine is currently overloaded, please try again later"
        )
        return _openai_error(status, message, "server_error")

    # -- OpenAI chat completions --------------------------------------------------

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        raw = await request.read()
        latency = self._latency_s()
        fault = self._draw_fault()
        if latency:
            await asyncio.sleep(latency)
        if fault is not None:
            response = await self._fault_response(fault, request)
            self._record("openai", response.status, 0, 0)
            return response
        try:
            response, tokens_in, tokens_out = self._openai_answer(request, raw)
        except _BadRequest as error:
            response = _openai_error(
                400, str(error), "invalid_request_error", error.code
            )
            tokens_in = tokens_out = 0
        except _Unauthorized as error:
            # Quotes the whole key it was sent, which a real service would mask, so
            # that tests can prove the client keeps it out of what it reports.
            response = _openai_error(
                401,
                f"Incorrect API key provided: {error}.",
                "invalid_request_error",
                "invalid_api_key",
            )
            tokens_in = tokens_out = 0
        except _UnknownModel as error:
            response = _openai_error(
                404,
                f"The model `{error}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
            tokens_in = tokens_out = 0
        self._record("openai", response.status, tokens_in, tokens_out)
        return response

    def _openai_answer(
        self, request: web.Request, raw: bytes
    ) -> tuple[web.Response, int, int]:
        if self.config.api_key is not None:
            sent = request.headers.get("Authorization", "")
            if sent != f"Bearer {self.config.api_key}":
                raise _Unauthorized(sent.removeprefix("Bearer "))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise _BadRequest(f"We could not parse the JSON body: {error}") from error
        model = body.get("model")
        if not isinstance(model, str):
            raise _BadRequest("you must provide a model parameter")
        if model not in KNOWN_MODELS:
            raise _UnknownModel(model)
        temperature = body.get("temperature", 1.0)
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            raise _BadRequest(
                f"Invalid 'temperature': {temperature!r} is not a number within 0..2.",
                "invalid_value",
            )
        system, parts, image_tokens = self._openai_parts(body.get("messages"), model)
        max_tokens = int(
            body.get("max_completion_tokens") or body.get("max_tokens") or 4096
        )
        seed = body.get("seed")
        model_input = simulated.ModelInput(
            model=model,
            parts=tuple(p for p, _ in parts),
            image_digests=tuple(d for _, d in parts if d is not None),
            system=system,
            temperature=float(temperature),
            max_tokens=max_tokens,
            seed=int(seed) if isinstance(seed, int) else None,
        )
        output = simulated.respond(model_input)
        text, tokens_out, finish = _truncate(output, max_tokens)
        text_tokens = sum(
            estimate_text_tokens(p) for p, _ in parts if isinstance(p, str)
        )
        tokens_in = (
            text_tokens + image_tokens + (estimate_text_tokens(system) if system else 0)
        )
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
                "prompt_tokens_details": {
                    "cached_tokens": 0,
                    "image_tokens": image_tokens,
                },
            },
            "system_fingerprint": "fp_emulator",
        }
        response = web.Response(
            body=orjson.dumps(answer),
            content_type="application/json",
            headers={"x-request-id": f"req_{uuid.uuid4().hex[:24]}"},
        )
        return response, tokens_in, tokens_out

    def _openai_parts(
        self, messages: Any, model: str
    ) -> tuple[str | None, list[tuple[str | Image.Image, str | None]], int]:
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("messages must be a non-empty list")
        system: str | None = None
        parts: list[tuple[str | Image.Image, str | None]] = []
        image_tokens = 0
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if message.get("role") == "system" and isinstance(content, str):
                system = content
            elif isinstance(content, str):
                parts.append((content, None))
            elif isinstance(content, list):
                for part in content:
                    item = self._openai_part(part)
                    if isinstance(item[0], Image.Image):
                        detail = (part.get("image_url") or {}).get("detail", "auto")
                        width, height = item[0].size
                        image_tokens += openai_image_tokens(
                            model, width, height, detail
                        )
                    parts.append(item)
            else:
                raise _BadRequest("each message needs a content string or list")
        return system, parts, image_tokens

    def _openai_part(self, part: Any) -> tuple[str | Image.Image, str | None]:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            return str(part.get("text", "")), None
        if kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str) or not url.startswith("data:"):
                raise _BadRequest("the emulator accepts images as data URLs only")
            _, _, b64 = url.partition(";base64,")
            return self.decode_image(b64)
        raise _BadRequest(f"unsupported content part type {kind!r}")

    def decode_image(self, b64: str) -> tuple[Image.Image, str]:
        """Decode a base64 image as the service would; return it and its digest."""
        try:
            data = base64.b64decode(b64, validate=True)
            image = Image.open(io.BytesIO(data))
            image.load()
        except (binascii.Error, UnidentifiedImageError, OSError) as error:
            raise _BadRequest(
                "You uploaded an unsupported image. Please make sure your image is "
                "valid.",
                "invalid_image_format",
            ) from error
        self.stats.images += 1
        return image.convert("RGB"), hashlib.sha256(data).hexdigest()

    # -- control ------------------------------------------------------------------

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_dict())

    async def get_log(self, request: web.Request) -> web.Response:
        rows = [
            {"t": t, "route": r, "status": s, "input_tokens": i, "output_tokens": o}
            for t, r, s, i, o in self.stats.log
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
        if "faults" in changes:
            changes["faults"] = tuple(changes["faults"])
        try:
            self.config = replace(self.config, **changes)
        except (TypeError, ValueError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(
            {k: v for k, v in asdict(self.config).items() if k != "api_key"}
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.stats = _Stats()
        self._started = time.monotonic()
        return web.json_response({"reset": True})


class _Unauthorized(Exception):
    pass


class _UnknownModel(Exception):
    pass


def _truncate(output: simulated.ModelOutput, max_tokens: int) -> tuple[str, int, str]:
    """Cut an answer to the output budget as a provider would; say why it stopped."""
    tokens = output.output_tokens or estimate_text_tokens(output.text)
    if tokens <= max_tokens:
        return output.text, max(1, tokens), "stop"
    keep = max(1, len(output.text) * max_tokens // tokens)
    return output.text[:keep], max_tokens, "length"


def _openai_error(
    status: int, message: str, kind: str, code: str | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json"
    )


EMULATOR: web.AppKey[_Emulator] = web.AppKey("emulator", _Emulator)


def build_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator's aiohttp application."""
    emulator = _Emulator(config or EmulatorConfig())
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[EMULATOR] = emulator
    app.router.add_post("/v1/chat/completions", emulator.openai_chat)
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

    def configure(self, **changes: Any) -> None:
        """Change the emulator's behaviour while it runs."""
        emulator = self.app[EMULATOR]
        emulator.config = replace(emulator.config, **changes)

    async def __aenter__(self) -> EmulatorServer:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=4096)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
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
