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
from typing import TYPE_CHECKING, cast

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


# What Pillow reports of a JPEG that holds pixels and nothing about the photograph:
# a file with anything else (EXIF with its orientation, XMP, comments, maker data)
# is re-encoded, which sets it upright and drops the rest.
_PLAIN_JPEG_INFO = frozenset(
    {
        "jfif",
        "jfif_version",
        "jfif_unit",
        "jfif_density",
        "dpi",
        "progressive",
        "progression",
        "icc_profile",
    }
)


# Worker-thread jobs preparing images at once (Pillow decodes and encodes without
# the GIL, so two use two cores), and images per job.
_JOBS = 2
_PER_JOB = 8


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
        return f"jpeg:q{self.quality}:max{self.max_side}:plain-jpeg-as-is"


def _to_rgb(image: PILImage.Image) -> PILImage.Image:
    """Convert any mode to 8-bit RGB, flattening transparency onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow's own conversion clips 16-bit and float data instead of scaling it.
        floats = image.convert("F")
        _, top = cast(tuple[float, float], floats.getextrema())
        top = top or 1.0
        image = floats.point(lambda value: value * (255.0 / top)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _sendable_as_is(image: PILImage.Image, settings: PrepSettings) -> bool:
    """Whether a file is already what preparation would make: an RGB JPEG small
    enough, carrying no metadata beyond how to decode and show it."""
    return (
        image.format == "JPEG"
        and image.mode == "RGB"
        and max(image.size) <= settings.max_side
        and image.info.keys() <= _PLAIN_JPEG_INFO
    )


def _plain_jpeg(data: bytes, settings: PrepSettings) -> bool:
    """Whether the bytes would be sent as they are (a look at the header only)."""
    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            return _sendable_as_is(opened, settings)
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        PILImage.DecompressionBombError,
    ):
        return False  # prepare_bytes says what is wrong with it


def prepare_bytes(data: bytes, settings: PrepSettings, *, name: str = "image") -> Image:
    """Prepare raw file bytes: orientation from EXIF, RGB, longest side limited, JPEG.

    A file that is already an RGB JPEG within the size, with no EXIF, XMP or other
    metadata, is checked by decoding it and then sent byte for byte: re-encoding it
    would cost time and lose detail. Any other file is decoded, turned upright,
    converted, shrunk and encoded at the settings' quality, which also drops its
    metadata (camera, place).

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
                if _sendable_as_is(opened, settings):
                    # Decoded all the same: a truncated or corrupt file fails here,
                    # with its name, not at the provider.
                    opened.load()
                    encoded = base64.b64encode(data).decode("ascii")
                    return Image(
                        digest_bytes(data), "image/jpeg", encoded, width, height
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
        self._queue: list[tuple[str, str, asyncio.Future[Image]]] = []
        self._jobs = 0
        self._tasks: set[asyncio.Task[None]] = set()
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

        Images asked for at about the same time are prepared together, a few per
        worker-thread job: a thread hand-off per image costs more than preparing a
        small one.

        Raises:
            ImageError: The file cannot be read or decoded.
        """
        key = f"{digest}:{self.settings.tag}"
        cached = self._lru.get(key)
        if cached is not None:
            self._lru.move_to_end(key)
            return cached
        future = self._pending.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._pending[key] = future
            self._queue.append((path, key, future))
            if self._jobs < _JOBS:
                self._jobs += 1
                job = loop.create_task(self._drain())
                self._tasks.add(job)  # the loop keeps only a weak reference
                job.add_done_callback(self._tasks.discard)
        # Shielded: a caller cancelled while waiting leaves the preparation, which
        # other callers may be waiting for, to finish.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:_PER_JOB]
                del self._queue[:_PER_JOB]
                try:
                    outcomes = await asyncio.to_thread(self._prepare_all, batch)
                except BaseException:
                    for _, key, future in batch:
                        del self._pending[key]
                        future.cancel()
                    raise
                for (_, key, future), outcome in zip(batch, outcomes, strict=True):
                    del self._pending[key]
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                        # Retrieved here: when every caller has been cancelled no
                        # one else will, and asyncio would warn.
                        future.exception()
                        continue
                    image, made = outcome
                    self.prepared_count += made
                    self._remember(key, image)
                    future.set_result(image)
        finally:
            self._jobs -= 1

    def _prepare_all(
        self, batch: list[tuple[str, str, asyncio.Future[Image]]]
    ) -> list[tuple[Image, bool] | Exception]:
        outcomes: list[tuple[Image, bool] | Exception] = []
        for path, key, _ in batch:
            try:
                outcomes.append(self._load_or_prepare(path, key))
            except Exception as error:  # each item fails alone, with its reason
                outcomes.append(error)
        return outcomes

    def _load_or_prepare(self, path: str, key: str) -> tuple[Image, bool]:
        """Return the image and whether it was made from its file (not loaded)."""
        data = _read_file(path)
        # A file sent as it is is checked again rather than looked up: that is
        # cheaper, and keeps copies of such files out of the store.
        if self._store is not None and not _plain_jpeg(data, self.settings):
            raw = self._store.get_image(key)
            if raw is not None:
                return _decode_stored(raw), False
            image = prepare_bytes(data, self.settings, name=path)
            # Saved in one transaction later (save_prepared): a transaction per
            # image costs more than preparing a small one.
            self._unsaved.append((key, _encode_stored(image)))
        else:
            image = prepare_bytes(data, self.settings, name=path)
        return image, True

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
