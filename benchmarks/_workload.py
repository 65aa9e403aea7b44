"""The fixed workload: generated image files and the prompts that go with them."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

__all__ = [
    "MAX_TOKENS",
    "MODEL",
    "long_prompt",
    "make_noise_images",
    "make_small_images",
    "prompt",
]

MODEL = "gpt-4o"
MAX_TOKENS = 64

# About 300 characters, like a description prompt with a question attached.
_LONG = (
    "You are an expert ornithologist. Look closely at the bird in this photograph "
    "and describe the features that tell similar species apart: the shape and colour "
    "of the bill, the pattern on the crown and nape, wing bars, tail length, and the "
    "colour of the legs. Then name the species. Item {i}."
)


def prompt(i: int, nonce: str) -> str:
    """Return the text of call ``i``: distinct per call, so nothing is folded."""
    return f"[{nonce}] Describe the bird in this photo in one sentence. Call {i}."


def long_prompt(i: int) -> str:
    """Return a prompt of about 300 characters, distinct per ``i``."""
    return _LONG.format(i=i)


def make_small_images(folder: Path, count: int, side: int = 64) -> list[Path]:
    """Write ``count`` distinct small JPEGs (smooth colour fields with a mark).

    They are encoded at the engine's own JPEG quality, so the bytes a bare client
    sends straight from the file are as large as what the engine sends after its
    preparation.
    """
    # Imported here: the measured client processes import this module for its
    # prompts, and importing numpy starts a BLAS thread that spins for about a
    # second, counted as the client's CPU.
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    ramp = np.linspace(0.0, 1.0, side)
    paths = []
    for index in range(count):
        base = rng.integers(0, 256, 3)
        field = base + 80 * np.add.outer(ramp, ramp)[..., None] * rng.uniform(-1, 1, 3)
        pixels = np.clip(field, 0, 255).astype(np.uint8)
        pixels[index % side, :, :] = 255
        path = folder / f"small-{index:03d}.jpg"
        Image.fromarray(pixels, "RGB").save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def make_noise_images(
    folder: Path, count: int, size: tuple[int, int] = (1280, 960)
) -> list[Path]:
    """Write ``count`` JPEGs of per-pixel noise, about 1 MB each at 1280x960.

    Noise is the worst case for JPEG: after the engine shrinks it to 768 pixels it is
    still about 290 KB, where a photograph would be a third of that.
    """
    # Imported here: the measured client processes import this module for its
    # prompts, and importing numpy starts a BLAS thread that spins for about a
    # second, counted as the client's CPU.
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=90)
        path = folder / f"noise-{index:03d}.jpg"
        path.write_bytes(out.getvalue())
        paths.append(path)
    return paths
