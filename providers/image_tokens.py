"""Token estimates made before a call is sent: text and, per provider, images.

The limiter reserves budget from these numbers before the answer says what a call
really cost, so they lean high where the published rules leave a choice: a reserve
that is too large is given back when the usage arrives, one that is too small
becomes a 429.

Every function is pure. Image functions take ``(model, width, height, detail)`` with
the size *after* preparation, which is what the provider sees. Model families are
recognised by the longest matching name prefix, so dated snapshots
(``gpt-4o-2024-08-06``) get their family's rule; unknown models get the most common
rule of their provider.
"""

from __future__ import annotations

import math
from typing import TypeVar

__all__ = [
    "ANTHROPIC_MAX_IMAGE_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "anthropic_image_tokens",
    "estimate_text_tokens",
    "gemini_image_tokens",
    "openai_image_tokens",
]

_T = TypeVar("_T")

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat message costs beyond its content (role markers and separators)."""

# OpenAI tile models: (tokens for the whole image at low detail, tokens per
# 512-px tile at high detail).
_OPENAI_TILES: dict[str, tuple[int, int]] = {
    "gpt-4o": (85, 170),
    "gpt-4.1": (85, 170),
    "gpt-4.5": (85, 170),
    "chatgpt-4o": (85, 170),
    "gpt-4o-mini": (2833, 5667),
    "o1": (75, 150),
    "o1-pro": (75, 150),
    "o3": (75, 150),
    "computer-use-preview": (65, 129),
}
# OpenAI patch models: the factor that turns 32-px patches into tokens.
_OPENAI_PATCHES: dict[str, float] = {
    "gpt-4.1-mini": 1.62,
    "gpt-4.1-nano": 2.46,
    "o4-mini": 1.72,
}
_OPENAI_MAX_PATCHES = 1536

_GEMINI_TILE_TOKENS = 258
_GEMINI_SMALL_SIDE = 384
# Gemini's mediaResolution settings, when one is asked for instead of the default.
_GEMINI_RESOLUTION_TOKENS = {"low": 64, "medium": 256, "high": 256}
# Gemini 3 sets a ceiling per image rather than tiling; 1120 is its documented
# default, and measured photos land just under it whatever their size.
_GEMINI_3_IMAGE_TOKENS = 1120

_ANTHROPIC_PIXELS_PER_TOKEN = 750
_ANTHROPIC_MAX_SIDE = 1568
# The documented table of the largest images Claude does not shrink reaches 1,639
# tokens (784x1568), so the cap sits just above that rather than at the "roughly
# 1,600" of the prose: an estimate here must not come out below the real count.
ANTHROPIC_MAX_IMAGE_TOKENS = 1640


def estimate_text_tokens(text: str) -> int:
    """Estimate the tokens of a text as its length in characters / 4, rounded up.

    Real tokenizers give about four characters per token for English prose; the
    estimate is corrected by the usage each answer reports.

    >>> estimate_text_tokens("Describe the bird.")
    5
    >>> estimate_text_tokens("")
    0
    """
    return -(-len(text) // 4)


def openai_image_tokens(
    model: str, width: int, height: int, detail: str = "auto"
) -> int:
    """Estimate the input tokens of one image sent to an OpenAI model.

    Tile models (gpt-4o, gpt-4.1, o1, o3, ...) cost a base amount at ``low`` detail;
    at ``high`` the image is fitted into 2048x2048, its short side shrunk to 768 px,
    and each 512-px tile costs extra. ``auto`` is budgeted as ``high``. Patch models
    (gpt-4.1-mini, gpt-4.1-nano, o4-mini) count 32-px patches, at most 1536, times
    a model factor, whatever the detail. Unknown models get gpt-4o's rule.

    Args:
        model: The model name, dated snapshot suffixes allowed.
        width: Image width in pixels, as sent.
        height: Image height in pixels, as sent.
        detail: ``auto``, ``low`` or ``high``.

    >>> openai_image_tokens("gpt-4o", 1024, 1024, "high")
    765
    >>> openai_image_tokens("gpt-4o-2024-08-06", 2048, 4096, "high")
    1105
    >>> openai_image_tokens("gpt-4o", 4096, 4096, "low")
    85
    >>> openai_image_tokens("gpt-4o", 128, 64)
    255
    >>> openai_image_tokens("gpt-4.1-mini", 1024, 1024)
    1659
    >>> openai_image_tokens("gpt-4.1-mini", 1800, 2400)
    2353
    """
    _check_size(width, height)
    factor = _longest_prefix(model, _OPENAI_PATCHES)
    if factor is not None:
        return math.ceil(_openai_patches(width, height) * factor)
    base, per_tile = _longest_prefix(model, _OPENAI_TILES) or _OPENAI_TILES["gpt-4o"]
    if detail == "low":
        return base
    return base + per_tile * _openai_tiles(width, height)


def gemini_image_tokens(
    model: str, width: int, height: int, detail: str = "auto"
) -> int:
    """Estimate the input tokens of one image sent to a Gemini model.

    With ``detail="auto"`` (no ``mediaResolution`` sent) an image with both sides at
    most 384 px costs 258 tokens; a larger one is cut into square tiles whose side is
    the short image side / 1.5, clamped to [256, 768], at 258 tokens a tile. Google
    documents this rule for Gemini 1.5; for 2.x it says only "cropped and scaled into
    768x768 tiles", so the 1.5 rule, which gives the larger count, is used for both.
    Gemini 3 models are budgeted at their per-image ceiling of 1120, and
    Gemini 1.0 Pro Vision at a flat 258. ``low``, ``medium`` and ``high`` stand for
    the ``mediaResolution`` settings (64, 256 and 256 tokens).

    >>> gemini_image_tokens("gemini-2.0-flash", 200, 200)
    258
    >>> gemini_image_tokens("gemini-2.5-flash", 1024, 1024)
    1032
    >>> gemini_image_tokens("gemini-2.5-flash", 1920, 1080)
    1548
    >>> gemini_image_tokens("gemini-2.5-flash", 4032, 3024)
    6192
    >>> gemini_image_tokens("gemini-2.5-flash", 4032, 3024, "low")
    64
    """
    _check_size(width, height)
    model = model.removeprefix("models/")
    if detail in _GEMINI_RESOLUTION_TOKENS:
        return _GEMINI_RESOLUTION_TOKENS[detail]
    if model.startswith("gemini-3"):
        return _GEMINI_3_IMAGE_TOKENS
    if model.startswith(("gemini-1.0", "gemini-pro-vision")):
        return _GEMINI_TILE_TOKENS
    if width <= _GEMINI_SMALL_SIDE and height <= _GEMINI_SMALL_SIDE:
        return _GEMINI_TILE_TOKENS
    tile = min(max(min(width, height) / 1.5, 256.0), 768.0)
    tiles = math.ceil(width / tile) * math.ceil(height / tile)
    return tiles * _GEMINI_TILE_TOKENS


def anthropic_image_tokens(
    model: str,
    width: int,
    height: int,
    detail: str = "auto",
    *,
    max_tokens: int = ANTHROPIC_MAX_IMAGE_TOKENS,
) -> int:
    """Estimate the input tokens of one image sent to a Claude model.

    An image costs width x height / 750 tokens, rounded up. One whose long side
    exceeds 1568 px, or that would cost more than ``max_tokens``, is first shrunk
    (aspect ratio kept) until it fits both. ``model`` and ``detail`` are accepted
    for a uniform signature; newer Claude generations with a larger cap can pass
    their own ``max_tokens``.

    >>> anthropic_image_tokens("claude-sonnet-4-5", 200, 200)
    54
    >>> anthropic_image_tokens("claude-sonnet-4-5", 1000, 1000)
    1334
    >>> anthropic_image_tokens("claude-sonnet-4-5", 1092, 1092)
    1590
    >>> anthropic_image_tokens("claude-3-5-haiku", 4032, 3024)
    1640
    """
    _check_size(width, height)
    scale = min(1.0, _ANTHROPIC_MAX_SIDE / max(width, height))
    pixels = width * height * scale * scale
    pixels = min(pixels, max_tokens * _ANTHROPIC_PIXELS_PER_TOKEN)
    return math.ceil(pixels / _ANTHROPIC_PIXELS_PER_TOKEN)


def _openai_tiles(width: int, height: int) -> int:
    """Count the 512-px tiles of an image after OpenAI's two shrinking steps."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    # The second step only ever shrinks: a 128x64 image is one tile, not upscaled.
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    # Round the scaled sides before tiling so that float noise (1024.0000001)
    # cannot add a tile.
    return math.ceil(max(1, round(w)) / 512) * math.ceil(max(1, round(h)) / 512)


def _openai_patches(width: int, height: int) -> int:
    """Count the 32-px patches of an image after shrinking it to at most 1536."""
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= _OPENAI_MAX_PATCHES:
        return patches
    scale = math.sqrt(32 * 32 * _OPENAI_MAX_PATCHES / (width * height))
    # Shrink a little more so that a whole number of patches spans each side.
    w_patches, h_patches = width * scale / 32, height * scale / 32
    scale *= min(math.floor(w_patches) / w_patches, math.floor(h_patches) / h_patches)
    patches = math.ceil(width * scale / 32) * math.ceil(height * scale / 32)
    return min(patches, _OPENAI_MAX_PATCHES)


def _longest_prefix(model: str, table: dict[str, _T]) -> _T | None:
    """Find the entry whose name is the longest prefix of ``model`` at a boundary."""
    best: str | None = None
    for name in table:
        if _matches(model, name) and (best is None or len(name) > len(best)):
            best = name
    return None if best is None else table[best]


def _matches(model: str, name: str) -> bool:
    # A family name matches itself or itself followed by a suffix separator, so
    # "o1" covers "o1-2024-12-17" but not "o10" and "gpt-4.1" not "gpt-4.10".
    return model == name or model.startswith((f"{name}-", f"{name}:", f"{name}@"))


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
