"""Peak memory of the engine with large images: bounded by calls in flight.

The same number of calls in flight, with more and more calls planned: if the peak
resident memory of the client does not grow with the calls planned, it is set by
the calls in flight alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._emulator import EmulatorProcess
from benchmarks._runner import client_command, run_client
from benchmarks._workload import make_noise_images

__all__ = ["MemorySettings", "run_memory"]


@dataclass(frozen=True)
class MemorySettings:
    """The shape of the memory section; ``repeats`` holds one count per plan."""

    in_flight: int
    planned: tuple[int, ...]
    repeats: tuple[int, ...]
    images: int
    latency_ms: float


def _sent_bytes(paths: list[Path]) -> float:
    """Return the mean size of an image as the engine sends it (base64)."""
    from cache.images import PrepSettings, prepare_bytes

    sizes = [len(prepare_bytes(p.read_bytes(), PrepSettings()).b64) for p in paths]
    return sum(sizes) / len(sizes)


def run_memory(
    settings: MemorySettings, work_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the engine once per plan size and repeat; return the raw runs."""
    images = work_dir / "noise"
    paths = make_noise_images(images, settings.images)
    file_bytes = sum(p.stat().st_size for p in paths) / len(paths)
    runs: dict[int, list[dict[str, Any]]] = {}
    with EmulatorProcess(settings.latency_ms) as emulator:
        command: list[str] = []
        for planned, repeats in zip(settings.planned, settings.repeats, strict=True):
            for repeat in range(repeats):
                command = client_command(
                    "engine",
                    emulator,
                    images,
                    concurrency=settings.in_flight,
                    calls=planned,
                    nonce=f"memory-{planned}-{repeat}",
                )
                result = run_client(command, emulator)
                runs.setdefault(planned, []).append(result)
                log(
                    f"  memory #{repeat + 1} {planned:>6} planned: peak "
                    f"{result['maxrss_kb'] / 1024:.0f} MB, {result['wall_s']:.1f}s, "
                    f"{result['failed']} failed"
                )
    return {
        "runs": runs,
        "file_bytes": file_bytes,
        "sent_b64_bytes": _sent_bytes(paths),
        "command": command,
        "emulator": emulator.command,
    }
