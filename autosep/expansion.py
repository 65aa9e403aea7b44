"""Expansion: new candidate prompts from a parent's mistakes.

For every parent in the beam: compare on a minibatch and collect the errors;
criticise samples of them ("gradients"); rewrite the task section once per reason;
paraphrase the new sections and the original; put each new section in place of the
parent's and keep at most ``max_expansion_factor`` children. Each stage is one batch
over all parents, so the engine sees as many calls at once as the method allows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from autosep.calls import CallMaker, Mistake
from autosep.config import RunConfig
from autosep.parsing import parse_tagged
from autosep.prompts import replace_task_section, task_section
from autosep.rng import generator
from autosep.scoring import Scorer, prompt_id

__all__ = ["Expansion", "expand"]

_OUTPUT_PREFIX = re.compile(r"^\s*(?:output|variation|new instruction)\s*:\s*", re.I)


@dataclass
class Expansion:
    """What expanding one parent produced, for the report.

    Attributes:
        parent: The parent prompt.
        minibatch: Images compared.
        errors: Comparisons the parent got wrong on them.
        reasons: Parsed reasons from the criticise calls.
        sections: New task sections from the rewrite calls.
        paraphrases: Paraphrased sections.
        children: The new prompts kept.
        unparsed: Criticise or rewrite answers with no ``<START>...<END>`` text.
    """

    parent: str
    minibatch: int = 0
    errors: int = 0
    reasons: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    paraphrases: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    unparsed: int = 0


@dataclass
class _Gradient:
    expansion: Expansion
    errors: list[Mistake]
    reasons: list[str] = field(default_factory=list)


async def expand(
    parents: Sequence[str],
    scorer: Scorer,
    calls: CallMaker,
    config: RunConfig,
    round_index: int,
) -> list[Expansion]:
    """Expand every parent; returns one :class:`Expansion` per parent, in order."""
    expansions = [Expansion(parent) for parent in parents]
    errors = await _find_errors(expansions, scorer, config, round_index)
    gradients = await _criticise(expansions, errors, scorer, calls, config, round_index)
    await _rewrite(gradients, scorer, calls, config)
    await _paraphrase(expansions, scorer, calls, config)
    for expansion in expansions:
        await _choose_children(
            expansion, parents, errors[expansion.parent], scorer, config, round_index
        )
    return expansions


def _minibatch(
    pool: Sequence[str], size: int, seed: int, round_index: int, parent: str
) -> list[str]:
    if size >= len(pool):
        return list(pool)
    rng = generator(seed, "minibatch", round_index, prompt_id(parent))
    return [pool[i] for i in sorted(rng.choice(len(pool), size=size, replace=False))]


async def _find_errors(
    expansions: Sequence[Expansion], scorer: Scorer, config: RunConfig, round_index: int
) -> dict[str, list[Mistake]]:
    batches = {
        e.parent: _minibatch(
            scorer.pool, config.minibatch_size, config.seed, round_index, e.parent
        )
        for e in expansions
    }
    await scorer.score(
        (parent, image) for parent, batch in batches.items() for image in batch
    )
    errors = {parent: scorer.errors(parent, batch) for parent, batch in batches.items()}
    for expansion in expansions:
        expansion.minibatch = len(batches[expansion.parent])
        expansion.errors = len(errors[expansion.parent])
    return errors


async def _criticise(
    expansions: Sequence[Expansion],
    errors: dict[str, list[Mistake]],
    scorer: Scorer,
    calls: CallMaker,
    config: RunConfig,
    round_index: int,
) -> list[_Gradient]:
    gradients = []
    for expansion in expansions:
        found = errors[expansion.parent]
        if not found:
            continue
        for g in range(config.n_gradients):
            rng = generator(
                config.seed, "errors", round_index, prompt_id(expansion.parent), g
            )
            size = min(config.errors_per_gradient, len(found))
            picks = sorted(rng.choice(len(found), size=size, replace=False))
            gradients.append(_Gradient(expansion, [found[i] for i in picks]))
    requests = [
        calls.criticise(task_section(g.expansion.parent), g.errors) for g in gradients
    ]
    answers = await scorer.session.texts(requests, "criticise")
    for gradient, answer in zip(gradients, answers, strict=True):
        if answer is None:
            continue
        reasons = parse_tagged(answer)[: config.gradients_per_error]
        gradient.expansion.unparsed += not reasons
        gradient.reasons = reasons
        gradient.expansion.reasons.extend(reasons)
    return gradients


async def _rewrite(
    gradients: Sequence[_Gradient], scorer: Scorer, calls: CallMaker, config: RunConfig
) -> None:
    plans = [(g, reason) for g in gradients for reason in g.reasons]
    requests = [
        calls.rewrite(task_section(g.expansion.parent), g.errors, reason)
        for g, reason in plans
    ]
    answers = await scorer.session.texts(requests, "rewrite")
    for (gradient, _), answer in zip(plans, answers, strict=True):
        if answer is None:
            continue
        sections = parse_tagged(answer)[: config.steps_per_gradient]
        gradient.expansion.unparsed += not sections
        gradient.expansion.sections.extend(sections)


async def _paraphrase(
    expansions: Sequence[Expansion], scorer: Scorer, calls: CallMaker, config: RunConfig
) -> None:
    plans = [
        (expansion, section, sample)
        for expansion in expansions
        for section in [*expansion.sections, task_section(expansion.parent)]
        for sample in range(config.mc_samples_per_step)
    ]
    requests = [calls.paraphrase(section, sample) for _, section, sample in plans]
    answers = await scorer.session.texts(requests, "paraphrase")
    for (expansion, _, _), answer in zip(plans, answers, strict=True):
        text = _clean_paraphrase(answer or "")
        if text:
            expansion.paraphrases.append(text)


def _clean_paraphrase(answer: str) -> str:
    tagged = parse_tagged(answer)
    text = tagged[0] if tagged else answer
    return _OUTPUT_PREFIX.sub("", text.strip()).strip().strip('"').strip()


async def _choose_children(
    expansion: Expansion,
    beam: Sequence[str],
    errors: Sequence[Mistake],
    scorer: Scorer,
    config: RunConfig,
    round_index: int,
) -> None:
    existing = set(beam)
    children = [
        child
        for child in dict.fromkeys(
            replace_task_section(expansion.parent, section)
            for section in [*expansion.sections, *expansion.paraphrases]
        )
        if child not in existing
    ]
    limit = config.max_expansion_factor
    if len(children) > limit and config.reject_on_errors:
        children = await _best_on_errors(children, errors, scorer, limit)
    elif len(children) > limit:
        rng = generator(
            config.seed, "expansion-select", round_index, prompt_id(expansion.parent)
        )
        children = [
            children[i]
            for i in sorted(rng.choice(len(children), size=limit, replace=False))
        ]
    expansion.children = children


async def _best_on_errors(
    children: Sequence[str], errors: Sequence[Mistake], scorer: Scorer, limit: int
) -> list[str]:
    """Keep the children that score best on the parent's error images."""
    images = list(dict.fromkeys(e.image for e in errors))
    await scorer.score((child, image) for child in children for image in images)
    scored = [
        (scorer.prompt_score(child, images).score or 0.0, -i, child)
        for i, child in enumerate(children)
    ]
    best = sorted(scored, reverse=True)[:limit]
    return [child for _, _, child in sorted(best, key=lambda s: -s[1])]
