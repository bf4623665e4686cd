"""``ExecutionPanel``: streamed execution output of one task or of all tasks.

One ``HTML`` widget holds the whole view and is redrawn at most ``1/interval`` times a
second (10 by default) from the feed's bounded per-task buffers, however fast events
arrive: never an ``Output.append_*`` per event, which re-sends the whole output each time.
The view shows at most ``max_lines`` events (and ``max_chars`` characters) of the
selected task, newest at the bottom, scrolled there automatically.

Controls: a ``Dropdown`` picks the task (``follow_new_tasks=True`` switches to each newly
streaming task); a **Follow** toggle stops redrawing the view, because every redraw
replaces the whole HTML and so pulls a reader who scrolled up back to the bottom: paused,
the view stays as it is (the toggle counts what arrived meanwhile) until Follow is on
again. An ``Accordion`` collapses the panel; collapsed, nothing is redrawn at all.

Subscription: a panel built on a ``HubClient`` (not a bare ``Feed``) that shows one task
asks the hub to stream only that task's output (the dashboard protocol's ``subscribe``),
so when the hub must drop events for a slow notebook it never drops the watched task's.
Panels sharing one client agree first: the socket is narrowed only while every such panel
shows the same task (``subscribe=False`` opts a panel out: it then keeps the socket wide).
"""

from __future__ import annotations

import weakref
from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from agentcom.client._feed import ExecEvent, Feed
from agentcom.widgets import _render as r
from agentcom.widgets._base import DEFAULT_INTERVAL, LiveView, feed_of

ALL = ""


class _Subscriptions:
    """Which task each panel on one client's socket shows; the socket is narrowed only when they agree.

    Kept per ``FeedStream`` (weakly: a closed client or panel leaves nothing behind), so two
    panels on one client never narrow the socket under each other's feet.
    """

    def __init__(self) -> None:
        self._wants: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, str | None]] = (
            weakref.WeakKeyDictionary())
        self._sent: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()

    def want(self, stream: Any, panel: Any, task_id: str | None) -> None:
        self._wants.setdefault(stream, weakref.WeakKeyDictionary())[panel] = task_id
        self._apply(stream)

    def drop(self, stream: Any, panel: Any) -> None:
        wants = self._wants.get(stream)
        if wants is not None and panel in wants:
            del wants[panel]
            self._apply(stream)

    def target(self, stream: Any) -> str | None:
        """The task the socket is narrowed to, or None for all tasks."""
        return self._sent.get(stream)

    def _apply(self, stream: Any) -> None:
        tasks = set((self._wants.get(stream) or {}).values())
        target = next(iter(tasks)) if len(tasks) == 1 else None
        if self._sent.get(stream) != target:
            self._sent[stream] = target
            stream.subscribe(target)        # kept by the stream across reconnects


SUBSCRIPTIONS = _Subscriptions()


class ExecutionPanel(LiveView, w.VBox):  # type: ignore[misc]
    """Live, colour-coded execution output; ``source`` is a HubClient, a Feed, or None."""

    def __init__(self, source: Any = None, task_id: str | None = None, *, interval: float = DEFAULT_INTERVAL,
                 max_lines: int = 400, max_chars: int = 200_000, height: int = 320, follow: bool = True,
                 follow_new_tasks: bool = False, subscribe: bool | None = None, collapsed: bool = False,
                 title: str = "Execution output", **kwargs: Any) -> None:
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.height = height
        self.follow_new_tasks = follow_new_tasks
        self.selector = w.Dropdown(options=[("All tasks", ALL)], value=ALL, description="Task",
                                   layout=w.Layout(width="min(100%, 560px)"))
        self.follow_toggle = w.ToggleButton(
            value=follow, description="Follow", icon="arrow-down", layout=w.Layout(width="auto"),
            tooltip="Redraw as output arrives (newest line in view); off: keep the view still to scroll and read")
        self.view = w.HTML(layout=w.Layout(width="100%"))
        body = w.VBox([w.HBox([self.selector, self.follow_toggle]), self.view], layout=w.Layout(width="100%"))
        self.accordion = w.Accordion(children=[body], titles=(title,), selected_index=None if collapsed else 0)
        super().__init__(children=[self.accordion], **kwargs)
        self._known: dict[str, None] = {}  # task ids in the selector, oldest first
        self._rendering = False
        # plain copies of widget state read on every event (a traitlets read costs more than the rest)
        self._selected = ALL
        self._following = follow
        self._collapsed = collapsed
        self._stale = False                # the view is behind the feed (paused or collapsed)
        self._missed = 0                   # events for the view that arrived while paused
        # the client's socket: this panel narrows it, or (subscribe=False) keeps it wide for the others
        self._narrows = _subscribes(source, subscribe)
        self._stream = getattr(source, "stream", None) if _owns_socket(source) else None
        self._attach(feed_of(source), interval)
        self.selector.observe(self._on_select, "value")
        self.follow_toggle.observe(self._on_follow, "value")
        self.accordion.observe(self._on_collapse, "selected_index")
        if task_id:
            self.select(task_id)
        self._subscribe()                  # all tasks counts too: it keeps other panels from narrowing the socket
        self.refresh()

    # ------------------------------------------------------------------ control

    @property
    def task_id(self) -> str | None:
        """The task shown, or None for all tasks."""
        return self.selector.value or None

    @property
    def follow(self) -> bool:
        """Whether the view is redrawn as output arrives (the Follow toggle)."""
        return bool(self.follow_toggle.value)

    @follow.setter
    def follow(self, value: bool) -> None:
        self.follow_toggle.value = bool(value)

    @property
    def collapsed(self) -> bool:
        return self._collapsed

    @collapsed.setter
    def collapsed(self, value: bool) -> None:
        self.accordion.selected_index = None if value else 0

    @property
    def stale(self) -> bool:
        """The view does not show everything the feed holds (paused or collapsed)."""
        return self._stale

    def select(self, task_id: str | None) -> None:
        """Show one task's output (it need not have streamed yet), or all with None."""
        if task_id and task_id not in self._known:
            self._known[task_id] = None
            self.selector.options = self._options()
        self.selector.value = task_id or ALL

    def ingest(self, frame: dict[str, Any]) -> None:
        """Apply a dashboard frame to this panel's feed (for panels without a live socket)."""
        self.feed.apply(frame)

    def detach(self) -> None:
        if getattr(self, "_stream", None) is not None:
            SUBSCRIPTIONS.drop(self._stream, self)
            self._stream = None
        super().detach()

    # ------------------------------------------------------------------ feed -> view

    def _on_feed(self, kind: str, data: Any) -> None:
        if self._collapsed:
            self._stale = True             # drawn when expanded again
            return
        if kind == "execution":
            event: ExecEvent = data
            selected = self._selected
            if selected == ALL or event.task_id == selected:
                if not self._following:
                    self._missed += 1
                self._throttle.request()
            elif event.task_id not in self._known:
                self._throttle.request()   # a new task for the selector
        elif kind in ("snapshot", "dropped", "connection", "task"):
            self._throttle.request()

    def _on_select(self, change: dict[str, Any]) -> None:
        self._selected = change["new"] or ALL
        self._subscribe()
        if self._rendering:
            return
        if self._collapsed:
            self._stale = True
            return
        self._missed = 0
        self._draw_view()                  # the user asked for this task: show it even when paused
        self._set_follow_label()

    def _on_follow(self, change: dict[str, Any]) -> None:
        self._following = bool(change["new"])
        if self._following:
            self._missed = 0
            self.refresh()
        else:
            self._set_follow_label()

    def _on_collapse(self, change: dict[str, Any]) -> None:
        self._collapsed = change["new"] is None
        if not self._collapsed and self._stale:
            self.refresh()

    def _subscribe(self) -> None:
        if self._stream is not None:
            wanted = None if self.follow_new_tasks or not self._narrows else (self._selected or None)
            SUBSCRIPTIONS.want(self._stream, self, wanted)

    def _options(self) -> list[tuple[str, str]]:
        feed = self.feed
        options = [("All tasks", ALL)]
        for task_id in reversed(self._known):
            description = feed.describe(task_id)
            label = f"{task_id} · {r._clip(description, 40)}" if description else task_id
            options.append((label, task_id))
        return options

    def _render(self) -> None:
        if self._collapsed:
            self._stale = True
            return
        streaming = tuple(self.feed.streams)
        if any(t not in self._known for t in streaming):
            selected = self.selector.value
            known = dict.fromkeys(streaming)
            if selected and selected not in known:
                known = {selected: None, **known}
            self._known = known
            if self.follow_new_tasks and self._following:
                selected = streaming[-1]
            self._rendering = True
            try:
                self.selector.options = self._options()      # keeps the value when it is still listed
                self.selector.value = selected if selected == ALL or selected in known else ALL
            finally:
                self._rendering = False
            self._selected = self.selector.value
        if self._following:
            self._draw_view()
        else:
            self._stale = True
        self._set_follow_label()

    def _draw_view(self) -> None:
        self.view.value = self._view_html()
        self._stale = False

    def _set_follow_label(self) -> None:
        # a separate widget from the view: updating it leaves the reader's scroll position alone
        label = "Follow" if self._following or not self._missed else f"Follow ({self._missed:,} new)"
        if self.follow_toggle.description != label:
            self.follow_toggle.description = label

    def _view_html(self) -> str:
        feed: Feed = self.feed
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
        return r.panel_html(body, header, height=self.height)

    # ------------------------------------------------------------------ fallbacks

    def static_html(self) -> str:
        return self._view_html() if self._stale else str(self.view.value)

    def text_summary(self) -> str:
        feed = self.feed
        task_id = self.task_id
        events = list(feed.events(task_id))[-20:]
        paused = "" if self._following else ", paused"
        lines = [f"ExecutionPanel: {task_id or 'all tasks'} ({feed.events_received} events received, "
                 f"{feed.dropped} dropped{paused})"]
        for e in events:
            lines.append(f"  [{e.event_type}] {e.task_id}: {e.text.rstrip()[:120]}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExecutionPanel {self.task_id or 'all tasks'}: {self.feed.events_received} events>"


def _owns_socket(source: Any) -> bool:
    from agentcom.client._client import HubClient

    return isinstance(source, HubClient)


def _subscribes(source: Any, subscribe: bool | None) -> bool:
    """A panel narrows the socket only when it was handed the client that owns it."""
    owns = _owns_socket(source)
    if subscribe and not owns:
        raise ValueError("subscribe=True needs a HubClient source: a bare Feed has no socket to narrow")
    return owns if subscribe is None else subscribe
