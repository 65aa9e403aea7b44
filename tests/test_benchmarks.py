"""The quick benchmark runs end to end and writes a whole report.

It keeps the benchmarks from rotting as the engine changes. Peers whose packages are
not installed (the ``bench`` extra) are skipped by the benchmark itself, which says
so in the report. The rate-limit section is left out: it belongs to its own script,
which runs for as long as its windows take.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = (
    "## Targets",
    "## 1. Throughput against the ideal",
    "## 2. The peers",
    "## 3. Rate limits",
    "## 4. Cache",
    "## 5. Memory with large images",
    "## Commands",
)


def test_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--skip-ratelimit",
            "--results",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = results.read_text(encoding="utf-8")
    for heading in SECTIONS:
        assert heading in report
    assert "| 64 | engine |" in report
    assert "n/a" not in report.split("## 2. The peers")[0]
    assert "requests the emulator got during reruns | 0 |" in report
