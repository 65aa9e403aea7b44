"""Label-free baselines, on the same calls and the same cache as the method.

Implemented: vanilla zero-shot, zero-shot with the initial prompt's descriptions,
majority vote, few-shot with random labels, multiple images, and k-means context.
Not implemented: optimisation with pseudo-labels, and SPO.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
from PIL import Image

from autosep.calls import CallMaker
from autosep.classify import (
    FAILED,
    UNPARSED,
    Metrics,
    classify_with_prompt,
    labels,
    metrics,
    parse_answers,
)
from autosep.config import RunConfig
from autosep.prompts import initial_prompt
from autosep.rng import generator
from autosep.scoring import Scorer

__all__ = ["majority", "run_baseline", "colour_histogram", "kmeans"]

logger = logging.getLogger(__name__)


async def run_baseline(
    name: str, scorer: Scorer, calls: CallMaker, config: RunConfig
) -> Metrics:
    """Run one baseline by name on the task's test set."""
    task = calls.task
    if name == "zero_shot_described":
        prompt = config.initial_prompt or initial_prompt(task.noun)
        return await classify_with_prompt(prompt, scorer, calls, task)
    if name == "majority_vote":
        return await _majority_vote(scorer, calls, config)
    if name == "zero_shot":
        requests = [calls.classify(image, None) for image, _ in task.test]
    elif name == "few_shot_random":
        requests = _few_shot_requests(calls, config)
    elif name == "multi_image":
        requests = _multi_image_requests(calls, config)
    elif name == "kmeans":
        requests = _kmeans_requests(calls, config)
    else:
        raise ValueError(f"unknown baseline {name!r}")
    answers = await scorer.session.texts(requests, "baseline")
    return metrics(
        labels(task), parse_answers(answers, task.classes), len(task.classes)
    )


async def _majority_vote(
    scorer: Scorer, calls: CallMaker, config: RunConfig
) -> Metrics:
    task = calls.task
    requests = [
        calls.classify(image, None, temperature=config.vote_temperature, sample=s)
        for image, _ in task.test
        for s in range(config.votes)
    ]
    votes = parse_answers(
        await scorer.session.texts(requests, "baseline"), task.classes
    )
    predictions = [
        majority(votes[i : i + config.votes])
        for i in range(0, len(votes), config.votes)
    ]
    return metrics(labels(task), predictions, len(task.classes))


def majority(votes: Sequence[int]) -> int:
    """Return the most common parsed vote; ties go to the earliest vote.

    >>> majority([2, 1, 1, UNPARSED, 2]), majority([UNPARSED, FAILED])
    (2, -1)
    >>> majority([FAILED])
    -2
    """
    parsed = [v for v in votes if v >= 0]
    if not parsed:
        return UNPARSED if UNPARSED in votes else FAILED
    counts = Counter(parsed)
    best = max(counts.values())
    return next(v for v in parsed if counts[v] == best)


def _few_shot_requests(calls: CallMaker, config: RunConfig) -> list:
    task = calls.task
    requests = []
    for image, _ in task.test:
        rng = generator(config.seed, "few-shot", task.relative(image))
        shots = _draw(task.train, config.context_images, rng)
        names = [task.classes[int(rng.integers(len(task.classes)))] for _ in shots]
        context = list(zip(shots, names, strict=True))
        requests.append(calls.classify(image, None, context=context))
    return requests


def _multi_image_requests(calls: CallMaker, config: RunConfig) -> list:
    task = calls.task
    requests = []
    for image, _ in task.test:
        rng = generator(config.seed, "multi-image", task.relative(image))
        shots = _draw(task.train, config.context_images, rng)
        requests.append(calls.classify(image, None, context=[(s, None) for s in shots]))
    return requests


def _kmeans_requests(calls: CallMaker, config: RunConfig) -> list:
    task = calls.task
    train = np.stack([colour_histogram(p) for p in task.train])
    centres, assignment = kmeans(train, len(task.classes), config.seed)
    requests = []
    for image, _ in task.test:
        cluster = int(np.argmin(((centres - colour_histogram(image)) ** 2).sum(axis=1)))
        members = np.flatnonzero(assignment == cluster)
        # The members nearest the centre stand for the cluster.
        distances = ((train[members] - centres[cluster]) ** 2).sum(axis=1)
        nearest = members[np.argsort(distances, kind="stable")][: config.context_images]
        context = [(task.train[int(i)], None) for i in nearest]
        requests.append(calls.classify(image, None, context=context))
    return requests


def colour_histogram(path: str, bins: int = 4) -> np.ndarray:
    """Return a normalised joint RGB histogram of an image (``bins``³ values)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.int64)
    quantised = pixels * bins // 256
    codes = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    counts = np.bincount(codes.ravel(), minlength=bins**3).astype(float)
    return counts / counts.sum()


def kmeans(
    points: np.ndarray, k: int, seed: int, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster points with Lloyd's algorithm from a seeded k-means++ start.

    Returns:
        The centres (k x d) and each point's cluster index.
    """
    rng = generator(seed, "kmeans")
    centres = [points[int(rng.integers(len(points)))]]
    for _ in range(1, min(k, len(points))):
        distance = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        total = distance.sum()
        weights = (
            distance / total if total > 0 else np.full(len(points), 1 / len(points))
        )
        centres.append(points[int(rng.choice(len(points), p=weights))])
    centre_array = np.array(centres)
    assignment = np.zeros(len(points), dtype=int)
    for _ in range(iterations):
        distances = ((points[:, None, :] - centre_array[None]) ** 2).sum(axis=2)
        new = distances.argmin(axis=1)
        if _ and np.array_equal(new, assignment):
            break
        assignment = new
        for c in range(len(centre_array)):
            if np.any(assignment == c):
                centre_array[c] = points[assignment == c].mean(axis=0)
    return centre_array, assignment


def _draw(pool: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    picks = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    return [pool[int(i)] for i in picks]
