"""The response store: diskcache on local disk, values encoded with orjson.

diskcache is SQLite underneath, so several processes may share one directory; its
calls are synchronous, so the engine runs them in a worker thread, never on the loop.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import diskcache
import orjson
import platformdirs

__all__ = ["CacheError", "ResponseCache", "default_cache_dir"]

logger = logging.getLogger(__name__)

# SQLite waits this long for another process's write lock before giving up; a
# failed write only loses a cache entry, never an answer, so it is kept short.
_TIMEOUT_S = 10.0


# Prepared images kept on disk at most (they can always be prepared again).
_IMAGE_BYTES = 4 * 2**30


class CacheError(Exception):
    """The cache directory cannot be opened or used."""


def default_cache_dir() -> Path:
    """Return the default cache directory, following the XDG convention.

    ``AUTOSEP_CACHE_DIR`` overrides it.
    """
    override = os.environ.get("AUTOSEP_CACHE_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("autosep-engine")) / "responses"


class ResponseCache:
    """Cached answers keyed by content, plus prepared images, in one directory.

    Args:
        directory: Where to keep the cache; created if missing.

    Raises:
        CacheError: The directory cannot be created or opened.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Answers are never evicted: a rerun is free only while they are all
            # there (diskcache would otherwise cull beyond 1 GB), and skipping the
            # eviction bookkeeping makes every write cheaper. Prepared images can be
            # made again, so they are evicted, oldest first, beyond a few gigabytes.
            self._responses = diskcache.Cache(
                str(self.directory / "responses"),
                timeout=_TIMEOUT_S,
                eviction_policy="none",
                size_limit=2**62,
            )
            self._images = diskcache.Cache(
                str(self.directory / "images"),
                timeout=_TIMEOUT_S,
                size_limit=_IMAGE_BYTES,
            )
            # Lookup counts live apart from the answers: diskcache's own statistics
            # would turn every read into a write, which serialises readers across
            # processes. The engine adds its counts once per run instead.
            self._meta = diskcache.Cache(
                str(self.directory / "meta"), timeout=_TIMEOUT_S
            )
        except (OSError, sqlite3.Error) as error:
            raise CacheError(
                f"cannot open the cache at {self.directory}: {error}; "
                "choose another place with --cache-dir"
            ) from error

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the stored answer for a key, or None."""
        raw = self._responses.get(key)
        return None if raw is None else orjson.loads(raw)

    def get_many(self, keys: Iterable[str | None]) -> list[dict[str, Any] | None]:
        """Look up many keys at once (None keys are misses)."""
        return [None if key is None else self.get(key) for key in keys]

    def contains_many(self, keys: Iterable[str]) -> int:
        """Count how many of the keys are stored, without decoding anything."""
        return sum(1 for key in keys if key in self._responses)

    def set(self, key: str, value: Mapping[str, Any]) -> bool:
        """Store an answer; return False (and log) if the write could not be made."""
        try:
            self._responses.set(key, orjson.dumps(value))
        except diskcache.Timeout:
            logger.warning("cache write timed out; the answer is kept but not cached")
            return False
        return True

    def set_many(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> bool:
        """Store many answers in one transaction; return False if it timed out."""
        items = list(items)
        try:
            with self._responses.transact():
                for key, value in items:
                    self._responses.set(key, orjson.dumps(value))
        except diskcache.Timeout:
            logger.warning(
                "cache write timed out; %d answers kept but not cached", len(items)
            )
            return False
        return True

    def get_image(self, key: str) -> bytes | None:
        """Return a prepared image stored under key, or None."""
        value = self._images.get(key)
        return value if isinstance(value, bytes) else None

    def set_images(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store prepared images in one transaction; a write that times out is
        skipped (the images will be prepared again)."""
        try:
            with self._images.transact():
                for key, data in items:
                    self._images.set(key, data)
        except diskcache.Timeout:
            logger.warning(
                "image cache write timed out; the images will be re-prepared"
            )

    def record_lookups(self, hits: int, misses: int) -> None:
        """Add a run's lookup counts to the totals that ``stats`` reports."""
        try:
            self._meta.incr("hits", hits)
            self._meta.incr("misses", misses)
        except (diskcache.Timeout, sqlite3.Error, OSError):
            logger.warning("cache statistics write timed out; counts not recorded")

    def stats(self) -> dict[str, Any]:
        """Return entry counts, bytes on disk, hit counts and entries per model."""
        hits = int(self._meta.get("hits", 0))
        misses = int(self._meta.get("misses", 0))
        per_model: Counter[str] = Counter()
        for key in self._responses.iterkeys():
            raw = self._responses.get(key)
            if raw is not None:
                per_model[str(orjson.loads(raw).get("model", "?"))] += 1
        return {
            "directory": str(self.directory),
            "entries": len(self._responses),
            "images": len(self._images),
            "bytes": self._responses.volume() + self._images.volume(),
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else None,
            "per_model": dict(per_model),
        }

    def clear(self) -> int:
        """Remove every entry; return how many responses were removed."""
        removed = self._responses.clear()
        self._images.clear()
        self._meta.clear()
        return removed

    def close(self) -> None:
        """Close the underlying databases."""
        self._responses.close()
        self._images.close()
        self._meta.close()
