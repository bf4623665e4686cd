"""Real sockets against a real standalone hub: a sidecar and a dashboard client speaking the wire protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from agentcom.protocol import codec
from agentcom.protocol import messages as m

WAIT_S = 20.0  # upper bound for anything to arrive; never a timing assertion


def ws_base(hub: Any) -> str:
    return hub.url.replace("http", "ws", 1)


class Client:
    """A WebSocket whose frames are read back as plain dicts."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws

    async def send(self, frame: Any) -> None:
        await self.ws.write_message(frame if isinstance(frame, str) else
                                    codec.encode(frame) if hasattr(frame, "__struct_config__") else json.dumps(frame))

    async def recv(self) -> dict[str, Any] | None:
        raw = await asyncio.wait_for(self.ws.read_message(), WAIT_S)
        return None if raw is None else json.loads(raw)

    async def until(self, frame_type: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame is None:
                raise AssertionError(f"socket closed before a {frame_type!r} frame")
            if frame["type"] == frame_type:
                return frame

    def close(self) -> None:
        self.ws.close()


async def dashboard(hub: Any, token: str | None = None, header: bool = False, **kwargs: Any) -> Client:
    token = hub.admin_token if token is None else token
    url = ws_base(hub) + "/agentcom/ws/dashboard"
    headers = {}
    if header:
        headers["Authorization"] = f"Bearer {token}"
    else:
        url += f"?token={token}"
    return Client(await websocket_connect(HTTPRequest(url, headers=headers), **kwargs))


async def sidecar(hub: Any, agent_id: str) -> Client:
    token = hub.create_agent_token(agent_id)
    client = Client(await websocket_connect(ws_base(hub) + "/agentcom/ws/sidecar"))
    await client.send(m.Identify(agent_id=agent_id, token=token, protocol_version=1))
    frame = await client.recv()
    assert frame is not None and frame["type"] == "identified", frame
    return client


def event(assign: dict[str, Any], seq: int, text: str, event_type: str = "stdout", **extra: Any) -> m.TaskProgress:
    ev = m.ExecutionEvent(event_type=event_type, text=text, timestamp=extra.pop("timestamp", 0), seq=seq, **extra)
    return m.TaskProgress(task_id=assign["task_id"], generation=assign["generation"], execution_event=ev)


def result(**overrides: Any) -> m.ExecutionResult:
    fields: dict[str, Any] = {"status": "success", "output": "ok", "model_used": "qwen2.5-coder:7b", "tokens_in": 1200,
                              "tokens_out": 340, "estimated_cost_usd": 0.0, "equivalent_claude_cost_usd": 0.0087,
                              "execution_ms": 900, "price_table": "test-1"}
    return m.ExecutionResult(**(fields | overrides))
