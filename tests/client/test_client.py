"""HubClient against a real hub: blocking calls, their awaitable twins, errors, typed executions."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import pytest

from agentcom import errors
from agentcom.client import HubClient
from agentcom.hub import Hub

from .support import Sidecar, eventually, run_task

pytestmark = pytest.mark.anyio


async def test_blocking_calls_submit_list_and_read_the_hub(hub: Hub, client: HubClient) -> None:
    # Blocking calls run in a worker thread here so this loop stays free to serve the hub,
    # exactly as in a kernel talking to its Jupyter server in another process.
    answer = await asyncio.to_thread(client.submit, "fix typo in README", tier="trivial", priority="high",
                                     shell_command="echo hi")
    assert answer["status"] == "queued" and answer["priority"] == "high"
    task_id = answer["task_id"]
    detail = await asyncio.to_thread(client.task, task_id)
    assert detail["metadata"] == {"shell_command": "echo hi"} and detail["tier"] == "trivial"
    tasks = await asyncio.to_thread(client.tasks, status="queued")
    assert [t["task_id"] for t in tasks] == [task_id]
    assert await asyncio.to_thread(client.tasks, status="completed") == []
    side = await Sidecar.connect(hub, "agent-a", capabilities=["shell"])
    agents = await asyncio.to_thread(client.agents)
    assert [(a["agent_id"], a["capabilities"]) for a in agents] == [("agent-a", ["shell"])]
    assign = await side.take()
    await side.complete(assign)
    snapshot = await asyncio.to_thread(client.snapshot)
    assert snapshot["queue"]["completed"] == 1
    assert snapshot["recent_completions"][0]["task_id"] == task_id
    assert (await asyncio.to_thread(client.health))["status"] == "ok"


async def test_cancel_and_retry(hub: Hub, client: HubClient) -> None:
    task_id = (await client.asubmit("wait for me", tier="trivial"))["task_id"]
    assert (await asyncio.to_thread(client.cancel, task_id))["status"] == "cancelled"
    assert (await asyncio.to_thread(client.retry, task_id))["status"] == "queued"
    assert (await client.acancel(task_id))["status"] == "cancelled"
    assert (await client.aretry(task_id))["status"] == "queued"


async def test_awaitable_twins_work_on_the_hubs_own_loop(hub: Hub, client: HubClient) -> None:
    answers = await client.asubmit_many(["one", {"description": "two", "tier": "trivial"}], progress=False)
    assert [a["status"] for a in answers] == ["queued", "queued"]
    assert len(await client.atasks()) == 2
    assert (await client.atask(answers[0]["task_id"]))["description"] == "one"
    assert await client.aagents() == []
    assert (await client.asnapshot())["queue"]["queued"] == 2
    assert (await client.ahealth())["status"] == "ok"


async def test_a_blocking_call_on_the_loop_serving_the_hub_refuses_instead_of_hanging(hub: Hub, client: HubClient) -> None:
    with pytest.raises(errors.AgentComError, match=r"await client\.asubmit"):
        client.submit("would deadlock")
    assert await client.atasks() == []


async def test_errors_map_to_agentcom_exceptions(hub: Hub, client: HubClient) -> None:
    with pytest.raises(errors.ValidationFailed) as invalid:
        await client.asubmit("x", priority="asap")
    assert invalid.value.errors[0]["field"] == "priority"
    with pytest.raises(errors.ValidationFailed):
        await asyncio.to_thread(client.submit, "x", priorty="high")
    with pytest.raises(errors.NotFound):
        await client.atask("task-nope")
    with pytest.raises(errors.NotFound):
        await asyncio.to_thread(client.cancel, "task-nope")
    done = hub.submit_dict({"description": "c", "complexity_tier": "trivial"}).task_id
    await client.acancel(done)
    with pytest.raises(errors.InvalidState):
        await client.acancel(done)
    with pytest.raises(ValueError, match="unknown task filter"):
        await client.atasks(state="queued")
    intruder = HubClient(hub.url, "wrong-token")
    with pytest.raises(errors.HubUnavailable, match="refused the credentials"):
        await intruder.atasks()
    with pytest.raises(errors.HubUnavailable, match="refused the credentials"):
        await asyncio.to_thread(intruder.tasks)
    nowhere = HubClient("http://127.0.0.1:9", "t", timeout=5)
    with pytest.raises(errors.HubUnavailable, match="cannot reach"):
        await asyncio.to_thread(nowhere.agents)
    with pytest.raises(errors.HubUnavailable, match="cannot reach"):
        await nowhere.aagents()


async def test_executions_frame_is_typed(hub: Hub, client: HubClient) -> None:
    side = await Sidecar.connect(hub, "agent-a")
    await run_task(hub, side, "cheap", [("stdout", "ok\n")])
    await run_task(hub, side, "cloud", model_used="claude-sonnet-4-5", tokens_in=1000, tokens_out=500,
                   estimated_cost_usd=0.0105, equivalent_claude_cost_usd=0.0105)
    hub.submit_dict({"description": "broken", "complexity_tier": "trivial"})
    await side.fail(await side.take(), "exit 1", retryable=False)
    for frame in (await asyncio.to_thread(client.executions), await client.aexecutions()):
        assert len(frame) == 3
        assert str(frame["completed_at"].dtype) == "datetime64[ms, UTC]"
        assert frame["completed_at"].dt.tz is not None
        for column in ("agent_id", "tier", "model_used", "status"):
            assert isinstance(frame[column].dtype, pd.CategoricalDtype), column
        for column in ("estimated_cost_usd", "equivalent_claude_cost_usd", "savings_usd"):
            assert frame[column].dtype == pd.Float64Dtype(), column
        for column in ("tokens_in", "tokens_out", "execution_ms"):
            assert frame[column].dtype == pd.Int64Dtype(), column
        assert frame["tokens_in"].sum() == 1120
        assert frame["estimated_cost_usd"].sum() == pytest.approx(0.0105)
        assert sorted(frame["status"].astype(str)) == ["failed", "success", "success"]
    assert len(await asyncio.to_thread(client.executions, since=2**61)) == 0


async def test_live_executions_grow_as_executions_finish(hub: Hub, client: HubClient) -> None:
    side = await Sidecar.connect(hub, "agent-a")
    await run_task(hub, side, "before", [("stdout", "x\n")])
    live = await client.live_executions().wait_ready()
    await client.wait_live()
    assert len(live) == 1 and list(live.frame["task_id"]) == [(await client.atasks())[0]["task_id"]]
    second = await run_task(hub, side, "after", [("stdout", "y\n")], tokens_in=7)
    await eventually(lambda: len(live) == 2, "the second execution")
    frame = live.frame
    assert frame["task_id"].iloc[-1] == second and frame["tokens_in"].iloc[-1] == 7
    assert frame.dtypes.equals((await client.aexecutions()).dtypes)
    hub.submit_dict({"description": "fails", "complexity_tier": "trivial"})
    await side.fail(await side.take(), "nope", retryable=False)
    await eventually(lambda: len(live) == 3, "the failed execution")
    assert "3 executions" in live._repr_html_()
    assert live.fetches >= 2
    live.close()


async def test_client_repr_and_feed_lifecycle(hub: Hub, client: HubClient) -> None:
    assert repr(client) == f"<HubClient {hub.url} (given url)>"
    feed = await client.wait_live()
    assert feed is client.feed and feed.connection == "open"
    assert "feed open" in repr(client)
    client.close()
    assert feed.connection == "closed"


def test_task_fields_and_batches_are_checked_before_sending() -> None:
    client = HubClient("http://127.0.0.1:9", "t")
    with pytest.raises(ValueError, match="needs a description"):
        client.submit_many([{"priority": "high"}], progress=False)
    assert client.submit_many([], progress=False) == []


def test_the_feed_waits_for_a_loop_outside_one() -> None:
    client = HubClient("http://127.0.0.1:9", "t")
    assert client.feed.connection == "idle"   # no running loop: nothing started, nothing raised
    client.close()

