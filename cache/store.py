"""The response store: answers in a SQLite table, prepared images in diskcache.

Answers are small and never evicted, and the engine reads and writes them by the
thousand, so they live in one SQLite table written in group commits with
``executemany`` and read with ``IN`` queries: a few microseconds per answer. The
database runs in WAL mode, so several processes may share one directory (readers
never wait for a writer) and a committed answer survives a killed process.
Prepared images are larger and can always be made again, so they go to diskcache,
which evicts the oldest beyond a size. Every call here is synchronous; the engine
runs them in a worker thread, never on the loop.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
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

# Keys per ``IN (...)`` query, well under SQLite's limit on bound parameters.
_KEYS_PER_QUERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


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

    Safe to use from several threads (calls are serialised) and several processes.

    Args:
        directory: Where to keep the cache; created if missing.

    Raises:
        CacheError: The directory cannot be created or opened.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._images: diskcache.Cache | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.directory / "answers.sqlite3",
                timeout=_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                # A commit survives a killed process; only a power cut may lose the
                # last few, and a lost answer is only asked again.
                self._db.execute("PRAGMA synchronous=NORMAL")
                # Checkpoints write the database file and sync it; they are run
                # from a worker thread (checkpoint), never inside a write that may
                # be made on the event loop (set_many_nowait).
                self._db.execute("PRAGMA wal_autocheckpoint=0")
                self._db.executescript(_SCHEMA)
            except sqlite3.Error:
                self._db.close()
                raise
        except (OSError, sqlite3.Error) as error:
            raise CacheError(
                f"cannot open the cache at {self.directory}: {error}; "
                "choose another place with --cache-dir"
            ) from error

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the stored answer for a key, or None."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str | None]) -> list[dict[str, Any] | None]:
        """Look up many keys at once, in order (None keys are misses)."""
        found = dict(self._select("key, value", keys))
        return [
            None if key is None or key not in found else orjson.loads(found[key])
            for key in keys
        ]

    def contains_many(self, keys: Sequence[str]) -> int:
        """Count how many of the keys are stored, without decoding anything."""
        return sum(1 for _ in self._select("key", keys))

    def answers(self) -> list[tuple[str, dict[str, Any]]]:
        """Return every stored (key, answer), in key order."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM answers ORDER BY key")
            return [(key, orjson.loads(value)) for key, value in rows]

    def set(self, key: str, value: Mapping[str, Any]) -> bool:
        """Store an answer; return False (and log) if the write could not be made."""
        return self.set_many([(key, value)])

    def set_many(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> bool:
        """Store many answers in one transaction; return False if another process
        held the database for longer than the timeout.

        Raises:
            sqlite3.Error: The write failed otherwise (a full disk, a broken file).
        """
        rows = _rows(items)
        try:
            with self._lock:
                self._write(rows)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            logger.warning(
                "cache write timed out; %d answers kept but not cached", len(rows)
            )
            return False
        return True

    def set_many_nowait(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> bool:
        """Store many answers only if that needs no waiting; return whether done.

        Meant for the event loop: a write to a WAL database that no one else is
        writing takes a fraction of a millisecond, far less than handing it to a
        thread. If another thread is using this cache, or another process holds the
        write lock, nothing is written and False is returned: write with
        :meth:`set_many` from a worker thread instead.

        Raises:
            sqlite3.Error: The write failed for another reason (a full disk).
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._db.execute("PRAGMA busy_timeout=0")
            try:
                self._write(_rows(items))
            except sqlite3.OperationalError as error:
                if _is_busy(error):
                    return False
                raise
            finally:
                self._db.execute(f"PRAGMA busy_timeout={int(_TIMEOUT_S * 1000)}")
        finally:
            self._lock.release()
        return True

    def checkpoint(self) -> None:
        """Move committed answers from the write-ahead log into the database file
        (blocking: it writes and syncs the file; run it in a worker thread)."""
        try:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            # The log is only larger until the next checkpoint succeeds.
            logger.warning("cache checkpoint failed", exc_info=True)

    def _write(self, rows: list[tuple[str, str, bytes]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", rows
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def get_image(self, key: str) -> bytes | None:
        """Return a prepared image stored under key, or None."""
        value = self._image_store().get(key)
        return value if isinstance(value, bytes) else None

    def set_images(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store prepared images in one transaction; a write that times out is
        skipped (the images will be prepared again)."""
        images = self._image_store()
        try:
            with images.transact():
                for key, data in items:
                    images.set(key, data)
        except diskcache.Timeout:
            logger.warning(
                "image cache write timed out; the images will be re-prepared"
            )

    def record_lookups(self, hits: int, misses: int) -> None:
        """Add a run's lookup counts to the totals that ``stats`` reports.

        Counts live apart from the answers and are added once per run: counting
        every read as a write would serialise readers across processes.
        """
        try:
            with self._lock:
                self._db.executemany(
                    "INSERT INTO counts VALUES (?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET value = value + excluded.value",
                    [("hits", hits), ("misses", misses)],
                )
        except sqlite3.Error:
            logger.warning("cache statistics write failed; counts not recorded")

    def stats(self) -> dict[str, Any]:
        """Return entry counts, bytes on disk, hit counts and entries per model."""
        with self._lock:
            counts = dict(self._db.execute("SELECT name, value FROM counts"))
            per_model = dict(
                self._db.execute(
                    "SELECT model, count(*) FROM answers GROUP BY model ORDER BY model"
                )
            )
        hits, misses = int(counts.get("hits", 0)), int(counts.get("misses", 0))
        images = self._image_store()
        return {
            "directory": str(self.directory),
            "entries": sum(per_model.values()),
            "images": len(images),
            "bytes": self._database_bytes() + images.volume(),
            "hits": hits,
            "misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else None,
            "per_model": per_model,
        }

    def clear(self) -> int:
        """Remove every entry; return how many answers were removed."""
        with self._lock:
            removed = self._db.execute("DELETE FROM answers").rowcount
            self._db.execute("DELETE FROM counts")
            self._db.execute("VACUUM")
        self._image_store().clear()
        return int(removed)

    def close(self) -> None:
        """Close the underlying databases (the last connection to close moves the
        write-ahead log into the database file)."""
        with self._lock:
            self._db.close()
        if self._images is not None:
            self._images.close()

    def _select(self, columns: str, keys: Sequence[str | None]) -> list[Any]:
        wanted = [key for key in keys if key is not None]
        rows: list[Any] = []
        with self._lock:
            for start in range(0, len(wanted), _KEYS_PER_QUERY):
                chunk = wanted[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(
                    f"SELECT {columns} FROM answers WHERE key IN ({marks})", chunk
                )
        return rows

    def _image_store(self) -> diskcache.Cache:
        # Opened on first use: a run whose images are all in memory, or that has
        # none, never pays for it.
        if self._images is None:
            try:
                self._images = diskcache.Cache(
                    str(self.directory / "images"),
                    timeout=_TIMEOUT_S,
                    size_limit=_IMAGE_BYTES,
                )
            except (OSError, sqlite3.Error) as error:
                raise CacheError(
                    f"cannot open the image cache in {self.directory}: {error}"
                ) from error
        return self._images

    def _database_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += (self.directory / f"answers.sqlite3{suffix}").stat().st_size
            except FileNotFoundError:
                pass
        return total


def _rows(
    items: Iterable[tuple[str, Mapping[str, Any]]],
) -> list[tuple[str, str, bytes]]:
    return [
        (key, str(value.get("model", "")), orjson.dumps(value)) for key, value in items
    ]


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """Whether another connection held the database past the timeout."""
    return getattr(error, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    )
