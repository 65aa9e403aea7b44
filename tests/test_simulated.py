"""The simulated vision-language model, called directly through ``respond``."""

from __future__ import annotations

import hashlib
import io
import random
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autosep import prompts as P
from providers.emulator import _sim_perceive, world
from providers.emulator._sim_language import (
    describe,
    find_mentions,
    parse_statements,
)
from providers.emulator.simulated import ModelInput, ModelOutput, respond

REAL_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"

HAND_WRITTEN = {
    "finch": "Describe the finch in the image: its bill colour, its wing bars "
    "and its breast pattern.",
    "warbler": "Describe the warbler in the image: its eye ring, its crown patch "
    "and its throat colour.",
    "vireo": "Describe the vireo in the image: the length of its beak, the colour "
    "of its legs and its wing bars.",
}

Item = tuple[Image.Image, str, str]


def _load(family: str, per_species: int, seed: int = 0) -> list[Item]:
    items: list[Item] = []
    for species in world.get_family(family).species:
        for index in range(per_species):
            buffer = io.BytesIO()
            world.render(family, species, index, seed).save(buffer, "JPEG", quality=90)
            data = buffer.getvalue()
            image = Image.open(io.BytesIO(data))
            image.load()
            items.append((image, hashlib.sha256(data).hexdigest(), species))
    return items


def _ask(
    images: list[Item], text: str, *, temperature: float = 0.0, sample: int = 0,
    max_tokens: int = 1024,
) -> str:  # fmt: skip
    parts = tuple(item[0] for item in images) + (text,)
    request = ModelInput(
        "sim-vlm", parts, tuple(item[1] for item in images),
        temperature=temperature, max_tokens=max_tokens, seed=sample,
    )  # fmt: skip
    return respond(request).text


def _describe(prompt: str, item: Item) -> str:
    return _ask([item], prompt, temperature=0.7)


def _accuracy(family: str, items: list[Item], prompt: str | None) -> float:
    info = world.get_family(family)
    letters = P.option_letters(len(info.species))
    hits = 0
    for item in items:
        description = None if prompt is None else _describe(prompt, item)
        answer = _ask([item], P.classify_prompt(info.noun, info.species, description))
        hits += info.species[letters.index(answer.strip()[0])] == item[2]
    return hits / len(items)


def _compare_score(family: str, items: list[Item], prompt: str, seed: int = 0) -> float:
    noun = world.get_family(family).noun
    descriptions = [_describe(prompt, item) for item in items]
    rng = random.Random(seed)
    correct = 0
    for i, item in enumerate(items):
        for j in rng.sample([k for k in range(len(items)) if k != i], 2):
            own_first = rng.random() < 0.5
            pair = (descriptions[i], descriptions[j])
            first, second = pair if own_first else pair[::-1]
            answer = _ask([item], P.compare_prompt(noun, first, second), max_tokens=6)
            correct += answer.strip().lower().startswith("first") == own_first
    return correct / (2 * len(items))


def _spearman(x: list[float], y: list[float]) -> float:
    def ranks(values: list[float]) -> np.ndarray:
        array = np.asarray(values, dtype=float)
        order = array.argsort(kind="stable")
        result = np.empty(len(array))
        result[order] = np.arange(len(array))
        for value in np.unique(array):
            tied = array == value
            result[tied] = result[tied].mean()
        return result

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


@pytest.mark.parametrize("family", ["finch", "warbler", "vireo"])
def test_descriptions_naming_the_right_attributes_make_classification_work(
    family: str,
) -> None:
    items = _load(family, 30, seed=1)
    noun = world.get_family(family).noun
    zero_shot = _accuracy(family, items, None)
    generic = _accuracy(family, items, P.initial_prompt(noun))
    hand = _accuracy(family, items, HAND_WRITTEN[family])
    assert zero_shot <= 0.6
    assert hand >= 0.85
    assert zero_shot < generic < hand


def _varied_prompts(family: str) -> list[str]:
    info = world.get_family(family)
    noun, key = info.noun, list(info.discriminative)
    shared = {
        "back_colour": "back", "belly_colour": "belly", "wing_colour": "wing colour",
        "head_colour": "head", "tail_length": "tail length", "leg_colour": "legs",
    }  # fmt: skip
    plain = [label for a, label in shared.items() if a not in key][:5]
    names = {
        "bill_colour": "bill colour", "bill_length": "bill length",
        "wing_bars": "wing bars", "breast_pattern": "breast pattern",
        "eye_ring": "eye ring", "crown": "crown patch", "throat_colour": "throat",
        "leg_colour": "legs", "tail_length": "tail length",
    }  # fmt: skip
    key = [names[a] for a in key]

    def ask_for(labels: list[str]) -> str:
        return f"Describe the {noun} in the image. Describe its {', '.join(labels)}."

    prompts = [P.initial_prompt(noun), f"Describe the {noun} in the image."]
    for labels in (
        plain[:1], plain[:3], plain[:5], plain + key, plain[:4] + key[:1],
        plain[:3] + key[:2], key[:1], key[1:2], key[2:3], key[:2], key[1:],
        key, key[::-1], key[:1] + plain[:4], plain[:2] + key[-1:],
        plain[:1] + key[:2], key[:1] + plain[:2] + key[1:2], plain[2:4],
    ):  # fmt: skip
        prompts.append(ask_for(labels))
    return prompts


def test_comparison_score_tracks_classification_accuracy() -> None:
    items = _load("finch", 10, seed=2)
    prompts = _varied_prompts("finch")
    assert len(prompts) == 20
    scores = [_compare_score("finch", items, p) for p in prompts]
    accuracy = [_accuracy("finch", items, p) for p in prompts]
    assert _spearman(scores, accuracy) > 0.7


@pytest.mark.slow
@pytest.mark.parametrize("family", ["warbler", "vireo", "tanager", "sparrow"])
def test_comparison_score_tracks_accuracy_on_other_families(family: str) -> None:
    items = _load(family, 15 if family != "sparrow" else 6, seed=2)
    prompts = _varied_prompts(family)
    scores = [_compare_score(family, items, p) for p in prompts]
    accuracy = [_accuracy(family, items, p) for p in prompts]
    assert _spearman(scores, accuracy) > 0.7


def _mistakes(
    kind: str, family: str, items: list[Item], prompt: str, rng: random.Random
) -> tuple[list[Item], str]:
    """Four images and their mistakes: comparisons, or classifications."""
    chosen = rng.sample(items, 4)
    if kind == "comparison":
        return chosen, P.comparison_mistakes(
            [
                (_describe(prompt, item), _describe(prompt, rng.choice(items)))
                for item in chosen
            ]
        )
    species = world.get_family(family).species
    return chosen, P.classification_mistakes(
        [(_describe(prompt, item), item[2], rng.choice(species)) for item in chosen]
    )


@pytest.mark.parametrize("kind", ["comparison", "classification"])
@pytest.mark.parametrize("family", ["finch", "warbler", "vireo"])
def test_criticism_names_missing_discriminative_attributes(
    family: str, kind: str
) -> None:
    info = world.get_family(family)
    items = _load(family, 6, seed=3)
    task = P.initial_prompt(info.noun).split("\n")[1]
    rng = random.Random(family)
    hits = 0
    for _ in range(20):
        chosen, mistakes = _mistakes(kind, family, items, task, rng)
        answer = _ask(
            chosen, P.criticise_prompt(info.noun, info.species, task, mistakes)
        )
        reason = answer.split("<START>", 1)[1].split("<END>", 1)[0]
        hits += bool(set(find_mentions(reason)) & set(info.discriminative))
    assert hits >= 12


def test_rewriting_adds_the_feedback_in_the_requested_number() -> None:
    info = world.get_family("finch")
    task = P.initial_prompt("finch").split("\n")[1]
    reason = "The prompt never asks for the bill colour or the wing bars."
    mistakes = P.comparison_mistakes([("Its back is brown.", "Its back is brown.")])
    text = P.rewrite_prompt("finch", info.species, task, mistakes, reason, count=3)
    answer = _ask([], text)
    rewritten = [p.split("<END>", 1)[0] for p in answer.split("<START>")[1:]]
    assert len(rewritten) == 3
    for prompt in rewritten:
        assert {"bill_colour", "wing_bars"} <= set(find_mentions(prompt))
        assert "Describe the finch in the image" in prompt


def _judge(item: Item, first: str, second: str, family: str = "finch") -> str:
    info = world.get_family(family)
    text = P.judge_prompt(info.noun, info.species, first, second)
    return _ask([item], text, max_tokens=6)


def test_judge_prefers_what_tells_the_classes_apart_in_either_order() -> None:
    items = _load("finch", 8, seed=5)
    generic = P.initial_prompt("finch")
    hand = HAND_WRITTEN["finch"]
    wins = 0
    for item in items:
        generic_text, hand_text = _describe(generic, item), _describe(hand, item)
        wins += _judge(item, hand_text, generic_text) == "first"
        wins += _judge(item, generic_text, hand_text) == "second"
    assert wins >= 0.85 * 2 * len(items)


def test_judge_punishes_a_wrong_statement() -> None:
    item = _load("finch", 1, seed=6)[0]
    stated = parse_statements(_describe(HAND_WRITTEN["finch"], item))
    right = describe("finch", list(stated.items()))
    changed = {**stated, "wing_bars": "0" if stated["wing_bars"] != "0" else "2"}
    wrong = describe("finch", list(changed.items()))
    assert _judge(item, wrong, right) == "second"
    assert _judge(item, right, wrong) == "first"


@pytest.mark.parametrize("family", ["finch", "warbler", "vireo"])
def test_optimiser_asks_for_what_the_outputs_leave_out(family: str) -> None:
    info = world.get_family(family)
    items = _load(family, 6, seed=7)
    task = P.initial_prompt(info.noun).split("\n")[1]
    rng = random.Random(family)
    hits = 0
    for sample in range(20):
        chosen = rng.sample(items, 3)
        text = P.optimise_prompt(
            info.noun, info.species, task, [_describe(task, item) for item in chosen]
        )
        answer = _ask(chosen, text, temperature=0.7, sample=sample)
        [proposal] = re.findall(r"<START>(.*?)<END>", answer, re.S)
        assert proposal.startswith(task) or proposal.endswith(task)
        hits += bool(set(find_mentions(proposal)) & set(info.discriminative))
    assert hits >= 10


def test_paraphrase_keeps_the_attributes() -> None:
    source = (
        "Describe the warbler in the image in detail. Pay particular attention to "
        "the eye ring, the crown patch and the bill."
    )
    for sample in range(5):
        answer = _ask([], P.paraphrase_prompt(source), temperature=0.7, sample=sample)
        assert set(find_mentions(answer)) == set(find_mentions(source))
        assert "<START>" not in answer


def test_description_follows_the_prompt_order_up_to_a_limit() -> None:
    item = _load("warbler", 1)[0]
    prompt = (
        "Describe the warbler in the image: its throat, the ring around the eye, "
        "its legs, its tail, its beak colour, its back and its wing bars."
    )
    answer = _ask([item], prompt)
    assert list(parse_statements(answer)) == [
        "throat_colour", "eye_ring", "leg_colour", "tail_length", "bill_colour",
    ]  # fmt: skip


def test_generic_prompt_describes_salient_attributes_first() -> None:
    item = _load("finch", 1)[0]
    answer = _ask([item], P.initial_prompt("finch"))
    assert list(parse_statements(answer))[:3] == [
        "back_colour",
        "belly_colour",
        "wing_colour",
    ]


def test_identical_requests_get_identical_answers() -> None:
    item = _load("vireo", 1)[0]
    prompt = P.initial_prompt("vireo")
    first = _ask([item], prompt, temperature=0.7, sample=3)
    assert _ask([item], prompt, temperature=0.7, sample=3) == first
    samples = {_ask([item], prompt, temperature=0.7, sample=s) for s in range(8)}
    assert len(samples) > 1
    greedy = {_ask([item], prompt, temperature=0.0, sample=s) for s in range(4)}
    assert len(greedy) == 1


def test_answers_do_not_depend_on_the_truth_file(tmp_path) -> None:
    world.write_dataset("finch", tmp_path, per_species=2, seed=4)
    info = world.get_family("finch")

    def answers() -> list[str]:
        _sim_perceive._cache.clear()
        out = []
        for path in sorted(tmp_path.glob("*/*.jpg")):
            data = path.read_bytes()
            image = Image.open(io.BytesIO(data))
            image.load()
            item = (image, hashlib.sha256(data).hexdigest(), "")
            description = _ask([item], P.initial_prompt("finch"))
            out.append(description)
            out.append(_ask([item], P.classify_prompt("finch", info.species, None)))
        return out

    before = answers()
    (tmp_path / "truth.jsonl").unlink()
    assert answers() == before


def test_real_photographs_get_generic_answers() -> None:
    folder = REAL_IMAGES / "fine"
    if not folder.is_dir():
        pytest.skip(f"real photographs not available at {folder}")
    paths = sorted(folder.glob("*/*.jpg"))[::10]
    assert paths
    for path in paths:
        data = path.read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
        item = (image, hashlib.sha256(data).hexdigest(), path.parent.name)
        description = _ask([item], P.initial_prompt("bird"))
        assert "bird" in description and len(description.split()) > 10
        classes = ["Hooded Oriole", "Orchard Oriole", "Scott Oriole"]
        assert _ask([item], P.classify_prompt("bird", classes, description)) in "ABC"
        compare = P.compare_prompt("bird", description, "A small red bird.")
        assert _ask([item], compare) in ("first", "second")


@pytest.mark.parametrize(
    "image",
    [Image.new("RGB", (1, 1)), Image.new("L", (64, 48), 200),
     Image.new("RGBA", (50, 500), (10, 200, 30, 128)), Image.new("RGB", (900, 700))],
)  # fmt: skip
def test_odd_images_never_raise(image: Image.Image) -> None:
    item = (image, hashlib.sha256(image.tobytes()).hexdigest(), "")
    assert _ask([item], "What is in this picture?")
    assert _ask([item], P.classify_prompt("finch", ["A x", "B y"], None)) in "AB"


def test_text_only_and_truncation() -> None:
    assert _ask([], "Hello there")
    item = _load("finch", 1)[0]
    short = _ask([item], P.initial_prompt("finch"), max_tokens=5)
    assert len(short) <= 20
    output = respond(ModelInput("m", ("hi",), ()))
    assert isinstance(output, ModelOutput) and output.output_tokens is None


def test_perception_is_fast_and_cached() -> None:
    items = _load("sparrow", 2, seed=9)
    _sim_perceive._cache.clear()
    start = time.perf_counter()
    for image, digest, _ in items:
        _sim_perceive.perceive_cached(digest, image)
    per_image = (time.perf_counter() - start) / len(items)
    assert per_image < 0.03
    start = time.perf_counter()
    for image, digest, _ in items:
        _sim_perceive.perceive_cached(digest, image)
    assert (time.perf_counter() - start) / len(items) < per_image / 5
