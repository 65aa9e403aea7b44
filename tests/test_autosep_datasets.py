"""Dataset loaders on small generated trees in each real layout, and the checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autosep.checks import check_dataset
from autosep.datasets import DatasetError, detect_layout, load_dataset
from autosep.tasks import make_task
from cli import cli
from tests.autosep_fakes import make_tree, write_image


def test_folder_per_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "birds", ["Alpha_One", "Beta"], 5)
    dataset = load_dataset(root, noun="bird")
    assert detect_layout(root) == "folder"
    assert dataset.classes == ("Alpha One", "Beta")
    assert len(dataset.items) == 10 and all(i.split is None for i in dataset.items)
    assert load_dataset(root, classes=["Beta"]).classes == ("Beta",)
    with pytest.raises(DatasetError, match="no class"):
        load_dataset(root, classes=["Gamma"])


def test_manifest_csv_and_jsonl(tmp_path: Path) -> None:
    rows = []
    for index in range(6):
        label = "Alpha" if index % 2 else "Beta"
        path = write_image(tmp_path / "imgs" / f"{index}.jpg", index)
        rows.append(
            (
                path.relative_to(tmp_path).as_posix(),
                label,
                "train" if index < 4 else "val",
            )
        )
    (tmp_path / "manifest.csv").write_text(
        "path,label,split\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows)
    )
    dataset = load_dataset(tmp_path)
    assert dataset.classes == ("Alpha", "Beta")
    assert {i.split for i in dataset.items} == {"train", "test"}
    jsonl = tmp_path / "other.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"path": p, "label": label}) + "\n" for p, label, _ in rows)
    )
    assert len(load_dataset(jsonl).items) == 6
    (tmp_path / "bad.csv").write_text("file,class\nx,y\n")
    with pytest.raises(DatasetError, match="path and label"):
        load_dataset(tmp_path / "bad.csv")


def write_cub(root: Path) -> Path:
    classes = {
        31: "Black_billed_Cuckoo",
        32: "Mangrove_Cuckoo",
        33: "Yellow_billed_Cuckoo",
        95: "Baltimore_Oriole",
    }
    images, labels, splits = [], [], []
    image_id = 0
    for class_id, name in classes.items():
        for index in range(4):
            image_id += 1
            rel = f"{class_id:03d}.{name}/{name}_{index:04d}.jpg"
            write_image(root / "images" / rel, image_id)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            splits.append(f"{image_id} {1 if index < 2 else 0}")
    (root / "classes.txt").write_text(
        "".join(f"{k} {k:03d}.{v}\n" for k, v in classes.items())
    )
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(splits) + "\n")
    return root


def test_cub_reference_task(tmp_path: Path) -> None:
    root = write_cub(tmp_path / "CUB_200_2011")
    assert detect_layout(root) == "cub"
    dataset = load_dataset(root, task="cuckoo")
    assert dataset.noun == "bird" and dataset.name == "cuckoo"
    assert dataset.classes == (
        "Black-billed Cuckoo",
        "Mangrove Cuckoo",
        "Yellow-billed Cuckoo",
    )
    assert len(dataset.items) == 12
    assert sum(i.split == "train" for i in dataset.items) == 6
    assert all(Path(i.path).exists() for i in dataset.items)
    with pytest.raises(DatasetError, match="lacks class ids"):
        load_dataset(root, task="vireo")
    chosen = load_dataset(root, classes=["95", "Mangrove_Cuckoo"])
    assert chosen.classes == ("Baltimore Oriole", "Mangrove Cuckoo")


def test_inaturalist_2021(tmp_path: Path) -> None:
    root = tmp_path / "inat"
    categories: list[dict[str, Any]] = [
        {"id": 7, "name": "Danaus plexippus"},
        {"id": 9, "name": "Vanessa cardui"},
    ]
    for split, file_name in (("train", "train.json"), ("val", "val.json")):
        images, annotations = [], []
        for index in range(6):
            category = categories[index % 2]
            folder = f"{category['id']:05d}_{category['name'].replace(' ', '_')}"
            rel = f"{split}/{folder}/{index}.jpg"
            write_image(root / rel, index + (0 if split == "train" else 50))
            images.append({"id": index, "file_name": rel})
            annotations.append(
                {"id": index, "image_id": index, "category_id": category["id"]}
            )
        (root / file_name).write_text(
            json.dumps(
                {"images": images, "annotations": annotations, "categories": categories}
            )
        )
    assert detect_layout(root) == "inat"
    dataset = load_dataset(root, noun="butterfly")
    assert dataset.classes == ("Danaus plexippus", "Vanessa cardui")
    assert sum(i.split == "test" for i in dataset.items) == 6
    assert load_dataset(root, classes=["9"]).classes == ("Vanessa cardui",)


def test_task_draws_are_deterministic_and_disjoint(tmp_path: Path) -> None:
    dataset = load_dataset(make_tree(tmp_path / "d", ["A1", "B1", "C1"], 10))
    task = make_task(dataset, n_train=4, n_test=3, seed=5)
    again = make_task(dataset, n_train=4, n_test=3, seed=5)
    other = make_task(dataset, n_train=4, n_test=3, seed=6)
    assert task == again and task.train != other.train
    assert len(task.train) == 12 and len(task.test) == 9
    assert not set(task.train) & {p for p, _ in task.test}
    # The test set does not move when n_train changes.
    assert make_task(dataset, n_train=2, n_test=3, seed=5).test == task.test
    short = make_task(dataset, n_train=9, n_test=3, seed=5)
    assert len(short.notes) == 3


def test_check_finds_unreadable_and_short_classes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", ["Alpha", "Beta"], 4)
    (root / "Beta" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    dataset = load_dataset(root)
    result = check_dataset(dataset, n_train=1, n_test=2)
    assert [Path(p).name for p, _ in result.unreadable] == ["broken.jpg"]
    assert result.counts == {"Alpha": {"unsplit": 4}, "Beta": {"unsplit": 4}}
    assert not result.ok and any("cannot be decoded" in p for p in result.problems)
    assert check_dataset(
        load_dataset(root, classes=["Alpha"]), n_train=1, n_test=1
    ).problems == ["a task needs at least 2 classes, found 1"]


def test_cli_data_check(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", ["Alpha", "Beta"], 6)
    runner = CliRunner()
    good = runner.invoke(
        cli, ["data", "check", str(root), "--n-train", "2", "--n-test", "2"]
    )
    assert good.exit_code == 0, good.output
    assert "Alpha" in good.output and "ok" in good.output
    short = runner.invoke(cli, ["data", "check", str(root)])
    assert short.exit_code == 1 and "a run asks for 30 and 30" in short.output
    missing = runner.invoke(cli, ["data", "check", str(root), "--classes", "Gamma"])
    assert missing.exit_code == 2 and "no class" in missing.output
