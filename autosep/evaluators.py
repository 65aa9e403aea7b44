"""Evaluators: which (prompt, image) pairs to score, and how to rank the prompts.

``bf`` scores every candidate on the same sample. ``ucb``, ``sr`` (successive
rejects) and ``sh`` (successive halving) are the bandit evaluators of the ProTeGi
family: they spend a fixed budget of image scorings where it best separates the
candidates. Every arm walks the same image order, so arms are compared on the same
images, and pulls are drawn from the seed and the round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from autosep.config import RunConfig
from autosep.rng import generator
from autosep.scoring import PromptScore, Scorer

__all__ = ["Evaluation", "evaluate", "rank"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A candidate's score and its place in the ranking.

    ``survived`` is how many elimination phases the candidate lasted (bandit
    evaluators rank by it before the score); ``bf`` and ``ucb`` leave it at 0.
    """

    prompt: str
    score: PromptScore
    survived: int = 0


async def evaluate(
    candidates: Sequence[str], scorer: Scorer, config: RunConfig, round_index: int
) -> list[Evaluation]:
    """Score candidates with the configured evaluator; returns them in input order."""
    budget = (
        config.samples_per_eval * config.eval_rounds * config.eval_prompts_per_round
    )
    if config.evaluator == "bf":
        return await _brute_force(candidates, scorer, budget)
    order = _image_order(scorer, config.seed, round_index)
    if config.evaluator == "ucb":
        return await _ucb(candidates, scorer, order, config, round_index)
    if config.evaluator == "sr":
        return await _successive_rejects(candidates, scorer, order, budget)
    return await _successive_halving(candidates, scorer, order, budget)


def rank(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """Return evaluations best first; ties keep their input order."""
    return sorted(
        evaluations,
        key=lambda e: (
            -e.survived,
            -(e.score.score if e.score.score is not None else -1),
        ),
    )


def eval_sample(
    pool: Sequence[str], budget: int, seed: int, purpose: str = "eval-sample"
) -> list[str]:
    """Return the images ``bf`` scores every candidate on: all, up to the budget.

    ``purpose`` seeds the draw, so other fixed samples (SPO's) are drawn apart.
    """
    if len(pool) <= budget:
        return list(pool)
    picks = generator(seed, purpose).choice(len(pool), size=budget, replace=False)
    return [pool[i] for i in sorted(picks)]


async def _brute_force(
    candidates: Sequence[str], scorer: Scorer, budget: int
) -> list[Evaluation]:
    sample = eval_sample(scorer.pool, budget, scorer.seed)
    await scorer.score((p, image) for p in candidates for image in sample)
    return [Evaluation(p, scorer.prompt_score(p, sample)) for p in candidates]


def _image_order(scorer: Scorer, seed: int, round_index: int) -> list[str]:
    order = generator(seed, "bandit-order", round_index).permutation(len(scorer.pool))
    return [scorer.pool[i] for i in order]


class _Arms:
    """How far along the shared image order each candidate has been scored."""

    def __init__(self, candidates: Sequence[str], scorer: Scorer, order: list[str]):
        self.candidates = list(candidates)
        self.scorer = scorer
        self.order = order
        self.pulled = [0] * len(candidates)

    async def pull(self, arms: Sequence[int], count: int) -> None:
        await self.pull_to({arm: self.pulled[arm] + count for arm in arms})

    async def pull_to(self, targets: dict[int, int]) -> None:
        pairs = []
        for arm, target in targets.items():
            start = self.pulled[arm]
            end = max(start, min(target, len(self.order)))
            pairs += [(self.candidates[arm], image) for image in self.order[start:end]]
            self.pulled[arm] = end
        await self.scorer.score(pairs)

    def score(self, arm: int) -> PromptScore:
        images = self.order[: self.pulled[arm]]
        return self.scorer.prompt_score(self.candidates[arm], images)

    def mean(self, arm: int) -> float:
        value = self.score(arm).score
        return value if value is not None else 0.0


async def _ucb(
    candidates: Sequence[str],
    scorer: Scorer,
    order: list[str],
    config: RunConfig,
    round_index: int,
) -> list[Evaluation]:
    arms = _Arms(candidates, scorer, order)
    per_round = min(config.eval_prompts_per_round, len(candidates))
    for t in range(config.eval_rounds):
        chosen = _ucb_choice(arms, per_round, config.ucb_c, t)
        await arms.pull(chosen, config.samples_per_eval)
    return [Evaluation(p, arms.score(i)) for i, p in enumerate(candidates)]


def _ucb_choice(arms: _Arms, count: int, c: float, t: int) -> list[int]:
    total = sum(arms.pulled) + 1

    def bound(arm: int) -> float:
        pulls = arms.pulled[arm]
        if pulls == 0 or pulls >= len(arms.order):
            # Unpulled arms first; exhausted arms last (nothing left to learn).
            return math.inf if pulls == 0 else -math.inf
        return arms.mean(arm) + c * math.sqrt(math.log(total) / pulls)

    ranked = sorted(range(len(arms.candidates)), key=lambda a: -bound(a))
    return sorted(ranked[:count])


async def _successive_rejects(
    candidates: Sequence[str], scorer: Scorer, order: list[str], budget: int
) -> list[Evaluation]:
    k = len(candidates)
    arms = _Arms(candidates, scorer, order)
    alive = list(range(k))
    survived = [0] * k
    if k == 1:
        await arms.pull(alive, min(budget, len(order)))
    log_bar = 0.5 + sum(1 / i for i in range(2, k + 1))
    for phase in range(1, k):
        target = math.ceil((budget - k) / (log_bar * (k + 1 - phase)))
        target = max(1, min(target, len(order)))
        await arms.pull_to({arm: target for arm in alive})
        worst = min(alive, key=lambda a: (arms.mean(a), -a))
        alive.remove(worst)
        for arm in alive:
            survived[arm] = phase
    return [Evaluation(p, arms.score(i), survived[i]) for i, p in enumerate(candidates)]


async def _successive_halving(
    candidates: Sequence[str], scorer: Scorer, order: list[str], budget: int
) -> list[Evaluation]:
    k = len(candidates)
    arms = _Arms(candidates, scorer, order)
    alive = list(range(k))
    survived = [0] * k
    phases = max(1, math.ceil(math.log2(k)))
    for phase in range(1, phases + 1):
        share = max(1, budget // (len(alive) * phases))
        await arms.pull(alive, share)
        if len(alive) == 1:
            break
        ranked = sorted(alive, key=lambda a: (-arms.mean(a), a))
        alive = sorted(ranked[: math.ceil(len(alive) / 2)])
        for arm in alive:
            survived[arm] = phase
    return [Evaluation(p, arms.score(i), survived[i]) for i, p in enumerate(candidates)]
