"""Dataset loaders: a folder per class, a manifest, CUB-200-2011, iNaturalist 2021.

Every loader returns a :class:`~autosep.tasks.Dataset`; :func:`load_dataset` picks
the layout from what the folder holds. A loader reads file names and text files only;
:func:`autosep.checks.check_dataset` opens the images.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from autosep.tasks import Dataset, Item

__all__ = [
    "CUB_TASKS",
    "DatasetError",
    "IMAGE_SUFFIXES",
    "detect_layout",
    "load_cub",
    "load_dataset",
    "load_folder",
    "load_inat",
    "load_manifest",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif"})

# The reference tasks: three-class subsets of CUB-200-2011 by class id, with the
# names the classification prompt shows. Scott's Oriole (098) and the further vireos
# (154-157) are left out to keep the reference's K = 3.
CUB_TASKS: dict[str, dict[int, str]] = {
    "cuckoo": {
        31: "Black-billed Cuckoo",
        32: "Mangrove Cuckoo",
        33: "Yellow-billed Cuckoo",
    },
    "oriole": {95: "Baltimore Oriole", 96: "Hooded Oriole", 97: "Orchard Oriole"},
    "vireo": {
        151: "Black-capped Vireo",
        152: "Blue-headed Vireo",
        153: "Philadelphia Vireo",
    },
}

LAYOUTS = ("auto", "folder", "manifest", "cub", "inat")


class DatasetError(Exception):
    """A dataset cannot be loaded; the message says what to change."""


def load_dataset(
    path: str | Path,
    *,
    layout: str = "auto",
    noun: str | None = None,
    classes: Sequence[str] | None = None,
    task: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a dataset in any supported layout.

    Args:
        path: The dataset folder, or a manifest file.
        layout: One of ``auto``, ``folder``, ``manifest``, ``cub``, ``inat``.
        noun: What the images show; defaults to ``bird`` for CUB, else ``object``.
        classes: Keep only these classes, in this order (names as the dataset
            spells them, or CUB/iNaturalist ids).
        task: A CUB reference task (``cuckoo``, ``oriole``, ``vireo``).
        name: A short name for reports; defaults to the task or folder name.

    Raises:
        DatasetError: The folder is missing, its layout unknown, or a file in it
            malformed.
    """
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise DatasetError(f"dataset not found: {root}")
    chosen = detect_layout(root) if layout == "auto" else layout
    if chosen not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    if task is not None and chosen != "cub":
        raise DatasetError(f"--task {task} needs a CUB-200-2011 folder, not {chosen}")
    if chosen == "cub":
        dataset = load_cub(root, task=task, classes=classes, noun=noun or "bird")
    elif chosen == "inat":
        dataset = load_inat(root, classes=classes, noun=noun or "organism")
    elif chosen == "manifest":
        dataset = load_manifest(root, classes=classes, noun=noun or "object")
    else:
        dataset = load_folder(root, classes=classes, noun=noun or "object")
    if not dataset.classes:
        raise DatasetError(f"no classes found in {root} ({chosen} layout)")
    return _renamed(dataset, name) if name else dataset


def detect_layout(root: Path) -> str:
    """Return the layout a dataset folder (or manifest file) is in."""
    if root.is_file():
        return "manifest"
    if (root / "images.txt").exists() and (root / "classes.txt").exists():
        return "cub"
    if (root / "train.json").exists() or (root / "val.json").exists():
        return "inat"
    if any((root / f"manifest.{ext}").exists() for ext in ("csv", "jsonl")):
        return "manifest"
    return "folder"


def load_folder(
    root: Path, *, classes: Sequence[str] | None = None, noun: str = "object"
) -> Dataset:
    """Load one sub-folder of images per class; no split is recorded."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _images_in(p))
    by_name = {_class_name(p.name): p for p in folders}
    names = _select(list(by_name), classes, root)
    items = [
        Item(str(image), name)
        for name in names
        for image in sorted(_images_in(by_name[name]))
    ]
    return Dataset(root.name, noun, tuple(names), tuple(items), str(root))


def load_manifest(
    path: Path, *, classes: Sequence[str] | None = None, noun: str = "object"
) -> Dataset:
    """Load a CSV (``path,label,split``) or JSON-lines manifest.

    Paths are relative to the manifest's folder; ``split`` is optional.
    """
    manifest = path if path.is_file() else _manifest_in(path)
    rows = _read_jsonl(manifest) if manifest.suffix == ".jsonl" else _read_csv(manifest)
    base = manifest.parent
    items: list[Item] = []
    for number, row in enumerate(rows, start=2):
        if not row.get("path") or not row.get("label"):
            raise DatasetError(f"{manifest}: row {number} needs a path and a label")
        split = (row.get("split") or "").strip().lower() or None
        split = "test" if split in ("val", "valid", "validation") else split
        items.append(Item(str((base / row["path"]).resolve()), row["label"], split))
    found = list(dict.fromkeys(sorted(item.label for item in items)))
    names = _select(found, classes, manifest)
    kept = tuple(item for item in items if item.label in set(names))
    return Dataset(base.name, noun, tuple(names), kept, str(base))


def load_cub(
    root: Path,
    *,
    task: str | None = None,
    classes: Sequence[str] | None = None,
    noun: str = "bird",
) -> Dataset:
    """Load CUB-200-2011 (``images.txt``, ``classes.txt`` and friends).

    Args:
        root: The ``CUB_200_2011`` folder.
        task: A reference task name, which picks its three classes.
        classes: Class ids or folder names to keep instead of a task.
        noun: What the images show.
    """
    names = {int(k): v for k, v in _read_pairs(root / "classes.txt")}
    chosen = _cub_classes(names, task, classes, root)
    paths = dict(_read_pairs(root / "images.txt"))
    labels = {k: int(v) for k, v in _read_pairs(root / "image_class_labels.txt")}
    splits = _cub_splits(root)
    items = [
        Item(
            str(root / "images" / paths[image_id]),
            chosen[labels[image_id]],
            splits.get(image_id),
        )
        for image_id in sorted(paths, key=_numeric)
        if labels.get(image_id) in chosen
    ]
    return Dataset(
        task or root.name, noun, tuple(chosen.values()), tuple(items), str(root)
    )


def load_inat(
    root: Path, *, classes: Sequence[str] | None = None, noun: str = "organism"
) -> Dataset:
    """Load iNaturalist 2021 (``train.json`` and ``val.json``, COCO style).

    ``classes`` (category names, common names or ids) is required when the dataset
    has more than 26 categories, since the options are lettered A to Z.
    """
    items: list[Item] = []
    categories: dict[int, str] = {}
    for split, file_name in (("train", "train.json"), ("test", "val.json")):
        if (root / file_name).exists():
            found, split_items = _read_coco(root, root / file_name, split)
            categories.update(found)
            items.extend(split_items)
    if classes is None and len(categories) > 26:
        raise DatasetError(
            f"{root} has {len(categories)} categories; pick up to 26 with --classes"
        )
    wanted = _inat_classes(categories, classes, root)
    kept = tuple(i for i in items if i.label in wanted)
    return Dataset(root.name, noun, tuple(wanted), kept, str(root))


def _read_coco(root: Path, path: Path, split: str) -> tuple[dict[int, str], list[Item]]:
    try:
        data = json.loads(path.read_text())
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        files = {int(i["id"]): str(i["file_name"]) for i in data["images"]}
        items = [
            Item(
                str(root / files[int(a["image_id"])]),
                categories[int(a["category_id"])],
                split,
            )
            for a in data["annotations"]
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{path}: not a COCO-style file ({error!r})") from error
    return categories, items


def _inat_classes(
    categories: dict[int, str], classes: Sequence[str] | None, root: Path
) -> list[str]:
    if classes is None:
        return [categories[k] for k in sorted(categories)]
    wanted = []
    for name in classes:
        match = [v for k, v in categories.items() if name in (v, str(k))]
        if not match:
            raise DatasetError(f"{root}: no category {name!r}")
        wanted.append(match[0])
    return wanted


def _cub_classes(
    names: dict[int, str], task: str | None, classes: Sequence[str] | None, root: Path
) -> dict[int, str]:
    if task is not None:
        if task not in CUB_TASKS:
            raise DatasetError(
                f"unknown CUB task {task!r}; choose from {sorted(CUB_TASKS)}"
            )
        missing = [k for k in CUB_TASKS[task] if k not in names]
        if missing:
            raise DatasetError(f"{root}/classes.txt lacks class ids {missing}")
        return dict(CUB_TASKS[task])
    if classes is None:
        return {k: _class_name(v) for k, v in sorted(names.items())}
    chosen: dict[int, str] = {}
    for wanted in classes:
        match = [
            k
            for k, v in names.items()
            if wanted
            in (str(k), f"{k:03d}", v, re.sub(r"^\d+\.", "", v), _class_name(v))
        ]
        if not match:
            raise DatasetError(f"{root}/classes.txt has no class {wanted!r}")
        chosen[match[0]] = _class_name(names[match[0]])
    return chosen


def _cub_splits(root: Path) -> dict[str, str]:
    path = root / "train_test_split.txt"
    if not path.exists():
        return {}
    return {k: "train" if v == "1" else "test" for k, v in _read_pairs(path)}


def _class_name(folder: str) -> str:
    """Turn a folder name into a class name.

    >>> _class_name("031.Black_billed_Cuckoo")
    'Black billed Cuckoo'
    """
    return re.sub(r"^\d+\.", "", folder).replace("_", " ").strip()


def _select(found: list[str], wanted: Sequence[str] | None, where: Path) -> list[str]:
    if wanted is None:
        return found
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DatasetError(f"{where}: no class {missing}; it has {found}")
    return list(wanted)


def _images_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]


def _manifest_in(root: Path) -> Path:
    for name in ("manifest.csv", "manifest.jsonl"):
        if (root / name).exists():
            return root / name
    raise DatasetError(f"{root} holds no manifest.csv or manifest.jsonl")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: the header must name path and label columns")
        return list(reader)


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append({k: str(v) for k, v in json.loads(line).items()})
        except (ValueError, AttributeError) as error:
            raise DatasetError(f"{path}: line {number} is not a JSON object") from error
    return rows


def _read_pairs(path: Path) -> Iterable[tuple[str, str]]:
    if not path.exists():
        raise DatasetError(f"missing {path.name} in {path.parent}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetError(f"{path}: line {number} needs two fields")
        pairs.append((fields[0], fields[1].strip()))
    return pairs


def _numeric(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (0, key)


def _renamed(dataset: Dataset, name: str) -> Dataset:
    return Dataset(name, dataset.noun, dataset.classes, dataset.items, dataset.root)
