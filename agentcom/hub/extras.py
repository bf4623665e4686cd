"""Optional routes (dashboard socket, web page, metrics), looked up lazily so the core never depends on them."""

from __future__ import annotations

from typing import Any


def standalone_routes(hub: Any) -> tuple[tuple[str, type, dict[str, Any]], ...]:
    return ()
