"""Gemini ``generateContent`` (REST, v1beta).

Images go inline as base64 ``inlineData`` parts, field names are camelCase, and the
key travels in the ``x-goog-api-key`` header, never in the URL (URLs end up in logs).
Gemini sends no rate-limit headers; a 429 carries its wait in the body as a
``google.rpc.RetryInfo`` detail, and names the quota it hit, which is how a daily
quota (final until midnight Pacific) is told apart from a busy minute.

Safety blocks are not HTTP errors: a blocked prompt is a 200 with
``promptFeedback.blockReason`` and no candidates, a blocked answer a 200 with a
safety ``finishReason``. Both become a final ``FILTERED`` error carrying the usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

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
    Reply,
    Usage,
)
from providers.image_tokens import gemini_image_tokens

__all__ = ["GEMINI_BASE_URL", "KEY_VARIABLES", "GeminiProvider"]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

_FINISH: dict[str | None, FinishReason] = {
    "STOP": FinishReason.COMPLETE,
    "MAX_TOKENS": FinishReason.TRUNCATED,
}
# Output blocks: retrying the same request cannot help. RECITATION is here too
# although a retry at temperature > 0 might pass; we choose to record it, not gamble.
_FILTERED = frozenset(
    {
        "SAFETY",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)
_STATE_KINDS = {
    "PERMISSION_DENIED": ErrorKind.AUTHENTICATION,
    "UNAUTHENTICATED": ErrorKind.AUTHENTICATION,
    # Billing needed or free tier unavailable in the region: money, not the request.
    "FAILED_PRECONDITION": ErrorKind.QUOTA,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "UNAVAILABLE": ErrorKind.OVERLOADED,
    "INTERNAL": ErrorKind.SERVER,
    "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


class GeminiProvider:
    """The Gemini ``generateContent`` wire format, bound to one base URL and key.

    Args:
        base_url: The API root without the version; Google's own when None.
        api_key: The key; read from ``GEMINI_API_KEY``, then ``GOOGLE_API_KEY``,
            when None. ``""`` means no key is needed (the emulator, a proxy).
        identity: Overrides the cache identity (the emulator uses one that does not
            depend on its port).

    Raises:
        ConfigError: Google's own API is named and no key is available.
    """

    kind = "gemini"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        identity: str | None = None,
    ) -> None:
        self.base_url = (base_url or GEMINI_BASE_URL).rstrip("/")
        self._key = resolve_key(
            api_key,
            KEY_VARIABLES,
            required=self.base_url == GEMINI_BASE_URL,
            provider="Gemini",
        )
        self._headers = SecretHeaders({"Content-Type": "application/json"})
        if self._key:
            self._headers["x-goog-api-key"] = self._key
        self._identity = identity or f"{self.kind}:{self.base_url}"

    def __repr__(self) -> str:
        return f"GeminiProvider(base_url={self.base_url!r})"

    @property
    def identity(self) -> str:
        return self._identity

    def build(self, call: Call) -> HttpRequest:
        """Translate a call into a ``generateContent`` request."""
        model = quote(call.model.removeprefix("models/"), safe="-._~")
        url = f"{self.base_url}/v1beta/models/{model}:generateContent"
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [_part(p) for p in call.parts]}],
            "generationConfig": _generation_config(call),
        }
        if call.system is not None:
            body["systemInstruction"] = {"parts": [{"text": call.system}]}
        return HttpRequest(url, self._headers, orjson.dumps(body))

    def estimate_input_tokens(self, call: Call) -> int:
        """Estimate the prompt tokens: texts, images by Gemini's tile rule."""
        return estimate_call_tokens(call, gemini_image_tokens)

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
        """Parse an answer into a reply, or raise a classified ProviderError."""
        if status != 200:
            raise self._error(status, headers, body)
        data = json_object(body, status)
        usage = _usage(data.get("usageMetadata"))
        candidates = data.get("candidates")
        if not candidates or not isinstance(candidates, list):
            raise _no_candidates(data, usage)
        texts = tuple(_candidate_text(c) for c in candidates if isinstance(c, dict))
        first = candidates[0] if isinstance(candidates[0], dict) else {}
        reason = first.get("finishReason")
        if reason in _FILTERED:
            detail = first.get("finishMessage") or "the answer was blocked"
            raise ProviderError(
                ErrorKind.FILTERED, f"{reason}: {detail}", status, usage=usage
            )
        finish = _FINISH.get(reason, FinishReason.OTHER)
        if finish is FinishReason.TRUNCATED and not any(texts):
            raise _budget_spent(usage)
        return Reply(texts, finish, usage)

    def _error(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> ProviderError:
        error = _error_object(body)
        if error is None:
            message = body_snippet(body)
            details: list[Any] = []
            state = None
        else:
            message = str(error.get("message") or body_snippet(body))
            details = [d for d in error.get("details") or [] if isinstance(d, dict)]
            state = error.get("status")
        kind = _error_kind(status, state, details)
        retry_after = _retry_delay(details)
        if retry_after is None:
            retry_after = rl.retry_after_seconds(headers)
        return ProviderError(
            kind,
            redact(message, self._key),
            status,
            retry_after_s=retry_after,
            retryable_override=rl.should_retry(headers),
        )


def _part(part: str | Image) -> dict[str, Any]:
    if isinstance(part, str):
        return {"text": part}
    return {"inlineData": {"mimeType": part.mime, "data": part.b64}}


def _generation_config(call: Call) -> dict[str, Any]:
    config: dict[str, Any] = {
        "temperature": call.temperature,
        "maxOutputTokens": call.max_tokens,
        "candidateCount": 1,
    }
    if call.top_p is not None:
        config["topP"] = call.top_p
    if call.seed is not None:
        config["seed"] = call.seed
    return config


def _candidate_text(candidate: dict[str, Any]) -> str:
    # A candidate stopped for safety or by the token budget may have no content or
    # no parts at all; thought parts are the model's reasoning, not its answer.
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        part["text"]
        for part in parts
        if isinstance(part, dict)
        and isinstance(part.get("text"), str)
        and not part.get("thought")
    )


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    images = sum(
        _int(entry.get("tokenCount"))
        for entry in data.get("promptTokensDetails") or []
        if isinstance(entry, dict) and entry.get("modality") == "IMAGE"
    )
    return Usage(
        input_tokens=_int(data.get("promptTokenCount")),
        # Thinking tokens are billed as output.
        output_tokens=_int(data.get("candidatesTokenCount"))
        + _int(data.get("thoughtsTokenCount")),
        image_tokens=images,
        cached_input_tokens=_int(data.get("cachedContentTokenCount")),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _no_candidates(data: dict[str, Any], usage: Usage) -> ProviderError:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason:
        assert isinstance(feedback, dict)
        detail = feedback.get("blockReasonMessage") or "the prompt was blocked"
        return ProviderError(
            ErrorKind.FILTERED, f"{reason}: {detail}", 200, usage=usage
        )
    return ProviderError(ErrorKind.MALFORMED, "answer has no candidates", 200)


def _budget_spent(usage: Usage) -> ProviderError:
    # Thinking models can spend the whole output budget before writing a word;
    # an empty answer is a failure of the request's max_tokens, not an answer.
    return ProviderError(
        ErrorKind.INVALID_REQUEST,
        "the output budget ran out before any text was written; raise max_tokens",
        200,
        usage=usage,
    )


def _error_object(body: bytes) -> dict[str, Any] | None:
    """Find ``error`` in an error body, unwrapping the occasional one-element array."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _error_kind(status: int, state: Any, details: list[dict[str, Any]]) -> ErrorKind:
    if any(detail.get("reason") == "API_KEY_INVALID" for detail in details):
        return ErrorKind.AUTHENTICATION
    if status == 429 or state == "RESOURCE_EXHAUSTED":
        # A 429 is a busy minute unless a daily quota ran out; a 402 is credit.
        if status == 429 and not _daily_quota(details):
            return ErrorKind.RATE_LIMITED
        return ErrorKind.QUOTA
    if isinstance(state, str) and state in _STATE_KINDS:
        return _STATE_KINDS[state]
    return kind_for_status(status)


def _daily_quota(details: list[dict[str, Any]]) -> bool:
    for detail in details:
        if detail.get("@type") != _QUOTA_FAILURE:
            continue
        for violation in detail.get("violations") or []:
            if isinstance(violation, dict) and "PerDay" in str(
                violation.get("quotaId", "")
            ):
                return True
    return False


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for detail in details:
        if detail.get("@type") == _RETRY_INFO:
            return rl.parse_protobuf_duration(detail.get("retryDelay"))
    return None
