"""The JSON-lines batch format of ``cli.py batch``: requests in, results out.

Input, one object a line::

    {"id": "q1", "prompt": "Describe the bird.", "images": ["a.jpg"],
     "model": "gpt-4o", "temperature": 0.0, "max_tokens": 256}

``prompt`` (text) and ``images`` (file paths, relative to the input file's folder)
are required; the rest are optional. Output, one object a line in input order:
``{"id", "text", "usage", "cached"}`` or ``{"id", "error"}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.request import Failure, ImageRef, Request, Response, Result

__all__ = ["BatchItem", "read_batch", "result_row"]

_KNOWN = {"id", "prompt", "images", "model", "temperature", "max_tokens", "system"}


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One input line: its request, or why it has none."""

    line: int
    id: Any
    request: Request | None
    error: str | None = None


def read_batch(
    path: Path, *, provider: str, model: str, max_tokens: int = 256
) -> Iterator[BatchItem]:
    """Read a JSON-lines batch file; a bad line becomes an item with an error.

    Blank lines are skipped (and get no output line). Image paths are resolved
    against the file's folder.
    """
    base = path.parent
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                yield _item(raw, number, path, base, provider, model, max_tokens)


def _item(
    raw: bytes,
    number: int,
    path: Path,
    base: Path,
    provider: str,
    model: str,
    max_tokens: int,
) -> BatchItem:
    where = f"{path}:{number}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return BatchItem(number, number, None, f"{where}: not valid JSON ({error})")
    if not isinstance(data, dict):
        return BatchItem(number, number, None, f"{where}: expected a JSON object")
    item_id = data.get("id", number)
    problem = _problem(data)
    if problem:
        return BatchItem(number, item_id, None, f"{where}: {problem}")
    images = tuple(ImageRef(str(base / image)) for image in data["images"])
    request = Request(
        provider,
        data.get("model") or model,
        (data["prompt"], *images),
        temperature=data.get("temperature", 0.0),
        max_tokens=data.get("max_tokens", max_tokens),
        system=data.get("system"),
    )
    return BatchItem(number, item_id, request)


def _problem(data: dict[str, Any]) -> str | None:
    """Say what is wrong with an input object, or None."""
    unknown = set(data) - _KNOWN
    if unknown:
        names, known = ", ".join(sorted(unknown)), ", ".join(sorted(_KNOWN))
        return f"unknown field(s) {names}; known fields: {known}"
    if not isinstance(data.get("prompt"), str):
        return '"prompt" must be a string'
    images = data.get("images")
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        return '"images" must be a list of file paths'
    temperature = data.get("temperature", 0.0)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return '"temperature" must be a number'
    tokens = data.get("max_tokens", 1)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        return '"max_tokens" must be a positive whole number'
    for name in ("model", "system"):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            return f'"{name}" must be a string'
    return None


def result_row(item: BatchItem, result: Result | None) -> dict[str, Any]:
    """Return the output object for an item and its result."""
    if item.error is not None:
        return {"id": item.id, "error": item.error}
    if isinstance(result, Failure):
        return {"id": item.id, "error": str(result)}
    assert isinstance(result, Response)
    usage = result.usage
    return {
        "id": item.id,
        "text": result.text,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "image_tokens": usage.image_tokens,
        },
        "cached": result.cached,
    }
