"""The report's figures: score and accuracy per round, and cost per phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["phase_totals", "plot_rounds"]


def phase_totals(sessions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add up the sessions of a run (a run and its resumes), per phase.

    Latency percentiles are those of the latest session that sent calls in the
    phase, since percentiles do not add.
    """
    totals: dict[str, dict[str, Any]] = {}
    summed = (
        "calls",
        "cache_hits",
        "sent",
        "retries",
        "failures",
        "input_tokens",
        "output_tokens",
        "image_tokens",
        "cost_usd",
        "saved_usd",
    )
    for session in sessions:
        for phase, stats in session["phases"].items():
            total = totals.setdefault(
                phase, {key: 0 for key in summed} | {"priced": True}
            )
            for key in summed:
                total[key] += stats.get(key) or 0
            total["priced"] = total["priced"] and stats.get("priced", True)
            if stats.get("latency_p50_s") is not None:
                for key in ("latency_p50_s", "latency_p90_s", "latency_p99_s"):
                    total[key] = stats[key]
    return totals


def plot_rounds(results: dict[str, Any], path: str | Path) -> Path:
    """Draw the best prompt's score and accuracy per round, with zero-shot lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    rounds = [line["round"] for line in summary]
    figure, axis = plt.subplots(figsize=(7, 4.2))
    _line(
        axis, rounds, [line["best_score"] for line in summary], "label-free score", "o-"
    )
    _line(
        axis, rounds, [line["best_accuracy"] for line in summary], "test accuracy", "s-"
    )
    _line(
        axis,
        rounds,
        [line["beam_mean_accuracy"] for line in summary],
        "beam mean accuracy",
        "^:",
    )
    styles = {"zero_shot": "--", "majority_vote": "-."}
    for name, style in styles.items():
        metrics = results["baselines"].get(name)
        if metrics and metrics.get("accuracy") is not None:
            axis.axhline(
                metrics["accuracy"],
                linestyle=style,
                color="grey",
                label=name.replace("_", " "),
            )
    axis.set_xlabel("round")
    axis.set_ylim(0, 1.02)
    axis.set_xticks(rounds)
    axis.set_title(f"AutoSEP on {results['task']['name']}")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _line(
    axis: Any, xs: list[int], ys: list[float | None], label: str, style: str
) -> None:
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    if points:
        axis.plot(*zip(*points, strict=True), style, label=label)


def load_report(
    run_dir: str | Path,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Return a run's results and its per-phase totals, and redraw its plot.

    A run that has not finished is reported from its last checkpoint.

    Raises:
        FileNotFoundError: The folder holds no run.
        RunDirError: One of its files is damaged; the message says which.
    """
    from autosep.results import build_results
    from autosep.rundir import RunDir
    from autosep.runner import load_task

    directory = RunDir(run_dir)
    if not directory.exists():
        raise FileNotFoundError(f"{directory.path} holds no run (no config.json)")
    if directory.results.exists():
        results = directory.read_results()
    else:
        config = directory.read_config()
        state = directory.load_state()
        if state is None:
            raise FileNotFoundError(f"{directory.path} has no checkpoint yet")
        results = build_results(state, load_task(config), config)
    if results["summary"]:
        plot_rounds(results, directory.plot)
    return results, phase_totals(directory.read_stats())
