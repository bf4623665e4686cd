"""``agentcom sidecar`` failing the way a user can act on: one line, non-zero exit, no traceback."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from pathlib import Path

import pytest

from agentcom import cli
from agentcom.sidecar.cli import add_arguments, build_sidecar

from .harness import e2e

pytestmark = pytest.mark.usefixtures("anyio_backend")


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.anyio
async def test_a_bad_token_is_fatal_with_one_line(tmp_path: Path) -> None:
    async with e2e(tmp_path) as env:
        env.hub.create_agent_token("agent-1")
        sidecar = await env.sidecar("agent-1", token="not-the-token")
        assert await sidecar.wait() == 3
        line = one_line(sidecar.output())
        assert line.startswith("agentcom sidecar: error:") and "token" in line


@pytest.mark.anyio
async def test_an_unreachable_hub_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentcom", "sidecar", "--hub", f"http://127.0.0.1:{port}", "--agent-id", "a1",
        "--token", "t", "--state-dir", str(tmp_path / "state"), "--connect-timeout", "0.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "cannot reach the hub" in one_line(out.decode())


@pytest.mark.anyio
async def test_a_missing_argument_is_one_line_from_the_real_command(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentcom", "sidecar", "--agent-id", "a1", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert one_line(out.decode()) == "agentcom sidecar: error: --hub is required (or set AGENTCOM_HUB)"


@pytest.mark.parametrize(("args", "expected"), [
    (("--hub", "http://127.0.0.1:1", "--agent-id", "a"), "--token is required (or set AGENTCOM_TOKEN)"),
    (("--hub", "ftp://x", "--agent-id", "a", "--token", "t"), "hub URL must look like"),
    (("--hub", "http://127.0.0.1:1", "--agent-id", "a", "--token", "t", "--concurrency", "0"), "--concurrency must be between 1 and 64"),
    (("--hub", "http://127.0.0.1:1", "--agent-id", "a", "--token", "t", "--workdir", "/nonexistent/dir"),
     "is not a directory"),
])
def test_bad_arguments_are_one_line(args: tuple[str, ...], expected: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("AGENTCOM_HUB", "AGENTCOM_AGENT_ID", "AGENTCOM_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["sidecar", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert expected in one_line(captured.err)


def test_the_environment_fills_missing_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCOM_HUB", "http://127.0.0.1:9/")
    monkeypatch.setenv("AGENTCOM_AGENT_ID", "env-agent")
    monkeypatch.setenv("AGENTCOM_TOKEN", "env-token")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sidecar = build_sidecar(parser.parse_args(["--state-dir", str(tmp_path), "--capability", "gpu"]))
    assert (sidecar.url, sidecar.agent_id, sidecar.capabilities) == (
        "ws://127.0.0.1:9/agentcom/ws/sidecar", "env-agent", ["gpu"])
