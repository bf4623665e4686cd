"""``ExecutionPanel``: streamed execution output of one task or of all tasks.

One ``HTML`` widget holds the whole view and is redrawn at most ``1/interval`` times a
second (10 by default) from the feed's bounded per-task buffers, however fast events
arrive: never an ``Output.append_*`` per event, which re-sends the whole output each time.
The view shows at most ``max_lines`` events (and ``max_chars`` characters) of the
selected task, newest at the bottom, scrolled there automatically. A ``Dropdown`` picks the
task (``follow=True`` switches to each newly streaming task); an ``Accordion`` collapses it.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from agentcom.client._feed import ExecEvent, Feed
from agentcom.widgets import _render as r
from agentcom.widgets._base import DEFAULT_INTERVAL, LiveView, feed_of

ALL = ""


class ExecutionPanel(LiveView, w.VBox):  # type: ignore[misc]
    """Live, colour-coded execution output; ``source`` is a HubClient, a Feed, or None."""

    def __init__(self, source: Any = None, task_id: str | None = None, *, interval: float = DEFAULT_INTERVAL,
                 max_lines: int = 400, max_chars: int = 200_000, height: int = 320, follow: bool = False,
                 collapsed: bool = False, title: str = "Execution output", **kwargs: Any) -> None:
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.height = height
        self.follow = follow
        self.selector = w.Dropdown(options=[("All tasks", ALL)], value=ALL, description="Task",
                                   layout=w.Layout(width="min(100%, 560px)"))
        self.view = w.HTML(layout=w.Layout(width="100%"))
        body = w.VBox([self.selector, self.view], layout=w.Layout(width="100%"))
        self.accordion = w.Accordion(children=[body], titles=(title,), selected_index=None if collapsed else 0)
        super().__init__(children=[self.accordion], **kwargs)
        self._known: dict[str, None] = {}  # task ids in the selector, oldest first
        self._rendering = False
        self._attach(feed_of(source), interval)
        self.selector.observe(self._on_select, "value")
        if task_id:
            self.select(task_id)
        self.refresh()

    # ------------------------------------------------------------------ control

    @property
    def task_id(self) -> str | None:
        """The task shown, or None for all tasks."""
        return self.selector.value or None

    def select(self, task_id: str | None) -> None:
        """Show one task's output (it need not have streamed yet), or all with None."""
        if task_id and task_id not in self._known:
            self._known[task_id] = None
            self.selector.options = self._options()
        self.selector.value = task_id or ALL

    def ingest(self, frame: dict[str, Any]) -> None:
        """Apply a dashboard frame to this panel's feed (for panels without a live socket)."""
        self.feed.apply(frame)

    # ------------------------------------------------------------------ feed -> view

    def _on_feed(self, kind: str, data: Any) -> None:
        if kind == "execution":
            event: ExecEvent = data
            selected = self.selector.value
            if selected == ALL or event.task_id == selected or event.task_id not in self._known:
                self._throttle.request()
        elif kind in ("snapshot", "dropped", "connection", "task"):
            self._throttle.request()

    def _on_select(self, change: dict[str, Any]) -> None:
        if not self._rendering:
            self.refresh()

    def _options(self) -> list[tuple[str, str]]:
        feed = self.feed
        options = [("All tasks", ALL)]
        for task_id in reversed(self._known):
            description = feed.describe(task_id)
            label = f"{task_id} · {r._clip(description, 40)}" if description else task_id
            options.append((label, task_id))
        return options

    def _render(self) -> None:
        feed: Feed = self.feed
        streaming = tuple(feed.streams)
        if any(t not in self._known for t in streaming):
            selected = self.selector.value
            known = dict.fromkeys(streaming)
            if selected and selected not in known:
                known = {selected: None, **known}
            self._known = known
            if self.follow:
                selected = streaming[-1]
            self._rendering = True
            try:
                self.selector.options = self._options()      # keeps the value when it is still listed
                self.selector.value = selected if selected == ALL or selected in known else ALL
            finally:
                self._rendering = False
        task_id = self.selector.value or None
        if task_id is None:
            buffered: Any = feed.timeline
        else:
            stream = feed.streams.get(task_id)
            buffered = stream.events if stream is not None else ()
        chosen = r.select_events(buffered, self.max_lines, self.max_chars)
        header = r.stream_header(task_id, feed.streams.get(task_id) if task_id else None,
                                 feed.describe(task_id) if task_id else "", dropped=feed.dropped,
                                 connection=feed.connection if feed.connection != "idle" else None, shown=len(chosen))
        body = r.render_events(chosen, label_tasks=task_id is None)
        self.view.value = r.panel_html(body, header, height=self.height)

    # ------------------------------------------------------------------ fallbacks

    def static_html(self) -> str:
        return str(self.view.value)

    def text_summary(self) -> str:
        feed = self.feed
        task_id = self.task_id
        events = list(feed.events(task_id))[-20:]
        lines = [f"ExecutionPanel: {task_id or 'all tasks'} ({feed.events_received} events received, "
                 f"{feed.dropped} dropped)"]
        for e in events:
            lines.append(f"  [{e.event_type}] {e.task_id}: {e.text.rstrip()[:120]}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExecutionPanel {self.task_id or 'all tasks'}: {self.feed.events_received} events>"
