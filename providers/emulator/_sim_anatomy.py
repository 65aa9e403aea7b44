"""Where each part of a bird sits, in the body's own coordinates.

Coordinates are in units of the body's half-length ``s``, centred on the body, with x
pointing towards the head and y pointing down. The renderer draws the parts here and
perception reads them back from the same places, so the two cannot drift apart.
"""

from __future__ import annotations

__all__ = [
    "BACK_BOX",
    "BELLY_BOX",
    "BELLY_CUT",
    "BILL",
    "BODY",
    "BREAST_BOX",
    "SPOTS",
    "STREAKS",
    "STREAK_SPAN",
    "CROWN_BOX",
    "CROWN_CUT",
    "EYE",
    "EYE_BOX",
    "EYE_RING",
    "HEAD",
    "HEAD_BOX",
    "LEG_BAND",
    "LEGS",
    "TAIL",
    "THROAT",
    "THROAT_BOX",
    "WING",
    "WING_BARS",
    "WING_BAR_BAND",
    "WING_BAR_WIDTH",
    "WING_BOX",
]

# Shapes: ellipses are (cx, cy, rx, ry), circles (cx, cy, r).
BODY = (0.0, 0.0, 1.0, 0.62)
BELLY_CUT = 0.10  # the belly colour covers the body below this line
# Breast marks: streak centres and their vertical span, or spot centres.
STREAKS = (0.20, 0.35, 0.50, 0.65)
STREAK_SPAN = (0.25, 0.43)
SPOTS = ((0.20, 0.30), (0.36, 0.30), (0.52, 0.30), (0.68, 0.30), (0.28, 0.42),
         (0.44, 0.42), (0.60, 0.42))  # fmt: skip
WING = (-0.25, -0.08, 0.65, 0.30)
WING_BARS = (-0.02, -0.30)  # centres of the first and second bar
WING_BAR_WIDTH = 0.10
HEAD = (0.88, -0.52, 0.40)
CROWN_CUT = -0.74  # the crown patch covers the head above this line
THROAT = (0.98, -0.28, 0.17, 0.11)
EYE = (1.00, -0.58, 0.065)
EYE_RING = (0.085, 0.14)  # inner and outer radius of the ring
# Bill: base x, base half-height, tip y, and the tip x for short and long bills.
BILL = {"base_x": 1.20, "half": 0.12, "y": -0.54, "short": 1.54, "long": 1.86}
# Tail: attachment x, half-width at base and tip, and length for short and long tails.
TAIL = {"x": -0.75, "base": 0.12, "tip": 0.15, "short": 0.55, "long": 1.20}
LEGS = (((0.12, 0.50), (0.08, 0.98)), ((0.34, 0.50), (0.38, 0.98)))
LEG_WIDTH = 0.07
BRANCH_Y = 1.0  # the legs end on a branch here

# Boxes perception samples: (x0, y0, x1, y1).
BACK_BOX = (0.20, -0.46, 0.40, -0.34)
BELLY_BOX = (-0.30, 0.36, 0.00, 0.50)
WING_BOX = (-0.68, -0.14, -0.52, 0.00)
HEAD_BOX = (0.66, -0.62, 0.80, -0.44)
CROWN_BOX = (0.78, -0.84, 0.98, -0.78)
THROAT_BOX = (0.92, -0.32, 1.04, -0.24)
EYE_BOX = (0.84, -0.74, 1.16, -0.46)
BREAST_BOX = (0.14, 0.24, 0.74, 0.46)
WING_BAR_BAND = (-0.75, -0.16, 0.28, 0.00)
LEG_BAND = (-0.06, 0.72, 0.52, 0.88)
