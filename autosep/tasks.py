"""Tasks: what the method learns on, and how a dataset becomes one.

A :class:`Dataset` is every labelled image a loader found; a :class:`Task` is what
one run uses: the noun, the class names, ``n_train`` unlabeled training images and
``n_test`` labelled test images per class, drawn deterministically from the seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from autosep.rng import generator

__all__ = ["Dataset", "Item", "Task", "make_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled image of a dataset.

    Attributes:
        path: Absolute path of the image file.
        label: Its class name.
        split: ``train``, ``test`` or None when the dataset does not say.
    """

    path: str
    label: str
    split: str | None = None


@dataclass(frozen=True)
class Dataset:
    """Every image a loader found, with the task's noun and class names.

    Attributes:
        name: A short name for reports (``cuckoo``, ``synthetic-finch``...).
        noun: What the images show (``bird``, ``finch``...).
        classes: The class names, in option order.
        items: The images.
        root: The folder the dataset lives in, for relative paths in reports.
    """

    name: str
    noun: str
    classes: tuple[str, ...]
    items: tuple[Item, ...]
    root: str = ""

    def by_class(self) -> dict[str, list[Item]]:
        """Return the items grouped by class, in class order, each sorted by path."""
        groups: dict[str, list[Item]] = {name: [] for name in self.classes}
        for item in self.items:
            if item.label in groups:
                groups[item.label].append(item)
        return {
            name: sorted(items, key=lambda i: i.path) for name, items in groups.items()
        }


@dataclass(frozen=True)
class Task:
    """What one run works on.

    Attributes:
        name: A short name for reports.
        noun: What the images show.
        classes: The class names, in option order (A, B, C, ...).
        train: Unlabeled training images (absolute paths), in a fixed order.
        test: Labelled test images as (path, class name) pairs.
        root: The dataset folder, for relative paths in reports.
    """

    name: str
    noun: str
    classes: tuple[str, ...]
    train: tuple[str, ...]
    test: tuple[tuple[str, str], ...]
    root: str = ""
    notes: tuple[str, ...] = field(default=())

    def relative(self, path: str) -> str:
        """Return a path relative to the dataset folder, for reports."""
        prefix = self.root.rstrip("/") + "/"
        return path[len(prefix) :] if self.root and path.startswith(prefix) else path


def make_task(dataset: Dataset, *, n_train: int, n_test: int, seed: int) -> Task:
    """Draw a task's training and test images from a dataset.

    Images a dataset marks ``train`` or ``test`` are drawn from that split; a class
    with no split information is shuffled and cut, test images first so that the
    test set does not change when ``n_train`` does.

    Args:
        dataset: The loaded dataset.
        n_train: Unlabeled training images per class.
        n_test: Labelled test images per class.
        seed: The seed the draws derive from.
    """
    train: list[str] = []
    test: list[tuple[str, str]] = []
    notes: list[str] = []
    for name, items in dataset.by_class().items():
        class_train, class_test = _split_class(name, items, n_train, n_test, seed)
        if len(class_train) < n_train or len(class_test) < n_test:
            notes.append(
                f"{name}: {len(class_train)} training and {len(class_test)} test "
                f"images (asked for {n_train} and {n_test})"
            )
        train.extend(class_train)
        test.extend((path, name) for path in class_test)
    for note in notes:
        logger.warning("short class: %s", note)
    return Task(
        name=dataset.name,
        noun=dataset.noun,
        classes=dataset.classes,
        train=tuple(train),
        test=tuple(test),
        root=dataset.root,
        notes=tuple(notes),
    )


def _split_class(
    name: str, items: Sequence[Item], n_train: int, n_test: int, seed: int
) -> tuple[list[str], list[str]]:
    marked_train = [i.path for i in items if i.split == "train"]
    marked_test = [i.path for i in items if i.split == "test"]
    unmarked = [i.path for i in items if i.split not in ("train", "test")]
    if not marked_train and not marked_test:
        shuffled = _shuffled(unmarked, seed, "split", name)
        return shuffled[n_test : n_test + n_train], shuffled[:n_test]
    train = _shuffled(marked_train, seed, "train", name)[:n_train]
    test = _shuffled(marked_test, seed, "test", name)[:n_test]
    return train, test


def _shuffled(paths: Sequence[str], seed: int, purpose: str, name: str) -> list[str]:
    ordered = sorted(paths)
    order = generator(seed, purpose, name).permutation(len(ordered))
    return [ordered[i] for i in order]
