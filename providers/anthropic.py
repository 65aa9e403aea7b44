"""Anthropic Messages (``POST /v1/messages``).

Images go as base64 ``image`` blocks, in the order the call gives its parts (the
method puts images before text, which is what Claude works best with).
``max_tokens`` is required. Several Claude models refuse a request that sets both
``temperature`` and ``top_p``, so exactly one of them is sent.

Every answer carries ``anthropic-ratelimit-*`` headers, with separate input and
output token budgets; they are returned as :class:`~providers.base.RateLimitInfo`
for the limiter. A 529 means the API is overloaded for everyone, a 429 that our own
budget ran out; both are retryable after ``retry-after``. A refusal is a 200 with
``stop_reason: "refusal"`` and becomes a final ``FILTERED`` error with its usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers import _ratelimit_headers as rl
from providers._wire import (
    SecretHeaders,
    body_snippet,
    estimate_call_tokens,
    json_object,
    kind_for_status,
    redact,
    resolve_key,
)
from providers.base import (
    Call,
    ErrorKind,
    FinishReason,
    HttpRequest,
    Image,
    ProviderError,
    RateLimitInfo,
    Reply,
    Usage,
)
from providers.image_tokens import anthropic_image_tokens

__all__ = [
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_VERSION",
    "KEY_VARIABLE",
    "AnthropicProvider",
]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
KEY_VARIABLE = "ANTHROPIC_API_KEY"

# The temperature a Call has when the caller did not choose one.
_DEFAULT_TEMPERATURE = Call.__dataclass_fields__["temperature"].default

_FINISH: dict[str | None, FinishReason] = {
    "end_turn": FinishReason.COMPLETE,
    "stop_sequence": FinishReason.COMPLETE,
    "max_tokens": FinishReason.TRUNCATED,
    "model_context_window_exceeded": FinishReason.TRUNCATED,
}
_TYPE_KINDS = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.AUTHENTICATION,
    "billing_error": ErrorKind.QUOTA,
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.SERVER,
    "timeout_error": ErrorKind.TIMEOUT,
    "overloaded_error": ErrorKind.OVERLOADED,
}


class AnthropicProvider:
    """The Anthropic Messages wire format, bound to one base URL and key.

    Args:
        base_url: The API root without ``/v1``; Anthropic's own when None.
        api_key: The key; read from ``ANTHROPIC_API_KEY`` when None. ``""`` means
            no key is needed (the emulator, a proxy).
        identity: Overrides the cache identity (the emulator uses one that does not
            depend on its port).

    Raises:
        ConfigError: Anthropic's own API is named and no key is available.
    """

    kind = "anthropic"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        identity: str | None = None,
    ) -> None:
        self.base_url = (base_url or ANTHROPIC_BASE_URL).rstrip("/")
        self._key = resolve_key(
            api_key,
            (KEY_VARIABLE,),
            required=self.base_url == ANTHROPIC_BASE_URL,
            provider="Anthropic",
        )
        self._headers = SecretHeaders(
            {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        )
        if self._key:
            self._headers["x-api-key"] = self._key
        self._url = f"{self.base_url}/v1/messages"
        self._identity = identity or f"{self.kind}:{self.base_url}"

    def __repr__(self) -> str:
        return f"AnthropicProvider(base_url={self.base_url!r})"

    @property
    def identity(self) -> str:
        return self._identity

    def build(self, call: Call) -> HttpRequest:
        """Translate a call into a Messages request."""
        body: dict[str, Any] = {
            "model": call.model,
            "max_tokens": call.max_tokens,
            "messages": [
                {"role": "user", "content": [_block(part) for part in call.parts]}
            ],
        }
        if call.system is not None:
            body["system"] = call.system
        # Only one of the two: the caller's top_p wins when the temperature was
        # left at its default, otherwise the temperature does.
        if call.top_p is not None and call.temperature == _DEFAULT_TEMPERATURE:
            body["top_p"] = call.top_p
        else:
            body["temperature"] = call.temperature
        return HttpRequest(self._url, self._headers, orjson.dumps(body))

    def estimate_input_tokens(self, call: Call) -> int:
        """Estimate the input tokens: texts, images by Claude's pixel rule."""
        return estimate_call_tokens(call, anthropic_image_tokens)

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
        """Parse an answer into a reply, or raise a classified ProviderError."""
        limits = rl.anthropic_rate_limit_info(headers)
        if status != 200:
            raise self._error(status, headers, body, limits)
        data = json_object(body, status)
        content = data.get("content")
        if not isinstance(content, list):
            raise ProviderError(ErrorKind.MALFORMED, "answer has no content", status)
        usage = _usage(data.get("usage"))
        reason = data.get("stop_reason")
        if reason == "refusal":
            raise ProviderError(
                ErrorKind.FILTERED,
                "the model refused to answer",
                status,
                usage=usage,
                rate_limit=limits,
            )
        text = "".join(
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
        finish = _FINISH.get(reason, FinishReason.OTHER)
        if finish is FinishReason.TRUNCATED and not text:
            raise ProviderError(
                ErrorKind.INVALID_REQUEST,
                "the output budget ran out before any text was written; "
                "raise max_tokens",
                status,
                usage=usage,
                rate_limit=limits,
            )
        return Reply((text,), finish, usage, limits)

    def _error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        limits: RateLimitInfo | None,
    ) -> ProviderError:
        error_type, message = _error_fields(body)
        kind = _TYPE_KINDS.get(error_type or "")
        if kind is None:
            # The list of error types may grow; an unknown one is judged by its
            # status, which makes an unknown 5xx retryable.
            kind = kind_for_status(status)
        return ProviderError(
            kind,
            redact(message, self._key),
            status,
            retry_after_s=rl.retry_after_seconds(headers),
            retryable_override=rl.should_retry(headers),
            rate_limit=limits,
        )


def _block(part: str | Image) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    source = {"type": "base64", "media_type": part.mime, "data": part.b64}
    return {"type": "image", "source": source}


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    cache_read = _int(data.get("cache_read_input_tokens"))
    # input_tokens excludes the cached parts; the whole prompt is the sum.
    total_input = (
        _int(data.get("input_tokens"))
        + _int(data.get("cache_creation_input_tokens"))
        + cache_read
    )
    return Usage(
        input_tokens=total_input,
        output_tokens=_int(data.get("output_tokens")),
        cached_input_tokens=cache_read,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _error_fields(body: bytes) -> tuple[str | None, str]:
    """Return the error type and message of an error body, whatever its shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body_snippet(body)
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, body_snippet(body)
    error_type = error.get("type")
    message = error.get("message")
    return (
        error_type if isinstance(error_type, str) else None,
        message if isinstance(message, str) and message else body_snippet(body),
    )
