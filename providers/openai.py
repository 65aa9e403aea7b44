"""OpenAI chat completions, and the servers that speak it (vLLM, SGLang, Ollama, ...).

Images go inline as base64 data URLs. Errors are classified as the official SDK does
(``x-should-retry`` first, then 408, 409, 429 and 5xx retryable), with two additions
of ours: an exhausted quota and a request larger than the token limit are final,
because no retry can make them succeed.
"""

from __future__ import annotations

import functools
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
    ConfigError,
    ErrorKind,
    FinishReason,
    HttpRequest,
    Image,
    ProviderError,
    RateLimitInfo,
    Reply,
    Usage,
)
from providers.image_tokens import openai_image_tokens

__all__ = ["OPENAI_BASE_URL", "OpenAIProvider"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
KEY_VARIABLE = "OPENAI_API_KEY"

_FINISH = {
    "stop": FinishReason.COMPLETE,
    "length": FinishReason.TRUNCATED,
    "content_filter": FinishReason.FILTERED,
}

_FINAL_429_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "credit_balance_exhausted",
        "project_spend_limit_exceeded",
    }
)


class OpenAIProvider:
    """The OpenAI chat-completions wire format, bound to one base URL and key.

    Args:
        base_url: The API root including ``/v1``; OpenAI's own when None.
        api_key: The key; read from ``OPENAI_API_KEY`` when None. Servers of your
            own (vLLM, Ollama, ...) often need none: pass ``""`` or leave the
            variable unset with a non-OpenAI base URL.
        detail: The image ``detail`` setting (``auto``, ``low`` or ``high``).
        identity: Overrides the cache identity (the emulator uses one that does not
            depend on its port).

    Raises:
        ConfigError: OpenAI's own API is named and no key is available.
    """

    kind = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        detail: str = "auto",
        identity: str | None = None,
    ) -> None:
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        # A server of your own may need no key even when the variable is unset.
        self._key = resolve_key(
            api_key,
            (KEY_VARIABLE,),
            required=self.base_url == OPENAI_BASE_URL,
            provider="OpenAI",
        )
        if detail not in ("auto", "low", "high"):
            raise ConfigError(f"image detail must be auto, low or high, not {detail!r}")
        self._headers = SecretHeaders({"Content-Type": "application/json"})
        if self._key:
            self._headers["Authorization"] = f"Bearer {self._key}"
        self._detail = detail
        self._url = f"{self.base_url}/chat/completions"
        # OpenAI's own API wants the newer field (reasoning models refuse the old
        # one); the compatible servers mostly understand only the old one.
        self._max_field = (
            "max_completion_tokens"
            if self.base_url == OPENAI_BASE_URL
            else "max_tokens"
        )
        self._identity = identity or f"{self.kind}:{self.base_url}"

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.base_url!r})"

    @property
    def identity(self) -> str:
        return self._identity

    def build(self, call: Call) -> HttpRequest:
        content = [self._part(part) for part in call.parts]
        messages: list[dict[str, Any]] = []
        if call.system is not None:
            messages.append({"role": "system", "content": call.system})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {
            "model": call.model,
            "messages": messages,
            "temperature": call.temperature,
            self._max_field: call.max_tokens,
            "n": 1,
        }
        if call.top_p is not None:
            body["top_p"] = call.top_p
        if call.seed is not None:
            body["seed"] = call.seed
        return HttpRequest(self._url, self._headers, orjson.dumps(body))

    def _part(self, part: str | Image) -> dict[str, Any]:
        if isinstance(part, str):
            return {"type": "text", "text": part}
        url = f"data:{part.mime};base64,{part.b64}"
        return {"type": "image_url", "image_url": {"url": url, "detail": self._detail}}

    def estimate_input_tokens(self, call: Call) -> int:
        """Estimate the input tokens: texts, images by the model's tile rule."""
        rule = functools.partial(openai_image_tokens, detail=self._detail)
        return estimate_call_tokens(call, rule)

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
        limits = rl.openai_rate_limit_info(headers)
        if status != 200:
            raise self._error(status, headers, body, limits)
        data = json_object(body, status)
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError) as error:
            raise ProviderError(
                ErrorKind.MALFORMED,
                f"answer has no choice: {body_snippet(body)}",
                status,
            ) from error
        usage = _usage(data.get("usage"))
        if message.get("refusal"):
            raise ProviderError(
                ErrorKind.FILTERED,
                f"refused: {message['refusal']}",
                status,
                usage=usage,
            )
        finish = _FINISH.get(choice.get("finish_reason") or "stop", FinishReason.OTHER)
        if finish is FinishReason.FILTERED:
            raise ProviderError(
                ErrorKind.FILTERED,
                "answer withheld by the content filter",
                status,
                usage=usage,
            )
        text = message.get("content")
        if not isinstance(text, str):
            raise ProviderError(ErrorKind.MALFORMED, "answer has no text", status)
        return Reply((text,), finish, usage, limits)

    def _error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        limits: RateLimitInfo | None,
    ) -> ProviderError:
        message, code = _error_message(body, status)
        # Some servers quote the key they were sent in a 401; it must not travel on
        # into logs and reports.
        message = redact(message, self._key)
        kind = kind_for_status(status)
        if status == 429 and code in _FINAL_429_CODES:
            kind = ErrorKind.QUOTA
        elif status == 429 and "Request too large" in message:
            kind = ErrorKind.TOO_LARGE
        return ProviderError(
            kind,
            message,
            status,
            retry_after_s=rl.retry_after_seconds(headers),
            retryable_override=rl.should_retry(headers),
            rate_limit=limits,
        )


def _error_message(body: bytes, status: int) -> tuple[str, str | None]:
    """Pull the message and code out of the several error shapes servers use."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"HTTP {status}: {body_snippet(body)}", None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, str):
        return error, None
    if not isinstance(error, dict):
        return str(error)[:300], None
    code = error.get("code")
    code = code if isinstance(code, str) else error.get("type")
    return str(error.get("message") or error), code if isinstance(code, str) else None


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(data.get("prompt_tokens") or 0),
        output_tokens=int(data.get("completion_tokens") or 0),
        image_tokens=int(details.get("image_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )
