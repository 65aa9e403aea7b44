"""The server side of the wire formats: decode requests, encode answers and errors.

Each wire turns its provider's request body into one :class:`Decoded` request for the
model, and renders answers, errors and rate-limit headers exactly as its provider
does. Everything they share (the model, latency, faults, limits, counting) lives in
the server.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from PIL import Image, UnidentifiedImageError

from providers.emulator._limits import Budget, Verdict, go_duration
from providers.emulator.simulated import ModelInput
from providers.image_tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    anthropic_image_tokens,
    estimate_text_tokens,
    gemini_image_tokens,
    openai_image_tokens,
)

__all__ = [
    "WIRES",
    "AnthropicWire",
    "Decoded",
    "EmulatorError",
    "GeminiWire",
    "OpenAIWire",
]


class EmulatorError(Exception):
    """A request the service refuses; ``kind`` picks how each wire renders it.

    Kinds: ``bad_request``, ``unauthorized``, ``not_found``, ``server``,
    ``overloaded``.
    """

    def __init__(self, kind: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Decoded:
    """A request as the model and the limiter see it."""

    model: str
    model_input: ModelInput
    input_tokens: int
    image_tokens: int
    max_tokens: int


ImageRule = Callable[[str, int, int], int]


def decode_image(b64: str) -> tuple[Image.Image, str]:
    """Decode base64 image data as the service would; return it and its digest."""
    try:
        data = base64.b64decode(b64, validate=True)
        image = Image.open(io.BytesIO(data))
        image.load()
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as error:
        raise EmulatorError(
            "bad_request",
            "You uploaded an unsupported image. Please make sure your image is valid.",
            "invalid_image_format",
        ) from error
    return image.convert("RGB"), hashlib.sha256(data).hexdigest()


class _Collector:
    """Gathers parts in order, counting text and image tokens as it goes."""

    def __init__(self, model: str, image_rule: ImageRule) -> None:
        self.model = model
        self.parts: list[str | Image.Image] = []
        self.digests: list[str] = []
        self.text_tokens = MESSAGE_OVERHEAD_TOKENS
        self.image_tokens = 0
        self._rule = image_rule

    def text(self, text: str) -> None:
        self.parts.append(text)
        self.text_tokens += estimate_text_tokens(text)

    def image(self, b64: str) -> None:
        image, digest = decode_image(b64)
        self.parts.append(image)
        self.digests.append(digest)
        self.image_tokens += self._rule(self.model, image.width, image.height)

    def decoded(
        self, system: str | None, temperature: float, max_tokens: int, seed: int | None
    ) -> Decoded:
        if system:
            self.text_tokens += estimate_text_tokens(system)
        model_input = ModelInput(
            model=self.model,
            parts=tuple(self.parts),
            image_digests=tuple(self.digests),
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
        )
        total = self.text_tokens + self.image_tokens
        return Decoded(self.model, model_input, total, self.image_tokens, max_tokens)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise EmulatorError(
            "bad_request", f"the body is not valid JSON: {error}"
        ) from error
    if not isinstance(body, dict):
        raise EmulatorError("bad_request", "the body must be a JSON object")
    return body


def _number(value: Any, name: str, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not low <= value <= high
    ):
        raise EmulatorError(
            "bad_request",
            f"Invalid '{name}': {value!r} is not a number within {low:g}..{high:g}.",
            "invalid_value",
        )
    return float(value)


def _json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


class OpenAIWire:
    """OpenAI chat completions at ``/v1/chat/completions``."""

    name = "openai"

    def decode(
        self,
        request: web.Request,
        raw: bytes,
        api_key: str | None,
        known: frozenset[str],
    ) -> Decoded:
        if api_key is not None:
            sent = request.headers.get("Authorization", "")
            if sent != f"Bearer {api_key}":
                # Quotes the whole key it was sent, which the real service masks,
                # so that tests can prove the client keeps it out of what it reports.
                raise EmulatorError(
                    "unauthorized",
                    f"Incorrect API key provided: {sent.removeprefix('Bearer ')}.",
                    "invalid_api_key",
                )
        body = _json(raw)
        model = body.get("model")
        if not isinstance(model, str):
            raise EmulatorError("bad_request", "you must provide a model parameter")
        if model not in known:
            raise EmulatorError(
                "not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
                "model_not_found",
            )
        temperature = _number(body.get("temperature", 1.0), "temperature", 0, 2)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise EmulatorError("bad_request", "messages must be a non-empty list")
        collector = _Collector(model, openai_image_tokens)
        system = None
        for message in messages:
            system = self._message(message, collector) or system
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
        seed = body.get("seed")
        return collector.decoded(
            system,
            temperature,
            int(max_tokens),
            seed if isinstance(seed, int) else None,
        )

    def _message(self, message: Any, collector: _Collector) -> str | None:
        """Add a message's parts; return its text if it is the system message."""
        if not isinstance(message, dict):
            raise EmulatorError("bad_request", "each message must be an object")
        content = message.get("content")
        if message.get("role") in ("system", "developer") and isinstance(content, str):
            return content
        if isinstance(content, str):
            collector.text(content)
            return None
        if not isinstance(content, list):
            raise EmulatorError(
                "bad_request", "each message needs a content string or list"
            )
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                collector.text(str(part.get("text", "")))
            elif kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                if not isinstance(url, str) or ";base64," not in url:
                    raise EmulatorError(
                        "bad_request", "images must be base64 data URLs"
                    )
                collector.image(url.partition(";base64,")[2])
            else:
                raise EmulatorError(
                    "bad_request", f"unsupported content part type {kind!r}"
                )
        return None

    def answer(
        self,
        decoded: Decoded,
        text: str,
        output_tokens: int,
        truncated: bool,
        headers: dict[str, str],
    ) -> web.Response:
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(dt.datetime.now(dt.UTC).timestamp()),
            "model": decoded.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "length" if truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": decoded.input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": decoded.input_tokens + output_tokens,
                "prompt_tokens_details": {
                    "cached_tokens": 0,
                    "image_tokens": decoded.image_tokens,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }
        headers["x-request-id"] = f"req_{uuid.uuid4().hex[:24]}"
        return _json_response(200, body, headers)

    def error(self, error: EmulatorError, headers: dict[str, str]) -> web.Response:
        status, kind = {
            "bad_request": (400, "invalid_request_error"),
            "unauthorized": (401, "invalid_request_error"),
            "not_found": (404, "invalid_request_error"),
            "server": (500, "server_error"),
            "overloaded": (503, "server_error"),
        }[error.kind]
        body = {
            "error": {
                "message": error.message,
                "type": kind,
                "param": None,
                "code": error.code,
            }
        }
        return _json_response(status, body, headers)

    def rate_limited(
        self, verdict: Verdict, model: str, headers: dict[str, str]
    ) -> web.Response:
        unit = "requests" if verdict.budget == "rpm" else "tokens"
        label = (
            "requests per min (RPM)" if unit == "requests" else "tokens per min (TPM)"
        )
        wait = verdict.retry_after_s
        message = (
            f"Rate limit reached for {model} in organization org-emulator on {label}: "
            f"Limit {verdict.limit}, Used {verdict.used}, "
            f"Requested {verdict.requested}. "
            f"Please try again in {go_duration(wait)}."
        )
        headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
        headers["retry-after"] = str(max(1, round(wait)))
        body = {
            "error": {
                "message": message,
                "type": unit,
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        return _json_response(429, body, headers)

    @staticmethod
    def rate_headers(state: Mapping[str, Budget]) -> dict[str, str]:
        headers = {}
        for budget, unit in (("rpm", "requests"), ("tpm", "tokens")):
            if budget in state:
                b = state[budget]
                headers[f"x-ratelimit-limit-{unit}"] = str(b.limit)
                headers[f"x-ratelimit-remaining-{unit}"] = str(b.remaining)
                headers[f"x-ratelimit-reset-{unit}"] = go_duration(b.reset_s)
        return headers


class GeminiWire:
    """Gemini ``generateContent`` at ``/v1beta/models/{model}:generateContent``."""

    name = "gemini"

    def decode(
        self,
        request: web.Request,
        raw: bytes,
        api_key: str | None,
        known: frozenset[str],
    ) -> Decoded:
        if api_key is not None:
            sent = request.headers.get("x-goog-api-key") or request.query.get("key", "")
            if sent != api_key:
                raise EmulatorError(
                    "bad_request",
                    "API key not valid. Please pass a valid API key.",
                    "API_KEY_INVALID",
                )
        target = request.match_info["target"]
        model, _, action = target.partition(":")
        if action != "generateContent":
            raise EmulatorError("not_found", f"method {action!r} is not supported")
        if model not in known:
            raise EmulatorError(
                "not_found",
                f"models/{model} is not found for API version v1beta, or is not "
                "supported for generateContent.",
            )
        body = _json(raw)
        config = _field(body, "generationConfig", "generation_config") or {}
        temperature = _number(config.get("temperature", 1.0), "temperature", 0, 2)
        collector = _Collector(model, gemini_image_tokens)
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                self._part(part, collector)
        if not collector.parts:
            raise EmulatorError(
                "bad_request",
                "* GenerateContentRequest.contents: contents is not specified",
            )
        system = _field(body, "systemInstruction", "system_instruction")
        system_text = (
            "".join(p.get("text", "") for p in system.get("parts", []))
            if isinstance(system, dict)
            else None
        )
        max_tokens = int(_field(config, "maxOutputTokens", "max_output_tokens") or 8192)
        seed = config.get("seed")
        return collector.decoded(
            system_text or None,
            temperature,
            max_tokens,
            seed if isinstance(seed, int) else None,
        )

    @staticmethod
    def _part(part: Any, collector: _Collector) -> None:
        if not isinstance(part, dict):
            raise EmulatorError("bad_request", "each part must be an object")
        if "text" in part:
            collector.text(str(part["text"]))
            return
        inline = _field(part, "inlineData", "inline_data")
        if not isinstance(inline, dict) or "data" not in inline:
            raise EmulatorError("bad_request", "a part needs text or inlineData")
        collector.image(str(inline["data"]))

    def answer(
        self,
        decoded: Decoded,
        text: str,
        output_tokens: int,
        truncated: bool,
        headers: dict[str, str],
    ) -> web.Response:
        text_tokens = decoded.input_tokens - decoded.image_tokens
        body = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "MAX_TOKENS" if truncated else "STOP",
                    "index": 0,
                    "safetyRatings": [
                        {
                            "category": "HARM_CATEGORY_HARASSMENT",
                            "probability": "NEGLIGIBLE",
                        }
                    ],
                }
            ],
            "usageMetadata": {
                "promptTokenCount": decoded.input_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": decoded.input_tokens + output_tokens,
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": text_tokens},
                    {"modality": "IMAGE", "tokenCount": decoded.image_tokens},
                ],
            },
            "modelVersion": decoded.model,
            "responseId": uuid.uuid4().hex[:22],
        }
        return _json_response(200, body, headers)

    def error(self, error: EmulatorError, headers: dict[str, str]) -> web.Response:
        status, state = {
            "bad_request": (400, "INVALID_ARGUMENT"),
            "unauthorized": (400, "INVALID_ARGUMENT"),
            "not_found": (404, "NOT_FOUND"),
            "server": (500, "INTERNAL"),
            "overloaded": (503, "UNAVAILABLE"),
        }[error.kind]
        message = error.message
        if error.kind == "overloaded":
            message = "The model is overloaded. Please try again later."
        details = []
        if error.code == "API_KEY_INVALID":
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            )
        body = {
            "error": {
                "code": status,
                "message": message,
                "status": state,
                "details": details,
            }
        }
        return _json_response(status, body, headers)

    def rate_limited(
        self, verdict: Verdict, model: str, headers: dict[str, str]
    ) -> web.Response:
        quota = (
            "GenerateRequestsPerMinutePerProjectPerModel"
            if verdict.budget == "rpm"
            else "GenerateContentInputTokensPerModelPerMinute"
        )
        body = {
            "error": {
                "code": 429,
                "message": (
                    "You exceeded your current quota, please check your plan "
                    "and billing details."
                ),
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/"
                                "generate_content_requests",
                                "quotaId": quota,
                                "quotaDimensions": {
                                    "location": "global",
                                    "model": model,
                                },
                                "quotaValue": str(verdict.limit),
                            }
                        ],
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{verdict.retry_after_s:.3f}s",
                    },
                ],
            }
        }
        return _json_response(429, body, headers)

    @staticmethod
    def rate_headers(state: Mapping[str, Budget]) -> dict[str, str]:
        # Gemini documents no rate-limit headers: a client learns only from a 429.
        return {}


class AnthropicWire:
    """Anthropic Messages at ``/v1/messages``."""

    name = "anthropic"
    # Models that refuse temperature and top_p together, as the newer Claude models do.
    STRICT_SAMPLING = frozenset({"claude-sonnet-4-5", "claude-haiku-4-5"})

    def decode(
        self,
        request: web.Request,
        raw: bytes,
        api_key: str | None,
        known: frozenset[str],
    ) -> Decoded:
        if api_key is not None and request.headers.get("x-api-key") != api_key:
            raise EmulatorError("unauthorized", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            raise EmulatorError("bad_request", "anthropic-version: header is required")
        body = _json(raw)
        model = body.get("model")
        if not isinstance(model, str):
            raise EmulatorError("bad_request", "model: Field required")
        if model not in known:
            raise EmulatorError("not_found", f"model: {model}")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise EmulatorError("bad_request", "max_tokens: Field required")
        if model in self.STRICT_SAMPLING and "temperature" in body and "top_p" in body:
            raise EmulatorError(
                "bad_request",
                "`temperature` and `top_p` cannot both be specified for this model. "
                "Please use only one.",
            )
        temperature = _number(body.get("temperature", 1.0), "temperature", 0, 1)
        collector = _Collector(model, anthropic_image_tokens)
        for message in body.get("messages") or []:
            self._message(message, collector)
        system = body.get("system")
        if isinstance(system, list):
            system = "".join(b.get("text", "") for b in system if isinstance(b, dict))
        return collector.decoded(system or None, temperature, max_tokens, None)

    @staticmethod
    def _message(message: Any, collector: _Collector) -> None:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            collector.text(content)
            return
        if not isinstance(content, list):
            raise EmulatorError(
                "bad_request", "messages: content must be a string or list"
            )
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                collector.text(str(block.get("text", "")))
            elif kind == "image":
                source = block.get("source") or {}
                if source.get("type") != "base64":
                    raise EmulatorError("bad_request", "image source must be base64")
                if len(source.get("data", "")) > 5 * 1024 * 1024:
                    raise EmulatorError("bad_request", "image exceeds 5 MB maximum")
                collector.image(str(source.get("data", "")))
            else:
                raise EmulatorError(
                    "bad_request", f"unsupported content block {kind!r}"
                )

    def answer(
        self,
        decoded: Decoded,
        text: str,
        output_tokens: int,
        truncated: bool,
        headers: dict[str, str],
    ) -> web.Response:
        body = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": decoded.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if truncated else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": decoded.input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }
        headers["request-id"] = f"req_{uuid.uuid4().hex[:24]}"
        return _json_response(200, body, headers)

    def error(self, error: EmulatorError, headers: dict[str, str]) -> web.Response:
        status, kind = {
            "bad_request": (400, "invalid_request_error"),
            "unauthorized": (401, "authentication_error"),
            "not_found": (404, "not_found_error"),
            "server": (500, "api_error"),
            "overloaded": (529, "overloaded_error"),
        }[error.kind]
        message = "Overloaded" if error.kind == "overloaded" else error.message
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        }
        return _json_response(status, body, headers)

    def rate_limited(
        self, verdict: Verdict, model: str, headers: dict[str, str]
    ) -> web.Response:
        names = {
            "rpm": "requests",
            "tpm": "tokens",
            "input_tpm": "input tokens",
            "output_tpm": "output tokens",
        }
        message = (
            f"This request would exceed the rate limit for your organization of "
            f"{verdict.limit:,} {names[verdict.budget or 'rpm']} per minute."
        )
        headers["retry-after"] = str(max(1, round(verdict.retry_after_s + 0.499)))
        body = {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        }
        return _json_response(429, body, headers)

    @staticmethod
    def rate_headers(state: Mapping[str, Budget]) -> dict[str, str]:
        headers = {}
        now = dt.datetime.now(dt.UTC)
        names = {
            "rpm": "requests",
            "tpm": "tokens",
            "input_tpm": "input-tokens",
            "output_tpm": "output-tokens",
        }
        for budget, name in names.items():
            if budget not in state:
                continue
            b = state[budget]
            # Token counts are reported rounded to thousands, as Anthropic does;
            # rounding down keeps a client that trusts them on the safe side.
            remaining = b.remaining if budget == "rpm" else b.remaining // 1000 * 1000
            reset = now + dt.timedelta(seconds=b.reset_s)
            prefix = f"anthropic-ratelimit-{name}"
            headers[f"{prefix}-limit"] = str(b.limit)
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = reset.isoformat(timespec="seconds").replace(
                "+00:00", "Z"
            )
        return headers


def _field(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    """Read a field by its camelCase or snake_case name (proto3 JSON accepts both)."""
    return mapping.get(camel, mapping.get(snake))


WIRES = {"openai": OpenAIWire(), "gemini": GeminiWire(), "anthropic": AnthropicWire()}
