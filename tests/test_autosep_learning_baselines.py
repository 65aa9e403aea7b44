"""The baselines that learn a prompt of their own: pseudo-labels and SPO.

Against the scripted fake engine, so every call they make can be checked: which
kinds, how many, booked under which phase, and how the answers are used.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from autosep import spo
from autosep.calls import CallMaker, ErrorExample, LabelError, Mistake
from autosep.config import RunConfig
from autosep.plan import estimate_calls
from autosep.prompts import initial_prompt, replace_task_section
from autosep.pseudo import LabelScorer, pseudo_labels
from autosep.scoring import Scorer
from autosep.search import Search, SearchState
from autosep.session import Session
from autosep.tasks import Task
from engine.request import Failure, Request
from tests.autosep_fakes import (
    CLASSES,
    FakeEngine,
    images_of,
    kind_of,
    scripted_answer,
    small_task,
    species_of,
    text_of,
)
from tests.autosep_fakes import small_config as fake_config


@pytest.fixture
def task(tmp_path: Path) -> Task:
    return small_task(tmp_path)


def small_config(**changes: Any) -> RunConfig:
    # No baselines unless a test names them.
    return fake_config(**{"baselines": (), **changes})


def kinds(engine: FakeEngine) -> Counter[str]:
    return Counter(kind_of(request) for _, request in engine.sent)


# -- pseudo-labels ----------------------------------------------------------------


async def test_random_pseudo_labels_are_seeded_and_ask_nothing(task: Task) -> None:
    engine = FakeEngine()
    calls = CallMaker(task, small_config())
    first = await pseudo_labels("random", Session(engine), calls, small_config())
    again = await pseudo_labels("random", Session(engine), calls, small_config())
    other = await pseudo_labels("random", Session(engine), calls, small_config(seed=1))
    assert not engine.sent
    assert first == again and set(first) == set(task.train)
    assert all(label in range(len(CLASSES)) for label in first.values())
    assert other != first


async def test_majority_pseudo_labels_are_the_most_common_vote(task: Task) -> None:
    wrong_for = task.train[0]

    def answer(request: Request) -> str | Failure:
        image = images_of(request)[0]
        if image == wrong_for:
            return "I cannot say."
        # Two of five votes say Gamma, three the true class.
        if request.sample in (1, 3):
            return "C"
        return "ABC"[CLASSES.index(species_of(image))]

    engine = FakeEngine(answer)
    config = small_config(votes=5)
    labels = await pseudo_labels(
        "majority", Session(engine), CallMaker(task, config), config
    )
    sent = [request for _, request in engine.sent]
    assert len(sent) == 5 * len(task.train)
    assert {r.temperature for r in sent} == {config.vote_temperature}
    assert {r.sample for r in sent} == set(range(5))
    assert labels[wrong_for] is None
    for image in task.train[1:]:
        assert labels[image] == CLASSES.index(species_of(image))


async def test_label_scorer_classifies_each_description_once(task: Task) -> None:
    engine = FakeEngine()
    config = small_config()
    calls = CallMaker(task, config)
    truth = {image: CLASSES.index(species_of(image)) for image in task.train}
    # Every image of Alpha is given the label Beta; one image has no label.
    labels: dict[str, int | None] = {
        image: 1 if label == 0 else label for image, label in truth.items()
    }
    unlabelled = task.train[-1]
    labels[unlabelled] = None
    scorer = LabelScorer(Session(engine), calls, task.train, seed=0, labels=labels)
    prompt = initial_prompt("bird")
    await scorer.score((prompt, image) for image in task.train)
    await scorer.score((prompt, image) for image in task.train)

    assert kinds(engine) == {
        "describe": len(task.train),
        "classify": len(task.train) - 1,
    }
    for _, request in engine.sent:
        if kind_of(request) == "classify":
            description = scorer.description(prompt, images_of(request)[0])
            assert description is not None and description in text_of(request)
    alpha = [i for i in task.train if truth[i] == 0]
    errors = scorer.errors(prompt, task.train)
    assert {e.image for e in errors} == set(alpha)
    assert all(isinstance(e, LabelError) for e in errors)
    assert {(e.label, e.predicted) for e in errors if isinstance(e, LabelError)} == {
        ("Beta", "Alpha")
    }
    score = scorer.prompt_score(prompt, task.train)
    scored = len(task.train) - 1
    assert score.images == scored
    assert score.score == pytest.approx((scored - len(alpha)) / scored)


async def test_label_scorer_leaves_failed_calls_out(task: Task) -> None:
    broken = task.train[0]

    def answer(request: Request) -> str | Failure:
        if kind_of(request) == "classify" and images_of(request)[0] == broken:
            return Failure("server_error", "boom", attempts=3)
        return scripted_answer(request)

    config = small_config()
    labels = {image: CLASSES.index(species_of(image)) for image in task.train}
    scorer = LabelScorer(
        Session(FakeEngine(answer)),
        CallMaker(task, config),
        task.train,
        seed=0,
        labels=labels,
    )
    prompt = initial_prompt("bird")
    await scorer.score((prompt, image) for image in task.train)
    result = scorer.image_score(prompt, broken)
    assert (result.valid, result.failed, result.errors) == (0, 1, ())
    score = scorer.prompt_score(prompt, task.train)
    assert (score.images, score.failed) == (len(task.train) - 1, 1)


def test_criticism_shows_classification_mistakes(task: Task) -> None:
    calls = CallMaker(task, small_config())
    errors = [
        LabelError(task.train[0], "A bird, brown.", "Beta", "Alpha"),
        LabelError(task.train[1], "A bird, grey.", "Gamma", None),
    ]
    request = calls.criticise("Describe the bird.", errors)
    text = text_of(request)
    assert "Description: A bird, brown.\nLabel: Beta\nPrediction: Alpha" in text
    assert "Label: Gamma\nPrediction: no clear answer" in text
    assert "preferred the wrong description" not in text
    assert images_of(request) == [task.train[0], task.train[1]]
    rewrite = calls.rewrite("Describe the bird.", errors, "It misses the bill.")
    assert "Label: Beta" in text_of(rewrite) and "It misses the bill." in text_of(
        rewrite
    )
    mixed: list[Mistake] = [
        errors[0],
        ErrorExample(task.train[2], task.train[3], "a", "b"),
    ]
    with pytest.raises(TypeError):
        calls.criticise("Describe the bird.", mixed)


async def test_pseudo_label_baseline_runs_the_search_under_its_name(
    task: Task,
) -> None:
    engine = FakeEngine()
    config = small_config(baselines=("pseudo_random",))
    search = Search(Session(engine), task, config)
    state = SearchState()
    await search.baselines(state)

    result = state.baselines["pseudo_random"]
    assert set(engine.sent_by_phase()) == {"pseudo_random"}
    sent = kinds(engine)
    # Scored by classification, never by comparing images.
    assert "compare" not in sent
    assert sent["criticise"] > 0 and sent["rewrite"] > 0 and sent["paraphrase"] > 0
    # The learnt prompt is tested on every test image, after the search.
    tests = [
        r
        for _, r in engine.sent
        if kind_of(r) == "classify" and images_of(r)[0] in dict(task.test)
    ]
    assert len(tests) == len(task.test)
    assert result["n"] == len(task.test)
    assert result["accuracy"] is not None
    assert result["labelled_images"] == len(task.train)
    assert 0.0 <= result["score"] <= 1.0
    assert result["prompt"].startswith("# Task")
    # Done once: a second call finds it in the state and asks nothing.
    before = len(engine.sent)
    await search.baselines(state)
    assert len(engine.sent) == before


async def test_pseudo_label_baseline_is_deterministic(task: Task) -> None:
    config = small_config(baselines=("pseudo_random", "pseudo_majority"))
    results = []
    for _ in range(2):
        state = SearchState()
        await Search(Session(FakeEngine()), task, config).baselines(state)
        results.append(state.baselines)
    assert results[0] == results[1]
    assert results[0]["pseudo_majority"]["labelled_images"] == len(task.train)


# -- SPO --------------------------------------------------------------------------


async def test_spo_accepts_a_better_candidate_then_stops_on_a_repeat(
    task: Task,
) -> None:
    engine = FakeEngine()
    config = small_config(rounds=2, spo_samples=3)
    session = Session(engine)
    calls = CallMaker(task, config)
    scorer = Scorer(session, calls, task.train, seed=0, n_compare=1)
    best, history = await spo.run_spo(scorer, calls, config)

    bill = replace_task_section(
        initial_prompt("bird"), "Describe the bill of the bird in detail."
    )
    assert best == bill
    assert [r.accepted for r in history] == [True, False]
    assert (history[0].wins, history[0].judged) == (3, 3)
    # The second proposal repeats the best prompt: nothing to judge.
    assert history[1].candidate is None and history[1].judged == 0
    sent = kinds(engine)
    assert sent == {"describe": 6, "optimise": 2, "judge": 3}
    optimise = [r for _, r in engine.sent if kind_of(r) == "optimise"]
    # Each round draws its own proposal, and shows the sample's images.
    assert [r.sample for r in optimise] == [1, 2]
    sample = spo.spo_sample(task.train, 3, 0)
    assert images_of(optimise[0]) == sample
    judged = [r for _, r in engine.sent if kind_of(r) == "judge"]
    assert [images_of(r)[0] for r in judged] == sample


async def test_spo_keeps_the_best_when_the_candidate_loses(task: Task) -> None:
    def answer(request: Request) -> str | Failure:
        if kind_of(request) == "judge":
            # Prefers whichever description does not speak of the bill.
            first = text_of(request).split("Description 2:")[0]
            return "second" if "(bill)" in first else "first"
        return scripted_answer(request)

    config = small_config(rounds=1, spo_samples=4)
    session = Session(FakeEngine(answer))
    calls = CallMaker(task, config)
    scorer = Scorer(session, calls, task.train, seed=0, n_compare=1)
    best, history = await spo.run_spo(scorer, calls, config)
    assert best == initial_prompt("bird")
    assert (history[0].wins, history[0].judged, history[0].accepted) == (0, 4, False)


async def test_spo_baseline_reports_its_prompt_and_rounds(task: Task) -> None:
    engine = FakeEngine()
    config = small_config(baselines=("spo",), rounds=3, spo_samples=2)
    state = SearchState()
    await Search(Session(engine), task, config).baselines(state)
    result = state.baselines["spo"]
    assert set(engine.sent_by_phase()) == {"spo"}
    assert "Describe the bill" in result["prompt"]
    assert [r["round"] for r in result["rounds"]] == [1, 2, 3]
    assert result["rounds"][0]["accepted"] is True
    assert result["n"] == len(task.test) and result["accuracy"] is not None


async def test_estimates_bound_the_learning_baselines(task: Task) -> None:
    config = small_config(baselines=("pseudo_random", "pseudo_majority", "spo"))
    engine = FakeEngine()
    await Search(Session(engine), task, config).baselines(SearchState())
    planned = estimate_calls(config, task)
    for phase, count in engine.sent_by_phase().items():
        assert 0 < count <= planned[phase], phase


def test_the_report_says_when_a_baseline_kept_only_the_initial_prompt() -> None:
    from autosep.render import learnt_prompts

    initial = initial_prompt("bird")
    results = {
        "settings": {"initial_prompt": None},
        "task": {"noun": "bird"},
        "baselines": {
            "zero_shot": {"accuracy": 0.3},
            "spo": {"accuracy": 0.5, "prompt": initial},
            "pseudo_random": {"accuracy": 0.6, "prompt": initial + " More."},
        },
    }
    assert learnt_prompts(results) == [
        ("spo", None),
        ("pseudo random", initial + " More."),
    ]


async def test_a_damaged_statistics_file_stops_a_run_before_any_call(
    task: Task, tmp_path: Path
) -> None:
    from autosep.rundir import RunDirError
    from autosep.runner import run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stats.json").write_text("{")
    engine = FakeEngine()
    config = small_config(dataset=str(Path(task.root)), noun="bird")
    with pytest.raises(RunDirError, match="stats.json"):
        await run(config, run_dir, engine=engine)
    assert not engine.sent
