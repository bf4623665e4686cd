"""A hub service without a web server, a transport that can stall, and a sidecar driven through the core."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec

from agentcom.dashboard.session import DashboardFanout, DashboardSession
from agentcom.hub.service import HubService
from agentcom.protocol import messages as m


class Transport:
    """Collects frames; ``stall()`` makes every write stay in flight until ``release()``."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.stalled = False
        self._pending: list[asyncio.Future[None]] = []
        self._loop = asyncio.new_event_loop()

    def write(self, text: str | bytes) -> asyncio.Future[None]:
        self.frames.append(json.loads(text))
        future: asyncio.Future[None] = self._loop.create_future()
        if self.stalled:
            self._pending.append(future)
        else:
            future.set_result(None)
        return future

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def stall(self) -> None:
        self.stalled = True

    def release(self) -> None:
        self.stalled = False
        for future in self._pending:
            future.set_result(None)
        self._pending.clear()

    def take(self) -> list[dict[str, Any]]:
        frames, self.frames = self.frames, []
        return frames

    def dispose(self) -> None:
        self._loop.close()


def items(frames: list[dict[str, Any]], kind: str | None = None) -> list[dict[str, Any]]:
    """Every item of every ``events`` frame (optionally only one ``kind``)."""
    out = [item for f in frames if f["type"] == "events" for item in f["data"]]
    return [i for i in out if kind is None or i["kind"] == kind]


class Rig:
    """A HubService on a temp DB, its dashboard fan-out, and helpers to drive sidecars through the core."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        settings.setdefault("db_path", str(tmp_path / "dash-hub.db"))
        # dashboards are tested here, not routing: the explicit tier map assigns at once (model routing
        # would park each standard task for an endpoint nobody registers)
        settings.setdefault("routing", "explicit")
        self.hub = HubService(**settings)
        self.core = self.hub.core
        self.fanout = DashboardFanout(self.hub)
        self.sent: dict[str, list[msgspec.Struct]] = {}
        self.transports: list[Transport] = []

    def dashboard(self, **kwargs: Any) -> tuple[DashboardSession, Transport]:
        transport = Transport()
        session = DashboardSession(self.fanout, transport.write, transport.close, **kwargs)
        session.start()
        self.transports.append(transport)
        return session, transport

    def agent(self, agent_id: str = "agent-1") -> Any:
        frames: list[msgspec.Struct] = []
        self.sent[agent_id] = frames
        hello = m.Identify(agent_id=agent_id, token="t", protocol_version=1, name=agent_id.upper())
        return self.core.connect(hello, frames.append, lambda code, reason: None)

    def submit(self, description: str = "say hello", **fields: Any) -> str:
        return self.hub.submit_dict({"description": description, **fields}).task_id

    def assigned(self, agent_id: str) -> list[m.TaskAssign]:
        return [f for f in self.sent[agent_id] if isinstance(f, m.TaskAssign)]

    def start_task(self, agent: Any, **fields: Any) -> m.TaskAssign:
        """Submit a task (``fields`` of the submission), let it be assigned to ``agent`` and accepted."""
        task_id = self.submit(**fields)
        assign = next(a for a in self.assigned(agent.agent_id) if a.task_id == task_id)
        self.core.accepted(agent, m.TaskAccepted(task_id=task_id, generation=assign.generation))
        return assign

    def event(self, agent: Any, assign: m.TaskAssign, seq: int, text: str = "x", event_type: str = "stdout") -> None:
        ev = m.ExecutionEvent(event_type=event_type, text=text, timestamp=self.core.clock(), seq=seq)
        self.core.progress(agent, m.TaskProgress(task_id=assign.task_id, generation=assign.generation, execution_event=ev))

    def complete(self, agent: Any, assign: m.TaskAssign, **result: Any) -> None:
        fields: dict[str, Any] = {"status": "success", "output": "done", "model_used": "llama3.2", "tokens_in": 12,
                                  "tokens_out": 34, "estimated_cost_usd": 0.0, "equivalent_claude_cost_usd": 0.0021,
                                  "execution_ms": 40, "price_table": "test-1"}
        self.core.complete(agent, m.TaskComplete(task_id=assign.task_id, generation=assign.generation,
                                                 result=m.ExecutionResult(**(fields | result))))

    def close(self) -> None:
        for transport in self.transports:
            transport.dispose()
        self.hub.conn.close()
