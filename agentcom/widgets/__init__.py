"""ipywidgets views of a hub: ``Monitor``, ``ExecutionPanel``, ``CostTable``, ``BatchProgress``.

Widgets render, feeds listen: each widget draws an :class:`agentcom.client.Feed` (give it a
``HubClient`` or a ``Feed``) into ``HTML`` widgets, redrawn at most about ten times a second
on the running loop. Standard ipywidgets 8 only, so they work in JupyterLab, Notebook 7 and
VS Code; where widgets cannot render they fall back to static HTML and a text summary.
This package is the only one that imports ipywidgets, and only when a widget is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchProgress", "CostTable", "ExecutionPanel", "Monitor"]

_WHERE = {
    "BatchProgress": "agentcom.widgets.progress",
    "CostTable": "agentcom.widgets.costs",
    "ExecutionPanel": "agentcom.widgets.panel",
    "Monitor": "agentcom.widgets.monitor",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'agentcom.widgets' has no attribute {name!r}")
