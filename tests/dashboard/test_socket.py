"""The dashboard socket of a real standalone hub over loopback: auth, live stream, commands, a stalled client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
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


def scrape(text: str, name: str) -> float:
    """One unlabelled sample of a Prometheus text exposition."""
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]
    assert len(values) == 1, (name, values)
    return values[0]


async def test_dropped_events_metric_counts_what_stalled_dashboards_lost(
        make_hub: Callable[..., Awaitable[Hub]]) -> None:
    """``agentcom_dashboard_dropped_events_total`` equals the losses the dashboards are told of, and is > 0."""
    total, size = 800, 32 * 1024                    # ~26 MB of output: more than loopback socket buffers hold
    hub = await make_hub(batch_interval_ms=20, dashboard_buffer=64, progress_rate_limit=1_000_000)
    stalled = await dashboard(hub)
    assert (await stalled.recv() or {})["type"] == "snapshot"   # ... and it reads nothing more for now
    live = await dashboard(hub)
    assert (await live.recv() or {})["type"] == "snapshot"
    agent = await sidecar(hub, "builder-1")
    task_id = hub.submit_dict({"description": "print a lot"}).task_id
    assign = await agent.until("task_assign")
    await agent.send(m.TaskAccepted(task_id=task_id, generation=assign["generation"]))

    async def read(client: Any) -> tuple[int, list[int]]:
        """Until the task's completion: the dropped counts announced, and the seqs received."""
        announced, seqs = 0, []
        while True:
            frame = await client.recv()
            assert frame is not None
            if frame["type"] == "dropped":
                announced += frame["count"]
            for item in frame.get("data", []) if frame["type"] == "events" else []:
                if item["kind"] == "execution_event":
                    seqs.append(item["seq"])
                elif item["kind"] == "completion":
                    return announced, seqs

    live_reader = asyncio.ensure_future(read(live))  # it may fall behind and lose events too: counted as well
    text = "x" * size
    for seq in range(total):
        await agent.send(event(assign, seq, text, "token"))
    await agent.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))
    assert [(await agent.until("task_ack"))["status"] for _ in range(2)] == ["accepted", "complete"]
    live_dropped, live_seqs = await asyncio.wait_for(live_reader, 60)   # every event is published by now

    http = AsyncHTTPClient()
    answer = await http.fetch(hub.url + "/agentcom/metrics", headers={"Authorization": f"Bearer {hub.admin_token}"})
    metric = scrape(answer.body.decode(), "agentcom_dashboard_dropped_events_total")

    stalled_dropped, stalled_seqs = await asyncio.wait_for(read(stalled), 60)   # it resumes reading
    assert stalled_dropped > 0 and stalled_dropped == total - len(stalled_seqs)
    assert live_dropped == total - len(live_seqs)
    assert metric == stalled_dropped + live_dropped > 0
    again = await http.fetch(hub.url + "/agentcom/metrics", headers={"Authorization": f"Bearer {hub.admin_token}"})
    assert scrape(again.body.decode(), "agentcom_dashboard_dropped_events_total") == metric
    for client in (stalled, live, agent):
        client.close()


async def test_deltas_and_events_wait_for_the_batch_and_arrive_coalesced(
        make_hub: Callable[..., Awaitable[Hub]]) -> None:
    """With a batch interval longer than the test, nothing after the snapshot is written until a command
    forces a flush; then the command's answer comes first and every change since is in one ``events``
    frame, each task once, in its latest state (no wall-clock bound: the order of frames says it all)."""
    hub = await make_hub(batch_interval_ms=3_600_000)
    watcher = await dashboard(hub)
    assert (await watcher.recv() or {})["type"] == "snapshot"
    agent = await sidecar(hub, "builder-1")
    worked = hub.submit_dict({"description": "stream three lines"}).task_id
    assign = await agent.until("task_assign")
    await agent.send(m.TaskAccepted(task_id=worked, generation=assign["generation"]))
    for seq in range(3):
        await agent.send(event(assign, seq, f"line {seq}\n"))
    await agent.send(m.TaskComplete(task_id=worked, generation=assign["generation"], result=result()))
    assert [(await agent.until("task_ack"))["status"] for _ in range(2)] == ["accepted", "complete"]
    cancelled = [hub.submit_dict({"description": f"queued {i}"}).task_id for i in range(4)]
    for task_id in cancelled[:2]:   # each cancel frees the one-slot sidecar for the next queued task
        hub.core.cancel(task_id)
    # Every change above has been published to the dashboard's session by now (same loop), none written.

    await watcher.send({"type": "ping"})
    assert (await watcher.recv() or {})["type"] == "pong"        # before any delta: none went out on its own
    frame = await watcher.recv() or {}
    assert frame["type"] == "events"
    data = frame["data"]
    tasks = [i["task"] for i in data if i["kind"] == "task"]
    assert sorted(t["task_id"] for t in tasks) == sorted([worked, *cancelled])       # each task once
    status = {t["task_id"]: t["status"] for t in tasks}
    assert status[worked] == "completed"
    assert [status[t] for t in cancelled] == ["cancelled", "cancelled", "assigned", "queued"]
    events = [i for i in data if i["kind"] == "execution_event"]
    assert [(e["seq"], e["text"]) for e in events] == [(i, f"line {i}\n") for i in range(3)]
    assert [i["completion"]["task_id"] for i in data if i["kind"] == "completion"] == [worked]
    assert data.index(events[-1]) < next(n for n, i in enumerate(data) if i["kind"] == "completion")
    assert [i for i in data if i["kind"] == "stats"][-1]["queue"]["cancelled"] == 2
    await watcher.send({"type": "ping"})
    assert (await watcher.recv() or {})["type"] == "pong"        # nothing left over for a second frame
    hub.submit_dict({"description": "one more"})
    await watcher.send({"type": "ping"})
    assert (await watcher.recv() or {})["type"] == "pong"
    later = await watcher.recv() or {}
    assert later["type"] == "events" and [i["task"]["description"] for i in later["data"] if i["kind"] == "task"] == [
        "one more"]
    watcher.close()
    agent.close()
