"""The command line: thin click commands over the library, rendered with rich."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.logging import RichHandler
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
from providers import PROVIDER_NAMES, make_provider
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


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def stats_table(stats: Mapping[str, PhaseStats], title: str = "Calls") -> Table:
    """Build the per-phase table of calls, cache hits, tokens and latency."""
    table = Table(title=title)
    for name in (
        "phase",
        "calls",
        "cache hits",
        "sent",
        "retries",
        "failed",
        "input tok",
        "output tok",
        "p50",
        "p90",
        "p99",
    ):
        table.add_column(name, justify="left" if name == "phase" else "right")
    for phase in stats.values():
        row = phase.to_dict()
        usage = phase.usage
        table.add_row(
            phase.phase,
            f"{phase.calls:,}",
            f"{phase.cache_hits:,}",
            f"{phase.sent:,}",
            f"{phase.retries:,}",
            f"{phase.failures:,}",
            f"{usage.input_tokens:,}",
            f"{usage.output_tokens:,}",
            _seconds(row["latency_p50_s"]),
            _seconds(row["latency_p90_s"]),
            _seconds(row["latency_p99_s"]),
        )
    return table


def _setup_logging(console: Console, verbose: int) -> None:
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = RichHandler(console=console, show_path=False, markup=False)
    logging.basicConfig(
        level=level, handlers=[handler], format="%(message)s", force=True
    )
    # aiohttp logs every dropped connection at ERROR; that is the retry path's
    # business, not the user's.
    logging.getLogger("aiohttp").setLevel(max(level, logging.CRITICAL))


def _open_cache(cache_dir: Path | None, no_cache: bool) -> ResponseCache | None:
    if no_cache:
        return None
    try:
        return ResponseCache(cache_dir or default_cache_dir())
    except CacheError as error:
        raise click.ClickException(str(error)) from error


@click.group()
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Run AutoSEP and other large batches of multimodal LLM calls."""
    ctx.ensure_object(dict)
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
                default="gpt-4o",
                show_default=True,
                help="The model, as the provider names it.",
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
    items = list(
        read_batch(
            input_path,
            provider=options["provider"],
            model=options["model"],
            max_tokens=max_tokens,
        )
    )
    cache = _open_cache(options["cache_dir"], options["no_cache"])
    view = ProgressView(console, enabled=not ctx.obj["quiet"])
    started = time.perf_counter()
    try:
        with view:
            results, stats = asyncio.run(_run_batch(items, options, cache, view))
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    finally:
        if cache is not None:
            cache.close()
    wall = time.perf_counter() - started
    failed = _write_results(output, items, results)
    console.print(stats_table(stats, title=f"Batch: {len(items):,} lines"))
    console.print(_throughput_line(stats.get("batch"), wall))
    if failed:
        console.print(
            f"[red]{failed:,} of {len(items):,} items failed[/]; see {output}"
        )
        sys.exit(1)


async def _run_batch(
    items: Sequence[BatchItem],
    options: Mapping[str, Any],
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
    failed = 0
    with output.open("wb") as out:
        for item, result in zip(items, results, strict=True):
            row = result_row(item, result)
            failed += "error" in row
            out.write(orjson.dumps(row) + b"\n")
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
@click.option("--seed", type=int, default=0, show_default=True)
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

    serve(config, port=port)


@cache.command("stats")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
@click.pass_context
def cache_stats(ctx: click.Context, cache_dir: Path | None) -> None:
    """Show the cache's size, hit rate and entries per model."""
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
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
@click.confirmation_option(prompt="Remove every cached answer?")
@click.pass_context
def cache_clear(ctx: click.Context, cache_dir: Path | None) -> None:
    """Remove every cached answer and prepared image."""
    store = _open_cache(cache_dir, False)
    assert store is not None
    removed = store.clear()
    store.close()
    ctx.obj["console"].print(f"removed {removed:,} cached answers")


if __name__ == "__main__":
    cli()
