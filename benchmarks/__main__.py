"""Run every benchmark and write the report: ``python -m benchmarks [--quick]``.

The rate-limit section is delegated: when ``benchmarks/bench_ratelimit.py`` exists
it is run as ``python -m benchmarks.bench_ratelimit [--quick]``, with its standard
output (Markdown) pasted into the report; otherwise the section says it was not
measured.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._emulator import ROOT
from benchmarks.cache_bench import CacheSettings, run_cache_section
from benchmarks.memory import MemorySettings, run_memory
from benchmarks.report import render
from benchmarks.throughput import PEERS, ThroughputSettings, run_throughput

LATENCY_MS = 1000.0

FULL = (
    ThroughputSettings(
        concurrencies=(64, 256, 1024, 4096),
        waves=4,
        # At 64 in flight four waves are 256 calls, and start-up (connections, the
        # first preparation of each image) would be most of what is measured.
        min_calls=1024,
        latency_ms=LATENCY_MS,
        repeats=3,
        images=48,
        peer_deadline_s=45.0,
        pool_calls=32,
        peers=tuple(PEERS),
        floor_repeats=7,
    ),
    CacheSettings(
        entries=100_000,
        sample=10_000,
        repeats=3,
        rerun_calls=35_000,
        rerun_images=180,
        rerun_fill_concurrency=512,
        autosep=True,
    ),
    MemorySettings(
        in_flight=1024,
        planned=(2_500, 10_000, 40_000),
        repeats=(3, 3, 1),
        images=50,
        latency_ms=50.0,
    ),
)

QUICK = (
    ThroughputSettings(
        concurrencies=(64, 256),
        waves=2,
        min_calls=0,
        latency_ms=LATENCY_MS,
        repeats=1,
        images=16,
        peer_deadline_s=10.0,
        pool_calls=8,
        peers=tuple(PEERS),
    ),
    CacheSettings(
        entries=10_000,
        sample=2_000,
        repeats=1,
        rerun_calls=3_500,
        rerun_images=18,
        rerun_fill_concurrency=256,
        autosep=False,
    ),
    MemorySettings(
        in_flight=128,
        planned=(250, 1_000),
        repeats=(1, 1),
        images=8,
        latency_ms=50.0,
    ),
)

RATELIMIT = ROOT / "benchmarks" / "bench_ratelimit.py"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _header(quick: bool, argv: list[str]) -> list[str]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mode = "quick (reduced sizes, one run per figure)" if quick else "full"
    return [
        "# Benchmarks",
        "",
        f"Written by `{' '.join(['python -m benchmarks', *argv])}` "
        "(`make bench` for the full run, `make bench-quick` for the quick one).",
        "",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- mode: {mode}",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}, "
        f"{platform.machine()}",
        f"- code measured: {_code_version()}",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- load average when starting: {load} (the machine is shared; every "
        "comparison is made within this run)",
    ]


def _code_version() -> str:
    """Name the commit measured, and the files changed on top of it, if any."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "cache", "providers"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    files = sorted(line[3:] for line in changed if line.strip())
    if not files:
        return f"commit {head}"
    return f"commit {head}, with uncommitted changes to {', '.join(files)}"


def _ratelimit(quick: bool, skip: bool) -> list[str]:
    if skip:
        return ["Not measured in this run (`--skip-ratelimit`)."]
    if not RATELIMIT.exists():
        return [
            "Not measured: `benchmarks/bench_ratelimit.py` does not exist yet. When "
            "it does, this section holds its output (`python -m "
            "benchmarks.bench_ratelimit [--quick]`, Markdown on standard output)."
        ]
    command = [sys.executable, "-m", "benchmarks.bench_ratelimit"]
    command += ["--quick"] if quick else []
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return [
            f"`python -m benchmarks.bench_ratelimit` failed (exit {done.returncode}); "
            "not measured.",
            "",
            "```",
            done.stderr[-2000:],
            "```",
        ]
    return done.stdout.rstrip().splitlines()


def main(argv: list[str] | None = None) -> None:
    """Run the sections in order and write the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="A reduced run.")
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "RESULTS.md",
        help="Where to write the report.",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="Comma-separated peers to compare with (default: all installed).",
    )
    parser.add_argument(
        "--skip-ratelimit",
        action="store_true",
        help="Leave the rate-limit section out (it has its own schedule).",
    )
    args = parser.parse_args(argv)
    throughput, cache, memory = QUICK if args.quick else FULL
    peers = tuple(p for p in args.peers.split(",") if p)
    unknown = set(peers) - PEERS.keys()
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {list(PEERS)}")
    throughput = ThroughputSettings(**{**throughput.__dict__, "peers": peers})
    header = _header(args.quick, sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autosep-bench-") as scratch:
        work = Path(scratch)
        _log("throughput and peers")
        measured = run_throughput(throughput, work, _log)
        for peer, why in measured["missing"].items():
            _log(f"  skipped {peer}: {why}")
        _log("rate limits")
        ratelimit = _ratelimit(args.quick, args.skip_ratelimit)
        _log("cache")
        cached = run_cache_section(cache, work, _log)
        _log("memory")
        memoried = run_memory(memory, work, _log)
    render(
        path=args.results,
        header=header,
        throughput=measured,
        latency_s=throughput.latency_ms / 1000.0,
        calls_rule=throughput.describe_calls(),
        ratelimit=ratelimit,
        cache=cached,
        memory=memoried,
    )
    _log(f"wrote {args.results} in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
