"""Rich tables for the command line: the run report, dataset checks, dry runs.

Only the command line imports this module; the method itself never prints.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from autosep.checks import DatasetCheck
from autosep.prompts import initial_prompt
from autosep.tasks import Dataset

__all__ = [
    "baselines_table",
    "check_table",
    "dry_run_table",
    "learnt_prompts",
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


def learnt_prompts(results: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(baseline, prompt) for every baseline that learns a prompt of its own; the
    prompt is None when the baseline kept none but the initial one."""
    initial = results["settings"].get("initial_prompt") or initial_prompt(
        results["task"]["noun"]
    )
    return [
        (name.replace("_", " "), None if learnt == initial else learnt)
        for name, metrics in results["baselines"].items()
        if (learnt := metrics.get("prompt"))
    ]


# Columns of the per-phase table, in the order shown, and the order in which they
# are given up when the console is too narrow for all of them.
_PHASE_COLUMNS = (
    "phase", "calls", "cached", "sent", "retries", "failed", "in tok", "out tok",
    "cost", "saved", "p50", "p90", "p99",
)  # fmt: skip
_DROPPED_FIRST = ("p90", "saved", "retries", "sent", "out tok", "in tok", "p99")


def phases_table(
    totals: dict[str, dict[str, Any]],
    title: str = "Calls per phase",
    width: int = 200,
) -> Table:
    """Calls, cache hits, tokens, cost and latency per phase.

    Args:
        totals: Per phase, the figures of :meth:`engine.PhaseStats.to_dict`.
        title: The table's title.
        width: The console's width; columns that do not fit are left out, least
            telling first, rather than cut to an ellipsis.
    """
    rows = [_phase_cells(phase, row) for phase, row in totals.items()]
    shown = list(_PHASE_COLUMNS)
    table = _cells_table(title, shown, rows)
    for name in _DROPPED_FIRST:
        if _natural_width(table) <= width:
            break
        shown.remove(name)
        table = _cells_table(title, shown, rows)
    known = [row.get("cost_usd") or 0.0 for row in totals.values()]
    complete = all(
        row.get("cost_usd") is not None and row.get("priced", True)
        for row in totals.values()
    )
    note = "" if complete else " (some models have no known price)"
    table.caption = f"total ${sum(known):,.4f} at list prices{note}"
    return table


def _phase_cells(phase: str, row: dict[str, Any]) -> dict[str, str]:
    return {
        "phase": phase,
        "calls": f"{row['calls']:,}",
        "cached": f"{row['cache_hits']:,}",
        "sent": f"{row['sent']:,}",
        "retries": f"{row['retries']:,}",
        "failed": f"{row['failures']:,}",
        "in tok": _count(row["input_tokens"]),
        "out tok": _count(row["output_tokens"]),
        "cost": _dollars(row.get("cost_usd"), row.get("priced", True)),
        "saved": _dollars(row.get("saved_usd"), row.get("priced", True)),
        "p50": _seconds(row.get("latency_p50_s")),
        "p90": _seconds(row.get("latency_p90_s")),
        "p99": _seconds(row.get("latency_p99_s")),
    }


def _cells_table(title: str, columns: list[str], rows: list[dict[str, str]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in columns:
        table.add_column(name, justify="left" if name == "phase" else "right")
    for cells in rows:
        table.add_row(*(cells[name] for name in columns))
    return table


def _natural_width(table: Table) -> int:
    """The width a table takes when nothing is cut or wrapped."""
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum


def _count(value: int) -> str:
    """A token count, short: 950, 12.3k, 4.56M.

    >>> _count(950), _count(12_345), _count(4_560_000)
    ('950', '12.3k', '4.56M')
    """
    if value < 10_000:
        return f"{value:,}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.2f}M"


def _dollars(value: float | None, priced: bool = True) -> str:
    """Dollars, short; a sum that leaves out unpriced models says so with ``+?``."""
    if value is None:
        return "no price"
    text = f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    return text if priced else text + "+?"


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
