"""Connected (and recently disconnected) sidecars as the hub sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec

Send = Callable[[msgspec.Struct], None]


@dataclass(eq=False)
class Agent:
    agent_id: str
    name: str | None
    capabilities: frozenset[str]
    ollama_url: str | None
    models: list[str]
    concurrency: int
    connected_at: int
    last_seen: int
    send: Send
    close: Callable[[int, str], None]
    online: bool = True
    last_assigned_at: int = 0
    tasks: dict[str, str] = field(default_factory=dict)  # task_id -> "assigned" | "working"

    @property
    def free_slots(self) -> int:
        return self.concurrency - len(self.tasks) if self.online else 0

    @property
    def state(self) -> str:
        if not self.online:
            return "offline"
        if not self.tasks:
            return "idle"
        return "working" if "working" in self.tasks.values() else "assigned"

    def view(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "state": self.state,
            "current_task_id": next(iter(self.tasks), None),
            "current_task_ids": list(self.tasks),
            "capabilities": sorted(self.capabilities),
            "connected_at": self.connected_at,
            "last_seen": self.last_seen,
            "ollama_url": self.ollama_url,
            "models": self.models,
            "concurrency": self.concurrency,
        }


def _offline_send(frame: msgspec.Struct) -> None:
    """Frames for an agent that is away are dropped; it resumes with ``resume``."""


def _offline_close(code: int, reason: str) -> None:
    pass


def placeholder(agent_id: str, now: int) -> Agent:
    """An agent known only from the store (its tasks survived a hub restart)."""
    return Agent(agent_id=agent_id, name=None, capabilities=frozenset(), ollama_url=None, models=[], concurrency=1,
                 connected_at=now, last_seen=now, send=_offline_send, close=_offline_close, online=False)
