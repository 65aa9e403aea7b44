"""How many calls a run will make, and what they may cost, before making any.

The count follows the method's structure and is an upper bound: it assumes every
parent yields ``max_expansion_factor`` new children and that no two candidates
coincide. The cost uses typical token counts per kind of call at list prices.
"""

from __future__ import annotations

from collections import Counter

from autosep.config import RunConfig
from autosep.costs import cost_usd
from autosep.tasks import Task
from providers.base import Usage
from providers.image_tokens import (
    anthropic_image_tokens,
    gemini_image_tokens,
    openai_image_tokens,
)

__all__ = ["estimate_calls", "estimate_cost"]

# Typical (text input tokens, images, output tokens) of one call of each phase;
# ``None`` images means errors_per_gradient images.
_TYPICAL: dict[str, tuple[int, int | None, int]] = {
    "describe": (120, 1, 200),
    "compare": (500, 1, 2),
    "criticise": (1500, None, 300),
    "rewrite": (1700, None, 250),
    "paraphrase": (150, 0, 80),
    "classify": (350, 1, 2),
    "baseline": (200, 1, 2),
    # The baselines that learn a prompt: mostly describe and classify calls.
    "pseudo_random": (250, 1, 100),
    "pseudo_majority": (250, 1, 100),
    "spo": (300, 1, 120),
}


def estimate_calls(config: RunConfig, task: Task) -> Counter[str]:
    """Return an upper estimate of the calls per phase of a whole run."""
    t = len(task.test)
    calls: Counter[str] = Counter()
    calls.update(_baselines(config, task))
    calls["describe"] += t
    calls["classify"] += t
    calls.update(_search(config, task, "compare", config.n_compare, config.test_eval))
    return calls


def _search(
    config: RunConfig, task: Task, scoring: str, per_image: int, test_eval: bool
) -> Counter[str]:
    """Count the calls of the search's rounds, ``per_image`` scoring calls an image.

    The method compares each image with ``n_compare`` others (and so also describes
    them); the pseudo-label baselines classify each image once.
    """
    n, t = len(task.train), len(task.test)
    budget = (
        config.samples_per_eval * config.eval_rounds * config.eval_prompts_per_round
    )
    scored = min(n, budget)
    described = min(n, scored * (1 + per_image)) if scoring == "compare" else scored
    calls: Counter[str] = Counter()
    for round_index in range(1, config.rounds + 1):
        parents = 1 if round_index == 1 else config.beam_size
        if round_index == 1:
            calls["describe"] += n
            calls[scoring] += scored * per_image
        reasons = config.n_gradients * config.gradients_per_error
        sections = reasons * config.steps_per_gradient
        children = min(
            config.max_expansion_factor,
            sections * (1 + config.mc_samples_per_step) + config.mc_samples_per_step,
        )
        calls["criticise"] += parents * config.n_gradients
        calls["rewrite"] += parents * reasons
        calls["paraphrase"] += parents * (sections + 1) * config.mc_samples_per_step
        calls["describe"] += parents * children * described
        calls[scoring] += parents * children * scored * per_image
        if test_eval:
            new = min(config.beam_size, parents * children)
            calls["describe"] += new * t
            calls["classify"] += new * t
    return calls


def _baselines(config: RunConfig, task: Task) -> Counter[str]:
    """Count the baselines' calls; those that learn a prompt count under their name."""
    n, t = len(task.train), len(task.test)
    calls: Counter[str] = Counter()
    for name in config.baselines:
        if name == "majority_vote":
            calls["baseline"] += config.votes * t
        elif name in ("pseudo_random", "pseudo_majority"):
            votes = config.votes * n if name == "pseudo_majority" else 0
            search = _search(config, task, "classify", 1, test_eval=False)
            calls[name] += votes + sum(search.values()) + 2 * t
        elif name == "spo":
            samples = min(config.spo_samples, n)
            calls[name] += samples + config.rounds * (1 + 2 * samples) + 2 * t
        elif name != "zero_shot_described":
            calls["baseline"] += t
    return calls


def estimate_cost(config: RunConfig, calls: Counter[str]) -> float:
    """Return the list-price cost of calls per phase with typical token counts."""
    total = 0.0
    for phase, count in calls.items():
        text, images, output = _TYPICAL.get(phase, (300, 1, 100))
        images = config.errors_per_gradient if images is None else images
        critic = phase in ("criticise", "rewrite", "paraphrase")
        provider, model = (
            config.critic if critic else (config.provider, config.main_model)
        )
        per_image = _image_tokens(provider, model)
        usage = Usage(input_tokens=text + images * per_image, output_tokens=output)
        total += count * cost_usd({model: usage})
    return total


def _image_tokens(provider: str, model: str, side: int = 512) -> int:
    if provider == "gemini":
        return gemini_image_tokens(model, side, side)
    if provider == "anthropic":
        return anthropic_image_tokens(model, side, side)
    return openai_image_tokens(model, side, side)
