"""A real hub in the test's loop, real sidecar subprocesses, and the hub's HTTP API.

Nothing here imitates an AgentCom component: the hub is ``agentcom.Hub`` over loopback,
the sidecars are ``python -m agentcom sidecar`` processes, and tests observe through the
HTTP API (and the hub's own pub/sub for streamed events).

Set-up is an async context manager used inside each test (``async with e2e(tmp_path) as env``)
rather than async fixtures: pytest-jupyter's plugin runs coroutine tests in its own loop,
so a server started by an async fixture would live in a loop the test never runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from agentcom.hub import Hub
from agentcom.standin import AnthropicStandin, OllamaStandin

T = TypeVar("T")

# short clocks so reconnects, leases and reclaims happen within a test
HUB_SETTINGS: dict[str, Any] = {"heartbeat_ms": 200, "lease_ms": 2_500, "batch_interval_ms": 50}


async def eventually(probe: Callable[[], Awaitable[T | None] | T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; the timeout is a safety net, not a measurement."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def start_hub(db_path: Path, port: int = 0, **overrides: Any) -> Hub:
    settings = {**HUB_SETTINGS, **overrides}
    return await Hub(db_path=str(db_path), port=port, **settings).start()


@dataclass
class Api:
    """The hub's HTTP API with the admin token."""

    url: str
    token: str
    client: AsyncHTTPClient = field(default_factory=AsyncHTTPClient)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self.client.fetch(
                self.url + path, method=method, headers={"Authorization": f"Bearer {self.token}"},
                body=None if body is None else json.dumps(body), allow_nonstandard_methods=True,
            )
        except HTTPClientError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.response.body if exc.response else ''}") from None
        return json.loads(response.body)

    async def submit(self, description: str, **fields: Any) -> str:
        answer = await self.call("POST", "/agentcom/api/tasks", {"description": description, **fields})
        return answer["task_id"]

    async def shell(self, command: str, **fields: Any) -> str:
        metadata = {"shell_command": command, **fields.pop("metadata", {})}
        return await self.submit(f"run {command[:60]}", complexity_tier="trivial", metadata=metadata, **fields)

    async def task(self, task_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/agentcom/api/tasks/{task_id}")

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/agentcom/api/tasks/{task_id}/cancel", {})

    async def executions(self, task_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.call("GET", "/agentcom/api/executions")
        return [r for r in rows if task_id is None or r["task_id"] == task_id]

    async def status_is(self, task_id: str, *statuses: str) -> dict[str, Any] | None:
        task = await self.task(task_id)
        return task if task["status"] in statuses else None


class SidecarProcess:
    """``python -m agentcom sidecar`` as a child process, output captured in files."""

    def __init__(self, hub_url: str, agent_id: str, token: str, workdir: Path, *, state_dir: Path | None = None,
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.hub_url, self.agent_id, self.token = hub_url, agent_id, token
        self.workdir = workdir
        self.state_dir = state_dir or workdir / f"state-{agent_id}"
        self.args = args
        self.env = {**os.environ, "ANTHROPIC_API_KEY": "sk-test-standin", **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.agent_id}.{self.runs}.log"

    async def start(self) -> SidecarProcess:
        self.runs += 1
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agentcom", "sidecar", "--hub", self.hub_url, "--agent-id", self.agent_id,
                "--token", self.token, "--workdir", str(self.workdir), "--state-dir", str(self.state_dir),
                "--reconnect-max", "0.5", "--connect-timeout", "5", "-v", *self.args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
            )
        return self

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.send_signal(signal.SIGTERM)
        try:
            await self.wait(10)
        except asyncio.TimeoutError:
            self.send_signal(signal.SIGKILL)
            await self.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Env:
    """One test's world: a hub, its API, and the sidecars and stand-ins started for it."""

    def __init__(self, tmp_path: Path, hub: Hub, stack: AsyncExitStack) -> None:
        self.tmp_path = tmp_path
        self.hub = hub
        self.api = Api(hub.url, hub.admin_token)
        self._stack = stack
        self.sidecars: list[SidecarProcess] = []
        self.workdir = tmp_path / "work"
        self.workdir.mkdir(exist_ok=True)

    async def sidecar(self, agent_id: str = "agent-1", *args: str, token: str | None = None,
                      **kwargs: Any) -> SidecarProcess:
        process = SidecarProcess(self.hub.url, agent_id, token or self.hub.create_agent_token(agent_id),
                                 self.workdir, args=args, **kwargs)
        self.sidecars.append(process)
        return await process.start()

    async def ollama(self) -> OllamaStandin:
        return await self._stack.enter_async_context(OllamaStandin(chunk_delay=0.005))

    async def anthropic(self) -> AnthropicStandin:
        return await self._stack.enter_async_context(AnthropicStandin(chunk_delay=0.005))

    async def stop_sidecars(self) -> None:
        for process in self.sidecars:
            await process.stop()

    def record_events(self) -> list[dict[str, Any]]:
        """Every execution event the hub publishes from now on."""
        events: list[dict[str, Any]] = []
        self.hub.core.pubsub.subscribe(lambda topic, message: events.append(message), ("execution",))
        return events


@asynccontextmanager
async def e2e(tmp_path: Path, **hub_settings: Any) -> AsyncIterator[Env]:
    """Start a hub; on exit stop every sidecar (SIGTERM, then SIGKILL), the stand-ins and the hub."""
    async with AsyncExitStack() as stack:
        hub = await start_hub(tmp_path / "hub.db", **hub_settings)
        stack.push_async_callback(hub.stop)
        env = Env(tmp_path, hub, stack)
        stack.push_async_callback(env.stop_sidecars)
        yield env
