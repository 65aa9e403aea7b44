"""Rich tables for the command line: the run report, dataset checks, dry runs.

Only the command line imports this module; the method itself never prints.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from autosep.checks import DatasetCheck
from autosep.tasks import Dataset

__all__ = [
    "baselines_table",
    "check_table",
    "dry_run_table",
    "phases_table",
    "prompt_text",
    "rounds_table",
]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def rounds_table(results: dict[str, Any]) -> Table:
    """Best prompt per round: label-free score and test accuracy, vs zero-shot."""
    zero = (results["baselines"].get("zero_shot") or {}).get("accuracy")
    table = Table(
        title=f"AutoSEP on {escape(results['task']['name'])}: best prompt per round"
    )
    for name in (
        "round",
        "prompt",
        "candidates",
        "score",
        "accuracy",
        "macro-F1",
        "beam mean",
        "vs zero-shot",
    ):
        table.add_column(name, justify="left" if name == "prompt" else "right")
    for line in results["summary"]:
        accuracy = line["best_accuracy"]
        delta = (
            "-"
            if accuracy is None or zero is None
            else f"{(accuracy - zero) * 100:+.1f} pt"
        )
        table.add_row(
            str(line["round"]),
            line["best_id"],
            str(line["candidates"]),
            "-" if line["best_score"] is None else f"{line['best_score']:.3f}",
            _rate(accuracy),
            _rate(line["best_macro_f1"]),
            _rate(line["beam_mean_accuracy"]),
            delta,
        )
    return table


def baselines_table(results: dict[str, Any]) -> Table:
    """Baselines and the best prompt: accuracy, macro-F1, unparsed and failed."""
    table = Table(title="Test set")
    for name in ("method", "accuracy", "macro-F1", "answered", "unparsed", "failed"):
        table.add_column(name, justify="left" if name == "method" else "right")
    rows = list(results["baselines"].items())
    best = results.get("best")
    if best and best.get("test"):
        rows.append((f"AutoSEP (round {best['round']}, by score)", best["test"]))
    for name, metrics in rows:
        table.add_row(
            escape(name.replace("_", " ")),
            _rate(metrics["accuracy"]),
            _rate(metrics["macro_f1"]),
            f"{metrics['answered']}/{metrics['n']}",
            str(metrics["unparsed"]),
            str(metrics["failed"]),
        )
    return table


def prompt_text(results: dict[str, Any]) -> str:
    """The best prompt, for printing below the tables."""
    best = results.get("best")
    return "" if not best else best["prompt"]


def phases_table(
    totals: dict[str, dict[str, Any]], title: str = "Calls per phase"
) -> Table:
    """Calls, cache hits, tokens, cost and latency per phase."""
    table = Table(title=title)
    columns = (
        "phase",
        "calls",
        "cache hits",
        "sent",
        "retries",
        "failed",
        "input tok",
        "output tok",
        "cost",
        "p50",
        "p90",
        "p99",
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "phase" else "right")
    total_cost = 0.0
    priced = True
    for phase, row in totals.items():
        total_cost += row["cost_usd"]
        priced = priced and row.get("priced", True)
        table.add_row(
            phase,
            f"{row['calls']:,}",
            f"{row['cache_hits']:,}",
            f"{row['sent']:,}",
            f"{row['retries']:,}",
            f"{row['failures']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"${row['cost_usd']:.4f}",
            *(
                _seconds(row.get(k))
                for k in ("latency_p50_s", "latency_p90_s", "latency_p99_s")
            ),
        )
    note = "" if priced else " (some models unpriced)"
    table.caption = f"total ${total_cost:.4f} at list prices{note}"
    return table


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def check_table(dataset: Dataset, check: DatasetCheck) -> Table:
    """Images per class and split, as ``data check`` shows them."""
    table = Table(
        title=f"{escape(dataset.name)}: {len(dataset.classes)} classes "
        f"of {escape(dataset.noun)}"
    )
    for name in ("option", "class", "train", "test", "unsplit"):
        table.add_column(
            name, justify="left" if name in ("option", "class") else "right"
        )
    for i, name in enumerate(dataset.classes):
        counts = check.counts.get(name, {})
        table.add_row(
            chr(ord("A") + i) if i < 26 else "-",
            escape(name),
            *(str(counts.get(split, 0)) for split in ("train", "test", "unsplit")),
        )
    return table


def dry_run_table(planned: dict[str, int], replayed: dict[str, int]) -> Table:
    """Planned calls per phase, and how many the cache answered in a replay."""
    table = Table(title="Calls the run will make (upper estimate)")
    for name in ("phase", "planned", "answered by the cache"):
        table.add_column(name, justify="left" if name == "phase" else "right")
    for phase in sorted(set(planned) | set(replayed)):
        table.add_row(
            phase, f"{planned.get(phase, 0):,}", f"{replayed.get(phase, 0):,}"
        )
    table.add_row("total", f"{sum(planned.values()):,}", f"{sum(replayed.values()):,}")
    return table
