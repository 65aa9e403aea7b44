"""Start one client process against an emulator, and collect what it measured."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks._emulator import ROOT, EmulatorProcess

__all__ = ["client_command", "median", "run_client"]


def client_command(
    kind: str,
    emulator: EmulatorProcess,
    images: Path,
    *,
    concurrency: int,
    calls: int,
    nonce: str,
    deadline_s: float | None = None,
    cache_dir: Path | None = None,
    long_prompts: bool = False,
) -> list[str]:
    """Return the command line of one client run."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.clients",
        kind,
        "--url",
        emulator.url,
        "--images",
        str(images),
        "--concurrency",
        str(concurrency),
        "--calls",
        str(calls),
        "--nonce",
        nonce,
    ]
    if deadline_s is not None:
        command += ["--deadline-s", f"{deadline_s:g}"]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    if long_prompts:
        command.append("--long-prompts")
    return command


def run_client(command: Sequence[str], emulator: EmulatorProcess) -> dict[str, Any]:
    """Run a client process and return its JSON, plus what the emulator saw.

    Adds ``emulator_requests`` (requests the emulator served during the run) and
    ``emulator_cpu_s`` (CPU the emulator used meanwhile) to the client's own figures.

    Raises:
        RuntimeError: The client exited with an error.
    """
    emulator.reset()
    cpu_before = emulator.cpu_s()
    started = time.perf_counter()
    done = subprocess.run(
        list(command), cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(
            f"client failed ({done.returncode}): {' '.join(command)}\n"
            f"{done.stderr[-3000:]}"
        )
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    cpu_after = emulator.cpu_s()
    result["process_s"] = time.perf_counter() - started
    result["emulator_requests"] = emulator.stats()["requests"]
    if cpu_before is not None and cpu_after is not None:
        result["emulator_cpu_s"] = cpu_after - cpu_before
    return result


def median(values: Sequence[float | None]) -> float | None:
    """Return the median of the values that were measured, or None if none were."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
