"""Rate limits and prices from a settings file and from flags.

The file is TOML::

    [limits."openai/gpt-4o"]        # provider name / model ("*" for every model)
    rpm = 500
    tpm = 30000

    [limits."anthropic/*"]
    input_tpm = 80000
    output_tpm = 16000

    [prices."my-finetune"]          # US dollars per million tokens
    input = 0.5
    output = 1.5

Flags (``--rpm``, ``--tpm``, ...) set the limits of the run's own provider and model
and take precedence over the file.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engine.limits import LimiterSet, Limits
from engine.pricing import Price, PriceTable
from providers.base import ConfigError

__all__ = ["EngineSettings", "read_settings"]

logger = logging.getLogger(__name__)

_LIMIT_FIELDS = {f.name for f in fields(Limits)}


@dataclass(frozen=True)
class EngineSettings:
    """Limits by (provider, model) and price overrides by model."""

    limits: Mapping[tuple[str, str], Limits] = field(default_factory=dict)
    prices: Mapping[str, Price] = field(default_factory=dict)

    def with_limits(
        self, provider: str, model: str, **flags: int | None
    ) -> EngineSettings:
        """Return these settings with flag values set on one (provider, model)."""
        given = {name: value for name, value in flags.items() if value is not None}
        if not given:
            return self
        base = self.limits.get((provider, model)) or self.limits.get(
            (provider, "*"), Limits()
        )
        merged = dict(self.limits)
        merged[(provider, model)] = replace(base, **given)  # type: ignore[arg-type]
        return replace(self, limits=merged)

    def limiter_set(self, kinds: Mapping[str, str]) -> LimiterSet:
        """Build the run's limiters; ``kinds`` maps provider names to wire kinds.

        Gemini counts only input tokens against its per-minute token limit, so its
        limits are adjusted to match.
        """
        unused = sorted({p for p, _ in self.limits} - set(kinds))
        if unused:
            logger.warning(
                "limits are set for provider(s) %s, which this run does not use "
                "(it uses %s)",
                ", ".join(unused),
                ", ".join(sorted(kinds)),
            )
        per_model = {
            (provider, model): _for_kind(kinds.get(provider, ""), limits)
            for (provider, model), limits in self.limits.items()
        }
        return LimiterSet(per_model=per_model)

    def price_table(self) -> PriceTable:
        return PriceTable(dict(self.prices))


def _for_kind(kind: str, limits: Limits) -> Limits:
    if kind == "gemini" or kind == "emulator/gemini":
        return replace(limits, output_counts_in_tpm=False)
    return limits


def read_settings(path: Path | None) -> EngineSettings:
    """Read a settings file; no path gives empty settings.

    Raises:
        ConfigError: The file cannot be read or has settings that make no sense;
            the message names the file and the entry.
    """
    if path is None:
        return EngineSettings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the settings ({error})") from error
    unknown = set(data) - {"limits", "prices"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown sections {sorted(unknown)}; use limits, prices"
        )
    return EngineSettings(
        limits=_limits(path, data.get("limits", {})),
        prices=_prices(path, data.get("prices", {})),
    )


def _limits(path: Path, table: Mapping[str, Any]) -> dict[tuple[str, str], Limits]:
    out = {}
    for name, values in table.items():
        provider, slash, model = name.partition("/")
        if not slash or not provider or not model or not isinstance(values, dict):
            raise ConfigError(
                f'{path}: limits."{name}" must be a table named "provider/model" '
                '(or "provider/*")'
            )
        unknown = set(values) - _LIMIT_FIELDS
        if unknown:
            raise ConfigError(
                f'{path}: limits."{name}" has unknown settings {sorted(unknown)}'
            )
        try:
            out[(provider, model)] = Limits(**values)
        except (TypeError, ValueError) as error:
            raise ConfigError(f'{path}: limits."{name}": {error}') from error
    return out


def _prices(path: Path, table: Mapping[str, Any]) -> dict[str, Price]:
    out = {}
    for model, values in table.items():
        try:
            out[model] = Price.from_config(values)
        except (TypeError, ValueError, KeyError) as error:
            raise ConfigError(f'{path}: prices."{model}": {error}') from error
    return out
