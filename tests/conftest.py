"""Shared fixtures: generated images, a temporary cache, the emulator on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from cache.store import ResponseCache
from providers.emulator.server import EmulatorConfig, EmulatorServer

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def shared_images(folder: str) -> Path:
    """Return a folder of the shared image corpus, or skip the test without it."""
    path = SHARED_IMAGES / folder
    if not path.is_dir():
        pytest.skip(f"the shared image corpus is not here ({path} is absent)")
    return path


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """Write a small JPEG whose pixels depend on ``seed``; return its path."""

    def make(
        name: str = "img", seed: int = 0, size: tuple[int, int] = (64, 48)
    ) -> Path:
        image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, seed % 7))
        image.putpixel((seed % size[0], 0), (255, 255, 255))
        path = tmp_path / f"{name}-{seed}.jpg"
        image.save(path, "JPEG", quality=95)
        return path

    return make


@pytest.fixture
def response_cache(tmp_path: Path) -> Iterator[ResponseCache]:
    cache = ResponseCache(tmp_path / "cache")
    yield cache
    cache.close()


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorConfig()) as server:
        yield server
