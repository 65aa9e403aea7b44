"""Parsers for the rate-limit and retry hints the three providers send.

Each provider spells the same facts differently: OpenAI gives Go-style durations
(``6m0s``), Anthropic gives RFC 3339 instants, Gemini puts a protobuf duration
(``"19s"``) in the error body, and all of them may send ``retry-after`` (seconds or
an HTTP date) or ``retry-after-ms``. These helpers turn all of that into plain
seconds relative to the moment the answer arrived, and tolerate absence and garbage:
a header we cannot read is a header we did not get.

Headers are looked up case-insensitively whatever mapping is passed (aiohttp's
``CIMultiDictProxy`` or a plain dict in tests).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from providers.base import RateLimitInfo

__all__ = [
    "anthropic_rate_limit_info",
    "lower_headers",
    "openai_rate_limit_info",
    "parse_go_duration",
    "parse_http_date_delay",
    "parse_protobuf_duration",
    "parse_rfc3339_delay",
    "retry_after_seconds",
    "should_retry",
]

_GO_UNITS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
}
# Longest units first inside the alternation so "ms" is not read as "m" then "s".
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_PROTO_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)s\s*$")


def lower_headers(headers: Mapping[str, str], prefix: str = "") -> dict[str, str]:
    """Return the headers with lower-case names (the first value of a repeated name).

    Only the names that start with ``prefix`` (lower case) are kept.

    >>> lower_headers({"Retry-After": "3"})
    {'retry-after': '3'}
    >>> lower_headers({"Retry-After": "3", "X-RateLimit-Limit-Requests": "9"}, "x-")
    {'x-ratelimit-limit-requests': '9'}
    """
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        if name.startswith(prefix):
            lowered.setdefault(name, value)
    return lowered


def parse_go_duration(text: str | None) -> float | None:
    """Parse a Go ``time.Duration`` string into seconds.

    Returns None for anything that is not a well-formed duration.

    >>> parse_go_duration("6m0s")
    360.0
    >>> parse_go_duration("20ms")
    0.02
    >>> round(parse_go_duration("2m59.56s"), 2)
    179.56
    >>> parse_go_duration("1h1m1s")
    3661.0
    >>> parse_go_duration("soon") is None
    True
    """
    if text is None:
        return None
    text = text.strip()
    if text in ("0", ""):
        return 0.0 if text == "0" else None
    total = 0.0
    position = 0
    for match in _GO_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def parse_protobuf_duration(text: str | None) -> float | None:
    """Parse a protobuf JSON ``Duration`` (decimal seconds then ``s``) into seconds.

    >>> parse_protobuf_duration("19s")
    19.0
    >>> parse_protobuf_duration("3.700s")
    3.7
    >>> parse_protobuf_duration("19") is None
    True
    """
    if not isinstance(text, str):
        return None
    match = _PROTO_DURATION.match(text)
    return float(match.group(1)) if match else None


def parse_rfc3339_delay(text: str | None, *, now: float | None = None) -> float | None:
    """Return the seconds from ``now`` (Unix time) until an RFC 3339 instant.

    The instant is wall-clock time, so this is the one place that reads
    :func:`time.time`; the result is a relative delay, which is all the limiter
    keeps. Instants in the past give 0.

    >>> parse_rfc3339_delay("2025-08-21T12:41:00Z", now=1755780000.0)
    60.0
    >>> parse_rfc3339_delay("2025-08-21T12:40:00+00:00", now=1755780030.0)
    0.0
    >>> parse_rfc3339_delay("tomorrow") is None
    True
    """
    if not text:
        return None
    try:
        instant = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, instant.timestamp() - current)


def parse_http_date_delay(
    text: str | None, *, now: float | None = None
) -> float | None:
    """Return the seconds from ``now`` (Unix time) until an HTTP date.

    >>> parse_http_date_delay("Thu, 21 Aug 2025 12:41:00 GMT", now=1755780000.0)
    60.0
    """
    if not text:
        return None
    try:
        instant = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if instant.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, instant.timestamp() - current)


def retry_after_seconds(
    headers: Mapping[str, str], *, now: float | None = None
) -> float | None:
    """Read how long the server asked us to wait, in seconds.

    ``retry-after-ms`` wins over ``retry-after`` (it is the more precise of the two,
    and the official SDKs read it first); ``retry-after`` may be seconds (a float
    is tolerated) or an HTTP date. Negative or non-finite values are ignored.

    >>> retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"})
    1.5
    >>> retry_after_seconds({"Retry-After": "7"})
    7.0
    >>> date = "Thu, 21 Aug 2025 12:41:00 GMT"
    >>> retry_after_seconds({"retry-after": date}, now=1755780000.0)
    60.0
    >>> retry_after_seconds({}) is None
    True
    """
    lowered = lower_headers(headers)
    millis = _non_negative_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    raw = lowered.get("retry-after")
    seconds = _non_negative_float(raw)
    if seconds is not None:
        return seconds
    return parse_http_date_delay(raw, now=now)


def should_retry(headers: Mapping[str, str]) -> bool | None:
    """Read the ``x-should-retry`` override: True, False, or None when absent.

    >>> should_retry({"X-Should-Retry": "false"})
    False
    >>> should_retry({}) is None
    True
    """
    value = lower_headers(headers).get("x-should-retry", "").strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def openai_rate_limit_info(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Collect OpenAI's ``x-ratelimit-*`` headers; None when none is present.

    >>> info = openai_rate_limit_info({
    ...     "x-ratelimit-limit-requests": "60",
    ...     "x-ratelimit-remaining-requests": "59",
    ...     "x-ratelimit-reset-requests": "1s",
    ...     "x-ratelimit-limit-tokens": "150000",
    ...     "x-ratelimit-remaining-tokens": "149984",
    ...     "x-ratelimit-reset-tokens": "6m0s",
    ... })
    >>> info.limit_tokens, info.remaining_tokens, info.reset_tokens_s
    (150000, 149984, 360.0)
    """
    h = lower_headers(headers, "x-ratelimit-")
    if not h:
        # Most answers of servers other than OpenAI's carry none.
        return None
    info = RateLimitInfo(
        limit_requests=_int(h.get("x-ratelimit-limit-requests")),
        remaining_requests=_int(h.get("x-ratelimit-remaining-requests")),
        reset_requests_s=parse_go_duration(h.get("x-ratelimit-reset-requests")),
        limit_tokens=_int(h.get("x-ratelimit-limit-tokens")),
        remaining_tokens=_int(h.get("x-ratelimit-remaining-tokens")),
        reset_tokens_s=parse_go_duration(h.get("x-ratelimit-reset-tokens")),
    )
    return None if info == RateLimitInfo() else info


def anthropic_rate_limit_info(
    headers: Mapping[str, str], *, now: float | None = None
) -> RateLimitInfo | None:
    """Collect Anthropic's ``anthropic-ratelimit-*`` headers; None when none is present.

    The token reset is the later of the combined, input and output token resets,
    because :class:`RateLimitInfo` has one token reset and the later one is the
    cautious reading.

    >>> info = anthropic_rate_limit_info({
    ...     "anthropic-ratelimit-requests-limit": "1000",
    ...     "anthropic-ratelimit-input-tokens-limit": "80000",
    ...     "anthropic-ratelimit-input-tokens-remaining": "79000",
    ...     "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:01Z",
    ... }, now=1755780000.0)
    >>> info.limit_requests, info.limit_input_tokens, info.reset_tokens_s
    (1000, 80000, 1.0)
    """
    prefix = "anthropic-ratelimit-"
    h = lower_headers(headers, prefix)
    if not h:
        return None
    token_resets = [
        parse_rfc3339_delay(h.get(f"{prefix}{name}-reset"), now=now)
        for name in ("tokens", "input-tokens", "output-tokens")
    ]
    known_resets = [reset for reset in token_resets if reset is not None]
    info = RateLimitInfo(
        limit_requests=_int(h.get(f"{prefix}requests-limit")),
        remaining_requests=_int(h.get(f"{prefix}requests-remaining")),
        reset_requests_s=parse_rfc3339_delay(h.get(f"{prefix}requests-reset"), now=now),
        limit_tokens=_int(h.get(f"{prefix}tokens-limit")),
        remaining_tokens=_int(h.get(f"{prefix}tokens-remaining")),
        reset_tokens_s=max(known_resets) if known_resets else None,
        limit_input_tokens=_int(h.get(f"{prefix}input-tokens-limit")),
        remaining_input_tokens=_int(h.get(f"{prefix}input-tokens-remaining")),
        limit_output_tokens=_int(h.get(f"{prefix}output-tokens-limit")),
        remaining_output_tokens=_int(h.get(f"{prefix}output-tokens-remaining")),
    )
    return None if info == RateLimitInfo() else info


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _non_negative_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
