"""What the engine is asked to do, and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import FinishReason, ProviderError, Usage

__all__ = ["Failure", "ImageRef", "Part", "Request", "Response", "Result"]


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image named by its file path; nothing is read until the call needs it."""

    path: str


Part = str | ImageRef


@dataclass(frozen=True, slots=True)
class Request:
    """One model call as the method plans it.

    Attributes:
        provider: The name of a configured provider endpoint (``emulator``,
            ``openai``, ``gemini``, ``anthropic`` or a user-defined name).
        model: The model name as the provider spells it.
        parts: The user message: text and images, in order.
        temperature: Sampling temperature.
        max_tokens: The output budget.
        top_p: Nucleus sampling mass, or None to leave the provider's default.
        system: An optional system instruction.
        sample: Which draw this is, for repeated samples of the same request at
            temperature > 0; draws with different indices are cached apart.
    """

    provider: str
    model: str
    parts: tuple[Part, ...]
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    system: str | None = None
    sample: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    """A successful answer, from the provider or from the cache."""

    texts: tuple[str, ...]
    finish: FinishReason
    usage: Usage
    latency_s: float
    cached: bool
    attempts: int = 1

    @property
    def text(self) -> str:
        """The first (usually only) answer text."""
        return self.texts[0] if self.texts else ""


@dataclass(frozen=True, slots=True)
class Failure:
    """A call that did not produce an answer, with the reason kept.

    ``kind`` is an :class:`providers.base.ErrorKind` value, or ``image`` for an image
    that could not be prepared, or ``config`` for a request the engine cannot route.
    """

    kind: str
    message: str
    attempts: int = 0
    status: int | None = None

    @classmethod
    def from_error(cls, error: ProviderError, attempts: int) -> Failure:
        return cls(str(error.kind), error.message, attempts, error.status)

    def __str__(self) -> str:
        status = f"HTTP {self.status} " if self.status is not None else ""
        return f"{status}{self.kind}: {self.message}"


Result = Response | Failure
