"""A test sidecar and an admin HTTP client that talk to a real hub over loopback.

Frames are built with ``agentcom.protocol`` Structs (or sent raw when a test needs a bad
one) and read back as plain JSON dicts, exactly what a sidecar on the wire would see.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from agentcom.protocol import codec
from agentcom.protocol import messages as m

WAIT_S = 10.0  # generous upper bound for anything to arrive; never a timing assertion


def result(status: str = "success", **overrides: Any) -> m.ExecutionResult:
    fields: dict[str, Any] = {
        "status": status, "output": "ok\n", "model_used": "llama3.2", "tokens_in": 10, "tokens_out": 20,
        "estimated_cost_usd": 0.001, "equivalent_claude_cost_usd": 0.004, "execution_ms": 7, "price_table": "test-1",
    }
    return m.ExecutionResult(**(fields | overrides))


class Sidecar:
    """One WebSocket connection to ``/agentcom/ws/sidecar``."""

    def __init__(self, ws: WebSocketClientConnection, agent_id: str | None = None) -> None:
        self.ws = ws
        self.agent_id = agent_id
        self._heartbeat_pongs = 0  # pongs still due for heartbeat pings; skipped by recv

    async def send(self, frame: msgspec.Struct | dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, msgspec.Struct):
            raw: str | bytes = codec.encode(frame)
        elif isinstance(frame, dict):
            raw = json.dumps(frame)
        else:
            raw = frame
        await self.ws.write_message(raw, binary=isinstance(raw, bytes))

    async def recv(self) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), WAIT_S)
            if raw is None:
                raise ConnectionError(f"socket closed: {self.ws.close_code} {self.ws.close_reason}")
            frame = json.loads(raw)
            codec.sidecar_outbound_decoder.decode(raw)  # everything the hub sends is a valid frame
            if frame["type"] == "pong" and self._heartbeat_pongs:
                self._heartbeat_pongs -= 1
                continue
            return frame

    async def expect(self, frame_type: str, **fields: Any) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["type"] == frame_type, frame
        for key, value in fields.items():
            assert frame.get(key) == value, (key, frame)
        return frame

    async def error(self, code: str) -> dict[str, Any]:
        return await self.expect("error", error=code)

    async def nothing_else(self) -> None:
        """Nothing was sent before the answer to this ping (frames keep their order on a socket)."""
        await self.send(m.Ping())
        await self.expect("pong")

    async def closed(self) -> tuple[int | None, str | None]:
        """Read until the hub closes the socket; the close code and reason."""
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), WAIT_S)
            if raw is None:
                return self.ws.close_code, self.ws.close_reason

    # ---------------------------------------------------------------- task frames

    async def assignment(self, heartbeat_s: float | None = None) -> dict[str, Any]:
        """The next ``task_assign``; with ``heartbeat_s``, ping meanwhile as a live sidecar does."""
        if heartbeat_s is None:
            return await self.expect("task_assign")

        async def beat() -> None:
            while True:
                self._heartbeat_pongs += 1
                await self.send(m.Ping())
                await asyncio.sleep(heartbeat_s)

        beating = asyncio.ensure_future(beat())
        try:
            return await self.expect("task_assign")
        finally:
            beating.cancel()

    async def accept(self, assign: dict[str, Any]) -> None:
        await self.send(m.TaskAccepted(task_id=assign["task_id"], generation=assign["generation"]))
        await self.expect("task_ack", task_id=assign["task_id"], status="accepted")

    async def complete(self, assign: dict[str, Any], ack: str | None = "complete", **res: Any) -> None:
        await self.send(m.TaskComplete(task_id=assign["task_id"], generation=assign["generation"], result=result(**res)))
        if ack:
            await self.expect("task_ack", task_id=assign["task_id"], status=ack)

    async def fail(self, assign: dict[str, Any], ack: str, *, retryable: bool = True, error: str = "boom") -> None:
        await self.send(m.TaskFailed(task_id=assign["task_id"], generation=assign["generation"], error=error,
                                     retryable=retryable, result=result("failed")))
        await self.expect("task_ack", task_id=assign["task_id"], status=ack)

    async def run(self, assign: dict[str, Any]) -> None:
        await self.accept(assign)
        await self.complete(assign)

    def close(self) -> None:
        self.ws.close()


async def open_socket(hub: Any, **kwargs: Any) -> Sidecar:
    return Sidecar(await websocket_connect(hub.ws_url, **kwargs))


async def identify(hub: Any, agent_id: str = "agent-1", token: str | None = None, **fields: Any) -> Sidecar:
    """Connect, identify with a (fresh) token and read ``identified``."""
    sidecar = await open_socket(hub)
    sidecar.agent_id = agent_id
    await sidecar.send(m.Identify(agent_id=agent_id, token=token or hub.create_agent_token(agent_id),
                                  protocol_version=1, **fields))
    await sidecar.expect("identified", agent_id=agent_id, protocol_version=1,
                         heartbeat_ms=hub.settings.heartbeat_ms, lease_ms=hub.settings.lease_ms)
    return sidecar


class Api:
    """The admin's HTTP client: ``status, body = await api.call("GET", "/agentcom/api/tasks")``."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.client = AsyncHTTPClient(force_instance=True)

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = "admin",
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = await self.fetch(method, path, body, token=token, raw=raw, headers=headers)
        kind = response.headers.get("Content-Type", "")
        if kind.startswith("application/json"):
            return response.code, json.loads(response.body)
        return response.code, response.body

    async def fetch(self, method: str, path: str, body: Any = None, *, token: str | None = "admin",
                    raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {self.hub.admin_token if token == 'admin' else token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        request = HTTPRequest(self.hub.url + path, method=method, body=data, headers=hdrs,
                              allow_nonstandard_methods=True, request_timeout=WAIT_S)
        return await self.client.fetch(request, raise_error=False)

    async def submit(self, **body: Any) -> str:
        status, answer = await self.call("POST", "/agentcom/api/tasks", {"description": "work", **body})
        assert status == 201, answer
        return str(answer["task_id"])

    async def task(self, task_id: str) -> dict[str, Any]:
        status, answer = await self.call("GET", f"/agentcom/api/tasks/{task_id}")
        assert status == 200, answer
        return dict(answer)

    def close(self) -> None:
        self.client.close()


async def eventually(predicate: Any, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy (for things driven by the hub's timers); fail after WAIT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)
