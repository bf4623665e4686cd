"""A real in-process hub and a sidecar speaking the real wire protocol, for client and widget tests.

Nothing here stands in for an AgentCom component: the hub is ``agentcom.Hub`` on loopback,
the sidecar sends frames built from ``agentcom.protocol`` Structs over a real WebSocket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any, Awaitable, Callable

from tornado.websocket import WebSocketClientConnection, websocket_connect

from agentcom.hub import Hub
from agentcom.protocol import codec
from agentcom.protocol import messages as m

WAIT_S = 15.0  # generous upper bound for anything to arrive; never a timing assertion


async def start_hub(tmp_path: Any, **settings: Any) -> Hub:
    settings.setdefault("batch_interval_ms", 20)
    # the client and widgets are tested here, not routing: the explicit tier map assigns at once, where
    # model routing would hold each standard task fallback_wait_ms for an endpoint nobody registers
    settings.setdefault("routing", "explicit")
    hub = Hub(db_path=str(tmp_path / "hub.db"), port=0, **settings)
    return await hub.start()


async def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``check`` on the loop until it returns something truthy (bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Sidecar:
    """One agent connected to ``/agentcom/ws/sidecar``."""

    def __init__(self, ws: WebSocketClientConnection, agent_id: str) -> None:
        self.ws = ws
        self.agent_id = agent_id
        self._seq: dict[str, itertools.count[int]] = {}

    @classmethod
    async def connect(cls, hub: Hub, agent_id: str = "agent-1", **identify: Any) -> "Sidecar":
        token = hub.create_agent_token(agent_id)
        ws = await websocket_connect(hub.ws_url)
        side = cls(ws, agent_id)
        await side.send(m.Identify(agent_id=agent_id, token=token, protocol_version=1, **identify))
        await side.expect("identified")
        return side

    async def send(self, frame: m._Frame) -> None:
        await self.ws.write_message(codec.encode(frame))

    async def recv(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.read_message(), WAIT_S)
        if raw is None:
            raise ConnectionError(f"hub closed the sidecar socket: {self.ws.close_code} {self.ws.close_reason}")
        return json.loads(raw)

    async def expect(self, frame_type: str) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["type"] == frame_type, frame
        return frame

    async def take(self) -> dict[str, Any]:
        """Wait for the next assignment and accept it."""
        assign = await self.expect("task_assign")
        await self.send(m.TaskAccepted(task_id=assign["task_id"], generation=assign["generation"]))
        await self.expect("task_ack")
        return assign

    async def emit(self, assign: dict[str, Any], event_type: str, text: str, *, tokens: int | None = None,
                   model: str | None = None) -> None:
        seq = self._seq.setdefault(f"{assign['task_id']}:{assign['generation']}", itertools.count(1))
        event = m.ExecutionEvent(event_type=event_type, text=text, tokens_so_far=tokens, model=model,
                                 timestamp=int(time.time() * 1000), seq=next(seq))
        await self.send(m.TaskProgress(task_id=assign["task_id"], generation=assign["generation"], execution_event=event))

    async def complete(self, assign: dict[str, Any], **result: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "status": "success", "output": "done\n", "model_used": "llama3.2:3b", "tokens_in": 120, "tokens_out": 45,
            "estimated_cost_usd": 0.0, "equivalent_claude_cost_usd": 0.001035, "execution_ms": 250,
            "price_table": "test-1",
        }
        await self.send(m.TaskComplete(task_id=assign["task_id"], generation=assign["generation"],
                                       result=m.ExecutionResult(**(fields | result))))
        return await self.expect("task_ack")

    async def fail(self, assign: dict[str, Any], error: str = "boom", retryable: bool = False) -> dict[str, Any]:
        await self.send(m.TaskFailed(task_id=assign["task_id"], generation=assign["generation"], error=error,
                                     retryable=retryable))
        return await self.expect("task_ack")

    def close(self) -> None:
        self.ws.close()


async def run_task(hub: Hub, side: Sidecar, description: str, events: list[tuple[str, str]] = (),  # type: ignore[assignment]
                   submit: Callable[..., Awaitable[dict[str, Any]]] | None = None, **result: Any) -> str:
    """Submit (through ``submit`` or the hub itself), take, stream ``events`` and complete one task."""
    if submit is not None:
        task_id = (await submit(description, tier="trivial"))["task_id"]
    else:
        task_id = hub.submit_dict({"description": description, "complexity_tier": "trivial"}).task_id
    assign = await side.take()
    assert assign["task_id"] == task_id
    for event_type, text in events:
        await side.emit(assign, event_type, text, tokens=len(text), model="llama3.2:3b")
    await side.complete(assign, **result)
    return task_id
