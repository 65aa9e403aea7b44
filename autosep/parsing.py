"""Reading the model's answers: compare positions, option letters, tagged texts.

A parser returns None when the answer does not name exactly one choice; the caller
counts it as unparsed and reports it. Nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["parse_compare", "parse_letter", "parse_tagged"]

_FIRST = re.compile(r"\b(?:first|1st|one|text\s*1|1)\b", re.IGNORECASE)
_SECOND = re.compile(r"\b(?:second|2nd|two|text\s*2|2)\b", re.IGNORECASE)
_TAGGED = re.compile(r"<START>(.*?)<END>", re.DOTALL)
# Markup a model wraps around a bare answer: bold, brackets, quotes, a trailing dot.
_DECORATION = " \t*_`'\"()[]{}.:,;!"
_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+)?(?:answer|option|choice|correct option)"
    r"\s*(?:is)?\s*[:\-]?\s*",
    re.IGNORECASE,
)


def parse_compare(text: str) -> int | None:
    """Return 0 if the answer names the first text, 1 the second, else None.

    >>> parse_compare("Text 1"), parse_compare("the first one")
    (0, 0)
    >>> parse_compare("Second.")
    1
    >>> parse_compare("first or second") is None
    True
    """
    first = bool(_FIRST.search(text))
    second = bool(_SECOND.search(text))
    if first == second:
        return None
    return 0 if first else 1


def parse_letter(text: str, classes: Sequence[str]) -> int | None:
    """Return the index of the one option an answer names, else None.

    Accepted: ``B``, ``B.``, ``(B)``, ``**B**``, ``Answer: B``, ``B. Hooded Oriole``, a
    first line starting with the letter, or the class name itself. An answer that
    names two options, or none, is None.

    >>> parse_letter("**B**", "xyz"), parse_letter("Answer: (C)", "xyz")
    (1, 2)
    >>> parse_letter("A or B", ["x", "y"]) is None
    True
    """
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(classes)]
    # The first line that names an option decides; one that names two ends the
    # search, since guessing between them would hide the model's indecision.
    for line in text.strip().splitlines():
        found = _parse_line(line, letters, classes)
        if found is not _NOTHING:
            return found if isinstance(found, int) else None
    return None


_NOTHING = object()
_AMBIGUOUS = object()


def _parse_line(line: str, letters: str, classes: Sequence[str]) -> object:
    body = _PREFIX.sub("", line.strip(_DECORATION)).strip(_DECORATION)
    if not body:
        return _NOTHING
    if len(body) == 1:
        return letters.index(body.upper()) if body.upper() in letters else _NOTHING
    leading = re.match(r"^\(?([A-Z])(?:[.):]|\s*[-–]\s|\s+)", body + " ")
    named = _named_classes(body, classes)
    if leading and leading.group(1) in letters:
        index = letters.index(leading.group(1))
        # "B. Hooded Oriole" names the class it letters; "B. or C." names two.
        rest = body[leading.end() :]
        if _letters_in(rest, letters) or (named and named != {index}):
            return _AMBIGUOUS
        return index
    if len(named) > 1:
        return _AMBIGUOUS
    return named.pop() if named else _NOTHING


def _named_classes(text: str, classes: Sequence[str]) -> set[int]:
    lowered = text.lower()
    found = {i for i, name in enumerate(classes) if name.lower() in lowered}
    # A class whose name is inside a longer named class ("Oriole" in "Hooded
    # Oriole") does not count as a second answer.
    return {
        i
        for i in found
        if not any(j != i and classes[i].lower() in classes[j].lower() for j in found)
    }


def _letters_in(text: str, letters: str) -> bool:
    return any(re.search(rf"(?<![A-Za-z]){c}(?![A-Za-z])", text) for c in letters)


def parse_tagged(text: str) -> list[str]:
    """Return the stripped texts wrapped in ``<START>`` and ``<END>``, in order.

    >>> parse_tagged("x <START> one <END> y <START>two<END>")
    ['one', 'two']
    """
    return [match.strip() for match in _TAGGED.findall(text) if match.strip()]
