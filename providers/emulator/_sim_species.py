"""The synthetic world's knowledge: colours, visual attributes and families of species.

Every species is a full table of attribute values. Within a family most values are
shared, and the species differ in two or three subtle ones (wing bars, bill colour, eye
ring, ...). The salient attributes that a generic description mentions first (back,
belly and wing colour) are shared by the whole family on purpose: that is what makes the
task fine-grained.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ATTRIBUTES",
    "COLOURS",
    "FAMILIES",
    "SALIENT",
    "AttributeSpec",
    "FamilySpec",
]

#: Named colours and their sRGB prototypes. Perception names a colour by the nearest
#: prototype, so the values are kept well apart (brown and chestnut, the closest pair,
#: never separate two species of the same family).
COLOURS: MappingProxyType[str, tuple[int, int, int]] = MappingProxyType(
    {
        "black": (28, 28, 30),
        "white": (242, 242, 236),
        "grey": (128, 128, 132),
        "brown": (118, 78, 42),
        "chestnut": (172, 70, 32),
        "red": (208, 38, 38),
        "orange": (242, 140, 32),
        "yellow": (246, 214, 48),
        "olive": (118, 124, 44),
        "green": (48, 138, 62),
        "blue": (46, 86, 196),
        "buff": (222, 188, 140),
        "pink": (236, 150, 166),
    }
)


@dataclass(frozen=True)
class AttributeSpec:
    """One visual attribute: its kind and the values it can take.

    Attributes:
        name: Identifier, e.g. ``bill_colour``.
        label: How a description names it, e.g. ``bill colour``.
        kind: ``colour``, ``length``, ``count``, ``pattern``, ``patch`` or ``ring``.
        values: The values individuals may take (deviations are drawn from these).
    """

    name: str
    label: str
    kind: str
    values: tuple[str, ...]


_BODY_COLOURS = ("brown", "olive", "grey", "buff", "yellow", "white", "black")
_PART_COLOURS = ("black", "pink", "yellow", "grey", "orange")

#: All attributes, in order of salience: the first ones are what a model looking at the
#: whole bird notices and mentions first.
ATTRIBUTES: tuple[AttributeSpec, ...] = (
    AttributeSpec("back_colour", "back colour", "colour", _BODY_COLOURS),
    AttributeSpec("belly_colour", "belly colour", "colour", _BODY_COLOURS),
    AttributeSpec("wing_colour", "wing colour", "colour", _BODY_COLOURS),
    AttributeSpec("head_colour", "head colour", "colour", _BODY_COLOURS),
    AttributeSpec("tail_length", "tail length", "length", ("short", "long")),
    AttributeSpec("throat_colour", "throat colour", "colour",
                  ("buff", "white", "black", "yellow")),
    AttributeSpec("breast_pattern", "breast pattern", "pattern",
                  ("plain", "streaked", "spotted")),
    AttributeSpec("leg_colour", "leg colour", "colour", ("pink", "black", "grey")),
    AttributeSpec("bill_length", "bill length", "length", ("short", "long")),
    AttributeSpec("bill_colour", "bill colour", "colour", _PART_COLOURS),
    AttributeSpec("crown", "crown patch", "patch",
                  ("none", "red", "orange", "chestnut", "grey")),
    AttributeSpec("eye_ring", "eye ring", "ring", ("none", "white")),
    AttributeSpec("wing_bars", "wing bars", "count", ("0", "1", "2")),
)  # fmt: skip

#: The attributes a description of "the bird in general" starts with.
SALIENT: tuple[str, ...] = ("back_colour", "belly_colour", "wing_colour")


@dataclass(frozen=True)
class FamilySpec:
    """A task: a noun and its species, each a full attribute table."""

    name: str
    noun: str
    species: MappingProxyType[str, MappingProxyType[str, str]]


def _family(
    name: str, noun: str, shared: dict[str, str], species: dict[str, dict[str, str]]
) -> FamilySpec:
    known = {spec.name for spec in ATTRIBUTES}
    tables: dict[str, MappingProxyType[str, str]] = {}
    for species_name, own in species.items():
        table = {**shared, **own}
        if set(table) != known:
            raise ValueError(f"{species_name}: attributes {sorted(known ^ set(table))}")
        tables[species_name] = MappingProxyType(table)
    return FamilySpec(name, noun, MappingProxyType(tables))


_FINCH = _family(
    "finch",
    "finch",
    dict(
        back_colour="brown", belly_colour="buff", wing_colour="brown",
        head_colour="brown", tail_length="short", throat_colour="buff",
        breast_pattern="plain", leg_colour="pink", bill_length="short",
        bill_colour="black", crown="none", eye_ring="none", wing_bars="0",
    ),
    {
        "Rosy-billed Finch": dict(bill_colour="pink", breast_pattern="streaked"),
        "Barred Finch": dict(wing_bars="2", breast_pattern="streaked"),
        "Plain-breasted Finch": {},
    },
)  # fmt: skip

_WARBLER = _family(
    "warbler",
    "warbler",
    dict(
        back_colour="olive", belly_colour="yellow", wing_colour="olive",
        head_colour="olive", tail_length="long", throat_colour="yellow",
        breast_pattern="plain", leg_colour="pink", bill_length="short",
        bill_colour="black", crown="none", eye_ring="none", wing_bars="0",
    ),
    {
        "Spectacled Warbler": dict(eye_ring="white", throat_colour="black"),
        "Crowned Warbler": dict(crown="orange", throat_colour="black"),
        "Yellow-throated Warbler": dict(eye_ring="white", crown="orange"),
    },
)  # fmt: skip

_VIREO = _family(
    "vireo",
    "vireo",
    dict(
        back_colour="grey", belly_colour="white", wing_colour="grey",
        head_colour="grey", tail_length="short", throat_colour="white",
        breast_pattern="plain", leg_colour="black", bill_length="short",
        bill_colour="black", crown="none", eye_ring="none", wing_bars="2",
    ),
    {
        "Long-billed Vireo": dict(bill_length="long", leg_colour="pink"),
        "Black-legged Vireo": {},
        "Single-barred Vireo": dict(bill_length="long", wing_bars="1"),
    },
)  # fmt: skip


def _sp(
    crown: str, breast: str, bars: str, bill: str, throat: str, ring: str
) -> dict[str, str]:
    """Return the six attributes that tell the sparrows apart."""
    return dict(
        crown=crown, breast_pattern=breast, wing_bars=bars, bill_colour=bill,
        throat_colour=throat, eye_ring=ring,
    )  # fmt: skip


# Ten species over six subtle attributes; every pair differs in at least two of them.
_SPARROW = _family(
    "sparrow",
    "sparrow",
    dict(
        back_colour="brown", belly_colour="buff", wing_colour="brown",
        head_colour="brown", tail_length="long", leg_colour="pink",
        bill_length="short",
    ),
    {
        "Chestnut-capped Sparrow": _sp(
            "chestnut", "plain", "0", "pink", "buff", "none"
        ),
        "Streaked Sparrow": _sp("none", "streaked", "0", "black", "buff", "none"),
        "Spotted Sparrow": _sp("none", "spotted", "0", "pink", "white", "none"),
        "White-throated Sparrow": _sp("none", "plain", "1", "black", "white", "none"),
        "Black-throated Sparrow": _sp("none", "plain", "0", "black", "black", "none"),
        "Spectacled Sparrow": _sp("none", "streaked", "2", "pink", "buff", "white"),
        "Yellow-billed Sparrow": _sp("none", "plain", "2", "yellow", "buff", "none"),
        "Grey-crowned Sparrow": _sp("grey", "streaked", "1", "black", "buff", "none"),
        "Two-barred Sparrow": _sp("chestnut", "spotted", "2", "black", "buff", "none"),
        "Ringed Sparrow": _sp("grey", "plain", "0", "yellow", "white", "white"),
    },
)  # fmt: skip

_TANAGER = _family(
    "tanager",
    "tanager",
    dict(
        back_colour="black", belly_colour="yellow", wing_colour="black",
        head_colour="yellow", tail_length="long", throat_colour="yellow",
        breast_pattern="plain", leg_colour="grey", bill_length="short",
        bill_colour="grey", crown="none", eye_ring="none", wing_bars="0",
    ),
    {
        "Red-capped Tanager": dict(crown="red", wing_bars="1"),
        "Pale-billed Tanager": dict(bill_colour="pink", wing_bars="1"),
        "Short-tailed Tanager": dict(tail_length="short", crown="red"),
        "Spot-breasted Tanager": dict(breast_pattern="spotted", bill_colour="pink"),
        "Barred Tanager": dict(wing_bars="2", tail_length="short"),
    },
)  # fmt: skip

FAMILIES: MappingProxyType[str, FamilySpec] = MappingProxyType(
    {f.name: f for f in (_FINCH, _WARBLER, _VIREO, _TANAGER, _SPARROW)}
)
