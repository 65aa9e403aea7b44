"""The results of a run, as plain data: what results.json holds.

Nothing here depends on timing, the cache or the order answers arrived in, so a
rerun with the same settings writes the same bytes. What a run cost lives in
stats.json instead.
"""

from __future__ import annotations

from typing import Any

from autosep.config import RunConfig
from autosep.search import SearchState
from autosep.tasks import Task

__all__ = ["build_results", "round_summary"]


def build_results(state: SearchState, task: Task, config: RunConfig) -> dict[str, Any]:
    """Return the results of a finished (or partly finished) run."""
    summary = round_summary(state)
    return {
        "task": {
            "name": task.name,
            "noun": task.noun,
            "classes": list(task.classes),
            "train_images": len(task.train),
            "test_images": len(task.test),
        },
        "fingerprint": config.fingerprint(),
        "settings": config.method_dict(),
        "completed_round": state.completed_round,
        "summary": summary,
        "best": _best(state),
        "baselines": state.baselines,
        "rounds": state.rounds,
        "failures": sum(r.get("failures", 0) for r in state.rounds),
    }


def round_summary(state: SearchState) -> list[dict[str, Any]]:
    """Return one line per round: the best prompt by score, its accuracy."""
    lines = []
    for record in state.rounds:
        best = record["beam"][0]
        test = best.get("test") or {}
        accuracies = [
            b["test"]["accuracy"]
            for b in record["beam"]
            if b.get("test") and b["test"]["accuracy"] is not None
        ]
        lines.append(
            {
                "round": record["round"],
                "best_id": best["id"],
                "best_score": best["score"],
                "best_accuracy": test.get("accuracy"),
                "best_macro_f1": test.get("macro_f1"),
                "beam_mean_accuracy": (
                    round(sum(accuracies) / len(accuracies), 6) if accuracies else None
                ),
                "candidates": len(record["candidates"]),
            }
        )
    return lines


def _best(state: SearchState) -> dict[str, Any] | None:
    # Chosen by the label-free score (the beam is ranked by it), never by test
    # accuracy.
    if not state.rounds:
        return None
    record = state.rounds[-1]
    return {"round": record["round"], **record["beam"][0]}
