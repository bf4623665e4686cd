"""The live feed against a real hub's dashboard socket, without a kernel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentcom.client import Feed, FeedStream
from agentcom.hub import Hub
from agentcom.protocol import messages as m

from .support import Sidecar, eventually, run_task, start_hub

pytestmark = pytest.mark.anyio


async def live_feed(hub: Hub, feed: Feed | None = None, token: str | None = None) -> FeedStream:
    stream = FeedStream(feed or Feed(), hub.url, hub.admin_token if token is None else token)
    stream.start()
    await stream.wait_open()
    return stream


async def test_snapshot_then_deltas_keep_agents_queue_and_completions(hub: Hub) -> None:
    stream = await live_feed(hub)
    feed = stream.feed
    seen: list[str] = []
    feed.add_listener(lambda kind, data: seen.append(kind))
    try:
        assert feed.connection == "open" and feed.snapshots == 1
        side = await Sidecar.connect(hub, "agent-a", capabilities=["shell"])
        await eventually(lambda: "agent-a" in feed.agents, "the agent delta")
        task_id = await run_task(hub, side, "say hello", [("stdout", "hello\n"), ("status", "finished")])
        await eventually(lambda: task_id in feed.completions, "the completion delta")
        await eventually(lambda: feed.queue["completed"] == 1, "stats with the completed count")
        assert feed.queue["queued"] == 0 and feed.queue["working"] == 0
        assert feed.tasks[task_id]["status"] == "completed"
        completion = feed.completions[task_id]
        assert completion["execution_meta"]["tokens_in"] == 120
        assert feed.totals["tokens_in"] == 120
        assert [e.text for e in feed.events(task_id)] == ["hello\n", "finished"]
        assert [e.seq for e in feed.events(task_id)] == [1, 2]
        stream_info = feed.streams[task_id]
        assert (stream_info.agent_id, stream_info.model, stream_info.gaps) == ("agent-a", "llama3.2:3b", 0)
        assert {"agent", "task", "completion", "execution", "queue", "totals"} <= set(seen)
        assert "snapshot" not in seen          # the hub sends stats: no resync was needed
        side.close()
        await eventually(lambda: "agent-a" not in feed.agents, "the agent_left delta")
    finally:
        await stream.stop()
    assert feed.connection == "closed"


async def test_events_are_bounded_per_task_and_in_the_timeline(hub: Hub) -> None:
    stream = await live_feed(hub, Feed(events_per_task=5, timeline=7))
    feed = stream.feed
    try:
        side = await Sidecar.connect(hub)
        hub.submit_dict({"description": "chatty", "complexity_tier": "trivial"})
        assign = await side.take()
        for i in range(40):
            await side.emit(assign, "stdout", f"line {i}\n")
        await eventually(lambda: feed.events_received == 40, "all 40 events")
        info = feed.streams[assign["task_id"]]
        assert info.count == 40
        assert [e.text for e in info.events] == [f"line {i}\n" for i in range(35, 40)]
        assert len(feed.timeline) == 7
    finally:
        await stream.stop()


async def test_subscribe_narrows_the_stream_to_one_task(hub: Hub) -> None:
    stream = await live_feed(hub)
    feed = stream.feed
    try:
        a, b = await Sidecar.connect(hub, "agent-a"), await Sidecar.connect(hub, "agent-b")
        hub.submit_dict({"description": "first", "complexity_tier": "trivial"})
        hub.submit_dict({"description": "second", "complexity_tier": "trivial"})
        first, second = await a.take(), await b.take()
        stream.subscribe(second["task_id"])
        await a.emit(first, "stdout", "ignored\n")
        await b.emit(second, "stdout", "wanted\n")
        await eventually(lambda: feed.events_received >= 1, "the subscribed task's event")
        await a.emit(first, "stdout", "ignored too\n")
        await b.emit(second, "status", "end")      # sent after a's events: once it is here, theirs would be too
        await eventually(lambda: feed.events_received >= 2, "the second event")
        assert set(feed.streams) == {second["task_id"]}
    finally:
        await stream.stop()


async def test_dropped_notice_when_the_hub_overflows_our_buffer(tmp_path: Any, anyio_backend: str) -> None:
    # No periodic flush (huge batch interval) and a 10-item buffer: the hub must drop the oldest
    # execution events for us and say so when it next writes (a command makes it write).
    hub = await start_hub(tmp_path, batch_interval_ms=600_000, dashboard_buffer=10)
    stream = await live_feed(hub)
    feed = stream.feed
    try:
        side = await Sidecar.connect(hub)
        hub.submit_dict({"description": "flood", "complexity_tier": "trivial"})
        assign = await side.take()
        for i in range(50):
            await side.emit(assign, "token", f"t{i} ")
        await side.send(m.Ping())
        await side.expect("pong")        # the hub has processed all 50 events by now
        assert stream.request_snapshot()
        await eventually(lambda: feed.dropped > 0, "a dropped notice")
        await eventually(lambda: feed.events_received > 0, "the surviving events")
        assert feed.dropped + feed.events_received == 50
        assert feed.streams[assign["task_id"]].events[-1].text == "t49 "
    finally:
        await stream.stop()
        await hub.stop()


async def test_reconnects_with_a_fresh_snapshot_after_the_hub_restarts(tmp_path: Any, anyio_backend: str) -> None:
    hub = await start_hub(tmp_path)
    port = hub.port
    stream = FeedStream(Feed(), hub.url, hub.admin_token, initial_backoff=0.05, max_backoff=0.2)
    stream.start()
    await stream.wait_open()
    feed = stream.feed
    states: list[str] = []
    feed.add_listener(lambda kind, data: states.append(data) if kind == "connection" else None)
    token = hub.admin_token
    hub.dashboard_fanout.close_all(1001, "hub restarting")  # Hub.stop() leaves upgraded sockets open
    await hub.stop()
    await eventually(lambda: "reconnecting" in states, "the stream to notice the hub is gone")
    again = Hub(db_path=str(tmp_path / "hub.db"), port=port, admin_token=token, batch_interval_ms=20)
    await again.start()
    try:
        hub_side = await Sidecar.connect(again, "agent-back")
        await eventually(lambda: stream.connects >= 2 and feed.connection == "open", "a reconnection")
        await eventually(lambda: "agent-back" in feed.agents, "state from the new connection")
        assert feed.snapshots >= 2
        hub_side.close()
    finally:
        await stream.stop()
        await again.stop()


async def test_a_refused_token_stops_the_stream(hub: Hub) -> None:
    stream = FeedStream(Feed(), hub.url, "not-the-token")
    stream.start()
    await eventually(lambda: not stream.running, "the stream to give up")
    assert stream.feed.connection == "unauthorized"
    assert "401" in (stream.feed.last_error or "")


async def test_commands_reach_the_hub_and_are_answered(hub: Hub) -> None:
    stream = await live_feed(hub)
    feed = stream.feed
    answers: list[dict[str, Any]] = []
    feed.add_listener(lambda kind, data: answers.append(data) if kind == "command_result" else None)
    try:
        task = hub.submit_dict({"description": "never runs", "complexity_tier": "trivial"})
        assert stream.send({"type": "cancel_task", "task_id": task.task_id})
        await eventually(lambda: answers, "the command result")
        assert answers[0]["status"] == "cancelled"
        await eventually(lambda: feed.queue["cancelled"] == 1, "the cancelled count")
    finally:
        await stream.stop()


def test_feed_rules_without_a_socket() -> None:
    """Seq gaps, generations, unknown frames and a failing listener, on the feed alone."""
    feed = Feed()
    calls: list[str] = []

    def broken(kind: str, data: Any) -> None:
        raise RuntimeError("a view bug")

    feed.add_listener(broken)
    remove = feed.add_listener(lambda kind, data: calls.append(kind))
    base = {"type": "execution_event", "task_id": "t", "agent_id": "a", "event_type": "token",
            "tokens_so_far": None, "model": None, "timestamp": 0}
    for generation, seq in ((1, 1), (1, 2), (1, 5), (2, 1), (2, 2)):
        feed.apply({**base, "generation": generation, "seq": seq, "text": f"{generation}.{seq}"})
    feed.apply({"type": "from_the_future", "data": 1})
    feed.apply({"type": "dropped", "count": 3})
    info = feed.streams["t"]
    assert (info.gaps, info.count, info.generation, feed.dropped) == (1, 5, 2, 3)
    assert calls == ["execution"] * 5 + ["dropped"]
    remove()
    feed.apply({**base, "generation": 2, "seq": 3, "text": "x"})
    assert len(calls) == 6
    with pytest.raises(ValueError, match="events_per_task"):
        Feed(events_per_task=0)


def test_feed_infers_counts_when_the_hub_sends_no_stats() -> None:
    feed = Feed()
    feed.apply({"type": "snapshot", "data": {"queue": {"queued": 2}, "agents": [], "totals": {"cost_usd": 1.0}}})
    feed.apply({"type": "events", "data": [{"kind": "task", "task": {"task_id": "n", "status": "queued", "generation": 0}}]})
    assert feed.queue["queued"] == 3 and not feed.needs_snapshot
    feed.apply({"type": "events", "data": [{"kind": "task", "task": {"task_id": "n", "status": "assigned", "generation": 1}}]})
    assert (feed.queue["queued"], feed.queue["assigned"]) == (2, 1)
    feed.apply({"type": "events", "data": [{"kind": "task", "task": {"task_id": "old", "status": "working", "generation": 1}}]})
    assert feed.needs_snapshot
    feed.apply({"type": "events", "data": [{"kind": "completion", "completion": {
        "task_id": "n", "execution_meta": {"estimated_cost_usd": 0.5, "equivalent_claude_cost_usd": 2.0,
                                           "tokens_in": 1, "tokens_out": 2}}}]})
    assert feed.totals["cost_usd"] == 1.5 and feed.totals["savings_usd"] == 1.5
    feed.apply({"type": "events", "data": [{"kind": "stats", "queue": {"queued": 7}, "totals": {"cost_usd": 9.0}}]})
    assert feed.queue["queued"] == 7 and feed.totals["cost_usd"] == 9.0


def test_a_hub_that_sends_stats_is_never_asked_for_a_resync() -> None:
    feed = Feed()
    feed.apply({"type": "snapshot", "data": {"queue": {}, "agents": []}})
    feed.apply({"type": "events", "data": [
        {"kind": "task", "task": {"task_id": "x", "status": "assigned", "generation": 1}},
        {"kind": "stats", "queue": {"assigned": 1}, "totals": {}},
    ]})
    assert not feed.needs_snapshot and feed.queue["assigned"] == 1


def test_the_total_event_budget_forgets_the_least_recently_active_task_first() -> None:
    feed = Feed(events_per_task=10, max_events=25)
    for i in range(60):
        task = ("a", "b", "c")[i // 20]          # 20 events for a, then b, then c
        feed.apply({"type": "execution_event", "task_id": task, "generation": 1, "event_type": "stdout",
                    "text": str(i), "seq": i % 20 + 1})
    assert list(feed.streams) == ["b", "c"] and feed.buffered == 20
    assert [e.text for e in feed.events("c")][-1] == "59"
    assert list(feed.events("a")) == []
