"""The three services as the image runs them: ``python -m mdgw ...`` subprocesses with their
settings in the environment, logs (JSON) in a file, and waits on conditions while the
process lives (a process that exits fails the wait at once, with its log)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[2] / "src"
_POLL_S = 0.1
T = TypeVar("T")


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def until(self, what: str, probe: Callable[[], T | None]) -> T:
        """``probe()`` until it returns something other than None; fails if the process
        exits first. No deadline of its own: pytest-timeout bounds a test that hangs."""
        while True:
            value = probe()
            if value is not None:
                return value
            if self.process.poll() is not None:
                pytest.fail(
                    f"{self.name} exited ({self.process.returncode}) before {what}:\n"
                    f"{self.log()[-4000:]}"
                )
            time.sleep(_POLL_S)


@contextmanager
def running(
    name: str, args: list[str], env: Mapping[str, str], tmp_path: Path
) -> Iterator[Service]:
    """``python -m mdgw ARGS`` with ``env`` on top of ours; SIGTERM (then SIGKILL) at the end."""
    log_path = tmp_path / f"{name}.log"
    environment = {
        **os.environ,
        "PYTHONPATH": str(SOURCE_ROOT),
        "LOG_FORMAT": "json",
        **env,
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "mdgw", *args],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    service = Service(name, process, log_path)
    try:
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def scrape(port: int) -> str | None:
    """The /metrics text, or None while the endpoint does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
