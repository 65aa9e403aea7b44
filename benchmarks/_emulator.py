"""The emulator as a child process: start, reconfigure, count, and always stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ROOT", "EmulatorProcess", "free_port", "process_cpu_s"]

ROOT = Path(__file__).resolve().parents[1]

_STARTUP_S = 30.0


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_s(pid: int) -> float | None:
    """Return the user + system CPU seconds a process has used, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of stat(5) are utime and stime; the split above starts at 3.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class EmulatorProcess:
    """``cli.py emulator serve`` in a child process, for one benchmark section.

    Use it as a context manager; the child is stopped on exit whatever happened.

    Args:
        latency_ms: The emulator's fixed latency per request.
    """

    def __init__(self, latency_ms: float) -> None:
        self.port = free_port()
        self.command = [
            sys.executable,
            "cli.py",
            "emulator",
            "serve",
            "--port",
            str(self.port),
            "--latency-ms",
            f"{latency_ms:g}",
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The emulator's root URL (the OpenAI routes are below ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> EmulatorProcess:
        self._process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the child: SIGINT first (aiohttp shuts down cleanly), then SIGKILL."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"the emulator exited early: {self.command}")
            try:
                self.stats()
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise RuntimeError(f"the emulator did not answer within {_STARTUP_S:g}s")

    def stats(self) -> dict[str, Any]:
        """Return ``GET /emulator/stats``."""
        with urllib.request.urlopen(f"{self.url}/emulator/stats", timeout=10) as r:
            return dict(orjson.loads(r.read()))

    def reset(self) -> None:
        """Zero the request counts (and the per-request log, which would grow)."""
        self._post("/emulator/reset", {})

    def configure(self, **changes: Any) -> None:
        """Change the emulator's settings while it runs (e.g. ``latency_ms``)."""
        self._post("/emulator/config", changes)

    def cpu_s(self) -> float | None:
        """Return the CPU seconds the emulator has used so far."""
        return process_cpu_s(self.pid)

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
