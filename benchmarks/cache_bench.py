"""The response cache: time per lookup and store, and a whole run served from it.

``python -m benchmarks.cache_bench --entries N --sample S --dir D`` fills a fresh
cache with N answers of the shape the engine stores and prints the time per entry
of ``set_many``, ``get_many`` (hits and misses), ``get`` and ``set`` as JSON. The
cached rerun is measured by :func:`run_cached_rerun` with the engine client.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks._emulator import ROOT, EmulatorProcess
from benchmarks._runner import client_command, run_client
from benchmarks._workload import MODEL, make_small_images

__all__ = ["CacheSettings", "measure_store", "run_cache_section", "run_cached_rerun"]

# The engine looks up and writes in batches of this many (its own chunk size).
_CHUNK = 2048


@dataclass(frozen=True)
class CacheSettings:
    """The shape of the cache section."""

    entries: int
    sample: int
    repeats: int
    rerun_calls: int
    rerun_images: int
    rerun_fill_concurrency: int
    autosep: bool


def _key(i: int) -> str:
    return hashlib.sha256(f"bench-key-{i}".encode()).hexdigest()


def _value(i: int) -> dict[str, Any]:
    """An answer shaped as the engine stores it."""
    return {
        "texts": [f"answer {hashlib.sha256(str(i).encode()).hexdigest()[:24]}"],
        "finish": "complete",
        "usage": [120 + i % 50, 9, 85, 0],
        "model": MODEL,
    }


def _per_item_us(action: Callable[[], object], items: int) -> float:
    started = time.perf_counter()
    action()
    return 1e6 * (time.perf_counter() - started) / items


def measure_store(directory: Path, entries: int, sample: int) -> dict[str, float]:
    """Fill a fresh cache and time each operation; return microseconds per entry."""
    from cache.store import ResponseCache

    keys = [_key(i) for i in range(entries)]
    values = [_value(i) for i in range(entries)]
    picked = random.Random(0).sample(range(entries), sample)
    cache = ResponseCache(directory)
    try:

        def fill() -> None:
            for start in range(0, entries, _CHUNK):
                stop = start + _CHUNK
                cache.set_many(zip(keys[start:stop], values[start:stop], strict=True))

        def read_all() -> None:
            for start in range(0, entries, _CHUNK):
                assert all(cache.get_many(keys[start : start + _CHUNK]))

        absent = [_key(entries + i) for i in range(sample)]
        fresh = [(_key(2 * entries + i), _value(i)) for i in range(sample)]
        return {
            "set_many_us": _per_item_us(fill, entries),
            "get_many_us": _per_item_us(read_all, entries),
            "get_many_miss_us": _per_item_us(lambda: cache.get_many(absent), sample),
            "get_us": _per_item_us(
                lambda: [cache.get(keys[i]) for i in picked], sample
            ),
            "set_us": _per_item_us(lambda: [cache.set(k, v) for k, v in fresh], sample),
            "filled": float(entries),
            "sample": float(sample),
        }
    finally:
        cache.close()


def _store_command(directory: Path, entries: int, sample: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.cache_bench",
        "--entries",
        str(entries),
        "--sample",
        str(sample),
        "--dir",
        str(directory),
    ]


def run_cached_rerun(
    settings: CacheSettings, work_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Fill a cache through the emulator at zero latency, then rerun fully cached.

    Each timed rerun is a fresh process on the filled cache, as a rerun of a
    method would be; the emulator counts the requests it got (it must get none).
    """
    images = work_dir / "rerun-images"
    make_small_images(images, settings.rerun_images)
    cache_dir = work_dir / "rerun-cache"
    with EmulatorProcess(0) as emulator:
        fill = client_command(
            "engine",
            emulator,
            images,
            concurrency=settings.rerun_fill_concurrency,
            calls=settings.rerun_calls,
            nonce="rerun",
            cache_dir=cache_dir,
            long_prompts=True,
        )
        filled = run_client(fill, emulator)
        log(f"  cache fill: {filled['completed']:,} calls in {filled['wall_s']:.1f}s")
        reruns = []
        for repeat in range(settings.repeats):
            result = run_client(fill, emulator)
            reruns.append(result)
            log(
                f"  cached rerun #{repeat + 1}: {result['extra']['cached']:,} cached "
                f"of {result['calls']:,} in {result['wall_s']:.2f}s, "
                f"{result['emulator_requests']} sent"
            )
    return {
        "fill": filled,
        "reruns": reruns,
        "command": fill,
        "emulator": emulator.command,
        "images": settings.rerun_images,
    }


def has_autosep_run() -> bool:
    """Tell whether ``cli.py run`` (the AutoSEP method) exists in this checkout."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "cli.py", "run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0


def _autosep_totals(run_dir: Path) -> dict[str, int]:
    """Sum calls, cache hits and sent requests over a run's phases."""
    stats = orjson.loads((run_dir / "stats.json").read_bytes())
    totals = {"calls": 0, "cache_hits": 0, "sent": 0}
    for session in stats["sessions"]:
        for phase in session["phases"].values():
            for name in totals:
                totals[name] += int(phase[name])
    return totals


def run_autosep_rerun(
    settings: CacheSettings, work_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the default AutoSEP method once to fill a cache, then again from it.

    Each rerun is the whole ``cli.py run`` process with a fresh run directory (so
    nothing is resumed), timed from start to exit; its own statistics say how many
    calls the cache answered and how many were sent.
    """
    import subprocess

    base = [sys.executable, "cli.py", "-q", "run"]
    shared = ["--cache-dir", str(work_dir / "autosep-cache")]
    shared += ["--data-dir", str(work_dir / "autosep-data")]
    commands, runs = [], []
    for index in range(settings.repeats + 1):
        command = [*base, *shared, "--run-dir", str(work_dir / f"autosep-run-{index}")]
        if index == 0:
            command += ["--concurrency", str(settings.rerun_fill_concurrency)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"cli.py run failed:\n{done.stderr[-3000:]}")
        totals = _autosep_totals(work_dir / f"autosep-run-{index}")
        runs.append({"wall_s": wall, **totals})
        commands.append(command)
        what = "fill" if index == 0 else f"rerun #{index}"
        log(f"  AutoSEP {what}: {totals} in {wall:.1f}s")
    return {"fill": runs[0], "reruns": runs[1:], "commands": commands[:2]}


def run_cache_section(
    settings: CacheSettings, work_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the store measurements (each in a fresh process) and the cached rerun."""
    import subprocess

    stores = []
    command: list[str] = []
    for repeat in range(settings.repeats):
        command = _store_command(
            work_dir / f"store-{repeat}", settings.entries, settings.sample
        )
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cache benchmark failed:\n{done.stderr[-3000:]}")
        stores.append(orjson.loads(done.stdout))
        log(f"  cache store #{repeat + 1}: {stores[-1]}")
    rerun = run_cached_rerun(settings, work_dir, log)
    autosep = None
    if settings.autosep:
        if has_autosep_run():
            autosep = run_autosep_rerun(settings, work_dir, log)
        else:
            log("  cli.py run does not exist: AutoSEP rerun not measured")
    return {"stores": stores, "store_command": command, "autosep": autosep, **rerun}


def main(argv: list[str] | None = None) -> None:
    """Measure the store once and print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cache_bench")
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--sample", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    figures = measure_store(args.dir, args.entries, args.sample)
    sys.stdout.write(orjson.dumps(figures).decode() + "\n")


if __name__ == "__main__":
    main()
