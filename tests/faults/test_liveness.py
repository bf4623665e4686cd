"""A sidecar process that freezes (SIGSTOP) mid-task, and outcomes sent for a generation taken away.

Process-level versions of tests/hub/test_faults.py's single cases: the hub is an
``agentcom hub`` child process. A frozen ``agentcom sidecar`` keeps its socket open but
sends nothing; after ``lease_ms`` the hub closes it and hands its task to another sidecar,
and when the frozen one thaws it gives the task up. Stale frames from a sidecar whose task
was reassigned are refused with ``stale_generation`` and change nothing: not the task, its
history, the execution rows or the totals; the new holder's outcome is the one that counts.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Callable

import pytest
from tornado.websocket import websocket_connect

from agentcom.protocol import messages as m
from cli.conftest import HubProcess, agentcom
from hub.wire import Sidecar, result
from sidecar.harness import Api, SidecarProcess, eventually

from .support import journal_tasks, read_db, record_run, runs_by_task, usd_nano

pytestmark = pytest.mark.anyio

LEASE_MS = 1500


def _token(db: Path, agent_id: str, env: dict[str, str]) -> str:
    return agentcom("token", "create", agent_id, "--db", str(db), env=env).stdout.strip()


async def test_a_frozen_sidecar_is_dropped_after_the_lease_and_its_task_finished_elsewhere_once(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str]) -> None:
    db = tmp_path / "hub.db"
    hub = hub_process(db, "--lease-ms", str(LEASE_MS), "--heartbeat-ms", "200")
    api = Api(hub.url, hub.admin_token)
    runs_log, work = tmp_path / "runs.log", tmp_path / "work"
    work.mkdir()
    frozen = await SidecarProcess(hub.url, "agent-frozen", _token(db, "agent-frozen", cli_env), work).start()
    other = SidecarProcess(hub.url, "agent-other", _token(db, "agent-other", cli_env), work)
    try:
        await eventually(lambda: "identified as" in frozen.output(), "the first sidecar up", timeout=60)
        task_id = await api.submit("outlives its sidecar", complexity_tier="trivial", metadata={
            "shell_command": record_run(runs_log, f"sleep 1; echo finished; touch {work}/ended-$AGENTCOM_GENERATION"),
            "shell": True})
        await eventually(lambda: runs_log.exists() and runs_log.read_text(), "the task running")
        first = await api.task(task_id)
        assert (first["status"], first["assigned_to"]) == ("working", "agent-frozen")
        frozen.send_signal(signal.SIGSTOP)  # alive, socket open, silent
        await other.start()
        done = await eventually(lambda: api.status_is(task_id, "completed", "failed", "dead_letter"), "the outcome")
        agents = await api.call("GET", "/agentcom/api/agents")
        history = done["history"]
        # thawed with its task's process ended and its socket closed by the hub: both wake it at once
        await eventually(lambda: (work / f"ended-{first['generation']}").exists(), "the frozen sidecar's run ended")
        frozen.send_signal(signal.SIGCONT)
        await eventually(lambda: frozen.output().count("identified as") == 2, "the thawed sidecar back")
        await eventually(lambda: not journal_tasks(frozen.state_dir), "the thawed sidecar gave the task up")
        after = await api.task(task_id)
    finally:
        frozen.send_signal(signal.SIGCONT)
        await frozen.stop()
        await other.stop()
    assert [a["agent_id"] for a in agents] == ["agent-other"]  # the frozen one was closed and forgotten
    reclaim = next(h for h in history if h["event"] == "reclaimed")
    assert (reclaim["agent_id"], reclaim["details"]) == ("agent-frozen", {"reason": "lease expired"})
    assert (done["status"], done["assigned_to"], done["attempts"]) == ("completed", "agent-other", 2)
    assert done["generation"] > first["generation"]
    assert after["history"] == history and after["status"] == "completed"  # the thawed sidecar changed nothing
    rows = read_db(db, "SELECT agent_id, generation, status FROM executions WHERE task_id = ?", task_id)
    assert rows == [("agent-other", done["generation"], "success")]
    # the frozen run, then the one that counted
    assert runs_by_task(runs_log)[task_id] == [first["generation"], done["generation"]]
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err


async def _connect(hub: HubProcess, agent_id: str, token: str) -> Sidecar:
    sidecar = Sidecar(await websocket_connect(hub.url.replace("http", "ws", 1) + "/agentcom/ws/sidecar"), agent_id)
    await sidecar.send(m.Identify(agent_id=agent_id, token=token, protocol_version=1))
    await sidecar.expect("identified", agent_id=agent_id)
    return sidecar


async def _state(api: Api, task_id: str) -> tuple[Any, ...]:
    """Everything a stale frame must leave alone."""
    snapshot = await api.call("GET", "/agentcom/api/snapshot")
    return (await api.task(task_id), await api.call("GET", "/agentcom/api/executions"), snapshot["queue"],
            snapshot["totals"])


async def test_outcomes_for_a_generation_taken_away_are_refused_and_change_nothing(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str]) -> None:
    db = tmp_path / "hub.db"
    hub = hub_process(db, "--lease-ms", str(LEASE_MS), "--heartbeat-ms", "200")
    api = Api(hub.url, hub.admin_token)
    old_token = _token(db, "agent-old", cli_env)
    old = await _connect(hub, "agent-old", old_token)
    task_id = await api.submit("changes hands")
    first = await old.assignment()
    await old.accept(first)
    new = await _connect(hub, "agent-new", _token(db, "agent-new", cli_env))
    second = await new.assignment(heartbeat_s=0.1)  # once agent-old, silent, lost its lease
    assert second["task_id"] == task_id and second["generation"] > first["generation"]
    code, reason = await old.closed()
    assert code == 1001 and "lease" in (reason or "")
    await new.accept(second)

    old = await _connect(hub, "agent-old", old_token)  # back, and still believing the task is its own
    stale = first["generation"]
    frames: list[Any] = [
        m.TaskComplete(task_id=task_id, generation=stale, result=result(estimated_cost_usd=0.5)),
        m.TaskFailed(task_id=task_id, generation=stale, error="late", retryable=True, result=result("failed")),
        m.TaskAccepted(task_id=task_id, generation=stale),
        m.TaskRejected(task_id=task_id, generation=stale, reason="late"),
    ]
    for frame in frames:
        before = await _state(api, task_id)
        await old.send(frame)
        error = await old.error("stale_generation")
        assert error["task_id"] == task_id
        assert await _state(api, task_id) == before, frame
    before = await _state(api, task_id)
    await old.send(m.TaskComplete(task_id=task_id, generation=second["generation"], result=result()))
    await old.error("invalid_state")  # the right generation, but not the holder
    assert await _state(api, task_id) == before

    await new.complete(second, estimated_cost_usd=0.25, equivalent_claude_cost_usd=1.0)
    done = await api.task(task_id)
    assert (done["status"], done["assigned_to"], done["generation"]) == ("completed", "agent-new", second["generation"])
    [row] = await api.call("GET", "/agentcom/api/executions")
    assert (row["agent_id"], row["generation"], row["estimated_cost_usd"]) == ("agent-new", second["generation"], 0.25)
    snapshot = await api.call("GET", "/agentcom/api/snapshot")
    assert usd_nano(snapshot["totals"]["cost_usd"]) == usd_nano(0.25)

    before = await _state(api, task_id)
    await old.send(frames[0])  # the stale outcome again, now that the task is closed
    await old.error("stale_generation")
    assert await _state(api, task_id) == before
    old.close()
    new.close()
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err
