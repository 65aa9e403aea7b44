"""Whole runs against the scripted fake: checkpoints, resume, budget, reruns, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from autosep.config import ConfigError, load_config_file, resolve_config
from autosep.rundir import ConfigMismatch, RunDir
from autosep.runner import RunError, dry_run, run
from cli import cli
from engine.request import Failure
from tests.autosep_fakes import (
    SMALL_SETTINGS,
    FakeEngine,
    images_of,
    make_tree,
    scripted_answer,
)


class Crash(Exception):
    pass


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data", ["Alpha", "Beta", "Gamma"], 8)


def config_for(dataset: Path, **changes):
    settings = {"dataset": str(dataset), "noun": "bird", **SMALL_SETTINGS}
    return resolve_config({**settings, **changes})


async def test_run_writes_every_file(dataset: Path, tmp_path: Path) -> None:
    outcome = await run(config_for(dataset), tmp_path / "run", engine=FakeEngine())
    directory = RunDir(tmp_path / "run")
    assert outcome.stopped is None
    for path in (
        directory.config,
        directory.checkpoint,
        directory.events,
        directory.results,
        directory.stats,
    ):
        assert path.exists(), path
    results = json.loads(directory.results.read_text())
    assert [line["round"] for line in results["summary"]] == [0, 1, 2]
    assert results["best"]["prompt"] == results["rounds"][-1]["beam"][0]["prompt"]
    events = [
        json.loads(line)["event"] for line in directory.events.read_text().splitlines()
    ]
    assert events.count("checkpoint") == 3 and events[-1] == "finished"
    stored = json.loads(directory.config.read_text())
    assert stored["settings"]["dataset"] == str(dataset)


async def test_run_with_failing_calls_finishes_and_reports_them(
    dataset: Path, tmp_path: Path
) -> None:
    # Every call showing one of half of Alpha's images fails for good, as for
    # images a provider keeps rejecting: describe calls fail, and so do the
    # comparisons and classifications that would need them.
    def rejected(path: str) -> bool:
        name = Path(path).stem
        return name.startswith("alpha_") and int(name[-2:]) % 2 == 0

    def answer(request):
        if any(rejected(path) for path in images_of(request)):
            return Failure("bad_request", "image rejected", 1, 400)
        return scripted_answer(request)

    outcome = await run(
        config_for(dataset), tmp_path / "run", engine=FakeEngine(answer)
    )
    assert outcome.stopped is None and outcome.results is not None
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [line["round"] for line in results["summary"]] == [0, 1, 2]
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    failures = stats["sessions"][0]["failures"]
    assert failures.get("describe", 0) > 0
    assert outcome.failed_calls == sum(failures.values())


async def test_rerun_sends_nothing_and_writes_the_same_results(
    dataset: Path, tmp_path: Path
) -> None:
    cache: dict = {}
    first = FakeEngine(cache=cache)
    await run(config_for(dataset), tmp_path / "a", engine=first)
    again = FakeEngine(cache=cache)
    await run(config_for(dataset), tmp_path / "b", engine=again)
    assert first.sent and not again.sent
    assert (tmp_path / "a" / "results.json").read_bytes() == (
        tmp_path / "b" / "results.json"
    ).read_bytes()


async def test_crash_and_resume_match_an_uninterrupted_run(
    dataset: Path, tmp_path: Path
) -> None:
    await run(config_for(dataset), tmp_path / "whole", engine=FakeEngine())
    calls = 0

    def crashing(request):
        nonlocal calls
        calls += 1
        if calls == 140:
            raise Crash
        return scripted_answer(request)

    cache: dict = {}
    with pytest.raises(Crash):
        await run(
            config_for(dataset),
            tmp_path / "cut",
            engine=FakeEngine(crashing, cache=cache),
        )
    state = RunDir(tmp_path / "cut").load_state()
    assert state is not None and state.completed_round < 2
    resumed = FakeEngine(cache=cache)
    await run(config_for(dataset), tmp_path / "cut", engine=resumed)
    assert (tmp_path / "whole" / "results.json").read_bytes() == (
        tmp_path / "cut" / "results.json"
    ).read_bytes()
    # The crashed session still recorded what it spent.
    assert len(RunDir(tmp_path / "cut").read_stats()) == 2


async def test_changed_settings_are_refused(dataset: Path, tmp_path: Path) -> None:
    await run(config_for(dataset), tmp_path / "run", engine=FakeEngine())
    with pytest.raises(ConfigMismatch, match="rounds: 2 -> 3"):
        await run(config_for(dataset, rounds=3), tmp_path / "run", engine=FakeEngine())
    # Execution settings may change.
    await run(config_for(dataset, concurrency=3), tmp_path / "run", engine=FakeEngine())


async def test_budget_stops_cleanly_and_resumes(dataset: Path, tmp_path: Path) -> None:
    await run(config_for(dataset), tmp_path / "whole", engine=FakeEngine())
    cache: dict = {}
    # The fake bills 1,000 input and 10 output tokens of gpt-4o-mini per call.
    stopped = await run(
        config_for(dataset, budget_usd=0.01),
        tmp_path / "cut",
        engine=FakeEngine(cache=cache),
    )
    assert stopped.stopped and "budget" in stopped.stopped and stopped.results is None
    spent = RunDir(tmp_path / "cut").read_stats()[0]
    assert sum(p["cost_usd"] for p in spent["phases"].values()) <= 0.01
    finished = await run(
        config_for(dataset), tmp_path / "cut", engine=FakeEngine(cache=cache)
    )
    assert finished.stopped is None
    assert (tmp_path / "whole" / "results.json").read_bytes() == (
        tmp_path / "cut" / "results.json"
    ).read_bytes()


async def test_dry_run_counts_without_calling(dataset: Path, tmp_path: Path) -> None:
    empty = FakeEngine()
    plan = await dry_run(config_for(dataset), engine=empty)
    assert not empty.sent
    assert plan.uncached_estimate == sum(plan.planned.values()) > 0
    assert plan.cost_usd > 0
    cache: dict = {}
    engine = FakeEngine(cache=cache)
    await run(config_for(dataset), tmp_path / "run", engine=engine)
    replay = FakeEngine(cache=cache)
    plan = await dry_run(config_for(dataset), engine=replay)
    assert not replay.sent and plan.uncached_estimate == 0
    assert sum(plan.replayed.values()) == len(engine.sent)
    # The estimate is an upper bound of what the run really asked.
    for phase, count in plan.replayed.items():
        assert count <= plan.planned[phase]


async def test_unreadable_images_stop_the_run_before_any_call(
    dataset: Path, tmp_path: Path
) -> None:
    for image in (dataset / "Beta").iterdir():
        image.write_bytes(b"broken")
    engine = FakeEngine()
    with pytest.raises(RunError, match="cannot be decoded"):
        await run(config_for(dataset), tmp_path / "run", engine=engine)
    assert not engine.maps


def test_settings_from_file_and_errors(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(
        '[search]\nrounds = 3\nevaluator = "ucb"\n[task]\nfamily = "vireo"\n'
    )
    config = resolve_config(load_config_file(toml), {"rounds": 4})
    assert (config.rounds, config.evaluator, config.family) == (4, "ucb", "vireo")
    assert config.model == "gpt-4o-mini" and config.critic == (
        "emulator",
        "gpt-4o-mini",
    )
    assert resolve_config({"critic_model": "gpt-4o"}).critic == ("emulator", "gpt-4o")
    with pytest.raises(ConfigError, match="unknown settings: roundz"):
        resolve_config({"roundz": 1})
    with pytest.raises(ConfigError, match="evaluator"):
        resolve_config({"evaluator": "xx"})
    a = resolve_config({"concurrency": 8})
    assert (
        a.fingerprint()
        == resolve_config({"concurrency": 99, "budget_usd": 1.0}).fingerprint()
    )
    assert a.fingerprint() != resolve_config({"seed": 1}).fingerprint()


def test_cli_report_and_resume_refusal(
    dataset: Path, tmp_path: Path, monkeypatch
) -> None:
    import asyncio

    asyncio.run(run(config_for(dataset), tmp_path / "run", engine=FakeEngine()))
    runner = CliRunner()
    shown = runner.invoke(cli, ["report", str(tmp_path / "run")])
    assert shown.exit_code == 0, shown.output
    assert "best prompt per round" in shown.output and "zero shot" in shown.output
    assert (tmp_path / "run" / "report.png").stat().st_size > 1000
    refused = runner.invoke(
        cli,
        [
            "run",
            "--dataset",
            str(dataset),
            "--noun",
            "bird",
            "--n-train",
            "4",
            "--n-test",
            "3",
            "--run-dir",
            str(tmp_path / "run"),
        ],
    )
    assert refused.exit_code == 2 and "other settings" in refused.output
    bad = runner.invoke(cli, ["run", "--dataset", str(dataset), "--family", "finch"])
    assert bad.exit_code == 2 and "not both" in bad.output


def test_a_dry_run_refuses_a_run_directory_with_other_settings(
    dataset: Path, tmp_path: Path
) -> None:
    import asyncio

    asyncio.run(run(config_for(dataset), tmp_path / "run", engine=FakeEngine()))
    planned = CliRunner().invoke(
        cli,
        ["run", "--dataset", str(dataset), "--noun", "bird", "--dry-run",
         "--run-dir", str(tmp_path / "run")],
    )  # fmt: skip
    assert planned.exit_code == 2 and "other settings" in planned.output


@pytest.mark.parametrize(
    ("name", "damage", "says", "commands"),
    [
        ("config.json", "{", "cannot be read", ["resume"]),
        ("config.json", "[1, 2]", "does not hold a JSON object", ["resume"]),
        (
            "checkpoint.json",
            '{"state": {"beam": 3}}',
            "is not a checkpoint",
            ["resume", "report"],
        ),
        (
            "stats.json",
            '{"sessions": 5}',
            "holds only what earlier sessions cost",
            ["resume", "report"],
        ),
    ],
)
def test_a_damaged_run_directory_is_refused_by_name(
    dataset: Path, tmp_path: Path, name: str, damage: str, says: str, commands: list
) -> None:
    import asyncio

    asyncio.run(run(config_for(dataset), tmp_path / "run", engine=FakeEngine()))
    (tmp_path / "run" / name).write_text(damage)
    # Without results.json the report is made from the checkpoint.
    (tmp_path / "run" / "results.json").unlink()
    for command in commands:
        result = CliRunner().invoke(cli, [command, str(tmp_path / "run")])
        assert result.exit_code == 2, result.output
        assert name in result.output and says in result.output
        assert "Traceback" not in result.output


def test_a_damaged_results_file_is_refused_by_report(
    dataset: Path, tmp_path: Path
) -> None:
    import asyncio

    asyncio.run(run(config_for(dataset), tmp_path / "run", engine=FakeEngine()))
    (tmp_path / "run" / "results.json").write_text('{"summary": ')
    shown = CliRunner().invoke(cli, ["report", str(tmp_path / "run")])
    assert shown.exit_code == 2 and "results.json" in shown.output
    assert "delete it" in shown.output


def test_dataset_settings_without_a_dataset_are_refused() -> None:
    for setting in ({"classes": ("Nope",)}, {"task": "cuckoo"}, {"noun": "moth"}):
        with pytest.raises(ConfigError, match="apply only to a dataset"):
            resolve_config({"family": "finch", **setting})
    runner = CliRunner()
    refused = runner.invoke(cli, ["run", "--classes", "Nope", "--dry-run"])
    assert refused.exit_code == 2 and "apply only to a dataset" in refused.output


def test_synth_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "other").mkdir()
    refused = CliRunner().invoke(
        cli, ["data", "synth", "finch", "--out", str(out), "--per-species", "2"]
    )
    assert refused.exit_code == 2 and "not empty" in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["other"]
