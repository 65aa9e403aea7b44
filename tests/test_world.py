"""The synthetic world: families, rendering, datasets, and perception of the pixels."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from itertools import combinations
from typing import Any

import pytest
from PIL import Image

from providers.emulator import world
from providers.emulator._sim_perceive import perceive


def _jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def test_families_have_the_required_shapes() -> None:
    sizes = Counter(len(world.get_family(f).species) for f in world.family_names())
    assert sizes[3] >= 3
    assert sizes[10] >= 1
    assert all(3 <= size <= 10 for size in sizes.elements())


@pytest.mark.parametrize("name", world.family_names())
def test_species_differ_in_subtle_attributes_only(name: str) -> None:
    family = world.get_family(name)
    assert not set(family.salient) & set(family.discriminative)
    for a, b in combinations(family.species, 2):
        one, two = family.attributes[a], family.attributes[b]
        differ = [k for k in one if one[k] != two[k]]
        assert len(differ) >= 2, (a, b, differ)
        if len(family.species) == 3:
            assert len(differ) <= 3, (a, b, differ)


def test_find_species_ignores_spelling() -> None:
    assert world.find_species("rosy_billed_finch") == ("finch", "Rosy-billed Finch")
    assert world.find_species("Hooded Oriole") is None


def test_get_family_rejects_unknown_names() -> None:
    with pytest.raises(KeyError, match="unknown family"):
        world.get_family("dodo")


def test_render_is_deterministic_and_varies_with_index() -> None:
    one = world.render("finch", "Barred Finch", 3, seed=7)
    again = world.render("finch", "Barred Finch", 3, seed=7)
    other = world.render("finch", "Barred Finch", 4, seed=7)
    assert one.size == (320, 240) and one.mode == "RGB"
    assert one.tobytes() == again.tobytes()
    assert one.tobytes() != other.tobytes()


def test_write_dataset_layout(tmp_path) -> None:
    manifest = world.write_dataset("vireo", tmp_path, per_species=4, seed=1)
    assert manifest == tmp_path / "manifest.csv"
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "label", "split"]
    assert len(rows) == 12
    assert Counter(r["split"] for r in rows) == {"train": 6, "test": 6}
    family = world.get_family("vireo")
    assert {r["label"] for r in rows} == set(family.species)
    for row in rows:
        path = tmp_path / row["path"]
        assert path.parent.name == row["label"].replace(" ", "_")
        with Image.open(path) as image:
            assert image.format == "JPEG"
    lines = (tmp_path / "truth.jsonl").read_text().splitlines()
    truth = [json.loads(line) for line in lines]
    assert [t["path"] for t in truth] == [r["path"] for r in rows]
    assert set(truth[0]) >= set(family.discriminative)


def test_write_dataset_validates_arguments(tmp_path) -> None:
    with pytest.raises(ValueError):
        world.write_dataset("finch", tmp_path, per_species=0)
    with pytest.raises(ValueError):
        world.write_dataset("finch", tmp_path, per_species=2, test_fraction=2.0)


def _perception_accuracy(per_species: int, size: tuple[int, int] | None = None):
    hits: Counter[str] = Counter()
    total = 0
    for name in world.family_names():
        family = world.get_family(name)
        for species in family.species:
            for index in range(per_species):
                bird = world.individual(name, species, index, seed=5)
                image = world.render(name, species, index, seed=5)
                if size is not None:
                    image = image.resize(size)
                seen = perceive(_jpeg(image))
                assert seen.in_world
                total += 1
                for attribute, value in bird.attributes.items():
                    hits[attribute] += seen.values.get(attribute) == value
    return {attribute: hits[attribute] / total for attribute in hits}


def test_perception_reads_every_attribute_on_clean_images() -> None:
    accuracy = _perception_accuracy(per_species=3)
    assert min(accuracy.values()) >= 0.9, accuracy


@pytest.mark.slow
def test_perception_on_many_clean_images() -> None:
    accuracy = _perception_accuracy(per_species=20)
    assert min(accuracy.values()) >= 0.95, accuracy


def test_perception_degrades_on_small_images() -> None:
    clean = _perception_accuracy(per_species=2)
    small = _perception_accuracy(per_species=2, size=(96, 72))
    assert sum(small.values()) < sum(clean.values())


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("bill_colour", "yellow"), ("leg_colour", "black"), ("wing_bars", "1"),
     ("eye_ring", "white"), ("crown", "red"), ("breast_pattern", "spotted")],
)  # fmt: skip
def test_recolouring_one_part_changes_only_that_reading(
    attribute: str, value: str
) -> None:
    base = perceive(_jpeg(world.render_attributes("finch", "Plain-breasted Finch", 2)))
    change: dict[str, Any] = {attribute: value}
    changed = perceive(
        _jpeg(world.render_attributes("finch", "Plain-breasted Finch", 2, **change))
    )
    assert changed.values[attribute] == value
    assert base.values[attribute] != value
    others = {k: v for k, v in base.values.items() if k != attribute}
    assert others == {k: v for k, v in changed.values.items() if k != attribute}


def test_contact_sheet_shows_every_species() -> None:
    sheet = world.contact_sheet("warbler", per_species=2)
    assert sheet.height >= 3 * 120
    assert sheet.width > 2 * 160
