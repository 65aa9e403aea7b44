"""The run directory: configuration, checkpoints, journal, results, statistics.

Layout::

    config.json       the resolved settings (no secrets) and their fingerprint
    checkpoint.json   the search state after the last finished round
    events.jsonl      the journal: engine progress and method milestones, with times
    results.json      what the run found; byte-identical on a rerun
    stats.json        what each session cost: calls, hits, tokens, dollars, latency
    report.png        score and accuracy per round

Files are replaced atomically (written beside, then renamed), so a run killed at
any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from autosep.config import RunConfig, config_diff, resolve_config
from autosep.search import SearchState

__all__ = ["ConfigMismatch", "RunDir"]


class ConfigMismatch(Exception):
    """A run directory holds a run made with other settings."""


class RunDir:
    """One run's directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.checkpoint = self.path / "checkpoint.json"
        self.events = self.path / "events.jsonl"
        self.results = self.path / "results.json"
        self.stats = self.path / "stats.json"
        self.plot = self.path / "report.png"

    def exists(self) -> bool:
        """Whether a run was started here."""
        return self.config.exists()

    def read_config(self) -> RunConfig:
        """Return the stored settings.

        Raises:
            FileNotFoundError: No run was started here.
        """
        data = json.loads(self.config.read_text())
        return resolve_config(data["settings"])

    def claim(self, config: RunConfig) -> None:
        """Store the settings, or check them against the stored ones.

        Raises:
            ConfigMismatch: The directory holds a run with other answer-changing
                settings; the message lists them.
        """
        if self.exists():
            stored = json.loads(self.config.read_text())
            if stored["fingerprint"] != config.fingerprint():
                changes = config_diff(stored["method"], config.method_dict())
                raise ConfigMismatch(
                    f"{self.path} holds a run with other settings "
                    f"({'; '.join(changes)}); use another --run-dir, or resume it "
                    "with its own settings"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        # Execution settings (concurrency, budget) may change between sessions; the
        # latest are kept. Secrets never enter the settings.
        _write_json(
            self.config,
            {
                "fingerprint": config.fingerprint(),
                "method": config.method_dict(),
                "settings": config.to_dict(),
            },
        )

    def load_state(self) -> SearchState | None:
        """Return the last checkpoint, or None."""
        if not self.checkpoint.exists():
            return None
        return SearchState.from_dict(json.loads(self.checkpoint.read_text())["state"])

    def save_state(self, state: SearchState, config: RunConfig) -> None:
        """Write a checkpoint."""
        _write_json(
            self.checkpoint,
            {"fingerprint": config.fingerprint(), "state": state.to_dict()},
        )

    def journal(self, record: dict[str, Any]) -> None:
        """Append one record to the journal, with the wall time."""
        with self.events.open("a", encoding="utf-8") as handle:
            line = json.dumps({"time": round(time.time(), 3), **record}, default=_plain)
            handle.write(line + "\n")

    def write_results(self, results: dict[str, Any]) -> None:
        """Write results.json (sorted keys, fixed layout: byte-stable)."""
        _write_json(self.results, results)

    def add_stats(self, session_stats: dict[str, Any]) -> None:
        """Append one session's statistics to stats.json."""
        sessions = self.read_stats()
        sessions.append(session_stats)
        _write_json(self.stats, {"sessions": sessions})

    def read_stats(self) -> list[dict[str, Any]]:
        """Return every session's statistics so far."""
        if not self.stats.exists():
            return []
        return list(json.loads(self.stats.read_text())["sessions"])


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(
        json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    os.replace(partial, path)


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
