"""``BatchProgress``: a progress bar for a batch of submitted tasks (``client.submit_many``).

An ``IntProgress`` counts finished tasks of the batch (completed, failed, dead letter or
cancelled) and an ``HTML`` label says how many were submitted, are done, and failed. It
follows the feed's task deltas, so it keeps moving after the submitting cell returns.
While a blocking ``submit_many`` runs, the loop cannot render, so submissions update the
label directly, at most ten times a second.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from agentcom.client._feed import FINAL_STATES
from agentcom.widgets._base import DEFAULT_INTERVAL, LiveView, feed_of


class BatchProgress(LiveView, w.HBox):  # type: ignore[misc]
    def __init__(self, total: int, source: Any = None, *, interval: float = DEFAULT_INTERVAL, **kwargs: Any) -> None:
        self.total = total
        self.bar = w.IntProgress(value=0, min=0, max=max(1, total), bar_style="info",
                                 layout=w.Layout(width="320px"))
        self.label = w.HTML()
        super().__init__(children=[self.bar, self.label], **kwargs)
        self.task_ids: dict[str, str] = {}     # task_id -> last status seen
        self.submit_error: str | None = None
        self._last_direct = 0.0
        self._attach(feed_of(source), interval)
        self.refresh()

    def submitted(self, task_id: str) -> None:
        """Count one submission (called by submit_many)."""
        known = self.feed.tasks.get(task_id)
        self.task_ids[task_id] = str(known.get("status")) if known else "queued"
        now = time.monotonic()
        if now - self._last_direct >= self._throttle.interval or len(self.task_ids) == self.total:
            self._last_direct = now
            self.refresh()
        else:
            self._throttle.request()

    def failed_submit(self, message: str) -> None:
        self.submit_error = message
        self.refresh()

    def _on_feed(self, kind: str, data: Any) -> None:
        if kind == "task" and data.get("task_id") in self.task_ids:
            self.task_ids[data["task_id"]] = str(data.get("status"))
            self._throttle.request()
        elif kind == "snapshot":               # a snapshot replaces the deltas it folds in
            for task_id in self.task_ids:
                known = self.feed.tasks.get(task_id)
                if known is not None:
                    self.task_ids[task_id] = str(known.get("status"))
            self._throttle.request()

    @property
    def done(self) -> int:
        return sum(1 for s in self.task_ids.values() if s in FINAL_STATES)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.task_ids.values() if s in ("failed", "dead_letter", "cancelled"))

    def _render(self) -> None:
        done, failed, submitted = self.done, self.failed, len(self.task_ids)
        self.bar.value = min(done, self.bar.max)
        if self.submit_error:
            style = "danger"
        elif done < self.total:
            style = "info"
        else:
            style = "success" if failed == 0 else ("danger" if failed == self.total else "warning")
        self.bar.bar_style = style
        text = f"{done}/{self.total} done"
        if submitted < self.total:
            text += f" &middot; submitted {submitted}/{self.total}"
        if failed:
            text += f' &middot; <span style="color:#ef4444">{failed} failed</span>'
        if self.submit_error:
            text += f' &middot; <span style="color:#ef4444">{html.escape(self.submit_error[:200])}</span>'
        self.label.value = text

    def static_html(self) -> str:
        return f"<div>{self.label.value}</div>"

    def text_summary(self) -> str:
        return f"BatchProgress: {self.done}/{self.total} done, {self.failed} failed, {len(self.task_ids)} submitted"

    def __repr__(self) -> str:
        return f"<{self.text_summary()}>"
