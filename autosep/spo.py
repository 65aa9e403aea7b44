"""SPO, self-supervised prompt optimisation: one candidate a round, judged in pairs.

Each round the optimiser (the critic model) is shown the current best prompt and its
descriptions of a few training images, with the images, and writes one new prompt.
The main model then judges, image by image, which of the two prompts' descriptions
is more accurate and more useful for telling the classes apart, with the two shown
in an order drawn per image. The new prompt replaces the best when it wins a strict
majority of the judgements that were answered. As in SPO, the sample is small and
drawn once for the whole run. No label and no comparison between images is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from autosep.calls import CallMaker
from autosep.config import RunConfig
from autosep.evaluators import eval_sample
from autosep.parsing import parse_compare, parse_tagged
from autosep.prompts import initial_prompt, replace_task_section, task_section
from autosep.rng import generator
from autosep.scoring import Scorer, prompt_id

__all__ = ["SpoRound", "rounds_record", "run_spo", "spo_sample"]


@dataclass
class SpoRound:
    """What one round of SPO did, for the report.

    Attributes:
        round: The round, from 1.
        candidate: The id of the prompt proposed, or None when no proposal could
            be read (or it repeated the best prompt).
        wins: Judgements that preferred the candidate's description.
        judged: Judgements with an answer that named one description.
        accepted: Whether the candidate became the best prompt.
    """

    round: int
    candidate: str | None = None
    wins: int = 0
    judged: int = 0
    accepted: bool = False


def spo_sample(pool: Sequence[str], size: int, seed: int) -> list[str]:
    """Return the training images SPO describes and judges on, for every round."""
    return eval_sample(pool, size, seed, purpose="spo-sample")


async def run_spo(
    scorer: Scorer, calls: CallMaker, config: RunConfig
) -> tuple[str, list[SpoRound]]:
    """Run ``config.rounds`` rounds of SPO; return the best prompt and the rounds."""
    task = calls.task
    best = config.initial_prompt or initial_prompt(task.noun)
    sample = spo_sample(task.train, config.spo_samples, config.seed)
    history: list[SpoRound] = []
    for round_index in range(1, config.rounds + 1):
        record = SpoRound(round_index)
        history.append(record)
        candidate = await _propose(best, sample, scorer, calls, round_index)
        if candidate is None:
            continue
        record.candidate = prompt_id(candidate)
        record.wins, record.judged = await _judge(
            best, candidate, sample, scorer, calls, config.seed, round_index
        )
        record.accepted = record.wins * 2 > record.judged
        if record.accepted:
            best = candidate
    return best, history


def rounds_record(history: list[SpoRound]) -> list[dict[str, Any]]:
    """Return the rounds as JSON-ready data."""
    return [asdict(r) for r in history]


async def _propose(
    best: str, sample: list[str], scorer: Scorer, calls: CallMaker, round_index: int
) -> str | None:
    await scorer.describe((best, image) for image in sample)
    examples = [
        (image, text)
        for image in sample
        if (text := scorer.description(best, image)) is not None
    ]
    if not examples:
        return None
    request = calls.optimise(task_section(best), examples, sample=round_index)
    [answer] = await scorer.session.texts([request], "optimise")
    sections = parse_tagged(answer or "")
    if not sections:
        return None
    candidate = replace_task_section(best, sections[0])
    return None if candidate == best else candidate


async def _judge(
    best: str,
    candidate: str,
    sample: list[str],
    scorer: Scorer,
    calls: CallMaker,
    seed: int,
    round_index: int,
) -> tuple[int, int]:
    await scorer.describe((candidate, image) for image in sample)
    plans = []
    for image in sample:
        incumbent = scorer.description(best, image)
        challenger = scorer.description(candidate, image)
        if incumbent is None or challenger is None:
            continue
        rng = generator(
            seed,
            "spo-order",
            round_index,
            prompt_id(candidate),
            calls.task.relative(image),
        )
        challenger_first = bool(rng.random() < 0.5)
        first, second = (
            (challenger, incumbent) if challenger_first else (incumbent, challenger)
        )
        plans.append((challenger_first, calls.judge(image, first, second)))
    answers = await scorer.session.texts([r for _, r in plans], "judge")
    wins = judged = 0
    for (challenger_first, _), answer in zip(plans, answers, strict=True):
        position = None if answer is None else parse_compare(answer)
        if position is None:
            continue
        judged += 1
        wins += position == (0 if challenger_first else 1)
    return wins, judged
