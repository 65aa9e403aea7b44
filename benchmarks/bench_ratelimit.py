"""Rate limits: how close the engine runs to a provider's limit, and how many 429s.

For each wire format the emulator (in its own process) enforces a per-model limit
with that provider's headers and 429 answers; the engine is given the same limit and
runs a fixed batch at 512 in flight. From the emulator's own request log it reports
the achieved rate over the steady state (after the first window) as a fraction of
the limit, the busiest window against the limit (the first window included), and the
share of 429s.

The window is 60 s by default, as the providers count it; ``--quick`` shortens it
(and the batch) so that the same measurement runs in seconds.

Run: ``python -m benchmarks.bench_ratelimit [--quick]``; Markdown on standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from PIL import Image

from benchmarks._emulator import EmulatorProcess
from engine import Engine, EngineConfig, ImageRef, Request, Response
from engine.limits import LimiterSet, Limits
from providers import make_provider

MODELS = {
    "openai": "gpt-4o",
    "gemini": "gemini-2.5-flash",
    "anthropic": "claude-haiku-4-5",
}


@dataclass(frozen=True)
class Scenario:
    """One limit to run against: which budget, how large, and with what images."""

    name: str
    budget: str
    limit: int
    calls: int
    image_side: int


def scenarios(quick: bool) -> list[Scenario]:
    """The limits to run against; quick runs are about four windows long each."""
    # 1024-pixel images (768 after preparation) cost about 800 to 1,100 tokens each,
    # so the token budget binds long before the request budget. The quick run's
    # window is short, so its token limit is raised to keep about ten calls a window:
    # with two or three, whole calls could not fill it.
    return [
        Scenario("requests", "rpm", 600, 100 if quick else 1000, 64),
        Scenario(
            "tokens, large images",
            "tpm",
            240_000 if quick else 60_000,
            30 if quick else 150,
            1024,
        ),
    ]


def _images(folder: Path, side: int, count: int = 8) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"{side}-{i}.jpg"
        Image.effect_noise((side, side), 40 + i).convert("RGB").save(path, quality=85)
        paths.append(path)
    return paths


def _log(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/emulator/log", timeout=30) as answer:
        return list(orjson.loads(answer.read()))


async def _run(
    emulator: EmulatorProcess,
    wire: str,
    scenario: Scenario,
    window: float,
    paths: Sequence[Path],
) -> float:
    model = MODELS[wire]
    limit = _per_window(scenario, window)
    # The margin absorbs the time between the engine admitting a call and the
    # emulator logging it (queueing in a busy emulator); it does not shrink with
    # the window, so a short window needs a larger share of it. The ramp after a
    # 429 scales with the window.
    timing = Limits(window_s=window, margin_s=max(window / 60, 0.25), ramp_s=window / 2)
    if scenario.budget == "rpm":
        emulator_limits: dict[str, Any] = {"rpm": limit}
        client = replace(timing, rpm=limit)
    else:
        # Gemini counts input tokens only against its token limit.
        output_counts = wire != "gemini"
        emulator_limits = {"tpm": limit, "tpm_counts_output": output_counts}
        client = replace(timing, tpm=limit, output_counts_in_tpm=output_counts)
    emulator.configure(limits={model: emulator_limits}, window_s=window)
    emulator.reset()
    provider = make_provider("emulator", base_url=emulator.url, wire=wire)
    requests = [
        Request(
            "emu",
            model,
            (f"Describe picture {i}.", ImageRef(str(paths[i % len(paths)]))),
            max_tokens=64,
        )
        for i in range(scenario.calls)
    ]
    limiters = LimiterSet(per_model={("emu", model): client})
    config = EngineConfig(concurrency=512, max_attempts=20)
    started = time.perf_counter()
    async with Engine({"emu": provider}, config=config, limiters=limiters) as engine:
        results = await engine.map(requests, "bench")
    if not all(isinstance(r, Response) for r in results):
        raise RuntimeError(f"{wire}: some calls failed")
    return time.perf_counter() - started


def _per_window(scenario: Scenario, window: float) -> int:
    """The limit over one (possibly shortened) window: the per-minute rate kept."""
    return max(1, round(scenario.limit * window / 60))


def _analyse(
    rows: list[dict[str, Any]], scenario: Scenario, window: float, wire: str
) -> dict[str, Any]:
    def cost(row: dict[str, Any]) -> int:
        if scenario.budget == "rpm":
            return 1
        if row["status"] != 200:
            return 0
        return row["input_tokens"] + (row["output_tokens"] if wire != "gemini" else 0)

    times = [row["t"] for row in rows]
    busiest = 0
    for start, t in enumerate(times):
        total, end = 0, start
        while end < len(times) and times[end] < t + window:
            total += cost(rows[end])
            end += 1
        busiest = max(busiest, total)
    answered = [row for row in rows if row["status"] == 200]
    steady_from, steady_to = answered[0]["t"] + window, answered[-1]["t"]
    steady = [row for row in answered if steady_from <= row["t"] <= steady_to]
    # Rate between the first and last admission of the steady state: the first
    # row's cost opens the span, so it is not counted in it.
    span = steady[-1]["t"] - steady[0]["t"] if len(steady) > 1 else 0.0
    rate = sum(cost(row) for row in steady[1:]) / span if span > 0 else None
    limited = sum(1 for row in rows if row["status"] == 429)
    limit = _per_window(scenario, window)
    return {
        "fraction": None if rate is None else rate / (limit / window),
        "busiest": busiest / limit,
        "limited": limited,
        "share": limited / len(rows),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a 3 s window and fewer calls"
    )
    parser.add_argument(
        "--window", type=float, default=None, help="the limit window in seconds"
    )
    args = parser.parse_args(argv)
    window = args.window or (3.0 if args.quick else 60.0)
    lines = [
        f"Limit window {window:g} s (limits scaled to keep their per-minute rate); "
        "512 calls in flight; the engine is given the emulator's limit. Achieved "
        "rate over the steady state (after the first window); busiest window of the "
        "emulator's log, first window included.",
        "",
        "| limit | wire | calls | wall | achieved / limit | busiest window / limit "
        "| 429s |",
        "|---|---|---|---|---|---|---|",
    ]
    with (
        tempfile.TemporaryDirectory() as folder,
        EmulatorProcess(latency_ms=20) as emulator,
    ):
        for scenario in scenarios(args.quick):
            paths = _images(Path(folder), scenario.image_side)
            for wire in MODELS:
                wall = asyncio.run(_run(emulator, wire, scenario, window, paths))
                figures = _analyse(_log(emulator.url), scenario, window, wire)
                fraction = figures["fraction"]
                lines.append(
                    f"| {scenario.limit:,} {scenario.budget} ({scenario.name}) "
                    f"| {wire} "
                    f"| {scenario.calls:,} | {wall:.1f} s "
                    f"| {'-' if fraction is None else f'{fraction:.3f}'} "
                    f"| {figures['busiest']:.3f} "
                    f"| {figures['limited']} ({figures['share']:.2%}) |"
                )
                print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
