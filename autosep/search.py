"""The search: beam search over description prompts, one round at a time.

The state between rounds is small (the beam and the records so far) and is all a
checkpoint holds: everything else (descriptions, scores) is recomputed from the
cache, which is what makes a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from autosep import spo
from autosep.baselines import run_baseline
from autosep.calls import CallMaker
from autosep.classify import classify_with_prompt, classify_with_prompts
from autosep.config import RunConfig
from autosep.evaluators import Evaluation, evaluate, rank
from autosep.expansion import Expansion, expand
from autosep.prompts import initial_prompt
from autosep.pseudo import PSEUDO_LABELS, LabelScorer, pseudo_labels
from autosep.scoring import Scorer, prompt_id
from autosep.session import Session
from autosep.tasks import Task

__all__ = ["Search", "SearchState"]

logger = logging.getLogger(__name__)


@dataclass
class SearchState:
    """Everything a checkpoint holds.

    Attributes:
        completed_round: The last round finished (-1 before round 0).
        beam: The current beam, best first.
        rounds: One JSON-ready record per finished round.
        baselines: Baseline metrics by name, once computed.
    """

    completed_round: int = -1
    beam: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready data."""
        return {
            "completed_round": self.completed_round,
            "beam": self.beam,
            "rounds": self.rounds,
            "baselines": self.baselines,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchState:
        """Rebuild a state from :meth:`to_dict` data."""
        return cls(
            completed_round=int(data["completed_round"]),
            beam=list(data["beam"]),
            rounds=list(data["rounds"]),
            baselines=dict(data["baselines"]),
        )


class Search:
    """Run AutoSEP's rounds and baselines against a session.

    Args:
        session: Where requests go.
        task: The task.
        config: The settings.
        scorer: How candidates are scored; by default the method's instance-level
            comparison (the pseudo-label baselines give a scorer of their own).
    """

    def __init__(
        self,
        session: Session,
        task: Task,
        config: RunConfig,
        scorer: Scorer | None = None,
    ) -> None:
        self.session = session
        self.task = task
        self.config = config
        self.calls = CallMaker(task, config)
        self.scorer = scorer or Scorer(
            session,
            self.calls,
            task.train,
            seed=config.seed,
            n_compare=config.n_compare,
        )

    @property
    def initial_prompt(self) -> str:
        """The prompt the search starts from."""
        return self.config.initial_prompt or initial_prompt(self.task.noun)

    async def baselines(self, state: SearchState) -> None:
        """Run every configured baseline not yet in the state."""
        for name in self.config.baselines:
            if name in state.baselines:
                continue
            logger.info("baseline %s", name)
            if name in PSEUDO_LABELS or name == "spo":
                # They learn a prompt of their own: a whole search's calls, which
                # are reported under the baseline's name.
                with self.session.booked_as(name):
                    state.baselines[name] = await self._learning_baseline(name)
                continue
            result = await run_baseline(name, self.scorer, self.calls, self.config)
            state.baselines[name] = result.to_dict()

    async def _learning_baseline(self, name: str) -> dict[str, Any]:
        """Learn a prompt as a baseline does, then test it like the method's."""
        learnt: dict[str, Any]
        if name == "spo":
            prompt, history = await spo.run_spo(self.scorer, self.calls, self.config)
            learnt = {"rounds": spo.rounds_record(history)}
        else:
            labels = await pseudo_labels(
                PSEUDO_LABELS[name], self.session, self.calls, self.config
            )
            scorer = LabelScorer(
                self.session,
                self.calls,
                self.task.train,
                seed=self.config.seed,
                labels=labels,
            )
            # The same search as the method's, with test accuracy only at the end.
            inner = Search(
                self.session, self.task, self.config.replace(test_eval=False), scorer
            )
            state = SearchState()
            while state.completed_round < self.config.rounds:
                await inner.next_round(state, note=False)
            prompt = state.beam[0]
            best = state.rounds[-1]["beam"][0]
            learnt = {
                "score": best["score"],
                "labelled_images": sum(v is not None for v in labels.values()),
            }
        tested = await classify_with_prompt(prompt, self.scorer, self.calls, self.task)
        return {**tested.to_dict(), "prompt": prompt, **learnt}

    async def next_round(self, state: SearchState, *, note: bool = True) -> None:
        """Run the round after ``state.completed_round`` and record it in the state.

        Args:
            state: The state to continue and update.
            note: Journal the round's start (a baseline's inner search does not).
        """
        round_index = state.completed_round + 1
        failures_before = sum(self.session.failures.values())
        logger.info("round %d of %d", round_index, self.config.rounds)
        if note:
            self.session.note("round_started", round=round_index)
        if round_index == 0:
            # A single candidate needs no ranking, so round 0 makes no scoring calls.
            beam = [self.initial_prompt]
            evaluations: list[Evaluation] = []
            expansions: list[Expansion] = []
        else:
            beam, evaluations, expansions = await self._search_round(
                state.beam, round_index
            )
        tests = await self._test(beam)
        record = _round_record(round_index, beam, evaluations, expansions, tests)
        record["failures"] = sum(self.session.failures.values()) - failures_before
        state.rounds.append(record)
        state.beam = beam
        state.completed_round = round_index

    async def _search_round(
        self, beam: list[str], round_index: int
    ) -> tuple[list[str], list[Evaluation], list[Expansion]]:
        expansions = await expand(
            beam, self.scorer, self.calls, self.config, round_index
        )
        children = [child for e in expansions for child in e.children]
        candidates = list(dict.fromkeys([*beam, *children]))
        evaluations = await evaluate(candidates, self.scorer, self.config, round_index)
        ranked = rank(evaluations)
        return [e.prompt for e in ranked[: self.config.beam_size]], ranked, expansions

    async def _test(self, beam: list[str]) -> dict[str, dict[str, Any]]:
        if not self.config.test_eval:
            return {}
        # The beam's prompts are tested together: one short batch per prompt would
        # leave most of the concurrency idle.
        results = await classify_with_prompts(beam, self.scorer, self.calls, self.task)
        return {
            prompt: result.to_dict()
            for prompt, result in zip(beam, results, strict=True)
        }


def _round_record(
    round_index: int,
    beam: list[str],
    evaluations: list[Evaluation],
    expansions: list[Expansion],
    tests: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    scores = {e.prompt: e for e in evaluations}
    parents = {child: e.parent for e in expansions for child in e.children}
    return {
        "round": round_index,
        "beam": [
            {
                "id": prompt_id(prompt),
                "prompt": prompt,
                **_score_fields(scores.get(prompt)),
                "test": tests.get(prompt),
            }
            for prompt in beam
        ],
        "candidates": [
            {
                "id": prompt_id(e.prompt),
                "parent": prompt_id(parents[e.prompt]) if e.prompt in parents else None,
                **_score_fields(e),
            }
            for e in evaluations
        ],
        "expansions": [
            {
                "parent": prompt_id(e.parent),
                "minibatch": e.minibatch,
                "errors": e.errors,
                "reasons": e.reasons,
                "children": [prompt_id(c) for c in e.children],
                "unparsed": e.unparsed,
            }
            for e in expansions
        ],
    }


def _score_fields(evaluation: Evaluation | None) -> dict[str, Any]:
    if evaluation is None:
        return {"score": None, "images": 0}
    score = evaluation.score
    return {
        "score": None if score.score is None else round(score.score, 6),
        "images": score.images,
        "unparsed": score.unparsed,
        "failed": score.failed,
        "survived": evaluation.survived,
    }
