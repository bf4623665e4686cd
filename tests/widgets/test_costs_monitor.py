"""CostTable, Monitor and BatchProgress drawing a real hub's feed; the live executions table's display."""

from __future__ import annotations

import re
from typing import Any

import ipywidgets  # type: ignore[import-untyped]
import pytest

from agentcom.client import Feed, HubClient
from agentcom.hub import Hub
from agentcom.widgets import BatchProgress, CostTable, Monitor
from client.support import Sidecar, eventually, run_task

pytestmark = pytest.mark.anyio


def body_rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


async def test_cost_table_has_a_row_per_completed_task_totals_and_sorting(hub: Hub, client: HubClient) -> None:
    await client.wait_live()
    table = CostTable(client)
    assert "no completed tasks yet" in table.view.value
    side = await Sidecar.connect(hub, "agent-a")
    local = await run_task(hub, side, "local <b>bold</b> run", model_used="llama3.2:3b", tokens_in=100, tokens_out=50,
                           estimated_cost_usd=0.0, equivalent_claude_cost_usd=0.00105)
    cloud = await run_task(hub, side, "cloud run", model_used="claude-sonnet-4-5", tokens_in=1000, tokens_out=500,
                           estimated_cost_usd=0.0105, equivalent_claude_cost_usd=0.0105)
    unpriced = await run_task(hub, side, "mystery run", model_used="mystery-model", tokens_in=10, tokens_out=5,
                              estimated_cost_usd=None, equivalent_claude_cost_usd=None)
    await eventually(lambda: len(body_rows(table.view.value)) == 3, "three rows")
    html = table.view.value
    assert "local &lt;b&gt;bold&lt;/b&gt; run" in html and "<b>bold</b>" not in html
    assert [r["task_id"] for r in table.rows()] == [unpriced, cloud, local]        # newest first
    rows = body_rows(html)
    assert "agent-a" in rows[1] and "trivial" in rows[1] and "claude-sonnet-4-5" in rows[1]
    assert "1,000" in rows[1] and "500" in rows[1] and "$0.0105" in rows[1]
    assert "$0.00 (local)" in rows[2] and "$0.0010" in rows[2]                      # saved vs Claude
    assert "unpriced" in rows[0]
    foot = html.split("<tfoot>", 1)[1]
    assert "3 task(s)" in foot and "1,110" in foot and "555" in foot and "$0.0105" in foot
    assert "1 unpriced" in html and "hub totals" in html

    table.sort_by.value = "cost"                       # what choosing in the Dropdown does
    assert [r["task_id"] for r in table.rows()] == [cloud, local, unpriced]      # unknown cost sorts last
    assert "cloud run" in body_rows(table.view.value)[0]
    table.direction.value = False
    assert [r["task_id"] for r in table.rows()] == [local, cloud, unpriced]
    table.sort_by.value = "tokens"
    assert "mystery run" in body_rows(table.view.value)[0]          # 15 tokens, ascending

    fourth = await run_task(hub, side, "late arrival", tokens_in=1)
    await eventually(lambda: len(body_rows(table.view.value)) == 4, "the live fourth row")
    assert fourth in table.view.value
    assert "CostTable: 4 completed task(s)" in table._repr_mimebundle_()["text/plain"]


async def test_monitor_shows_agents_queue_panel_and_table_in_one_display(hub: Hub, client: HubClient) -> None:
    await client.wait_live()
    monitor = client.monitor()
    assert isinstance(monitor, Monitor)
    assert monitor.children[1] is monitor.panel and monitor.children[2].children[0] is monitor.table
    side = await Sidecar.connect(hub, "agent-x", name="<i>x</i>", capabilities=["shell"])
    hub.submit_dict({"description": "waiting", "complexity_tier": "trivial", "needed_capabilities": ["gpu"]})
    await run_task(hub, side, "runs", [("stdout", "monitor line\n")])
    await eventually(lambda: "&lt;i&gt;x&lt;/i&gt;" in monitor.header.value and "idle" in monitor.header.value,
                     "the idle agent")
    await eventually(lambda: "completed <b>1</b>" in monitor.header.value, "queue counts")
    assert "queued <b>1</b>" in monitor.header.value and "open" in monitor.header.value
    await eventually(lambda: "monitor line" in monitor.panel.view.value, "the panel line")
    await eventually(lambda: len(body_rows(monitor.table.view.value)) == 1, "the table row")
    bundle = monitor._repr_mimebundle_()
    assert bundle["text/plain"].startswith("AgentCom Monitor (open") and "agent-x (idle)" in bundle["text/plain"]
    assert "monitor line" in bundle["text/html"] and "&lt;i&gt;x&lt;/i&gt;" in bundle["text/html"]
    # one HTML view per part, never an Output widget (whose append_* re-sends everything per event)
    parts = walk(monitor)
    assert monitor.panel in parts and monitor.table in parts and monitor.panel.view in parts
    assert not any(isinstance(part, ipywidgets.Output) for part in parts), [type(p).__name__ for p in parts]
    monitor.close()
    assert client.feed._listeners == []


def walk(widget: Any) -> list[Any]:
    """A widget and everything under it."""
    found = [widget]
    for child in getattr(widget, "children", ()):
        found.extend(walk(child))
    return found


async def test_live_executions_display_their_frame(hub: Hub, client: HubClient) -> None:
    side = await Sidecar.connect(hub, "agent-a")
    first = await run_task(hub, side, "first", tokens_in=31)
    live = await client.live_executions().wait_ready()
    text, html = repr(live), live._repr_html_()
    # echoing the holder in a cell shows the DataFrame itself, not just a count
    assert text.startswith("LiveExecutions: 1 executions, live (.frame is the DataFrame)")
    assert text.split("\n", 1)[1] == repr(live.frame) and first in text
    assert "<code>.frame</code>" in html and live.frame._repr_html_() in html
    await client.wait_live()
    second = await run_task(hub, side, "second", tokens_in=7)
    await eventually(lambda: second in repr(live), "the new row in the repr")
    assert "2 executions" in live._repr_html_()
    live.close()


async def test_batch_progress_follows_the_batch_to_the_end(hub: Hub, client: HubClient) -> None:
    await client.wait_live()
    side = await Sidecar.connect(hub, "agent-a")
    batch = await client.asubmit_many([{"description": f"job {i}", "tier": "trivial"} for i in range(3)],
                                      progress=True)
    bar = batch.progress
    assert isinstance(bar, BatchProgress) and len(batch.task_ids) == 3
    assert bar.bar.value == 0 and "0/3 done" in bar.label.value and bar.bar.bar_style == "info"
    for n in range(3):
        assign = await side.take()
        if n == 1:
            await side.fail(assign, "exit 2", retryable=False)
        else:
            await side.complete(assign)
    await eventually(lambda: bar.bar.value == 3, "every task of the batch to finish")
    assert bar.bar.bar_style == "warning" and "1 failed" in bar.label.value
    assert bar.text_summary() == "BatchProgress: 3/3 done, 1 failed, 3 submitted"


def test_text_fallbacks_without_a_frontend() -> None:
    feed = Feed()
    feed.apply({"type": "snapshot", "data": {"agents": [{"agent_id": "a1", "state": "working"}],
                                             "queue": {"working": 1}, "totals": {}}})
    monitor = Monitor(feed)
    assert "agents: a1 (working)" in repr(monitor._repr_mimebundle_()["text/plain"])
    assert repr(monitor).startswith("<Monitor")
    with pytest.raises(TypeError, match="HubClient, a Feed or None"):
        CostTable(object())
    with pytest.raises(ValueError, match="sort_by"):
        CostTable(feed, sort_by="price")


async def test_blocking_submit_many_counts_submissions(hub: Hub, client: HubClient) -> None:
    import asyncio

    batch = await asyncio.to_thread(client.submit_many, ["a", "b"], progress=True)
    assert [a["status"] for a in batch] == ["queued", "queued"]
    assert batch.progress.text_summary() == "BatchProgress: 0/2 done, 0 failed, 2 submitted"
    assert (await asyncio.to_thread(client.submit_many, ["c"])).progress is None   # not in a notebook
    with pytest.raises(Exception, match="1 of 2 tasks were queued"):
        await client.asubmit_many(["d", {"description": "e", "priority": "asap"}], progress=True)


def test_batch_progress_reads_statuses_folded_into_a_snapshot() -> None:
    feed = Feed()
    bar = BatchProgress(2, feed)
    bar.submitted("t1")
    bar.submitted("t2")
    feed.apply({"type": "snapshot", "data": {"tasks": [{"task_id": "t1", "status": "completed"},
                                                       {"task_id": "t2", "status": "dead_letter"}]}})
    bar.refresh()
    assert (bar.bar.value, bar.bar.bar_style) == (2, "warning")
