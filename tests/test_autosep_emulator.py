"""End to end on the emulator: a real engine, real HTTP, the simulated model."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from autosep.config import resolve_config
from autosep.rundir import RunDir
from autosep.runner import run

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--rounds",
    "2",
    "--beam-size",
    "2",
    "--n-train",
    "4",
    "--n-test",
    "4",
    "--minibatch-size",
    "8",
    "--n-gradients",
    "2",
    "--errors-per-gradient",
    "2",
    "--max-expansion-factor",
    "2",
]


def small_config(tmp_path: Path, **changes):
    settings = {
        "rounds": 1,
        "beam_size": 2,
        "n_train": 4,
        "n_test": 4,
        "minibatch_size": 8,
        "n_gradients": 2,
        "errors_per_gradient": 2,
        "max_expansion_factor": 2,
        "cache_dir": str(tmp_path / "cache"),
        "data_dir": str(tmp_path / "data"),
    }
    return resolve_config({**settings, **changes})


def sent(run_dir: Path) -> int:
    return sum(
        p["sent"] for s in RunDir(run_dir).read_stats() for p in s["phases"].values()
    )


async def test_emulator_run_and_free_identical_rerun(tmp_path: Path) -> None:
    first = await run(small_config(tmp_path), tmp_path / "a")
    assert first.results is not None and sent(tmp_path / "a") > 0
    again = await run(small_config(tmp_path), tmp_path / "b")
    assert again.results == first.results
    assert sent(tmp_path / "b") == 0
    assert (tmp_path / "a" / "results.json").read_bytes() == (
        tmp_path / "b" / "results.json"
    ).read_bytes()
    baselines = first.results["baselines"]
    assert baselines["zero_shot"]["answered"] == 12


async def test_a_run_closes_its_cache_after_the_engine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cache.store import ResponseCache

    await run(small_config(tmp_path), tmp_path / "a")
    # The engine records its lookups as it closes; a cache closed first loses them.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    store = ResponseCache(tmp_path / "cache")
    try:
        stats = store.stats()
    finally:
        store.close()
    assert stats["misses"] > 0


async def test_learning_baselines_on_the_emulator(tmp_path: Path) -> None:
    names = ("pseudo_random", "pseudo_majority", "spo")
    config = small_config(tmp_path, baselines=names, rounds=2, spo_samples=3)
    first = await run(config, tmp_path / "a")
    assert first.results is not None
    baselines = first.results["baselines"]
    phases = RunDir(tmp_path / "a").read_stats()[-1]["phases"]
    for name in names:
        result = baselines[name]
        assert result["answered"] == result["n"] == 12
        assert result["prompt"].startswith("# Task")
        assert phases[name]["sent"] > 0 and phases[name]["failures"] == 0
    for record in baselines["spo"]["rounds"]:
        assert record["accepted"] == (2 * record["wins"] > record["judged"])
    again = await run(config, tmp_path / "b")
    assert again.results == first.results and sent(tmp_path / "b") == 0


async def test_spo_learns_a_better_prompt_on_the_emulator(tmp_path: Path) -> None:
    config = small_config(tmp_path, baselines=("zero_shot", "spo"), rounds=6)
    outcome = await run(config, tmp_path / "a")
    assert outcome.results is not None
    baselines = outcome.results["baselines"]
    spo = baselines["spo"]
    initial = outcome.results["rounds"][0]["beam"][0]["prompt"]
    accepted = [r for r in spo["rounds"] if r["accepted"]]
    assert accepted and spo["prompt"] != initial
    # What it accepted asks for more than the initial prompt did.
    assert len(spo["prompt"]) > len(initial)
    assert spo["accuracy"] > baselines["zero_shot"]["accuracy"]


def cli_run(
    tmp_path: Path, run_dir: Path, base_url: str, *extra: str
) -> subprocess.Popen[bytes]:
    """Start ``cli.py run`` on the small settings; its messages go to a log file."""
    command = [
        sys.executable, "cli.py", "-q", "run", *SMALL,
        "--concurrency", str(CONCURRENCY),
        "--base-url", base_url,
        "--cache-dir", str(tmp_path / "cache"),
        "--data-dir", str(tmp_path.parent / "data"),
        "--run-dir", str(run_dir),
        *extra,
    ]  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    with (tmp_path / "stderr.log").open("wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )


CONCURRENCY = 8


@pytest.fixture
def emulator_process() -> Iterator[str]:
    """An emulator in its own process, as a user would run it; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "cli.py", "emulator", "serve", "--port", str(port),
               "--latency-ms", "20"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                emulator_requests(url)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.kill()
        process.wait()


def emulator_requests(url: str) -> int:
    with urllib.request.urlopen(f"{url}/emulator/stats", timeout=5) as answer:
        return int(json.loads(answer.read())["requests"])


def test_sigkill_at_a_random_moment_then_resume(
    tmp_path: Path, emulator_process: str
) -> None:
    url = emulator_process
    started = time.monotonic()
    whole = cli_run(tmp_path / "w", tmp_path / "whole", url)
    assert whole.wait(timeout=600) == 0, (tmp_path / "w" / "stderr.log").read_text()
    duration = time.monotonic() - started
    needed = emulator_requests(url)
    expected = (tmp_path / "whole" / "results.json").read_bytes()
    assert json.loads(expected)["completed_round"] == 2
    resumed_runs = 0
    for attempt in range(3):
        # Each attempt has a cache of its own, so it must make every call again.
        target = tmp_path / f"cut{attempt}"
        before = emulator_requests(url)
        victim = cli_run(tmp_path / f"k{attempt}", target, url)
        time.sleep(random.Random(attempt).uniform(0.3, 0.9) * duration)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        if not (target / "config.json").exists():
            continue  # killed before the run directory was claimed
        resumed = subprocess.run(
            [sys.executable, "cli.py", "-q", "resume", str(target)],
            cwd=ROOT, capture_output=True, timeout=600, check=False,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr.decode()
        assert (target / "results.json").read_bytes() == expected
        # Only the calls in flight at the kill were lost and made again.
        extra = emulator_requests(url) - before - needed
        assert 0 <= extra <= CONCURRENCY
        resumed_runs += 1
    assert resumed_runs >= 2


def test_cli_exit_codes_say_why_a_run_stopped(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli import STOPPED_BY_BUDGET, cli

    common = [
        "-q", "run", *SMALL, "--baselines", "zero_shot",
        "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    runner = CliRunner()
    stopped = runner.invoke(
        cli, [*common, "--run-dir", str(tmp_path / "a"), "--budget-usd", "0.000001"]
    )
    assert stopped.exit_code == STOPPED_BY_BUDGET == 3, stopped.output
    assert "budget" in stopped.output and "resume" in stopped.output
    finished = runner.invoke(
        cli, ["-q", "resume", str(tmp_path / "a"), "--budget-usd", "100"]
    )
    assert finished.exit_code == 0, finished.output
