"""The model behind the emulator: what it answers to a decoded request.

The server decodes every request, whatever its wire format, into a :class:`ModelInput`
and asks :func:`respond` for the answer; the wire format only changes how the answer is
wrapped. ``respond`` is deterministic in its input: the same request always gets the
same bytes back. Temperature and the sample index add noise, drawn from a generator
seeded by the request's content.

The model recognises the method's requests by their cues, as a real model would:
two lettered texts to compare, two descriptions to judge, a lettered option list,
``<START>``/``<END>`` wrapping for criticism, rewriting and optimisation, and a request
for a variation of an instruction. Any other
request with an image is answered with a description, guided by the attributes the
prompt names; a request with neither gets a short generic answer.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from dataclasses import dataclass

from PIL import Image

from . import _sim_behaviours as behave
from ._sim_perceive import Percept, perceive_cached

__all__ = ["ModelInput", "ModelOutput", "respond"]

logger = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 4
_COMPARE = re.compile(r"Text 1:\s*(.*?)\s*Text 2:\s*(.*?)\s*(?:\n\s*Which\b|\Z)", re.S)
_JUDGE = re.compile(
    r"Description 1:\s*(.*?)\s*Description 2:\s*(.*?)\s*\n\s*Which description\b",
    re.S,
)
_JUDGE_CLASSES = re.compile(r"classes the \w+ belongs to: (.*?)\.\n")
_OPTION_LINE = re.compile(r"^\s*\(?[A-Z][.)]\s+\S", re.MULTILINE)


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
    text = "\n".join(request.texts)
    rng = random.Random(_request_seed(request))
    percepts = _perceive_all(request)
    answer = _dispatch(text, percepts, rng, request.temperature)
    return ModelOutput(_truncate(answer, request.max_tokens))


def _request_seed(request: ModelInput) -> int:
    h = hashlib.sha256()
    h.update(request.model.encode())
    for text in request.texts:
        h.update(b"\x00T" + text.encode())
    for digest in request.image_digests:
        h.update(b"\x00I" + digest.encode())
    h.update(f"\x00{request.system}".encode())
    # At temperature 0 the sample index must not matter: every draw is the same.
    if request.temperature > 0:
        h.update(f"\x00{request.temperature!r}\x00{request.seed}".encode())
    return int.from_bytes(h.digest()[:8], "big")


def _perceive_all(request: ModelInput) -> list[Percept]:
    images = request.images
    digests = list(request.image_digests)
    percepts = []
    for index, image in enumerate(images):
        if index < len(digests):
            digest = digests[index]
        else:
            # A caller that gave no digest still gets a stable cache key.
            digest = hashlib.sha256(image.tobytes()).hexdigest() + image.mode
        percepts.append(perceive_cached(digest, image))
    return percepts


def _dispatch(
    text: str, percepts: list[Percept], rng: random.Random, temperature: float
) -> str:
    wrapped = "<START>" in text and "<END>" in text
    if wrapped and "Analyse what these descriptions" in text:
        return behave.answer_optimise(text, percepts, rng)
    if wrapped and re.search(r"improved prompts?|problem with this prompt", text, re.I):
        return behave.answer_rewrite(text, rng)
    if wrapped and re.search(r"\breasons?\b", text, re.I):
        return behave.answer_criticise(text, percepts, rng)
    if re.search(r"variation of the following instruction|paraphrase|rephrase", text,
                 re.I):  # fmt: skip
        return behave.answer_paraphrase(text, rng)
    if not percepts:
        return _generic(text)
    image = percepts[-1]
    judged = _JUDGE.search(text)
    if judged:
        listed = _JUDGE_CLASSES.search(text)
        classes = listed.group(1).split(", ") if listed else []
        return behave.answer_judge(
            judged.group(1), judged.group(2), classes, image, rng
        )
    compared = _COMPARE.search(text)
    if compared:
        return behave.answer_compare(compared.group(1), compared.group(2), image, rng)
    if "Options:" in text and _OPTION_LINE.search(text.split("Options:", 1)[1]):
        return behave.answer_classify(text, image, rng, temperature)
    return behave.answer_describe(text, image, rng, temperature)


def _generic(text: str) -> str:
    if not text.strip():
        return "Hello! How can I help?"
    return "I can help with questions about images of birds; please attach an image."


def _truncate(answer: str, max_tokens: int) -> str:
    limit = max(1, max_tokens) * _CHARS_PER_TOKEN
    if len(answer) <= limit:
        return answer
    cut = answer[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut
