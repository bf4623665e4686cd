"""A hub killed with SIGKILL mid-workload and restarted on the same file loses nothing.

The hub runs as ``agentcom hub`` in a child process; a sidecar works through a queue of
mixed priorities over a real WebSocket; the hub is SIGKILLed right after the sidecar sent
a completion it never saw acknowledged. After a restart on the same DB: every submitted
task is there, every acknowledged completion is kept, the sidecar resumes and resends its
outcome (as its journal would), the rest of the queue comes in the same order, and no
task ends up completed twice.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from agentcom.protocol import messages as m
from hub.wire import Sidecar, eventually, result

from .conftest import HubProcess, agentcom

pytestmark = pytest.mark.anyio

RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
TASKS = 30
DONE_BEFORE_KILL = 10


async def _call(http: AsyncHTTPClient, hub: HubProcess, method: str, path: str, body: Any = None) -> Any:
    request = HTTPRequest(hub.url + path, method=method, headers={"Authorization": f"Bearer {hub.admin_token}"},
                          body=json.dumps(body) if body is not None else None, request_timeout=10)
    response = await http.fetch(request)
    return json.loads(response.body)


async def _sidecar(hub: HubProcess, token: str, **identify: Any) -> Sidecar:
    sidecar = Sidecar(await websocket_connect(hub.url.replace("http", "ws", 1) + "/agentcom/ws/sidecar"), "agent-1")
    await sidecar.send(m.Identify(agent_id="agent-1", token=token, protocol_version=1, **identify))
    await sidecar.expect("identified", agent_id="agent-1")
    return sidecar


def _committed(db: Path, task_id: str) -> bool:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT status FROM tasks WHERE task_id=?", (task_id,)).fetchone() == ("completed",)
    finally:
        conn.close()


@pytest.mark.parametrize("kill", ["at_once", "after_commit"])
async def test_sigkill_mid_workload_then_restart(tmp_path: Path, hub_process: Callable[..., HubProcess],
                                                 cli_env: dict[str, str], kill: str) -> None:
    db = tmp_path / "crash.db"
    hub = hub_process(db)
    token = agentcom("token", "create", "agent-1", "--db", str(db), env=cli_env).stdout.strip()  # hub running
    http = AsyncHTTPClient(force_instance=True)
    rng = random.Random(11)
    submitted = []
    for i in range(TASKS):
        priority = rng.choice(list(RANK))
        answer = await _call(http, hub, "POST", "/agentcom/api/tasks", {"description": f"job {i}", "priority": priority})
        submitted.append((RANK[priority], i, answer["task_id"]))
    expected = [task_id for _, _, task_id in sorted(submitted)]

    sidecar = await _sidecar(hub, token)
    acknowledged = []
    for _ in range(DONE_BEFORE_KILL):
        assign = await sidecar.assignment()
        await sidecar.run(assign)
        acknowledged.append(assign["task_id"])
    assert acknowledged == expected[:DONE_BEFORE_KILL]
    inflight = await sidecar.assignment()
    assert inflight["task_id"] == expected[DONE_BEFORE_KILL]
    await sidecar.accept(inflight)
    outcome = m.TaskComplete(task_id=inflight["task_id"], generation=inflight["generation"], result=result())
    await sidecar.send(outcome)  # ...and the hub dies before we see the ack
    if kill == "after_commit":  # the completion is on disk, only its ack is lost
        await eventually(lambda: _committed(db, inflight["task_id"]), "completion committed")
    code, _, _ = hub.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    sidecar.close()

    hub = hub_process(db)
    listed = await _call(http, hub, "GET", "/agentcom/api/tasks?limit=1000")
    status = {t["task_id"]: t["status"] for t in listed["tasks"]}
    assert listed["count"] == TASKS and set(status) == set(expected)  # every submitted task is still there
    assert all(status[t] == "completed" for t in acknowledged)  # every acknowledged completion was kept
    assert status[inflight["task_id"]] in (("working", "completed") if kill == "at_once" else ("completed",))
    following = expected[DONE_BEFORE_KILL + 1]  # handed out as soon as the in-flight task completed
    assert status[following] == ("assigned" if status[inflight["task_id"]] == "completed" else "queued")
    assert all(status[t] == "queued" for t in expected[DONE_BEFORE_KILL + 2:])

    sidecar = await _sidecar(hub, token, resume=[m.ResumeEntry(task_id=inflight["task_id"],
                                                               generation=inflight["generation"])])
    answer = await sidecar.recv()
    if status[inflight["task_id"]] == "working":
        assert answer == {"type": "task_continue", "task_id": inflight["task_id"],
                          "generation": inflight["generation"]}
    else:
        assert answer == {"type": "task_reassign", "task_id": inflight["task_id"]}
    await sidecar.send(outcome)  # the outcome again: recorded now, or acknowledged as a duplicate

    rest = expected[DONE_BEFORE_KILL + 1:]
    order: list[str] = []
    complete_acks: list[str] = []
    while len(complete_acks) < len(rest) + 1:
        frame = await sidecar.recv()
        if frame["type"] == "task_assign":
            order.append(frame["task_id"])
            await sidecar.send(m.TaskAccepted(task_id=frame["task_id"], generation=frame["generation"]))
            await sidecar.send(m.TaskComplete(task_id=frame["task_id"], generation=frame["generation"],
                                              result=result()))
        elif frame["type"] == "task_ack" and frame["status"] == "complete":
            complete_acks.append(frame["task_id"])
        else:
            assert frame == {"type": "task_ack", "task_id": frame["task_id"], "status": "accepted"}, frame
    assert order == rest  # the queue order survived the crash
    assert sorted(complete_acks) == sorted(rest + [inflight["task_id"]])
    sidecar.close()
    http.close()
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err

    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*), sum(status = 'completed') FROM tasks").fetchone() == (TASKS, TASKS)
    runs = dict(conn.execute("SELECT task_id, count(*) FROM executions WHERE status = 'success' GROUP BY task_id"))
    assert runs == {t: 1 for t in expected}  # none completed twice
    events = dict(conn.execute("SELECT task_id, count(*) FROM task_history WHERE event = 'completed' GROUP BY task_id"))
    assert events == {t: 1 for t in expected}
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
