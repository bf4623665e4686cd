"""Import a backend's client library in the background, while the sidecar already runs.

The ``anthropic`` and ``ollama`` clients take seconds to import. Imported at module load,
every sidecar (and every CLI command) paid for them; imported at the first task, the import
held the sidecar's event loop for as long, long enough under load for heartbeats to stop and
the hub to reclaim the task. A sidecar set up for a backend starts its import in a thread
instead: start-up does not wait, and the first task finds the module ready (or waits only
for what is left of the import).

The thread is not a daemon: a daemon thread still importing when the interpreter exits is
torn down inside the extension modules it is loading (pydantic-core, jiter), and the
process aborts ("FATAL: exception not rethrown", exit -6) instead of exiting with its own
status. A sidecar that exits early, for example on a refused token, waits for the import
to finish instead.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading

log = logging.getLogger(__name__)
_started: set[str] = set()
_lock = threading.Lock()


def preload(module: str) -> None:
    """Start importing ``module`` in a background thread, once per process."""
    with _lock:
        if module in sys.modules or module in _started:
            return
        _started.add(module)
    threading.Thread(target=_import, args=(module,), name=f"preload-{module}", daemon=False).start()


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - the first run imports it again and reports the error there
        log.debug("background import of %s failed", module, exc_info=True)
