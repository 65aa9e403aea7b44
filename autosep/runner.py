"""A whole run: load the task, open the engine, search round by round, report.

Everything that can stop a run (a bad setting, a dataset that does not load, an
unreadable image, a missing key, a cache that cannot be opened) is checked before the
first call. A checkpoint is written after the baselines and after every round; a run
stopped by its budget, a signal or a crash resumes from the last one.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosep.checks import check_image
from autosep.config import RunConfig
from autosep.costs import cost_usd, is_priced
from autosep.datasets import DatasetError, load_dataset
from autosep.plan import estimate_calls, estimate_cost
from autosep.results import build_results
from autosep.rundir import RunDir
from autosep.search import Search, SearchState
from autosep.session import BudgetExceeded, EngineLike, Session
from autosep.synthetic import DEFAULT_FAMILY, load_family
from autosep.tasks import Task, make_task
from engine.request import Request

__all__ = [
    "DryRun",
    "RunError",
    "RunOutcome",
    "dry_run",
    "execute",
    "load_task",
    "open_engine",
    "run",
]

logger = logging.getLogger(__name__)


class RunError(Exception):
    """A run cannot start; the message says what to change."""


@dataclass
class RunOutcome:
    """How a run ended.

    Attributes:
        run_dir: Where its files are.
        results: The results (also in results.json), or None if it stopped early.
        stopped: Why it stopped early (the budget), or None when it finished.
        failed_calls: Calls of this session that ended without an answer.
    """

    run_dir: Path
    results: dict[str, Any] | None
    stopped: str | None = None
    failed_calls: int = 0


@dataclass
class DryRun:
    """What a run would do, found without calling any model.

    Attributes:
        planned: Upper estimate of the calls per phase of the whole run.
        replayed: Calls the cache answered before the first uncached one, per phase.
        uncached_estimate: Calls the run would still have to make.
        cost_usd: List-price estimate of those calls.
        priced: Whether the models' prices are known.
    """

    planned: dict[str, int]
    replayed: dict[str, int] = field(default_factory=dict)
    uncached_estimate: int = 0
    cost_usd: float = 0.0
    priced: bool = True


def load_task(config: RunConfig) -> Task:
    """Load the configured dataset (or synthetic family) and draw the task.

    Raises:
        RunError: The dataset does not load, or some of its images do not decode.
    """
    try:
        if config.dataset:
            dataset = load_dataset(
                config.dataset,
                layout=config.layout,
                noun=config.noun,
                classes=config.classes,
                task=config.task,
            )
        else:
            dataset = load_family(
                config.family or DEFAULT_FAMILY,
                config.data_dir,
                per_species=config.synthetic_per_species,
                seed=config.synthetic_seed,
            )
    except DatasetError as error:
        raise RunError(str(error)) from error
    task = make_task(
        dataset, n_train=config.n_train, n_test=config.n_test, seed=config.seed
    )
    _check_task(task)
    return task


def _check_task(task: Task) -> None:
    if len(task.train) < 2 or not task.test:
        raise RunError(
            f"{task.name}: {len(task.train)} training and "
            f"{len(task.test)} test images; "
            "a run needs at least 2 and 1 (check the dataset with 'data check')"
        )
    images = [*task.train, *(path for path, _ in task.test)]
    bad = [(path, reason) for path in images if (reason := check_image(path))]
    if bad:
        listed = "; ".join(f"{task.relative(p)}: {r}" for p, r in bad[:5])
        raise RunError(f"{len(bad)} images cannot be decoded ({listed})")


@contextlib.asynccontextmanager
async def open_engine(
    config: RunConfig, on_event: Callable[[Any], None] | None = None
) -> AsyncIterator[EngineLike]:
    """Open the engine the settings ask for, starting an in-process emulator if needed.

    Raises:
        RunError: A provider cannot be set up (unknown name, missing key) or the
            cache cannot be opened.
    """
    from cache.store import CacheError, ResponseCache, default_cache_dir
    from engine import Engine, EngineConfig
    from engine.settings import read_settings
    from providers import make_provider
    from providers.base import ConfigError

    try:
        settings = read_settings(
            Path(config.limits_file) if config.limits_file else None
        ).with_limits(
            config.provider, config.main_model, rpm=config.rpm, tpm=config.tpm
        )
    except ConfigError as error:
        raise RunError(str(error)) from error

    names = sorted({config.provider, config.critic[0]})
    try:
        cache = (
            None
            if config.no_cache
            else ResponseCache(config.cache_dir or default_cache_dir())
        )
    except CacheError as error:
        raise RunError(str(error)) from error
    async with contextlib.AsyncExitStack() as stack:
        if cache is not None:
            # Closed last: the engine saves prepared images and lookup counts, and
            # checkpoints the answers, as it closes.
            stack.callback(cache.close)
        providers = {}
        for name in names:
            base_url = config.base_url if name == config.provider else None
            if name == "emulator" and not base_url:
                from providers.emulator.server import EmulatorServer

                base_url = (await stack.enter_async_context(EmulatorServer())).base_url
            try:
                providers[name] = make_provider(name, base_url=base_url)
            except ConfigError as error:
                raise RunError(str(error)) from error
        engine = Engine(
            providers,
            cache=cache,
            config=EngineConfig(concurrency=config.concurrency),
            on_event=on_event,
            limiters=settings.limiter_set({n: p.kind for n, p in providers.items()}),
        )
        yield await stack.enter_async_context(engine)


async def execute(
    search: Search, state: SearchState, save: Callable[[SearchState], None]
) -> SearchState:
    """Run the baselines and every remaining round, saving after each step."""
    if set(search.config.baselines) - set(state.baselines):
        await search.baselines(state)
        save(state)
    while state.completed_round < search.config.rounds:
        await search.next_round(state)
        save(state)
        search.session.note("checkpoint", round=state.completed_round)
    return state


async def run(
    config: RunConfig,
    run_dir: str | Path,
    *,
    on_event: Callable[[Any], None] | None = None,
    engine: EngineLike | None = None,
) -> RunOutcome:
    """Run (or continue) AutoSEP in a run directory.

    Args:
        config: The settings.
        run_dir: The run directory; a run already there is continued if its
            settings match.
        on_event: Receives the engine's progress events.
        engine: An engine to use instead of opening one (tests pass a fake).

    Raises:
        RunError: The run cannot start.
        ConfigMismatch: The directory holds a run with other settings.
        RunDirError: A file of the directory is damaged.
    """
    task = load_task(config)
    directory = RunDir(run_dir)
    # A damaged checkpoint or statistics file stops the run before any call.
    directory.load_state()
    directory.read_stats()

    def journal(event: Any) -> None:
        directory.journal(_event_record(event))
        if on_event is not None:
            on_event(event)

    async with contextlib.AsyncExitStack() as stack:
        if engine is None:
            engine = await stack.enter_async_context(open_engine(config, journal))
        # Claimed only once the providers are set up, so a run refused for a
        # missing key leaves no directory behind to refuse the corrected run.
        directory.claim(config)
        return await _run_with(engine, config, task, directory)


async def _run_with(
    engine: EngineLike, config: RunConfig, task: Task, directory: RunDir
) -> RunOutcome:
    session = Session(engine, budget_usd=config.budget_usd, on_note=directory.journal)
    search = Search(session, task, config)
    state = directory.load_state() or SearchState()
    session.note("session_started", completed_round=state.completed_round)
    try:
        await execute(search, state, lambda s: directory.save_state(s, config))
    except BudgetExceeded as error:
        logger.warning("%s", error)
        return RunOutcome(directory.path, None, stopped=str(error))
    finally:
        directory.add_stats(session_stats(engine, session))
    results = build_results(state, task, config)
    directory.write_results(results)
    session.note("finished")
    failed = sum(session.failures.values())
    return RunOutcome(directory.path, results, failed_calls=failed)


def session_stats(engine: EngineLike, session: Session) -> dict[str, Any]:
    """Summarise what one session cost, per phase."""
    phases = {}
    for name, stats in engine.stats().items():
        data = stats.to_dict() if hasattr(stats, "to_dict") else dict(stats)
        billed = getattr(stats, "billed", {})
        data["cost_usd"] = cost_usd(billed)
        data["priced"] = all(is_priced(model) for model in billed)
        phases[name] = data
    return {
        "phases": phases,
        "asked": dict(session.asked),
        "failures": dict(session.failures),
        "failure_examples": session.failure_examples,
    }


class _DryRunStop(Exception):
    pass


class _ReplaySession(Session):
    """A session that only lets through batches the cache answers in full."""

    async def texts(self, requests: Sequence[Request], phase: str) -> list[str | None]:
        pending = list(dict.fromkeys(r for r in requests if r not in self._answers))
        if pending and await self.engine.count_cached(pending) < len(pending):
            raise _DryRunStop(phase)
        return await super().texts(requests, phase)


async def dry_run(config: RunConfig, engine: EngineLike | None = None) -> DryRun:
    """Find out, without any call, how many calls a run makes and what they cost.

    The run is replayed from the cache as far as the cache answers it; the rest is
    estimated from the method's structure.
    """
    task = load_task(config)
    planned = estimate_calls(config, task)
    async with contextlib.AsyncExitStack() as stack:
        if engine is None:
            engine = await stack.enter_async_context(open_engine(config))
        session = _ReplaySession(engine)
        finished = True
        try:
            await execute(Search(session, task, config), SearchState(), lambda s: None)
        except _DryRunStop:
            finished = False
    replayed = dict(session.asked)
    uncached: Counter[str] = Counter()
    if not finished:
        uncached = Counter(
            {p: max(n - replayed.get(p, 0), 0) for p, n in planned.items()}
        )
    models = {config.main_model, config.critic[1]}
    return DryRun(
        planned=dict(planned),
        replayed=replayed,
        uncached_estimate=sum(uncached.values()),
        cost_usd=estimate_cost(config, uncached),
        priced=all(is_priced(m) for m in models),
    )


def _event_record(event: Any) -> dict[str, Any]:
    name = type(event).__name__
    if name == "PhaseFinished":
        return {"event": name, "phase": event.phase, "stats": event.stats.to_dict()}
    if name == "CallFinished":
        return {
            "event": name,
            "phase": event.phase,
            "key": event.key,
            "cached": event.cached,
            "failed": event.failed,
            "latency_s": round(event.latency_s, 4),
            "input_tokens": event.usage.input_tokens,
            "output_tokens": event.usage.output_tokens,
            "attempts": event.attempts,
            "error": event.error,
        }
    if hasattr(event, "__dataclass_fields__"):
        return {
            "event": name,
            **{k: getattr(event, k) for k in event.__dataclass_fields__},
        }
    return {"event": name, "value": str(event)}
