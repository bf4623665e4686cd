"""Random workloads over real sockets, checking after every step that memory, store and sidecars agree."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agentcom import Hub
from agentcom.protocol import messages as m
from agentcom.store.tasks import OPEN_STATES

from .wire import Sidecar, identify, result

pytestmark = pytest.mark.anyio


class Peer:
    """A sidecar and what it believes it holds (task_id -> generation)."""

    def __init__(self, hub: Hub, agent_id: str, token: str, concurrency: int) -> None:
        self.hub, self.agent_id, self.token, self.concurrency = hub, agent_id, token, concurrency
        self.sidecar: Sidecar | None = None
        self.held: dict[str, int] = {}

    async def connect(self, resume: bool) -> None:
        entries = [m.ResumeEntry(task_id=t, generation=g) for t, g in self.held.items()] if resume else []
        self.sidecar = await identify(self.hub, self.agent_id, self.token, concurrency=self.concurrency,
                                      capabilities=["gpu"] if self.agent_id.endswith("0") else [], resume=entries)
        if not resume:
            self.held.clear()

    async def sync(self) -> list[dict[str, Any]]:
        """Everything the hub sent until now (a ping's pong marks the end); updates ``held``."""
        assert self.sidecar is not None
        await self.sidecar.send(m.Ping())
        frames = []
        while True:
            frame = await self.sidecar.recv()
            if frame["type"] == "pong":
                return frames
            frames.append(frame)
            if frame["type"] == "task_assign":
                self.held[frame["task_id"]] = frame["generation"]
            elif frame["type"] in ("task_cancelled", "task_reassign"):
                self.held.pop(frame["task_id"], None)
            elif frame["type"] == "task_continue":
                assert self.held.get(frame["task_id"]) == frame["generation"]


def _check(hub: Hub, peers: list[Peer]) -> None:
    core = hub.core
    assert core.counts == core.store.counts()
    stored = {t.task_id: t for t in core.store.load_open()}
    assert set(stored) == set(core.tasks)
    for task_id, task in core.tasks.items():
        assert task.status in OPEN_STATES
        assert (stored[task_id].status, stored[task_id].generation) == (task.status, task.generation)
        if task.status == "queued":
            assert task.assigned_to is None
        else:
            agent = core.agents[task.assigned_to]  # type: ignore[index]
            assert agent.tasks.get(task_id) == task.status
    assert core._free == {a.agent_id: a for a in core.agents.values() if a.online and len(a.tasks) < a.concurrency}
    for agent in core.agents.values():
        assert len(agent.tasks) <= agent.concurrency
        assert all(core.tasks[t].assigned_to == agent.agent_id for t in agent.tasks)
    for peer in peers:
        for task_id, generation in peer.held.items():
            task = core.tasks[task_id]
            assert (task.assigned_to, task.generation) == (peer.agent_id, generation)
    twice = core.store.conn.execute(
        "SELECT task_id FROM executions WHERE status='success' GROUP BY task_id HAVING count(*) > 1").fetchall()
    assert twice == []
    assert all(core._is_ready(t) for t in list(core.ready._members))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_workload_keeps_every_view_consistent(make_hub, seed: int) -> None:
    rng = random.Random(seed)
    hub = await make_hub(max_attempts=2)
    peers = [Peer(hub, f"agent-{i}", hub.create_agent_token(f"agent-{i}"), concurrency=1 + i % 2) for i in range(3)]
    for peer in peers:
        await peer.connect(resume=False)
    submitted: list[str] = []
    for step in range(80):
        choice = rng.random()
        busy = [p for p in peers if p.held]
        if choice < 0.3 or not busy:
            body: dict[str, Any] = {"description": f"step {step}", "priority": rng.choice(m.PRIORITIES)}
            if submitted and rng.random() < 0.2:
                body["depends_on"] = [rng.choice(submitted)]
            if rng.random() < 0.15:
                body["needed_capabilities"] = ["gpu"]
            submitted.append(hub.submit_dict(body).task_id)
        elif choice < 0.4 and submitted:
            task_id = rng.choice(submitted)
            if task_id in hub.core.tasks:
                hub.core.cancel(task_id)
            elif hub.core.task_detail(task_id)["status"] != "completed":
                hub.core.retry(task_id)
        elif choice < 0.45:
            peer = rng.choice(peers)
            assert peer.sidecar is not None
            peer.sidecar.close()
            await peer.sidecar.closed()
            await peer.connect(resume=rng.random() < 0.7)
        else:
            peer = rng.choice(busy)
            task_id, generation = rng.choice(sorted(peer.held.items()))
            action = rng.choice(["accept", "complete", "complete", "fail", "fatal", "reject", "progress"])
            frame: Any = {
                "accept": m.TaskAccepted(task_id=task_id, generation=generation),
                "complete": m.TaskComplete(task_id=task_id, generation=generation, result=result()),
                "fail": m.TaskFailed(task_id=task_id, generation=generation, error="boom"),
                "fatal": m.TaskFailed(task_id=task_id, generation=generation, error="bad", retryable=False),
                "reject": m.TaskRejected(task_id=task_id, generation=generation, reason="busy"),
                "progress": m.TaskProgress(task_id=task_id, generation=generation, progress=50),
            }[action]
            assert peer.sidecar is not None
            await peer.sidecar.send(frame)
            if action not in ("accept", "progress"):
                peer.held.pop(task_id)
        for peer in peers:
            frames = await peer.sync()
            assert not [f for f in frames if f["type"] == "error"], (step, frames)
        _check(hub, peers)
    for peer in peers:
        assert peer.sidecar is not None
        peer.sidecar.close()
