"""The contract every wire format implements.

A provider adapter is pure translation: it turns a :class:`Call` (model, ordered text
and prepared-image parts, sampling parameters) into one HTTP request, and one HTTP
answer into a :class:`Reply` or a :class:`ProviderError`. It sends nothing itself; the
engine owns the connection pool, the retries and the rate limits, so an adapter can be
tested with no network at all.

Adapters know nothing of the engine or the cache, which is why the types they speak
live here rather than in ``engine``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Call",
    "ConfigError",
    "ErrorKind",
    "FinishReason",
    "HttpRequest",
    "Image",
    "Part",
    "Provider",
    "ProviderError",
    "RateLimitInfo",
    "Reply",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Image:
    """An image ready to send: encoded once, with its base64 text kept for reuse.

    Attributes:
        digest: SHA-256 hex digest of the original file bytes.
        mime: MIME type of ``data`` (``image/jpeg`` or ``image/png``).
        b64: The encoded image as standard base64 text, without a data-URL prefix.
        width: Width in pixels after preparation.
        height: Height in pixels after preparation.
    """

    digest: str
    mime: str
    b64: str
    width: int
    height: int


Part = str | Image


@dataclass(frozen=True, slots=True)
class Call:
    """One model call in wire-neutral form: what an adapter needs to build a request."""

    model: str
    parts: tuple[Part, ...]
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    seed: int | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request an adapter asks the engine to send (always a JSON POST)."""

    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider billed them.

    ``input_tokens`` is the whole prompt, images included; ``image_tokens`` is the part
    of it the provider attributes to images, where it says so (else 0).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    cached_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.image_tokens + other.image_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
        )


class FinishReason(enum.StrEnum):
    """Why generation stopped, normalised across providers."""

    COMPLETE = "complete"
    TRUNCATED = "truncated"
    FILTERED = "filtered"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a provider's rate-limit headers said about the budget left.

    Every field is optional: providers send some, none or all of them. Seconds are
    relative to the moment the answer arrived.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    limit_input_tokens: int | None = None
    remaining_input_tokens: int | None = None
    limit_output_tokens: int | None = None
    remaining_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A parsed successful answer."""

    texts: tuple[str, ...]
    finish: FinishReason
    usage: Usage
    rate_limit: RateLimitInfo | None = None


class ErrorKind(enum.StrEnum):
    """What went wrong, which decides whether a retry can help."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    MALFORMED = "malformed"
    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    NOT_FOUND = "not_found"
    QUOTA = "quota"
    TOO_LARGE = "too_large"
    FILTERED = "filtered"


_RETRYABLE = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.MALFORMED,
    }
)


@dataclass(eq=False)
class ProviderError(Exception):
    """A failed call, classified.

    Attributes:
        kind: The class of failure; ``retryable`` follows from it unless overridden
            (for instance by an ``x-should-retry`` header).
        message: The provider's own message, kept verbatim (never containing the key).
        status: The HTTP status, or None when no answer arrived.
        retry_after_s: How long the provider asked us to wait, if it said.
        usage: Tokens billed for an answer that still counts as a failure (a
            filtered answer is billed), else None.
    """

    kind: ErrorKind
    message: str
    status: int | None = None
    retry_after_s: float | None = None
    retryable_override: bool | None = None
    usage: Usage | None = None
    rate_limit: RateLimitInfo | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        if self.retryable_override is not None:
            return self.retryable_override
        return self.kind in _RETRYABLE

    def __str__(self) -> str:
        status = f"HTTP {self.status} " if self.status is not None else ""
        return f"{status}{self.kind}: {self.message}"


class Provider(Protocol):
    """A wire format bound to one endpoint and one key.

    ``identity`` names the endpoint for cache keys: the same model name on two servers
    is two models, so it includes the kind and the base URL, never the key.
    """

    kind: str
    base_url: str

    @property
    def identity(self) -> str: ...

    def build(self, call: Call) -> HttpRequest:
        """Translate a call into the HTTP request to send."""
        ...

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
        """Parse an answer; raise :class:`ProviderError` for anything but a reply."""
        ...

    def estimate_input_tokens(self, call: Call) -> int:
        """Estimate the input tokens of a call before it is sent."""
        ...


class ConfigError(ValueError):
    """A provider cannot be set up as asked (a missing key, a bad setting).

    Raised before any call is made; the message says what to change.
    """
