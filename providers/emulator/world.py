"""The synthetic fine-grained world: families of species, images of them, datasets.

A family is a task (a noun and 3 to 10 species); a species is a table of visible
attribute values; an individual is a species drawn with small deviations, in a pose, on
a background, under a light. Everything is deterministic from (family, species, index,
seed).

>>> "finch" in family_names()
True
>>> get_family("finch").noun
'finch'
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from PIL import Image, ImageDraw

from ._sim_render import IMAGE_SIZE, Pose, draw_bird, sample_pose
from ._sim_species import ATTRIBUTES, FAMILIES, SALIENT

__all__ = [
    "DEVIATION_PROBABILITY",
    "SHARED_DEVIATION_PROBABILITY",
    "Family",
    "Individual",
    "contact_sheet",
    "family_names",
    "find_species",
    "get_family",
    "individual",
    "render",
    "render_attributes",
    "write_dataset",
]

logger = logging.getLogger(__name__)

#: Chance that one discriminative attribute of one individual departs from its
#: species' value; attributes the whole family shares depart far more rarely.
DEVIATION_PROBABILITY = 0.015
SHARED_DEVIATION_PROBABILITY = 0.004
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Family:
    """A task of the world, as the model knows it.

    Attributes:
        name: The family's identifier (``finch``).
        noun: What the species are called collectively (``finch``).
        species: The species names, in a fixed order.
        attributes: Every species' attribute table (attribute name -> value).
        discriminative: The attributes whose values differ between species.
        salient: The attributes a generic description starts with; never
            discriminative.
    """

    name: str
    noun: str
    species: tuple[str, ...]
    attributes: Mapping[str, Mapping[str, str]]
    discriminative: tuple[str, ...]
    salient: tuple[str, ...]


@dataclass(frozen=True)
class Individual:
    """One drawn bird: its true attribute values and its pose."""

    family: str
    species: str
    index: int
    seed: int
    attributes: Mapping[str, str]
    pose: Pose


def family_names() -> list[str]:
    """Return the names of all families, smallest first."""
    return sorted(FAMILIES, key=lambda name: (len(FAMILIES[name].species), name))


@functools.cache
def get_family(name: str) -> Family:
    """Return a family by name.

    Raises:
        KeyError: If there is no such family.
    """
    try:
        spec = FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown family {name!r}; known: {family_names()}") from None
    tables = spec.species
    discriminative = tuple(
        a.name
        for a in ATTRIBUTES
        if len({table[a.name] for table in tables.values()}) > 1
    )
    return Family(
        name=spec.name,
        noun=spec.noun,
        species=tuple(tables),
        attributes=tables,
        discriminative=discriminative,
        salient=SALIENT,
    )


def find_species(name: str) -> tuple[str, str] | None:
    """Find a species by name in any family, ignoring case, underscores and hyphens.

    Returns:
        ``(family, species)``, or None when no family has a species of that name.
    """
    key = _name_key(name)
    for family in FAMILIES.values():
        for species in family.species:
            if _name_key(species) == key:
                return family.name, species
    return None


def _name_key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _rng(*parts: object) -> random.Random:
    text = "|".join(str(p) for p in parts)
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8]))


def individual(family: str, species: str, index: int, seed: int = 0) -> Individual:
    """Draw one individual: species values with rare deviations, and a pose."""
    info = get_family(family)
    table = info.attributes.get(species)
    if table is None:
        raise KeyError(f"family {family!r} has no species {species!r}")
    rng = _rng("individual", family, species, index, seed)
    values = dict(table)
    for spec in ATTRIBUTES:
        chance = (
            DEVIATION_PROBABILITY
            if spec.name in info.discriminative
            else SHARED_DEVIATION_PROBABILITY
        )
        if rng.random() < chance:
            values[spec.name] = rng.choice(_deviations(info, spec.name, table))
    pose = sample_pose(rng)
    return Individual(family, species, index, seed, MappingProxyType(values), pose)


def _deviations(info: Family, attribute: str, table: Mapping[str, str]) -> list[str]:
    # An odd individual of a fine-grained family looks like a neighbouring species in
    # that one attribute, not like a bird from elsewhere.
    if attribute in info.discriminative:
        seen = {t[attribute] for t in info.attributes.values()}
    else:
        seen = set(next(a.values for a in ATTRIBUTES if a.name == attribute))
    return sorted(seen - {table[attribute]})


def render(family: str, species: str, index: int, seed: int = 0) -> Image.Image:
    """Render image ``index`` of a species as an RGB image of 320x240 pixels."""
    bird = individual(family, species, index, seed)
    return draw_bird(bird.attributes, bird.pose, noise_seed=_noise_seed(bird))


def render_attributes(
    family: str,
    species: str,
    index: int,
    seed: int = 0,
    **overrides: str,
) -> Image.Image:
    """Render an individual with some attribute values replaced, in the same pose.

    Useful to check that changing one part of a bird changes only what is seen there.
    """
    bird = individual(family, species, index, seed)
    values = {**bird.attributes, **overrides}
    return draw_bird(values, bird.pose, noise_seed=_noise_seed(bird))


def _noise_seed(bird: Individual) -> int:
    return _rng("noise", bird.family, bird.species, bird.index, bird.seed).getrandbits(
        32
    )


def _slug(species: str) -> str:
    return species.replace(" ", "_")


def write_dataset(
    family: str,
    out_dir: str | Path,
    *,
    per_species: int,
    seed: int = 0,
    test_fraction: float = 0.5,
) -> Path:
    """Write a family's images as a dataset folder.

    The layout is one sub-folder per species holding JPEGs, ``manifest.csv`` with the
    columns ``path,label,split`` (paths relative to ``out_dir``), and ``truth.jsonl``
    with each image's true attribute values, for tests and reports only.

    Args:
        family: The family's name.
        out_dir: Where to write; created if missing.
        per_species: Images per species.
        seed: The dataset seed; other seeds give other individuals.
        test_fraction: Share of each species' images put in the test split.

    Returns:
        The manifest's path.

    Raises:
        KeyError: If the family does not exist.
        ValueError: If ``per_species`` or ``test_fraction`` is out of range.
    """
    if per_species < 1:
        raise ValueError(f"per_species must be at least 1, got {per_species}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    info = get_family(family)
    root = Path(out_dir)
    n_test = round(per_species * test_fraction)
    rows: list[tuple[str, str, str]] = []
    truth: list[dict[str, object]] = []
    for species in info.species:
        folder = root / _slug(species)
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_species):
            rel = f"{_slug(species)}/{index:04d}.jpg"
            bird = individual(family, species, index, seed)
            image = draw_bird(bird.attributes, bird.pose, noise_seed=_noise_seed(bird))
            image.save(root / rel, "JPEG", quality=JPEG_QUALITY)
            split = "train" if index < per_species - n_test else "test"
            rows.append((rel, species, split))
            truth.append({"path": rel, "label": species, **bird.attributes})
    manifest = _write_manifest(root, rows)
    _write_truth(root, truth)
    logger.info("wrote %d images of family %s to %s", len(rows), family, root)
    return manifest


def _write_manifest(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = root / "manifest.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "label", "split"))
        writer.writerows(rows)
    return path


def _write_truth(root: Path, truth: list[dict[str, object]]) -> None:
    with (root / "truth.jsonl").open("w", encoding="utf-8") as handle:
        for record in truth:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def contact_sheet(family: str, *, per_species: int = 4, seed: int = 0) -> Image.Image:
    """Return one row of images per species, labelled, to check the family by eye."""
    info = get_family(family)
    tile_w, tile_h = IMAGE_SIZE[0] // 2, IMAGE_SIZE[1] // 2
    label_w, pad = 230, 4
    sheet = Image.new(
        "RGB",
        (label_w + per_species * (tile_w + pad), len(info.species) * (tile_h + pad)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    for row, species in enumerate(info.species):
        y = row * (tile_h + pad)
        draw.text((6, y + tile_h // 2 - 14), species, fill="black")
        draw.text((6, y + tile_h // 2 + 2), _key_values(info, species), fill="dimgray")
        for col in range(per_species):
            tile = render(family, species, col, seed).resize((tile_w, tile_h))
            sheet.paste(tile, (label_w + col * (tile_w + pad), y))
    return sheet


def _key_values(info: Family, species: str) -> str:
    table = info.attributes[species]
    shown = [f"{a.split('_')[0]}={table[a]}" for a in info.discriminative[:3]]
    return ", ".join(shown)
