"""Run settings: one flat, frozen record, from defaults, a file and the command line.

Settings are of two kinds. Most change what the run asks the model, and so its
results; they are fingerprinted, and a run directory refuses to continue under a
different fingerprint. The rest (concurrency, budget, where the cache lives) change
only how fast or how far the run goes, and may differ between a run and its resume.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autosep.rng import stable_hash
from providers import DEFAULT_MODELS

__all__ = [
    "DEMO",
    "EVALUATORS",
    "BASELINES",
    "ConfigError",
    "RunConfig",
    "config_diff",
    "load_config_file",
    "resolve_config",
]

EVALUATORS = ("bf", "ucb", "sr", "sh")
BASELINES = (
    "zero_shot",
    "zero_shot_described",
    "majority_vote",
    "few_shot_random",
    "multi_image",
    "kmeans",
    "pseudo_random",
    "pseudo_majority",
    "spo",
)

# A small but complete run: every step of the method, under a minute on two cores.
DEMO: dict[str, Any] = {
    "rounds": 3,
    "beam_size": 3,
    "n_train": 15,
    "n_test": 20,
    "minibatch_size": 30,
    "n_gradients": 3,
    "errors_per_gradient": 4,
    "max_expansion_factor": 4,
}

_EXECUTION = {"execution": True}


class ConfigError(ValueError):
    """A setting is unknown or out of range; the message names it."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run. Defaults are the reference implementation's.

    Fields marked as execution settings (concurrency, budget, directories) do not
    enter the fingerprint.
    """

    # The task.
    dataset: str | None = None
    family: str | None = None
    layout: str = "auto"
    task: str | None = None
    classes: tuple[str, ...] | None = None
    noun: str | None = None
    n_train: int = 30
    n_test: int = 30
    synthetic_per_species: int = 60
    synthetic_seed: int = 0
    # Models.
    provider: str = "emulator"
    model: str | None = None
    critic_provider: str | None = None
    critic_model: str | None = None
    base_url: str | None = None
    seed: int = 0
    # The search.
    initial_prompt: str | None = None
    rounds: int = 6
    beam_size: int = 4
    minibatch_size: int = 50
    n_gradients: int = 4
    errors_per_gradient: int = 4
    gradients_per_error: int = 1
    steps_per_gradient: int = 1
    mc_samples_per_step: int = 1
    max_expansion_factor: int = 5
    reject_on_errors: bool = False
    # Label-free scoring.
    evaluator: str = "bf"
    n_compare: int = 2
    samples_per_eval: int = 32
    eval_rounds: int = 8
    eval_prompts_per_round: int = 8
    ucb_c: float = 1.0
    # Sampling parameters of each kind of call.
    describe_temperature: float = 0.7
    describe_max_tokens: int = 1024
    compare_max_tokens: int = 6
    critic_temperature: float = 0.7
    critic_max_tokens: int = 1024
    classify_max_tokens: int = 16
    # Reporting and baselines.
    test_eval: bool = True
    baselines: tuple[str, ...] = ("zero_shot", "zero_shot_described", "majority_vote")
    votes: int = 5
    vote_temperature: float = 0.7
    context_images: int = 3
    spo_samples: int = 3
    # Execution only: these never change an answer.
    concurrency: int = field(default=64, metadata=_EXECUTION)
    budget_usd: float | None = field(default=None, metadata=_EXECUTION)
    cache_dir: str | None = field(default=None, metadata=_EXECUTION)
    no_cache: bool = field(default=False, metadata=_EXECUTION)
    data_dir: str | None = field(default=None, metadata=_EXECUTION)
    limits_file: str | None = field(default=None, metadata=_EXECUTION)
    rpm: int | None = field(default=None, metadata=_EXECUTION)
    tpm: int | None = field(default=None, metadata=_EXECUTION)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def main_model(self) -> str:
        """The model for describe, compare and classify calls."""
        return self.model or default_model(self.provider)

    @property
    def critic(self) -> tuple[str, str]:
        """The (provider, model) for criticise, rewrite and paraphrase calls."""
        provider = self.critic_provider or self.provider
        if self.critic_model:
            return provider, self.critic_model
        if provider == self.provider:
            return provider, self.main_model
        return provider, default_model(provider)

    def to_dict(self) -> dict[str, Any]:
        """Return every setting as JSON-ready data (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
        }

    def method_dict(self) -> dict[str, Any]:
        """Return the settings that can change an answer."""
        data = self.to_dict()
        return {f.name: data[f.name] for f in fields(self) if not _is_execution(f)}

    def fingerprint(self) -> str:
        """Return a digest of the answer-changing settings."""
        return stable_hash(json.dumps(self.method_dict(), sort_keys=True))[:16]

    def replace(self, **changes: Any) -> RunConfig:
        """Return a copy with some settings changed."""
        return dataclasses.replace(self, **changes)


def default_model(provider: str) -> str:
    """Return the model a provider uses when none is named."""
    try:
        return DEFAULT_MODELS[provider]
    except KeyError:
        raise ConfigError(
            f"provider {provider!r} has no default model; set --model"
        ) from None


def resolve_config(*layers: Mapping[str, Any] | None, demo: bool = False) -> RunConfig:
    """Merge settings layers over the defaults, later layers winning.

    Args:
        layers: Mappings of setting names to values (a config file, the command
            line); None values and None layers are skipped.
        demo: Start from the demo preset instead of the reference defaults.

    Raises:
        ConfigError: A setting is unknown or has a bad value.
    """
    merged: dict[str, Any] = dict(DEMO) if demo else {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is not None:
                merged[key.replace("-", "_")] = value
    known = {f.name: f for f in fields(RunConfig)}
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    for key in ("classes", "baselines"):
        if isinstance(merged.get(key), str):
            merged[key] = tuple(s.strip() for s in merged[key].split(",") if s.strip())
        elif merged.get(key) is not None:
            merged[key] = tuple(merged[key])
    if merged.get("model") is None:
        # The model is stored by name, so a later change of default cannot change
        # what a stored configuration means.
        merged["model"] = default_model(merged.get("provider", "emulator"))
    try:
        return RunConfig(**merged)
    except TypeError as error:
        raise ConfigError(str(error)) from error


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read settings from a TOML or JSON file; nested tables are flattened.

    Raises:
        ConfigError: The file is missing or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the config file {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings")
    return _flatten(data)


def config_diff(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Return one line per answer-changing setting that differs."""
    return [
        f"{key}: {stored.get(key)!r} -> {current.get(key)!r}"
        for key in sorted(set(stored) | set(current))
        if stored.get(key) != current.get(key)
    ]


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value))
        else:
            flat[key] = value
    return flat


def _is_execution(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("execution"))


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
}


_KIND_NAMES = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
}


def _check_types(config: RunConfig) -> None:
    """Refuse a setting of the wrong kind (``rounds = "one"``) by name."""
    for item in fields(config):
        annotation = str(item.type)
        optional = annotation.endswith(" | None")
        base = annotation.removesuffix(" | None")
        value = getattr(config, item.name)
        if value is None and optional:
            continue
        accepted = _TYPES.get(base)
        if accepted is None:
            continue
        # bool is an int to Python, but never a count or a rate to us.
        wrong_bool = isinstance(value, bool) and bool not in accepted
        if wrong_bool or not isinstance(value, accepted):
            raise ConfigError(f"{item.name} must be {_KIND_NAMES[base]}, not {value!r}")


def _validate(config: RunConfig) -> None:
    _check_types(config)
    positive = (
        "n_train",
        "n_test",
        "beam_size",
        "minibatch_size",
        "errors_per_gradient",
        "gradients_per_error",
        "steps_per_gradient",
        "max_expansion_factor",
        "n_compare",
        "samples_per_eval",
        "eval_rounds",
        "eval_prompts_per_round",
        "describe_max_tokens",
        "compare_max_tokens",
        "critic_max_tokens",
        "classify_max_tokens",
        "votes",
        "spo_samples",
        "concurrency",
        "synthetic_per_species",
    )
    for name in positive:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")
    for name in ("rounds", "n_gradients", "mc_samples_per_step", "context_images"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must not be negative")
    if config.evaluator not in EVALUATORS:
        raise ConfigError(
            f"evaluator must be one of {EVALUATORS}, not {config.evaluator!r}"
        )
    unknown = sorted(set(config.baselines) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baselines {unknown}; choose from {BASELINES}")
    if config.dataset and config.family:
        raise ConfigError("give a dataset or a synthetic family, not both")
    if not config.dataset:
        ignored = [
            name for name in ("task", "classes", "noun") if getattr(config, name)
        ]
        if ignored:
            raise ConfigError(
                f"{', '.join(ignored)} apply only to a dataset (--dataset); a "
                "synthetic family has its own classes and noun"
            )
    if config.budget_usd is not None and config.budget_usd < 0:
        raise ConfigError("budget_usd must not be negative")
