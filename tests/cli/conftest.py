"""The ``agentcom`` command run as a real subprocess, with a clean environment and its own HOME."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

URL_RE = re.compile(r"listening on (?P<url>http://\S+)")
START_S = 30.0


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCOM_")}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def agentcom(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentcom", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (and proof that there is no traceback)."""
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agentcom"), lines[0]
    return lines[0]


class HubProcess:
    """``agentcom hub --db DB --port 0 ...`` in a child process; ``url`` parsed from what it prints."""

    def __init__(self, db: Path, env: dict[str, str], *extra: str) -> None:
        self.db = db
        # stderr (access logs) goes to a file: a pipe nobody reads could fill up and stall the hub
        self.stderr_path = db.parent / f"{db.name}.{time.monotonic_ns()}.stderr"
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agentcom", "hub", "--db", str(db), "--port", "0", *extra],
                env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.output: list[str] = []
        self.url = self._read_url()

    def _read_url(self) -> str:
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = URL_RE.search(line)
            if match:
                selector.close()
                return match.group("url")
        selector.close()
        self.proc.kill()
        raise AssertionError(f"hub did not start: {self.output} {self.stderr_path.read_text()}")

    @property
    def admin_token(self) -> str:
        return self.db.with_suffix(".admin_token").read_text().strip()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        return self.proc.returncode, "".join(self.output) + out, self.stderr_path.read_text()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(home)


@pytest.fixture
def hub_process(cli_env: dict[str, str], anyio_backend: str) -> Iterator[Callable[..., HubProcess]]:
    """``hub_process(db, "--lease-ms", "300")``: a standalone hub, SIGKILLed at teardown if still running."""
    started: list[HubProcess] = []

    def start(db: Path, *extra: str) -> HubProcess:
        hub = HubProcess(db, cli_env, *extra)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        if hub.proc.poll() is None:
            hub.proc.send_signal(signal.SIGKILL)
            hub.proc.wait(timeout=30)
        if hub.proc.stdout is not None and not hub.proc.stdout.closed:
            hub.proc.stdout.close()
