"""ExecutionPanel: rendered HTML (colours, escaping), bounds, task selection, throttling, Follow and collapse,
and the socket subscription a panel on one task asks the hub for."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets  # type: ignore[import-untyped]
import pytest

import agentcom.dashboard

from agentcom.client import Feed, HubClient
from agentcom.hub import Hub
from agentcom.protocol import codec
from agentcom.protocol import messages as m
from agentcom.widgets import ExecutionPanel, _render
from client.support import Sidecar, eventually, start_hub

pytestmark = pytest.mark.anyio

XSS = "<script>alert('owned')</script>"


def updates_of(panel: ExecutionPanel) -> list[str]:
    """Every value the panel's HTML view was set to (each one is a sync message to the frontend)."""
    values: list[str] = []
    panel.view.observe(lambda change: values.append(change["new"]), "value")
    return values


def flood(side: Sidecar, assign: dict[str, Any], texts: list[str]) -> list["asyncio.Future[None]"]:
    """Queue one token event per text on the sidecar's socket at once (seq 1, 2, ...): the futures of the writes."""
    writes = []
    for seq, text in enumerate(texts, 1):
        event = m.ExecutionEvent(event_type="token", text=text, tokens_so_far=seq, model="m",
                                 timestamp=int(time.time() * 1000), seq=seq)
        frame = m.TaskProgress(task_id=assign["task_id"], generation=assign["generation"], execution_event=event)
        writes.append(side.ws.write_message(codec.encode(frame)))
    return writes


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
    assert 'style="color:#f59e0b"' in span(html, "stderr")             # the web dashboard's amber
    assert "color:#ef4444;font-weight:bold" in span(html, "error")
    assert "color:#94a3b8;font-style:italic" in span(html, "status")
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
    drawn_on: set[int] = set()         # the threads the view was redrawn on
    panel.view.observe(lambda change: drawn_on.add(threading.get_ident()), "value")
    # four agents with 2,500 events each: one sidecar connection may send at most 5,000 progress frames/s
    sides = [await Sidecar.connect(hub, f"agent-{n}") for n in range(4)]
    for n in range(4):
        hub.submit_dict({"description": f"flood {n}", "complexity_tier": "trivial"})
    assigns = [await side.take() for side in sides]
    threads = {t.ident for t in threading.enumerate()}
    started = time.monotonic()
    # frames are queued on the sockets without waiting for each write, so the flood lasts about a second
    # even on a busy machine and the view-update bound below stays far from the time-based one
    writes = [flood(side, assign, [f"w{i} " for i in range(2_500)]) for side, assign in zip(sides, assigns)]
    for written in writes:
        for future in written:
            await future
    await eventually(lambda: client.feed.events_received + client.feed.dropped >= 10_000, "all events", timeout=60)
    await eventually(lambda: not panel._throttle.dirty, "the last render")
    elapsed = time.monotonic() - started
    # at most one render per interval (plus the first and the last), however many events arrived
    assert len(values) <= elapsed / 0.1 + 2, (len(values), elapsed)
    assert len(values) <= 40, (len(values), elapsed)
    assert "w2499" in panel.view.value
    # everything ran on the loop's thread: no thread was started for the flood and none touched the widget
    assert {t.ident for t in threading.enumerate()} == threads
    assert drawn_on == {threading.get_ident()}


def event(task_id: str, seq: int, text: str, kind: str = "stdout") -> dict[str, Any]:
    return {"type": "execution_event", "task_id": task_id, "generation": 1, "agent_id": "a", "event_type": kind,
            "text": text, "seq": seq}


async def test_collapsed_panel_is_not_redrawn_until_expanded(anyio_backend: str) -> None:
    feed = Feed()
    panel = ExecutionPanel(feed, collapsed=True, title="Output")
    assert panel.accordion.selected_index is None and panel.accordion.titles == ("Output",)
    values = updates_of(panel)
    for seq in range(1, 101):
        feed.apply(event("t", seq, f"hidden {seq}\n"))
    await asyncio.sleep(0.3)              # several render intervals with the loop free: none may draw
    assert values == [] and panel.stale
    assert "hidden 100" in panel.static_html()              # a static copy is still current
    panel.accordion.selected_index = 0                       # the user expands it
    assert len(values) == 1 and "hidden 100" in panel.view.value and not panel.stale
    panel.collapsed = True
    feed.apply(event("t", 101, "while collapsed\n"))
    await asyncio.sleep(0.3)
    assert len(values) == 1
    panel.collapsed = False
    assert "while collapsed" in panel.view.value


async def test_follow_off_keeps_the_view_still_for_a_reader(anyio_backend: str) -> None:
    feed = Feed()
    panel = ExecutionPanel(feed)
    assert panel.follow and panel.follow_toggle.description == "Follow"
    feed.apply(event("t-1", 1, "first line\n"))
    panel.refresh()
    values = updates_of(panel)
    panel.follow_toggle.value = False                        # the user's click, to scroll up and read
    for seq in range(2, 52):
        feed.apply(event("t-1", seq, f"line {seq}\n"))
    await eventually(lambda: panel.follow_toggle.description == "Follow (50 new)", "the count of new lines")
    await asyncio.sleep(0.3)
    assert values == [] and "line 51" not in panel.view.value and "first line" in panel.view.value
    assert "line 51" in panel.static_html() and "paused" in panel.text_summary()
    panel.select("t-1")                                      # choosing a task shows it even while paused
    assert len(values) == 1 and "line 51" in values[-1] and panel.follow_toggle.description == "Follow"
    feed.apply(event("t-1", 52, "line 52\n"))
    await asyncio.sleep(0.3)
    assert len(values) == 1 and panel.follow_toggle.description == "Follow (1 new)"
    panel.follow = True                                      # following again: redrawn at once, and on
    assert len(values) == 2 and "line 52" in panel.view.value and panel.follow_toggle.description == "Follow"
    feed.apply(event("t-1", 53, "line 53\n"))
    await eventually(lambda: "line 53" in panel.view.value, "the next line once following")


async def test_closed_panel_stops_listening(anyio_backend: str) -> None:
    feed = Feed()
    panel = ExecutionPanel(feed)
    panel.close()
    feed.apply(event("t", 1, "late"))
    assert "late" not in panel.view.value
    assert feed._listeners == []


def test_event_colours_are_the_web_dashboards() -> None:
    css = (Path(agentcom.dashboard.__file__).parent / "static" / "app.css").read_text(encoding="utf-8")
    dashboard = {}
    for kind, rule in re.findall(r"^\.ev-(\w+)\s*\{([^}]*)\}", css, re.M):    # top-level rules, not the legend's
        colour = re.search(r"(?:^|;)\s*color:\s*(#[0-9a-fA-F]{3,6})", rule)
        if colour:
            dashboard[kind] = colour.group(1).lower()
    event_types = {kind: colour for kind, colour in dashboard.items() if kind != "meta"}   # meta: the page's own notes
    assert {"stderr", "status", "error", "tool_call"} <= set(event_types), dashboard
    assert dict(_render.EVENT_COLOURS) == event_types
    for kind, colour in event_types.items():
        assert f"color:{colour}" in _render.EVENT_STYLES[kind]


async def hub_has_read(client: HubClient) -> None:
    """Wait until the hub has handled every frame the client sent so far (a snapshot request answers in order)."""
    before = client.feed.snapshots
    assert client.stream.request_snapshot()
    await eventually(lambda: client.feed.snapshots > before, "the hub's answer to a snapshot request")


def walk(widget: Any) -> list[Any]:
    """A widget and everything under it."""
    found = [widget]
    for child in getattr(widget, "children", ()):
        found.extend(walk(child))
    return found


async def test_a_panel_showing_one_task_subscribes_so_hub_drops_spare_it(tmp_path: Path, anyio_backend: str) -> None:
    # a small per-dashboard buffer: a flood of another task's output would overflow it and drop events
    hub = await start_hub(tmp_path, dashboard_buffer=256)
    client = HubClient(hub.url, hub.admin_token)
    try:
        await client.wait_live()
        session = next(iter(hub.dashboard_fanout.sessions))
        watched_side, noisy_side = await Sidecar.connect(hub, "agent-a"), await Sidecar.connect(hub, "agent-b")
        hub.submit_dict({"description": "watched", "complexity_tier": "trivial"})
        hub.submit_dict({"description": "noisy", "complexity_tier": "trivial"})
        watched, noisy = await watched_side.take(), await noisy_side.take()
        panel = ExecutionPanel(client, task_id=watched["task_id"])
        await eventually(lambda: session.task_filter == watched["task_id"], "the hub to narrow the stream")
        writes = flood(noisy_side, noisy, ["noise "] * 4_000) + flood(watched_side, watched,
                                                                       [f"kept {i}\n" for i in range(150)])
        for future in writes:
            await future
        await eventually(lambda: "kept 149" in panel.view.value, "the watched task's last line")
        stream = client.feed.streams[watched["task_id"]]
        assert (stream.count, stream.gaps, client.feed.dropped, session.dropped_total) == (150, 0, 0, 0)
        assert noisy["task_id"] not in client.feed.streams        # the noise never left the hub
        assert threading.get_ident() in {t.ident for t in threading.enumerate()}

        panel.select(None)                                        # all tasks again: the socket widens
        await eventually(lambda: session.task_filter is None, "the hub to stream every task")
        await noisy_side.emit(noisy, "stdout", "audible\n")
        await eventually(lambda: "audible" in panel.view.value, "the other task's line")
        panel.select(watched["task_id"])
        await eventually(lambda: session.task_filter == watched["task_id"], "narrowed again")
        panel.close()                                             # nobody narrows it any more
        await eventually(lambda: session.task_filter is None, "widened when the panel closed")
        assert not any(isinstance(part, ipywidgets.Output) for part in walk(panel))
    finally:
        await client.aclose()
        await hub.stop()


async def test_panels_sharing_a_client_narrow_its_socket_only_when_they_agree(hub: Hub, client: HubClient) -> None:
    await client.wait_live()
    session = next(iter(hub.dashboard_fanout.sessions))
    first = ExecutionPanel(client, task_id="task-x")
    monitor = client.monitor()                                # its panel shows all tasks
    await hub_has_read(client)
    assert session.task_filter is None
    monitor.panel.select("task-x")
    await eventually(lambda: session.task_filter == "task-x", "both panels on task-x")
    monitor.panel.select("task-y")
    await eventually(lambda: session.task_filter is None, "the panels disagree")
    monitor.close()
    await eventually(lambda: session.task_filter == "task-x", "the remaining panel's task")
    from_feed = ExecutionPanel(client.feed, task_id="task-z")   # a bare feed: no socket of its own to narrow
    await hub_has_read(client)
    assert session.task_filter == "task-x"
    opted_out = ExecutionPanel(client, task_id="task-z", subscribe=False)  # it needs the whole stream
    await eventually(lambda: session.task_filter is None, "an opted-out panel keeps the socket wide")
    opted_out.close()
    await eventually(lambda: session.task_filter == "task-x", "its veto goes with it")
    for panel in (first, from_feed):
        panel.close()
    await eventually(lambda: session.task_filter is None, "no panel narrows it")
    with pytest.raises(ValueError, match="HubClient"):
        ExecutionPanel(Feed(), subscribe=True)


async def test_follow_new_tasks_switches_to_the_newest_streaming_task(anyio_backend: str) -> None:
    panel = ExecutionPanel(Feed(), follow_new_tasks=True)
    for n, task in enumerate(("t-old", "t-new")):
        panel.ingest({"type": "execution_event", "task_id": task, "generation": 1, "event_type": "stdout",
                      "text": f"from {task}", "seq": 1})
        panel.refresh()
        assert panel.task_id == task
    assert "from t-new" in panel.view.value and "from t-old" not in panel.view.value
