"""Hub settings that sidecars follow, sent in ``identified`` (docs/protocol.md, Additions).

Users set ``batch_interval_ms`` and ``reference_model`` once, on the hub, and every sidecar
follows unless its own flag says otherwise; the version of the hub's own ``price_table`` lets a
sidecar that prices with another table say so. Each is sent only when it differs from what its
absence means (the sidecar's default, the shipped table), so a hub with default settings sends
exactly the spec's frame.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from agentcom.pricing import DEFAULT_REFERENCE_MODEL
from agentcom.sidecar.emitter import DEFAULT_BATCH_INTERVAL_MS

log = logging.getLogger(__name__)


def identified_extras(settings: Any) -> dict[str, int | str]:
    """The optional ``identified`` fields these settings call for."""
    extra: dict[str, int | str] = {}
    if settings.batch_interval_ms != DEFAULT_BATCH_INTERVAL_MS:
        extra["batch_interval_ms"] = settings.batch_interval_ms
    if settings.reference_model != DEFAULT_REFERENCE_MODEL:
        extra["reference_model"] = settings.reference_model
    if settings.price_table and (version := price_table_version(settings.price_table)) is not None:
        extra["price_table"] = version
    return extra


def price_table_version(path: str) -> str | None:
    """Version of the price table the hub's ``price_table`` file makes (None: unreadable), read again only
    when the file changes: sidecars reconnecting together must not each parse a large LiteLLM file."""
    try:
        stat = os.stat(os.path.expanduser(path))
    except OSError:
        stat = None
    return _table_version(path, stat.st_mtime_ns if stat else -1, stat.st_size if stat else -1)


@functools.lru_cache(maxsize=4)
def _table_version(path: str, mtime_ns: int, size: int) -> str | None:
    from agentcom.errors import PricingError
    from agentcom.pricing import PriceTable

    try:
        return PriceTable.load(path).version
    except (PricingError, OSError, ValueError) as exc:  # e.g. not UTF-8: logged once per state of the file
        log.warning("price_table %s cannot be read (%s); identified frames carry no price table version", path, exc)
        return None
