"""Content-addressed cache keys.

A key is the SHA-256 of a canonical encoding of everything that can change an answer.
The canonical encoding is orjson with sorted mapping keys, so the order in which a
caller built a mapping never matters; numbers that mean the same sampling setting
(``1`` and ``1.0``) must be normalised by whoever builds the mapping, because JSON
keeps them apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["KEY_VERSION", "canonical_bytes", "digest_bytes", "key_for"]

# Bumped whenever the layout of the keyed mapping changes, so that entries written by
# an older layout can never be mistaken for answers to a newer one.
KEY_VERSION = 1


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """Encode a mapping canonically: sorted keys, no whitespace.

    >>> canonical_bytes({"b": 1, "a": [1.5, "x"]})
    b'{"a":[1.5,"x"],"b":1}'
    """
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def key_for(fields: Mapping[str, Any]) -> str:
    """Return the hex SHA-256 key of a mapping of answer-changing fields.

    >>> key_for({"model": "m", "x": 1}) == key_for({"x": 1, "model": "m"})
    True
    """
    return hashlib.sha256(canonical_bytes({"v": KEY_VERSION, **fields})).hexdigest()


def digest_bytes(data: bytes) -> str:
    """Return the hex SHA-256 digest of raw bytes (used for image files)."""
    return hashlib.sha256(data).hexdigest()
