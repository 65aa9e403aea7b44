"""Small helpers the wire-format adapters share."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from providers.base import Call, ConfigError, ErrorKind, ProviderError
from providers.image_tokens import MESSAGE_OVERHEAD_TOKENS, estimate_text_tokens

__all__ = [
    "SecretHeaders",
    "resolve_key",
    "body_snippet",
    "estimate_call_tokens",
    "json_object",
    "kind_for_status",
    "redact",
]

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})

_STATUS_KINDS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    402: ErrorKind.QUOTA,
    403: ErrorKind.AUTHENTICATION,
    404: ErrorKind.NOT_FOUND,
    408: ErrorKind.TIMEOUT,
    # A conflict is a lock held by another request; both official SDKs retry it.
    409: ErrorKind.SERVER,
    413: ErrorKind.TOO_LARGE,
    429: ErrorKind.RATE_LIMITED,
    503: ErrorKind.OVERLOADED,
    504: ErrorKind.TIMEOUT,
    529: ErrorKind.OVERLOADED,
}


class SecretHeaders(dict[str, str]):
    """Request headers whose repr hides credentials.

    :class:`~providers.base.HttpRequest` is a dataclass whose repr shows its
    headers; a request that ends up in a traceback or a log line must not carry
    the key with it.
    """

    def __repr__(self) -> str:
        shown = {
            name: "[redacted]" if name.lower() in _SECRET_HEADERS else value
            for name, value in self.items()
        }
        return repr(shown)

    __str__ = __repr__


def resolve_key(
    api_key: str | None,
    variables: Sequence[str],
    *,
    required: bool,
    provider: str,
) -> str:
    """Return the key to send: the one given, else the first variable set.

    ``""`` means no key is sent (the emulator, a local server).

    Raises:
        ConfigError: ``required`` (the provider's own API is named) and no key is
            given or set; the message names the variables to set.
    """
    if api_key is None:
        api_key = next((os.environ[v] for v in variables if os.environ.get(v)), None)
    if api_key is None and required:
        names = " or ".join(variables)
        raise ConfigError(
            f"no {provider} API key: set {names}, or give a base URL for a server "
            "that needs none"
        )
    return api_key or ""


def redact(text: str, secret: str) -> str:
    """Remove a secret from a text that may quote it back (some servers echo keys).

    >>> redact("bad key sk-123", "sk-123")
    'bad key [redacted]'
    """
    return text.replace(secret, "[redacted]") if secret else text


def kind_for_status(status: int) -> ErrorKind:
    """Classify an HTTP status when the body says nothing more specific.

    >>> kind_for_status(529), kind_for_status(502), kind_for_status(418)
    (<ErrorKind.OVERLOADED: 'overloaded'>, <ErrorKind.SERVER: 'server'>, \
<ErrorKind.INVALID_REQUEST: 'invalid_request'>)
    """
    kind = _STATUS_KINDS.get(status)
    if kind is not None:
        return kind
    if status >= 500:
        return ErrorKind.SERVER
    if status >= 400:
        return ErrorKind.INVALID_REQUEST
    # A redirect or an odd 2xx is not an answer we can read; the next try may be.
    return ErrorKind.MALFORMED


def json_object(body: bytes, status: int) -> dict[str, Any]:
    """Decode a successful answer's body, which must be a JSON object.

    Raises:
        ProviderError: MALFORMED (retryable) when it is not.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ProviderError(
            ErrorKind.MALFORMED, f"answer is not JSON: {body_snippet(body)}", status
        ) from error
    if not isinstance(data, dict):
        raise ProviderError(ErrorKind.MALFORMED, "answer is not a JSON object", status)
    return data


def body_snippet(body: bytes, limit: int = 200) -> str:
    """Return the start of a body as text, for messages about bodies we cannot read."""
    text = body[:limit].decode("utf-8", "replace").strip()
    return text or "(empty body)"


def estimate_call_tokens(
    call: Call, image_tokens: Callable[[str, int, int], int]
) -> int:
    """Estimate a call's input tokens: its texts, its images and message overhead.

    Args:
        call: The call.
        image_tokens: The provider's image rule, taking (model, width, height).
    """
    total = MESSAGE_OVERHEAD_TOKENS
    if call.system:
        total += MESSAGE_OVERHEAD_TOKENS + estimate_text_tokens(call.system)
    for part in call.parts:
        if isinstance(part, str):
            total += estimate_text_tokens(part)
        else:
            total += image_tokens(call.model, part.width, part.height)
    return total
