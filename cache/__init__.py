"""The content-addressed store of responses and prepared images."""

from __future__ import annotations

from cache.images import ImageError, ImagePreparer, PrepSettings, prepare_bytes
from cache.keys import key_for
from cache.store import CacheError, ResponseCache, default_cache_dir

__all__ = [
    "CacheError",
    "ImageError",
    "ImagePreparer",
    "PrepSettings",
    "ResponseCache",
    "default_cache_dir",
    "key_for",
    "prepare_bytes",
]
