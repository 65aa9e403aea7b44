"""Image preparation: decode, orient, convert, shrink and encode, once per image.

Files are named by path in requests, but cached by the SHA-256 of their bytes plus the
preparation settings, so a renamed or copied file is still the same image and an edited
file is a new one. Preparation is CPU work, so it runs in a worker thread; the
prepared bytes are kept on disk beside the responses and in a small in-memory LRU, so
an image is prepared at most once however many calls use it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from cache.keys import digest_bytes
from providers.base import Image

if TYPE_CHECKING:
    from cache.store import ResponseCache

__all__ = ["ImageError", "ImagePreparer", "PrepSettings", "prepare_bytes"]

logger = logging.getLogger(__name__)

# Decoding is refused above this many pixels: a real photograph is far below it, and a
# crafted file (a "decompression bomb") would otherwise take gigabytes of memory.
MAX_PIXELS = 64_000_000


class ImageError(Exception):
    """An image file that cannot be prepared; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class PrepSettings:
    """How images are prepared before sending.

    Attributes:
        max_side: The longest side after preparation, in pixels; larger images are
            shrunk keeping their aspect ratio, smaller ones are left as they are.
        quality: JPEG quality of the encoded image.
    """

    max_side: int = 768
    quality: int = 90

    def __post_init__(self) -> None:
        if self.max_side < 16:
            raise ValueError(
                f"max_side must be at least 16 pixels, got {self.max_side}"
            )
        if not 1 <= self.quality <= 95:
            raise ValueError(f"quality must be within 1..95, got {self.quality}")

    @property
    def tag(self) -> str:
        """A short text naming the settings, part of every image's cache identity."""
        return f"jpeg:q{self.quality}:max{self.max_side}"


def _to_rgb(image: PILImage.Image) -> PILImage.Image:
    """Convert any mode to 8-bit RGB, flattening transparency onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow's own conversion clips 16-bit and float data instead of scaling it.
        floats = image.convert("F")
        top = float(floats.getextrema()[1]) or 1.0
        image = floats.point(lambda value: value * (255.0 / top)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def prepare_bytes(data: bytes, settings: PrepSettings, *, name: str = "image") -> Image:
    """Prepare raw file bytes: orientation from EXIF, RGB, longest side limited, JPEG.

    Args:
        data: The file's bytes.
        settings: The preparation settings.
        name: How to name the file in an error message.

    Raises:
        ImageError: The bytes are not an image Pillow can decode, or are too large.
    """
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                if width <= 0 or height <= 0:
                    raise ImageError(
                        f"{name}: the image has no pixels ({width}x{height})"
                    )
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        f"{name}: too many pixels to decode safely ({width}x{height}, "
                        f"limit {MAX_PIXELS:,}); shrink the image before using it"
                    )
                opened.draft("RGB", (settings.max_side, settings.max_side))
                image = ImageOps.exif_transpose(opened)
                image = _to_rgb(image)
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"{name}: not an image format that can be read") from error
    except (
        PILImage.DecompressionBombError,
        PILImage.DecompressionBombWarning,
    ) as error:
        raise ImageError(
            f"{name}: too many pixels to decode safely; shrink the image before using "
            "it"
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{name}: the image cannot be decoded ({error})") from error
    image.thumbnail((settings.max_side, settings.max_side), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=settings.quality)
    encoded = base64.b64encode(out.getvalue()).decode("ascii")
    return Image(digest_bytes(data), "image/jpeg", encoded, image.width, image.height)


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as error:
        raise ImageError(f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise ImageError(f"{path}: is a folder, not an image file") from error
    except OSError as error:
        raise ImageError(f"{path}: cannot be read ({error.strerror})") from error


class ImagePreparer:
    """Digest and prepare image files, each at most once, off the event loop.

    Args:
        settings: The preparation settings.
        store: Where prepared images persist between runs; None keeps them in memory
            only.
        memory_bytes: The budget of the in-memory LRU of prepared images.
    """

    def __init__(
        self,
        settings: PrepSettings | None = None,
        *,
        store: ResponseCache | None = None,
        memory_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.settings = settings or PrepSettings()
        self._store = store
        self._memory_bytes = memory_bytes
        self._lru: OrderedDict[str, Image] = OrderedDict()
        self._lru_bytes = 0
        self._digests: dict[str, tuple[int, int, str]] = {}
        self._pending: dict[str, asyncio.Future[Image]] = {}
        self._unsaved: list[tuple[str, bytes]] = []
        self.prepared_count = 0

    def digest_now(self, path: str) -> str:
        """Return the SHA-256 of a file's bytes (blocking; memoised by size and mtime).

        Raises:
            ImageError: The file cannot be read.
        """
        try:
            stat = os.stat(path)
        except OSError as error:
            raise ImageError(f"{path}: no such file or not readable") from error
        known = self._digests.get(path)
        if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
            return known[2]
        digest = digest_bytes(_read_file(path))
        self._digests[path] = (stat.st_size, stat.st_mtime_ns, digest)
        return digest

    def last_digest(self, path: str) -> str | None:
        """Return the digest last computed for a file, without looking at the file.

        The engine hashes a batch's files just before sending it; this spares each
        call a ``stat`` that would only confirm what was just checked.
        """
        known = self._digests.get(path)
        return None if known is None else known[2]

    async def prepare(self, path: str, digest: str) -> Image:
        """Return the prepared image for a file, preparing it if no one has yet.

        Raises:
            ImageError: The file cannot be read or decoded.
        """
        key = f"{digest}:{self.settings.tag}"
        cached = self._lru.get(key)
        if cached is not None:
            self._lru.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Image] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            image = await asyncio.to_thread(self._load_or_prepare, path, key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            # Retrieve it so an unawaited future does not warn at shutdown.
            future.exception()
            raise
        else:
            future.set_result(image)
            self._remember(key, image)
            return image
        finally:
            del self._pending[key]

    def _load_or_prepare(self, path: str, key: str) -> Image:
        if self._store is not None:
            raw = self._store.get_image(key)
            if raw is not None:
                return _decode_stored(raw)
        image = prepare_bytes(_read_file(path), self.settings, name=path)
        self.prepared_count += 1
        if self._store is not None:
            # Saved in one transaction later (save_prepared): a transaction per
            # image costs more than preparing a small one.
            self._unsaved.append((key, _encode_stored(image)))
        return image

    def save_prepared(self) -> None:
        """Store the images prepared since the last call (blocking; run it in a
        worker thread)."""
        if self._store is None or not self._unsaved:
            return
        items, self._unsaved = self._unsaved, []
        try:
            self._store.set_images(items)
        except Exception:
            # Losing prepared images only means preparing them again next time.
            logger.warning("cannot store %d prepared images", len(items), exc_info=True)

    def _remember(self, key: str, image: Image) -> None:
        self._lru[key] = image
        self._lru_bytes += len(image.b64)
        while self._lru_bytes > self._memory_bytes and len(self._lru) > 1:
            _, old = self._lru.popitem(last=False)
            self._lru_bytes -= len(old.b64)


def _encode_stored(image: Image) -> bytes:
    header = f"{image.digest}|{image.mime}|{image.width}|{image.height}|".encode()
    return header + image.b64.encode("ascii")


def _decode_stored(raw: bytes) -> Image:
    digest, mime, width, height, b64 = raw.decode("ascii").split("|", 4)
    return Image(digest, mime, b64, int(width), int(height))
