"""The sidecar: connects to a hub, runs assigned tasks through the executors, reports back.

``Sidecar`` (``runtime``) is the long-running client; ``ProgressEmitter`` (``emitter``)
batches streamed output into EVENTs; ``Journal`` (``journal``) keeps tasks in hand across
crashes; ``cli`` is the ``agentcom sidecar`` command. Names are imported on first use, so
``import agentcom.sidecar.journal`` does not pull in the executors and their SDKs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Backoff": "connection", "Journal": "journal", "JournalError": "journal", "ProgressEmitter": "emitter",
    "Sidecar": "runtime", "SidecarRefused": "runtime", "sidecar_url": "connection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcom.sidecar' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agentcom.sidecar.{module}"), name)
