"""Classification of test images and its metrics.

A failed call is not an answer: it is counted apart and left out of accuracy. An
answer that names no option, or two, is an answer, just not a right one: it counts
against accuracy and is reported as unparsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autosep.calls import CallMaker
from autosep.parsing import parse_letter
from autosep.scoring import Scorer
from autosep.tasks import Task

__all__ = [
    "FAILED",
    "UNPARSED",
    "Metrics",
    "classify_with_prompt",
    "classify_with_prompts",
    "metrics",
    "parse_answers",
]

# Predictions are class indices, or one of these.
UNPARSED = -1
FAILED = -2


@dataclass(frozen=True)
class Metrics:
    """How a set of predictions scores against the labels.

    Attributes:
        n: Test images.
        answered: Images with an answer (``n`` less failed calls).
        correct: Right answers.
        accuracy: ``correct / answered`` (None when nothing was answered).
        macro_f1: Mean F1 over classes, unparsed answers counted as misses.
        unparsed: Answers naming no option or several.
        failed: Calls with no answer.
        confusion: Rows are true classes; columns the predicted classes, then
            ``unparsed``.
    """

    n: int
    answered: int
    correct: int
    accuracy: float | None
    macro_f1: float | None
    unparsed: int
    failed: int
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as JSON-ready data, rates rounded to 6 places."""
        return {
            "n": self.n,
            "answered": self.answered,
            "correct": self.correct,
            "accuracy": _round(self.accuracy),
            "macro_f1": _round(self.macro_f1),
            "unparsed": self.unparsed,
            "failed": self.failed,
            "confusion": self.confusion,
        }


def metrics(labels: Sequence[int], predictions: Sequence[int], k: int) -> Metrics:
    """Compute accuracy, macro-F1 and the confusion matrix.

    >>> m = metrics([0, 1, 1, 2], [0, 1, UNPARSED, FAILED], 3)
    >>> m.accuracy, m.unparsed, m.failed
    (0.6666666666666666, 1, 1)
    """
    confusion = [[0] * (k + 1) for _ in range(k)]
    failed = 0
    for label, predicted in zip(labels, predictions, strict=True):
        if predicted == FAILED:
            failed += 1
            continue
        confusion[label][k if predicted == UNPARSED else predicted] += 1
    answered = len(labels) - failed
    correct = sum(confusion[i][i] for i in range(k))
    accuracy = correct / answered if answered else None
    return Metrics(
        n=len(labels),
        answered=answered,
        correct=correct,
        accuracy=accuracy,
        macro_f1=_macro_f1(confusion, k) if answered else None,
        unparsed=sum(row[k] for row in confusion),
        failed=failed,
        confusion=confusion,
    )


def parse_answers(answers: Sequence[str | None], classes: Sequence[str]) -> list[int]:
    """Turn answer texts (None for a failed call) into predictions."""
    predictions = []
    for answer in answers:
        if answer is None:
            predictions.append(FAILED)
            continue
        index = parse_letter(answer, classes)
        predictions.append(UNPARSED if index is None else index)
    return predictions


async def classify_with_prompt(
    prompt: str, scorer: Scorer, calls: CallMaker, task: Task
) -> Metrics:
    """Describe every test image with a prompt, classify it, and score the answers."""
    [result] = await classify_with_prompts([prompt], scorer, calls, task)
    return result


async def classify_with_prompts(
    prompts: Sequence[str], scorer: Scorer, calls: CallMaker, task: Task
) -> list[Metrics]:
    """Test several prompts in one describe batch and one classify batch.

    One batch each keeps the concurrency busy, and the calls made (and their
    number) do not depend on how concurrent batches happen to interleave.
    """
    images = [path for path, _ in task.test]
    await scorer.describe((prompt, image) for prompt in prompts for image in images)
    descriptions = [
        [scorer.description(prompt, image) for image in images] for prompt in prompts
    ]
    requests = [
        calls.classify(image, text)
        for texts in descriptions
        for image, text in zip(images, texts, strict=True)
        if text is not None
    ]
    answers = iter(await scorer.session.texts(requests, "classify"))
    results = []
    for texts in descriptions:
        # A test image whose description failed has no classification either.
        replies = [next(answers) if text is not None else None for text in texts]
        results.append(
            metrics(
                labels(task), parse_answers(replies, task.classes), len(task.classes)
            )
        )
    return results


def labels(task: Task) -> list[int]:
    """Return the test labels as class indices."""
    return [task.classes.index(label) for _, label in task.test]


def _macro_f1(confusion: list[list[int]], k: int) -> float:
    scores = []
    for c in range(k):
        true_positive = confusion[c][c]
        predicted = sum(confusion[r][c] for r in range(k))
        actual = sum(confusion[c])
        denominator = predicted + actual
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return sum(scores) / k


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
