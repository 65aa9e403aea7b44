"""Optimisation with pseudo-labels: the method's search, scored against labels that
are not the truth.

This is the baseline that asks whether AutoSEP's instance-level comparison is what
makes label-free learning work. The loop is the method's own (criticise, rewrite,
paraphrase, beam search); only the score differs: a prompt's score is the share of
training images whose classification, with the prompt's description, agrees with the
image's pseudo-label, and the errors shown to the critic are the disagreements.
Pseudo-labels are either drawn at random per image, or the majority of several
zero-shot answers at a temperature above zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from autosep.baselines import majority
from autosep.calls import CallMaker, LabelError
from autosep.classify import parse_answers
from autosep.config import RunConfig
from autosep.parsing import parse_letter
from autosep.rng import generator
from autosep.scoring import ImageScore, Scorer
from autosep.session import Session

__all__ = ["PSEUDO_LABELS", "LabelScorer", "pseudo_labels"]

# Baseline name -> the kind of pseudo-label it scores against.
PSEUDO_LABELS = {"pseudo_random": "random", "pseudo_majority": "majority"}


async def pseudo_labels(
    kind: str, session: Session, calls: CallMaker, config: RunConfig
) -> dict[str, int | None]:
    """Return a pseudo-label (a class index) for every training image.

    ``random`` draws a class per image from the run seed. ``majority`` asks the
    model ``votes`` times, zero-shot at ``vote_temperature``, and keeps the most
    common answer; an image with no parsed vote has no label (None) and is left
    out of every score.
    """
    task = calls.task
    if kind == "random":
        return {
            image: int(
                generator(config.seed, "pseudo-label", task.relative(image)).integers(
                    len(task.classes)
                )
            )
            for image in task.train
        }
    if kind != "majority":
        raise ValueError(f"unknown kind of pseudo-label {kind!r}")
    requests = [
        calls.classify(image, None, temperature=config.vote_temperature, sample=s)
        for image in task.train
        for s in range(config.votes)
    ]
    votes = parse_answers(await session.texts(requests, "classify"), task.classes)
    labels: dict[str, int | None] = {}
    for index, image in enumerate(task.train):
        winner = majority(votes[index * config.votes : (index + 1) * config.votes])
        labels[image] = winner if winner >= 0 else None
    return labels


class LabelScorer(Scorer):
    """Score prompts by classification against pseudo-labels.

    A (prompt, image) pair is scored by one classify call with the prompt's
    description of the image: correct when the answer is the image's pseudo-label.
    Descriptions are made and kept exactly as the method's scorer does.

    Args:
        session: Where requests go.
        calls: Builds the requests.
        pool: The training images.
        seed: The run seed.
        labels: Each image's pseudo-label, or None for an image that has none.
    """

    def __init__(
        self,
        session: Session,
        calls: CallMaker,
        pool: Sequence[str],
        *,
        seed: int,
        labels: Mapping[str, int | None],
    ) -> None:
        super().__init__(session, calls, pool, seed=seed, n_compare=1)
        self.labels = dict(labels)

    async def score(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Score every (prompt, image) pair not scored yet: describe, then classify."""
        wanted = [p for p in dict.fromkeys(pairs) if p not in self._scores]
        if not wanted:
            return
        await self.describe(wanted)
        asked = [
            (prompt, image)
            for prompt, image in wanted
            if self.labels.get(image) is not None
            and self.description(prompt, image) is not None
        ]
        requests = [
            self.calls.classify(image, self.description(prompt, image))
            for prompt, image in asked
        ]
        answers = dict(
            zip(asked, await self.session.texts(requests, "classify"), strict=True)
        )
        for prompt, image in wanted:
            self._scores[(prompt, image)] = self._tally(prompt, image, answers)

    def _tally(
        self, prompt: str, image: str, answers: Mapping[tuple[str, str], str | None]
    ) -> ImageScore:
        label = self.labels.get(image)
        if label is None:
            # No pseudo-label: the image says nothing about any prompt.
            return ImageScore(0, 0, 0, 0, ())
        answer = answers.get((prompt, image))
        if answer is None:
            # The description or the classification failed.
            return ImageScore(0, 0, 0, 1, ())
        classes = self.calls.task.classes
        predicted = parse_letter(answer, classes)
        if predicted == label:
            return ImageScore(1, 1, 0, 0, ())
        description = self.description(prompt, image)
        assert description is not None
        error = LabelError(
            image,
            description,
            classes[label],
            None if predicted is None else classes[predicted],
        )
        return ImageScore(0, 1, int(predicted is None), 0, (error,))
