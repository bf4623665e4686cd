"""Which task goes where: priorities with FIFO inside, dependencies, capabilities, pinning, slots."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agentcom import Hub

from .wire import Api, Sidecar, identify

pytestmark = pytest.mark.anyio

RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


async def _drain(sidecar: Sidecar, count: int) -> list[str]:
    order = []
    for _ in range(count):
        assign = await sidecar.assignment()
        order.append(assign["task_id"])
        await sidecar.run(assign)
    return order


async def test_priorities_first_then_fifo_inside_each(hub: Hub, api: Api, sidecar_ws) -> None:
    rng = random.Random(7)
    submitted = []
    for i in range(24):
        priority = rng.choice(list(RANK))
        submitted.append((priority, i, await api.submit(description=f"task {i}", priority=priority)))
    expected = [task_id for _, _, task_id in sorted(submitted, key=lambda s: (RANK[s[0]], s[1]))]
    sidecar = await sidecar_ws(hub)
    assert await _drain(sidecar, len(submitted)) == expected


async def test_a_later_urgent_task_overtakes_queued_work(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    first = await api.submit(priority="low")
    running = await sidecar.assignment()
    assert running["task_id"] == first
    normal = await api.submit(priority="normal")
    urgent = await api.submit(priority="urgent")
    await sidecar.run(running)
    assert await _drain(sidecar, 2) == [urgent, normal]


async def test_a_retried_task_keeps_its_place_in_line(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    first = await api.submit()
    assign = await sidecar.assignment()
    later = await api.submit()
    await sidecar.fail(assign, "retried")
    assert await _drain(sidecar, 2) == [first, later]


async def test_depends_on_waits_for_completion(hub: Hub, api: Api, sidecar_ws) -> None:
    parent = await api.submit(description="build")
    child = await api.submit(description="deploy", depends_on=[parent], priority="urgent")
    other = await api.submit(description="unrelated", priority="low")
    sidecar = await sidecar_ws(hub, concurrency=2)
    got = {(await sidecar.assignment())["task_id"], (await sidecar.assignment())["task_id"]}
    assert got == {parent, other}  # the urgent child is not ready
    assert (await api.task(child))["status"] == "queued"
    await sidecar.nothing_else()


async def test_a_dependent_runs_once_its_dependency_completed(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    parent = await api.submit(description="build")
    child = await api.submit(description="deploy", depends_on=[parent])
    assign = await sidecar.assignment()
    assert assign["task_id"] == parent
    await sidecar.accept(assign)
    await sidecar.nothing_else()  # idle slot, but the child waits
    await sidecar.complete(assign)
    assert (await sidecar.assignment())["task_id"] == child


async def test_a_failed_dependency_keeps_the_dependent_waiting(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    parent = await api.submit(description="build", max_attempts=1)
    child = await api.submit(description="deploy", depends_on=[parent])
    await sidecar.fail(await sidecar.assignment(), "dead_letter")
    await sidecar.nothing_else()
    assert (await api.task(child))["status"] == "queued"


async def test_depending_on_a_completed_task_is_ready_at_once(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    parent = await api.submit()
    await sidecar.run(await sidecar.assignment())
    child = await api.submit(depends_on=[parent, parent])
    assert (await sidecar.assignment())["task_id"] == child
    assert (await api.task(child))["depends_on"] == [parent]


async def test_an_unknown_dependency_is_a_422_naming_it(hub: Hub, api: Api) -> None:
    known = await api.submit()
    status, body = await api.call("POST", "/agentcom/api/tasks",
                                  {"description": "x", "depends_on": [known, "task-missing"]})
    assert status == 422
    assert body["error"] == "validation_failed"
    assert body["errors"] == [{"field": "depends_on", "error": "unknown task id 'task-missing'"}]
    assert "task-missing" in body["message"]
    assert hub.core.snapshot()["queue"]["queued"] == 1


async def test_dependencies_survive_a_restart(make_hub, tmp_path: Path) -> None:
    db = str(tmp_path / "deps.db")
    hub = await make_hub(db_path=db)
    parent = hub.submit_dict({"description": "build"}).task_id
    child = hub.submit_dict({"description": "deploy", "depends_on": [parent], "priority": "urgent"}).task_id
    await hub.stop()
    again = await make_hub(db_path=db)
    sidecar = await identify(again, "agent-1")
    assign = await sidecar.assignment()
    assert assign["task_id"] == parent
    await sidecar.accept(assign)
    await sidecar.nothing_else()
    await sidecar.complete(assign)
    assert (await sidecar.assignment())["task_id"] == child
    sidecar.close()


async def test_needed_capabilities_pick_the_sidecar(hub: Hub, api: Api, sidecar_ws) -> None:
    plain = await sidecar_ws(hub, "agent-plain", capabilities=["shell"])
    gpu_task = await api.submit(description="train", priority="urgent", needed_capabilities=["gpu", "shell"])
    plain_task = await api.submit(description="lint", priority="low")
    assert (await plain.assignment())["task_id"] == plain_task  # the urgent GPU task does not block it
    await plain.nothing_else()
    assert (await api.task(gpu_task))["status"] == "queued"
    gpu = await sidecar_ws(hub, "agent-gpu", capabilities=["gpu", "shell", "docker"])
    assign = await gpu.assignment()
    assert assign["task_id"] == gpu_task
    assert (await api.task(gpu_task))["assigned_to"] == "agent-gpu"


async def test_assign_to_pins_a_task_to_one_agent(hub: Hub, api: Api, sidecar_ws) -> None:
    one = await sidecar_ws(hub, "agent-1")
    pinned = await api.submit(description="for agent 2", priority="urgent", assign_to="agent-2")
    await one.nothing_else()
    two = await sidecar_ws(hub, "agent-2")
    assert (await two.assignment())["task_id"] == pinned
    free = await api.submit(description="anyone")
    assert (await one.assignment())["task_id"] == free


async def test_a_sidecar_with_concurrency_gets_that_many_tasks(hub: Hub, api: Api, sidecar_ws) -> None:
    ids = [await api.submit(description=f"t{i}") for i in range(3)]
    sidecar = await sidecar_ws(hub, concurrency=2)
    first, second = await sidecar.assignment(), await sidecar.assignment()
    assert [first["task_id"], second["task_id"]] == ids[:2]
    await sidecar.nothing_else()
    await sidecar.run(first)
    assert (await sidecar.assignment())["task_id"] == ids[2]


async def test_tasks_spread_over_idle_sidecars(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecars = [await sidecar_ws(hub, f"agent-{i}") for i in range(3)]
    ids = {await api.submit(description=f"t{i}") for i in range(3)}
    got = {(await s.assignment())["task_id"] for s in sidecars}
    assert got == ids
