"""The engine against the emulator over real HTTP: order, faults, cache, failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from cache.images import PrepSettings, prepare_bytes
from cache.store import ResponseCache
from engine import Engine, EngineConfig, Failure, ImageRef, Request, Response, pricing
from engine.metrics import CallFinished, PhaseFinished, PhaseStarted
from providers import make_provider
from providers.base import ConfigError, ErrorKind, ProviderError
from providers.emulator import simulated
from providers.emulator.server import EmulatorConfig, EmulatorServer

MODEL = "gpt-4o"


def expected_answer(request: Request, settings: PrepSettings) -> str:
    """Compute what the emulator's model answers to a request, independently."""
    parts: list[str | Image.Image] = []
    digests = []
    for part in request.parts:
        if isinstance(part, str):
            parts.append(part)
            continue
        prepared = prepare_bytes(Path(part.path).read_bytes(), settings)
        raw = base64.b64decode(prepared.b64)
        parts.append(Image.open(io.BytesIO(raw)).convert("RGB"))
        digests.append(hashlib.sha256(raw).hexdigest())
    output = simulated.respond(
        simulated.ModelInput(
            model=request.model,
            parts=tuple(parts),
            image_digests=tuple(digests),
            system=request.system,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            seed=request.sample,
        )
    )
    return output.text


def distinct_requests(
    make_image: Callable[..., Path], count: int, images: int = 50
) -> list[Request]:
    paths = [make_image("photo", seed) for seed in range(images)]
    return [
        Request(
            "emulator",
            MODEL,
            (f"Describe image number {i}.", ImageRef(str(paths[i % images]))),
            max_tokens=64,
        )
        for i in range(count)
    ]


def texts(results: list[Response | Failure]) -> list[str]:
    assert all(isinstance(r, Response) for r in results), [
        str(r) for r in results if isinstance(r, Failure)
    ][:5]
    return [r.text for r in results if isinstance(r, Response)]


async def test_many_requests_answer_in_input_order(
    make_image: Callable[..., Path], response_cache: ResponseCache
) -> None:
    requests = distinct_requests(make_image, 2000)
    settings = PrepSettings()
    async with EmulatorServer(EmulatorConfig(latency_ms=50)) as emulator:
        provider = make_provider("emulator", base_url=emulator.base_url)
        config = EngineConfig(concurrency=256)
        async with Engine(
            {"emulator": provider}, cache=response_cache, config=config
        ) as engine:
            results = await engine.map(requests, "describe")
            assert engine.images_prepared == 50
        assert emulator.stats["requests"] == 2000
    assert texts(results) == [expected_answer(r, settings) for r in requests]


async def test_transient_faults_are_retried_and_never_cached(
    make_image: Callable[..., Path], response_cache: ResponseCache
) -> None:
    requests = distinct_requests(make_image, 300, images=10)
    emulator_config = EmulatorConfig(fault_rate=0.2, fault_timeout_s=5.0, seed=3)
    config = EngineConfig(
        concurrency=64,
        timeout_s=0.5,
        max_attempts=12,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )
    async with EmulatorServer(emulator_config) as emulator:
        provider = make_provider("emulator", base_url=emulator.base_url)
        async with Engine(
            {"emulator": provider}, cache=response_cache, config=config
        ) as engine:
            results = await engine.map(requests, "describe")
            stats = engine.stats()["describe"]
        faults = emulator.stats["faults"]
    expected = [expected_answer(r, PrepSettings()) for r in requests]
    assert texts(results) == expected
    assert set(faults) == {"500", "503", "timeout", "drop", "malformed"}
    assert stats.retries == sum(faults.values())
    # Every stored value is a right answer: no fault's body ever reached the cache.
    stored = [value for _, value in response_cache.answers()]
    assert len(stored) == len(requests)
    assert sorted(v["texts"][0] for v in stored if v) == sorted(expected)


async def test_final_error_fails_only_its_item(
    make_image: Callable[..., Path], response_cache: ResponseCache
) -> None:
    requests = distinct_requests(make_image, 5, images=5)
    bad = Request("emulator", MODEL, ("Describe.",), temperature=5.0)
    async with EmulatorServer() as emulator:
        provider = make_provider("emulator", base_url=emulator.base_url)
        async with Engine({"emulator": provider}, cache=response_cache) as engine:
            results = await engine.map([*requests[:2], bad, *requests[2:]], "x")
            again = await engine.map([bad], "x")
        sent = emulator.stats["requests"]
    failure = results[2]
    assert isinstance(failure, Failure)
    assert failure.status == 400 and failure.kind == "invalid_request"
    assert "Invalid 'temperature'" in failure.message
    assert failure.attempts == 1
    assert all(isinstance(r, Response) for i, r in enumerate(results) if i != 2)
    # The failure was not cached: asking again sends it again.
    assert isinstance(again[0], Failure) and sent == 7


async def test_rerun_with_same_cache_sends_nothing(
    make_image: Callable[..., Path], tmp_path: Path
) -> None:
    requests = distinct_requests(make_image, 200, images=20)
    async with EmulatorServer() as emulator:
        provider = make_provider("emulator", base_url=emulator.base_url)
        cache = ResponseCache(tmp_path / "c")
        async with Engine({"emulator": provider}, cache=cache) as engine:
            first = await engine.map(requests, "describe")
        cache.close()
        assert emulator.stats["requests"] == 200
        # A second process opening the same directory: nothing is sent.
        cache = ResponseCache(tmp_path / "c")
        async with Engine({"emulator": provider}, cache=cache) as engine:
            second = await engine.map(requests, "describe")
            assert engine.images_prepared == 0
        assert emulator.stats["requests"] == 200
    assert texts(second) == texts(first)
    assert all(isinstance(r, Response) and r.cached for r in second)
    assert cache.stats()["hits"] == 200
    cache.close()


async def test_identical_requests_in_a_batch_are_sent_once(
    make_image: Callable[..., Path],
) -> None:
    request = distinct_requests(make_image, 1, images=1)[0]
    async with EmulatorServer() as emulator:
        provider = make_provider("emulator", base_url=emulator.base_url)
        async with Engine({"emulator": provider}) as engine:
            results = await engine.map([request] * 10, "x")
        assert emulator.stats["requests"] == 1
    assert len(set(texts(results))) == 1
    assert [r.cached for r in results if isinstance(r, Response)] == [False] + [
        True
    ] * 9


async def test_missing_and_broken_images_fail_their_items(
    make_image: Callable[..., Path], tmp_path: Path, emulator: EmulatorServer
) -> None:
    good = make_image("good", 1)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    requests = [
        Request("emulator", MODEL, ("a", ImageRef(str(good)))),
        Request("emulator", MODEL, ("b", ImageRef(str(tmp_path / "missing.jpg")))),
        Request("emulator", MODEL, ("c", ImageRef(str(broken)))),
    ]
    provider = make_provider("emulator", base_url=emulator.base_url)
    async with Engine({"emulator": provider}) as engine:
        results = await engine.map(requests, "x")
    assert isinstance(results[0], Response)
    assert isinstance(results[1], Failure) and "missing.jpg" in results[1].message
    assert isinstance(results[2], Failure) and "broken.jpg" in results[2].message
    assert results[2].kind == "image"


async def test_unknown_provider_stops_before_any_call(emulator: EmulatorServer) -> None:
    provider = make_provider("emulator", base_url=emulator.base_url)
    async with Engine({"emulator": provider}) as engine:
        with pytest.raises(ConfigError, match="nowhere"):
            await engine.map([Request("nowhere", MODEL, ("hi",))], "x")
    assert emulator.stats["requests"] == 0


async def test_events_report_each_call_and_the_phase(emulator: EmulatorServer) -> None:
    events: list[object] = []
    provider = make_provider("emulator", base_url=emulator.base_url)
    requests = [Request("emulator", MODEL, (f"q{i}",)) for i in range(5)]
    async with Engine({"emulator": provider}, on_event=events.append) as engine:
        await engine.map(requests, "p")
    assert isinstance(events[0], PhaseStarted) and events[0].total == 5
    finished = [e for e in events if isinstance(e, CallFinished)]
    assert len(finished) == 5 and all(not e.failed and not e.cached for e in finished)
    assert all(e.usage.input_tokens > 0 for e in finished)
    assert isinstance(events[-1], PhaseFinished) and events[-1].stats.calls == 5


async def test_engine_must_be_opened() -> None:
    engine = Engine({})
    with pytest.raises(RuntimeError, match="async with"):
        await engine.map([], "x")


async def test_refused_model_is_not_asked_again(emulator: EmulatorServer) -> None:
    provider = make_provider("emulator", base_url=emulator.base_url)
    requests = [Request("emulator", "no-such-model", (f"q{i}",)) for i in range(50)]
    good = Request("emulator", MODEL, ("fine",))
    config = EngineConfig(concurrency=4)
    async with Engine({"emulator": provider}, config=config) as engine:
        results = await engine.map([*requests, good], "x")
    sent = emulator.stats["requests"]
    assert sent <= 1 + 4 + 1  # the first refusal, those already in flight, and good
    assert isinstance(results[-1], Response)
    failures = results[:-1]
    assert all(isinstance(r, Failure) and r.kind == "not_found" for r in failures)
    assert sum("not sent" in r.message for r in failures) >= 50 - 5  # type: ignore[union-attr]


async def test_one_error_line_per_cause_of_failure(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider("emulator", base_url=emulator.base_url)
    refused = [Request("emulator", "no-such-model", (f"q{i}",)) for i in range(30)]
    missing = [Request("emulator", MODEL, (ImageRef("/no/such.jpg"), "q"))]
    caplog.set_level(logging.DEBUG, logger="engine")
    async with Engine({"emulator": provider}) as engine:
        await engine.map([*refused, *missing], "x")
        await engine.map(refused[:1] + [Request("emulator", "no-such", ("z",))], "y")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # A refused model and a missing image in phase x; in phase y, the refusal again
    # and another refused model.
    assert len(errors) == 4, [r.getMessage() for r in errors]
    assert sum("no-such-model" in r.getMessage() for r in errors) == 2
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum("failed" in r.getMessage() for r in debug) >= 29


class _BrokenProvider:
    """Wraps a provider and raises on one prompt, like a bug in an adapter."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def build(self, call: object) -> object:
        if "boom" in call.parts[0]:  # type: ignore[attr-defined]
            raise TypeError("object of type 'int' has no len()")
        return self._inner.build(call)  # type: ignore[attr-defined]


async def test_an_unexpected_error_fails_only_its_item(
    emulator: EmulatorServer,
) -> None:
    provider = _BrokenProvider(make_provider("emulator", base_url=emulator.base_url))
    requests = [Request("emulator", MODEL, (text,)) for text in ("a", "boom", "c")]
    async with Engine({"emulator": provider}) as engine:  # type: ignore[dict-item]
        results = await engine.map(requests, "x")
    assert isinstance(results[0], Response) and isinstance(results[2], Response)
    assert isinstance(results[1], Failure) and results[1].kind == "internal"
    assert "has no len()" in results[1].message


async def test_a_batch_of_every_odd_shared_file_completes(
    emulator: EmulatorServer,
) -> None:
    from tests.conftest import shared_images

    files = sorted(p for p in shared_images("odd").iterdir() if p.suffix != ".md")
    requests = [
        Request("emulator", MODEL, ("Describe.", ImageRef(str(p)))) for p in files
    ]
    provider = make_provider("emulator", base_url=emulator.base_url)
    async with Engine({"emulator": provider}) as engine:
        results = await asyncio.wait_for(engine.map(requests, "odd"), timeout=120)
    for path, result in zip(files, results, strict=True):
        if isinstance(result, Failure):
            assert result.kind == "image" and path.name in result.message, result
    answered = sum(isinstance(r, Response) for r in results)
    assert answered >= len(files) // 2


class _BilledThenBroken:
    """Wraps a provider: the first answer is billed but unreadable, then all is well."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.failed_once = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def parse(self, status: int, headers: object, body: bytes) -> object:
        reply = self._inner.parse(status, headers, body)  # type: ignore[attr-defined]
        if not self.failed_once:
            self.failed_once = True
            raise ProviderError(
                ErrorKind.MALFORMED, "cut short", status, usage=reply.usage
            )
        return reply


async def test_every_billed_attempt_is_paid_and_cache_hits_are_saved(
    emulator: EmulatorServer, response_cache: ResponseCache
) -> None:
    provider = _BilledThenBroken(make_provider("emulator", base_url=emulator.base_url))
    request = Request("emulator", "gpt-4o", ("Describe a finch.",))
    config = EngineConfig(backoff_base_s=0.01)
    async with Engine(
        {"emulator": provider},  # type: ignore[dict-item]
        cache=response_cache,
        config=config,
    ) as engine:
        [first] = await engine.map([request], "paid")
        [again] = await engine.map([request], "rerun")
        stats = engine.stats()
    assert isinstance(first, Response) and first.attempts == 2
    one_answer = pricing.cost_usd("gpt-4o", first.usage)
    assert one_answer is not None and one_answer > 0
    assert stats["paid"].cost_usd() == pytest.approx(2 * one_answer)
    assert isinstance(again, Response) and again.cached
    assert stats["rerun"].cost_usd() == 0
    assert stats["rerun"].saved_usd() == pytest.approx(one_answer)
    assert (
        stats["paid"].cost_usd(
            pricing.PriceTable({"gpt-4o": {"input": 0, "output": 0}})
        )
        == 0
    )


@pytest.mark.parametrize("where", ["on the loop", "in a worker thread"])
async def test_a_cache_that_cannot_be_written_loses_no_answer(
    where: str,
    emulator: EmulatorServer,
    response_cache: ResponseCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(items: object) -> bool:
        raise sqlite3.OperationalError("database or disk is full")

    if where == "on the loop":
        monkeypatch.setattr(response_cache, "set_many_nowait", disk_full)
    else:
        # The database is busy, so the write goes to a thread, and fails there.
        monkeypatch.setattr(response_cache, "set_many_nowait", lambda items: False)
        monkeypatch.setattr(response_cache, "set_many", disk_full)
    provider = make_provider("emulator", base_url=emulator.base_url)
    requests = [Request("emulator", MODEL, (f"q{i}",)) for i in range(20)]
    async with Engine({"emulator": provider}, cache=response_cache) as engine:
        results = await asyncio.wait_for(engine.map(requests, "x"), timeout=30)
    assert all(isinstance(r, Response) for r in results)
    assert response_cache.answers() == []
