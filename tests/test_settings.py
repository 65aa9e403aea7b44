"""The settings file and the limit flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.limits import Limits
from engine.settings import read_settings
from providers.base import ConfigError, Usage


def test_settings_file_sets_limits_and_prices(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[limits."openai/gpt-4o"]\nrpm = 500\ntpm = 30000\n'
        '[limits."gemini/*"]\ntpm = 1000\n'
        '[prices."my-model"]\ninput = 1.0\noutput = 3.0\n'
    )
    settings = read_settings(path)
    assert settings.limits[("openai", "gpt-4o")] == Limits(rpm=500, tpm=30000)
    limiters = settings.limiter_set({"openai": "openai", "gemini": "gemini"})
    assert limiters.limits_for("openai", "gpt-4o").rpm == 500
    # Gemini's token limit counts input only.
    assert (
        limiters.limits_for("gemini", "gemini-2.5-flash").output_counts_in_tpm is False
    )
    assert (
        settings.price_table().cost_usd("my-model", Usage(1_000_000, 1_000_000)) == 4.0
    )


def test_flags_override_the_file_for_the_run_model(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[limits."openai/*"]\ntpm = 30000\n')
    settings = read_settings(path).with_limits("openai", "gpt-4o", rpm=60, tpm=None)
    assert settings.limits[("openai", "gpt-4o")] == Limits(rpm=60, tpm=30000)
    assert read_settings(None).with_limits("openai", "m").limits == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits.nomodel]\nrpm = 1\n", "provider/model"),
        ('[limits."openai/x"]\nrpn = 1\n', "unknown settings"),
        ('[limits."openai/x"]\nrpm = 0\n', "rpm must be at least 1"),
        ('[prices."m"]\ninput = 1\n', "needs input and output"),
        ("[other]\n", "unknown sections"),
        ("not toml [", "cannot read"),
    ],
)
def test_bad_settings_name_the_file_and_the_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        read_settings(path)
    assert str(path) in str(caught.value)


def test_a_setting_of_the_wrong_kind_is_named(tmp_path: Path) -> None:
    from autosep.config import ConfigError as RunConfigError
    from autosep.config import resolve_config

    with pytest.raises(
        RunConfigError, match="rounds must be a whole number, not 'one'"
    ):
        resolve_config({"rounds": "one"})
    path = tmp_path / "s.toml"
    path.write_text('[limits."openai/gpt-4o"]\nrpm = "fast"\n')
    with pytest.raises(ConfigError, match="rpm must be a whole number, not 'fast'"):
        read_settings(path)
