"""The method's prompts, as data.

Every prompt the method sends is one of these templates with the task's noun, class
names and the call's own material filled in; no task has code of its own. The wording
follows the method's description; the simulated model behind the emulator recognises
the behaviours by these same cues (``Text 1``/``Text 2``, lettered ``Options:``,
``<START>``/``<END>``, "variation of the following instruction", ``Description 1``/
``Description 2``, "Analyse what these descriptions").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = [
    "INITIAL_PROMPT",
    "TASK_HEADER",
    "classification_mistakes",
    "classify_prompt",
    "compare_prompt",
    "comparison_mistakes",
    "context_parts",
    "criticise_prompt",
    "initial_prompt",
    "judge_prompt",
    "optimise_prompt",
    "option_letters",
    "paraphrase_prompt",
    "replace_task_section",
    "rewrite_prompt",
    "task_section",
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
    "{mistakes}"
)

_COMPARISON_MISTAKES = (
    "But descriptions written with this prompt get the following examples wrong. "
    "The images are attached in the same order. For each example, the model was "
    "shown the image and preferred the wrong description over the correct one.\n"
)

_COMPARISON_EXAMPLE = (
    "\nExample {number}:\n"
    "Correct description: {correct}\n"
    "Wrong description preferred: {wrong}\n"
)

_CLASSIFICATION_MISTAKES = (
    "But with descriptions written by this prompt, the model classifies the "
    "following examples wrongly. The images are attached in the same order. For "
    "each example, the model was shown the image and its description, and chose a "
    "class other than the label.\n"
)

_CLASSIFICATION_EXAMPLE = (
    "\nExample {number}:\n"
    "Description: {description}\n"
    "Label: {label}\n"
    "Prediction: {prediction}\n"
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


_OPTIMISE = (
    "I'm writing a prompt that asks a model to describe images of {noun}s, so that "
    "each description helps to tell which of these classes the {noun} in its image "
    "belongs to: {classes}.\n"
    "\n"
    'My current prompt is:\n"{prompt}"\n'
    "\n"
    "Here is what it gave for some images, which are attached in the same order.\n"
    "{examples}"
    "\n"
    "Analyse what these descriptions capture and what they miss for telling the "
    "classes apart, then write {count} improved prompt. Wrap it with <START> and "
    "<END>."
)

_OUTPUT_EXAMPLE = "\nExample {number}:\nDescription: {description}\n"

_JUDGE = (
    "Here is an image of a {noun} and two descriptions of it, each written with a "
    "different prompt. The descriptions are meant to help tell which of these "
    "classes the {noun} belongs to: {classes}.\n"
    "Description 1: {first}\n"
    "Description 2: {second}\n"
    "Which description is more accurate and more useful for telling these classes "
    'apart? Answer with "first" or "second" only.'
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
    options = "\n".join(
        f"{letter}. {name}" for letter, name in zip(letters, classes, strict=True)
    )
    block = (
        ""
        if description is None
        else _DESCRIPTION_BLOCK.format(description=description)
    )
    return _CLASSIFY.format(noun=noun, description_block=block, options=options)


def comparison_mistakes(errors: Sequence[tuple[str, str]]) -> str:
    """Return the examples block for comparisons the model got wrong.

    Args:
        errors: Pairs of (correct description, wrong description preferred).
    """
    return _COMPARISON_MISTAKES + "".join(
        _COMPARISON_EXAMPLE.format(number=i, correct=correct, wrong=wrong)
        for i, (correct, wrong) in enumerate(errors, start=1)
    )


def classification_mistakes(errors: Sequence[tuple[str, str, str]]) -> str:
    """Return the examples block for classifications that missed their label.

    Args:
        errors: Triples of (description, label, prediction).
    """
    return _CLASSIFICATION_MISTAKES + "".join(
        _CLASSIFICATION_EXAMPLE.format(
            number=i, description=description, label=label, prediction=prediction
        )
        for i, (description, label, prediction) in enumerate(errors, start=1)
    )


def _context(noun: str, classes: Sequence[str], prompt: str, mistakes: str) -> str:
    return _CONTEXT.format(
        noun=noun, classes=", ".join(classes), prompt=prompt, mistakes=mistakes
    )


def criticise_prompt(
    noun: str,
    classes: Sequence[str],
    prompt: str,
    mistakes: str,
    count: int = 1,
) -> str:
    """Return the criticism ("gradient") prompt for error examples.

    Args:
        noun: The task's noun.
        classes: The class names.
        prompt: The task section of the current description prompt.
        mistakes: The examples block, from :func:`comparison_mistakes` or
            :func:`classification_mistakes`.
        count: How many reasons to ask for.
    """
    return _CRITICISE.format(
        context=_context(noun, classes, prompt, mistakes), count=count
    )


def rewrite_prompt(
    noun: str,
    classes: Sequence[str],
    prompt: str,
    mistakes: str,
    reason: str,
    count: int = 1,
) -> str:
    """Return the rewriting prompt that turns one reason into ``count`` new prompts."""
    return _REWRITE.format(
        context=_context(noun, classes, prompt, mistakes), reason=reason, count=count
    )


def paraphrase_prompt(prompt: str) -> str:
    """Return the paraphrase prompt for a task section."""
    return _PARAPHRASE.format(prompt=prompt)


_CONTEXT_LABELLED = (
    "Here are some example images of {noun}s, each followed by its class. "
    "The last image, after the examples, is the one to classify."
)

_CONTEXT_UNLABELLED = (
    "Here are some other images of {noun}s, for reference. "
    "The last image, after them, is the one to classify."
)

_CONTEXT_LABEL = "Class: {label}"

_ImageT = TypeVar("_ImageT")


def context_parts(
    noun: str,
    context: Sequence[tuple[str, str | None]],
    make_image: Callable[[str], _ImageT],
) -> list[str | _ImageT]:
    """Return the message parts that show context images before a query image.

    Used by the few-shot and multiple-image baselines: the query image and the
    classification prompt follow these parts.

    Args:
        noun: The task's noun.
        context: (image path, label or None) pairs; all labelled or all not.
        make_image: Turns a path into an image part.
    """
    labelled = any(label is not None for _, label in context)
    intro = _CONTEXT_LABELLED if labelled else _CONTEXT_UNLABELLED
    parts: list[str | _ImageT] = [intro.format(noun=noun)]
    for path, label in context:
        parts.append(make_image(path))
        if label is not None:
            parts.append(_CONTEXT_LABEL.format(label=label))
    return parts


def task_section(prompt: str) -> str:
    r"""Return the part of a description prompt that the optimiser rewrites.

    That is the text under the ``# Task`` line up to the next ``# `` heading, or
    the whole prompt when it has no ``# Task`` line.

    >>> task_section("# Task\nDescribe it.\n\n# Output format\nShort.")
    'Describe it.'
    """
    head, body, tail = _split_sections(prompt)
    return body.strip() if head is not None else prompt.strip()


def replace_task_section(prompt: str, section: str) -> str:
    r"""Return the prompt with its task section replaced.

    A ``# Task`` heading the new section brings with it is dropped, so that a
    rewritten section never duplicates the heading.

    >>> replace_task_section("# Task\nOld.\n\n# Output format\nShort.", "New.")
    '# Task\nNew.\n\n# Output format\nShort.'
    """
    section = section.strip()
    if section.startswith(TASK_HEADER):
        section = section[len(TASK_HEADER) :].strip()
    head, _, tail = _split_sections(prompt)
    if head is None:
        return section
    return f"{head}{TASK_HEADER}\n{section}" + (f"\n\n{tail}" if tail else "")


def _split_sections(prompt: str) -> tuple[str | None, str, str]:
    lines = prompt.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == TASK_HEADER]
    if not starts:
        return None, prompt, ""
    start = starts[0]
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("# ")),
        len(lines),
    )
    head = "\n".join(lines[:start])
    head = head + "\n" if head else ""
    body = "\n".join(lines[start + 1 : end])
    tail = "\n".join(lines[end:]).strip()
    return head, body, tail


def optimise_prompt(
    noun: str,
    classes: Sequence[str],
    prompt: str,
    descriptions: Sequence[str],
    count: int = 1,
) -> str:
    """Return SPO's optimisation prompt: the prompt's outputs in, a better prompt out.

    Args:
        noun: The task's noun.
        classes: The class names.
        prompt: The task section of the current best prompt.
        descriptions: What it gave for the sample images (attached after the text).
        count: How many prompts to ask for.
    """
    examples = "".join(
        _OUTPUT_EXAMPLE.format(number=i, description=description)
        for i, description in enumerate(descriptions, start=1)
    )
    return _OPTIMISE.format(
        noun=noun,
        classes=", ".join(classes),
        prompt=prompt,
        examples=examples,
        count=count,
    )


def judge_prompt(noun: str, classes: Sequence[str], first: str, second: str) -> str:
    """Return SPO's pairwise judgement prompt: which of two prompts' outputs is better.

    The two texts describe the same image (it goes before the text), each written
    with a different description prompt.
    """
    return _JUDGE.format(
        noun=noun, classes=", ".join(classes), first=first, second=second
    )
