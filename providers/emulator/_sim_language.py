"""The model's language about birds: finding attributes in text, and stating them.

One vocabulary serves both directions. A prompt's attention is the list of attributes it
names, in the order it first names them (with synonyms: bill or beak, eye ring or ring
around the eye, ...). A description is a sentence per attribute, and reading a
description back gives the values it states.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._sim_species import ATTRIBUTES, COLOURS

__all__ = [
    "LABELS",
    "describe",
    "find_mentions",
    "parse_statements",
]

# Patterns are tried in this order and each match is blanked before the next pattern
# runs, so "wing bars" is never also read as "wings", nor "top of the head" as "head".
_MENTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"wing[- ]?bars?|bars? on the wings?|wing stripes?", ("wing_bars",)),
    (r"eye[- ]?rings?|rings? (?:a)?round the eyes?|orbital rings?|spectacles",
     ("eye_ring",)),
    (r"crown(?: patch(?:es)?)?|top of the head|caps?|crest", ("crown",)),
    (r"(?:bill|beak) colou?rs?|colou?rs? of the (?:bill|beak)", ("bill_colour",)),
    (r"(?:bill|beak) (?:length|size|shape)|(?:length|size|shape) of the (?:bill|beak)",
     ("bill_length",)),
    (r"tail(?:s| length)?|length of the tail", ("tail_length",)),
    (r"throat|chin", ("throat_colour",)),
    (r"breast(?: pattern)?|chest|streak(?:s|ing|ed)?|spot(?:s|ted|ting)?|markings",
     ("breast_pattern",)),
    (r"legs?|feet|foot", ("leg_colour",)),
    (r"back|upper ?parts|mantle|plumage|body colou?r|overall colou?r",
     ("back_colour",)),
    (r"belly|under ?parts|underside", ("belly_colour",)),
    (r"wings?(?: colou?r)?|colou?r of the wings", ("wing_colour",)),
    (r"head|face", ("head_colour",)),
    (r"bills?|beaks?", ("bill_colour", "bill_length")),
    (r"eyes?", ("eye_ring",)),
)  # fmt: skip
_COMPILED = tuple(
    (re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE), names)
    for pattern, names in _MENTIONS
)

#: How criticism and rewriting name each attribute.
LABELS: dict[str, str] = {spec.name: spec.label for spec in ATTRIBUTES}
LABELS["eye_ring"] = "ring around the eye"

_COLOUR_WORDS = {
    **{name: name for name in COLOURS},
    "gray": "grey",
    "rufous": "chestnut",
    "tan": "buff",
    "beige": "buff",
    "cream": "buff",
    "olive-green": "olive",
}
_COLOUR_RE = re.compile(
    r"\b(" + "|".join(sorted(_COLOUR_WORDS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(?:no|without|lacks?|lacking|absent|not|none)\b", re.I)
_COUNT = (
    (re.compile(r"\b(?:two|double|pair of|2)\b", re.I), "2"),
    (re.compile(r"\b(?:one|single|1)\b", re.I), "1"),
    (_NEGATION, "0"),
)
_LENGTH = (
    (re.compile(r"\b(?:long|elongated|lengthy)\b", re.I), "long"),
    (re.compile(r"\b(?:short|stubby|small)\b", re.I), "short"),
)
_PATTERN = (
    (re.compile(r"\b(?:plain|unmarked|clean)\b", re.I), "plain"),
    (re.compile(r"\bstreak", re.I), "streaked"),
    (re.compile(r"\b(?:spot|speck)", re.I), "spotted"),
)
_SENTENCE_END = re.compile(r"[.;!?\n]+")


def find_mentions(text: str) -> list[str]:
    """Return the attributes a text names, in the order it first names them.

    >>> find_mentions("Describe the beak, then the ring around the eye and the back.")
    ['bill_colour', 'bill_length', 'eye_ring', 'back_colour']
    """
    work = text
    hits: list[tuple[int, int, str]] = []
    for pattern, names in _COMPILED:
        for match in pattern.finditer(work):
            hits.extend((match.start(), rank, name) for rank, name in enumerate(names))
        work = pattern.sub(lambda m: " " * len(m.group()), work)
    ordered: list[str] = []
    for _, _, name in sorted(hits):
        if name not in ordered:
            ordered.append(name)
    return ordered


_KINDS = {spec.name: spec.kind for spec in ATTRIBUTES}


def _first(rules, sentence: str) -> str | None:
    for pattern, value in rules:
        if pattern.search(sentence):
            return value
    return None


def _colour_in(sentence: str) -> str | None:
    match = _COLOUR_RE.search(sentence)
    return None if match is None else _COLOUR_WORDS[match.group(1).lower()]


def _value(attribute: str, sentence: str) -> str | None:
    """Read the value a sentence states for an attribute, if it states one."""
    kind = _KINDS[attribute]
    if kind == "colour":
        return _colour_in(sentence)
    if kind == "length":
        return _first(_LENGTH, sentence)
    if kind == "count":
        return _first(_COUNT, sentence)
    if kind == "pattern":
        return _first(_PATTERN, sentence)
    if _NEGATION.search(sentence):
        return "none"
    if kind == "ring":
        return "white"
    return _colour_in(sentence)


def parse_statements(text: str) -> dict[str, str]:
    """Return the attribute values a description states (the first statement wins).

    >>> parse_statements("Its bill is pink. It has two white wing bars.")
    {'bill_colour': 'pink', 'wing_bars': '2'}
    """
    stated: dict[str, str] = {}
    for sentence in _SENTENCE_END.split(text):
        for attribute in find_mentions(sentence):
            if attribute in stated:
                continue
            value = _value(attribute, sentence)
            if value is not None:
                stated[attribute] = value
    return stated


_NUMBERS = {"0": "no", "1": "one", "2": "two"}


def _sentence(attribute: str, value: str) -> str:
    if attribute == "wing_bars":
        if value == "0":
            return "It has no wing bars."
        plural = "s" if value != "1" else ""
        return f"It has {_NUMBERS[value]} white wing bar{plural}."
    if attribute == "eye_ring":
        if value == "none":
            return "It has no eye ring."
        return f"It has a {value} ring around the eye."
    if attribute == "crown":
        if value == "none":
            return "Its crown is plain, with no patch."
        return f"It has a {value} crown patch."
    templates = {
        "back_colour": "Its back is {}.",
        "belly_colour": "Its belly is {}.",
        "wing_colour": "Its wings are {}.",
        "head_colour": "Its head is {}.",
        "tail_length": "It has a {} tail.",
        "throat_colour": "Its throat is {}.",
        "breast_pattern": "Its breast is {}.",
        "leg_colour": "Its legs are {}.",
        "bill_length": "It has a {} bill.",
        "bill_colour": "Its bill is {}.",
    }
    return templates[attribute].format(value)


def describe(noun: str, items: Iterable[tuple[str, str]]) -> str:
    """Write a description stating each (attribute, value) pair, in order."""
    sentences = [f"The {noun} is perched on a branch."]
    sentences.extend(_sentence(attribute, value) for attribute, value in items)
    return " ".join(sentences)
