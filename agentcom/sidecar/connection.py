"""Small pieces of the sidecar's link to the hub: its URL, reconnect delays, frame pacing."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SIDECAR_PATH = "/agentcom/ws/sidecar"


def sidecar_url(hub_url: str) -> str:
    """The sidecar socket URL for a hub base URL (``http(s)://`` or ``ws(s)://``)."""
    parts = urlsplit(hub_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"hub URL must look like http://HOST:PORT, got {hub_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(SIDECAR_PATH):
        path += SIDECAR_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``base * 2**attempt`` capped at ``cap``, with equal jitter."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(attempt, 30)))
        return random.uniform(ceiling / 2, ceiling)


class Pacer:
    """A token bucket for progress frames: ``rate`` a second, bursts of a tenth of a second.

    Keeps a sidecar under the hub's progress budget; while it holds frames back the outbox
    backs up, and the emitters gather lines into fewer, larger EVENTs instead of losing any.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self._tokens = self.capacity
        self._at = time.monotonic()

    async def spend(self, frames: int) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= frames
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)
