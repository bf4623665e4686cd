"""A task's life over a real socket: assign, accept, progress, complete, fail, reject, cancel."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from agentcom import Hub
from agentcom.protocol import messages as m

from .wire import Api, eventually, result

pytestmark = pytest.mark.anyio

ROUTING_FIELDS = {"effective_tier", "target_type", "selected_endpoint", "selected_model", "fallback_used",
                  "fallback_from_tier", "fallback_reason", "candidate_count", "classification_reason",
                  "estimated_cost_tier", "decided_at"}


def _executions(hub: Hub, task_id: str) -> list[sqlite3.Row]:
    return hub.conn.execute("SELECT * FROM executions WHERE task_id=? ORDER BY id", (task_id,)).fetchall()


def _events(detail: dict[str, Any]) -> list[str]:
    return [h["event"] for h in detail["history"]]


async def test_task_assign_carries_every_field_of_the_protocol(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    before = hub.core.clock()
    task_id = await api.submit(
        description="fix the failing test in parser.py", priority="high", complexity_tier="trivial",
        metadata={"shell_command": "pytest -q", "ticket": 42}, file_hints=[{"path": "src/parser.py", "reason": "bug"}],
        success_criteria=["tests pass"], verification_steps=[{"type": "command", "target": "pytest -q"}])
    assign = await sidecar.assignment()
    assert set(assign) == {"type", "task_id", "generation", "description", "priority", "metadata", "assigned_at",
                           "file_hints", "success_criteria", "verification_steps", "complexity", "routing_decision"}
    assert (assign["task_id"], assign["generation"], assign["priority"]) == (task_id, 1, "high")
    assert assign["description"] == "fix the failing test in parser.py"
    assert assign["metadata"] == {"shell_command": "pytest -q", "ticket": 42}
    assert assign["file_hints"] == [{"path": "src/parser.py", "reason": "bug"}]
    assert assign["success_criteria"] == ["tests pass"]
    assert assign["verification_steps"] == [{"type": "command", "target": "pytest -q", "description": None}]
    assert isinstance(assign["assigned_at"], int) and assign["assigned_at"] >= before
    complexity = assign["complexity"]
    assert (complexity["effective_tier"], complexity["source"], complexity["explicit_tier"]) == (
        "trivial", "explicit", "trivial")
    inferred = complexity["inferred"]
    assert inferred["tier"] in m.TIERS and 0 <= inferred["confidence"] <= 1
    assert set(inferred["signals"]) == {"word_count", "file_count", "verification_count", "keywords"}
    assert inferred["signals"]["file_count"] == 1 and inferred["signals"]["verification_count"] == 1
    assert set(inferred["signals"]["keywords"]) == {"complex", "trivial"}
    decision = assign["routing_decision"]
    assert set(decision) == ROUTING_FIELDS
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in decision.values())
    assert decision["effective_tier"] == "trivial" and isinstance(decision["fallback_used"], bool)
    assert isinstance(decision["candidate_count"], int) and decision["candidate_count"] >= 1
    assert isinstance(decision["decided_at"], int) and decision["decided_at"] >= before
    assert (await api.task(task_id))["routing_decision"] == decision


async def test_accept_progress_complete(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    execution: list[dict[str, Any]] = []
    task_deltas: list[dict[str, Any]] = []
    hub.core.pubsub.subscribe(lambda topic, msg: execution.append(msg), ("execution",))
    hub.core.pubsub.subscribe(lambda topic, msg: task_deltas.append(msg), ("tasks",))
    task_id = await api.submit(description="say hello")
    assign = await sidecar.assignment()
    assert (await api.task(task_id))["status"] == "assigned"

    await sidecar.accept(assign)
    assert (await api.task(task_id))["status"] == "working"
    assert hub.core.agents["agent-1"].state == "working"

    event = m.ExecutionEvent(event_type="token", text="Hel", tokens_so_far=1, model="llama3.2", timestamp=123, seq=1)
    await sidecar.send(m.TaskProgress(task_id=task_id, generation=1, progress=10, execution_event=event))
    await sidecar.send(m.TaskProgress(task_id=task_id, generation=1, progress=20))  # no event: nothing on execution
    await sidecar.nothing_else()  # progress is not acknowledged
    assert execution == [{"task_id": task_id, "generation": 1, "agent_id": "agent-1", "event_type": "token",
                          "text": "Hel", "tokens_so_far": 1, "model": "llama3.2", "timestamp": 123, "seq": 1}]
    assert [d["progress"] for d in task_deltas if d["kind"] == "progress"] == [10, 20]

    await sidecar.complete(assign, tokens_in=11, tokens_out=22, estimated_cost_usd=0.25,
                           equivalent_claude_cost_usd=1.0)
    detail = await api.task(task_id)
    assert detail["status"] == "completed" and detail["completed_at"] is not None
    assert detail["result"]["output"] == "ok\n" and detail["result"]["tokens_in"] == 11
    assert _events(detail) == ["submitted", "assigned", "accepted", "completed"]
    [row] = _executions(hub, task_id)
    assert (row["generation"], row["agent_id"], row["status"], row["tokens_in"]) == (1, "agent-1", "success", 11)
    snap = hub.core.snapshot()
    assert snap["queue"]["completed"] == 1 and snap["queue"]["working"] == 0
    assert snap["totals"] == {"cost_usd": 0.25, "equivalent_claude_cost_usd": 1.0, "savings_usd": 0.75,
                              "tokens_in": 11, "tokens_out": 22, "executions": 1, "unpriced_executions": 0}
    [completion] = snap["recent_completions"]
    assert completion["task_id"] == task_id and completion["execution_meta"]["tokens_out"] == 22
    assert hub.core.agents["agent-1"].state == "idle"
    assert any(d["kind"] == "completion" for d in task_deltas)


async def test_complete_without_accept_is_fine(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    await sidecar.complete(await sidecar.assignment())
    assert (await api.task(task_id))["status"] == "completed"


async def test_a_duplicate_complete_is_acknowledged_and_recorded_once(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    assign = await sidecar.assignment()
    await sidecar.run(assign)
    totals = hub.core.snapshot()["totals"]
    for _ in range(3):
        await sidecar.complete(assign)  # acknowledged again, ignored
    assert len(_executions(hub, task_id)) == 1
    assert hub.core.snapshot()["totals"] == totals
    assert hub.core.snapshot()["queue"]["completed"] == 1
    assert _events(await api.task(task_id)).count("completed") == 1


async def test_complete_for_an_unknown_task_is_not_found(hub: Hub, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    await sidecar.send(m.TaskComplete(task_id="task-nope", generation=1, result=result()))
    frame = await sidecar.error("not_found")
    assert frame["task_id"] == "task-nope"
    for frame in (m.TaskAccepted(task_id="task-nope", generation=1),
                  m.TaskFailed(task_id="task-nope", generation=1, error="x"),
                  m.TaskRejected(task_id="task-nope", generation=1, reason="x"),
                  m.TaskProgress(task_id="task-nope", generation=1, progress=1)):
        await sidecar.send(frame)
        await sidecar.error("not_found")
    assert hub.conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 0


async def test_cancel_tells_the_sidecar_and_later_frames_are_invalid_state(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    status, body = await api.call("POST", f"/agentcom/api/tasks/{task_id}/cancel")
    assert status == 200 and body["status"] == "cancelled"
    await sidecar.expect("task_cancelled", task_id=task_id, generation=assign["generation"])
    await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))
    frame = await sidecar.error("invalid_state")
    assert "cancelled" in frame["message"]
    await sidecar.send(m.TaskProgress(task_id=task_id, generation=assign["generation"], progress=50))
    await sidecar.error("invalid_state")
    detail = await api.task(task_id)
    assert detail["status"] == "cancelled" and detail["result"] is None
    assert _executions(hub, task_id) == []
    assert hub.core.agents["agent-1"].state == "idle"


async def test_a_queued_task_can_be_cancelled_and_is_never_assigned(hub: Hub, api: Api, sidecar_ws) -> None:
    first = await api.submit(description="cancel me")
    second = await api.submit(description="run me")
    assert (await api.call("POST", f"/agentcom/api/tasks/{first}/cancel"))[0] == 200
    sidecar = await sidecar_ws(hub)
    assert (await sidecar.assignment())["task_id"] == second


@pytest.mark.parametrize("kind", ["accepted", "progress", "complete", "failed", "rejected"])
async def test_a_wrong_generation_is_stale_and_changes_nothing(hub: Hub, api: Api, sidecar_ws, kind: str) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    assign = await sidecar.assignment()
    before = await api.task(task_id)
    frames = {
        "accepted": m.TaskAccepted(task_id=task_id, generation=0),
        "progress": m.TaskProgress(task_id=task_id, generation=0, progress=5),
        "complete": m.TaskComplete(task_id=task_id, generation=0, result=result()),
        "failed": m.TaskFailed(task_id=task_id, generation=0, error="x"),
        "rejected": m.TaskRejected(task_id=task_id, generation=0, reason="x"),
    }
    stale = frames[kind]
    await sidecar.send(stale)
    frame = await sidecar.error("stale_generation")
    assert frame["task_id"] == task_id
    await sidecar.send(msgspec_replace(stale, generation=assign["generation"] + 5))  # from the future: stale too
    await sidecar.error("stale_generation")
    await sidecar.nothing_else()
    assert await api.task(task_id) == before
    assert _executions(hub, task_id) == []
    await sidecar.run(assign)  # the right generation still works


def msgspec_replace(frame: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(frame, **changes)


async def test_a_stale_generation_after_a_requeue(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    first = await sidecar.assignment()
    await sidecar.send(m.TaskRejected(task_id=task_id, generation=first["generation"], reason="busy"))
    second = await sidecar.assignment()
    assert second["generation"] > first["generation"]
    await sidecar.send(m.TaskComplete(task_id=task_id, generation=first["generation"], result=result()))
    await sidecar.error("stale_generation")
    await sidecar.run(second)
    await sidecar.send(m.TaskComplete(task_id=task_id, generation=first["generation"], result=result()))
    await sidecar.error("stale_generation")  # still stale once completed
    assert [r["generation"] for r in _executions(hub, task_id)] == [second["generation"]]


async def test_frames_for_another_agents_task_are_invalid_state(hub: Hub, api: Api, sidecar_ws) -> None:
    owner = await sidecar_ws(hub, "agent-1")
    task_id = await api.submit()
    assign = await owner.assignment()
    intruder = await sidecar_ws(hub, "agent-2")
    await intruder.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))
    await intruder.error("invalid_state")
    assert (await api.task(task_id))["status"] == "assigned"
    await owner.run(assign)


async def test_a_failed_result_must_come_as_task_failed(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    assign = await sidecar.assignment()
    await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result("failed")))
    frame = await sidecar.error("invalid_state")
    assert "task_failed" in frame["message"]
    assert (await api.task(task_id))["status"] == "assigned"
    assert _executions(hub, task_id) == []


async def test_retryable_failures_retry_up_to_max_attempts_then_dead_letter(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit(max_attempts=3)
    generations = []
    for attempt in (1, 2, 3):
        assign = await sidecar.assignment()
        generations.append(assign["generation"])
        detail = await api.task(task_id)
        assert detail["attempts"] == attempt
        await sidecar.accept(assign)
        await sidecar.fail(assign, "retried" if attempt < 3 else "dead_letter", error=f"exit {attempt}")
    assert generations == sorted(set(generations))
    detail = await api.task(task_id)
    assert (detail["status"], detail["attempts"], detail["last_error"]) == ("dead_letter", 3, "exit 3")
    assert _events(detail).count("failed_retrying") == 2 and _events(detail)[-1] == "dead_letter"
    rows = _executions(hub, task_id)
    assert [(r["generation"], r["status"], r["error"]) for r in rows] == [
        (g, "failed", f"exit {i}") for i, g in enumerate(generations, start=1)]
    assert hub.core.snapshot()["queue"]["dead_letter"] == 1
    await sidecar.nothing_else()  # not assigned again


async def test_the_default_max_attempts_is_three(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    assert (await api.task(task_id))["max_attempts"] == 3
    for ack in ("retried", "retried", "dead_letter"):
        await sidecar.fail(await sidecar.assignment(), ack)


async def test_a_non_retryable_failure_fails_the_task_at_once(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit(max_attempts=5)
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    await sidecar.send(m.TaskFailed(task_id=task_id, generation=assign["generation"], error="bad command",
                                    retryable=False))
    ack = await sidecar.expect("task_ack", task_id=task_id)
    assert ack["status"] in m.AckStatus.__args__  # type: ignore[attr-defined]
    detail = await api.task(task_id)
    assert (detail["status"], detail["attempts"], detail["last_error"]) == ("failed", 1, "bad command")
    assert hub.core.snapshot()["queue"]["failed"] == 1
    await sidecar.nothing_else()


async def test_a_rejected_task_goes_back_to_the_queue_at_once(hub: Hub, api: Api, sidecar_ws) -> None:
    busy = await sidecar_ws(hub, "agent-busy")
    task_id = await api.submit()
    first = await busy.assignment()
    free = await sidecar_ws(hub, "agent-free")
    await busy.send(m.TaskRejected(task_id=task_id, generation=first["generation"], reason="no GPU"))
    second = await eventually_assignment(busy, free)
    assert second["task_id"] == task_id and second["generation"] > first["generation"]
    detail = await api.task(task_id)
    assert detail["attempts"] == 2  # the rejected assignment counted
    assert "rejected" in _events(detail)
    assert "no GPU" in (detail["last_error"] or "")


async def eventually_assignment(*sidecars: Any) -> dict[str, Any]:
    """The next task_assign on whichever of the sockets it arrives (the router picks the agent)."""
    import asyncio

    reads = {asyncio.ensure_future(s.recv()): s for s in sidecars}
    done, pending = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    for future in pending:
        future.cancel()
    frame = next(iter(done)).result()
    assert frame["type"] == "task_assign", frame
    return frame


async def test_retry_of_a_dead_lettered_task_queues_it_again(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit(max_attempts=1)
    assign = await sidecar.assignment()
    await sidecar.fail(assign, "dead_letter")
    status, body = await api.call("POST", f"/agentcom/api/tasks/{task_id}/retry")
    assert status == 200 and body["status"] in ("queued", "assigned")  # the idle sidecar may take it at once
    again = await sidecar.assignment()
    assert again["generation"] > assign["generation"]
    await sidecar.run(again)
    assert (await api.task(task_id))["status"] == "completed"


async def test_values_too_big_for_the_store_are_refused_not_fatal(hub: Hub, api: Api, sidecar_ws) -> None:
    """A huge but well-typed number is answered like any bad frame; the socket and the task survive."""
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    assign = await sidecar.assignment()
    for bad in ({"tokens_in": 2**64}, {"execution_ms": 10**20}, {"estimated_cost_usd": 1e300}):
        await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result(**bad)))
        frame = await sidecar.recv()
        assert frame["type"] == "error" and frame["error"] == "validation_failed", frame
        await sidecar.nothing_else()
    assert (await api.task(task_id))["status"] == "assigned"
    await sidecar.run(assign)
    assert len(_executions(hub, task_id)) == 1


async def test_progress_events_reach_every_execution_subscriber_in_order(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    a: list[int] = []
    b: list[int] = []
    hub.core.pubsub.subscribe(lambda t, msg: a.append(msg["seq"]), ("execution",))
    hub.core.pubsub.subscribe(lambda t, msg: b.append(msg["seq"]), ("execution",))
    task_id = await api.submit()
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    for seq in range(1, 21):
        event = m.ExecutionEvent(event_type="stdout", text=f"line {seq}\n", timestamp=seq, seq=seq)
        await sidecar.send(m.TaskProgress(task_id=task_id, generation=assign["generation"], execution_event=event))
    await sidecar.complete(assign)
    assert a == b == list(range(1, 21))
    await eventually(lambda: hub.core.snapshot()["queue"]["completed"] == 1)


def _status_seen_by_another_connection(hub: Hub, task_id: str) -> str | None:
    other = sqlite3.connect(hub.settings.db_path)
    try:
        row = other.execute("SELECT status FROM tasks WHERE task_id=?", (task_id,)).fetchone()
        return row[0] if row else None
    finally:
        other.close()


async def test_acknowledgements_leave_only_after_their_writes_are_committed(
        hub: Hub, api: Api, sidecar_ws, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes of one loop turn share a commit; no frame leaves while a transaction is open."""
    from agentcom.hub.handlers import SidecarSocketHandler

    leaving: list[tuple[bool, str]] = []
    write = SidecarSocketHandler._send_frames  # every frame to a sidecar leaves through it

    def spy(self: Any, frames: Any) -> Any:
        leaving.extend((hub.conn.in_transaction, frame.__struct_config__.tag) for frame in frames)
        return write(self, frames)

    monkeypatch.setattr(SidecarSocketHandler, "_send_frames", spy)
    sidecars = [await sidecar_ws(hub, f"agent-{i}") for i in range(4)]
    ids = [await api.submit(description=f"t{i}") for i in range(4)]
    assert all(_status_seen_by_another_connection(hub, t) is not None for t in ids)  # 201 came after the commit
    assigns = [await s.assignment() for s in sidecars]
    assert all(_status_seen_by_another_connection(hub, a["task_id"]) == "assigned" for a in assigns)
    for sidecar, assign in zip(sidecars, assigns):  # all in flight at once: they may share one commit
        await sidecar.send(m.TaskAccepted(task_id=assign["task_id"], generation=assign["generation"]))
        await sidecar.send(m.TaskComplete(task_id=assign["task_id"], generation=assign["generation"],
                                          result=result()))
    for sidecar, assign in zip(sidecars, assigns):
        await sidecar.expect("task_ack", task_id=assign["task_id"], status="accepted")
        await sidecar.expect("task_ack", task_id=assign["task_id"], status="complete")
        assert _status_seen_by_another_connection(hub, assign["task_id"]) == "completed"
    status, body = await api.call("POST", f"/agentcom/api/tasks/{await api.submit(assign_to='nobody')}/cancel")
    assert status == 200 and _status_seen_by_another_connection(hub, body["task_id"]) == "cancelled"
    assert [kind for _, kind in leaving].count("task_ack") == 8
    assert not any(open_ for open_, _ in leaving), leaving


async def test_unpriced_runs_are_counted_apart_and_survive_a_restart(make_hub, tmp_path) -> None:
    """A run without a price is no 0 in the totals: it is counted as unpriced, live and after a restart."""
    from .wire import identify

    db = str(tmp_path / "unpriced.db")
    hub = await make_hub(db_path=db)
    sidecar = await identify(hub, "agent-1")
    hub.submit_dict({"description": "priced"})
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    await sidecar.complete(assign, tokens_in=1000, tokens_out=500, estimated_cost_usd=0.0105)
    hub.submit_dict({"description": "no price known"})
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    await sidecar.complete(assign, tokens_in=1000, tokens_out=500, estimated_cost_usd=None)
    totals = hub.core.snapshot()["totals"]
    assert (totals["executions"], totals["unpriced_executions"], totals["cost_usd"]) == (2, 1, 0.0105)
    assert totals["tokens_in"] == 2000
    await hub.stop()
    sidecar.close()
    again = await make_hub(db_path=db)
    assert again.core.snapshot()["totals"] == totals


async def test_a_failure_without_a_result_is_free_only_where_runs_are_free(make_hub, tmp_path) -> None:
    """A sidecar that fails a task without a result (a crash, a third-party sidecar) says nothing of
    what the run used: on a paid target its cost is unknown, counted as unpriced, never 0."""
    from .wire import identify

    db = str(tmp_path / "no-result.db")
    hub = await make_hub(db_path=db)
    sidecar = await identify(hub, "agent-1")
    targets = {}
    for tier in ("complex", "trivial"):
        hub.submit_dict({"description": f"{tier} work", "complexity_tier": tier, "max_attempts": 1})
        assign = await sidecar.assignment()
        targets[assign["routing_decision"]["target_type"]] = assign["task_id"]
        await sidecar.accept(assign)
        await sidecar.send(m.TaskFailed(task_id=assign["task_id"], generation=assign["generation"],
                                        error="the sidecar crashed", retryable=False))
        await sidecar.expect("task_ack", task_id=assign["task_id"], status="dead_letter")
    assert set(targets) == {"claude", "sidecar"}
    assert _executions(hub, targets["claude"])[0]["cost_nusd"] is None
    assert _executions(hub, targets["sidecar"])[0]["cost_nusd"] == 0
    totals = hub.core.snapshot()["totals"]
    assert (totals["executions"], totals["unpriced_executions"], totals["cost_usd"]) == (2, 1, 0.0)
    await hub.stop()
    sidecar.close()
    again = await make_hub(db_path=db)
    assert again.core.snapshot()["totals"] == totals
