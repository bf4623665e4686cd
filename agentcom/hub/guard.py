"""Per-address cool-downs for sidecar sockets: abusive connections and token guessing.

A connection closed for too many bad frames (``bad_frame_limit``) gets its address refused
for ``bad_frame_cooldown_ms``; ``identify_failure_limit`` identifies with a bad token from
one address within ``identify_failure_window_ms`` get it refused for ``identify_cooldown_ms``.
While refused, new sidecar sockets from that address are answered HTTP 429 before the
WebSocket upgrade (``Retry-After`` and a JSON body), and an ``identify`` on a socket it
already had open is answered ``rate_limited`` and closed with 1008. Other addresses and
sidecars already identified are not affected.

The address is the peer the hub sees (``request.remote_ip``); behind a reverse proxy that
is the proxy, unless the server is told to trust ``X-Forwarded-For``.
"""

from __future__ import annotations

from typing import Callable

from agentcom.config import AgentCom
from agentcom.errors import RateLimited
from agentcom.hub.session import RateWindow

PRUNE_AT = 4096  # addresses remembered before the expired ones are dropped (bounds memory under a scan)


class AddressRefused(RateLimited):
    """An identify from an address that is cooling down: answered ``rate_limited``, then close 1008."""


class AddressGuard:
    def __init__(self, settings: AgentCom, clock: Callable[[], int]) -> None:
        self.settings = settings
        self.clock = clock
        self._until: dict[str, tuple[int, str]] = {}  # address -> (refused until (ms), why)
        self._failures: dict[str, RateWindow] = {}  # address -> its recent bad identifies

    def refused_for(self, address: str) -> tuple[int, str]:
        """(ms the address is still refused for, why); (0, "") when it is welcome."""
        entry = self._until.get(address)
        if entry is None:
            return 0, ""
        left = entry[0] - self.clock()
        if left <= 0:
            del self._until[address]
            return 0, ""
        return left, entry[1]

    def check_identify(self, address: str) -> None:
        """Raise AddressRefused while ``address`` cools down (before its token is even looked at)."""
        left, why = self.refused_for(address)
        if left:
            raise AddressRefused(f"identify refused: {why}; try again in {left} ms", retry_after_ms=left)

    def abusive(self, address: str) -> None:
        """A connection from ``address`` was closed for too many bad frames."""
        self._refuse(address, self.settings.bad_frame_cooldown_ms,
                     f"a connection from {address} sent too many bad frames")

    def bad_identify(self, address: str) -> bool:
        """Count a bad token from ``address``; True when this one starts its cool-down."""
        now = self.clock()
        window = self._failures.get(address)
        if window is None:
            if len(self._failures) >= PRUNE_AT:
                self._prune(now)
            # hit() is True once a window holds its limit already: limit-1 lets the limit-th failure trip it
            window = self._failures[address] = RateWindow(self.settings.identify_failure_limit - 1,
                                                          self.settings.identify_failure_window_ms)
        if not window.hit(now):
            return False
        del self._failures[address]
        self._refuse(address, self.settings.identify_cooldown_ms,
                     f"too many identifies with a bad token from {address}")
        return True

    def _refuse(self, address: str, cooldown_ms: int, why: str) -> None:
        if len(self._until) >= PRUNE_AT:
            self._prune(self.clock())
        self._until[address] = (self.clock() + cooldown_ms, why)

    def _prune(self, now: int) -> None:
        for address in [a for a, w in self._failures.items() if not w.active(now)]:
            del self._failures[address]
        for address in [a for a, (until, _) in self._until.items() if until <= now]:
            del self._until[address]
