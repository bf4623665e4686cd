"""The dashboard session without a socket: snapshot, batching, ordering, commands, bounded buffers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from .fakes import Rig, items


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def test_snapshot_first_with_tasks_agents_queue_and_totals(rig: Rig) -> None:
    agent = rig.agent("builder-1")
    done = rig.start_task(agent)
    rig.complete(agent, done)
    rig.submit("the next task, assigned to the now free agent")
    session, transport = rig.dashboard()
    first = transport.take()[0]
    assert first["type"] == "snapshot"
    data = first["data"]
    assert {"timestamp", "uptime_ms", "agents", "queue", "recent_completions", "routing_stats", "totals"} <= set(data)
    assert [a["agent_id"] for a in data["agents"]] == ["builder-1"]
    assert data["queue"]["completed"] == 1 and data["queue"]["assigned"] == 1
    assert {t["status"] for t in data["tasks"]} == {"completed", "assigned"}
    meta = data["recent_completions"][0]["execution_meta"]
    assert meta == {"model_used": "llama3.2", "tokens_in": 12, "tokens_out": 34, "estimated_cost_usd": 0.0,
                    "equivalent_claude_cost_usd": 0.0021, "execution_ms": 40}
    assert data["totals"]["savings_usd"] == pytest.approx(0.0021)
    assert rig.hub.dashboards == 1
    session.on_close()
    assert rig.hub.dashboards == 0


def test_deltas_wait_for_the_batch_and_coalesce_per_task(rig: Rig) -> None:
    session, transport = rig.dashboard()
    transport.take()
    agent = rig.agent()
    assign = rig.start_task(agent)           # queued -> assigned -> working, all before one flush
    assert transport.frames == []            # nothing is written on the hub's path
    session.flush()
    frames = transport.take()
    assert [f["type"] for f in frames] == ["events"]
    tasks = items(frames, "task")
    assert len(tasks) == 1 and tasks[0]["task"]["status"] == "working"
    assert tasks[0]["task"]["task_id"] == assign.task_id
    assert [a["agent"]["state"] for a in items(frames, "agent")] == ["working"]
    stats = items(frames, "stats")[-1]
    assert stats["queue"]["working"] == 1 and stats["queue"]["queued"] == 0
    assert session.flush() is False          # nothing new, nothing written


def test_execution_events_arrive_in_order_between_lifecycle_deltas(rig: Rig) -> None:
    agent = rig.agent()
    assign = rig.start_task(agent)
    session, transport = rig.dashboard()
    transport.take()
    for seq in range(5):
        rig.event(agent, assign, seq, f"line {seq}\n", "stderr" if seq == 2 else "stdout")
    rig.complete(agent, assign)
    session.flush()
    data = items(transport.take())
    kinds = [i["kind"] for i in data]
    assert kinds[:5] == ["execution_event"] * 5
    assert kinds.index("completion") > 4 and kinds.index("task") > 4
    events = data[:5]
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert events[2]["event_type"] == "stderr" and events[2]["text"] == "line 2\n"
    assert {e["task_id"] for e in events} == {assign.task_id}
    assert events[0]["agent_id"] == "agent-1" and events[0]["generation"] == assign.generation


def test_order_per_task_kept_across_many_batches(rig: Rig) -> None:
    agents = [rig.agent(f"agent-{i}") for i in range(3)]
    assigns = [rig.start_task(a) for a in agents]
    session, transport = rig.dashboard()
    for seq in range(300):
        for agent, assign in zip(agents, assigns):
            rig.event(agent, assign, seq, "t", "token")
        if seq % 37 == 0:
            session.flush()
    session.flush()
    events = items(transport.take(), "execution_event")
    for assign in assigns:
        assert [e["seq"] for e in events if e["task_id"] == assign.task_id] == list(range(300))


def test_subscribe_streams_one_task_then_all(rig: Rig) -> None:
    a1, a2 = rig.agent("a1"), rig.agent("a2")
    t1, t2 = rig.start_task(a1), rig.start_task(a2)
    session, transport = rig.dashboard()
    rig.event(a2, t2, 0)                       # buffered before the subscription: discarded with it
    session.on_text(json.dumps({"type": "subscribe", "task_id": t1.task_id}))
    rig.event(a1, t1, 0)
    rig.event(a2, t2, 1)
    session.flush()
    assert {e["task_id"] for e in items(transport.take(), "execution_event")} == {t1.task_id}
    session.on_text(json.dumps({"type": "subscribe", "task_id": None}))
    rig.event(a1, t1, 1)
    rig.event(a2, t2, 2)
    session.flush()
    assert [e["task_id"] for e in items(transport.take(), "execution_event")] == [t1.task_id, t2.task_id]


def test_cancel_and_retry_answer_with_command_results(rig: Rig) -> None:
    agent = rig.agent()
    assign = rig.start_task(agent)
    session, transport = rig.dashboard()
    transport.take()
    session.on_text(json.dumps({"type": "cancel_task", "task_id": assign.task_id}))
    frames = transport.take()
    assert frames[0] == {"type": "command_result", "command": "cancel_task", "task_id": assign.task_id,
                         "status": "cancelled"}
    assert items(frames, "task")[-1]["task"]["status"] == "cancelled"
    assert any(f.__struct_config__.tag == "task_cancelled" for f in rig.sent["agent-1"])
    session.on_text(json.dumps({"type": "retry_task", "task_id": assign.task_id}))
    frames = transport.take()
    assert frames[0]["type"] == "command_result" and frames[0]["command"] == "retry_task"
    assert frames[0]["status"] in ("queued", "assigned")


def test_bad_commands_are_answered_with_error_frames(rig: Rig) -> None:
    agent = rig.agent()
    assign = rig.start_task(agent)
    rig.complete(agent, assign)
    session, transport = rig.dashboard()
    transport.take()
    session.on_text(json.dumps({"type": "cancel_task", "task_id": "task-missing"}))
    session.on_text(json.dumps({"type": "retry_task", "task_id": assign.task_id}))
    session.on_text("{not json")
    session.on_text(json.dumps({"type": "cancel_task"}))
    session.on_text(json.dumps({"type": "explode"}))
    errors = [f for f in transport.take() if f["type"] == "error"]
    assert [e["error"] for e in errors] == ["not_found", "invalid_state", "invalid_json", "validation_failed",
                                            "unknown_type"]
    assert errors[3]["errors"][0]["field"] == "task_id"
    assert transport.closed is None


def test_repeated_bad_frames_close_with_1008(tmp_path: Path) -> None:
    rig = Rig(tmp_path, bad_frame_limit=3)
    try:
        session, transport = rig.dashboard()
        for _ in range(4):
            session.on_text("nope")
        assert transport.closed is not None and transport.closed[0] == 1008
        assert rig.hub.dashboards == 0
    finally:
        rig.close()


def test_request_snapshot_and_ping(rig: Rig) -> None:
    session, transport = rig.dashboard()
    transport.take()
    rig.submit()
    session.on_text(json.dumps({"type": "request_snapshot"}))
    session.on_text(json.dumps({"type": "ping"}))
    frames = transport.take()
    assert frames[0]["type"] == "snapshot" and frames[0]["data"]["queue"]["queued"] == 1
    assert frames[1]["type"] == "pong"
    assert items(frames) == []                 # the snapshot replaced the pending task delta


def test_overflow_drops_oldest_execution_events_and_says_so(tmp_path: Path) -> None:
    rig = Rig(tmp_path, dashboard_buffer=5)
    try:
        agent = rig.agent()
        assign = rig.start_task(agent)
        session, transport = rig.dashboard()
        transport.stall()                      # the client stops reading: its next write never completes
        session.on_text(json.dumps({"type": "ping"}))
        for seq in range(20):
            rig.event(agent, assign, seq)
        rig.submit("a lifecycle delta while full")
        assert session.flush() is False        # still busy: nothing more is written
        assert [f["type"] for f in transport.frames] == ["snapshot", "pong"]
        transport.release()
        session.flush()
        frames = transport.frames[2:]
        assert frames[0] == {"type": "dropped", "count": 16}
        events = items(frames, "execution_event")
        assert [e["seq"] for e in events] == [16, 17, 18, 19]   # the newest kept, in order
        assert items(frames, "task")[0]["task"]["description"] == "a lifecycle delta while full"
        assert rig.fanout.dropped_total == 16 and session.dropped_total == 16
    finally:
        rig.close()


def test_lifecycle_deltas_are_never_dropped(tmp_path: Path) -> None:
    rig = Rig(tmp_path, dashboard_buffer=3)
    try:
        session, transport = rig.dashboard()
        transport.stall()
        session.on_text(json.dumps({"type": "ping"}))
        ids = [rig.submit(f"task {i}") for i in range(10)]   # more deltas than the buffer holds
        transport.release()
        session.flush()
        assert {i["task"]["task_id"] for i in items(transport.frames, "task")} == set(ids)
        assert not [f for f in transport.frames if f["type"] == "dropped"]
    finally:
        rig.close()


def test_events_frames_respect_the_frame_size_limit(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_frame_bytes=4096)
    try:
        agent = rig.agent()
        assign = rig.start_task(agent)
        session, transport = rig.dashboard()
        transport.take()
        for seq in range(40):
            rig.event(agent, assign, seq, "y" * 500)
        session.flush()
        frames = transport.take()
        assert len(frames) > 4
        assert all(len(json.dumps(f, separators=(",", ":"))) <= 4096 for f in frames)
        assert [e["seq"] for e in items(frames, "execution_event")] == list(range(40))
    finally:
        rig.close()


def test_a_stalled_dashboard_does_not_hold_back_another(tmp_path: Path) -> None:
    rig = Rig(tmp_path, dashboard_buffer=50)
    try:
        agent = rig.agent()
        assign = rig.start_task(agent)
        slow, slow_t = rig.dashboard()
        fast, fast_t = rig.dashboard()
        slow_t.stall()
        for seq in range(2_000):
            rig.event(agent, assign, seq, "tok", "token")
            if seq % 25 == 24:
                rig.fanout.flush_all()
        rig.complete(agent, assign)
        rig.fanout.flush_all()
        fast_events = items(fast_t.frames, "execution_event")
        assert [e["seq"] for e in fast_events] == list(range(2_000))
        assert not [f for f in fast_t.frames if f["type"] == "dropped"] and fast.dropped_total == 0
        assert items(fast_t.frames, "completion")[0]["completion"]["task_id"] == assign.task_id
        assert [f["type"] for f in slow_t.frames] == ["snapshot", "events"]  # one write in flight, none behind it
        assert slow.pending == 50                 # its buffer is full ...
        dropped = slow.dropped_total
        assert dropped > 1_900 and rig.fanout.dropped_total == dropped   # ... and the oldest events went
        slow_t.release()
        slow.flush()
        resumed = slow_t.frames[2:]
        assert resumed[0] == {"type": "dropped", "count": dropped}
        seqs = [e["seq"] for e in items(resumed, "execution_event")]
        assert seqs == list(range(2_000 - len(seqs), 2_000))            # the newest, in order
        assert items(resumed, "completion")[0]["completion"]["task_id"] == assign.task_id
        assert rig.sent["agent-1"][-1].__struct_config__.tag == "task_ack"   # the sidecar was answered
    finally:
        rig.close()


def test_a_read_only_dashboard_cannot_change_tasks(rig: Rig) -> None:
    task_id = rig.submit()
    session, transport = rig.dashboard(can_write=False)
    transport.take()
    session.on_text(json.dumps({"type": "cancel_task", "task_id": task_id}))
    answer = transport.take()[0]
    assert answer["type"] == "error" and answer["error"] == "unauthorized" and answer["task_id"] == task_id
    assert rig.core.tasks[task_id].status == "queued"
