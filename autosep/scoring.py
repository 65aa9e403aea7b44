"""Label-free scoring: can a prompt's description tell its image apart from others?

For an image i and a description prompt p, the model is shown image i with p's
description of i and p's description of another image j, in a random order, and asked
which text describes the image. A prompt whose descriptions tell images apart is
right often. The negatives j are drawn once per image and run seed, and the order once
per (prompt, image, negative), so a score always means the same comparisons.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from autosep.calls import CallMaker, ErrorExample, Mistake
from autosep.parsing import parse_compare
from autosep.rng import generator, stable_hash
from autosep.session import Session
from engine.request import Request

__all__ = ["ImageScore", "PromptScore", "Scorer", "prompt_id"]


def prompt_id(prompt: str) -> str:
    """Return a short stable id for a prompt.

    >>> len(prompt_id("Describe the bird."))
    12
    """
    return stable_hash("prompt", prompt)[:12]


@dataclass(frozen=True, slots=True)
class ImageScore:
    """How one prompt fared on one image's comparisons.

    Attributes:
        correct: Comparisons that picked the image's own description.
        valid: Comparisons with an answer (failed calls are not counted).
        unparsed: Answers that named neither position, counted as not correct.
        failed: Comparisons with no answer (a failed call, or a failed description).
        errors: What went wrong: comparisons that preferred the other description
            (or, for pseudo-label scoring, classifications that missed the label).
    """

    correct: int
    valid: int
    unparsed: int
    failed: int
    errors: tuple[Mistake, ...]


@dataclass(frozen=True, slots=True)
class PromptScore:
    """A prompt's score over some images: mean fraction correct, in [0, 1]."""

    score: float | None
    images: int
    unparsed: int
    failed: int


class Scorer:
    """Describe images and score prompts, never scoring a (prompt, image) twice.

    Args:
        session: Where requests go.
        calls: Builds the requests.
        pool: The images scoring draws from (negatives come from here too).
        seed: The run seed.
        n_compare: Negatives per image.
    """

    def __init__(
        self,
        session: Session,
        calls: CallMaker,
        pool: Sequence[str],
        *,
        seed: int,
        n_compare: int,
    ) -> None:
        self.session = session
        self.calls = calls
        self.pool = tuple(pool)
        self.seed = seed
        self.n_compare = min(n_compare, len(self.pool) - 1)
        self._negatives: dict[str, tuple[str, ...]] = {}
        self._descriptions: dict[tuple[str, str], str | None] = {}
        self._scores: dict[tuple[str, str], ImageScore] = {}

    def negatives(self, image: str) -> tuple[str, ...]:
        """Return the images whose descriptions ``image``'s own is compared with."""
        if image not in self._negatives:
            others = [p for p in self.pool if p != image]
            rng = generator(self.seed, "negatives", self._name(image))
            picks = rng.choice(len(others), size=self.n_compare, replace=False)
            self._negatives[image] = tuple(others[i] for i in sorted(picks))
        return self._negatives[image]

    async def describe(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Make sure every (prompt, image) pair has its description."""
        wanted = [p for p in dict.fromkeys(pairs) if p not in self._descriptions]
        requests = [self.calls.describe(prompt, image) for prompt, image in wanted]
        texts = await self.session.texts(requests, "describe")
        self._descriptions.update(zip(wanted, texts, strict=True))

    def description(self, prompt: str, image: str) -> str | None:
        """Return a description already made, or None if its call failed."""
        return self._descriptions[(prompt, image)]

    async def score(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Score every (prompt, image) pair not scored yet: describe, then compare."""
        wanted = [p for p in dict.fromkeys(pairs) if p not in self._scores]
        if not wanted:
            return
        await self.describe(
            (prompt, other)
            for prompt, image in wanted
            for other in (image, *self.negatives(image))
        )
        plans = [self._plan(prompt, image) for prompt, image in wanted]
        requests = [entry[1] for plan in plans for entry in plan if entry is not None]
        answers = iter(await self.session.texts(requests, "compare"))
        for (prompt, image), plan in zip(wanted, plans, strict=True):
            self._scores[(prompt, image)] = _tally(plan, answers, self.n_compare)

    def image_score(self, prompt: str, image: str) -> ImageScore:
        """Return a score already computed by :meth:`score`."""
        return self._scores[(prompt, image)]

    def prompt_score(self, prompt: str, images: Iterable[str]) -> PromptScore:
        """Return the mean, over images with an answer, of the fraction correct."""
        fractions: list[float] = []
        unparsed = failed = 0
        for image in images:
            result = self._scores[(prompt, image)]
            unparsed += result.unparsed
            failed += result.failed
            if result.valid:
                fractions.append(result.correct / result.valid)
        score = sum(fractions) / len(fractions) if fractions else None
        return PromptScore(score, len(fractions), unparsed, failed)

    def errors(self, prompt: str, images: Iterable[str]) -> list[Mistake]:
        """Return what a prompt got wrong on these (scored) images."""
        return [e for image in images for e in self._scores[(prompt, image)].errors]

    def _plan(
        self, prompt: str, image: str
    ) -> list[tuple[ErrorExample, Request, bool] | None]:
        own = self.description(prompt, image)
        plan: list[tuple[ErrorExample, Request, bool] | None] = []
        for negative in self.negatives(image):
            other = self.description(prompt, negative)
            if own is None or other is None:
                plan.append(None)
                continue
            own_first = self._own_first(prompt, image, negative)
            first, second = (own, other) if own_first else (other, own)
            example = ErrorExample(image, negative, own, other)
            plan.append((example, self.calls.compare(image, first, second), own_first))
        return plan

    def _own_first(self, prompt: str, image: str, negative: str) -> bool:
        rng = generator(
            self.seed,
            "order",
            prompt_id(prompt),
            self._name(image),
            self._name(negative),
        )
        return bool(rng.random() < 0.5)

    def _name(self, path: str) -> str:
        return self.calls.task.relative(path)


def _tally(
    plan: Sequence[tuple[ErrorExample, Request, bool] | None],
    answers: Iterable[str | None],
    n_compare: int,
) -> ImageScore:
    # The plan's real entries consumed answers in order; skipped ones did not.
    correct = valid = unparsed = 0
    errors: list[ErrorExample] = []
    for entry in plan:
        if entry is None:
            continue
        example, _, own_first = entry
        answer = next(iter(answers))
        if answer is None:
            continue
        valid += 1
        position = parse_compare(answer)
        if position is None:
            unparsed += 1
        elif position == (0 if own_first else 1):
            correct += 1
        else:
            errors.append(example)
    return ImageScore(correct, valid, unparsed, n_compare - valid, tuple(errors))
