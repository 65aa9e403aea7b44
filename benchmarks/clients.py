"""One client run, in a process of its own: the engine, or a peer, on a fixed workload.

Run as ``python -m benchmarks.clients KIND --url URL --concurrency C --calls N
--images DIR``; it prints one JSON object with the wall time, the CPU time and the
peak memory of this process (for ``pool``, of its workers too). Every client sends
the same request: an OpenAI chat completion whose user message is a text part and
a base64 JPEG data URL, ``temperature`` 0, ``max_tokens`` 64, ``n`` 1, ``seed`` 0.

The peers read and base64-encode the image file on every call, as a simple client
does. The engine reads, decodes and re-encodes each distinct file once (its own
preparation step) and memoises the result; that is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks._workload import MAX_TOKENS, MODEL, long_prompt, prompt
from engine.process import tune_for_many_calls

__all__ = ["KINDS", "RunResult", "main"]

KINDS = ("engine", "bare", "openai", "litellm", "pool")

# The reference pattern: a fixed pool of processes making blocking calls.
POOL_PROCESSES = 8

_MODULES = {
    "engine": ("cache.store", "engine", "providers", "providers.openai"),
    "bare": ("aiohttp",),
    "openai": ("httpx", "openai"),
    "litellm": ("litellm",),
    "pool": ("requests", "multiprocessing.pool"),
}


@dataclass
class RunResult:
    """What one client run measured; ``cpu_s`` and ``wall_s`` cover the run only."""

    kind: str
    concurrency: int
    calls: int
    completed: int = 0
    failed: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_kb: int = 0
    rss_before_kb: int = 0
    bounded: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """The calls of one run: call ``i`` pairs prompt ``i`` with image ``i % len``."""

    url: str
    images: tuple[str, ...]
    calls: int
    concurrency: int
    nonce: str
    long_prompts: bool

    def text(self, i: int) -> str:
        return long_prompt(i) if self.long_prompts else prompt(i, self.nonce)

    def image(self, i: int) -> str:
        return self.images[i % len(self.images)]


def _messages(text: str, path: str) -> list[dict[str, Any]]:
    """Build the user message a simple client sends: read and encode the file now."""
    b64 = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    image = {"url": f"data:image/jpeg;base64,{b64}", "detail": "auto"}
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": image},
            ],
        }
    ]


def _body(text: str, path: str) -> bytes:
    return orjson.dumps(
        {
            "model": MODEL,
            "messages": _messages(text, path),
            "temperature": 0.0,
            "max_tokens": MAX_TOKENS,
            "n": 1,
            "seed": 0,
        }
    )


def _rss_kb() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# -- asyncio clients: each returns (answered, failed, extra) -------------------------


async def _gather_bounded(
    work: Workload, one: Callable[[int], Any], deadline_s: float | None
) -> tuple[int, int, bool]:
    """Run ``one(i)`` for every call under a semaphore; stop at the deadline."""
    slots = asyncio.Semaphore(work.concurrency)
    counts = [0, 0]

    async def guarded(i: int) -> None:
        async with slots:
            try:
                ok = await one(i)
            except Exception:
                ok = False
        counts[0 if ok else 1] += 1

    try:
        async with asyncio.timeout(deadline_s):
            await asyncio.gather(*(guarded(i) for i in range(work.calls)))
    except TimeoutError:
        return counts[0], counts[1], True
    return counts[0], counts[1], False


async def _run_bare(work: Workload, deadline_s: float | None) -> tuple[int, int, bool]:
    import aiohttp

    url = f"{work.url}/v1/chat/completions"
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=work.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> bool:
            body = _body(work.text(i), work.image(i))
            async with session.post(url, data=body, headers=headers) as answer:
                data = orjson.loads(await answer.read())
                return answer.status == 200 and bool(
                    data["choices"][0]["message"]["content"]
                )

        return await _gather_bounded(work, one, deadline_s)


async def _run_openai(
    work: Workload, deadline_s: float | None
) -> tuple[int, int, bool]:
    import httpx
    import openai

    limits = httpx.Limits(
        max_connections=work.concurrency, max_keepalive_connections=work.concurrency
    )
    client = openai.AsyncOpenAI(
        base_url=f"{work.url}/v1",
        api_key="x",
        max_retries=0,
        timeout=600.0,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits, timeout=600.0),
    )
    async with client:

        async def one(i: int) -> bool:
            answer = await client.chat.completions.create(
                model=MODEL,
                messages=_messages(work.text(i), work.image(i)),  # type: ignore[arg-type]
                temperature=0.0,
                max_tokens=MAX_TOKENS,
                n=1,
                seed=0,
            )
            return bool(answer.choices[0].message.content)

        return await _gather_bounded(work, one, deadline_s)


async def _run_litellm(
    work: Workload, deadline_s: float | None
) -> tuple[int, int, bool]:
    import litellm

    async def one(i: int) -> bool:
        answer = await litellm.acompletion(
            model=f"openai/{MODEL}",
            api_base=f"{work.url}/v1",
            api_key="x",
            messages=_messages(work.text(i), work.image(i)),
            temperature=0.0,
            max_tokens=MAX_TOKENS,
            n=1,
            seed=0,
            num_retries=0,
            timeout=600.0,
        )
        return bool(answer.choices[0].message.content)

    return await _gather_bounded(work, one, deadline_s)


async def _run_engine(
    work: Workload, cache_dir: str, deadline_s: float | None
) -> tuple[int, int, bool, dict[str, Any]]:
    from cache.store import ResponseCache
    from engine import Engine, EngineConfig, ImageRef, Request, Response
    from providers import make_provider

    requests = [
        Request(
            "emulator",
            MODEL,
            (work.text(i), ImageRef(work.image(i))),
            max_tokens=MAX_TOKENS,
        )
        for i in range(work.calls)
    ]
    cache = ResponseCache(cache_dir)
    provider = make_provider("emulator", base_url=work.url)
    config = EngineConfig(concurrency=work.concurrency, timeout_s=600.0)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            async with Engine({"emulator": provider}, cache=cache, config=config) as e:
                results = await e.map(requests)
                mapped = time.perf_counter() - started
                prepared = e.images_prepared
    except TimeoutError:
        return 0, 0, True, {}
    finally:
        cache.close()
    answered = sum(isinstance(r, Response) for r in results)
    cached = sum(isinstance(r, Response) and r.cached for r in results)
    extra = {"map_s": mapped, "cached": cached, "images_prepared": prepared}
    return answered, len(results) - answered, False, extra


# -- the reference pattern: processes making blocking calls ----------------------------

_pool_session: Any = None
_pool_work: Workload | None = None


def _pool_init(work: Workload) -> None:
    global _pool_session, _pool_work
    import requests

    _pool_session = requests.Session()
    _pool_work = work


def _pool_call(i: int) -> bool:
    assert _pool_work is not None
    answer = _pool_session.post(
        f"{_pool_work.url}/v1/chat/completions",
        data=_body(_pool_work.text(i), _pool_work.image(i)),
        headers={"Content-Type": "application/json"},
        timeout=600,
    )
    return answer.status_code == 200 and bool(
        answer.json()["choices"][0]["message"]["content"]
    )


def _run_pool(work: Workload, deadline_s: float | None) -> tuple[int, int, bool]:
    import multiprocessing

    answered = failed = 0
    bounded = False
    end = None if deadline_s is None else time.monotonic() + deadline_s
    pool = multiprocessing.get_context("fork").Pool(POOL_PROCESSES, _pool_init, (work,))
    try:
        for ok in pool.imap_unordered(_pool_call, range(work.calls)):
            answered += ok
            failed += not ok
            if end is not None and time.monotonic() > end:
                bounded = True
                break
    finally:
        pool.terminate()
        pool.join()
    return answered, failed, bounded


# -- the program -----------------------------------------------------------------------


def run(
    kind: str, work: Workload, *, cache_dir: str | None, deadline_s: float | None
) -> RunResult:
    """Make one measured run of a client and return what it measured."""
    result = RunResult(kind, work.concurrency, work.calls, rss_before_kb=_rss_kb())
    # Every client's modules are loaded before timing starts: imports are not calls
    # (LiteLLM's alone costs seconds of CPU).
    for module in _MODULES[kind]:
        importlib.import_module(module)
    # Every client runs with the process settings the command line uses (the
    # allocator's mmap threshold, the collector's first threshold), so that all
    # compare like with like.
    tune_for_many_calls()
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    extra: dict[str, Any] = {}
    if kind == "engine":
        with tempfile.TemporaryDirectory() as scratch:
            answered, failed, bounded, extra = asyncio.run(
                _run_engine(work, cache_dir or scratch, deadline_s)
            )
    elif kind == "pool":
        answered, failed, bounded = _run_pool(work, deadline_s)
    else:
        runner = {"bare": _run_bare, "openai": _run_openai, "litellm": _run_litellm}
        answered, failed, bounded = asyncio.run(runner[kind](work, deadline_s))
    result.wall_s = time.perf_counter() - wall0
    result.cpu_s = _cpu_s() - cpu0
    result.maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind == "pool":
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        result.cpu_s += children.ru_utime + children.ru_stime
        # ru_maxrss of the children is the largest one's; count it for each worker.
        extra["worker_maxrss_kb"] = children.ru_maxrss
        result.maxrss_kb += POOL_PROCESSES * children.ru_maxrss
    result.completed, result.failed, result.bounded = answered, failed, bounded
    result.extra = extra
    return result


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, make the run, print its JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--url", required=True)
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--nonce", default="run")
    parser.add_argument("--long-prompts", action="store_true")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--deadline-s", type=float, default=None)
    args = parser.parse_args(argv)
    _raise_open_files()
    if args.kind == "litellm":
        # No fetch of the model price list at import, and a connection pool as large
        # as the concurrency (its default is 1,000, and 500 per host).
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ["AIOHTTP_CONNECTOR_LIMIT"] = str(args.concurrency)
        os.environ["AIOHTTP_CONNECTOR_LIMIT_PER_HOST"] = str(args.concurrency)
    images = tuple(str(p) for p in sorted(args.images.glob("*.jpg")))
    work = Workload(
        args.url, images, args.calls, args.concurrency, args.nonce, args.long_prompts
    )
    result = run(args.kind, work, cache_dir=args.cache_dir, deadline_s=args.deadline_s)
    sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")


if __name__ == "__main__":
    main()
