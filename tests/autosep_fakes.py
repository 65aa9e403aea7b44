"""A scripted fake engine and small image trees for the AutoSEP tests."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from autosep.config import RunConfig, resolve_config
from autosep.datasets import load_folder
from autosep.tasks import Task, make_task
from engine.request import Failure, ImageRef, Request, Response, Result
from providers.base import FinishReason, Usage


def write_image(path: Path, seed: int, size: tuple[int, int] = (32, 24)) -> Path:
    """Write a small JPEG whose colour depends on ``seed``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256)
    Image.new("RGB", size, colour).save(path, "JPEG")
    return path


def images_of(request: Request) -> list[str]:
    """The image paths of a request, in order."""
    return [p.path for p in request.parts if isinstance(p, ImageRef)]


def text_of(request: Request) -> str:
    """The text parts of a request, joined."""
    return "\n".join(p for p in request.parts if isinstance(p, str))


def kind_of(request: Request) -> str:
    """Which of the method's calls a request is, by its prompt's cues."""
    text = text_of(request)
    if "Text 1:" in text:
        return "compare"
    if "Description 1:" in text:
        return "judge"
    if "Analyse what these descriptions" in text:
        return "optimise"
    if "Options:" in text:
        return "classify"
    if "variation of the following instruction" in text:
        return "paraphrase"
    if "improved prompts" in text:
        return "rewrite"
    if "reasons why the prompt" in text:
        return "criticise"
    return "describe"


def species_of(path: str) -> str:
    """The class folder of an image path (the fake model 'sees' it)."""
    return Path(path).parent.name


def scripted_answer(request: Request) -> str:
    """A plausible answer: describes by file name, compares and classifies well."""
    kind = kind_of(request)
    text = text_of(request)
    if kind == "describe":
        image = images_of(request)[0]
        detail = "bill" if "bill" in text else "colour"
        return f"A bird {Path(image).stem} of kind {species_of(image)} ({detail})."
    if kind == "compare":
        image = Path(images_of(request)[0]).stem
        first = re.search(r"Text 1: (.*)", text)
        # Mistakes on images whose name ends in 1, unless the descriptions speak of
        # the bill: errors to learn from, and a prompt that fixes them.
        right = "first" if first and f" {image} " in first.group(1) else "second"
        wrong = "second" if right == "first" else "first"
        return wrong if image.endswith("1") and "(colour)" in text else right
    if kind == "judge":
        # Prefers the description that speaks of the bill; the first on a tie.
        first = re.search(r"Description 1: (.*)", text)
        second = re.search(r"Description 2: (.*)", text)
        better = second and "(bill)" in second.group(1)
        return (
            "second"
            if better and not (first and "(bill)" in first.group(1))
            else "first"
        )
    if kind == "optimise":
        return "<START>Describe the bill of the bird in detail.<END>"
    if kind == "criticise":
        return "<START>The prompt does not ask about the bill.<END>"
    if kind == "rewrite":
        return "<START>Describe the bill of the bird in detail.<END>"
    if kind == "paraphrase":
        section = re.search(r"Input: (.*)", text)
        return "Output: In detail, " + (section.group(1) if section else "describe.")
    options = dict(re.findall(r"^([A-Z])\. (.+)$", text, re.MULTILINE))
    species = species_of(images_of(request)[-1])
    for letter, name in options.items():
        if name == species:
            return letter if "bill" in text else f"**{letter}**"
    return "not sure"


@dataclass
class FakeStats:
    """Just enough of the engine's phase statistics."""

    calls: int = 0
    cache_hits: int = 0
    sent: int = 0
    billed: dict[str, Usage] = field(default_factory=dict)

    def to_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "cache_hits": self.cache_hits, "sent": self.sent}


class FakeEngine:
    """Answers requests with a script, records every request, and caches answers.

    Args:
        answer: Returns the answer text (or a Failure) for a request.
        cache: Shared between fakes to stand for the disk cache across runs.
        usage: Tokens billed per sent call.
    """

    def __init__(
        self,
        answer: Callable[[Request], str | Failure] = scripted_answer,
        *,
        cache: dict[Request, str] | None = None,
        usage: Usage | None = None,
    ) -> None:
        self.answer = answer
        self.cache = {} if cache is None else cache
        self.usage = usage or Usage(1000, 10)
        self.sent: list[tuple[str, Request]] = []
        self.maps: list[tuple[str, int]] = []
        self._stats: dict[str, FakeStats] = {}

    async def map(
        self, requests: Sequence[Request], phase: str = "default"
    ) -> list[Result]:
        self.maps.append((phase, len(requests)))
        stats = self._stats.setdefault(phase, FakeStats())
        results: list[Result] = []
        for request in requests:
            stats.calls += 1
            if request in self.cache:
                stats.cache_hits += 1
                results.append(_response(self.cache[request], cached=True))
                continue
            self.sent.append((phase, request))
            stats.sent += 1
            stats.billed[request.model] = (
                stats.billed.get(request.model, Usage()) + self.usage
            )
            answer = self.answer(request)
            if isinstance(answer, Failure):
                results.append(answer)
                continue
            self.cache[request] = answer
            results.append(_response(answer, cached=False))
        return results

    async def count_cached(self, requests: Sequence[Request]) -> int:
        return sum(1 for r in requests if r in self.cache)

    def stats(self) -> dict[str, FakeStats]:
        return dict(self._stats)

    def sent_by_phase(self) -> Counter[str]:
        return Counter(phase for phase, _ in self.sent)


def _response(text: str, *, cached: bool) -> Response:
    return Response((text,), FinishReason.COMPLETE, Usage(10, 2), 0.0, cached)


def make_tree(root: Path, classes: Sequence[str], per_class: int) -> Path:
    """Write a folder-per-class dataset of distinct small JPEGs."""
    seed = 0
    for name in classes:
        for index in range(per_class):
            seed += 1
            write_image(root / name / f"{name.lower()}_{index:02d}.jpg", seed)
    return root


CLASSES = ("Alpha", "Beta", "Gamma")

# A run small enough to check call by call: 4 training and 3 test images a class.
SMALL_SETTINGS: dict[str, Any] = {
    "rounds": 2,
    "beam_size": 2,
    "n_train": 4,
    "n_test": 3,
    "minibatch_size": 6,
    "n_gradients": 2,
    "errors_per_gradient": 2,
    "max_expansion_factor": 3,
}


def small_task(root: Path) -> Task:
    """The task of a small folder-per-class dataset written under ``root``."""
    dataset = load_folder(make_tree(root / "data", CLASSES, 8), noun="bird")
    return make_task(dataset, n_train=4, n_test=3, seed=0)


def small_config(**changes: Any) -> RunConfig:
    """The small settings, with some changed."""
    return resolve_config({**SMALL_SETTINGS, **changes})
