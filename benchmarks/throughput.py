"""Throughput, CPU per call and peak memory: the engine, the bare floor and the peers.

One emulator process at a fixed latency with no limits; for each concurrency, every
client runs the same number of distinct calls (so neither the cache nor the folding
of identical requests can help) in a process of its own. The clients of one
concurrency run back to back, in an order rotated on each repeat, so that a noisy
neighbour does not always land on the same client.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._emulator import EmulatorProcess
from benchmarks._runner import client_command, run_client
from benchmarks._workload import make_small_images
from benchmarks.clients import POOL_PROCESSES

__all__ = ["PEERS", "ThroughputSettings", "available_peers", "run_throughput"]

# Each peer and the module it needs; the engine and the bare client need nothing
# beyond the runtime dependencies.
PEERS = {"openai": "openai", "litellm": "litellm", "pool": "requests"}


@dataclass(frozen=True)
class ThroughputSettings:
    """The shape of the throughput section.

    ``repeats`` runs of every client; the engine and the bare client, whose ratio
    of CPU per call is the finest figure of the section and the most easily moved
    by a noisy neighbour, are run ``floor_repeats`` times (at least ``repeats``).
    """

    concurrencies: tuple[int, ...]
    waves: int
    min_calls: int
    latency_ms: float
    repeats: int
    images: int
    peer_deadline_s: float
    pool_calls: int
    peers: tuple[str, ...]
    floor_repeats: int = 0

    def calls(self, concurrency: int) -> int:
        """The calls of one run: ``waves`` full waves, and at least ``min_calls``."""
        return max(self.waves * concurrency, self.min_calls)

    def describe_calls(self) -> str:
        """The workload of a run, in words, for the report."""
        rule = f"{self.waves} x the calls in flight"
        if self.min_calls:
            rule = f"the larger of {rule} and {self.min_calls:,}"
        return f"{rule} calls, each with one of {self.images} 64x64 JPEGs"


def available_peers(wanted: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """Split the wanted peers into those installed and those missing (with why)."""
    present, missing = [], {}
    for peer in wanted:
        module = PEERS[peer]
        if importlib.util.find_spec(module) is None:
            missing[peer] = f"`{module}` is not installed (pip install -e '.[bench]')"
        else:
            present.append(peer)
    return present, missing


def run_throughput(
    settings: ThroughputSettings, work_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the section; return the raw runs by (kind, concurrency) and the commands."""
    images = work_dir / "small"
    make_small_images(images, settings.images)
    peers, missing = available_peers(settings.peers)
    async_peers = [p for p in peers if p != "pool"]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with EmulatorProcess(settings.latency_ms) as emulator:
        commands = {"emulator": emulator.command}
        for repeat in range(max(settings.repeats, settings.floor_repeats)):
            with_peers = repeat < settings.repeats
            for concurrency in settings.concurrencies:
                kinds = ["engine", "bare", *(async_peers if with_peers else [])]
                shift = repeat % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    command = client_command(
                        kind,
                        emulator,
                        images,
                        concurrency=concurrency,
                        calls=settings.calls(concurrency),
                        nonce=f"{kind}-{concurrency}-{repeat}",
                        deadline_s=None
                        if kind in ("engine", "bare")
                        else settings.peer_deadline_s,
                    )
                    commands.setdefault(kind, command)
                    result = run_client(command, emulator)
                    runs.setdefault((kind, concurrency), []).append(result)
                    log(_line(repeat, result))
            if "pool" in peers and with_peers:
                command = client_command(
                    "pool",
                    emulator,
                    images,
                    concurrency=POOL_PROCESSES,
                    calls=settings.pool_calls,
                    nonce=f"pool-{repeat}",
                    deadline_s=settings.peer_deadline_s,
                )
                commands.setdefault("pool", command)
                result = run_client(command, emulator)
                runs.setdefault(("pool", POOL_PROCESSES), []).append(result)
                log(_line(repeat, result))
    return {"runs": runs, "missing": missing, "commands": commands}


def _line(repeat: int, r: dict[str, Any]) -> str:
    rate = r["completed"] / r["wall_s"] if r["wall_s"] else 0.0
    cpu = 1e6 * r["cpu_s"] / max(1, r["completed"])
    note = " (bounded)" if r["bounded"] else ""
    return (
        f"  throughput #{repeat + 1} {r['kind']:>7} x{r['concurrency']:<5} "
        f"{r['completed']:>6}/{r['calls']:<6} calls {rate:8.0f}/s "
        f"{cpu:7.0f} us/call {r['maxrss_kb'] / 1024:6.0f} MB{note}"
    )
