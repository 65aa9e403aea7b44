"""Drawing one bird: a pose, a background and an attribute table become an image.

The bird is drawn at twice the final size on a transparent layer and scaled down, which
smooths its edges; the background is a two-colour gradient with a horizontal branch, so
that perception can model it from the image's left and right borders.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import _sim_anatomy as A
from ._sim_species import COLOURS

__all__ = ["IMAGE_SIZE", "Pose", "draw_bird", "sample_pose"]

IMAGE_SIZE = (320, 240)
_SUPERSAMPLE = 2
_OUTLINE = (40, 34, 30)
_MARK = (64, 42, 24)

# Muted backdrops, each a (top, bottom) gradient, chosen far enough from every bird
# colour that the bird stands out from them.
_BACKDROPS = (
    ((164, 196, 226), (196, 214, 232)),
    ((196, 200, 206), (172, 180, 190)),
    ((150, 182, 140), (170, 196, 156)),
    ((200, 176, 206), (178, 166, 204)),
)
_BRANCHES = ((96, 74, 56), (84, 80, 72), (110, 90, 66))


@dataclass(frozen=True)
class Pose:
    """Everything about one image except the bird's attributes."""

    cx: float
    cy: float
    scale: float
    facing: int  # +1 looks right, -1 looks left
    head_dy: float
    tail_angle: float
    backdrop: int
    branch: int
    branch_width: float
    light: float
    tint: tuple[float, float, float]
    noise: float


def sample_pose(rng: random.Random, size: tuple[int, int] = IMAGE_SIZE) -> Pose:
    """Draw a pose, position, background and lighting that keep the bird in frame."""
    width, height = size
    scale = rng.uniform(0.14, 0.19) * width
    facing = rng.choice((1, -1))
    # Extents of the drawing in body units: tail tip to bill tip, crown to branch.
    back, front, top, bottom = 2.10, 1.95, 1.00, 1.15
    left, right = (back, front) if facing == 1 else (front, back)
    margin = 0.04 * width
    cx = rng.uniform(margin + left * scale, width - margin - right * scale)
    cy = rng.uniform(margin + top * scale, height - margin - bottom * scale)
    return Pose(
        cx=cx,
        cy=cy,
        scale=scale,
        facing=facing,
        head_dy=rng.uniform(-0.05, 0.05),
        tail_angle=rng.uniform(0.15, 0.50),
        backdrop=rng.randrange(len(_BACKDROPS)),
        branch=rng.randrange(len(_BRANCHES)),
        branch_width=rng.uniform(0.10, 0.18),
        light=rng.uniform(0.90, 1.08),
        tint=(rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(-6, 6)),
        noise=rng.uniform(1.5, 4.5),
    )


def draw_bird(
    attributes: Mapping[str, str],
    pose: Pose,
    *,
    size: tuple[int, int] = IMAGE_SIZE,
    noise_seed: int = 0,
) -> Image.Image:
    """Render one bird with the given attribute values in the given pose."""
    background = _background(pose, size)
    layer = _bird_layer(attributes, pose, size)
    background.alpha_composite(layer)
    return _finish(background, pose, noise_seed)


def _background(pose: Pose, size: tuple[int, int]) -> Image.Image:
    width, height = size
    top, bottom = (np.array(c, dtype=np.float32) for c in _BACKDROPS[pose.backdrop])
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    rows = top * (1 - t) + bottom * t
    pixels = np.broadcast_to(rows, (height, width, 3)).copy()
    # A horizontal branch under the feet; it crosses the whole frame so that the
    # border columns, which perception takes as background, contain it too.
    y0 = pose.cy + A.BRANCH_Y * pose.scale
    y1 = y0 + pose.branch_width * pose.scale
    pixels[int(round(y0)) : int(round(y1)) + 1, :, :] = _BRANCHES[pose.branch]
    return Image.fromarray(pixels.astype(np.uint8), "RGB").convert("RGBA")


def _finish(image: Image.Image, pose: Pose, noise_seed: int) -> Image.Image:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    pixels = pixels * pose.light + np.array(pose.tint, dtype=np.float32)
    noise = np.random.default_rng(noise_seed).normal(0.0, pose.noise, pixels.shape)
    pixels = np.clip(pixels + noise, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


class _Canvas:
    """Maps body coordinates to the supersampled layer and draws outlined shapes."""

    def __init__(self, pose: Pose, size: tuple[int, int]) -> None:
        self.k = _SUPERSAMPLE
        self.s = pose.scale * self.k
        self.cx = pose.cx * self.k
        self.cy = pose.cy * self.k
        self.facing = pose.facing
        self.image = Image.new("RGBA", (size[0] * self.k, size[1] * self.k))
        self.draw = ImageDraw.Draw(self.image)
        self.line = max(1, round(0.035 * self.s))

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return self.cx + self.facing * x * self.s, self.cy + y * self.s

    def box(self, cx: float, cy: float, rx: float, ry: float) -> list[float]:
        x0, y0 = self.xy(cx - rx, cy - ry)
        x1, y1 = self.xy(cx + rx, cy + ry)
        return [min(x0, x1), y0, max(x0, x1), y1]

    def ellipse(self, shape, fill, outline: bool = True) -> None:
        cx, cy, rx, ry = shape
        line = _OUTLINE if outline else None
        self.draw.ellipse(self.box(cx, cy, rx, ry), fill=fill, outline=line,
                          width=self.line)  # fmt: skip

    def polygon(self, points, fill, outline: bool = True) -> None:
        line = _OUTLINE if outline else None
        self.draw.polygon([self.xy(x, y) for x, y in points], fill=fill,
                          outline=line, width=self.line)  # fmt: skip

    def chord(self, shape, cut: float, below: bool, fill) -> None:
        """Fill the part of an ellipse below (or above) the horizontal line ``cut``."""
        cx, cy, rx, ry = shape
        angle = math.degrees(math.asin(max(-1.0, min(1.0, (cut - cy) / ry))))
        start, end = (angle, 180 - angle) if below else (180 - angle, 360 + angle)
        self.draw.chord(self.box(cx, cy, rx, ry), start, end, fill=fill)


def _rgb(name: str) -> tuple[int, int, int]:
    return COLOURS[name]


def _bird_layer(
    attributes: Mapping[str, str], pose: Pose, size: tuple[int, int]
) -> Image.Image:
    canvas = _Canvas(pose, size)
    _draw_tail(canvas, attributes, pose)
    _draw_legs(canvas, attributes)
    _draw_body(canvas, attributes)
    _draw_wing(canvas, attributes)
    _draw_head(canvas, attributes, pose.head_dy)
    return canvas.image.resize(size, Image.Resampling.LANCZOS)


def _draw_tail(canvas: _Canvas, attributes: Mapping[str, str], pose: Pose) -> None:
    length = A.TAIL[attributes["tail_length"]]
    dx, dy = -math.cos(pose.tail_angle), math.sin(pose.tail_angle)
    px, py = -dy, dx  # perpendicular to the tail's axis
    x0 = A.TAIL["x"]
    base, tip = A.TAIL["base"], A.TAIL["tip"]
    tx, ty = x0 + dx * length, dy * length
    points = [
        (x0 + px * base, py * base),
        (tx + px * tip, ty + py * tip),
        (tx - px * tip, ty - py * tip),
        (x0 - px * base, -py * base),
    ]
    canvas.polygon(points, _rgb(attributes["wing_colour"]))


def _draw_legs(canvas: _Canvas, attributes: Mapping[str, str]) -> None:
    colour = _rgb(attributes["leg_colour"])
    width = max(1, round(A.LEG_WIDTH * canvas.s))
    for top, foot in A.LEGS:
        canvas.draw.line([canvas.xy(*top), canvas.xy(*foot)], fill=colour, width=width)
        toe = (foot[0] + 0.12, foot[1])
        canvas.draw.line([canvas.xy(*foot), canvas.xy(*toe)], fill=colour, width=width)


def _draw_body(canvas: _Canvas, attributes: Mapping[str, str]) -> None:
    canvas.ellipse(A.BODY, _rgb(attributes["back_colour"]))
    canvas.chord(A.BODY, A.BELLY_CUT, True, _rgb(attributes["belly_colour"]))
    _draw_breast(canvas, attributes["breast_pattern"])
    # The belly fill covers the lower outline; draw the outline again on top.
    canvas.draw.ellipse(canvas.box(*A.BODY), outline=_OUTLINE, width=canvas.line)


def _draw_breast(canvas: _Canvas, pattern: str) -> None:
    if pattern == "streaked":
        for x in A.STREAKS:
            top, bottom = A.STREAK_SPAN
            canvas.polygon(
                [(x - 0.02, top), (x + 0.02, top), (x + 0.02, bottom),
                 (x - 0.02, bottom)],
                _MARK, outline=False,
            )  # fmt: skip
    elif pattern == "spotted":
        for x, y in A.SPOTS:
            canvas.ellipse((x, y, 0.045, 0.045), _MARK, outline=False)


def _draw_wing(canvas: _Canvas, attributes: Mapping[str, str]) -> None:
    canvas.ellipse(A.WING, _rgb(attributes["wing_colour"]))
    cx, cy, rx, ry = A.WING
    half = A.WING_BAR_WIDTH / 2
    for x in A.WING_BARS[: int(attributes["wing_bars"])]:
        far = max(abs(x - half - cx), abs(x + half - cx))
        h = ry * math.sqrt(max(0.0, 1 - (far / rx) ** 2)) - 0.03
        canvas.polygon(
            [(x - half, cy - h), (x + half, cy - h), (x + half, cy + h),
             (x - half, cy + h)],
            _rgb("white"), outline=False,
        )  # fmt: skip


def _draw_head(canvas: _Canvas, attributes: Mapping[str, str], head_dy: float) -> None:
    hx, hy, r = A.HEAD
    hy += head_dy
    head = (hx, hy, r, r)
    _draw_bill(canvas, attributes, head_dy)
    canvas.ellipse(head, _rgb(attributes["head_colour"]))
    if attributes["crown"] != "none":
        canvas.chord(head, A.CROWN_CUT + head_dy, False, _rgb(attributes["crown"]))
        canvas.draw.ellipse(canvas.box(*head), outline=_OUTLINE, width=canvas.line)
    tx, ty, trx, try_ = A.THROAT
    canvas.ellipse((tx, ty + head_dy, trx, try_), _rgb(attributes["throat_colour"]),
                   outline=False)  # fmt: skip
    ex, ey, er = A.EYE
    ey += head_dy
    if attributes["eye_ring"] != "none":
        outer = A.EYE_RING[1]
        canvas.ellipse((ex, ey, outer, outer), _rgb(attributes["eye_ring"]),
                       outline=False)  # fmt: skip
    canvas.ellipse((ex, ey, er, er), _rgb("black"), outline=False)


def _draw_bill(canvas: _Canvas, attributes: Mapping[str, str], head_dy: float) -> None:
    tip = A.BILL[attributes["bill_length"]]
    x0, half, y = A.BILL["base_x"], A.BILL["half"], A.BILL["y"] + head_dy
    points = [(x0, y - half), (tip, y), (x0, y + half)]
    # No outline: a dark rim would swamp the colour of a short bill.
    canvas.polygon(points, _rgb(attributes["bill_colour"]), outline=False)
