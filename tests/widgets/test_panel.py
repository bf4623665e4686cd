"""ExecutionPanel: rendered HTML (colours, escaping), bounds, task selection and throttling."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from agentcom.client import Feed, HubClient
from agentcom.hub import Hub
from agentcom.widgets import ExecutionPanel
from client.support import Sidecar, eventually

pytestmark = pytest.mark.anyio

XSS = "<script>alert('owned')</script>"


def updates_of(panel: ExecutionPanel) -> list[str]:
    """Every value the panel's HTML view was set to (each one is a sync message to the frontend)."""
    values: list[str] = []
    panel.view.observe(lambda change: values.append(change["new"]), "value")
    return values


def span(html: str, kind: str) -> str:
    match = re.search(rf'<span class="ac-{kind}"( style="[^"]*")?>(.*?)</span>', html, re.S)
    assert match, f"no {kind} span in {html}"
    return match.group(0)


async def test_streams_each_event_type_in_its_colour_and_escapes_agent_text(hub: Hub, client: HubClient) -> None:
    await client.wait_live()
    panel = ExecutionPanel(client)
    side = await Sidecar.connect(hub, "agent-a")
    hub.submit_dict({"description": f"describe {XSS}", "complexity_tier": "trivial"})
    assign = await side.take()
    for kind in ("token", "stdout", "stderr", "status", "error"):
        await side.emit(assign, kind, f"{kind}: {XSS}\n", tokens=42, model="qwen<2.5>")
    await eventually(lambda: "error: " in panel.view.value, "the error line in the panel")
    html = panel.view.value
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in html
    assert "style=" not in span(html, "token") and "style=" not in span(html, "stdout")
    assert 'style="color:#fbbf24"' in span(html, "stderr")
    assert "color:#ef4444;font-weight:bold" in span(html, "error")
    assert "font-style:italic" in span(html, "status")
    assert html.index("token: ") < html.index("stdout: ") < html.index("stderr: ") < html.index("status: ") < html.index("error: ")
    assert "flex-direction:column-reverse" in html          # the box keeps the newest line in view

    panel.select(assign["task_id"])
    html = panel.view.value
    assert "qwen&lt;2.5&gt;" in html and "color:#a855f7" in html and "42 tokens" in html
    assert "describe &lt;script&gt;" in html and "on agent-a" in html
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"] == panel.view.value and "[stderr]" in bundle["text/plain"]


async def test_selector_lists_streaming_tasks_and_filters_the_view(hub: Hub, client: HubClient) -> None:
    await client.wait_live()
    panel = ExecutionPanel(client)
    a, b = await Sidecar.connect(hub, "agent-a"), await Sidecar.connect(hub, "agent-b")
    hub.submit_dict({"description": "alpha job", "complexity_tier": "trivial"})
    hub.submit_dict({"description": "beta job", "complexity_tier": "trivial"})
    first, second = await a.take(), await b.take()
    await a.emit(first, "stdout", "from alpha\n")
    await b.emit(second, "stdout", "from beta\n")
    await eventually(lambda: len(panel.selector.options) == 3 and "from beta" in panel.view.value, "both tasks")
    labels = dict((value, label) for label, value in panel.selector.options)
    assert labels[first["task_id"]].endswith("alpha job") and labels[""] == "All tasks"
    html = panel.view.value
    assert first["task_id"] in html and second["task_id"] in html   # the all-tasks view labels each run
    panel.selector.value = second["task_id"]                          # what a user's click does
    assert "from beta" in panel.view.value and "from alpha" not in panel.view.value
    await a.emit(first, "stdout", "more alpha\n")
    await b.emit(second, "stdout", "more beta\n")
    await eventually(lambda: "more beta" in panel.view.value, "the selected task's next line")
    assert "alpha" not in panel.view.value.replace("alpha job", "")


async def test_buffers_are_bounded_and_the_view_shows_the_newest_lines(anyio_backend: str) -> None:
    feed = Feed(events_per_task=50)
    panel = ExecutionPanel(feed, task_id="t-1", max_lines=20)
    for i in range(1_000):
        feed.apply({"type": "execution_event", "task_id": "t-1", "generation": 1, "agent_id": "a",
                    "event_type": "stderr" if i % 2 else "stdout", "text": f"line {i:04d}\n",
                    "tokens_so_far": None, "model": None, "timestamp": i, "seq": i + 1})
    panel.refresh()
    html = panel.view.value
    assert len(feed.streams["t-1"].events) == 50
    assert "line 0999" in html and "line 0980" in html and "line 0979" not in html
    assert "last 20 of 1,000 events" in html
    big = ExecutionPanel(Feed(), max_chars=1_000)
    for i in range(5):
        big.ingest({"type": "execution_event", "task_id": "t", "generation": 1, "event_type": "stdout",
                    "text": f"{i}" * 600, "seq": i + 1})
    big.refresh()
    assert "4" * 600 in big.view.value and "2" * 600 not in big.view.value


async def test_ten_thousand_events_cause_a_few_view_updates(anyio_backend: str) -> None:
    panel = ExecutionPanel(Feed(), interval=0.1)
    values = updates_of(panel)
    for chunk in range(40):
        for i in range(250):
            n = chunk * 250 + i
            panel.ingest({"type": "execution_event", "task_id": f"t-{n % 3}", "generation": 1, "agent_id": "a",
                          "event_type": "token", "text": f"tok{n} ", "tokens_so_far": n, "model": "m",
                          "timestamp": n, "seq": n // 3 + 1})
        await asyncio.sleep(0.005)       # the loop runs between bursts, as it does between socket reads
    await eventually(lambda: not panel._throttle.dirty, "the last render")
    assert panel.feed.events_received == 10_000
    assert 1 <= len(values) <= 30, len(values)
    assert "tok9999" in panel.view.value


async def test_throttle_holds_with_events_through_the_real_hub(hub: Hub, client: HubClient) -> None:
    await client.wait_live()
    panel = ExecutionPanel(client, interval=0.1)
    values = updates_of(panel)
    # four agents with 2,500 events each: one sidecar connection may send at most 5,000 progress frames/s
    sides = [await Sidecar.connect(hub, f"agent-{n}") for n in range(4)]
    for n in range(4):
        hub.submit_dict({"description": f"flood {n}", "complexity_tier": "trivial"})
    assigns = [await side.take() for side in sides]
    started = time.monotonic()
    for i in range(2_500):
        for side, assign in zip(sides, assigns):
            await side.emit(assign, "token", f"w{i} ")
    await eventually(lambda: client.feed.events_received + client.feed.dropped >= 10_000, "all events", timeout=60)
    await eventually(lambda: not panel._throttle.dirty, "the last render")
    elapsed = time.monotonic() - started
    # at most one render per interval (plus the first and the last), however many events arrived
    assert len(values) <= elapsed / 0.1 + 2, (len(values), elapsed)
    assert len(values) <= 100
    assert "w2499" in panel.view.value


async def test_collapsible_and_detachable(anyio_backend: str) -> None:
    feed = Feed()
    panel = ExecutionPanel(feed, collapsed=True, title="Output")
    assert panel.accordion.selected_index is None and panel.accordion.titles == ("Output",)
    panel.accordion.selected_index = 0
    panel.close()
    feed.apply({"type": "execution_event", "task_id": "t", "generation": 1, "event_type": "stdout", "text": "late",
                "seq": 1})
    assert "late" not in panel.view.value
    assert feed._listeners == []



async def test_follow_switches_to_the_newest_streaming_task(anyio_backend: str) -> None:
    panel = ExecutionPanel(Feed(), follow=True)
    for n, task in enumerate(("t-old", "t-new")):
        panel.ingest({"type": "execution_event", "task_id": task, "generation": 1, "event_type": "stdout",
                      "text": f"from {task}", "seq": 1})
        panel.refresh()
        assert panel.task_id == task
    assert "from t-new" in panel.view.value and "from t-old" not in panel.view.value
