"""``client.live_executions()``: an executions DataFrame that grows as executions finish.

Rows come from ``GET /agentcom/api/executions`` (so they carry every column and are exactly
what ``client.executions()`` returns, typed by :func:`agentcom.analysis.executions_frame`);
*when* to fetch comes from the dashboard socket: a completion delta, or a task delta that
means an execution ended (failed, dead letter, requeued after a failure), schedules one
incremental fetch (``since`` = the newest ``completed_at`` held; rows are deduplicated by
``(task_id, generation)``). Fetches run on the loop with Tornado's async client, are
coalesced (at most one in flight, a follow-up if more ended meanwhile) and never block a cell.

``.frame`` is rebuilt lazily after new rows arrive, so a notebook cell can re-chart it at any time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from agentcom.client._client import HubClient

log = logging.getLogger(__name__)

_ENDED = frozenset(("completed", "failed", "dead_letter", "queued"))


class LiveExecutions:
    """A live executions table: ``.frame`` is the DataFrame (re-read it to see new rows); ``len()``;
    its reprs show the frame, so ending a cell with it displays the table as it is now."""

    def __init__(self, client: "HubClient", *, debounce: float = 0.2) -> None:
        self._client = client
        self.debounce = debounce
        self._records: list[dict[str, Any]] = []
        self._keys: set[tuple[Any, Any]] = set()
        self._since = 0
        self._frame: pd.DataFrame | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._again = False
        self._timer: asyncio.TimerHandle | None = None
        self.fetches = 0
        self.last_error: str | None = None
        self._ready = asyncio.Event()
        self._remove = client.feed.add_listener(self._on_feed)
        self.refresh()

    # ------------------------------------------------------------------ data

    @property
    def frame(self) -> "pd.DataFrame":
        """All executions so far, typed like ``client.executions()``."""
        if self._frame is None:
            from agentcom.analysis import executions_frame

            self._frame = executions_frame(self._records)
        return self._frame

    def __len__(self) -> int:
        return len(self._records)

    def _add(self, rows: list[dict[str, Any]]) -> None:
        added = 0
        for row in rows:
            key = (row.get("task_id"), row.get("generation"))
            if key in self._keys:
                continue
            self._keys.add(key)
            self._records.append(row)
            self._since = max(self._since, int(row.get("completed_at") or 0))
            added += 1
        if added:
            self._frame = None

    # ------------------------------------------------------------------ fetching

    def refresh(self) -> None:
        """Fetch rows finished since the last fetch: scheduled on the running loop, or at once
        (blocking) when there is none, e.g. in a plain script, where the table then stays as fetched."""
        if self._fetching is not None and not self._fetching.done():
            self._again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._add(self._client._http.request("GET", "agentcom/api/executions",
                                                 params={"since": self._since or None}))
            self.fetches += 1
            self._ready.set()
            return
        self._fetching = loop.create_task(self._fetch())

    async def wait_ready(self, timeout: float = 10.0) -> "LiveExecutions":
        """Wait for the first fetch (the rows that existed when this object was made)."""
        await asyncio.wait_for(self._ready.wait(), timeout)
        return self

    async def _fetch(self) -> None:
        while True:
            self._again = False
            try:
                rows = await self._client._http.arequest("GET", "agentcom/api/executions",
                                                         params={"since": self._since or None})
                self._add(rows if isinstance(rows, list) else [])
                self.fetches += 1
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - keep the live table alive; the error is shown
                self.last_error = str(exc)
                log.warning("live executions: fetch failed: %s", exc)
            self._ready.set()
            if not self._again:
                return

    def _on_feed(self, kind: str, data: Any) -> None:
        if kind == "completion" or (kind == "task" and data.get("status") in _ENDED and (data.get("generation") or 0) > 0):
            self._schedule()
        elif kind == "snapshot" and self._ready.is_set():
            self._schedule()   # after a reconnect: catch up on whatever finished while away

    def _schedule(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.debounce, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.refresh()

    def close(self) -> None:
        """Stop following the feed."""
        self._remove()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        """The caption, then the DataFrame as pandas prints it (so echoing ``live`` in a cell shows the rows)."""
        error = f"; last fetch failed: {self.last_error}" if self.last_error else ""
        return f"LiveExecutions: {len(self._records)} executions, live (.frame is the DataFrame){error}\n{self.frame!r}"

    def _repr_html_(self) -> str:
        """The caption over pandas' own HTML table (truncated by ``pd.options.display.max_rows``, as a frame is)."""
        import html

        caption = f"LiveExecutions: {len(self._records)} executions, live (<code>.frame</code> is the DataFrame)"
        if self.last_error:
            caption += f" &middot; last fetch failed: {html.escape(self.last_error)}"
        table = self.frame._repr_html_() or f"<pre>{html.escape(repr(self.frame))}</pre>"
        return f"<div><div style='color:#888'>{caption}</div>{table}</div>"


__all__ = ["LiveExecutions"]
