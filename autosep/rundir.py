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

__all__ = ["ConfigMismatch", "RunDir", "RunDirError"]


class ConfigMismatch(Exception):
    """A run directory holds a run made with other settings."""


class RunDirError(ValueError):
    """A file of the run directory cannot be read; the message names it."""


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
            RunDirError: The stored settings are damaged.
        """
        data = _read_json(self.config, "put it back from a copy, or start the run "
                          "afresh in another --run-dir")  # fmt: skip
        try:
            return resolve_config(data["settings"])
        except (KeyError, TypeError, ValueError) as error:
            raise RunDirError(
                f"{self.config} does not hold a run's settings ({error}); start the "
                "run afresh in another --run-dir"
            ) from error

    def claim(self, config: RunConfig) -> None:
        """Store the settings, or check them against the stored ones.

        Raises:
            ConfigMismatch: The directory holds a run with other answer-changing
                settings; the message lists them.
        """
        self.check(config)
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

    def check(self, config: RunConfig) -> None:
        """Check settings against those of a run already here, if any.

        Raises:
            ConfigMismatch: The directory holds a run with other answer-changing
                settings; the message lists them.
        """
        if self.exists():
            stored = _read_json(self.config, "use another --run-dir")
            if stored.get("fingerprint") != config.fingerprint():
                changes = config_diff(stored.get("method", {}), config.method_dict())
                raise ConfigMismatch(
                    f"{self.path} holds a run with other settings "
                    f"({'; '.join(changes)}); use another --run-dir, or resume it "
                    "with its own settings"
                )

    def load_state(self) -> SearchState | None:
        """Return the last checkpoint, or None."""
        if not self.checkpoint.exists():
            return None
        remedy = (
            "delete it to start the run again from the beginning (answered from the "
            "cache as far as it went)"
        )
        data = _read_json(self.checkpoint, remedy)
        try:
            return SearchState.from_dict(data["state"])
        except (KeyError, TypeError, ValueError) as error:
            raise RunDirError(
                f"{self.checkpoint} is not a checkpoint ({error!r}); {remedy}"
            ) from error

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

    def read_results(self) -> dict[str, Any]:
        """Return results.json.

        Raises:
            FileNotFoundError: The run has written none yet.
            RunDirError: It is damaged.
        """
        return _read_json(
            self.results, "delete it: the report is then made from the checkpoint"
        )

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
        remedy = "delete it: it holds only what earlier sessions cost"
        data = _read_json(self.stats, remedy)
        sessions = data.get("sessions")
        if not isinstance(sessions, list):
            raise RunDirError(f"{self.stats} holds no list of sessions; {remedy}")
        return sessions


def _read_json(path: Path, remedy: str) -> dict[str, Any]:
    """Read one of the directory's JSON files; a damaged one says what to do."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirError(f"{path} cannot be read ({error}); {remedy}") from error
    if not isinstance(data, dict):
        raise RunDirError(f"{path} does not hold a JSON object; {remedy}")
    return data


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
