"""``CostTable``: one row per completed task with its tokens, USD cost and savings vs Claude.

Rows are the feed's COMPLETION records (the snapshot's recent completions, then one per
completion delta), so the table fills as tasks finish. A ``Dropdown`` picks the sort
column and ``ToggleButtons`` the direction; the table shows the first ``max_rows`` rows in
that order while the totals row sums every completion the feed holds. The hub's own
all-time totals (from its snapshot) are shown underneath. An unknown price stays
"unpriced", never $0.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from agentcom.widgets import _render as r
from agentcom.widgets._base import DEFAULT_INTERVAL, LiveView, feed_of

SORT_KEYS: dict[str, tuple[str, Any]] = {
    # label -> (row key, value used for sorting; None sorts last)
    "completed": ("completed_at", lambda row: row["completed_at"]),
    "cost": ("cost", lambda row: row["cost"]),
    "saved vs Claude": ("saved", lambda row: row["saved"]),
    "tokens": ("tokens", lambda row: row["tokens_in"] + row["tokens_out"]),
    "tokens in": ("tokens_in", lambda row: row["tokens_in"]),
    "tokens out": ("tokens_out", lambda row: row["tokens_out"]),
    "duration": ("duration_ms", lambda row: row["duration_ms"]),
    "task": ("task_id", lambda row: row["task_id"]),
    "agent": ("agent", lambda row: row["agent"]),
    "tier": ("tier", lambda row: row["tier"]),
    "model": ("model", lambda row: row["model"]),
}


class CostTable(LiveView, w.VBox):  # type: ignore[misc]
    """Live per-task cost table; ``source`` is a HubClient, a Feed, or None."""

    def __init__(self, source: Any = None, *, sort_by: str = "completed", descending: bool = True,
                 max_rows: int = 200, interval: float = DEFAULT_INTERVAL, **kwargs: Any) -> None:
        if sort_by not in SORT_KEYS:
            raise ValueError(f"sort_by must be one of {', '.join(SORT_KEYS)}, got {sort_by!r}")
        self.max_rows = max_rows
        self.sort_by = w.Dropdown(options=list(SORT_KEYS), value=sort_by, description="Sort by",
                                  layout=w.Layout(width="260px"))
        self.direction = w.ToggleButtons(options=[("desc", True), ("asc", False)], value=descending,
                                         style={"button_width": "56px"})
        self.view = w.HTML(layout=w.Layout(width="100%"))
        super().__init__(children=[w.HBox([self.sort_by, self.direction]), self.view], **kwargs)
        self._attach(feed_of(source), interval)
        self.sort_by.observe(self._on_sort, "value")
        self.direction.observe(self._on_sort, "value")
        self.refresh()

    def _on_feed(self, kind: str, data: Any) -> None:
        if kind in ("completion", "snapshot", "totals"):
            self._throttle.request()

    def _on_sort(self, change: dict[str, Any]) -> None:
        self.refresh()

    # ------------------------------------------------------------------ data

    def rows(self) -> list[dict[str, Any]]:
        """All rows in the current sort order (unknown values last in either direction)."""
        key = SORT_KEYS[self.sort_by.value][1]
        rows = [r.completion_row(c) for c in self.feed.completions.values()]   # oldest completion first
        known = [(key(row), i, row) for i, row in enumerate(rows) if key(row) is not None]
        unknown = [row for row in rows if key(row) is None]
        known.sort(key=lambda item: (item[0], item[1]), reverse=bool(self.direction.value))  # ties: arrival order
        return [row for _, _, row in known] + unknown

    def _render(self) -> None:
        rows = self.rows()
        shown = rows[: self.max_rows]
        label = f"{self.sort_by.value} ({'desc' if self.direction.value else 'asc'})"
        self.view.value = r.cost_table_html(shown, r.cost_totals(rows), self.feed.totals, shown=len(shown),
                                            sort_label=label)

    # ------------------------------------------------------------------ fallbacks

    def static_html(self) -> str:
        return str(self.view.value)

    def text_summary(self) -> str:
        rows = self.rows()
        totals = r.cost_totals(rows)
        lines = [f"CostTable: {totals['count']} completed task(s), ${totals['cost']:.4f} spent, "
                 f"${totals['saved']:.4f} saved vs Claude"]
        for row in rows[:20]:
            cost = "unpriced" if row["cost"] is None else f"${row['cost']:.4f}"
            lines.append(f"  {row['task_id']}  {row['agent']}  {row['tier']}  {row['model']}  "
                         f"{row['tokens_in']}/{row['tokens_out']} tokens  {cost}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<CostTable: {len(self.feed.completions)} rows>"
