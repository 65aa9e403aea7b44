"""The method's steps against a scripted fake engine: the exact calls, and their use."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosep.calls import CallMaker, ErrorExample
from autosep.classify import classify_with_prompt
from autosep.evaluators import evaluate, rank
from autosep.expansion import expand
from autosep.prompts import initial_prompt, task_section
from autosep.scoring import Scorer
from autosep.search import Search, SearchState
from autosep.session import Session
from autosep.tasks import Task
from engine.request import Failure, ImageRef
from tests.autosep_fakes import (
    FakeEngine,
    images_of,
    kind_of,
    scripted_answer,
    small_config,
    small_task,
    text_of,
)


@pytest.fixture
def task(tmp_path: Path) -> Task:
    return small_task(tmp_path)


def scorer_for(engine: FakeEngine, task: Task, **changes) -> Scorer:
    config = small_config(**changes)
    return Scorer(
        Session(engine),
        CallMaker(task, config),
        task.train,
        seed=config.seed,
        n_compare=config.n_compare,
    )


def test_describe_requests_are_fixed_draws(task: Task) -> None:
    config = small_config()
    request = CallMaker(task, config).describe("Describe it.", task.train[0])
    assert request.parts == (ImageRef(task.train[0]), "Describe it.")
    assert (request.temperature, request.max_tokens, request.sample) == (0.7, 1024, 0)
    assert request.model == "gpt-4o-mini"


async def test_scoring_makes_one_compare_per_negative(task: Task) -> None:
    engine = FakeEngine()
    scorer = scorer_for(engine, task)
    prompt = initial_prompt("bird")
    image = task.train[0]
    await scorer.score([(prompt, image)])
    sent = engine.sent_by_phase()
    # The image and its two negatives are described, then compared twice.
    assert sent == {"describe": 3, "compare": 2}
    negatives = scorer.negatives(image)
    assert len(negatives) == 2 and image not in negatives
    for _, request in engine.sent:
        if kind_of(request) == "compare":
            assert images_of(request) == [image]
            assert request.temperature == 0.0 and request.max_tokens == 6
            description = scorer.description(prompt, image)
            assert description is not None and description in text_of(request)
    result = scorer.image_score(prompt, image)
    assert (result.correct, result.valid, result.failed) == (2, 2, 0)


async def test_scores_are_never_asked_twice(task: Task) -> None:
    engine = FakeEngine()
    scorer = scorer_for(engine, task)
    prompt = initial_prompt("bird")
    await scorer.score((prompt, image) for image in task.train)
    sent = len(engine.sent)
    await scorer.score((prompt, image) for image in task.train)
    assert len(engine.sent) == sent


async def test_wrong_comparisons_become_errors(task: Task) -> None:
    engine = FakeEngine()
    scorer = scorer_for(engine, task)
    prompt = initial_prompt("bird")
    await scorer.score((prompt, image) for image in task.train)
    errors = scorer.errors(prompt, task.train)
    # The fake errs exactly on images whose name ends in 1.
    assert errors and all(Path(e.image).stem.endswith("1") for e in errors)
    assert all(
        isinstance(e, ErrorExample) and e.correct == scorer.description(prompt, e.image)
        for e in errors
    )
    score = scorer.prompt_score(prompt, task.train)
    wrong = sum(1 for image in task.train if Path(image).stem.endswith("1"))
    assert score.score == pytest.approx(1 - wrong / len(task.train))


async def test_failed_compare_is_excluded_not_counted_wrong(task: Task) -> None:
    def answer(request):
        if kind_of(request) == "compare" and "second" == scripted_answer(request):
            return Failure("server", "boom", 6, 500)
        return scripted_answer(request)

    engine = FakeEngine(answer)
    scorer = scorer_for(engine, task)
    prompt = initial_prompt("bird")
    await scorer.score((prompt, image) for image in task.train)
    total = sum(scorer.image_score(prompt, i).failed for i in task.train)
    assert total > 0
    for image in task.train:
        result = scorer.image_score(prompt, image)
        assert result.valid + result.failed == 2
    assert scorer.session.failures["compare"] == total


async def test_failed_description_skips_its_comparisons(task: Task) -> None:
    broken = task.train[0]

    def answer(request):
        if kind_of(request) == "describe" and images_of(request)[0] == broken:
            return Failure("server", "boom", 6, 500)
        return scripted_answer(request)

    engine = FakeEngine(answer)
    scorer = scorer_for(engine, task)
    prompt = initial_prompt("bird")
    await scorer.score((prompt, image) for image in task.train)
    # No comparison can be made for the image without a description: none is sent,
    # and both of its comparisons count as failed, not wrong.
    assert scorer.description(prompt, broken) is None
    result = scorer.image_score(prompt, broken)
    assert (result.valid, result.failed) == (0, 2)
    compared = [r for phase, r in engine.sent if phase == "compare"]
    assert all(images_of(r)[0] != broken for r in compared)
    # Other images still compare, except against the broken one as a negative.
    others = [scorer.image_score(prompt, i) for i in task.train[1:]]
    assert sum(r.valid for r in others) > 0
    assert scorer.prompt_score(prompt, task.train).images == len(
        [r for r in others if r.valid]
    )


async def test_same_seed_same_requests(task: Task) -> None:
    async def requests_of(seed: int) -> list:
        engine = FakeEngine()
        config = small_config(seed=seed)
        search = Search(Session(engine), task, config)
        state = SearchState()
        await search.baselines(state)
        for _ in range(3):
            await search.next_round(state)
        return [request for _, request in engine.sent]

    first, again, other = (
        await requests_of(0),
        await requests_of(0),
        await requests_of(1),
    )
    assert first == again
    assert first != other


async def test_expansion_calls_follow_the_settings(task: Task) -> None:
    engine = FakeEngine()
    scorer = scorer_for(engine, task)
    config = small_config()
    prompt = initial_prompt("bird")
    [expansion] = await expand([prompt], scorer, scorer.calls, config, round_index=1)
    sent = engine.sent_by_phase()
    assert sent["criticise"] == config.n_gradients
    assert sent["rewrite"] == config.n_gradients
    # One paraphrase of the new section (the same for both reasons) and one of the
    # original; identical requests are asked once.
    assert sent["paraphrase"] == 2
    criticise = [r for p, r in engine.sent if p == "criticise"]
    for request in criticise:
        assert task_section(prompt) in text_of(request)
        assert len(images_of(request)) == min(
            config.errors_per_gradient, expansion.errors
        )
    assert expansion.reasons == ["The prompt does not ask about the bill."] * 2
    assert "# Task\nDescribe the bill of the bird in detail." in expansion.children[0]
    assert all(
        child.endswith("Answer in a few plain sentences.")
        for child in expansion.children
    )
    assert prompt not in expansion.children
    assert len(expansion.children) <= config.max_expansion_factor


async def test_no_errors_means_no_criticism(task: Task) -> None:
    def perfect(request):
        if kind_of(request) == "compare":
            text = request.parts[1]
            stem = Path(images_of(request)[0]).stem
            return "first" if f" {stem} " in text.split("Text 2:")[0] else "second"
        return scripted_answer(request)

    engine = FakeEngine(perfect)
    scorer = scorer_for(engine, task)
    [expansion] = await expand(
        [initial_prompt("bird")], scorer, scorer.calls, small_config(), 1
    )
    assert expansion.errors == 0
    assert engine.sent_by_phase()["criticise"] == 0


@pytest.mark.parametrize("evaluator", ["bf", "ucb", "sr", "sh"])
async def test_evaluators_rank_the_better_prompt_first(
    task: Task, evaluator: str
) -> None:
    def answer(request):
        if kind_of(request) == "compare" and "vague" in request.parts[1]:
            return "first"
        return scripted_answer(request)

    def describe(request):
        if kind_of(request) == "describe" and "Say little" in request.parts[1]:
            return "vague"
        return answer(request)

    engine = FakeEngine(describe)
    scorer = scorer_for(engine, task, evaluator=evaluator)
    good = initial_prompt("bird")
    bad = "# Task\nSay little.\n\n# Output format\nShort."
    config = small_config(
        evaluator=evaluator, samples_per_eval=2, eval_rounds=3, eval_prompts_per_round=2
    )
    evaluations = await evaluate([bad, good], scorer, config, round_index=1)
    assert [e.prompt for e in evaluations] == [bad, good]
    assert rank(evaluations)[0].prompt == good


async def test_classification_counts_unparsed_and_failed(task: Task) -> None:
    def answer(request):
        if kind_of(request) == "classify":
            species = Path(images_of(request)[-1]).parent.name
            return {"Alpha": "A", "Beta": "A or B"}.get(
                species, Failure("timeout", "slow")
            )
        return scripted_answer(request)

    engine = FakeEngine(answer)
    scorer = scorer_for(engine, task)
    result = await classify_with_prompt(
        initial_prompt("bird"), scorer, scorer.calls, task
    )
    assert (result.n, result.failed, result.unparsed, result.correct) == (9, 3, 3, 3)
    assert result.accuracy == pytest.approx(0.5)
    assert result.confusion[1] == [0, 0, 0, 3]


async def test_search_rounds_record_beam_scores_and_accuracy(task: Task) -> None:
    engine = FakeEngine()
    search = Search(Session(engine), task, small_config())
    state = SearchState()
    await search.baselines(state)
    while state.completed_round < 2:
        await search.next_round(state)
    assert [r["round"] for r in state.rounds] == [0, 1, 2]
    assert state.rounds[0]["beam"][0]["score"] is None
    assert not state.rounds[0]["candidates"]
    assert len(state.beam) == 2
    last = state.rounds[-1]
    scores = [b["score"] for b in last["beam"]]
    assert scores == sorted(scores, reverse=True)
    assert all(b["test"]["n"] == 9 for b in last["beam"])
    # The rewritten prompts ask about the bill, which the fake answers best.
    assert "bill" in state.beam[0]
    assert set(state.baselines) == {"zero_shot", "zero_shot_described", "majority_vote"}


async def test_majority_vote_draws_five_samples(task: Task) -> None:
    engine = FakeEngine()
    search = Search(Session(engine), task, small_config(baselines="majority_vote"))
    await search.baselines(SearchState())
    votes = [r for p, r in engine.sent if p == "baseline"]
    assert len(votes) == 5 * len(task.test)
    assert {r.sample for r in votes} == set(range(5))
    assert {r.temperature for r in votes} == {0.7}


@pytest.mark.parametrize("name", ["few_shot_random", "multi_image", "kmeans"])
async def test_context_baselines_show_images_before_the_query(
    task: Task, name: str
) -> None:
    engine = FakeEngine()
    search = Search(
        Session(engine), task, small_config(baselines=name, context_images=2)
    )
    state = SearchState()
    await search.baselines(state)
    requests = [r for p, r in engine.sent if p == "baseline"]
    assert len(requests) == len(task.test)
    for request, (image, _) in zip(requests, task.test, strict=True):
        images = images_of(request)
        assert images[-1] == image and len(images) == 3
        assert all(i in task.train for i in images[:-1])
        labelled = any(
            isinstance(p, str) and p.startswith("Class: ") for p in request.parts
        )
        assert labelled == (name == "few_shot_random")
    assert state.baselines[name]["n"] == len(task.test)
