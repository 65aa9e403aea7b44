"""The command line: thin click commands over the library, rendered with rich."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from cache.store import CacheError, ResponseCache, default_cache_dir
from engine import CallFinished, Engine, EngineConfig, Event, PhaseStarted, PhaseStats
from engine.batchfile import BatchItem, read_batch, result_row
from engine.pricing import PriceTable
from engine.process import tune_for_many_calls
from engine.settings import EngineSettings, read_settings
from providers import DEFAULT_MODELS, PROVIDER_NAMES, make_provider
from providers.base import ConfigError
from providers.emulator.server import FAULT_KINDS, EmulatorConfig, EmulatorServer

logger = logging.getLogger("cli")


class _RateColumn(ProgressColumn):
    """Calls per second over rich's recent-speed window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="cyan")


class ProgressView:
    """Render engine events as one progress bar per phase.

    It is an event sink for :class:`engine.Engine`; when the console is not a
    terminal (or ``enabled`` is False) it ignores every event.
    """

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.enabled = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("in flight {task.fields[in_flight]}"),
            TextColumn("cached {task.fields[hits]}"),
            _RateColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._tasks: dict[str, Any] = {}
        self._hits: dict[str, int] = {}

    def __enter__(self) -> ProgressView:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            self._progress.stop()

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, PhaseStarted):
            self._start(event)
        elif isinstance(event, CallFinished):
            self._hits[event.phase] += event.cached
            self._progress.update(
                self._tasks[event.phase],
                advance=1,
                in_flight=event.in_flight,
                hits=self._hits[event.phase],
            )

    def _start(self, event: PhaseStarted) -> None:
        task = self._tasks.get(event.phase)
        if task is None:
            self._hits[event.phase] = 0
            self._tasks[event.phase] = self._progress.add_task(
                event.phase, total=event.total, in_flight=0, hits=0
            )
        else:
            total = self._progress.tasks[task].total or 0
            self._progress.update(task, total=total + event.total)


def stats_table(
    stats: Mapping[str, PhaseStats],
    title: str = "Calls",
    prices: PriceTable | None = None,
    width: int = 200,
) -> Table:
    """Build the per-phase table of calls, cache hits, tokens, latency and cost.

    Cost counts every billed attempt, retries included; what cache hits would have
    cost is shown apart as saved. A model with no known price says so.
    """
    from autosep.render import phases_table

    rows = {name: phase.to_dict(prices) for name, phase in stats.items()}
    return phases_table(rows, title=title, width=width)


def _setup_logging(console: Console, verbose: int) -> None:
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = RichHandler(console=console, show_path=False, markup=False)
    logging.basicConfig(
        level=level, handlers=[handler], format="%(message)s", force=True
    )
    # aiohttp logs every dropped connection at ERROR; that is the retry path's
    # business, not the user's.
    logging.getLogger("aiohttp").setLevel(max(level, logging.CRITICAL))


# Exit codes beyond 0 (everything done), 1 (some calls failed) and 2 (refused).
STOPPED_BY_BUDGET = 3
INTERRUPTED = 130  # as a shell reports a program ended by Ctrl-C


class ConfigProblem(click.ClickException):
    """A configuration the user must change (a key, a settings file, a path).

    It exits with 2, as a usage error does: nothing was run.
    """

    exit_code = 2


def _open_cache(cache_dir: Path | None, no_cache: bool) -> ResponseCache | None:
    if no_cache:
        return None
    try:
        return ResponseCache(cache_dir or default_cache_dir())
    except CacheError as error:
        raise ConfigProblem(str(error)) from error


@click.group()
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Run AutoSEP and other large batches of multimodal LLM calls."""
    ctx.ensure_object(dict)
    tune_for_many_calls()
    console = Console(stderr=True)
    _setup_logging(console, verbose)
    ctx.obj["verbose"] = verbose
    ctx.obj["console"] = console
    ctx.obj["quiet"] = quiet


def _provider_options(func: Any) -> Any:
    """The options that choose a provider, shared by the commands that call one."""
    for option in reversed(
        [
            click.option(
                "--provider",
                type=click.Choice(PROVIDER_NAMES),
                default="emulator",
                show_default=True,
                help="Which API to call.",
            ),
            click.option(
                "--base-url",
                default=None,
                help="The server's root URL (an OpenAI-compatible server, or a running "
                "emulator); the provider's own API when left out.",
            ),
            click.option(
                "--model",
                default=None,
                help="The model, as the provider names it (default: "
                + ", ".join(f"{p} {m}" for p, m in DEFAULT_MODELS.items())
                + ").",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1),
                default=64,
                show_default=True,
                help="Calls in flight at most.",
            ),
            click.option(
                "--cache-dir",
                type=click.Path(path_type=Path),
                default=None,
                help="Where answers are cached (default: the user cache folder, or "
                "$AUTOSEP_CACHE_DIR).",
            ),
            click.option(
                "--no-cache", is_flag=True, help="Neither read nor write the cache."
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0.1),
                default=120.0,
                show_default=True,
                help="Seconds allowed for one attempt.",
            ),
            click.option(
                "--settings",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default=None,
                help="A TOML file of rate limits per provider/model and prices.",
            ),
            click.option(
                "--rpm",
                type=click.IntRange(1),
                default=None,
                help="Requests per minute for this provider and model.",
            ),
            click.option(
                "--tpm",
                type=click.IntRange(1),
                default=None,
                help="Tokens per minute for this provider and model.",
            ),
            click.option(
                "--input-tpm",
                type=click.IntRange(1),
                default=None,
                help="Input tokens per minute (providers that count them apart).",
            ),
            click.option(
                "--output-tpm",
                type=click.IntRange(1),
                default=None,
                help="Output tokens per minute (providers that count them apart).",
            ),
            click.option(
                "--max-attempts",
                type=click.IntRange(1),
                default=6,
                show_default=True,
                help="Attempts per call, the first included.",
            ),
        ]
    ):
        func = option(func)
    return func


@cli.group()
def data() -> None:
    """Make, load and check datasets."""


@cli.group()
def emulator() -> None:
    """The built-in emulator of the OpenAI, Gemini and Anthropic APIs."""


@cli.group()
def cache() -> None:
    """Inspect and clear the response cache."""


@cli.command()
@click.argument(
    "input_path",
    metavar="INPUT",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the results, one JSON object a line.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Output budget for lines that do not set max_tokens.",
)
@_provider_options
@click.pass_context
def batch(
    ctx: click.Context, input_path: Path, output: Path, max_tokens: int, **options: Any
) -> None:
    """Run the requests of a JSON-lines file and write their answers in order.

    Each INPUT line is an object with "prompt" (text) and "images" (file paths,
    relative to INPUT's folder), and optionally "id", "model", "temperature",
    "max_tokens" and "system".
    """
    console: Console = ctx.obj["console"]
    _check_output(input_path, output)
    if options["model"] is None:
        options["model"] = DEFAULT_MODELS[options["provider"]]
    items = list(
        read_batch(
            input_path,
            provider=options["provider"],
            model=options["model"],
            max_tokens=max_tokens,
        )
    )
    try:
        settings = engine_settings(options)
    except ConfigError as error:
        raise ConfigProblem(str(error)) from error
    cache = _open_cache(options["cache_dir"], options["no_cache"])
    view = ProgressView(console, enabled=not ctx.obj["quiet"])
    started = time.perf_counter()
    try:
        with view:
            results, stats = asyncio.run(
                _run_batch(items, options, settings, cache, view)
            )
    except ConfigError as error:
        raise ConfigProblem(str(error)) from error
    except KeyboardInterrupt:
        saved = "" if cache is None else "; the answers received so far are cached"
        console.print(f"interrupted{saved}: run the same command again to continue")
        sys.exit(INTERRUPTED)
    finally:
        if cache is not None:
            cache.close()
    wall = time.perf_counter() - started
    failed = _write_results(output, items, results)
    title = f"Batch: {len(items):,} lines"
    prices = settings.price_table()
    console.print(stats_table(stats, title=title, prices=prices, width=console.width))
    console.print(_throughput_line(stats.get("batch"), wall))
    if failed:
        console.print(
            f"[red]{failed:,} of {len(items):,} items failed[/]; see {output}"
        )
        sys.exit(1)


def _check_output(source: Path, output: Path) -> None:
    """Refuse an output that cannot be written, before any call is paid for."""
    if output.resolve() == source.resolve():
        raise click.BadParameter(
            "the output would overwrite the input", param_hint="-o"
        )
    folder = output.resolve().parent
    if not folder.is_dir():
        raise click.BadParameter(f"folder {folder} does not exist", param_hint="-o")
    if not os.access(folder, os.W_OK):
        raise click.BadParameter(f"folder {folder} is not writable", param_hint="-o")


def engine_settings(options: Mapping[str, Any]) -> EngineSettings:
    """Read the settings file and apply the limit flags to the run's model.

    Raises:
        ConfigError: The settings file is unreadable or wrong.
    """
    return read_settings(options["settings"]).with_limits(
        options["provider"],
        options["model"],
        rpm=options["rpm"],
        tpm=options["tpm"],
        input_tpm=options["input_tpm"],
        output_tpm=options["output_tpm"],
    )


async def _run_batch(
    items: Sequence[BatchItem],
    options: Mapping[str, Any],
    settings: EngineSettings,
    cache: ResponseCache | None,
    view: ProgressView,
) -> tuple[list[Any], dict[str, PhaseStats]]:
    config = EngineConfig(
        concurrency=options["concurrency"],
        timeout_s=options["timeout"],
        max_attempts=options["max_attempts"],
    )
    async with contextlib.AsyncExitStack() as stack:
        provider = await _start_provider(stack, options)
        engine = await stack.enter_async_context(
            Engine(
                {options["provider"]: provider},
                cache=cache,
                config=config,
                on_event=view,
                limiters=settings.limiter_set({options["provider"]: provider.kind}),
            )
        )
        requests = [item.request for item in items if item.request is not None]
        results = iter(await engine.map(requests, "batch"))
        return [
            None if item.request is None else next(results) for item in items
        ], engine.stats()


async def _start_provider(
    stack: contextlib.AsyncExitStack, options: Mapping[str, Any]
) -> Any:
    """Build the provider; for the emulator with no URL, start one in this process."""
    base_url = options["base_url"]
    if options["provider"] == "emulator" and not base_url:
        server = await stack.enter_async_context(EmulatorServer())
        base_url = server.base_url
    return make_provider(options["provider"], base_url=base_url)


def _throughput_line(stats: PhaseStats | None, wall: float) -> str:
    calls = stats.calls if stats else 0
    hits = stats.cache_hits if stats else 0
    share = f" ({hits / calls:.0%})" if calls else ""
    return (
        f"{calls:,} calls in {wall:.2f}s, {calls / wall:,.0f} calls/s; "
        f"{hits:,} from the cache{share}"
    )


def _write_results(
    output: Path, items: Sequence[BatchItem], results: Sequence[Any]
) -> int:
    """Write the results beside the output, then move them into place at once."""
    failed = 0
    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as out:
        for item, result in zip(items, results, strict=True):
            row = result_row(item, result)
            failed += "error" in row
            out.write(orjson.dumps(row) + b"\n")
    partial.replace(output)
    return failed


@emulator.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=8900, show_default=True)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Added latency per request (the median when --latency-sigma > 0).",
)
@click.option(
    "--latency-sigma",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Sigma of a log-normal latency; 0 for a fixed latency.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered with a fault.",
)
@click.option(
    "--faults",
    default=",".join(FAULT_KINDS),
    show_default=True,
    help="Comma-separated fault kinds to draw from.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds latency and faults."
)
@click.pass_context
def emulator_serve(
    ctx: click.Context,
    port: int,
    latency_ms: float,
    latency_sigma: float,
    fault_rate: float,
    faults: str,
    seed: int,
) -> None:
    """Serve the emulator on 127.0.0.1 until interrupted."""
    try:
        config = EmulatorConfig(
            latency_ms=latency_ms,
            latency_sigma=latency_sigma,
            fault_rate=fault_rate,
            faults=tuple(f for f in faults.split(",") if f),
            seed=seed,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    console: Console = ctx.obj["console"]
    console.print(
        f"emulator on http://127.0.0.1:{port} (counts at /emulator/stats); "
        "Ctrl-C stops it"
    )
    from providers.emulator.server import serve

    try:
        serve(config, port=port)
    except OSError as error:
        raise click.ClickException(
            f"cannot listen on 127.0.0.1:{port} ({error.strerror}); choose another "
            "--port"
        ) from error


@cache.command("stats")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The cache's folder (default: the user cache folder).",
)
@click.pass_context
def cache_stats(ctx: click.Context, cache_dir: Path | None) -> None:
    """Show the cache's size, hit rate and entries per model."""
    where = cache_dir or default_cache_dir()
    if not where.exists():
        raise ConfigProblem(f"there is no cache at {where}")
    store = _open_cache(cache_dir, False)
    assert store is not None
    stats = store.stats()
    store.close()
    table = Table(title=f"Cache at {stats['directory']}", show_header=False)
    rate = stats["hit_rate"]
    table.add_row("answers", f"{stats['entries']:,}")
    table.add_row("prepared images", f"{stats['images']:,}")
    table.add_row("size on disk", f"{stats['bytes'] / 1e6:,.1f} MB")
    table.add_row("lookups", f"{stats['hits']:,} hits, {stats['misses']:,} misses")
    table.add_row("hit rate", "-" if rate is None else f"{rate:.1%}")
    for model, count in sorted(stats["per_model"].items()):
        table.add_row(f"  {model}", f"{count:,}")
    ctx.obj["console"].print(table)


@cache.command("clear")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The cache's folder (default: the user cache folder).",
)
@click.confirmation_option(prompt="Remove every cached answer?")
@click.pass_context
def cache_clear(ctx: click.Context, cache_dir: Path | None) -> None:
    """Remove every cached answer and prepared image."""
    store = _open_cache(cache_dir, False)
    assert store is not None
    removed = store.clear()
    store.close()
    ctx.obj["console"].print(f"removed {removed:,} cached answers")


# AutoSEP: run, resume, report, and data check. The logic lives in autosep/; these
# commands gather settings, call it, and render what it returns.

_METHOD_OPTIONS: tuple[tuple[str, Any, str], ...] = (
    (
        "--dataset",
        str,
        "Dataset folder or manifest (folder per class, manifest, "
        "CUB-200-2011, iNaturalist 2021); a synthetic family when left out.",
    ),
    ("--family", str, "Synthetic family to generate and use (default: finch)."),
    (
        "--layout",
        click.Choice(("auto", "folder", "manifest", "cub", "inat")),
        "Dataset layout (default: auto).",
    ),
    (
        "--task",
        click.Choice(("cuckoo", "oriole", "vireo")),
        "CUB-200-2011 reference task (three classes).",
    ),
    ("--classes", str, "Comma-separated classes to keep, in option order."),
    ("--noun", str, "What the images show (bird, butterfly, ...)."),
    ("--n-train", click.IntRange(1), "Unlabeled training images per class (30)."),
    ("--n-test", click.IntRange(1), "Test images per class (30)."),
    ("--provider", click.Choice(PROVIDER_NAMES), "API for the main calls (emulator)."),
    ("--model", str, "Model for describe, compare and classify calls."),
    (
        "--critic-provider",
        click.Choice(PROVIDER_NAMES),
        "API for criticise, rewrite and paraphrase calls (same as --provider).",
    ),
    ("--critic-model", str, "Model for criticise, rewrite and paraphrase calls."),
    ("--base-url", str, "Root URL of the main provider's server."),
    ("--seed", int, "Run seed; every random choice derives from it (0)."),
    ("--rounds", click.IntRange(0), "Optimisation rounds (6)."),
    ("--beam-size", click.IntRange(1), "Prompts kept per round (4)."),
    ("--minibatch-size", click.IntRange(1), "Images compared to find errors (50)."),
    ("--n-gradients", click.IntRange(0), "Criticise calls per parent (4)."),
    ("--errors-per-gradient", click.IntRange(1), "Error examples per criticism (4)."),
    ("--gradients-per-error", click.IntRange(1), "Reasons per criticism (1)."),
    ("--steps-per-gradient", click.IntRange(1), "New prompts per reason (1)."),
    ("--mc-samples-per-step", click.IntRange(0), "Paraphrases per prompt (1)."),
    ("--max-expansion-factor", click.IntRange(1), "New prompts kept per parent (5)."),
    (
        "--evaluator",
        click.Choice(("bf", "ucb", "sr", "sh")),
        "Candidate evaluator (bf).",
    ),
    ("--n-compare", click.IntRange(1), "Negatives per image when scoring (2)."),
    (
        "--samples-per-eval",
        click.IntRange(1),
        "Evaluator budget: images per pull (32).",
    ),
    ("--eval-rounds", click.IntRange(1), "Evaluator budget: rounds (8)."),
    ("--eval-prompts-per-round", click.IntRange(1), "Evaluator budget: prompts (8)."),
    (
        "--baselines",
        str,
        "Comma-separated baselines (zero_shot, zero_shot_described, "
        "majority_vote, few_shot_random, multi_image, kmeans; and pseudo_random, "
        "pseudo_majority and spo, which learn a prompt of their own).",
    ),
    ("--spo-samples", click.IntRange(1), "Images SPO describes and judges on (3)."),
    ("--concurrency", click.IntRange(1), "Calls in flight at most (64)."),
    ("--budget-usd", click.FloatRange(min=0), "Stop, resumably, before spending more."),
    ("--cache-dir", str, "Where answers are cached."),
    ("--data-dir", str, "Where generated datasets are written."),
    (
        "--limits-file",
        click.Path(exists=True, dir_okay=False),
        "TOML file of rate limits per provider/model and prices.",
    ),
    ("--rpm", click.IntRange(1), "Requests per minute for the main model."),
    ("--tpm", click.IntRange(1), "Tokens per minute for the main model."),
)


def _method_options(func: Any) -> Any:
    """Add every setting as an option whose default (None) leaves it unset."""
    for flag, kind, text in reversed(_METHOD_OPTIONS):
        func = click.option(flag, type=kind, default=None, help=text)(func)
    flags = {
        "reject-on-errors": "Keep the new prompts that do best on error images "
        "rather than a random few.",
        "test-eval": "Classify the test images with the beam every round (on).",
    }
    for flag, text in flags.items():
        func = click.option(f"--{flag}/--no-{flag}", default=None, help=text)(func)
    return click.option("--no-cache", is_flag=True, default=None, help="Do not cache.")(
        func
    )


def _run_outcome(ctx: click.Context, run_dir: Path, config: Any) -> None:
    """Run (or continue) a run with a progress view, then print its report."""
    from autosep.rundir import ConfigMismatch, RunDir, RunDirError
    from autosep.runner import RunError, run

    console: Console = ctx.obj["console"]
    view = ProgressView(console, enabled=not ctx.obj["quiet"])
    try:
        with view:
            outcome = asyncio.run(run(config, run_dir, on_event=view))
    except (RunError, ConfigMismatch, ConfigError, RunDirError) as error:
        raise ConfigProblem(str(error)) from error
    except KeyboardInterrupt:
        if RunDir(run_dir).exists():
            console.print(f"interrupted; continue with: cli.py resume {run_dir}")
        else:
            console.print("interrupted before the run started; run the command again")
        sys.exit(INTERRUPTED)
    if outcome.stopped is None or RunDir(run_dir).checkpoint.exists():
        _print_report(console, run_dir)
    if outcome.stopped:
        console.print(f"[yellow]{escape(outcome.stopped)}[/]")
        console.print(f"continue with: cli.py resume {run_dir} --budget-usd N")
        sys.exit(STOPPED_BY_BUDGET)
    if outcome.failed_calls:
        console.print(
            f"[red]{outcome.failed_calls:,} calls failed[/] and were left out of the "
            f"scores and accuracies; their reasons are in {run_dir}/events.jsonl"
        )
        sys.exit(1)


def _output_console() -> Console:
    """Return the console for results on stdout; wide when it is not a terminal."""
    out = Console()
    return out if out.is_terminal else Console(width=160)


def _print_report(console: Console, run_dir: Path) -> None:
    from autosep.render import (
        baselines_table,
        learnt_prompts,
        phases_table,
        prompt_text,
        rounds_table,
    )
    from autosep.report import load_report
    from autosep.rundir import RunDirError

    try:
        results, totals = load_report(run_dir)
    except (FileNotFoundError, RunDirError) as error:
        raise ConfigProblem(str(error)) from error
    out = _output_console()
    if results["summary"]:
        out.print(rounds_table(results))
    out.print(baselines_table(results))
    if totals:
        out.print(phases_table(totals, width=out.width))
    if prompt_text(results):
        out.print("[bold]Best prompt (by label-free score):[/]")
        out.print(escape(prompt_text(results)))
    for name, prompt in learnt_prompts(results):
        if prompt is None:
            out.print(f"The {escape(name)} baseline kept no candidate: it ends with "
                      "the initial prompt.")  # fmt: skip
            continue
        out.print(f"[bold]Prompt learnt by the {escape(name)} baseline:[/]")
        out.print(escape(prompt))
    console.print(f"run directory: {run_dir}")


@cli.command("run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML or JSON file of settings (command-line options win).",
)
@click.option("--demo", is_flag=True, help="A small complete run (under a minute).")
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory (default: runs/<task>-<settings digest>).",
)
@click.option("--dry-run", is_flag=True, help="Count calls and cost; call nothing.")
@_method_options
@click.pass_context
def run_command(
    ctx: click.Context,
    config_file: str | None,
    demo: bool,
    run_dir: Path | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Learn a description prompt with AutoSEP, from unlabeled images."""
    from autosep.config import ConfigError as SettingsError
    from autosep.config import load_config_file, resolve_config

    try:
        file_settings = load_config_file(config_file) if config_file else None
        config = resolve_config(file_settings, options, demo=demo)
    except SettingsError as error:
        source = f" (in {config_file} or the options)" if config_file else ""
        raise click.UsageError(f"{error}{source}") from error
    if dry_run:
        if run_dir is not None:
            _check_run_dir(run_dir, config)
        _dry_run(ctx, config)
        return
    name = (
        config.task
        or config.family
        or (Path(config.dataset).stem if config.dataset else "finch")
    )
    _run_outcome(
        ctx, run_dir or Path("runs") / f"{name}-{config.fingerprint()[:8]}", config
    )


def _check_run_dir(run_dir: Path, config: Any) -> None:
    """Refuse, as a real run would, a run directory that holds other settings."""
    from autosep.rundir import ConfigMismatch, RunDir, RunDirError

    try:
        RunDir(run_dir).check(config)
    except (ConfigMismatch, RunDirError) as error:
        raise ConfigProblem(str(error)) from error


def _dry_run(ctx: click.Context, config: Any) -> None:
    from autosep.render import dry_run_table
    from autosep.runner import RunError, dry_run

    try:
        plan = asyncio.run(dry_run(config))
    except (RunError, ConfigError) as error:
        raise ConfigProblem(str(error)) from error
    out = _output_console()
    out.print(dry_run_table(plan.planned, plan.replayed))
    note = "" if plan.priced else " (some models have no known price)"
    out.print(
        f"about {plan.uncached_estimate:,} calls not in the cache, "
        f"about ${plan.cost_usd:.2f} at list prices{note}"
    )


@cli.command("resume")
@click.argument(
    "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=None,
    help="Calls in flight at most.",
)
@click.option(
    "--budget-usd",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop, resumably, before spending more.",
)
@click.option("--cache-dir", type=str, default=None, help="Where answers are cached.")
@click.option(
    "--rpm", type=click.IntRange(1), default=None, help="Requests per minute."
)
@click.option("--tpm", type=click.IntRange(1), default=None, help="Tokens per minute.")
@click.option(
    "--limits-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="TOML file of rate limits per provider/model and prices.",
)
@click.pass_context
def resume_command(ctx: click.Context, run_dir: Path, **changes: Any) -> None:
    """Continue a run from its last checkpoint, with its own settings."""
    from autosep.rundir import RunDir, RunDirError

    try:
        config = RunDir(run_dir).read_config()
    except FileNotFoundError as error:
        raise ConfigProblem(f"{run_dir} holds no run") from error
    except RunDirError as error:
        raise ConfigProblem(str(error)) from error
    # Only settings that cannot change an answer may differ on a resume.
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    _run_outcome(ctx, run_dir, config)


@cli.command("report")
@click.argument(
    "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.pass_context
def report_command(ctx: click.Context, run_dir: Path) -> None:
    """Show a run's results and costs, and redraw its plot."""
    _print_report(ctx.obj["console"], run_dir)


@data.command("check")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--layout",
    type=click.Choice(("auto", "folder", "manifest", "cub", "inat")),
    default="auto",
    show_default=True,
)
@click.option("--task", type=click.Choice(("cuckoo", "oriole", "vireo")), default=None)
@click.option("--classes", default=None, help="Comma-separated classes to keep.")
@click.option("--noun", default=None)
@click.option("--n-train", type=click.IntRange(1), default=30, show_default=True)
@click.option("--n-test", type=click.IntRange(1), default=30, show_default=True)
def data_check(
    dataset: Path,
    layout: str,
    task: str | None,
    classes: str | None,
    noun: str | None,
    n_train: int,
    n_test: int,
) -> None:
    """Check a dataset before spending anything on it: counts and unreadable images."""
    from autosep.checks import check_dataset
    from autosep.datasets import DatasetError, load_dataset
    from autosep.render import check_table

    wanted = [c.strip() for c in classes.split(",")] if classes else None
    try:
        loaded = load_dataset(
            dataset, layout=layout, noun=noun, classes=wanted, task=task
        )
    except DatasetError as error:
        raise ConfigProblem(str(error)) from error
    result = check_dataset(loaded, n_train=n_train, n_test=n_test)
    out = _output_console()
    out.print(check_table(loaded, result))
    for path, reason in result.unreadable:
        out.print(f"[red]unreadable[/] {escape(path)}: {escape(reason)}")
    for problem in result.problems:
        out.print(f"[yellow]problem[/] {escape(problem)}")
    if not result.ok:
        sys.exit(1)
    out.print("[green]ok[/]: the dataset can be used as is")


@data.command("synth")
@click.argument("family")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The dataset folder to write.",
)
@click.option(
    "--per-species",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Images per species, train and test together.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds every image."
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="The share of each species' images in the test split.",
)
@click.option("--preview", is_flag=True, help="Also write a contact sheet PNG.")
@click.pass_context
def data_synth(
    ctx: click.Context,
    family: str,
    out: Path,
    per_species: int,
    seed: int,
    test_fraction: float,
    preview: bool,
) -> None:
    """Write a synthetic FAMILY as a dataset: a folder per species and a manifest.

    Families: finch, vireo and warbler (three species each), tanager (five) and
    sparrow (ten).
    """
    from providers.emulator import world

    if family not in world.family_names():
        known = ", ".join(world.family_names())
        raise click.BadParameter(f"unknown family {family!r}; known: {known}")
    if out.exists() and any(out.iterdir()):
        # Another dataset's folders would stay beside this one and be read with it.
        raise ConfigProblem(f"{out} is not empty; give a new or empty folder")
    console: Console = ctx.obj["console"]
    manifest = world.write_dataset(
        family, out, per_species=per_species, seed=seed, test_fraction=test_fraction
    )
    console.print(f"wrote {manifest}")
    if preview:
        sheet = out / "contact_sheet.png"
        world.contact_sheet(family, seed=seed).save(sheet)
        console.print(f"wrote {sheet}")


if __name__ == "__main__":
    cli()
