"""``Monitor``: agents with their state, queue counts, the execution panel and the cost table.

One ``VBox`` over one feed: ``display(client.monitor())`` (or ``Monitor(client)``) is the
whole live view of a hub in a notebook. The header (connection, queue counts, agents) is
an ``HTML`` widget redrawn at most ``1/interval`` times a second like the parts below it.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from agentcom.widgets import _render as r
from agentcom.widgets._base import DEFAULT_INTERVAL, LiveView, feed_of
from agentcom.widgets.costs import CostTable
from agentcom.widgets.panel import ExecutionPanel


class Monitor(LiveView, w.VBox):  # type: ignore[misc]
    """The live view of a hub; ``source`` is a HubClient (usual) or a Feed."""

    def __init__(self, source: Any = None, *, interval: float = DEFAULT_INTERVAL, panel: dict[str, Any] | None = None,
                 table: dict[str, Any] | None = None, **kwargs: Any) -> None:
        feed = feed_of(source)
        self.url: str | None = getattr(source, "url", None)
        self.header = w.HTML(layout=w.Layout(width="100%"))
        # the panel gets the client itself, so a task picked in it narrows the socket to that task
        self.panel = ExecutionPanel(feed if source is None else source, interval=interval, **(panel or {}))
        self.table = CostTable(feed, interval=interval, **(table or {}))
        costs = w.Accordion(children=[self.table], titles=("Costs",), selected_index=0)
        super().__init__(children=[self.header, self.panel, costs], **kwargs)
        self._attach(feed, interval)
        self.refresh()

    def _on_feed(self, kind: str, data: Any) -> None:
        if kind in ("snapshot", "agent", "agent_left", "task", "queue", "connection", "error"):
            self._throttle.request()

    def _render(self) -> None:
        feed = self.feed
        self.header.value = r.monitor_html(feed.agents.values(), feed.queue, connection=feed.connection,
                                           last_error=feed.last_error, url=self.url)

    def refresh(self) -> None:
        super().refresh()
        self.panel.refresh()
        self.table.refresh()

    def detach(self) -> None:
        super().detach()
        for part in (getattr(self, "panel", None), getattr(self, "table", None)):
            if part is not None:
                part.detach()

    def static_html(self) -> str:
        return str(self.header.value) + self.panel.static_html() + self.table.static_html()

    def text_summary(self) -> str:
        feed = self.feed
        agents = ", ".join(f"{a.get('agent_id')} ({a.get('state')})" for a in feed.agents.values()) or "none"
        queue = ", ".join(f"{k} {v}" for k, v in feed.queue.items())
        return "\n".join([f"AgentCom Monitor ({feed.connection}{', ' + self.url if self.url else ''})",
                          f"agents: {agents}", f"queue: {queue}", self.panel.text_summary(),
                          self.table.text_summary()])

    def __repr__(self) -> str:
        return f"<Monitor {self.url or ''} {self.feed.connection}: {len(self.feed.agents)} agents>"
