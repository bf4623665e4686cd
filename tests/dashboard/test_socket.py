"""The dashboard socket of a real standalone hub over loopback: auth, live stream, commands, a stalled client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.websocket import WebSocketClosedError

from agentcom import Hub
from agentcom.protocol import messages as m

from .wire import dashboard, event, result, sidecar

pytestmark = pytest.mark.anyio


@pytest.fixture
async def make_hub(tmp_path: Path, anyio_backend: str) -> AsyncIterator[Callable[..., Awaitable[Hub]]]:
    started: list[Hub] = []

    async def make(**overrides: Any) -> Hub:
        overrides.setdefault("db_path", str(tmp_path / f"dash-sock-{len(started)}.db"))
        overrides.setdefault("routing", "explicit")  # dashboards under test, not routing (see fakes.Rig)
        hub = Hub(host="127.0.0.1", port=0, **overrides)
        await hub.start()
        started.append(hub)
        return hub

    yield make
    for hub in started:
        if hub._server is not None:
            await hub.stop()


async def test_refuses_dashboards_without_the_admin_token(make_hub: Callable[..., Awaitable[Hub]]) -> None:
    hub = await make_hub()
    for token in ("", "aca_wrong"):
        with pytest.raises(HTTPClientError) as info:
            await dashboard(hub, token=token)
        assert info.value.code == 401
    for header in (False, True):
        client = await dashboard(hub, header=header)
        assert (await client.recv() or {})["type"] == "snapshot"
        client.close()


async def test_metrics_need_the_admin_token(make_hub: Callable[..., Awaitable[Hub]]) -> None:
    hub = await make_hub()
    http = AsyncHTTPClient()
    refused = await http.fetch(hub.url + "/agentcom/metrics", raise_error=False)
    assert refused.code == 401
    answer = await http.fetch(hub.url + "/agentcom/metrics", headers={"Authorization": f"Bearer {hub.admin_token}"})
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert b"agentcom_tasks{state=\"queued\"} 0.0" in answer.body


async def test_live_stream_from_a_sidecar_and_commands(make_hub: Callable[..., Awaitable[Hub]]) -> None:
    hub = await make_hub(batch_interval_ms=20)
    watcher = await dashboard(hub)
    assert (await watcher.recv() or {})["type"] == "snapshot"
    agent = await sidecar(hub, "builder-1")
    task_id = hub.submit_dict({"description": "print the answer"}).task_id
    assign = await agent.until("task_assign")
    await agent.send(m.TaskAccepted(task_id=task_id, generation=assign["generation"]))
    for seq, (kind, text) in enumerate([("status", "starting"), ("stdout", "42\n"), ("stderr", "warn\n")]):
        await agent.send(event(assign, seq, text, kind))
    await agent.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))
    assert (await agent.until("task_ack"))["status"] == "accepted"
    assert (await agent.until("task_ack"))["status"] == "complete"
    seen: list[dict[str, Any]] = []
    while not any(i.get("kind") == "completion" for i in seen):
        frame = await watcher.until("events")
        seen.extend(frame["data"])
    events = [i for i in seen if i["kind"] == "execution_event"]
    assert [(e["seq"], e["event_type"], e["text"]) for e in events] == [
        (0, "status", "starting"), (1, "stdout", "42\n"), (2, "stderr", "warn\n")]
    completion = next(i["completion"] for i in seen if i["kind"] == "completion")
    assert completion["execution_meta"]["equivalent_claude_cost_usd"] == pytest.approx(0.0087)
    await watcher.send({"type": "retry_task", "task_id": task_id})
    error = await watcher.until("error")
    assert error["error"] == "invalid_state"
    other = hub.submit_dict({"description": "never mind"}).task_id
    await watcher.send({"type": "cancel_task", "task_id": other})
    assert await watcher.until("command_result") == {"type": "command_result", "command": "cancel_task",
                                                     "task_id": other, "status": "cancelled"}
    watcher.close()
    agent.close()


async def test_a_stalled_dashboard_slows_neither_the_sidecar_nor_another_dashboard(
        make_hub: Callable[..., Awaitable[Hub]]) -> None:
    total, chunk, size = 1_200, 30, 32 * 1024        # ~40 MB of output: far more than socket buffers hold
    hub = await make_hub(batch_interval_ms=20, dashboard_buffer=64)
    stalled = await dashboard(hub)
    assert (await stalled.recv() or {})["type"] == "snapshot"
    # ... and from now on it reads nothing (Tornado's client stops reading the socket while a message waits)
    live = await dashboard(hub)
    assert (await live.recv() or {})["type"] == "snapshot"
    agent = await sidecar(hub, "builder-1")
    task_id = hub.submit_dict({"description": "print a lot"}).task_id
    assign = await agent.until("task_assign")
    await agent.send(m.TaskAccepted(task_id=task_id, generation=assign["generation"]))

    live_seqs: list[int] = []
    live_dropped: list[dict[str, Any]] = []
    progressed = asyncio.Condition()

    async def read_live() -> None:
        while True:
            frame = await live.recv()
            assert frame is not None
            if frame["type"] == "dropped":
                live_dropped.append(frame)
            for item in frame.get("data", []) if frame["type"] == "events" else []:
                if item["kind"] == "execution_event":
                    live_seqs.append(item["seq"])
                elif item["kind"] == "completion":
                    return
            async with progressed:
                progressed.notify_all()

    reader = asyncio.ensure_future(read_live())
    text = "x" * size
    for start in range(0, total, chunk):
        for seq in range(start, start + chunk):
            await agent.send(event(assign, seq, text, "token"))
        async with progressed:   # lockstep with the live dashboard only, never with the stalled one
            await progressed.wait_for(lambda: len(live_seqs) >= start + chunk or reader.done())
    await agent.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))
    acks = [await agent.until("task_ack"), await agent.until("task_ack")]
    assert [a["status"] for a in acks] == ["accepted", "complete"]   # the sidecar was served throughout
    await asyncio.wait_for(reader, 20)

    assert live_seqs == list(range(total)) and live_dropped == []
    sessions = list(hub.dashboard_fanout.sessions)
    dropped = sorted(s.dropped_total for s in sessions)
    assert dropped[0] == 0 and dropped[1] > 0                    # only the stalled one lost events

    # The stalled dashboard resumes: what it gets is in order, with the loss announced.
    seqs: list[int] = []
    announced = 0
    while not seqs or seqs[-1] != total - 1:
        frame = await stalled.recv()
        assert frame is not None
        if frame["type"] == "dropped":
            announced += frame["count"]
        elif frame["type"] == "events":
            seqs.extend(i["seq"] for i in frame["data"] if i["kind"] == "execution_event")
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert announced == total - len(seqs) == dropped[1]
    reader.cancel()
    for client in (stalled, live, agent):
        client.close()


async def test_hub_stop_closes_dashboards(make_hub: Callable[..., Awaitable[Hub]]) -> None:
    hub = await make_hub()
    client = await dashboard(hub)
    assert (await client.recv() or {})["type"] == "snapshot"
    await hub.stop()
    assert await client.recv() is None
    with pytest.raises(WebSocketClosedError):
        await client.send({"type": "ping"})


async def test_oversized_frames_close_with_1009(make_hub: Callable[..., Awaitable[Hub]]) -> None:
    hub = await make_hub(max_frame_bytes=4096)
    client = await dashboard(hub)
    assert (await client.recv() or {})["type"] == "snapshot"
    await client.send({"type": "subscribe", "task_id": "x" * 8000})
    assert await client.recv() is None
    assert client.ws.close_code == 1009


async def test_snapshot_requests_beyond_their_budget_are_refused_without_closing(
        make_hub: Callable[..., Awaitable[Hub]]) -> None:
    """A dashboard asking for snapshots in a loop gets ``rate_limited``; the socket stays usable."""
    hub = await make_hub(batch_interval_ms=20)
    client = await dashboard(hub)
    assert (await client.recv() or {})["type"] == "snapshot"
    for _ in range(6):
        await client.send({"type": "request_snapshot"})
    refusal = await client.until("error")
    assert refusal["error"] == "rate_limited" and "request_snapshot" in refusal["message"]
    assert refusal["retry_after_ms"] >= 1
    await client.send({"type": "ping"})
    assert (await client.until("pong"))["type"] == "pong"   # still open, not counted as abuse
    assert client.ws.close_code is None
