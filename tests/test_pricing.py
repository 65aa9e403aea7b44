from __future__ import annotations

import pytest

from engine.pricing import DEFAULT_PRICES, Price, PriceTable, cost_usd
from providers.base import Usage


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("models/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ],
)
def test_dated_names_match_their_family(model, family):
    assert PriceTable().price(model) == DEFAULT_PRICES[family]


def test_unknown_models_have_no_price_not_a_zero_one():
    assert cost_usd("llava-1.6", Usage(100, 100)) is None
    assert cost_usd("gpt-4.10", Usage(100, 100)) is None


def test_cached_input_is_billed_at_its_own_rate():
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=400_000)
    assert cost_usd("gpt-4o", usage) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25)


def test_images_are_not_billed_twice():
    with_images = Usage(input_tokens=1000, output_tokens=0, image_tokens=765)
    assert cost_usd("gpt-4o", with_images) == cost_usd("gpt-4o", Usage(1000, 0))


def test_overrides_add_and_replace():
    table = PriceTable(
        {"gpt-4o": {"input": 5, "output": 20}, "emulated-vlm": Price(0.0, 0.0)}
    )
    assert table.cost_usd("gpt-4o-2024-08-06", Usage(1_000_000, 0, 0, 1_000_000)) == 5.0
    assert table.cost_usd("emulated-vlm", Usage(10, 10)) == 0.0
    assert table.cost_usd("gpt-4o-mini", Usage(1_000_000, 0)) == 0.15


def test_a_snapshot_can_be_priced_apart_from_its_family():
    table = PriceTable({"gpt-4o-2024-05-13": {"input": 5, "output": 15}})
    assert table.price("gpt-4o-2024-05-13").input == 5
    assert table.price("gpt-4o-2024-08-06").input == 2.5


def test_bad_price_config_is_rejected():
    with pytest.raises(ValueError, match="input and output"):
        PriceTable({"m": {"input": 1}})
    with pytest.raises(ValueError, match="input and output"):
        PriceTable({"m": {"input": 1, "output": 2, "cache": 3}})
