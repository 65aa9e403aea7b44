"""The requests the method makes, built from the task and the settings.

Every request is a pure function of its inputs: the same prompt, image and settings
always give the same :class:`~engine.request.Request`, so the cache answers a rerun.
Descriptions are always drawn with ``sample=0``: one description per (prompt, image),
fixed once drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autosep import prompts
from autosep.config import RunConfig
from autosep.tasks import Task
from engine.request import ImageRef, Request

__all__ = ["CallMaker", "ErrorExample", "LabelError", "Mistake", "PHASES"]

PHASES = (
    "describe",
    "compare",
    "criticise",
    "rewrite",
    "paraphrase",
    "classify",
    "baseline",
)


@dataclass(frozen=True, slots=True)
class ErrorExample:
    """A comparison the model got wrong: image ``image`` preferred ``wrong``.

    Attributes:
        image: The image shown.
        negative: The other image, whose description was preferred.
        correct: The image's own description.
        wrong: The other image's description.
    """

    image: str
    negative: str
    correct: str
    wrong: str


@dataclass(frozen=True, slots=True)
class LabelError:
    """A classification that missed the label it was scored against.

    Used by the pseudo-label baselines, whose labels are drawn or voted, not true.

    Attributes:
        image: The image classified.
        description: Its description, shown with it when it was classified.
        label: The class it was scored against.
        predicted: The class the model chose, or None when the answer named none.
    """

    image: str
    description: str
    label: str
    predicted: str | None


Mistake = ErrorExample | LabelError


@dataclass(frozen=True)
class CallMaker:
    """Builds every request of a run from the task and the settings."""

    task: Task
    config: RunConfig

    def describe(self, prompt: str, image: str) -> Request:
        """Ask for a description of one image under a description prompt."""
        return self._main(
            (ImageRef(image), prompt),
            temperature=self.config.describe_temperature,
            max_tokens=self.config.describe_max_tokens,
        )

    def compare(self, image: str, first: str, second: str) -> Request:
        """Ask which of two descriptions describes the image."""
        text = prompts.compare_prompt(self.task.noun, first, second)
        return self._main(
            (ImageRef(image), text),
            temperature=0.0,
            max_tokens=self.config.compare_max_tokens,
        )

    def criticise(self, section: str, errors: Sequence[Mistake]) -> Request:
        """Ask why a prompt's task section led to these errors."""
        text = prompts.criticise_prompt(
            self.task.noun,
            self.task.classes,
            section,
            _mistakes(errors),
            count=self.config.gradients_per_error,
        )
        return self._critic((text, *(ImageRef(e.image) for e in errors)))

    def rewrite(self, section: str, errors: Sequence[Mistake], reason: str) -> Request:
        """Ask for improved task sections that answer one reason."""
        text = prompts.rewrite_prompt(
            self.task.noun,
            self.task.classes,
            section,
            _mistakes(errors),
            reason,
            count=self.config.steps_per_gradient,
        )
        return self._critic((text, *(ImageRef(e.image) for e in errors)))

    def optimise(
        self, section: str, examples: Sequence[tuple[str, str]], sample: int
    ) -> Request:
        """Ask SPO's optimiser for one better task section, from the prompt's outputs.

        Args:
            section: The task section of the current best prompt.
            examples: (image, its description under that prompt) pairs; the images
                are attached in the same order.
            sample: Which draw this is: a round whose candidate lost asks again
                with the same material, and must get a fresh proposal.
        """
        text = prompts.optimise_prompt(
            self.task.noun,
            self.task.classes,
            section,
            [description for _, description in examples],
        )
        return self._critic(
            (text, *(ImageRef(image) for image, _ in examples)), sample=sample
        )

    def judge(self, image: str, first: str, second: str) -> Request:
        """Ask which of two prompts' descriptions of one image is the better."""
        text = prompts.judge_prompt(self.task.noun, self.task.classes, first, second)
        return self._main(
            (ImageRef(image), text),
            temperature=0.0,
            max_tokens=self.config.compare_max_tokens,
        )

    def paraphrase(self, section: str, sample: int) -> Request:
        """Ask for one variation of a task section (text only)."""
        return self._critic((prompts.paraphrase_prompt(section),), sample=sample)

    def classify(
        self,
        image: str,
        description: str | None,
        *,
        temperature: float = 0.0,
        sample: int = 0,
        context: Sequence[tuple[str, str | None]] = (),
    ) -> Request:
        """Ask which class an image shows, optionally after context images.

        Args:
            image: The query image.
            description: A description of it to show, or None.
            temperature: Sampling temperature (votes draw at > 0).
            sample: Which draw this is.
            context: (image, label or None) pairs shown before the query.
        """
        text = prompts.classify_prompt(self.task.noun, self.task.classes, description)
        parts: tuple[str | ImageRef, ...] = (ImageRef(image), text)
        if context:
            parts = (
                *prompts.context_parts(self.task.noun, context, ImageRef),
                ImageRef(image),
                text,
            )
        return self._main(
            parts,
            temperature=temperature,
            max_tokens=self.config.classify_max_tokens,
            sample=sample,
        )

    def _main(
        self,
        parts: tuple[str | ImageRef, ...],
        *,
        temperature: float,
        max_tokens: int,
        sample: int = 0,
    ) -> Request:
        return Request(
            provider=self.config.provider,
            model=self.config.main_model,
            parts=parts,
            temperature=temperature,
            max_tokens=max_tokens,
            sample=sample,
        )

    def _critic(self, parts: tuple[str | ImageRef, ...], sample: int = 0) -> Request:
        provider, model = self.config.critic
        return Request(
            provider=provider,
            model=model,
            parts=parts,
            temperature=self.config.critic_temperature,
            max_tokens=self.config.critic_max_tokens,
            sample=sample,
        )


def _mistakes(errors: Sequence[Mistake]) -> str:
    """Render error examples, which are all of one kind, as the prompts show them."""
    if all(isinstance(e, ErrorExample) for e in errors):
        return prompts.comparison_mistakes(
            [(e.correct, e.wrong) for e in errors if isinstance(e, ErrorExample)]
        )
    if all(isinstance(e, LabelError) for e in errors):
        return prompts.classification_mistakes(
            [
                (e.description, e.label, e.predicted or "no clear answer")
                for e in errors
                if isinstance(e, LabelError)
            ]
        )
    raise TypeError("error examples of both kinds cannot be shown together")
