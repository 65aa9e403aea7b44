"""The model behind the emulator: what it answers to a decoded request.

The server decodes every request, whatever its wire format, into a :class:`ModelInput`
and asks :func:`respond` for the answer; the wire format only changes how the answer is
wrapped. ``respond`` must be deterministic in its input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PIL import Image

__all__ = ["ModelInput", "ModelOutput", "respond"]


@dataclass(frozen=True)
class ModelInput:
    """A request as the model sees it: text and decoded images, in order."""

    model: str
    parts: tuple[str | Image.Image, ...]
    image_digests: tuple[str, ...]
    system: str | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None

    @property
    def texts(self) -> list[str]:
        return [p for p in self.parts if isinstance(p, str)]

    @property
    def images(self) -> list[Image.Image]:
        return [p for p in self.parts if not isinstance(p, str)]


@dataclass(frozen=True)
class ModelOutput:
    """The model's answer; ``output_tokens`` None means count it from the text."""

    text: str
    output_tokens: int | None = None


def respond(request: ModelInput) -> ModelOutput:
    """Answer a request deterministically from its content."""
    h = hashlib.sha256()
    h.update(request.model.encode())
    for text in request.texts:
        h.update(b"T" + text.encode())
    for digest in request.image_digests:
        h.update(b"I" + digest.encode())
    h.update(f"|{request.temperature}|{request.seed}|{request.system}".encode())
    return ModelOutput(f"answer {h.hexdigest()[:24]}")
