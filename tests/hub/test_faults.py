"""Sidecars that vanish, fall silent, come back, and hubs that restart under them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentcom import Hub
from agentcom.protocol import messages as m

from .wire import Api, eventually, identify

pytestmark = pytest.mark.anyio

SHORT_LEASE = 300  # ms
HEARTBEAT_S = 0.05  # how often a live sidecar pings while it waits out another's lease


def _history(hub: Hub, task_id: str) -> list[dict[str, Any]]:
    return hub.core.task_detail(task_id)["history"]


async def test_a_sidecar_gone_mid_task_has_it_requeued_after_lease_ms(make_hub, sidecar_ws) -> None:
    hub = await make_hub(lease_ms=SHORT_LEASE)
    gone = await sidecar_ws(hub, "agent-gone")
    task = hub.submit_dict({"description": "long job"})
    first = await gone.assignment()
    await gone.accept(first)
    gone.close()
    await eventually(lambda: not hub.core.agents["agent-gone"].online, "the hub saw the close")
    [view] = hub.core.snapshot()["agents"]
    assert (view["agent_id"], view["state"]) == ("agent-gone", "offline")  # kept for lease_ms, to resume
    assert hub.core.task_detail(task.task_id)["status"] == "working"

    other = await sidecar_ws(hub, "agent-other")
    second = await other.assignment(heartbeat_s=HEARTBEAT_S)  # arrives once the lease expired
    assert second["task_id"] == task.task_id and second["generation"] > first["generation"]
    detail = hub.core.task_detail(task.task_id)
    assert (detail["attempts"], detail["assigned_to"]) == (2, "agent-other")
    reclaim = next(h for h in detail["history"] if h["event"] == "reclaimed")
    assert reclaim["agent_id"] == "agent-gone" and reclaim["details"] == {"reason": "lease expired"}
    assert "agent-gone" not in hub.core.agents
    await other.run(second)
    assert hub.core.task_detail(task.task_id)["status"] == "completed"


async def test_a_silent_sidecar_is_closed_and_its_task_reclaimed(make_hub, sidecar_ws) -> None:
    hub = await make_hub(lease_ms=SHORT_LEASE)
    silent = await sidecar_ws(hub, "agent-silent")
    task = hub.submit_dict({"description": "job"})
    first = await silent.assignment()
    code, reason = await silent.closed()  # says nothing for longer than lease_ms
    assert code == 1001 and "lease" in (reason or "")
    await eventually(lambda: hub.core.task_detail(task.task_id)["status"] == "queued", "task requeued")
    detail = hub.core.task_detail(task.task_id)
    assert detail["attempts"] == 1 and detail["generation"] > first["generation"]


async def test_a_reclaim_after_the_last_attempt_dead_letters(make_hub, sidecar_ws) -> None:
    hub = await make_hub(lease_ms=SHORT_LEASE)
    sidecar = await sidecar_ws(hub)
    task = hub.submit_dict({"description": "job", "max_attempts": 1})
    await sidecar.assignment()
    sidecar.close()
    await eventually(lambda: hub.core.snapshot()["queue"]["dead_letter"] == 1, "dead letter")
    detail = hub.core.task_detail(task.task_id)
    assert (detail["status"], detail["attempts"]) == ("dead_letter", 1)


async def test_resume_continues_a_task_still_held_and_reassigns_the_rest(hub: Hub, sidecar_ws) -> None:
    token = hub.create_agent_token("agent-1")
    sidecar = await sidecar_ws(hub, "agent-1", token)
    task = hub.submit_dict({"description": "job"})
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    sidecar.close()
    await eventually(lambda: not hub.core.agents["agent-1"].online, "the hub saw the close")

    back = await identify(hub, "agent-1", token, resume=[
        m.ResumeEntry(task_id=task.task_id, generation=assign["generation"]),
        m.ResumeEntry(task_id="task-unknown", generation=4)])
    await back.expect("task_continue", task_id=task.task_id, generation=assign["generation"])
    await back.expect("task_reassign", task_id="task-unknown")
    await back.nothing_else()
    await back.complete(assign)
    detail = hub.core.task_detail(task.task_id)
    assert (detail["status"], detail["attempts"], detail["generation"]) == ("completed", 1, assign["generation"])
    back.close()


async def test_resume_with_an_old_generation_is_reassigned(hub: Hub, sidecar_ws) -> None:
    token = hub.create_agent_token("agent-1")
    sidecar = await sidecar_ws(hub, "agent-1", token)
    task = hub.submit_dict({"description": "job"})
    assign = await sidecar.assignment()
    sidecar.close()
    await eventually(lambda: not hub.core.agents["agent-1"].online, "the hub saw the close")
    back = await identify(hub, "agent-1", token, resume=[
        m.ResumeEntry(task_id=task.task_id, generation=assign["generation"] - 1)])
    await back.expect("task_reassign", task_id=task.task_id)
    again = await back.assignment()  # reclaimed at once and, the agent being idle, assigned anew
    assert again["task_id"] == task.task_id and again["generation"] > assign["generation"]
    await back.send(m.TaskComplete(task_id=task.task_id, generation=assign["generation"],
                                   result=m.ExecutionResult(status="success", output="", model_used=None,
                                                            tokens_in=0, tokens_out=0, estimated_cost_usd=0,
                                                            equivalent_claude_cost_usd=None, execution_ms=0,
                                                            price_table="t")))
    await back.error("stale_generation")
    back.close()


async def test_reconnecting_without_resume_gives_up_held_tasks_at_once(hub: Hub, sidecar_ws) -> None:
    token = hub.create_agent_token("agent-1")
    sidecar = await sidecar_ws(hub, "agent-1", token)
    task = hub.submit_dict({"description": "job"})
    assign = await sidecar.assignment()
    sidecar.close()
    await eventually(lambda: not hub.core.agents["agent-1"].online, "the hub saw the close")
    back = await identify(hub, "agent-1", token)
    again = await back.assignment()
    assert again["task_id"] == task.task_id and again["generation"] > assign["generation"]
    assert hub.core.task_detail(task.task_id)["attempts"] == 2
    back.close()


async def test_a_restarted_hub_lets_the_sidecar_resume(make_hub, tmp_path: Path) -> None:
    db = str(tmp_path / "restart.db")
    hub = await make_hub(db_path=db)
    token = hub.create_agent_token("agent-1")
    sidecar = await identify(hub, "agent-1", token)
    task = hub.submit_dict({"description": "survive a restart", "priority": "urgent"})
    queued = hub.submit_dict({"description": "still queued", "priority": "low"})
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    await hub.stop()
    assert (await sidecar.closed())[0] in (1001, 1006, None)

    again = await make_hub(db_path=db)
    assert again.admin_token == hub.admin_token
    snap = again.core.snapshot()
    assert snap["queue"]["working"] == 1 and snap["queue"]["queued"] == 1
    back = await identify(again, "agent-1", token,
                          resume=[m.ResumeEntry(task_id=task.task_id, generation=assign["generation"])])
    await back.expect("task_continue", task_id=task.task_id, generation=assign["generation"])
    await back.complete(assign)
    nxt = await back.assignment()
    assert nxt["task_id"] == queued.task_id
    await back.run(nxt)
    assert again.core.snapshot()["queue"]["completed"] == 2
    back.close()


async def test_a_restarted_hub_requeues_tasks_whose_sidecar_never_returns(make_hub, tmp_path: Path) -> None:
    db = str(tmp_path / "restart.db")
    hub = await make_hub(db_path=db, lease_ms=SHORT_LEASE)
    sidecar = await identify(hub, "agent-1")
    task = hub.submit_dict({"description": "orphan"})
    await sidecar.assignment()
    await hub.stop()
    again = await make_hub(db_path=db, lease_ms=SHORT_LEASE)
    other = await identify(again, "agent-2")
    assign = await other.assignment(heartbeat_s=HEARTBEAT_S)
    assert assign["task_id"] == task.task_id
    assert again.core.task_detail(task.task_id)["attempts"] == 2
    other.close()
    sidecar.close()


def test_a_routing_read_that_fails_keeps_the_submitted_task_and_answers_no_error(tmp_path: Path) -> None:
    """Routing reads the executions table (budget spend) inside the submit's transaction: when that read
    fails, the task is still accepted (a 503 would make a client submit it twice) and stays queued."""
    import asyncio

    from agentcom.protocol import codec

    hub = Hub(db_path=str(tmp_path / "hub.db"), routing="model", budget_daily_usd=1.0)
    try:
        frames: list[object] = []
        session = hub.new_sidecar_session(frames.append, lambda code, reason: None)
        session.on_text(codec.encode(m.Identify(agent_id="a1", token=hub.create_agent_token("a1"), protocol_version=1)))
        hub.conn.execute("ALTER TABLE executions RENAME TO executions_away")  # the spend query now fails
        task = hub.submit_dict({"description": "write a function that parses dates", "complexity_tier": "standard"})
        stored = hub.store.get(task.task_id)
        assert stored is not None and stored.status == "queued"
        assert hub.core.tasks[task.task_id].status == "queued"  # still in memory, to be routed again
        hub.conn.execute("ALTER TABLE executions_away RENAME TO executions")
        again = hub.submit_dict({"description": "write a function that parses times", "complexity_tier": "standard"})
        assert hub.store.get(again.task_id) is not None
    finally:
        asyncio.run(hub.close())


async def test_a_restarted_hub_shows_the_same_recent_completions_as_before(make_hub, tmp_path: Path) -> None:
    """The snapshot's recent completions after a restart are what the live hub showed: a failed run is no
    completion, and a task that failed before it succeeded appears once, with its execution metadata."""
    db = str(tmp_path / "recent.db")
    hub = await make_hub(db_path=db)
    sidecar = await identify(hub, "agent-1")
    retried = hub.submit_dict({"description": "fails once, then succeeds", "max_attempts": 3})
    await sidecar.fail(await sidecar.assignment(), "retried")
    await sidecar.run(await sidecar.assignment())
    dead = hub.submit_dict({"description": "fails for good", "max_attempts": 1})
    await sidecar.fail(await sidecar.assignment(), "dead_letter", retryable=False)
    ok = hub.submit_dict({"description": "succeeds"})
    await sidecar.run(await sidecar.assignment())
    live = hub.core.snapshot()["recent_completions"]
    assert [c["task_id"] for c in live] == [retried.task_id, ok.task_id]
    await hub.stop()
    sidecar.close()

    again = await make_hub(db_path=db)
    restored = again.core.snapshot()["recent_completions"]
    assert restored == live
    assert dead.task_id not in {c["task_id"] for c in restored}
    assert all(c["execution_meta"] is not None for c in restored)


async def test_a_price_table_file_broken_while_the_hub_runs_does_not_lock_sidecars_out(make_hub, tmp_path: Path) -> None:
    """identified names the hub's price table version; a file saved later in another encoding makes it
    leave the version out (and log why), and every sidecar still identifies."""
    import shutil

    import agentcom.pricing

    prices = tmp_path / "prices.toml"
    shutil.copy(Path(agentcom.pricing.__file__).with_name("prices.toml"), prices)
    hub = await make_hub(db_path=str(tmp_path / "hub.db"), price_table=str(prices))
    prices.write_bytes('version = "caf\xe9"\n'.encode("latin-1"))  # not UTF-8
    sidecar = await identify(hub, "agent-1")  # before: the decode error failed every identify
    task = hub.submit_dict({"description": "still works"})
    await sidecar.run(await sidecar.assignment())
    assert hub.core.task_detail(task.task_id)["status"] == "completed"
    sidecar.close()


async def test_a_rejected_task_waits_for_a_busy_sidecar_that_did_not_reject_it(make_hub, tmp_path: Path) -> None:
    """A sidecar that cannot run a task rejects it (an attempt, as the spec says). While another
    connected sidecar that could take it is busy, the task waits for that one instead of bouncing back
    to the rejecter until its attempts run out within milliseconds."""
    hub = await make_hub(db_path=str(tmp_path / "hub.db"))
    able = await identify(hub, "able")
    busy = hub.submit_dict({"description": "keeps the able sidecar busy", "priority": "urgent"})
    first = await able.assignment()
    assert first["task_id"] == busy.task_id
    unable = await identify(hub, "unable")
    task = hub.submit_dict({"description": "needs what 'unable' lacks", "max_attempts": 3})
    offered = await unable.assignment()
    assert offered["task_id"] == task.task_id
    await unable.send(m.TaskRejected(task_id=task.task_id, generation=offered["generation"],
                                     reason="cannot run it here: no Anthropic API key"))
    await unable.nothing_else()  # not offered to it again, though it is the only free sidecar
    detail = hub.core.task_detail(task.task_id)
    assert (detail["status"], detail["attempts"]) == ("queued", 1)
    assert "no Anthropic API key" in detail["last_error"]

    await able.run(first)  # the able sidecar frees up: it gets the task (at the next re-check)
    again = await able.assignment(heartbeat_s=HEARTBEAT_S)
    assert again["task_id"] == task.task_id
    await able.run(again)
    assert hub.core.task_detail(task.task_id)["status"] == "completed"
    able.close()
    unable.close()
