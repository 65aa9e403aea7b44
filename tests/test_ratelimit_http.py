"""Rate limits end to end: the engine's limiter against the emulator's, over HTTP.

The emulator counts its limits over a shortened window so that minutes of limiting
run in seconds; the engine's limiter is given the same window.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cache.images import PrepSettings, prepare_bytes
from engine import (
    CallFinished,
    Engine,
    EngineConfig,
    Failure,
    ImageRef,
    Request,
    Response,
)
from engine.limits import LimiterSet, Limits
from providers import make_provider
from providers.emulator.server import EmulatorConfig, EmulatorServer, ModelLimits
from providers.image_tokens import (
    anthropic_image_tokens,
    gemini_image_tokens,
    openai_image_tokens,
)

WIRE_MODELS = {
    "openai": ("gpt-4o", openai_image_tokens),
    "gemini": ("gemini-2.5-flash", gemini_image_tokens),
    "anthropic": ("claude-haiku-4-5", anthropic_image_tokens),
}


def requests_for(
    model: str, paths: Sequence[Path], count: int, **kw: Any
) -> list[Request]:
    return [
        Request(
            "emu", model, (f"Describe {i}.", ImageRef(str(paths[i % len(paths)]))), **kw
        )
        for i in range(count)
    ]


def busiest_window(log: list[tuple], window: float) -> tuple[int, int]:
    """Return the most requests and admitted tokens any window of the log holds."""
    times = [row[0] for row in log]
    most_requests = most_tokens = 0
    for start, t in enumerate(times):
        end = start
        tokens = 0
        while end < len(times) and times[end] < t + window:
            if log[end][3] == 200:
                tokens += log[end][4] + log[end][5]
            end += 1
        most_requests = max(most_requests, end - start)
        most_tokens = max(most_tokens, tokens)
    return most_requests, most_tokens


@pytest.mark.parametrize("wire", sorted(WIRE_MODELS))
async def test_each_wire_round_trips_images_answers_and_usage(
    wire: str, make_image: Callable[..., Path]
) -> None:
    model, rule = WIRE_MODELS[wire]
    paths = [make_image("w", seed, size=(300 + 40 * seed, 200)) for seed in range(4)]
    requests = requests_for(model, paths, 8, max_tokens=200)
    async with EmulatorServer() as emulator:
        provider = make_provider("emulator", base_url=emulator.base_url, wire=wire)
        async with Engine({"emu": provider}) as engine:
            results = await engine.map(requests, "x")
        received = emulator.image_digests
        assert emulator.stats["by_wire"] == {wire: 8}
    for path in paths:
        prepared = prepare_bytes(path.read_bytes(), PrepSettings())
        sent = hashlib.sha256(base64.b64decode(prepared.b64)).hexdigest()
        assert received[sent] == 2
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, Response), result
        assert result.text
        with Image.open(request.parts[1].path) as image:  # type: ignore[union-attr]
            size = image.size
        assert result.usage.input_tokens > rule(model, *size) > 0
        assert result.usage.output_tokens > 0


@pytest.mark.parametrize("wire", sorted(WIRE_MODELS))
async def test_each_wire_retries_faults_and_fails_bad_requests(
    wire: str, make_image: Callable[..., Path]
) -> None:
    model, _ = WIRE_MODELS[wire]
    requests = requests_for(model, [make_image()], 30)
    bad = Request("emu", "no-such-model", ("hello",))
    config = EmulatorConfig(fault_rate=0.3, faults=("500", "503"), seed=1)
    async with EmulatorServer(config) as emulator:
        provider = make_provider("emulator", base_url=emulator.base_url, wire=wire)
        engine_config = EngineConfig(max_attempts=10, backoff_base_s=0.01)
        async with Engine({"emu": provider}, config=engine_config) as engine:
            results = await engine.map([*requests, bad], "x")
            retries = engine.stats()["x"].retries
    assert all(isinstance(r, Response) for r in results[:-1])
    assert retries > 0
    failure = results[-1]
    assert isinstance(failure, Failure) and failure.kind == "not_found"
    assert "no-such-model" in failure.message


async def run_limited(
    wire: str,
    paths: Sequence[Path],
    count: int,
    concurrency: int,
    emulator_limits: ModelLimits,
    client_limits: Limits,
    window: float,
    change: Callable[[EmulatorServer], None] | None = None,
    change_after: int = 0,
) -> tuple[list, list[tuple], int]:
    """Run a batch against limits; apply ``change`` after ``change_after`` answers."""
    model, _ = WIRE_MODELS[wire]
    requests = requests_for(model, paths, count, max_tokens=64)
    config = EmulatorConfig(limits={model: emulator_limits}, window_s=window)
    async with EmulatorServer(config) as emulator:
        finished = 0

        def on_event(event: object) -> None:
            nonlocal finished
            if isinstance(event, CallFinished):
                finished += 1
                if change is not None and finished == change_after:
                    change(emulator)

        provider = make_provider("emulator", base_url=emulator.base_url, wire=wire)
        limiters = LimiterSet(per_model={("emu", model): client_limits})
        engine_config = EngineConfig(concurrency=concurrency, max_attempts=20)
        async with Engine(
            {"emu": provider},
            config=engine_config,
            limiters=limiters,
            on_event=on_event,
        ) as engine:
            results = await engine.map(requests, "x")
        return results, emulator.log, emulator.stats["rate_limited"]


@pytest.mark.parametrize("wire", sorted(WIRE_MODELS))
async def test_request_limit_is_kept_with_no_start_up_burst(
    wire: str, make_image: Callable[..., Path]
) -> None:
    window, rpm = 2.0, 100
    results, log, limited = await run_limited(
        wire,
        [make_image()],
        250,
        512,
        ModelLimits(rpm=rpm),
        Limits(rpm=rpm, window_s=window, margin_s=0.25, ramp_s=window),
        window,
    )
    assert all(isinstance(r, Response) for r in results)
    assert limited <= len(log) // 100
    assert busiest_window(log, window)[0] <= rpm
    # Running at the limit, not under it: 250 calls at 100 per 2 s take just over 4 s.
    assert log[-1][0] < 6.0


async def test_token_limit_made_binding_by_large_images(
    make_image: Callable[..., Path],
) -> None:
    window, tpm = 2.0, 6000
    paths = [make_image("big", seed, size=(1024, 1024)) for seed in range(3)]
    limits = ModelLimits(rpm=10_000, tpm=tpm)
    results, log, limited = await run_limited(
        "openai",
        paths,
        40,
        256,
        limits,
        Limits(rpm=10_000, tpm=tpm, window_s=window, margin_s=0.25, ramp_s=window),
        window,
    )
    assert all(isinstance(r, Response) for r in results)
    requests, tokens = busiest_window(log, window)
    assert tokens <= tpm and requests < 12  # images, not requests, were the limit
    assert limited <= 1


async def test_halved_limit_mid_run_stops_429s_quickly(
    make_image: Callable[..., Path],
) -> None:
    window, rpm = 4.0, 200

    def halve(emulator: EmulatorServer) -> None:
        emulator.configure(limits={"gpt-4o": ModelLimits(rpm=rpm // 2)})

    # Halved after 150 answers: the emulator's window then holds more than the new
    # limit, whatever the speed of the machine, so the client must meet 429s.
    results, log, limited = await run_limited(
        "openai",
        [make_image()],
        260,
        256,
        ModelLimits(rpm=rpm),
        Limits(rpm=rpm, window_s=window, margin_s=0.25, ramp_s=window),
        window,
        change=halve,
        change_after=150,
    )
    assert all(isinstance(r, Response) for r in results)
    rejected = [row[0] for row in log if row[3] == 429]
    assert rejected, "halving the limit should have caused some 429s"
    # After the first 429 the client learns the new limit (headers and pause), so
    # the 429s end within about one window.
    assert rejected[-1] - rejected[0] < 1.5 * window
    assert limited == len(rejected)
