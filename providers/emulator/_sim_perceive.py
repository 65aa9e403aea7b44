"""Perception: reading a bird's attributes back from the pixels of an image.

The model models the background from the image's left and right borders, takes what
differs from it as the subject, estimates the body's centre, size and facing from the
subject's mass, and then reads each attribute at the place the anatomy puts it. Nothing
but the pixels is used, so small, noisy or unusual images are misread the way a real
model misreads them. An image that does not look like a bird of the world gets only a
coarse reading: its dominant colours and brightness.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from . import _sim_anatomy as A
from ._sim_species import ATTRIBUTES, COLOURS

__all__ = ["Percept", "perceive", "perceive_cached"]

_MAX_SIDE = 400
_FOREGROUND = 40.0  # RGB distance from the background model that marks the subject
# Mass of the silhouette and offset of its centroid from the body centre, in body
# units, for a bird facing right (measured on rendered birds of every family).
_AREA = 2.71
_OFFSET = (0.05, -0.065)
# The drawn outline makes the silhouette a little larger than the body ellipse.
_OUTLINE_GAIN = 1.015
_NAMES = tuple(COLOURS)
_PROTOTYPES = np.array([COLOURS[n] for n in _NAMES], dtype=np.float32)
_CACHE_SIZE = 4096
_VOCABULARY = {
    spec.name: (
        names := tuple(v for v in spec.values if v in COLOURS),
        np.array([COLOURS[n] for n in names], dtype=np.float32),
    )
    for spec in ATTRIBUTES
}


@dataclass(frozen=True)
class Percept:
    """What the model sees in one image.

    Attributes:
        in_world: Whether the image looks like a bird of the synthetic world.
        values: Attribute name -> value read from the pixels (world images only).
        colours: The image's dominant colour names, most common first.
        brightness: ``dark``, ``dim``, ``bright`` or ``very bright``.
        frame: Body centre x, y, scale and facing, when a subject was found.
    """

    in_world: bool
    values: dict[str, str] = field(default_factory=dict)
    colours: tuple[str, ...] = ()
    brightness: str = "dim"
    frame: tuple[float, float, float, int] | None = None


def colour_name(rgb: np.ndarray, attribute: str | None = None) -> str:
    """Name an RGB colour by the nearest prototype.

    With an attribute, only the colours that attribute takes in the world are
    candidates, the way a bird watcher's vocabulary for bills differs from the one for
    plumage.
    """
    everything = (_NAMES, _PROTOTYPES)
    names, prototypes = (
        _VOCABULARY.get(attribute, everything) if attribute else everything
    )
    distances = np.sum((prototypes - rgb) ** 2, axis=1)
    return names[int(np.argmin(distances))]


def _to_array(image: Image.Image) -> np.ndarray:
    if image.mode != "RGB":
        image = image.convert("RGB")
    if max(image.size) > _MAX_SIDE:
        ratio = _MAX_SIDE / max(image.size)
        size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def _foreground(pixels: np.ndarray) -> np.ndarray:
    """Mark pixels that differ from a background modelled on the border columns."""
    width = pixels.shape[1]
    strip = max(2, width // 80)
    left = np.median(pixels[:, :strip], axis=1)
    right = np.median(pixels[:, -strip:], axis=1)
    t = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    background = left[:, None, :] * (1 - t) + right[:, None, :] * t
    distance = np.sqrt(np.sum((pixels - background) ** 2, axis=2))
    mask = distance > _FOREGROUND
    # Drop isolated noise: keep pixels with at least 5 marked pixels in their 3x3.
    padded = np.pad(mask, 1).astype(np.uint8)
    count = sum(
        padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    return _close_gaps(mask & (count >= 5))


def _close_gaps(mask: np.ndarray, reach: int = 2) -> np.ndarray:
    """Fill thin gaps inside the subject.

    Where two of the bird's colours meet, the blended edge can match the background
    and cut the silhouette; a pixel marked within ``reach`` on both sides, along
    either axis, is taken as subject too.
    """
    closed = mask.copy()
    padded = np.pad(mask, reach)
    height, width = mask.shape
    for axis in (0, 1):
        before = np.zeros_like(mask)
        after = np.zeros_like(mask)
        for d in range(1, reach + 1):
            if axis == 0:
                before |= padded[reach - d : reach - d + height, reach : reach + width]
                after |= padded[reach + d : reach + d + height, reach : reach + width]
            else:
                before |= padded[reach : reach + height, reach - d : reach - d + width]
                after |= padded[reach : reach + height, reach + d : reach + d + width]
        closed |= before & after
    return closed


def _locate(mask: np.ndarray) -> tuple[float, float, float, int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) < 60:
        return None
    cx, cy = float(xs.mean()), float(ys.mean())
    scale = math.sqrt(len(xs) / _AREA)
    # The head rises above the body at the front: the upper band's mass says which
    # way the bird faces.
    upper = ys < cy - 0.55 * scale
    facing = (
        1
        if np.count_nonzero(xs[upper] > cx) >= np.count_nonzero(xs[upper] < cx)
        else -1
    )
    bx = cx - facing * _OFFSET[0] * scale
    by = cy - _OFFSET[1] * scale
    for _ in range(2):
        bx, by, scale = _refine(mask, bx, by, scale, facing)
    return bx, by, scale, facing


def _run_through(line: np.ndarray, at: int) -> tuple[int, int] | None:
    """Return the bounds of the run of marked pixels that contains index ``at``."""
    if not 0 <= at < len(line) or not line[at]:
        return None
    gaps = np.nonzero(~line)[0]
    before, after = gaps[gaps < at], gaps[gaps > at]
    start = int(before[-1]) + 1 if len(before) else 0
    end = int(after[0]) - 1 if len(after) else len(line) - 1
    return start, end


def _refine(
    mask: np.ndarray, bx: float, by: float, scale: float, facing: int
) -> tuple[float, float, float]:
    """Fit the body ellipse to the silhouette where nothing else touches it.

    The centroid is pulled by the tail and the bill, whose lengths vary; the body's
    own edges are not. Rows just below the wing cross only the body, and columns
    just behind the wing's centre cross only the body and the wing inside it.
    """
    _, _, rx, ry = A.BODY
    centres, heights = [], []
    for u in (-0.2, -0.1, 0.0):
        run = _run_through(mask[:, int(round(bx + facing * u * scale))], int(round(by)))
        if run is not None:
            centres.append((run[0] + run[1]) / 2)
            length = run[1] - run[0] + 1
            heights.append(length / (2 * ry * math.sqrt(1 - u * u)) / _OUTLINE_GAIN)
    if centres:
        by, scale = float(np.median(centres)), float(np.median(heights))
    middles = []
    for v in (0.30, 0.38, 0.45):
        row = int(round(by + v * scale))
        if 0 <= row < mask.shape[0]:
            run = _run_through(mask[row], int(round(bx)))
            if run is not None:
                middles.append((run[0] + run[1]) / 2)
    if middles:
        bx = float(np.median(middles))
    return bx, by, scale


class _Reader:
    """Reads pixels at places given in body coordinates."""

    def __init__(self, pixels: np.ndarray, mask: np.ndarray, frame) -> None:
        self.pixels = pixels
        self.mask = mask
        self.bx, self.by, self.s, self.facing = frame

    def window(self, box: tuple[float, float, float, float], dy: float = 0.0):
        """Return the pixel window under a box, and its body coordinates."""
        x0, y0, x1, y1 = box
        xs = sorted(
            (self.bx + self.facing * x0 * self.s, self.bx + self.facing * x1 * self.s)
        )
        height, width = self.mask.shape
        c0, c1 = max(0, int(xs[0])), min(width, int(math.ceil(xs[1])) + 1)
        r0 = max(0, int(self.by + (y0 + dy) * self.s))
        r1 = min(height, int(math.ceil(self.by + (y1 + dy) * self.s)) + 1)
        if c1 <= c0 or r1 <= r0:
            return None
        u = (np.arange(c0, c1, dtype=np.float32) - self.bx) * self.facing / self.s
        v = (np.arange(r0, r1, dtype=np.float32) - self.by) / self.s
        return self.pixels[r0:r1, c0:c1], self.mask[r0:r1, c0:c1], u, v

    def colour(self, box, *, subject_only: bool = False) -> np.ndarray | None:
        found = self.window(box)
        if found is None:
            return None
        pixels, mask, _, _ = found
        chosen = pixels[mask] if subject_only else pixels.reshape(-1, 3)
        if len(chosen) == 0:
            return None
        return np.median(chosen, axis=0)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _read_colours(reader: _Reader, values: dict[str, str]) -> dict[str, np.ndarray]:
    boxes = {
        "back_colour": A.BACK_BOX,
        "belly_colour": A.BELLY_BOX,
        "wing_colour": A.WING_BOX,
        "head_colour": A.HEAD_BOX,
        "throat_colour": A.THROAT_BOX,
    }
    seen: dict[str, np.ndarray] = {}
    for name, box in boxes.items():
        rgb = reader.colour(box)
        if rgb is not None:
            seen[name] = rgb
            values[name] = colour_name(rgb, name)
    return seen


def _read_crown(reader: _Reader, head: np.ndarray | None) -> str | None:
    crown = reader.colour(A.CROWN_BOX)
    if crown is None or head is None:
        return None
    name = colour_name(crown)
    if name == colour_name(head) or float(np.linalg.norm(crown - head)) < 30:
        return "none"
    name = colour_name(crown, "crown")
    if name == "none":
        return "none"
    return name


def _read_eye_ring(reader: _Reader) -> str | None:
    found = reader.window(A.EYE_BOX)
    if found is None:
        return None
    pixels = found[0]
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    white = (_luminance(pixels) > 195) & (spread < 45)
    return "white" if white.mean() > 0.06 else "none"


def _read_wing_bars(reader: _Reader, wing: np.ndarray | None) -> str | None:
    found = reader.window(A.WING_BAR_BAND)
    if found is None or wing is None:
        return None
    pixels, _, u, _ = found
    profile = _luminance(pixels).mean(axis=0)
    base = float(_luminance(wing))
    bright = profile > base + 0.45 * max(30.0, 245.0 - base)
    runs = _count_runs(bright, min_length=max(1, int(0.03 * reader.s)))
    return str(min(runs, 2))


def _count_runs(flags: np.ndarray, *, min_length: int) -> int:
    runs, length = 0, 0
    for flag in list(flags) + [False]:
        if flag:
            length += 1
            continue
        if length >= min_length:
            runs += 1
        length = 0
    return runs


def _read_breast(reader: _Reader, belly: np.ndarray | None) -> str | None:
    found = reader.window(A.BREAST_BOX)
    if found is None or belly is None:
        return None
    pixels, _, u, v = found
    bx, by = A.BODY[2], A.BODY[3]
    inside = ((u[None, :] / bx) ** 2 + (v[:, None] / by) ** 2 < 0.9) & (
        v[:, None] > A.BREAST_BOX[1]
    )
    level = _luminance(pixels)
    dark = (level < float(_luminance(belly)) - 45) & (level < 105) & inside
    if dark.sum() < 0.04 * max(1, inside.sum()):
        return "plain"
    vertical = np.count_nonzero(dark[1:, :] & dark[:-1, :])
    horizontal = np.count_nonzero(dark[:, 1:] & dark[:, :-1])
    return "streaked" if vertical > 1.2 * (horizontal + 1) else "spotted"


def _read_bill(reader: _Reader) -> dict[str, str]:
    band = (1.31, -0.64, 2.10, -0.44)
    found = reader.window(band)
    if found is None:
        return {}
    pixels, mask, u, _ = found
    columns = np.nonzero(mask.any(axis=0))[0]
    if len(columns) == 0:
        return {}
    tip = float(u[columns].max())
    out = {"bill_length": "long" if tip > 1.70 else "short"}
    near = mask & (u[None, :] < 1.44)
    if near.any():
        # The bill's axis is its widest row; its edges blend into the background.
        row = int(np.argmax(near.sum(axis=1)))
        out["bill_colour"] = colour_name(
            np.median(pixels[row][near[row]], axis=0), "bill_colour"
        )
    return out


def _read_tail(reader: _Reader) -> str | None:
    found = reader.window((-2.6, -0.4, -0.8, 0.9))
    if found is None:
        return None
    _, mask, u, _ = found
    columns = np.nonzero(mask.any(axis=0))[0]
    if len(columns) == 0:
        return None
    return "long" if -float(u[columns].min()) > 1.60 else "short"


def _read_legs(reader: _Reader) -> str | None:
    rgb = reader.colour(A.LEG_BAND, subject_only=True)
    return None if rgb is None else colour_name(rgb, "leg_colour")


def _read_bird(pixels: np.ndarray, mask: np.ndarray, frame) -> dict[str, str]:
    reader = _Reader(pixels, mask, frame)
    values: dict[str, str] = {}
    seen = _read_colours(reader, values)
    readings = {
        "crown": _read_crown(reader, seen.get("head_colour")),
        "eye_ring": _read_eye_ring(reader),
        "wing_bars": _read_wing_bars(reader, seen.get("wing_colour")),
        "breast_pattern": _read_breast(reader, seen.get("belly_colour")),
        "tail_length": _read_tail(reader),
        "leg_colour": _read_legs(reader),
        **_read_bill(reader),
    }
    values.update({k: v for k, v in readings.items() if v is not None})
    return values


def _overview(pixels: np.ndarray) -> tuple[tuple[str, ...], str]:
    """Name the dominant colours and the brightness of any image."""
    step = max(1, min(pixels.shape[:2]) // 48)
    sample = pixels[::step, ::step].reshape(-1, 3)
    distances = ((sample[:, None, :] - _PROTOTYPES[None, :, :]) ** 2).sum(axis=2)
    counts = np.bincount(distances.argmin(axis=1), minlength=len(_NAMES))
    order = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    colours = tuple(_NAMES[i] for i in order[:3])
    level = float(_luminance(sample).mean())
    brightness = (
        "dark" if level < 70 else "dim" if level < 130 else "bright" if level < 190
        else "very bright"
    )  # fmt: skip
    return colours, brightness


def _silhouette_fit(mask: np.ndarray, frame) -> float:
    """Return how well the body ellipse explains the silhouette (1 is perfect)."""
    bx, by, s, facing = frame
    _, _, rx, ry = A.BODY
    inside: list[float] = []
    outside: list[float] = []
    for u in np.linspace(-0.7, 0.5, 7):
        edge = ry * math.sqrt(1 - (u / rx) ** 2)
        for v, bucket in (
            (-0.6 * edge, inside),
            (0.6 * edge, inside),
            (-edge - 0.12, outside),
            (-edge - 0.25, outside),
        ):
            col = int(round(bx + facing * u * rx * s))
            row = int(round(by + v * s))
            in_frame = 0 <= row < mask.shape[0] and 0 <= col < mask.shape[1]
            bucket.append(bool(mask[row, col]) if in_frame else False)
    return (sum(inside) + len(outside) - sum(outside)) / (len(inside) + len(outside))


def _looks_like_world(
    pixels: np.ndarray, mask: np.ndarray, frame, values: dict
) -> bool:
    """Judge whether the subject is a bird drawn the way the world draws them."""
    share = float(mask.mean())
    if not 0.02 < share < 0.45 or _silhouette_fit(mask, frame) < 0.9:
        return False
    # The world's backgrounds are smooth gradients: the border columns barely change
    # from one row to the next, unlike a photograph's.
    border = pixels[:, :2].mean(axis=1)
    roughness = float(np.median(np.abs(np.diff(border, axis=0))))
    return roughness < 4.0 and len(values) >= 10


def perceive(image: Image.Image) -> Percept:
    """Read an image: the bird's attributes if it is one of the world's, else an
    overview of its colours and brightness."""
    pixels = _to_array(image)
    colours, brightness = _overview(pixels)
    mask = _foreground(pixels)
    frame = _locate(mask)
    if frame is None:
        return Percept(False, colours=colours, brightness=brightness)
    values = _read_bird(pixels, mask, frame)
    if not _looks_like_world(pixels, mask, frame, values):
        return Percept(False, colours=colours, brightness=brightness, frame=frame)
    return Percept(True, values, colours, brightness, frame)


_cache: OrderedDict[str, Percept] = OrderedDict()
_cache_lock = threading.Lock()


def perceive_cached(digest: str, image: Image.Image) -> Percept:
    """Perceive an image, reusing the result for an image digest seen recently."""
    with _cache_lock:
        hit = _cache.get(digest)
        if hit is not None:
            _cache.move_to_end(digest)
            return hit
    percept = perceive(image)
    with _cache_lock:
        _cache[digest] = percept
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return percept
