from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.image_tokens import (
    ANTHROPIC_MAX_IMAGE_TOKENS,
    anthropic_image_tokens,
    estimate_text_tokens,
    gemini_image_tokens,
    openai_image_tokens,
)

sides = st.integers(min_value=1, max_value=10_000)


@pytest.mark.parametrize(
    ("size", "high", "low", "mini_patches", "gemini", "claude"),
    [
        # The cheat sheet of PROVIDERS.md section 7, row by row.
        ((200, 200), 255, 85, 80, 258, 54),
        ((512, 512), 255, 85, 415, 1032, 350),
        ((1024, 1024), 765, 85, 1659, 1032, 1399),
        ((1920, 1080), 1105, 85, 2443, 1548, 1640),
        ((4032, 3024), 765, 85, 2353, 6192, 1640),
    ],
)
def test_cheat_sheet(size, high, low, mini_patches, gemini, claude):
    w, h = size
    assert openai_image_tokens("gpt-4o", w, h, "high") == high
    assert openai_image_tokens("gpt-4o", w, h, "low") == low
    assert openai_image_tokens("gpt-4.1-mini", w, h) == mini_patches
    assert gemini_image_tokens("gemini-2.5-flash", w, h) == gemini
    assert anthropic_image_tokens("claude-sonnet-4-5", w, h) == claude


def test_openai_families_by_longest_prefix():
    assert openai_image_tokens("gpt-4o-mini-2024-07-18", 512, 512, "high") == 8500
    assert openai_image_tokens("gpt-4o-2024-08-06", 512, 512, "high") == 255
    assert openai_image_tokens("o1-2024-12-17", 512, 512, "low") == 75
    assert openai_image_tokens("gpt-4.1-nano", 64, 64) == 10  # 4 patches x 2.46
    # An unknown model (a local server's) gets gpt-4o's rule.
    assert openai_image_tokens("llava-1.6", 1024, 1024, "auto") == 765


def test_auto_detail_is_budgeted_as_high():
    assert openai_image_tokens("gpt-4o", 1024, 1024) == 765


def test_gemini_variants():
    assert gemini_image_tokens("models/gemini-2.0-flash", 384, 384) == 258
    assert gemini_image_tokens("gemini-3-pro-preview", 4000, 3000) == 1120
    assert gemini_image_tokens("gemini-1.0-pro-vision", 4000, 3000) == 258
    assert gemini_image_tokens("gemini-2.5-flash", 4000, 3000, "medium") == 256


def test_anthropic_cap_can_be_raised_per_model():
    assert anthropic_image_tokens("claude-next", 2000, 2000, max_tokens=4000) > 1640


@given(sides, sides)
def test_patch_models_never_exceed_1536_patches(w, h):
    assert openai_image_tokens("gpt-4.1-mini", w, h) <= 1536 * 1.62 + 1


@given(sides, sides)
def test_anthropic_never_exceeds_its_cap(w, h):
    assert (
        1
        <= anthropic_image_tokens("claude-haiku-4-5", w, h)
        <= (ANTHROPIC_MAX_IMAGE_TOKENS)
    )


@given(sides, sides)
def test_openai_high_detail_is_bounded(w, h):
    # 2048x2048 fitted, short side 768: at most 768x2048 -> 2x4 tiles.
    assert 85 + 170 <= openai_image_tokens("gpt-4o", w, h, "high") <= 85 + 170 * 8


def test_bad_size_is_rejected():
    with pytest.raises(ValueError, match="positive"):
        gemini_image_tokens("gemini-2.5-flash", 0, 10)


def test_text_estimate_rounds_up():
    assert estimate_text_tokens("abcd") == 1
    assert estimate_text_tokens("abcde") == 2
