"""The method's prompts, as data.

Every prompt the method sends is one of these templates with the task's noun, class
names and the call's own material filled in; no task has code of its own. The wording
follows the method's description; the simulated model behind the emulator recognises
the behaviours by these same cues (``Text 1``/``Text 2``, lettered ``Options:``,
``<START>``/``<END>``, "variation of the following instruction").
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "INITIAL_PROMPT",
    "TASK_HEADER",
    "classify_prompt",
    "compare_prompt",
    "criticise_prompt",
    "initial_prompt",
    "option_letters",
    "paraphrase_prompt",
    "rewrite_prompt",
]

TASK_HEADER = "# Task"

INITIAL_PROMPT = (
    "# Task\n"
    "Describe the {noun} in the image in detail, focusing on highly distinctive "
    "attributes typical of this {noun}; ignore the background.\n"
    "\n"
    "# Output format\n"
    "Answer in a few plain sentences."
)

_COMPARE = (
    "Here is an image of a {noun} and two descriptions of {noun}s.\n"
    "Text 1: {first}\n"
    "Text 2: {second}\n"
    "Which text describes the {noun} in this image? "
    'Answer with "first" or "second" only.'
)

_CLASSIFY = (
    "Which {noun} is shown in the image?\n"
    "{description_block}"
    "Options:\n"
    "{options}\n"
    "Answer with the letter of the correct option only."
)

_DESCRIPTION_BLOCK = "The image shows the following features: {description}\n"

_CONTEXT = (
    "I'm writing a prompt that asks a model to describe images of {noun}s, so that "
    "each description tells the {noun} in its image apart from others. The {noun}s "
    "belong to these classes: {classes}.\n"
    "\n"
    'My current prompt is:\n"{prompt}"\n'
    "\n"
    "But descriptions written with this prompt get the following examples wrong. "
    "The images are attached in the same order. For each example, the model was "
    "shown the image and preferred the wrong description over the correct one.\n"
    "{examples}"
)

_EXAMPLE = (
    "\nExample {number}:\n"
    "Correct description: {correct}\n"
    "Wrong description preferred: {wrong}\n"
)

_CRITICISE = (
    "{context}\n"
    "Give {count} reasons why the prompt could have led to these mistakes. "
    "Wrap each reason with <START> and <END>."
)

_REWRITE = (
    "{context}\n"
    "Based on these examples, the problem with this prompt is that:\n{reason}\n"
    "\n"
    "Based on the above information, write {count} different improved prompts. "
    "Each prompt is wrapped with <START> and <END>."
)

_PARAPHRASE = (
    "Generate a variation of the following instruction while keeping the semantic "
    "meaning.\n"
    "\n"
    "Input: {prompt}\n"
    "\n"
    "Output:"
)


def initial_prompt(noun: str) -> str:
    """Return the reference initial description prompt for a noun."""
    return INITIAL_PROMPT.format(noun=noun)


def option_letters(count: int) -> str:
    """Return the option letters for ``count`` classes (A, B, C, ...).

    >>> option_letters(3)
    'ABC'
    """
    if not 1 <= count <= 26:
        raise ValueError(f"a task needs between 1 and 26 classes, got {count}")
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:count]


def compare_prompt(noun: str, first: str, second: str) -> str:
    """Return the instance-level comparison prompt (the image goes before it)."""
    return _COMPARE.format(noun=noun, first=first, second=second)


def classify_prompt(noun: str, classes: Sequence[str], description: str | None) -> str:
    """Return the classification prompt, with a description when one is given."""
    letters = option_letters(len(classes))
    options = "\n".join(f"{letter}. {name}" for letter, name in zip(letters, classes))
    block = "" if description is None else _DESCRIPTION_BLOCK.format(
        description=description
    )
    return _CLASSIFY.format(noun=noun, description_block=block, options=options)


def _context(
    noun: str, classes: Sequence[str], prompt: str, errors: Sequence[tuple[str, str]]
) -> str:
    examples = "".join(
        _EXAMPLE.format(number=i, correct=correct, wrong=wrong)
        for i, (correct, wrong) in enumerate(errors, start=1)
    )
    return _CONTEXT.format(
        noun=noun, classes=", ".join(classes), prompt=prompt, examples=examples
    )


def criticise_prompt(
    noun: str,
    classes: Sequence[str],
    prompt: str,
    errors: Sequence[tuple[str, str]],
    count: int = 1,
) -> str:
    """Return the criticism ("gradient") prompt for error examples.

    Args:
        noun: The task's noun.
        classes: The class names.
        prompt: The task section of the current description prompt.
        errors: Pairs of (correct description, wrong description preferred).
        count: How many reasons to ask for.
    """
    return _CRITICISE.format(
        context=_context(noun, classes, prompt, errors), count=count
    )


def rewrite_prompt(
    noun: str,
    classes: Sequence[str],
    prompt: str,
    errors: Sequence[tuple[str, str]],
    reason: str,
    count: int = 1,
) -> str:
    """Return the rewriting prompt that turns one reason into ``count`` new prompts."""
    return _REWRITE.format(
        context=_context(noun, classes, prompt, errors), reason=reason, count=count
    )


def paraphrase_prompt(prompt: str) -> str:
    """Return the paraphrase prompt for a task section."""
    return _PARAPHRASE.format(prompt=prompt)
