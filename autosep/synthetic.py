"""The emulator's synthetic families as datasets, written once into a data folder."""

from __future__ import annotations

import logging
from pathlib import Path

import platformdirs

from autosep.datasets import DatasetError, load_manifest
from autosep.tasks import Dataset

__all__ = ["DEFAULT_FAMILY", "default_data_dir", "family_names", "load_family"]

logger = logging.getLogger(__name__)

DEFAULT_FAMILY = "finch"


def default_data_dir() -> Path:
    """Return where generated datasets are kept by default."""
    return Path(platformdirs.user_cache_dir("autosep-engine")) / "datasets"


def family_names() -> list[str]:
    """Return the names of the synthetic families."""
    from providers.emulator.world import family_names as names

    return names()


def load_family(
    family: str, data_dir: str | Path | None, *, per_species: int, seed: int = 0
) -> Dataset:
    """Load a synthetic family, writing its images first if they are not there yet.

    Raises:
        DatasetError: The family does not exist.
    """
    from providers.emulator import world

    try:
        info = world.get_family(family)
    except KeyError as error:
        raise DatasetError(
            f"unknown family {family!r}; choose from {family_names()}"
        ) from error
    root = Path(data_dir or default_data_dir()) / f"{family}-n{per_species}-s{seed}"
    manifest = root / "manifest.csv"
    if not manifest.exists():
        logger.info("writing synthetic family %s to %s", family, root)
        partial = root.with_name(root.name + ".partial")
        world.write_dataset(family, partial, per_species=per_species, seed=seed)
        # Renamed only when complete, so an interrupted write is never mistaken for
        # a dataset.
        partial.rename(root)
    dataset = load_manifest(manifest, noun=info.noun, classes=list(info.species))
    return Dataset(
        f"synthetic-{family}", info.noun, dataset.classes, dataset.items, dataset.root
    )
