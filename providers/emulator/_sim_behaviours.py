"""What the simulated model does for each kind of request.

Each behaviour takes the request's text, what the model perceived in its images and a
generator seeded by the request's content, and returns the answer text. The behaviours
use the model's knowledge (the species tables) and its perception, never the truth
written beside a dataset.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from . import world
from ._sim_language import LABELS, describe, find_mentions, parse_statements
from ._sim_perceive import Percept
from ._sim_species import ATTRIBUTES, SALIENT

__all__ = [
    "DESCRIPTION_LIMIT",
    "answer_classify",
    "answer_compare",
    "answer_criticise",
    "answer_describe",
    "answer_judge",
    "answer_optimise",
    "answer_paraphrase",
    "answer_rewrite",
]

#: Attributes one description states at most; what a prompt names beyond goes unsaid.
DESCRIPTION_LIMIT = 5
# A generic prompt gets the salient attributes and this many details picked at random.
_GENERIC_DETAILS = 2
_HALLUCINATION = 0.02  # chance per stated attribute, per unit of temperature
_CHECK = 0.95  # chance that a comparison checks a stated attribute
_FIRST_BIAS = 0.6  # chance of answering "first" when both texts fit equally
_NOTICE = 0.2  # chance of noticing one detail unprompted when classifying
_WRONG_SUGGESTION = 0.2
_ORDER = [spec.name for spec in ATTRIBUTES]
_VALUES = {spec.name: spec.values for spec in ATTRIBUTES}


def _noun(text: str, default: str = "bird") -> str:
    match = re.search(
        r"\b(?:the|this|each|a|an)\s+([a-z]+)\s+(?:shown\s+)?in\s+(?:the|this|each)\s+"
        r"(?:image|picture|photo)",
        text,
        re.IGNORECASE,
    )
    return match.group(1).lower() if match else default


def attention(prompt: str, rng: random.Random) -> list[str]:
    """Return the attributes a description prompt makes the model describe, in order.

    Named attributes come first, in the order named; a prompt that names fewer than
    the limit is filled with the salient attributes, and one that names none also
    gets a couple of details picked at random.
    """
    named = find_mentions(prompt)[:DESCRIPTION_LIMIT]
    chosen = list(named)
    for name in SALIENT:
        if len(chosen) < DESCRIPTION_LIMIT and name not in chosen:
            chosen.append(name)
    if not named:
        chosen.extend(_details(chosen, rng))
    return chosen[:DESCRIPTION_LIMIT]


def _details(chosen: list[str], rng: random.Random) -> list[str]:
    """Pick a few details for a prompt that asks for "distinctive attributes".

    Subtler attributes (later in the salience order) look more distinctive and are
    picked more often, but nothing tells the model which ones separate the species.
    """
    rest = [a for a in _ORDER if a not in chosen]
    picked: list[str] = []
    while len(picked) < _GENERIC_DETAILS and rest:
        weights = [_ORDER.index(a) for a in rest]
        attribute = rng.choices(rest, weights=weights)[0]
        picked.append(attribute)
        rest.remove(attribute)
    return picked


def answer_describe(
    prompt: str, percept: Percept, rng: random.Random, temperature: float
) -> str:
    """Describe the bird in an image the way the prompt asks."""
    noun = _noun(prompt)
    if not percept.in_world:
        return _describe_unknown(noun, percept)
    items = []
    for attribute in attention(prompt, rng):
        value = percept.values.get(attribute)
        if value is None:
            continue
        if rng.random() < _HALLUCINATION * temperature:
            value = rng.choice([v for v in _VALUES[attribute] if v != value])
        items.append((attribute, value))
    return describe(noun, items)


def _describe_unknown(noun: str, percept: Percept) -> str:
    colours = list(percept.colours) or ["grey"]
    main = colours[0]
    others = " and ".join(colours[1:]) or "muted"
    return (
        f"The image shows a {noun}-like subject in a {percept.brightness} scene. "
        f"The dominant colour is {main}, with {others} tones elsewhere in the frame. "
        "The details of its markings are hard to make out."
    )


def _fit(stated: dict[str, str], percept: Percept, rng: random.Random) -> float:
    """Score how well stated values agree with what the model sees."""
    if not percept.in_world:
        words = " ".join(stated.values())
        return float(sum(colour in words for colour in percept.colours))
    score = 0.0
    for attribute, value in stated.items():
        seen = percept.values.get(attribute)
        if seen is None or rng.random() > _CHECK:
            continue
        score += 1.0 if value == seen else -2.0
    return score


def answer_compare(
    first: str, second: str, percept: Percept, rng: random.Random
) -> str:
    """Say which of two descriptions fits the image better."""
    one = _fit(parse_statements(first), percept, rng)
    two = _fit(parse_statements(second), percept, rng)
    if one == two:
        return "first" if rng.random() < _FIRST_BIAS else "second"
    return "first" if one > two else "second"


def answer_judge(
    first: str,
    second: str,
    classes: Sequence[str],
    percept: Percept,
    rng: random.Random,
) -> str:
    """Say which of two descriptions of the image is the better, as a judge would.

    A judge prefers what it can check and what helps: each stated value that agrees
    with what it sees counts, twice when the model knows that attribute to differ
    between the classes named; each value that disagrees counts against, heavily.
    """
    telling = _telling_attributes(classes)
    one = _merit(parse_statements(first), percept, telling, rng)
    two = _merit(parse_statements(second), percept, telling, rng)
    if one == two:
        return "first" if rng.random() < _FIRST_BIAS else "second"
    return "first" if one > two else "second"


def _telling_attributes(classes: Sequence[str]) -> set[str]:
    """Attributes whose values differ between the named species, as the model knows."""
    tables = []
    for name in classes:
        found = world.find_species(name)
        if found is not None:
            tables.append(world.get_family(found[0]).attributes[found[1]])
    return {a for a in _ORDER if len({t[a] for t in tables if a in t}) > 1}


def _merit(
    stated: dict[str, str], percept: Percept, telling: set[str], rng: random.Random
) -> float:
    if not percept.in_world:
        return _fit(stated, percept, rng)
    score = 0.0
    for attribute, value in stated.items():
        seen = percept.values.get(attribute)
        if seen is None or rng.random() > _CHECK:
            continue
        if value != seen:
            score -= 3.0
        else:
            score += 2.0 if attribute in telling else 1.0
    return score


def _options(text: str) -> list[tuple[str, str]]:
    block = text.split("Options:", 1)[-1]
    found = re.findall(r"^\s*\(?([A-Z])[.)]\s+(.+?)\s*$", block, re.MULTILINE)
    return [(letter, name) for letter, name in found]


def _stated_features(text: str) -> str:
    match = re.search(
        r"following features:\s*(.*?)\s*(?:Options:|$)", text, re.DOTALL | re.I
    )
    return match.group(1) if match else ""


def answer_classify(
    text: str, percept: Percept, rng: random.Random, temperature: float
) -> str:
    """Pick the option whose species best matches the description and the image."""
    options = _options(text)
    if not options:
        return "I cannot tell which option is meant."
    evidence = dict(_unprompted(percept, rng))
    evidence.update(parse_statements(_stated_features(text)))
    scores = [_match(name, evidence) for _, name in options]
    if temperature > 0:
        scores = [s + rng.gauss(0.0, 0.5 * temperature) for s in scores]
    best = max(scores)
    tied = [letter for (letter, _), s in zip(options, scores, strict=True) if s == best]
    return rng.choice(tied)


def _match(species_name: str, evidence: dict[str, str]) -> float:
    """Score a species by the evidence: +1 per agreeing value, -1 per clash."""
    found = world.find_species(species_name)
    if found is None:
        return 0.0
    table = world.get_family(found[0]).attributes[found[1]]
    return sum(1.0 if table[a] == v else -1.0 for a, v in evidence.items())


def _unprompted(percept: Percept, rng: random.Random) -> list[tuple[str, str]]:
    """What the model takes in at a glance: the salient colours, maybe one detail."""
    if not percept.in_world:
        return []
    seen = [(a, percept.values[a]) for a in SALIENT if a in percept.values]
    if rng.random() < _NOTICE:
        details = [a for a in _ORDER if a not in SALIENT and a in percept.values]
        attribute = rng.choice(details)
        seen.append((attribute, percept.values[attribute]))
    return seen


def _quoted_prompt(text: str) -> str:
    match = re.search(r'current prompt is:\s*"(.*?)"\s*\n\s*\n', text, re.DOTALL)
    if match:
        return match.group(1)
    match = re.search(r'"(.+?)"', text, re.DOTALL)
    return match.group(1) if match else ""


def _count(text: str, pattern: str, default: int = 1) -> int:
    match = re.search(pattern, text, re.IGNORECASE)
    return max(1, min(20, int(match.group(1)))) if match else default


def _noun_from_context(text: str) -> str:
    match = re.search(r"images of (\w+)", text)
    if match is None:
        return "bird"
    plural = match.group(1)
    if plural.endswith(("ches", "shes", "sses", "xes")):
        return plural[:-2]
    return plural[:-1] if plural.endswith("s") else plural


def answer_criticise(text: str, percepts: Sequence[Percept], rng: random.Random) -> str:
    """Explain why a prompt led to errors: name what it leaves out that varies."""
    prompt = _quoted_prompt(text)
    count = _count(text, r"give (\d+) reasons?")
    noun = _noun_from_context(text)
    named = find_mentions(prompt)
    described = set(named[:DESCRIPTION_LIMIT]) | _usually_described(text)
    varying = _varying(percepts)
    missing = [a for a in varying if a not in described and a not in named]
    late = [a for a in varying if a in named[DESCRIPTION_LIMIT:]]
    reasons = []
    for index in range(count):
        if rng.random() < _WRONG_SUGGESTION or not (missing or late):
            reasons.append(_wrong_reason(named, varying, noun, rng))
        elif missing:
            picked = missing[2 * index : 2 * index + 2] or rng.sample(missing, 1)
            reasons.append(_missing_reason(picked, percepts, noun))
        else:
            reasons.append(_late_reason(late[:2], noun))
    body = "\n".join(f"<START>{reason}<END>" for reason in reasons)
    return f"Here is what I think went wrong:\n{body}"


def answer_optimise(text: str, percepts: Sequence[Percept], rng: random.Random) -> str:
    """Improve a prompt from what it gave: ask for what varies but goes unsaid.

    Shown a prompt and its descriptions of some images, the model looks for
    attributes that differ across the images and that the descriptions leave out,
    and writes the prompt again asking for one or two of them; sometimes its
    suggestion is one that does not help.
    """
    prompt = _quoted_prompt(text).strip()
    count = _count(text, r"write (\d+) improved prompts?")
    named = find_mentions(prompt)
    described = set(named[:DESCRIPTION_LIMIT]) | _usually_described(text)
    varying = _varying(percepts)
    missing = [a for a in varying if a not in described and a not in named]
    steady = [a for a in _ORDER if a not in named and a not in varying]
    prompts = []
    for index in range(count):
        if missing and rng.random() >= _WRONG_SUGGESTION:
            attributes = rng.sample(missing, min(2, len(missing)))
        else:
            attributes = [rng.choice(steady)] if steady else []
        variant = index + rng.randrange(2)
        prompts.append(_rewritten(prompt, attributes, False, variant, rng))
    body = "\n".join(f"<START>{p}<END>" for p in prompts)
    return f"Here is the improved prompt:\n{body}"


def _usually_described(text: str) -> set[str]:
    """Attributes that most of the quoted example descriptions state.

    A detail that only some descriptions happen to mention is not something the
    prompt asks for, so it still counts as missing.
    """
    examples = re.findall(
        r"^(?:(?:Correct|Wrong) description[^:]*|Description):(.*)$", text, re.M
    )
    if not examples:
        return set()
    counts: dict[str, int] = {}
    for example in examples:
        for attribute in parse_statements(example):
            counts[attribute] = counts.get(attribute, 0) + 1
    return {a for a, n in counts.items() if n >= 0.75 * len(examples)}


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("ch", "sh", "s", "x")) else "s")


def _varying(percepts: Sequence[Percept]) -> list[str]:
    """Attributes whose seen values differ across the images, most varied first."""
    world_percepts = [p for p in percepts if p.in_world]
    spread = {}
    for attribute in _ORDER:
        values = {p.values[attribute] for p in world_percepts if attribute in p.values}
        if len(values) > 1:
            spread[attribute] = len(values)
    # Among equally varied attributes the subtle ones (late in the salience order)
    # come first: they are the ones a generic description skips.
    return sorted(spread, key=lambda a: (-spread[a], -_ORDER.index(a)))


def _missing_reason(picked: list[str], percepts: Sequence[Percept], noun: str) -> str:
    labels = " or the ".join(LABELS[a] for a in picked)
    seen = "; ".join(
        f"{LABELS[a]}: "
        + ", ".join(sorted({_spoken(a, p.values[a]) for p in percepts
                            if p.in_world and a in p.values}))
        for a in picked
    )  # fmt: skip
    return (
        f"The prompt never asks for the {labels}, yet these differ between the "
        f"{_plural(noun)} in the images ({seen}). The descriptions leave them out, "
        f"so they cannot tell one {noun} from another."
    )


def _spoken(attribute: str, value: str) -> str:
    if attribute == "wing_bars":
        return {"0": "none", "1": "one", "2": "two"}[value]
    return value


def _late_reason(picked: list[str], noun: str) -> str:
    labels = " and the ".join(LABELS[a] for a in picked)
    return (
        f"The prompt asks for the {labels} only after many other features, so the "
        f"descriptions stop before reaching them, although they differ between the "
        f"{_plural(noun)}. Ask for the {labels} first."
    )


def _wrong_reason(
    named: list[str], varying: list[str], noun: str, rng: random.Random
) -> str:
    steady = [a for a in _ORDER if a not in named and a not in varying]
    if steady and rng.random() < 0.7:
        attribute = rng.choice(steady)
        return (
            f"The prompt does not ask for the {LABELS[attribute]}, which may help to "
            f"tell the {_plural(noun)} apart."
        )
    return (
        f"The descriptions are too short and general; they should describe the "
        f"posture of the {noun} and its surroundings in more detail."
    )


_FOCUS = (
    "Pay particular attention to the {}.",
    "Make sure to describe the {}.",
    "Be specific about the {}.",
)
_LEAD = (
    "First describe the {}.",
    "Start with the {}.",
)


def answer_rewrite(text: str, rng: random.Random) -> str:
    """Write improved prompts that ask for what the feedback says is missing."""
    prompt = _quoted_prompt(text).strip()
    count = _count(text, r"write (\d+) (?:different )?(?:improved )?prompts?")
    reason = text.split("the problem with this prompt is that:", 1)[-1]
    reason = reason.split("Based on the above information", 1)[0]
    named = find_mentions(prompt)
    wanted = [a for a in find_mentions(reason) if a not in named]
    late = [a for a in find_mentions(reason) if a in named]
    lead_first = bool(re.search(r"\bfirst\b", reason, re.I))
    prompts = []
    for index in range(count):
        prompts.append(_rewritten(prompt, wanted or late, lead_first, index, rng))
    body = "\n".join(f"<START>{p}<END>" for p in prompts)
    return f"Here are the improved prompts:\n{body}"


def _rewritten(
    prompt: str, attributes: list[str], lead_first: bool, index: int, rng: random.Random
) -> str:
    if not attributes:
        extra = "Describe each visible feature of the bird precisely."
        return f"{prompt} {extra}".strip()
    labels = _join([LABELS[a] for a in attributes])
    # Odd-numbered variants put the new attributes at the front, where a description
    # that runs out of room is sure to cover them.
    if lead_first or index % 2 == 1:
        lead = rng.choice(_LEAD).format(labels)
        return f"{lead} {prompt}".strip()
    focus = rng.choice(_FOCUS).format(labels)
    return f"{prompt} {focus}".strip()


def _join(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return ", the ".join(labels[:-1]) + " and the " + labels[-1]


_SYNONYMS = (
    (r"\bDescribe\b", ("Describe", "Characterise", "Give a description of")),
    (r"\bin detail\b", ("in detail", "thoroughly", "carefully")),
    (r"\bhighly distinctive\b", ("highly distinctive", "very distinctive",
                                 "most characteristic")),
    (r"\bignore the background\b", ("ignore the background",
                                    "disregard the background")),
    (r"\bbill\b", ("bill", "beak")),
    (r"\bbeak\b", ("beak", "bill")),
    (r"\bring around the eye\b", ("ring around the eye", "eye ring")),
    (r"\beye ring\b", ("eye ring", "ring around the eye")),
    (r"\bwing bars\b", ("wing bars", "bars on the wings")),
    (r"\bPay particular attention to\b", ("Pay particular attention to",
                                          "Focus especially on")),
    (r"\bMake sure to describe\b", ("Make sure to describe", "Be sure to cover")),
)  # fmt: skip


def answer_paraphrase(text: str, rng: random.Random) -> str:
    """Reword an instruction: synonyms, and sometimes its sentences reordered."""
    match = re.search(r"Input:\s*(.*?)\s*(?:Output:|$)", text, re.DOTALL)
    source = match.group(1) if match else text
    result = source
    for pattern, choices in _SYNONYMS:
        result = re.sub(pattern, lambda _m, c=choices: rng.choice(c), result)
    sentences = re.split(r"(?<=\.)\s+", result.strip())
    if len(sentences) > 2 and rng.random() < 0.3:
        i = rng.randrange(1, len(sentences) - 1)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
    return " ".join(sentences)
