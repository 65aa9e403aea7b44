"""Check a dataset before any money is spent on it."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

from PIL import Image

from autosep.tasks import Dataset

__all__ = ["DatasetCheck", "check_dataset", "check_image"]


@dataclass
class DatasetCheck:
    """What :func:`check_dataset` found.

    Attributes:
        counts: Images per class and split (``train``, ``test``, ``unsplit``).
        unreadable: (path, reason) for every image that could not be decoded.
        problems: Plain-language problems that would stop or weaken a run.
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the dataset can be used as is."""
        return not self.problems


def check_image(path: str) -> str | None:
    """Return why an image cannot be used, or None if it decodes.

    The image is decoded in full, since ``verify`` alone misses truncated JPEGs.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                image.load()
    except FileNotFoundError:
        return "file not found"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as error:
        return f"{type(error).__name__}: {error}"
    except Image.DecompressionBombError as error:
        return f"too large: {error}"
    return None


def check_dataset(dataset: Dataset, *, n_train: int, n_test: int) -> DatasetCheck:
    """Count images per class and split, decode every image, and list problems.

    Args:
        dataset: The loaded dataset.
        n_train: Training images per class a run will ask for.
        n_test: Test images per class a run will ask for.
    """
    result = DatasetCheck()
    bad: set[str] = set()
    for item in dataset.items:
        reason = check_image(item.path)
        if reason is not None:
            result.unreadable.append((item.path, reason))
            bad.add(item.path)
    tallies: dict[str, Counter[str]] = {name: Counter() for name in dataset.classes}
    for item in dataset.items:
        if item.path not in bad:
            tallies[item.label][item.split or "unsplit"] += 1
    result.counts = {name: dict(tally) for name, tally in tallies.items()}
    result.problems = _problems(dataset, result, n_train, n_test)
    return result


def _problems(
    dataset: Dataset, result: DatasetCheck, n_train: int, n_test: int
) -> list[str]:
    problems = []
    if len(dataset.classes) < 2:
        problems.append(
            f"a task needs at least 2 classes, found {len(dataset.classes)}"
        )
    if len(dataset.classes) > 26:
        problems.append(f"{len(dataset.classes)} classes; options are lettered A to Z")
    for name, counts in result.counts.items():
        train = counts.get("train", 0)
        test = counts.get("test", 0)
        unsplit = counts.get("unsplit", 0)
        if unsplit and not (train or test):
            train, test = max(unsplit - n_test, 0), min(unsplit, n_test)
        if train < n_train or test < n_test:
            problems.append(
                f"{name}: {train} usable training and {test} test images, "
                f"a run asks for {n_train} and {n_test}"
            )
    if result.unreadable:
        problems.append(f"{len(result.unreadable)} images cannot be decoded")
    return problems
